"""The review pipeline: what the system does after every submission and supplement, without a manual step.

A *run* per submitted version (``pipeline_runs``) with four *steps* (``pipeline_steps``), run as a Celery chain:

1. ``resolution`` — resolves the route of the version again on the current road network and records the result
   (authorities, lengths, warnings, whether it matches what the cases were created from);
2. ``checks`` — plausibility of the sections (laying method against depth and width, § 127 (7) declarations,
   pieces outside public roads, traffic restrictions against the planned period) and the evaluation of the
   tenant's participation rules (which bodies must be heard, and why). Conflict checks (overlapping works,
   Aufbruchsperren) are not part of the pipeline yet; the step says so in its result;
3. ``participation`` — creates the statement requests (``permits.participation.service``); fails, with the reason,
   when a rule needs a body that is not on file (a tenant admin adds it and retries the step);
4. ``notifications`` — records the pipeline's outcome as the event ``pipeline.completed``; its commit kicks the
   outbox relay, which delivers it and the statement requests at once.

How it starts: ``submit`` / ``supplement`` (``permits.applications.service``) only write rows — the run with its
steps, next to the events of the command. The outbox relay publishes ``application.submitted`` /
``application.supplemented`` and sends ``permits.pipeline_start``, which sends the chain. The beat task
``permits.pipeline_resume`` sends the chain of every run that was not sent (broker down at the time) or made no
progress for ``pipeline_stale_after_s`` (a worker died), so nothing is lost.

Every step is idempotent under ``acks_late`` redelivery and duplicate chains: it first marks itself running in a
short transaction (progress is visible), then does its work in a second transaction that holds the step row
``FOR UPDATE`` and marks it succeeded in the same commit; a duplicate waits for the lock and then finds the step
succeeded. A worker killed in the middle rolls the work back. No step does network I/O inside a transaction.
Transient errors are retried with backoff by the task; a permanent error (``StepError``) or the last retry marks the
step ``failed`` with its error, visible to tenant admins, until ``POST …/pipeline/{step}/retry`` or
``breitband pipeline retry``.

Where the parts are: this module is the engine's bookkeeping on the rows (``models.py``), inside the caller's
transaction, never committing; it knows the steps by name and order (``STEPS``), not the functions that do them.
``steps.py`` maps each name to its function (``checks.py``, ``permits.participation.service``, and the last step
below), so the step modules may use this one (``StepError``) without a cycle. ``runner.py`` runs a step, records a
failure and sends chains, and owns the transactions for it; ``tasks.py`` are the Celery tasks around the runner.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from breitband.errors import Conflict, NotFound
from breitband.settings import get_settings
from permits import core
from permits.models import Application
from permits.pipeline.models import PipelineRun, PipelineStep, RunStatus, StepStatus

STEPS = ("resolution", "checks", "participation", "notifications")
STEP_TASK = "permits.pipeline_step"
KICK_TASK = "permits.pipeline_kick"


class StepError(Exception):
    """A failure that retrying cannot fix (e.g. configuration missing): the step fails at once with this text."""


# --- starting --------------------------------------------------------------------------------------------------------

def start(session: Session, app: Application, version: int, trigger: str, now: datetime) -> PipelineRun:
    """Write a run with its steps (inside the command's transaction). Started by the relay, see the module doc."""
    run = PipelineRun(id=uuid.uuid4(), tenant_key=app.tenant_key, application_id=app.id, version=version,
                      trigger=trigger, status=RunStatus.pending.value, created_at=now, updated_at=now)
    session.add(run)
    session.flush()
    for position, name in enumerate(STEPS):
        session.add(PipelineStep(run_id=run.id, name=name, position=position, status=StepStatus.pending.value,
                                 attempts=0, updated_at=now))
    session.flush()
    return run


def steps_of(session: Session, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[PipelineStep]]:
    out: dict[uuid.UUID, list[PipelineStep]] = {i: [] for i in run_ids}
    if run_ids:
        for s in session.scalars(select(PipelineStep).where(PipelineStep.run_id.in_(run_ids))
                                 .order_by(PipelineStep.run_id, PipelineStep.position)):
            out[s.run_id].append(s)
    return out


def run_for(session: Session, application_id: uuid.UUID, version: int) -> PipelineRun | None:
    return session.scalars(select(PipelineRun).where(PipelineRun.application_id == application_id,
                                                     PipelineRun.version == version)).first()


def unfinished_steps(session: Session, run_id: uuid.UUID) -> list[str]:
    """The names of the run's steps still to do, in order; none for a run that is missing or finished."""
    run = session.get(PipelineRun, run_id)
    if run is None or run.status in (RunStatus.succeeded.value, RunStatus.failed.value):
        return []
    return [s.name for s in steps_of(session, [run_id])[run_id] if s.status != StepStatus.succeeded.value]


def mark_enqueued(session: Session, run_id: uuid.UUID, now: datetime) -> None:
    session.execute(update(PipelineRun).where(PipelineRun.id == run_id).values(enqueued_at=now))


def runs_to_resume(session: Session, now: datetime, *, grace_s: float, limit: int) -> list[uuid.UUID]:
    """Unfinished runs never sent (for longer than ``grace_s``) or without progress for the stale time."""
    stale = now - timedelta(seconds=get_settings().pipeline_stale_after_s)
    return list(session.scalars(select(PipelineRun.id).where(
        PipelineRun.status.in_([RunStatus.pending.value, RunStatus.running.value]),
        ((PipelineRun.enqueued_at.is_(None) & (PipelineRun.created_at < now - timedelta(seconds=grace_s)))
         | (PipelineRun.updated_at < stale))).order_by(PipelineRun.created_at).limit(limit)))


# --- a step's bookkeeping (the runner calls these in its transactions) ---------------------------------------------

def begin_step(session: Session, run_id: uuid.UUID, name: str, now: datetime) -> str | None:
    """Mark the step running (and the run). → None, or why it is not to run now: missing | skipped (succeeded
    already) | blocked (the run failed, or an earlier step has not succeeded)."""
    step = session.scalars(select(PipelineStep).where(PipelineStep.run_id == run_id, PipelineStep.name == name)
                           .with_for_update()).first()
    if step is None:
        return "missing"
    if step.status == StepStatus.succeeded.value:
        return "skipped"
    run = session.scalars(select(PipelineRun).where(PipelineRun.id == run_id).with_for_update()).one()
    before = [s for s in steps_of(session, [run_id])[run_id] if s.position < step.position]
    if run.status == RunStatus.failed.value or any(s.status != StepStatus.succeeded.value for s in before):
        return "blocked"
    step.status, step.attempts, step.started_at, step.updated_at = StepStatus.running.value, \
        step.attempts + 1, now, now
    run.status, run.updated_at = RunStatus.running.value, now
    run.started_at = run.started_at or now
    session.flush()
    return None


def lock_step(session: Session, run_id: uuid.UUID, name: str) -> PipelineStep:
    """The step row, held ``FOR UPDATE`` until the caller's transaction ends (a duplicate waits for it)."""
    return session.scalars(select(PipelineStep).where(PipelineStep.run_id == run_id, PipelineStep.name == name)
                           .with_for_update()).one()


def succeed_step(session: Session, run: PipelineRun, step: PipelineStep, result: dict[str, Any],
                 done: datetime) -> None:
    step.status, step.result, step.error = StepStatus.succeeded.value, result, None
    step.finished_at = step.updated_at = done
    run.updated_at = done
    if step.name == STEPS[-1]:
        run.status, run.finished_at = RunStatus.succeeded.value, done
    session.flush()


def fail_step(session: Session, run_id: uuid.UUID, name: str, error: str, *, final: bool, now: datetime) -> bool:
    """Note a failed try: ``retrying`` (the task tries again) or ``failed`` (event ``pipeline.failed``). → whether
    it was noted (not for a missing step or one that succeeded meanwhile)."""
    step = session.scalars(select(PipelineStep).where(PipelineStep.run_id == run_id, PipelineStep.name == name)
                           .with_for_update()).first()
    if step is None or step.status == StepStatus.succeeded.value:
        return False
    run = session.scalars(select(PipelineRun).where(PipelineRun.id == run_id).with_for_update()).one()
    step.status = StepStatus.failed.value if final else StepStatus.retrying.value
    step.error, step.updated_at = error[:4000], now
    run.updated_at = now
    if final:
        run.status = RunStatus.failed.value
        app = session.get(Application, run.application_id)
        core.event(session, "pipeline.failed", app, now, run_id=str(run.id), version=run.version, step=name,
                   error=error[:1000])
    session.flush()
    return True


def retry(session: Session, application_id: uuid.UUID, name: str | None, now: datetime) -> PipelineRun:
    """Put the failed step (``name`` or whichever failed) of the application's latest run back to pending; the
    caller sends the chain after the commit (and beat would too)."""
    run = session.scalars(select(PipelineRun).where(PipelineRun.application_id == application_id)
                          .order_by(PipelineRun.version.desc()).limit(1).with_for_update()).first()
    if run is None:
        raise NotFound(f"Application {application_id} has no pipeline run", type="pipeline-not-found")
    if name and name not in STEPS:
        raise NotFound(f"No pipeline step {name!r}; one of {', '.join(STEPS)}", type="pipeline-step-not-found")
    steps = steps_of(session, [run.id])[run.id]
    failed = [s for s in steps if s.status == StepStatus.failed.value]
    target = next((s for s in steps if s.name == name), None) if name else (failed[0] if failed else None)
    if target is None or target.status != StepStatus.failed.value:
        state = target.status if target else "no failed step"
        raise Conflict(f"Only a failed step can be retried; {name or 'the run'} is {state}", type="step-not-failed",
                       steps={s.name: s.status for s in steps})
    for s in steps:
        if s.position >= target.position and s.status != StepStatus.succeeded.value:
            s.status, s.error, s.updated_at = StepStatus.pending.value, None, now
    run.status, run.enqueued_at, run.updated_at, run.finished_at = RunStatus.pending.value, None, now, None
    session.flush()
    return run


# --- the last step ----------------------------------------------------------------------------------------------------

def step_notifications(session: Session, run: PipelineRun, app: Application, now: datetime) -> dict[str, Any]:
    """Record the outcome as an event; committing it kicks the outbox relay (after-commit hook), which delivers it
    together with the statement requests of this run."""
    steps = {s.name: s for s in steps_of(session, [run.id])[run.id]}
    checks = (steps["checks"].result or {})
    participation = (steps["participation"].result or {})
    findings = (checks.get("plausibility") or {}).get("findings") or []
    summary = {"run_id": str(run.id), "version": run.version, "trigger": run.trigger,
               "warnings": sum(1 for f in findings if f.get("severity") == "warning"),
               "statements_requested": len(participation.get("requested") or []),
               "bodies": [r.get("body_name") for r in participation.get("requested") or []]}
    core.event(session, "pipeline.completed", app, now, **summary)
    return {"events": ["pipeline.completed"], **summary}
