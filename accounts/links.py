"""Invitation and password-reset links: how a person gets a (first or new) password without anyone else knowing it.

* A link carries a random secret (``bb_`` + 32 random bytes, URL-safe); ``account_links`` keeps only its SHA-256, so
  a dump of the table opens no account. The secret shares the prefix of the API tokens on purpose: the log scrubbing
  (breitband/logging.py) masks ``bb_…`` wherever it appears, e.g. in the path ``/api/v1/auth/links/<secret>`` of an
  access log line. The e-mailed URL is ``{public_base_url}/#/link/<secret>``: a fragment, never sent to a server.
* A link works once, for ``account_link_hours`` (24 by default). Sending a new link of the same purpose ends the
  user's older unused ones; using a link ends all the user's other open links.
* A reset is asked for by address, without signing in: the answer is the same whether or not the address has an
  active account (202), and an address gets at most one reset e-mail per ``RESET_EVERY`` (5 minutes).
* Using a link sets the password (the policy of accounts/passwords.py), ends every session of the user and records
  ``password-set``. When the user has a second factor, the code is needed too (a mailbox alone does not open an
  account with a second factor).
* The e-mail goes through the notification machinery (notifications/delivery.py): a delivery with a template of its
  own (``email/account.invitation.txt.j2`` / ``email/account.reset.txt.j2`` of the tenant's templates), retried by the
  worker and written to the delivery log like every notice. Its event is private: it is stored as published, so the
  relay never puts it into a feed or a webhook (the link must reach the person only). The link is in the delivery's
  context (so that a retry sends the same link), like the contact confirmations' links (notifications/contacts.py).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from accounts import local, totp
from accounts.events import Origin, record
from accounts.models import AccountLink, LinkPurpose
from breitband import clock, identity
from breitband.errors import Forbidden, NotFound, ProblemError, Unauthorized
from breitband.logging import request_id_var
from breitband.models import Organisation, Role, Tenant, User
from breitband.settings import get_settings
from notifications.models import Channel, Delivery, DeliveryStatus, Event
from notifications.outbox import DELIVER_TASK, send_after_commit

TOKEN_PREFIX = identity.TOKEN_PREFIX
RESET_EVERY = timedelta(minutes=5)
# The private event of each e-mail (type, and the recipient's template under email/).
MAIL = {LinkPurpose.invitation.value: "account.invitation", LinkPurpose.reset.value: "account.reset"}
ROLE_NAMES = {   # (German, English), for the e-mails
    Role.operator_member: ("Mitarbeiter/in eines Netzbetreibers", "operator member"),
    Role.operator_admin: ("Administrator/in eines Netzbetreibers", "operator administrator"),
    Role.authority_reviewer: ("Prüfer/in einer Behörde", "authority reviewer"),
    Role.authority_admin: ("Administrator/in einer Behörde", "authority administrator"),
    Role.tenant_admin: ("Administrator/in der Servicestelle", "operating office administrator"),
}


class LinkExpired(ProblemError):
    status, type, title = 410, "link-expired", "Link expired"


class LinkUsed(ProblemError):
    status, type, title = 410, "link-used", "Link already used"


def lifetime() -> timedelta:
    return timedelta(hours=get_settings().account_link_hours)


def url(secret: str) -> str:
    return f"{get_settings().public_base_url.rstrip('/')}/#/link/{secret}"


# --- issuing ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Issued:
    link: AccountLink
    secret: str                 # in the e-mail only; never stored, never logged


def issue(session: Session, user: User, purpose: LinkPurpose, *, created_by: uuid.UUID | None,
          now: datetime) -> Issued:
    """A new link for ``user``; the user's older unused links of the same purpose die (they expire now)."""
    session.execute(update(AccountLink).where(
        AccountLink.user_id == user.id, AccountLink.purpose == purpose.value, AccountLink.used_at.is_(None),
        AccountLink.expires_at > now).values(expires_at=now).execution_options(synchronize_session=False))
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    link = AccountLink(id=uuid.uuid4(), token_hash=identity.hash_token(secret), user_id=user.id,
                       purpose=purpose.value, created_at=now, expires_at=now + lifetime(), created_by=created_by)
    session.add(link)
    session.flush()
    return Issued(link, secret)


def send(session: Session, user: User, issued: Issued, context: dict[str, Any], now: datetime) -> Delivery:
    """E-mail the link to the user: a private event (stored as published: no feed, no webhook) and its e-mail
    delivery, handed to the worker after the commit (beat's ``notifications.dispatch_due`` if that message is lost)."""
    purpose = issued.link.purpose
    org = session.get(Organisation, user.organisation_id)
    tenant = session.get(Tenant, user.tenant_key)
    german, english = ROLE_NAMES[Role(user.role)]
    event = Event(id=uuid.uuid4(), tenant_key=user.tenant_key, type=MAIL[purpose], created_at=now, published_at=now,
                  request_id=request_id_var.get(),
                  payload={"user_id": str(user.id), "link_id": str(issued.link.id), "purpose": purpose})
    session.add(event)
    session.flush()
    delivery = Delivery(
        id=uuid.uuid4(), tenant_key=user.tenant_key, event_id=event.id, event_type=event.type,
        channel=Channel.email.value, target=user.email, organisation_id=user.organisation_id,
        status=DeliveryStatus.pending.value, attempts=0, next_attempt_at=now, enqueued_at=now, created_at=now,
        updated_at=now, context={
            "template": MAIL[purpose], "link": url(issued.secret), "expires_at": issued.link.expires_at.isoformat(),
            "name": user.name, "email": user.email, "organisation_name": org.name, "organisation_kind": org.kind,
            "role": user.role, "role_de": german, "role_en": english, "tenant_name": tenant.name, **context})
    session.add(delivery)
    session.flush()
    send_after_commit(session, DELIVER_TASK, [str(delivery.id)])
    return delivery


def invite(session: Session, user: User, actor: User | None, origin: Origin, *, resent: bool = False,
           now: datetime | None = None) -> Issued:
    """Send ``user`` an invitation link (a new one ends the older ones) and record ``user-invited``: the caller
    created the user, or sends the invitation again."""
    now = now or clock.now()
    issued = issue(session, user, LinkPurpose.invitation, created_by=actor.id if actor else None, now=now)
    send(session, user, issued, {"invited_by": actor.name if actor else None}, now)
    record(session, "user-invited", user.tenant_key, origin, user_id=user.id, actor_id=actor.id if actor else None,
           email=user.email, now=now,
           detail={"resent": resent, "link_id": str(issued.link.id), "expires_at": issued.link.expires_at.isoformat(),
                   "after": {"email": user.email, "name": user.name, "role": user.role,
                             "organisation_id": str(user.organisation_id)}})
    return issued


def request_reset(session: Session, tenant_key: str, email: str, origin: Origin, *,
                  now: datetime | None = None) -> Issued | None:
    """Send a reset link to an active user's address. Nothing is sent (and nothing tells so: the caller answers 202
    either way) for an unknown or deactivated address, or when the address got one within RESET_EVERY; every
    request is recorded as ``password-reset-requested`` with ``sent`` and why not. → the link when one was sent."""
    now = now or clock.now()
    identity.get_tenant(session, tenant_key)
    user = session.scalar(select(User).where(User.tenant_key == tenant_key, User.email == email.strip().lower())
                          .with_for_update())
    if user is None or not user.active:
        # recorded for the tenant admins (someone probing addresses shows up), answered like any other request
        record(session, "password-reset-requested", tenant_key, origin, user_id=user.id if user else None,
               email=email, now=now,
               detail={"sent": False, "reason": "unknown-address" if user is None else "user-deactivated"})
        return None
    last = session.scalar(select(func.max(AccountLink.created_at)).where(
        AccountLink.user_id == user.id, AccountLink.purpose == LinkPurpose.reset.value))
    if last is not None and now - last < RESET_EVERY:
        record(session, "password-reset-requested", tenant_key, origin, user_id=user.id, email=email, now=now,
               detail={"sent": False, "reason": f"one e-mail per {int(RESET_EVERY.total_seconds() // 60)} minutes"})
        return None
    issued = issue(session, user, LinkPurpose.reset, created_by=None, now=now)
    send(session, user, issued, {}, now)
    record(session, "password-reset-requested", tenant_key, origin, user_id=user.id, email=email, now=now,
           detail={"sent": True, "link_id": str(issued.link.id), "expires_at": issued.link.expires_at.isoformat()})
    return issued


# --- using ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LinkView:
    purpose: str
    email: str
    name: str
    expires_at: datetime
    totp_required: bool        # the user has a second factor: the code is needed to use the link


def _find(session: Session, secret: str, now: datetime, *, lock: bool = False) -> tuple[AccountLink, User]:
    stmt = select(AccountLink).where(AccountLink.token_hash == identity.hash_token(secret))
    link = session.scalar(stmt.with_for_update() if lock else stmt)
    if link is None:
        raise NotFound("This link is not known; copy the whole link from the e-mail, or ask for a new one",
                       type="link-unknown")
    if link.used_at is not None:
        raise LinkUsed("This link was used already; sign in with your password, or ask for a new link "
                       "(\"Passwort vergessen?\" / \"Forgot password?\")")
    if link.expires_at <= now:
        raise LinkExpired("This link has expired or a newer one was sent; "
                          + ("ask your administrator to send the invitation again"
                             if link.purpose == LinkPurpose.invitation.value else
                             "ask for a new one (\"Passwort vergessen?\" / \"Forgot password?\")"))
    user_stmt = select(User).where(User.id == link.user_id)
    user = session.scalar(user_stmt.with_for_update() if lock else user_stmt)
    if not user.active:
        raise Forbidden("The user is deactivated; ask your organisation's administrator or the operating office",
                        type="user-deactivated")
    return link, user


def inspect(session: Session, secret: str, *, now: datetime | None = None) -> LinkView:
    """What a link is for (the web app shows it before asking for the password); uses nothing up."""
    link, user = _find(session, secret, now or clock.now())
    return LinkView(purpose=link.purpose, email=user.email, name=user.name, expires_at=link.expires_at,
                    totp_required=user.totp_enabled_at is not None)


def _second_factor(user: User, code: str | None, now: datetime) -> None:
    if user.totp_enabled_at is None or not user.totp_secret:
        return
    if not (code or "").strip():
        raise Unauthorized("Your account has a second factor: enter the code from your authenticator app "
                           "(totp_code)", type="totp-required")
    step = totp.matching_step(user.totp_secret, totp.normalise_code(code), at=now, last_step=user.totp_last_step)
    if step is None:
        raise Unauthorized("The code from the authenticator app is wrong or was used already; wait for the next one",
                           type="totp-invalid")
    user.totp_last_step = step


def redeem(session: Session, secret: str, password: str, origin: Origin, *, totp_code: str | None = None,
           now: datetime | None = None) -> User:
    """Set the password with a link: the link is used up (with every other open link of the user), the user's
    sessions end, ``password-set`` is recorded. → the user, for the caller to start a session (method "link")."""
    now = now or clock.now()
    link, user = _find(session, secret, now, lock=True)
    _second_factor(user, totp_code, now)
    link.used_at = now
    session.execute(update(AccountLink).where(
        AccountLink.user_id == user.id, AccountLink.id != link.id, AccountLink.used_at.is_(None),
        AccountLink.expires_at > now).values(expires_at=now).execution_options(synchronize_session=False))
    local.set_password(session, user, password, actor_id=user.id, client=origin, how=link.purpose, now=now)
    session.flush()
    return user
