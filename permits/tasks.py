"""Celery tasks of the permits domain."""

from __future__ import annotations

from typing import Any

from breitband.celery import celery_app
from breitband.db import get_database
from permits import deadlines
from permits.cases import deemed
from permits.pipeline.audience import send_reminders


@celery_app.task(name="permits.sweep_deadlines", acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
                 retry_backoff_max=300, max_retries=5, ignore_result=False)
def sweep_deadlines(now: str | None = None, tenant_key: str | None = None) -> dict[str, Any]:
    """Issue the deemed approvals (§ 127 (3) TKG) that are due at ``now`` (ISO 8601; default: the current time).

    Run by beat every few minutes. Idempotent and safe to run concurrently (see ``permits.cases.deemed``); each batch is
    its own short transaction, no transaction is held across anything but the database."""
    when = deadlines.parse_instant(now) if now else None
    return deemed.sweep(get_database(), when, tenant_key=tenant_key)


# --- the review pipeline (see permits.pipeline.service) ------------------------------------------------------------------

@celery_app.task(name="permits.pipeline_step", bind=True, acks_late=True, max_retries=5, ignore_result=True)
def pipeline_step(self, run_id: str, step: str) -> dict[str, Any]:
    """One step of a run. Idempotent (see permits.pipeline.service.run_step); transient errors are retried with exponential
    backoff, a permanent one (StepError) or the last retry marks the step failed and stops the chain."""
    import uuid

    from celery.exceptions import Ignore

    from permits.pipeline import service as pipeline

    db = get_database()
    try:
        outcome = pipeline.run_step(db, uuid.UUID(run_id), step)
    except pipeline.StepError as exc:
        pipeline.record_failure(db, uuid.UUID(run_id), step, exc, final=True)
        raise Ignore() from None            # stops the chain; the failure is recorded on the step
    except Exception as exc:
        final = self.request.retries >= self.max_retries
        pipeline.record_failure(db, uuid.UUID(run_id), step, exc, final=final)
        if final:
            raise Ignore() from None
        raise self.retry(exc=exc, countdown=min(2 ** self.request.retries * 5, 300)) from None
    if outcome["status"] == "blocked":
        raise Ignore()                      # an earlier step has not succeeded: this chain ends here
    return {"run_id": run_id, "step": step, "status": outcome["status"]}


@celery_app.task(name="permits.pipeline_kick", acks_late=True, ignore_result=True)
def pipeline_kick(run_id: str) -> bool:
    """Send the chain of a run's unfinished steps (after a retry, or from the resume backstop)."""
    import uuid

    from permits.pipeline import service as pipeline

    return pipeline.kick(get_database(), uuid.UUID(run_id))


@celery_app.task(name="permits.pipeline_start", acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
                 max_retries=5, ignore_result=True)
def pipeline_start(event: dict[str, Any]) -> bool:
    """Subscribed to application.submitted / application.supplemented: start that version's run (deduped: a run
    already sent or finished is not sent again by this task; the resume backstop handles stuck ones)."""
    import uuid

    from permits.pipeline import service as pipeline

    db = get_database()
    with db.sessionmaker() as session:
        run = pipeline.run_for(session, uuid.UUID(event["data"]["application_id"]), int(event["data"]["version"]))
        if run is None or run.enqueued_at is not None:
            return False
        run_id = run.id
    return pipeline.kick(db, run_id)


@celery_app.task(name="permits.pipeline_resume", acks_late=True, ignore_result=True)
def pipeline_resume() -> dict[str, Any]:
    """Beat backstop: send the chains of runs never sent (broker down at the time) or stuck (a worker died)."""
    from permits.pipeline import service as pipeline

    return pipeline.resume(get_database())


# --- decision documents (see permits.documents.service) --------------------------------------------------------------------

@celery_app.task(name="permits.document_generate", bind=True, acks_late=True, max_retries=4, ignore_result=True)
def document_generate(self, document_id: str, now: str | None = None) -> dict[str, Any]:
    """Render, sign and store one decision document; retried with backoff (the failure is recorded on it).
    ``now`` (ISO 8601; default: the current time) is the time its claim is judged at, e.g. whether the lease of a
    worker that died while generating it has run out."""
    import uuid

    from permits.documents import service as documents

    when = deadlines.parse_instant(now) if now else None
    try:
        return documents.generate(get_database(), uuid.UUID(document_id), when)
    except Exception as exc:
        if self.request.retries >= self.max_retries:
            raise
        raise self.retry(exc=exc, countdown=min(2 ** self.request.retries * 10, 600)) from None


@celery_app.task(name="permits.documents_for_event", acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
                 max_retries=5, ignore_result=True)
def documents_for_event(event: dict[str, Any]) -> str | None:
    """Subscribed to case.decided / case.deemed_granted: the case's document row, then its generation."""
    import uuid

    from notifications.outbox import send_task
    from permits.documents import service as documents
    from permits.models import Case

    db = get_database()
    with db.sessionmaker() as session:
        case = session.get(Case, uuid.UUID(event["data"]["case_id"]))
        doc_id = documents.ensure_for_case(session, case, documents.utcnow()) if case else None
        session.commit()
    if doc_id is not None:
        send_task("permits.document_generate", [str(doc_id)])
    return str(doc_id) if doc_id else None


@celery_app.task(name="permits.documents_sweep", acks_late=True, ignore_result=True)
def documents_sweep(now: str | None = None) -> dict[str, Any]:
    """Beat backstop: documents for decided cases that have none, pending or failed ones with attempts left, and
    ones whose generating worker's lease ran out at ``now`` (ISO 8601; default: the current time; passed on to the
    generation tasks)."""
    from notifications.outbox import send_task
    from permits.documents import service as documents

    ids = documents.sweep(get_database(), now=deadlines.parse_instant(now) if now else None)
    args = [now] if now else []
    return {"documents": len(ids),
            "sent": sum(send_task("permits.document_generate", [str(i), *args]) for i in ids)}


# --- deadline reminders ---------------------------------------------------------------------------------------------

@celery_app.task(name="permits.deadline_reminders", acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
                 max_retries=3, ignore_result=True)
def deadline_reminders() -> dict[str, Any]:
    """Beat: reminders to authorities 14 and 3 days before a decision deadline (see permits.pipeline.audience)."""
    return send_reminders(get_database())
