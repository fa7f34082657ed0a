"""Celery tasks of the notifications package: the outbox relay, one delivery try, and the beat backstop.

All are idempotent under ``acks_late`` redelivery (the relay takes rows under SKIP LOCKED and marks them published
in the same transaction; a delivery is claimed with a lease before anything is sent) and hold no database
transaction across network I/O. Each hands the process's database to a runner that owns its transactions: the relay
one per batch, a delivery one for the claim and one for the record around the try, the backstop one for marking
what it enqueues (see ``notifications.outbox.relay``, ``notifications.delivery.deliver`` and ``dispatch_due``).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from breitband.celery import celery_app
from breitband.db import get_database
from notifications import delivery, outbox

# Retries that Celery schedules itself (message with ETA) stay short, well under the broker's visibility timeout;
# longer waits are picked up by the beat task ``notifications.dispatch_due``.
SELF_SCHEDULE_MAX_S = 300.0


@celery_app.task(name="notifications.relay", acks_late=True, autoretry_for=(OperationalError, DBAPIError),
                 retry_backoff=2, retry_backoff_max=120, retry_jitter=True, max_retries=8, ignore_result=True)
def relay() -> dict[str, Any]:
    """Publish the unpublished events (batches, SKIP LOCKED) and enqueue the deliveries they caused."""
    return outbox.relay(get_database())


@celery_app.task(name="notifications.deliver", bind=True, acks_late=True,
                 autoretry_for=(OperationalError, DBAPIError), retry_backoff=2, retry_backoff_max=120,
                 retry_jitter=True, max_retries=8, ignore_result=True)
def deliver(self, delivery_id: str) -> dict[str, Any]:
    """One try of one e-mail or webhook delivery; on failure the next try is scheduled with exponential backoff."""
    result = delivery.deliver(get_database(), uuid.UUID(delivery_id))
    delay = result.get("retry_in_s")
    if result.get("status") == "retrying" and delay is not None and delay <= SELF_SCHEDULE_MAX_S:
        outbox.send_task(outbox.DELIVER_TASK, [delivery_id], countdown=delay)
    return result


@celery_app.task(name="notifications.dispatch_due", acks_late=True, autoretry_for=(OperationalError, DBAPIError),
                 retry_backoff=2, max_retries=3, ignore_result=True)
def dispatch_due() -> dict[str, Any]:
    """Beat backstop: enqueue deliveries that are due and not in the queue (long backoffs, lost messages,
    deliveries held by a worker that died)."""
    return delivery.dispatch_due(get_database())
