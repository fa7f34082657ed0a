"""Celery tasks of the review pipeline (see ``permits.pipeline.service``); the runner does the work."""

from __future__ import annotations

import uuid
from typing import Any

from celery.exceptions import Ignore

from breitband.celery import celery_app
from breitband.db import get_database
from permits.pipeline import runner
from permits.pipeline import service as pipeline


@celery_app.task(name="permits.pipeline_step", bind=True, acks_late=True, max_retries=5, ignore_result=True)
def pipeline_step(self, run_id: str, step: str) -> dict[str, Any]:
    """One step of a run. Idempotent (see permits.pipeline.runner.run_step); transient errors are retried with
    exponential backoff, a permanent one (StepError) or the last retry marks the step failed and stops the chain."""
    db = get_database()
    try:
        outcome = runner.run_step(db, uuid.UUID(run_id), step)
    except pipeline.StepError as exc:
        runner.record_failure(db, uuid.UUID(run_id), step, exc, final=True)
        raise Ignore() from None            # stops the chain; the failure is recorded on the step
    except Exception as exc:
        final = self.request.retries >= self.max_retries
        runner.record_failure(db, uuid.UUID(run_id), step, exc, final=final)
        if final:
            raise Ignore() from None
        raise self.retry(exc=exc, countdown=min(2 ** self.request.retries * 5, 300)) from None
    if outcome["status"] == "blocked":
        raise Ignore()                      # an earlier step has not succeeded: this chain ends here
    return {"run_id": run_id, "step": step, "status": outcome["status"]}


@celery_app.task(name="permits.pipeline_kick", acks_late=True, ignore_result=True)
def pipeline_kick(run_id: str) -> bool:
    """Send the chain of a run's unfinished steps (after a retry, or from the resume backstop)."""
    return runner.kick(get_database(), uuid.UUID(run_id))


@celery_app.task(name="permits.pipeline_start", acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
                 max_retries=5, ignore_result=True)
def pipeline_start(event: dict[str, Any]) -> bool:
    """Subscribed to application.submitted / application.supplemented: start that version's run (deduped: a run
    already sent or finished is not sent again by this task; the resume backstop handles stuck ones)."""
    db = get_database()
    with db.transaction() as session:
        run = pipeline.run_for(session, uuid.UUID(event["data"]["application_id"]), int(event["data"]["version"]))
        if run is None or run.enqueued_at is not None:
            return False
        run_id = run.id
    return runner.kick(db, run_id)


@celery_app.task(name="permits.pipeline_resume", acks_late=True, ignore_result=True)
def pipeline_resume() -> dict[str, Any]:
    """Beat backstop: send the chains of runs never sent (broker down at the time) or stuck (a worker died)."""
    return runner.resume(get_database())
