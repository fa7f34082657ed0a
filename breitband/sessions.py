"""Browser sessions: server-side rows in PostgreSQL (``web_sessions``), a cookie with a random secret, a CSRF token.

- The cookie holds only a random secret; the table holds its SHA-256, so a database dump signs nobody in.
- Cookie: ``__Host-breitband`` with Secure, Path=/, HttpOnly, SameSite=Lax when the public base URL is https. Plain
  http (development on localhost) gets ``breitband_session`` without Secure: browsers refuse a ``__Host-`` cookie
  that is not Secure, and a Secure cookie is not sent over http by every client.
- A session ends when revoked (sign-out, sign out everywhere, password or role change, deactivation), after
  ``session_idle_minutes`` without a request, or ``session_absolute_hours`` after sign-in — whichever comes first.
  ``last_seen_at`` is written at most once a minute (a request costs one indexed read, not a write).
- CSRF: a cookie is sent by the browser on every request, so an unsafe request (POST, PUT, PATCH, DELETE) made with
  it must also carry ``X-CSRF-Token`` with the session's token (the web app gets it at sign-in and from
  ``GET /api/v1/auth/session``); a page of another site cannot read it. Bearer tokens are not sent by browsers on
  their own and never need it.
- Every sign-in starts a new session (new id and secret: no fixation); a role change ends the user's sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Request, Response
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from breitband import clock
from breitband.identity import Principal
from breitband.models import Organisation, OrgKind, Role, Tenant, User, WebSession
from breitband.settings import get_settings

SECURE_COOKIE = "__Host-breitband"
PLAIN_COOKIE = "breitband_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# How stale last_seen_at may get before a request writes it again.
SEEN_EVERY = timedelta(minutes=1)
RESTRICTED_TOTP = "totp-enrolment"


def secure_cookies() -> bool:
    return get_settings().public_base_url.lower().startswith("https://")


def cookie_name() -> str:
    return SECURE_COOKIE if secure_cookies() else PLAIN_COOKIE


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def idle_timeout() -> timedelta:
    return timedelta(minutes=get_settings().session_idle_minutes)


def absolute_lifetime() -> timedelta:
    return timedelta(hours=get_settings().session_absolute_hours)


@dataclass(frozen=True)
class Started:
    """A new session: its id, the cookie's secret (never stored), the CSRF token and when it ends at the latest."""

    id: uuid.UUID
    secret: str
    csrf_token: str
    expires_at: datetime
    restricted: str | None = None


def start(session: Session, user_id: uuid.UUID, *, method: str, mfa: bool = False, client_ip: str | None = None,
          user_agent: str | None = None, restricted: str | None = None, oidc_id_token: str | None = None,
          now: datetime | None = None) -> Started:
    """Start a session for a user who has just proved who they are (flushes, does not commit)."""
    now = now or clock.now()
    secret = "bs_" + secrets.token_urlsafe(32)
    row = WebSession(id=uuid.uuid4(), secret_hash=hash_secret(secret), user_id=user_id,
                     csrf_token=secrets.token_urlsafe(32), method=method, mfa=mfa, restricted=restricted,
                     created_at=now, last_seen_at=now, expires_at=now + absolute_lifetime(),
                     client_ip=(client_ip or None) and client_ip[:64],
                     user_agent=(user_agent or None) and user_agent[:300], oidc_id_token=oidc_id_token)
    session.add(row)
    session.flush()
    return Started(id=row.id, secret=secret, csrf_token=row.csrf_token, expires_at=row.expires_at,
                   restricted=restricted)


def set_cookie(response: Response, started: Started) -> None:
    """The session cookie: a browser-session cookie (no Max-Age: closing the browser forgets it; the server ends it
    anyway at the idle and absolute limits)."""
    response.set_cookie(cookie_name(), started.secret, path="/", httponly=True, secure=secure_cookies(),
                        samesite="lax")


def clear_cookie(response: Response) -> None:
    response.delete_cookie(cookie_name(), path="/", httponly=True, secure=secure_cookies(), samesite="lax")


def cookie_of(request: Request) -> str | None:
    return request.cookies.get(cookie_name()) or None


def end(session: Session, session_id: uuid.UUID, *, now: datetime | None = None) -> bool:
    """End one session. → whether it was still open."""
    result = session.execute(update(WebSession).where(WebSession.id == session_id, WebSession.revoked_at.is_(None))
                             .values(revoked_at=now or clock.now()).execution_options(synchronize_session=False))
    return result.rowcount > 0


def end_all(session: Session, user_id: uuid.UUID, *, except_id: uuid.UUID | None = None,
            now: datetime | None = None) -> int:
    """End every open session of a user (but ``except_id``). → how many were open."""
    stmt = update(WebSession).where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
    if except_id is not None:
        stmt = stmt.where(WebSession.id != except_id)
    result = session.execute(stmt.values(revoked_at=now or clock.now()).execution_options(synchronize_session=False))
    return result.rowcount


def open_sessions(session: Session, user_id: uuid.UUID, *, now: datetime | None = None) -> list[WebSession]:
    """A user's sessions that are neither ended nor expired, newest first."""
    now = now or clock.now()
    return list(session.scalars(
        select(WebSession).where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None),
                                 WebSession.expires_at > now, WebSession.last_seen_at > now - idle_timeout())
        .order_by(WebSession.created_at.desc())))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), given.encode())


# One query per request, on columns (like the token lookup in breitband/identity.py).
LOOKUP_SQL = (
    select(WebSession.id.label("session_id"), WebSession.csrf_token, WebSession.restricted, WebSession.mfa,
           WebSession.method, WebSession.expires_at, WebSession.revoked_at, WebSession.last_seen_at,
           User.id.label("user_id"), User.email, User.name, User.role, User.active, User.tenant_key,
           Organisation.id.label("organisation_id"), Organisation.kind, Organisation.name.label("organisation_name"),
           Tenant.updated_at.label("tenant_updated_at"), Tenant.data_changed_at.label("tenant_data_changed_at"))
    .join(User, User.id == WebSession.user_id)
    .join(Organisation, Organisation.id == User.organisation_id)
    .join(Tenant, Tenant.key == User.tenant_key)
)


@dataclass(frozen=True)
class Found:
    """A session looked up by its cookie: who it signs in (``principal``), its CSRF token and restriction, and
    whether last_seen_at is over a minute old (the caller writes it with ``touch``)."""

    principal: Principal
    csrf_token: str
    restricted: str | None
    expires_at: datetime
    stale: bool


class SessionRefused(Exception):
    """Why a cookie does not authenticate: ``detail`` for people, ``reason`` for programs (session-unknown,
    session-ended, session-expired, user-deactivated)."""

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason


def lookup(session: Session, secret: str, *, now: datetime | None = None) -> Found:
    """The open session for a cookie's secret, or SessionRefused. Reads only; ``Found.stale`` says that
    last_seen_at should be written (``touch``), which happens at most once a minute."""
    now = now or clock.now()
    row = session.execute(LOOKUP_SQL.where(WebSession.secret_hash == hash_secret(secret))).first()
    if row is None:
        raise SessionRefused("Your session is not known (any more); please sign in", "session-unknown")
    # Deactivation first: it also ends the sessions, and the person should learn why, not only that it ended.
    if not row.active:
        raise SessionRefused("The user is deactivated; ask your organisation's administrator", "user-deactivated")
    if row.revoked_at is not None:
        raise SessionRefused("Your session was ended (signed out, or signed out everywhere, or your account was "
                             "changed); please sign in again", "session-ended")
    if row.expires_at <= now or row.last_seen_at + idle_timeout() <= now:
        raise SessionRefused("Your session has expired; please sign in again", "session-expired")
    principal = Principal(user_id=row.user_id, email=row.email, name=row.name, role=Role(row.role),
                          tenant_key=row.tenant_key, organisation_id=row.organisation_id,
                          organisation_kind=OrgKind(row.kind), organisation_name=row.organisation_name,
                          tenant_stamp=(row.tenant_updated_at, row.tenant_data_changed_at), auth_method="session",
                          session_id=row.session_id)
    return Found(principal=principal, csrf_token=row.csrf_token, restricted=row.restricted,
                 expires_at=row.expires_at, stale=now - row.last_seen_at > SEEN_EVERY)


def touch(session: Session, session_id: uuid.UUID, *, now: datetime | None = None) -> None:
    """Note a request of the session (the idle timeout counts from here)."""
    session.execute(update(WebSession).where(WebSession.id == session_id)
                    .values(last_seen_at=now or clock.now()).execution_options(synchronize_session=False))
