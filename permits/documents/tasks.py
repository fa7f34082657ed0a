"""Celery tasks of the decision documents (see ``permits.documents.service``); the generator does the work."""

from __future__ import annotations

import uuid
from typing import Any

from breitband import clock
from breitband.celery import celery_app
from breitband.dates import parse_instant
from breitband.db import get_database
from notifications.outbox import send_task
from permits.documents import generator
from permits.documents import service as documents
from permits.models import Case


@celery_app.task(name="permits.document_generate", bind=True, acks_late=True, max_retries=4, ignore_result=True)
def document_generate(self, document_id: str, now: str | None = None) -> dict[str, Any]:
    """Render, sign and store one decision document; retried with backoff (the failure is recorded on it).
    ``now`` (ISO 8601; default: the current time) is the time its claim is judged at, e.g. whether the lease of a
    worker that died while generating it has run out."""
    when = parse_instant(now) if now else None
    try:
        return generator.generate(get_database(), uuid.UUID(document_id), when)
    except Exception as exc:
        if self.request.retries >= self.max_retries:
            raise
        raise self.retry(exc=exc, countdown=min(2 ** self.request.retries * 10, 600)) from None


@celery_app.task(name="permits.documents_for_event", acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
                 max_retries=5, ignore_result=True)
def documents_for_event(event: dict[str, Any]) -> str | None:
    """Subscribed to case.decided / case.deemed_granted: the case's document row, then its generation."""
    with get_database().transaction() as session:
        case = session.get(Case, uuid.UUID(event["data"]["case_id"]))
        doc_id = documents.ensure_for_case(session, case, clock.now()) if case else None
    if doc_id is not None:
        send_task("permits.document_generate", [str(doc_id)])
    return str(doc_id) if doc_id else None


@celery_app.task(name="permits.documents_sweep", acks_late=True, ignore_result=True)
def documents_sweep(now: str | None = None) -> dict[str, Any]:
    """Beat backstop: documents for decided cases that have none, pending or failed ones with attempts left, and
    ones whose generating worker's lease ran out at ``now`` (ISO 8601; default: the current time; passed on to the
    generation tasks)."""
    ids = generator.sweep(get_database(), now=parse_instant(now) if now else None)
    args = [now] if now else []
    return {"documents": len(ids),
            "sent": sum(send_task("permits.document_generate", [str(i), *args]) for i in ids)}
