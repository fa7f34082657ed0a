"""Delivering one notification (an e-mail or a webhook call) exactly once per event and target, through failures.

Each try has three steps, and no database transaction is open during the network I/O (``deliver`` runs them and owns
the two transactions; ``claim`` and ``record`` only execute their statements):

1. ``claim`` (short transaction): the delivery is taken if it is due (``pending``/``retrying`` and
   ``next_attempt_at`` passed) or if a worker that held it died (``sending`` with an expired lease). It becomes
   ``sending`` with a lease. A second message for the same delivery (a redelivered task under ``acks_late``, the
   beat backstop) finds it taken or delivered and does nothing.
2. the e-mail is handed to the SMTP server or the webhook is POSTed by the channel's sender (``SENDERS``:
   ``notifications.email`` / ``.webhooks``, which share ``Job`` and ``Outcome`` with this module through
   ``notifications.jobs``);
3. ``record`` (short transaction): the attempt goes into the delivery log (for a webhook only the HTTP status, the
   time the try took and an error class of ``ERROR_CLASSES``: never the receiver's answer or an exception's text,
   which would make the log a tool to read and map what answers at an address); the delivery becomes ``delivered``, or
   ``retrying`` with the next try after an exponential backoff (base, 2×base, 4×base, ... capped), or ``failed``
   once the retry window (24 h by default) has passed since the event.

A worker killed between 2 and 3 leaves the delivery ``sending`` until the lease expires; it is then sent again with
the same Message-ID / event id, so receivers can still dedupe (the only window for a repeat is that instant).

Every "now" (due, lease, back-off, the retry window, the log's timing) is ``breitband.clock.now()``, so tests move
time instead of waiting.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from breitband import clock
from breitband.db import Database
from breitband.errors import Conflict
from breitband.settings import Settings, get_settings
from notifications.email import send_email
from notifications.jobs import Job, Outcome
from notifications.models import Channel, Delivery, DeliveryAttempt, DeliveryStatus, Event, WebhookSubscription
from notifications.outbox import DELIVER_TASK, event_dict, send_task
from notifications.webhooks import post_webhook

log = logging.getLogger("notifications.delivery")

DUE_STATUSES = (DeliveryStatus.pending.value, DeliveryStatus.retrying.value)

# What a failed webhook try records and the delivery log shows, instead of any text from the receiver or the network.
ERROR_CLASSES = {
    "http-error": "the receiver answered with a status other than 2xx (see response_status)",
    "timeout": "no connection or no answer within BREITBAND_WEBHOOK_TIMEOUT_S",
    "connection-refused": "the receiver's address refused the connection",
    "connection-error": "the connection failed or broke off (unreachable, reset)",
    "tls-error": "TLS handshake or certificate check failed",
    "protocol-error": "the answer was not valid HTTP",
    "dns-error": "the host name did not resolve",
    "blocked-address": "the host is, or now resolves to, an address webhooks may not reach",
    "subscription-deleted": "the subscription was deleted; nothing is sent any more",
    "internal-error": "the try failed inside the service",
}


# Who sends a try of each channel.
SENDERS: dict[str, Callable[[Job, Settings], Outcome]] = {
    Channel.email.value: send_email,
    Channel.webhook.value: post_webhook,
}


def backoff(attempts: int, settings: Settings) -> float:
    """Seconds to wait after the ``attempts``-th failed try: base × 2^(attempts-1), at most max_delay."""
    return min(settings.notify_retry_base_s * (2 ** max(attempts - 1, 0)), settings.notify_retry_max_delay_s)


def claim(session: Session, delivery_id: uuid.UUID, now: datetime, settings: Settings) -> Job | None:
    """Take the delivery for one try if it is due (or its holder's lease expired). → the job, or None when it is
    not to be sent now. The caller commits (the lease must be visible before anything is sent)."""
    stmt = (update(Delivery).where(
        Delivery.id == delivery_id,
        or_((Delivery.status.in_(DUE_STATUSES)) & (Delivery.next_attempt_at <= now),
            (Delivery.status == DeliveryStatus.sending.value) & (Delivery.lease_until < now)))
        .values(status=DeliveryStatus.sending.value, attempts=Delivery.attempts + 1, updated_at=now,
                lease_until=now + timedelta(seconds=settings.notify_lease_s))
        .returning(Delivery.id))
    if session.execute(stmt).scalar() is None:
        return None
    d = session.get(Delivery, delivery_id)
    ev = session.get(Event, d.event_id)
    job = Job(delivery_id=d.id, channel=d.channel, attempt=d.attempts, tenant_key=d.tenant_key, target=d.target,
              event=event_dict(ev), context=dict(d.context or {}), request_id=ev.request_id)
    if d.channel == Channel.webhook.value:
        sub = session.get(WebhookSubscription, d.subscription_id) if d.subscription_id else None
        if sub is not None and sub.deleted_at is None:
            job.url, job.secret = sub.url, sub.secret
    return job


def perform(job: Job, settings: Settings) -> Outcome:
    try:
        if job.channel == Channel.webhook.value and job.url is None:
            return Outcome(ok=False, error="subscription-deleted", permanent=True)
        return SENDERS[job.channel](job, settings)
    except Exception as exc:  # noqa: BLE001 - a failed try is recorded and retried
        if job.channel == Channel.email.value:
            return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:2000])
        log.warning("webhook try failed inside the service", exc_info=True,
                    extra={"delivery_id": str(job.delivery_id)})
        return Outcome(ok=False, error="internal-error")


def error_class(error: str | None) -> str | None:
    """The class of a webhook try's error as the API shows it. Rows written before the log kept only classes hold
    free text (exception messages, "HTTP 500", "not sent: ..."): they are reduced to their class here, so that no
    such text is shown any more."""
    if error is None or error in ERROR_CLASSES:
        return error
    text = error.lower()
    if text.startswith("http "):
        return "http-error"
    for needle, cls in (("does not resolve", "dns-error"), ("may not reach", "blocked-address"),
                        ("not sent", "blocked-address"), ("subscription was deleted", "subscription-deleted"),
                        ("timeout", "timeout"), ("timed out", "timeout"), ("ssl", "tls-error"),
                        ("certificate", "tls-error"), ("refused", "connection-refused"),
                        ("protocol", "protocol-error"), ("connect", "connection-error")):
        if needle in text:
            return cls
    return "internal-error"


def duration_ms(attempt: DeliveryAttempt) -> int:
    return max(0, round((attempt.finished_at - attempt.started_at).total_seconds() * 1000))


def record(session: Session, job: Job, outcome: Outcome, started: datetime, now: datetime,
           settings: Settings) -> tuple[str, float | None]:
    """Log the attempt and move the delivery on (the caller commits). → (new status, seconds until the next try or
    None)."""
    d = session.scalars(select(Delivery).where(Delivery.id == job.delivery_id).with_for_update()).one()
    session.add(DeliveryAttempt(delivery_id=d.id, number=job.attempt, started_at=started, finished_at=now,
                                ok=outcome.ok, response_status=outcome.response_status,
                                response_excerpt=outcome.response_excerpt, error=outcome.error))
    delay = None
    d.updated_at, d.lease_until = now, None
    if outcome.ok:
        d.status, d.delivered_at, d.last_error = DeliveryStatus.delivered.value, now, None
    else:
        d.last_error = outcome.error or f"HTTP {outcome.response_status}"
        delay = backoff(job.attempt, settings)
        window_end = d.created_at + timedelta(hours=settings.notify_retry_window_h)
        if outcome.permanent or now + timedelta(seconds=delay) > window_end:
            d.status, delay = DeliveryStatus.failed.value, None
        else:
            d.status = DeliveryStatus.retrying.value
            d.next_attempt_at = now + timedelta(seconds=delay)
            d.enqueued_at = now
    session.flush()
    return d.status, delay


def deliver(db: Database, delivery_id: uuid.UUID, settings: Settings | None = None) -> dict[str, Any]:
    """One try of one delivery (what the task ``notifications.deliver`` does). Owns its two short transactions, the
    claim and the record, so that none is open while the e-mail or webhook is sent."""
    settings = settings or get_settings()
    with db.transaction() as session:
        job = claim(session, delivery_id, clock.now(), settings)
    if job is None:
        return {"delivery_id": str(delivery_id), "status": "skipped"}
    started = clock.now()                           # the log's timing is that of the try itself
    outcome = perform(job, settings)
    with db.transaction() as session:
        status, delay = record(session, job, outcome, started, clock.now(), settings)
    if not outcome.ok:
        log.warning("delivery failed", extra={"delivery_id": str(delivery_id), "channel": job.channel,
                                              "attempt": job.attempt, "error": outcome.error,
                                              "status": outcome.response_status, "next_in_s": delay})
    return {"delivery_id": str(delivery_id), "status": status, "attempt": job.attempt, "retry_in_s": delay}


def due(session: Session, now: datetime, limit: int, requeue_after_s: float) -> list[uuid.UUID]:
    """Deliveries to (re-)enqueue: due and not enqueued recently, or held by a worker whose lease expired."""
    stale = now - timedelta(seconds=requeue_after_s)
    stmt = (select(Delivery.id).where(or_(
        Delivery.status.in_(DUE_STATUSES) & (Delivery.next_attempt_at <= now)
        & (Delivery.enqueued_at.is_(None) | (Delivery.enqueued_at < stale)),
        (Delivery.status == DeliveryStatus.sending.value) & (Delivery.lease_until < now)))
        .order_by(Delivery.next_attempt_at).limit(limit).with_for_update(skip_locked=True))
    ids = list(session.scalars(stmt))
    if ids:
        session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(enqueued_at=now))
    return ids


def dispatch_due(db: Database, *, limit: int = 500) -> dict[str, Any]:
    """The beat backstop: enqueue every delivery that is due (a retry whose time has come, one the relay could not
    enqueue, one a dead worker held). Owns its transaction: the deliveries are marked enqueued and committed before
    the messages go to the broker."""
    settings = get_settings()
    with db.transaction() as session:
        ids = due(session, clock.now(), limit, requeue_after_s=max(60.0, settings.notify_lease_s))
    sent = sum(send_task(DELIVER_TASK, [str(i)]) for i in ids)
    return {"due": len(ids), "enqueued": sent}


def redeliver(session: Session, delivery: Delivery, now: datetime) -> Delivery:
    """Manual redelivery: the delivery is tried again now, whatever happened before (delivered or failed)."""
    if delivery.status == DeliveryStatus.sending.value and delivery.lease_until and delivery.lease_until > now:
        raise Conflict("The delivery is being sent right now; try again in a moment", type="delivery-in-progress")
    delivery.status = DeliveryStatus.pending.value
    delivery.next_attempt_at = now
    delivery.enqueued_at = now
    delivery.lease_until = None
    delivery.updated_at = now
    session.flush()
    return delivery


def attempts_of(session: Session, delivery_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[DeliveryAttempt]]:
    out: dict[uuid.UUID, list[DeliveryAttempt]] = {i: [] for i in delivery_ids}
    if delivery_ids:
        for a in session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(delivery_ids))
                                 .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.number, DeliveryAttempt.id)):
            out[a.delivery_id].append(a)
    return out

