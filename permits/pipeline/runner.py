"""Runs the review pipeline's steps, records their failures and sends their chains (see ``permits.pipeline.service``
for the whole story). Called by the tasks (``permits.pipeline.tasks``) and by ``breitband pipeline retry --here``.

The runner, not the service, owns the transactions here, and opens several on purpose: a step marks itself
running and commits before its work (the progress is visible, and a worker killed in the middle leaves a step that
beat resumes), then commits its work together with its success (the result is durable before the next step is
sent); and no transaction is open while a chain goes to the broker.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from celery import chain

from breitband import clock
from breitband.celery import celery_app
from breitband.db import Database
from breitband.errors import UnprocessableEntity
from notifications.outbox import send_signature
from permits.models import Application
from permits.pipeline import service as pipeline
from permits.pipeline import steps
from permits.pipeline.models import PipelineRun, StepStatus

log = logging.getLogger("permits.pipeline")


def run_step(db: Database, run_id: uuid.UUID, name: str, now: datetime | None = None) -> dict[str, Any]:
    """Run one step once. → {"status": succeeded | skipped | blocked | missing}. Raises what the step raised
    (after rolling its work back); the caller records it with ``record_failure``."""
    if name not in pipeline.STEPS:
        raise UnprocessableEntity(f"No pipeline step {name!r}; one of {', '.join(pipeline.STEPS)}",
                                  type="unknown-step")
    now = now or clock.now()
    with db.transaction() as session:                     # 1: visible progress
        refused = pipeline.begin_step(session, run_id, name, now)
    if refused is not None:
        return {"status": refused}
    with db.transaction() as session:                     # 2: the work, committed with the step's success
        step = pipeline.lock_step(session, run_id, name)
        if step.status == StepStatus.succeeded.value:     # a duplicate finished while we waited for the lock
            return {"status": "skipped"}
        run = session.get(PipelineRun, run_id)
        app = session.get(Application, run.application_id)
        result = steps.FUNCTIONS[name](session, run, app, now)
        pipeline.succeed_step(session, run, step, result, clock.now())
    return {"status": "succeeded", "result": result}


def record_failure(db: Database, run_id: uuid.UUID, name: str, exc: BaseException, *, final: bool,
                   now: datetime | None = None) -> None:
    """Note a failed try in its own transaction (the step's work was rolled back): ``retrying`` or ``failed``."""
    now = now or clock.now()
    text = str(exc) if isinstance(exc, pipeline.StepError) else f"{type(exc).__name__}: {exc}"
    with db.transaction() as session:
        noted = pipeline.fail_step(session, run_id, name, text, final=final, now=now)
    if noted:
        log.warning("pipeline step failed", extra={"run_id": str(run_id), "step": name, "final": final,
                                                   "error": text})


def kick(db: Database, run_id: uuid.UUID, now: datetime | None = None) -> bool:
    """Send the chain of the run's unfinished steps. → whether the broker took it (else beat will try again)."""
    now = now or clock.now()
    with db.transaction() as session:
        remaining = pipeline.unfinished_steps(session, run_id)
    if not remaining:
        return False
    sent = send_signature(chain(*(celery_app.signature(pipeline.STEP_TASK, args=[str(run_id), name], immutable=True)
                                  for name in remaining)))
    if sent:
        with db.transaction() as session:
            pipeline.mark_enqueued(session, run_id, now)
    return sent


def resume(db: Database, now: datetime | None = None, *, grace_s: float = 10.0, limit: int = 200) -> dict[str, Any]:
    """Beat backstop: send the chain of runs never sent, or sent but stuck (no progress for the stale time)."""
    now = now or clock.now()
    with db.transaction() as session:
        ids = pipeline.runs_to_resume(session, now, grace_s=grace_s, limit=limit)
    kicked = sum(kick(db, run_id, now) for run_id in ids)
    return {"found": len(ids), "kicked": kicked}
