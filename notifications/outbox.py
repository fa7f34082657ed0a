"""The outbox: events written in the same transaction as the change they describe (``permit_events``), published by
a relay.

* **After commit.** Any session that committed new event rows kicks the relay task at once (best effort: the kick
  is a message to the broker after the commit; when the broker is down it is logged and dropped).
* **Backed by beat.** The relay also runs every few seconds from beat (``notifications-relay``), so an event is
  published even when the kick was lost.
* **The relay** (``relay``) takes unpublished events in ``seq`` order, in batches, with ``FOR UPDATE SKIP LOCKED``
  (two relays never take the same rows and never wait for each other), and for each event in the same transaction:
  asks the audience providers who may see it, writes the feed rows, one delivery per e-mail address and per matching
  webhook subscription, and sets ``published_at``. After the commit it enqueues the deliveries and the tasks
  subscribed to the event's type. Everything downstream dedupes on the event id (unique deliveries and feed rows).
* **Feed order.** The feed's cursor (``notification_feed.position``) is assigned under a transaction-scoped advisory
  lock taken just before the batch commits, so positions become visible in increasing order and a client polling
  with ``after=CURSOR`` never skips an event.

* **Writing.** A domain records an event with ``record_event`` in its own transaction (the row is the outbox:
  ``notifications.models.Event``).

This package knows events, not permit internals: who may see an event is answered by *audience providers* that the
domain packages register (``register_audience``), and domain tasks that react to events subscribe by type
(``subscribe``). A provider registers itself when its module is imported; the entry points (``breitband.worker``,
``breitband.app``, the command line) import those modules explicitly. With no provider registered the relay refuses
to publish (``NoAudienceProvider``) rather than publish to nobody.
"""

from __future__ import annotations

import fnmatch
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from breitband import clock, dates
from breitband.celery import celery_app
from breitband.db import Database
from breitband.logging import request_id_var
from breitband.models import Organisation, OrgKind
from breitband.settings import get_settings
from notifications.models import Channel, Delivery, DeliveryStatus, Event, FeedEntry, WebhookSubscription

log = logging.getLogger("notifications.outbox")

RELAY_TASK = "notifications.relay"
DELIVER_TASK = "notifications.deliver"
RELAY_LOCK = 7_310_001        # pg advisory lock: feed positions in commit order


@dataclass
class Recipient:
    """An organisation that may see an event (feed, webhooks) and the addresses to e-mail about it (may be none)."""

    organisation_id: uuid.UUID
    emails: tuple[str, ...] = ()
    context: dict[str, Any] = field(default_factory=dict)     # for the e-mail templates


AudienceProvider = Callable[[Session, Event], "list[Recipient] | None"]
_providers: list[AudienceProvider] = []
_subscribers: dict[str, list[str]] = {}


class NoAudienceProvider(RuntimeError):
    """The relay was to publish events while no audience provider was registered: it would have published them to
    nobody (no feed rows but the admins', no e-mails, no webhooks) and marked them published for good."""


def register_audience(provider: AudienceProvider) -> AudienceProvider:
    """A provider answers None for events it does not know, else the recipients (possibly empty)."""
    if provider not in _providers:
        _providers.append(provider)
    return provider


def subscribe(event_types: Iterable[str], task_name: str) -> None:
    """After an event of one of these types is published, send ``task_name(event)`` (event as a dict)."""
    for t in event_types:
        names = _subscribers.setdefault(t, [])
        if task_name not in names:
            names.append(task_name)


def providers() -> list[AudienceProvider]:
    """The registered audience providers; raises ``NoAudienceProvider`` when there is none."""
    if not _providers:
        raise NoAudienceProvider(
            "no audience provider is registered (notifications.outbox.register_audience), so nobody can be told who "
            "may see an event; nothing was published. The process's entry point must import the module that "
            "registers it (permits.pipeline.audience: breitband.worker, breitband.app and breitband.cli do).")
    return _providers


# --- writing events -----------------------------------------------------------------------------------------------

def record_event(session: Session, *, tenant_key: str, type: str, payload: dict[str, Any], created_at: datetime,
                 application_id: uuid.UUID | None = None, case_id: uuid.UUID | None = None) -> Event:
    """Put an event into the outbox in the caller's transaction: it is committed with the change it describes (and
    the relay kicked after that commit) or rolled back with it. Added to the session only; the caller flushes and
    commits."""
    event = Event(id=uuid.uuid4(), tenant_key=tenant_key, type=type, payload=payload, created_at=created_at,
                  application_id=application_id, case_id=case_id, request_id=request_id_var.get())
    session.add(event)
    return event


# --- publishing to the broker ---------------------------------------------------------------------------------

def send_task(name: str, args: list[Any] | None = None, *, countdown: float | None = None) -> bool:
    """Send a task on a fresh broker connection that fails fast (no retries), so that a broker outage costs a
    caller milliseconds, not seconds. → whether the broker took the message. Callers rely on a beat task to pick
    up what could not be sent.

    ``ignore_result``: nobody waits for these results, and without it Celery's Redis result backend subscribes to
    the result before sending, retrying its connection for about 20 s when Redis is down (every command that
    wrote an event then answered 19 s late; tests/faults/test_redis_restart.py)."""
    try:
        with _connection(celery_app) as conn:
            celery_app.send_task(name, args=args or [], countdown=countdown, connection=conn, retry=False,
                                 ignore_result=True)
        return True
    except Exception as exc:  # noqa: BLE001 - any broker failure: logged, the beat backstop takes over
        log.warning("could not send task to the broker", extra={"task": name, "error": str(exc)})
        return False


def send_signature(signature) -> bool:
    """Like ``send_task`` for a signature or chain."""
    try:
        with _connection(celery_app) as conn:
            signature.apply_async(connection=conn, retry=False)
        return True
    except Exception as exc:  # noqa: BLE001
        log.warning("could not send task to the broker", extra={"task": str(signature), "error": str(exc)})
        return False


def _connection(celery_app):
    options = {**(celery_app.conf.broker_transport_options or {}), "max_retries": 0}
    return celery_app.connection_for_write(transport_options=options)


def kick_relay() -> bool:
    return send_task(RELAY_TASK)


# --- after-commit hook ------------------------------------------------------------------------------------------

_PENDING = "notifications.outbox.pending"


@sa_event.listens_for(Session, "after_flush")
def _note_new_events(session: Session, _ctx) -> None:
    if any(isinstance(obj, Event) for obj in session.new):
        session.info[_PENDING] = True


_AFTER_COMMIT = "notifications.outbox.after_commit"


def send_after_commit(session: Session, name: str, args: list[Any] | None = None) -> None:
    """Send a task once the session's transaction has committed (dropped on rollback). Best effort: whatever
    the task is for must also be found by a beat task."""
    session.info.setdefault(_AFTER_COMMIT, []).append((name, args or []))


@sa_event.listens_for(Session, "after_commit")
def _kick_after_commit(session: Session) -> None:
    tasks = session.info.pop(_AFTER_COMMIT, [])
    if session.info.pop(_PENDING, False):
        kick_relay()
    for name, args in tasks:
        send_task(name, args)


@sa_event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_AFTER_COMMIT, None)


# --- the relay ----------------------------------------------------------------------------------------------------

def matches(patterns: list[str] | None, event_type: str) -> bool:
    """Empty list: every event. Otherwise exact types or shell patterns such as ``case.*``."""
    return not patterns or any(fnmatch.fnmatchcase(event_type, p) for p in patterns)


def audience(session: Session, ev: Event) -> list[Recipient]:
    for provider in providers():
        found = provider(session, ev)
        if found is not None:
            return found
    return []


def event_dict(ev: Event) -> dict[str, Any]:
    """The public shape of an event (webhook body, feed item, subscriber argument)."""
    return {"id": str(ev.id), "seq": ev.seq, "type": ev.type, "tenant": ev.tenant_key,
            "created_at": dates.iso(ev.created_at), "data": ev.payload}


def _fan_out(session: Session, ev: Event, now: datetime) -> list[uuid.UUID]:
    recipients = audience(session, ev)
    orgs = {r.organisation_id for r in recipients}
    rows = [{"event_id": ev.id, "tenant_key": ev.tenant_key, "organisation_id": None, "published_at": now}]
    rows += [{"event_id": ev.id, "tenant_key": ev.tenant_key, "organisation_id": o, "published_at": now}
             for o in sorted(orgs, key=str)]
    session.execute(insert(FeedEntry).values(rows).on_conflict_do_nothing())

    deliveries: list[dict[str, Any]] = []
    base = {"tenant_key": ev.tenant_key, "event_id": ev.id, "event_type": ev.type, "status":
            DeliveryStatus.pending.value, "attempts": 0, "next_attempt_at": now, "enqueued_at": now,
            "created_at": now, "updated_at": now, "subscription_id": None}   # same keys in every row
    seen: set[str] = set()
    for r in recipients:
        for address in r.emails:
            address = address.strip().lower()
            if address and address not in seen:
                seen.add(address)
                deliveries.append({**base, "id": uuid.uuid4(), "channel": Channel.email.value, "target": address,
                                   "organisation_id": r.organisation_id, "context": r.context})
    # Webhooks: subscriptions of the organisations in the audience, and of the tenant's operating office (which
    # sees everything of its tenant, like the tenant admins' feed).
    office = select(Organisation.id).where(Organisation.tenant_key == ev.tenant_key,
                                           Organisation.kind == OrgKind.operating_office.value)
    subs = session.scalars(select(WebhookSubscription).where(
        WebhookSubscription.tenant_key == ev.tenant_key, WebhookSubscription.active.is_(True),
        WebhookSubscription.deleted_at.is_(None),
        WebhookSubscription.organisation_id.in_(list(orgs)) | WebhookSubscription.organisation_id.in_(office)))
    for sub in subs:
        if matches(sub.event_types, ev.type):
            deliveries.append({**base, "id": uuid.uuid4(), "channel": Channel.webhook.value, "target": str(sub.id),
                               "subscription_id": sub.id, "organisation_id": sub.organisation_id, "context": {}})
    if not deliveries:
        return []
    stmt = insert(Delivery).values(deliveries).on_conflict_do_nothing(
        constraint="delivery_once_per_event_and_target").returning(Delivery.id)
    return list(session.scalars(stmt))


def relay_batch(session: Session, batch_size: int, now: datetime) -> tuple[int, list[uuid.UUID], list[tuple]]:
    """Publish one batch (the caller commits). → (events published, new delivery ids, (task, event) triggers)."""
    events = list(session.scalars(
        select(Event).where(Event.published_at.is_(None)).order_by(Event.seq)
        .limit(batch_size).with_for_update(skip_locked=True)))
    if not events:
        return 0, [], []
    # Feed positions must become visible in increasing order: take the lock before the first feed row.
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": RELAY_LOCK})
    delivery_ids: list[uuid.UUID] = []
    triggers: list[tuple[str, dict[str, Any]]] = []
    for ev in events:
        delivery_ids += _fan_out(session, ev, now)
        for name in _subscribers.get(ev.type, []):
            triggers.append((name, event_dict(ev)))
    session.execute(update(Event).where(Event.id.in_([e.id for e in events]))
                    .values(published_at=now))
    return len(events), delivery_ids, triggers


def relay(db: Database, *, batch_size: int | None = None, max_batches: int = 50) -> dict[str, Any]:
    """Publish every unpublished event (up to ``max_batches`` batches), then enqueue what they caused.

    The relay owns its transactions (the task and the command line hand it the database): one per batch, committed
    before the next batch is taken, so that a batch's feed rows, deliveries and ``published_at`` become visible
    together, the feed-position lock and the row locks are held for one batch only, and a failure rolls back its own
    batch alone (published by the next run). The broker is told only after the commits."""
    providers()                     # no audience registered: fail before taking any event
    batch_size = batch_size or get_settings().outbox_batch_size
    published, batches = 0, 0
    delivery_ids: list[uuid.UUID] = []
    triggers: list[tuple] = []
    for _ in range(max_batches):
        with db.transaction() as session:
            n, ids, trig = relay_batch(session, batch_size, clock.now())
        if not n:
            break
        batches += 1
        published += n
        delivery_ids += ids
        triggers += trig
        if n < batch_size:
            break
    enqueued = sum(send_task(DELIVER_TASK, [str(i)]) for i in delivery_ids)
    for name, ev in triggers:
        send_task(name, [ev])
    if published:
        log.info("outbox published", extra={"events": published, "deliveries": len(delivery_ids)})
    return {"published": published, "batches": batches, "deliveries": len(delivery_ids), "enqueued": enqueued,
            "triggered": len(triggers)}
