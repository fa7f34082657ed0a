"""Celery tasks of the cases: the deadline sweep that issues deemed approvals (``permits.cases.deemed``)."""

from __future__ import annotations

from typing import Any

from breitband import metrics
from breitband.celery import celery_app
from breitband.dates import parse_instant
from breitband.db import get_database
from permits.cases import deemed


@celery_app.task(name="permits.sweep_deadlines", acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
                 retry_backoff_max=300, max_retries=5, ignore_result=False)
def sweep_deadlines(now: str | None = None, tenant_key: str | None = None) -> dict[str, Any]:
    """Issue the deemed approvals (§ 127 (3) TKG) that are due at ``now`` (ISO 8601; default: the current time).

    Run by beat every few minutes. Idempotent and safe to run concurrently (see ``permits.cases.deemed``); each
    batch is its own short transaction, which the sweep opens itself: no transaction is held across anything but
    the database."""
    when = parse_instant(now) if now else None
    result = deemed.sweep(get_database(), when, tenant_key=tenant_key)
    metrics.record_sweep(result["deemed_granted"])
    return result
