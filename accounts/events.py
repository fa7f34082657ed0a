"""Security events: the record of sign-ins and their failures, lockouts, second-factor, password and role changes,
tokens and every administrative change — who (``actor_id``), to whom (``user_id``, or the address as typed for a
failed sign-in), when, from where (client address and user agent) and what (``detail``: before/after).

``record`` writes the row and, in the same transaction, an outbox event ``security.<kind>`` (notifications.outbox),
so that the operating office's webhooks and the tenant admins' feed get it; the audience of these events is the
operating office only (registered below), never an e-mail. Secrets never go into ``detail``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from accounts.models import SecurityEvent
from breitband import clock
from breitband.dates import iso
from breitband.errors import UnprocessableEntity
from breitband.identity import Principal
from notifications.models import Event
from notifications.outbox import Recipient, record_event, register_audience

KINDS = ("sign-in", "sign-in-failed", "lockout", "sign-out", "session-ended", "password-set",
         "password-reset-requested", "totp-enabled", "totp-disabled", "role-changed", "user-invited", "user-created",
         "user-changed", "user-deactivated", "user-reactivated", "token-created", "token-revoked", "oidc-sign-in",
         "oidc-failed", "user-provisioned", "organisation-created", "organisation-changed")
EVENT_PREFIX = "security."


@dataclass(frozen=True)
class Origin:
    """Where a change came from: the client address (as breitband/limits.py computes it, behind trusted proxies)
    and the user agent; the command line is ``Origin.cli()``."""

    client_ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def of(cls, request: Request) -> Origin:
        limits = getattr(request.app.state, "limits", None)
        ip = limits.client(request.scope) if limits is not None else getattr(request.client, "host", None)
        return cls(client_ip=(ip or None) and str(ip)[:64],
                   user_agent=(request.headers.get("user-agent") or None) and request.headers["user-agent"][:300])

    @classmethod
    def cli(cls) -> Origin:
        return cls(client_ip=None, user_agent="breitband CLI")


def record(session: Session, kind: str, tenant_key: str, origin: Origin, *, user_id: uuid.UUID | None = None,
           actor_id: uuid.UUID | None = None, email: str | None = None, detail: dict[str, Any] | None = None,
           now: datetime | None = None) -> SecurityEvent:
    """Add a security event and its outbox event to the caller's transaction (flushes, does not commit)."""
    if kind not in KINDS:
        raise ValueError(f"unknown security event kind {kind!r}")
    now = now or clock.now()
    row = SecurityEvent(tenant_key=tenant_key, at=now, kind=kind, user_id=user_id, actor_id=actor_id,
                        email=(email or None) and email.strip().lower()[:320], client_ip=origin.client_ip,
                        user_agent=origin.user_agent, detail=detail or {})
    session.add(row)
    session.flush()
    record_event(session, tenant_key=tenant_key, type=EVENT_PREFIX + kind, payload=event_payload(row),
                 created_at=now)
    return row


def record_by(session: Session, kind: str, principal: Principal, origin: Origin, *,
              user_id: uuid.UUID | None = None, detail: dict[str, Any] | None = None) -> SecurityEvent:
    """A change made by a signed-in person (the actor); ``user_id`` is whom it concerns (default: the actor)."""
    return record(session, kind, principal.tenant_key, origin, user_id=user_id or principal.user_id,
                  actor_id=principal.user_id, detail=detail)


def event_payload(row: SecurityEvent) -> dict[str, Any]:
    return {"security_event_id": row.id, "kind": row.kind, "at": iso(row.at),
            "user_id": str(row.user_id) if row.user_id else None,
            "actor_id": str(row.actor_id) if row.actor_id else None, "email": row.email,
            "client_ip": row.client_ip, "user_agent": row.user_agent, "detail": row.detail}


def listing(session: Session, tenant_key: str, *, kind: str | list[str] | None = None,
            user_id: uuid.UUID | None = None, since: datetime | None = None, until: datetime | None = None,
            before_id: int | None = None, limit: int = 100) -> list[SecurityEvent]:
    """A tenant's security events, newest first (by id: the order they were recorded); ``kind``: one or several;
    ``user_id``: events about or done by that user; ``since`` inclusive, ``until`` exclusive; ``before_id`` pages on
    (keyset)."""
    kinds = [kind] if isinstance(kind, str) else list(kind or [])
    for k in kinds:
        if k not in KINDS:
            raise UnprocessableEntity(f"Unknown kind {k!r}; one of " + ", ".join(KINDS), type="invalid-parameter",
                                      field="kind")
    if not 1 <= limit <= 500:
        raise UnprocessableEntity("limit must lie between 1 and 500", type="invalid-parameter", field="limit")
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise UnprocessableEntity(f"{name} needs a time zone offset, e.g. 2026-01-15T10:00:00+01:00 or …Z",
                                      type="invalid-parameter", field=name)
    if since is not None and until is not None and since > until:
        raise UnprocessableEntity("since lies after until", type="invalid-parameter", field="since")
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
    return list(session.scalars(stmt.order_by(SecurityEvent.id.desc()).limit(limit)))


def event_out(row: SecurityEvent) -> dict[str, Any]:
    """An event as the tenant admins' list shows it."""
    return {"id": row.id, "at": iso(row.at), "kind": row.kind,
            "user_id": str(row.user_id) if row.user_id else None,
            "actor_id": str(row.actor_id) if row.actor_id else None, "email": row.email,
            "client_ip": row.client_ip, "user_agent": row.user_agent, "detail": row.detail or {}}


def page(session: Session, tenant_key: str, *, limit: int = 100, **filters: Any) -> dict[str, Any]:
    """One page of ``listing``: ``{"items", "next_before_id"}`` — pass ``next_before_id`` as ``before_id`` for the
    next (older) page; None when this page is the last."""
    if not 1 <= limit <= 500:
        raise UnprocessableEntity("limit must lie between 1 and 500", type="invalid-parameter", field="limit")
    rows = listing(session, tenant_key, limit=min(limit + 1, 500), **filters)
    more = len(rows) > limit or (limit == 500 and len(rows) == 500 and bool(
        listing(session, tenant_key, limit=1, **{**filters, "before_id": rows[-1].id})))
    rows = rows[:limit]
    return {"items": [event_out(r) for r in rows], "next_before_id": rows[-1].id if more and rows else None}


def audience(_session: Session, ev: Event) -> list[Recipient] | None:
    """Security events are for the operating office: its webhooks and the tenant admins' feed get every event of
    the tenant anyway (notifications.outbox), so no organisation is added and nobody is e-mailed."""
    if not ev.type.startswith(EVENT_PREFIX):
        return None
    return []


register_audience(audience)
