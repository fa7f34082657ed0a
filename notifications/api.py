"""Notification endpoints: the event feed and webhook subscriptions with their delivery log.

* ``GET /api/v1/events?after=CURSOR`` (any role): the events the caller's organisation may see, in publication
  order; tenant admins see every event of their tenant. Poll with the ``next_cursor`` of the last page.
* ``/api/v1/webhooks`` (operator members, authority admins, tenant admins): subscriptions of the caller's
  organisation; another organisation's subscription is 404.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import StringConstraints
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from breitband import clock, limits
from breitband.auth import require
from breitband.dates import iso
from breitband.db import get_read_session, write_session
from breitband.errors import NotFound, UnprocessableEntity
from breitband.identity import Principal
from breitband.models import OPERATOR_ROLES, Role
from notifications import delivery as deliveries
from notifications import outbox, webhooks
from notifications.models import Delivery, DeliveryStatus, Event, FeedEntry, WebhookSubscription
from notifications.schemas import (
    DeliveryOut,
    DeliveryPage,
    EventPage,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookPatch,
)

router = APIRouter(prefix="/api/v1", tags=["notifications"])

ANYONE = require()
# An event type is "<subject>.<what happened>" in lower case (case.decided, statement.requested).
EVENT_TYPE_PATTERN = r"^[a-z][a-z_]*\.[a-z][a-z_.]*$"
ORG_ADMIN = require(*OPERATOR_ROLES, Role.authority_admin, Role.tenant_admin)


# --- feed ---------------------------------------------------------------------------------------------------------

@router.get("/events", response_model=EventPage,
            summary="Event feed for polling clients: the events the caller may see, after a cursor (any role)")
def events(after: str | None = Query(None, description="next_cursor of the previous page; omit to start at the "
                                                        "beginning"),
           limit: int = Query(100, ge=1, le=1000),
           type: list[Annotated[str, StringConstraints(pattern=EVENT_TYPE_PATTERN, max_length=64)]] | None = Query(
               None, description="only these event types, e.g. case.decided (repeat the parameter for several)"),
           principal: Principal = Depends(ANYONE), session: Session = Depends(get_read_session)) -> dict[str, Any]:
    try:
        cursor = int(after) if after not in (None, "") else 0
        if not 0 <= cursor < 2**63:
            raise ValueError
    except ValueError:
        raise UnprocessableEntity("after: not a cursor of this feed (use next_cursor from a previous page)",
                                  type="invalid-cursor", field="after") from None
    stmt = select(FeedEntry.position, FeedEntry.published_at, Event).join(Event, Event.id == FeedEntry.event_id)
    if principal.is_tenant_admin:
        stmt = stmt.where(FeedEntry.tenant_key == principal.tenant_key, FeedEntry.organisation_id.is_(None))
    else:
        stmt = stmt.where(FeedEntry.organisation_id == principal.organisation_id)
    if type:
        stmt = stmt.where(Event.type.in_(webhooks.check_types(type, field="type")))
    rows = session.execute(stmt.where(FeedEntry.position > cursor).order_by(FeedEntry.position)
                           .limit(limit + 1)).all()
    items = [{**outbox.event_dict(ev), "cursor": str(pos), "published_at": iso(published)}
             for pos, published, ev in rows[:limit]]
    return {"items": items, "next_cursor": items[-1]["cursor"] if items else str(cursor),
            "has_more": len(rows) > limit}


# --- webhooks -----------------------------------------------------------------------------------------------------

def webhook_out(sub: WebhookSubscription, stats: dict[str, int] | None = None) -> dict[str, Any]:
    return {"id": str(sub.id), "organisation_id": str(sub.organisation_id), "url": sub.url,
            "event_types": sub.event_types or [], "description": sub.description, "active": sub.active,
            "created_at": iso(sub.created_at), "updated_at": iso(sub.updated_at),
            "deliveries": stats or {}}


def _stats(session: Session, sub_id: uuid.UUID) -> dict[str, int]:
    rows = session.execute(select(Delivery.status, func.count()).where(Delivery.subscription_id == sub_id)
                           .group_by(Delivery.status)).all()
    return {status: n for status, n in rows}


@router.post("/webhooks", status_code=201, response_model=WebhookCreated,
             summary="Subscribe the caller's organisation to events; the signing secret is shown once")
def create_webhook(data: WebhookCreate, response: Response, principal: Principal = Depends(ORG_ADMIN),
                   session: Session = write_session, now: datetime = Depends(clock.now)) -> dict[str, Any]:
    sub = webhooks.create(session, principal, data.url, data.event_types, data.description, data.active, now)
    response.headers["Location"] = f"/api/v1/webhooks/{sub.id}"
    return {**webhook_out(sub), "secret": sub.secret}


@router.get("/webhooks", response_model=list[WebhookOut], summary="The caller's organisation's webhooks")
def list_webhooks(principal: Principal = Depends(ORG_ADMIN),
                  session: Session = Depends(get_read_session)) -> list[dict[str, Any]]:
    subs = session.scalars(webhooks.readable(principal).order_by(WebhookSubscription.created_at))
    return [webhook_out(s, _stats(session, s.id)) for s in subs]


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut, summary="One webhook subscription")
def get_webhook(webhook_id: uuid.UUID, principal: Principal = Depends(ORG_ADMIN),
                session: Session = Depends(get_read_session)) -> dict[str, Any]:
    sub = webhooks.get(session, principal, webhook_id)
    return webhook_out(sub, _stats(session, sub.id))


@router.patch("/webhooks/{webhook_id}", response_model=WebhookOut,
              summary="Change URL, event types, description or active (JSON merge patch)")
def patch_webhook(webhook_id: uuid.UUID, data: WebhookPatch, principal: Principal = Depends(ORG_ADMIN),
                  session: Session = write_session, now: datetime = Depends(clock.now)) -> dict[str, Any]:
    sub = webhooks.get(session, principal, webhook_id, for_update=True)
    webhooks.update(session, sub, data.model_dump(exclude_unset=True), now)
    return webhook_out(sub, _stats(session, sub.id))


@router.post("/webhooks/{webhook_id}/rotate-secret", response_model=WebhookCreated,
             summary="Issue a new signing secret (shown once); the old one stops working at once")
def rotate_webhook_secret(webhook_id: uuid.UUID, principal: Principal = Depends(ORG_ADMIN),
                          session: Session = write_session, now: datetime = Depends(clock.now)) -> dict[str, Any]:
    sub = webhooks.get(session, principal, webhook_id, for_update=True)
    webhooks.rotate_secret(session, sub, now)
    return {**webhook_out(sub), "secret": sub.secret}


@router.delete("/webhooks/{webhook_id}", status_code=204, summary="Delete a subscription (nothing is sent any more)")
def delete_webhook(webhook_id: uuid.UUID, principal: Principal = Depends(ORG_ADMIN),
                   session: Session = write_session, now: datetime = Depends(clock.now)) -> Response:
    webhooks.delete(session, webhooks.get(session, principal, webhook_id, for_update=True), now)
    return Response(status_code=204)


def delivery_out(d: Delivery, attempts: list) -> dict[str, Any]:
    return {"id": str(d.id), "event_id": str(d.event_id), "event_type": d.event_type, "status": d.status,
            "attempts": d.attempts, "created_at": iso(d.created_at), "next_attempt_at":
                iso(d.next_attempt_at) if d.status in (DeliveryStatus.pending.value, DeliveryStatus.retrying.value)
                else None,
            "delivered_at": iso(d.delivered_at), "last_error": deliveries.error_class(d.last_error),
            # Status, timing and an error class only: never a response body or an exception's text (older rows
            # may still hold them; they are not shown).
            "log": [{"number": a.number, "started_at": iso(a.started_at), "finished_at": iso(a.finished_at),
                     "duration_ms": deliveries.duration_ms(a), "ok": a.ok, "response_status": a.response_status,
                     "error": deliveries.error_class(a.error)} for a in attempts]}


@router.get("/webhooks/{webhook_id}/deliveries", response_model=DeliveryPage,
            summary="The delivery log of a subscription, newest first, with every try")
def webhook_deliveries(webhook_id: uuid.UUID, status: list[DeliveryStatus] | None = Query(None),
                       event_id: uuid.UUID | None = None, limit: int = Query(50, ge=1, le=200),
                       offset: int = Query(0, ge=0, le=1_000_000), principal: Principal = Depends(ORG_ADMIN),
                       session: Session = Depends(get_read_session)) -> dict[str, Any]:
    sub = webhooks.get(session, principal, webhook_id)
    stmt = select(Delivery).where(Delivery.subscription_id == sub.id)
    if status:
        stmt = stmt.where(Delivery.status.in_([s.value for s in status]))
    if event_id:
        stmt = stmt.where(Delivery.event_id == event_id)
    rows = list(session.scalars(stmt.order_by(Delivery.created_at.desc(), Delivery.id).limit(limit + 1)
                                .offset(offset)))
    attempts = deliveries.attempts_of(session, [d.id for d in rows[:limit]])
    return {"items": [delivery_out(d, attempts[d.id]) for d in rows[:limit]], "limit": limit, "offset": offset,
            "has_more": len(rows) > limit}


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202, response_model=DeliveryOut,
             summary="Send a delivery again now (whatever its status), e.g. after fixing the receiver")
def redeliver(request: Request, webhook_id: uuid.UUID, delivery_id: uuid.UUID,
              principal: Principal = Depends(ORG_ADMIN), session: Session = write_session,
              now: datetime = Depends(clock.now)) -> dict[str, Any]:
    limits.check_token_rate(request, "redeliver", principal.token_id or principal.user_id)  # 429 over the limit
    sub = webhooks.get(session, principal, webhook_id)
    d = session.scalars(select(Delivery).where(Delivery.id == delivery_id, Delivery.subscription_id == sub.id)
                        .with_for_update()).first()
    if d is None:
        raise NotFound(f"No delivery {delivery_id}", type="delivery-not-found")
    deliveries.redeliver(session, d, now)
    outbox.send_after_commit(session, outbox.DELIVER_TASK, [str(d.id)])
    return delivery_out(d, deliveries.attempts_of(session, [d.id])[d.id])
