"""Security events: the audit trail of sign-in and administration.

``record`` writes two things in the caller's transaction, so both exist exactly when the change they describe does:

- a ``security_events`` row (who, whom, what, when, from which address and browser, ``detail``: what changed, as
  before/after where there is one) — what tenant admins list with ``GET /api/v1/admin/security-events``;
- an outbox event of type ``security.<kind>`` (``notifications.outbox.record_event``), published to the webhooks
  and feed of the tenant's operating office (``accounts.audience``), so a tenant can feed its own SIEM.

Failures of people who are not signed in (a wrong password, an unknown address) are recorded too; ``email`` keeps
the address as it was typed for those.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from accounts.models import SecurityEvent
from breitband import clock, dates
from breitband.errors import UnprocessableEntity
from notifications.outbox import record_event

KINDS = frozenset({
    "sign-in", "sign-in-failed", "lockout", "sign-out", "session-ended", "password-set", "password-reset-requested",
    "user-changed",
    "totp-enabled", "totp-disabled", "role-changed", "user-invited", "user-created", "user-deactivated",
    "user-reactivated", "token-created", "token-revoked", "oidc-sign-in", "oidc-failed", "user-provisioned",
    "organisation-created", "organisation-changed",
})
EVENT_PREFIX = "security."
MAX_LIMIT = 500


@dataclass(frozen=True)
class Client:
    """Where a request came from: the address as the rate limits see it (behind trusted proxies: the forwarded
    one) and the browser or program it names."""

    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def of(cls, request: Request) -> Client:
        limits = getattr(request.app.state, "limits", None)
        ip = limits.client(request.scope) if limits is not None else (request.client.host if request.client
                                                                       else None)
        return cls(ip=(ip or None) and ip[:64], user_agent=(request.headers.get("user-agent") or None)
                   and request.headers["user-agent"][:300])

    @classmethod
    def cli(cls) -> Client:
        return COMMAND_LINE

    @property
    def client_ip(self) -> str | None:
        return self.ip


COMMAND_LINE = Client(ip=None, user_agent="breitband command line")
# The name accounts/admin.py and accounts/links.py (branch admin) use for the same thing (to be unified on merge).
Origin = Client


def record(session: Session, kind: str, tenant_key: str, origin: Client | None = None, *,
           user_id: uuid.UUID | None = None, actor_id: uuid.UUID | None = None, email: str | None = None,
           request: Request | None = None, client: Client | None = None, detail: dict[str, Any] | None = None,
           at: datetime | None = None, now: datetime | None = None) -> SecurityEvent:
    """Record a security event of ``kind`` (one of ``KINDS``) in the caller's transaction (flushed, not committed).
    ``user_id``: whom it is about; ``actor_id``: who did it (themselves, an admin, None for the command line or an
    unknown caller); ``request`` or ``client``: from where."""
    if kind not in KINDS:
        raise ValueError(f"unknown security event kind {kind!r}")
    where = origin or client or (Client.of(request) if request is not None else Client())
    at = at or now or clock.now()
    row = SecurityEvent(tenant_key=tenant_key, at=at, kind=kind, user_id=user_id, actor_id=actor_id,
                        email=(email or None) and email[:320], client_ip=where.ip, user_agent=where.user_agent,
                        detail=detail or {})
    session.add(row)
    session.flush()
    record_event(session, tenant_key=tenant_key, type=EVENT_PREFIX + kind, payload=event_out(row), created_at=at)
    return row


def event_out(row: SecurityEvent) -> dict[str, Any]:
    """The public shape of a security event (the admin list and the outbox payload)."""
    return {"id": row.id, "at": dates.iso(row.at), "kind": row.kind,
            "user_id": str(row.user_id) if row.user_id else None,
            "actor_id": str(row.actor_id) if row.actor_id else None, "email": row.email,
            "client_ip": row.client_ip, "user_agent": row.user_agent, "detail": row.detail or {}}


# --- the tenant admins' list ----------------------------------------------------------------------------------

def query(tenant_key: str, *, kinds: list[str] | None = None, user_id: uuid.UUID | None = None,
          since: datetime | None = None, until: datetime | None = None,
          before_id: int | None = None) -> Select[tuple[SecurityEvent]]:
    """A tenant's events, newest first (by id: the order they were recorded), filtered."""
    for kind in kinds or ():
        if kind not in KINDS:
            raise UnprocessableEntity(f"Unknown security event kind {kind!r}; one of {', '.join(sorted(KINDS))}",
                                      type="invalid-event-kind", field="kind")
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise UnprocessableEntity(f"{name} needs a time zone offset, e.g. 2026-01-15T10:00:00+01:00 or …Z",
                                      type="invalid-time", field=name)
    if since is not None and until is not None and since > until:
        raise UnprocessableEntity("since lies after until", type="invalid-time-range", field="since")
    stmt = select(SecurityEvent).where(SecurityEvent.tenant_key == tenant_key)
    if kinds:
        stmt = stmt.where(SecurityEvent.kind.in_(kinds))
    if user_id is not None:
        stmt = stmt.where((SecurityEvent.user_id == user_id) | (SecurityEvent.actor_id == user_id))
    if since is not None:
        stmt = stmt.where(SecurityEvent.at >= since)
    if until is not None:
        stmt = stmt.where(SecurityEvent.at < until)
    if before_id is not None:
        stmt = stmt.where(SecurityEvent.id < before_id)
    return stmt.order_by(SecurityEvent.id.desc())


def page(session: Session, tenant_key: str, *, limit: int = 100, **filters: Any) -> dict[str, Any]:
    """One page: ``{"items": [...], "next_before_id": id or None}`` — pass ``next_before_id`` as ``before_id`` for
    the next (older) page; None when this was the last."""
    if not 1 <= limit <= MAX_LIMIT:
        raise UnprocessableEntity(f"limit must be between 1 and {MAX_LIMIT}", type="invalid-limit", field="limit")
    rows = list(session.scalars(query(tenant_key, **filters).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [event_out(r) for r in rows], "next_before_id": rows[-1].id if more else None}


def record_by(session: Session, kind: str, principal: Any, origin: Client, *, user_id: uuid.UUID | None = None,
              detail: dict[str, Any] | None = None) -> SecurityEvent:
    """A change made by a signed-in person (the actor); ``user_id`` is whom it concerns (default: the actor)."""
    return record(session, kind, principal.tenant_key, origin, user_id=user_id or principal.user_id,
                  actor_id=principal.user_id, detail=detail)
