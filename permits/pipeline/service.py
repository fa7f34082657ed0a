"""The review pipeline: what the system does after every submission and supplement, without a manual step.

A *run* per submitted version (``pipeline_runs``) with four *steps* (``pipeline_steps``), run as a Celery chain:

1. ``resolution`` — resolves the route of the version again on the current road network and records the result
   (authorities, lengths, warnings, whether it matches what the cases were created from);
2. ``checks`` — plausibility of the sections (laying method against depth and width, § 127 (7) declarations,
   pieces outside public roads, traffic restrictions against the planned period) and the evaluation of the
   tenant's participation rules (which bodies must be heard, and why). Conflict checks (overlapping works,
   Aufbruchsperren) are not part of the pipeline yet; the step says so in its result;
3. ``participation`` — creates the statement requests (``permits.participation.service``); fails, with the reason, when a
   rule needs a body that is not on file (a tenant admin adds it and retries the step);
4. ``notifications`` — records the pipeline's outcome as the event ``pipeline.completed``; its commit kicks the
   outbox relay, which delivers it and the statement requests at once.

How it starts: ``service.submit`` / ``service.supplement`` only write rows — the run with its steps, next to the
events of the command. The outbox relay publishes ``application.submitted`` / ``application.supplemented`` and
sends ``permits.pipeline_start``, which sends the chain. The beat task ``permits.pipeline_resume`` sends the chain of
every run that was not sent (broker down at the time) or made no progress for ``pipeline_stale_after_s`` (a worker
died), so nothing is lost.

Every step is idempotent under ``acks_late`` redelivery and duplicate chains: it first marks itself running in a
short transaction (progress is visible), then does its work in a second transaction that holds the step row
``FOR UPDATE`` and marks it succeeded in the same commit; a duplicate waits for the lock and then finds the step
succeeded. A worker killed in the middle rolls the work back. No step does network I/O inside a transaction.
Transient errors are retried with backoff by the task; a permanent error (``StepError``) or the last retry marks the
step ``failed`` with its error, visible to tenant admins, until ``POST …/pipeline/{step}/retry`` or
``breitband pipeline retry``.
"""

from __future__ import annotations

import enum
import logging
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, select, update
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, Session, mapped_column

from breitband.db import Base, Database
from breitband.errors import Conflict, NotFound, UnprocessableEntity
from permits import core
from permits.models import Application

log = logging.getLogger("permits.pipeline")

STEPS = ("resolution", "checks", "participation", "notifications")
STEP_TASK = "permits.pipeline_step"
KICK_TASK = "permits.pipeline_kick"


class RunStatus(str, enum.Enum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class StepStatus(str, enum.Enum):
    pending = "pending"
    running = "running"
    retrying = "retrying"        # failed, the task retries it with backoff
    succeeded = "succeeded"
    failed = "failed"            # needs a tenant admin: retry after fixing the cause


class PipelineRun(Base):
    __tablename__ = "pipeline_runs"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PipelineStep(Base):
    __tablename__ = "pipeline_steps"

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class StepError(Exception):
    """A failure that retrying cannot fix (e.g. configuration missing): the step fails at once with this text."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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


def kick(db: Database, run_id: uuid.UUID, now: datetime | None = None) -> bool:
    """Send the chain of the run's unfinished steps. → whether the broker took it (else beat will try again)."""
    from celery import chain

    from breitband.celery import celery_app
    from notifications.outbox import send_signature

    now = now or utcnow()
    with db.sessionmaker() as session:
        run = session.get(PipelineRun, run_id)
        if run is None or run.status in (RunStatus.succeeded.value, RunStatus.failed.value):
            return False
        remaining = [s.name for s in steps_of(session, [run_id])[run_id] if s.status != StepStatus.succeeded.value]
    if not remaining:
        return False
    sent = send_signature(chain(*(celery_app.signature(STEP_TASK, args=[str(run_id), name], immutable=True)
                                  for name in remaining)))
    if sent:
        with db.sessionmaker() as session:
            session.execute(update(PipelineRun).where(PipelineRun.id == run_id).values(enqueued_at=now))
            session.commit()
    return sent


def run_for(session: Session, application_id: uuid.UUID, version: int) -> PipelineRun | None:
    return session.scalars(select(PipelineRun).where(PipelineRun.application_id == application_id,
                                                     PipelineRun.version == version)).first()


def resume(db: Database, now: datetime | None = None, *, grace_s: float = 10.0, limit: int = 200) -> dict[str, Any]:
    """Beat backstop: send the chain of runs never sent, or sent but stuck (no progress for the stale time)."""
    from breitband.settings import get_settings

    now = now or utcnow()
    stale = now - timedelta(seconds=get_settings().pipeline_stale_after_s)
    with db.sessionmaker() as session:
        ids = list(session.scalars(select(PipelineRun.id).where(
            PipelineRun.status.in_([RunStatus.pending.value, RunStatus.running.value]),
            ((PipelineRun.enqueued_at.is_(None) & (PipelineRun.created_at < now - timedelta(seconds=grace_s)))
             | (PipelineRun.updated_at < stale))).order_by(PipelineRun.created_at).limit(limit)))
    kicked = sum(kick(db, run_id, now) for run_id in ids)
    return {"found": len(ids), "kicked": kicked}


# --- running a step --------------------------------------------------------------------------------------------------

Handler = Callable[[Session, PipelineRun, Application, datetime], dict[str, Any]]


def handlers() -> dict[str, Handler]:
    from permits.participation import service as participation
    from permits.pipeline import checks as pipeline_checks

    return {"resolution": pipeline_checks.step_resolution, "checks": pipeline_checks.step_checks,
            "participation": participation.step_participation, "notifications": step_notifications}


def run_step(db: Database, run_id: uuid.UUID, name: str, now: datetime | None = None) -> dict[str, Any]:
    """Run one step once. → {"status": succeeded | skipped | blocked | missing}. Raises what the handler raised
    (after rolling its work back); the caller records it with ``record_failure``."""
    if name not in STEPS:
        raise UnprocessableEntity(f"No pipeline step {name!r}; one of {', '.join(STEPS)}", type="unknown-step")
    now = now or utcnow()
    with db.sessionmaker() as session:                     # 1: visible progress
        step = session.scalars(select(PipelineStep).where(PipelineStep.run_id == run_id, PipelineStep.name == name)
                               .with_for_update()).first()
        if step is None:
            return {"status": "missing"}
        if step.status == StepStatus.succeeded.value:
            return {"status": "skipped"}
        run = session.scalars(select(PipelineRun).where(PipelineRun.id == run_id).with_for_update()).one()
        before = [s for s in steps_of(session, [run_id])[run_id] if s.position < step.position]
        if run.status == RunStatus.failed.value or any(s.status != StepStatus.succeeded.value for s in before):
            return {"status": "blocked"}
        step.status, step.attempts, step.started_at, step.updated_at = StepStatus.running.value, \
            step.attempts + 1, now, now
        run.status, run.updated_at = RunStatus.running.value, now
        run.started_at = run.started_at or now
        session.commit()

    with db.sessionmaker() as session:                     # 2: the work, committed with the step's success
        try:
            step = session.scalars(select(PipelineStep).where(PipelineStep.run_id == run_id,
                                                              PipelineStep.name == name).with_for_update()).one()
            if step.status == StepStatus.succeeded.value:   # a duplicate finished while we waited for the lock
                session.rollback()
                return {"status": "skipped"}
            run = session.get(PipelineRun, run_id)
            app = session.get(Application, run.application_id)
            result = handlers()[name](session, run, app, now)
            done = utcnow()
            step.status, step.result, step.error = StepStatus.succeeded.value, result, None
            step.finished_at = step.updated_at = done
            run.updated_at = done
            if name == STEPS[-1]:
                run.status, run.finished_at = RunStatus.succeeded.value, done
            session.commit()
        except BaseException:
            session.rollback()
            raise
    return {"status": "succeeded", "result": result}


def record_failure(db: Database, run_id: uuid.UUID, name: str, exc: BaseException, *, final: bool,
                   now: datetime | None = None) -> None:
    """Note a failed try: ``retrying`` (the task tries again) or ``failed`` (event ``pipeline.failed``)."""
    now = now or utcnow()
    text = str(exc) if isinstance(exc, StepError) else f"{type(exc).__name__}: {exc}"
    with db.sessionmaker() as session:
        step = session.scalars(select(PipelineStep).where(PipelineStep.run_id == run_id, PipelineStep.name == name)
                               .with_for_update()).first()
        if step is None or step.status == StepStatus.succeeded.value:
            return
        run = session.scalars(select(PipelineRun).where(PipelineRun.id == run_id).with_for_update()).one()
        step.status = StepStatus.failed.value if final else StepStatus.retrying.value
        step.error, step.updated_at = text[:4000], now
        run.updated_at = now
        if final:
            run.status = RunStatus.failed.value
            app = session.get(Application, run.application_id)
            core.event(session, "pipeline.failed", app, now, run_id=str(run.id), version=run.version, step=name,
                       error=text[:1000])
        session.commit()
    log.warning("pipeline step failed", extra={"run_id": str(run_id), "step": name, "final": final, "error": text})


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


# --- the last step -----------------------------------------------------------------------------------------------------

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
