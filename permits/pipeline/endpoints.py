"""Pipeline endpoints: progress per step on an application, and retrying a failed step (tenant admins)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from breitband import clock
from breitband.auth import require
from breitband.dates import iso
from breitband.db import get_read_session, write_session
from breitband.identity import Principal
from breitband.models import Role
from notifications.outbox import send_after_commit
from permits import repository
from permits.pipeline import service as pipeline
from permits.pipeline.models import PipelineRun, PipelineStep, StepStatus

router = APIRouter(tags=["pipeline"])


def pipeline_out(session: Session, principal: Principal, application_id: uuid.UUID) -> dict[str, Any]:
    """Runs newest first, each step with its status. Errors (and the results' internals) are for tenant admins;
    the applicant sees the progress and the plausibility findings, authorities everything but errors."""
    app = repository.get_application(session, principal, application_id)
    runs = list(session.scalars(select(PipelineRun).where(PipelineRun.application_id == app.id)
                                .order_by(PipelineRun.version.desc())))
    steps = pipeline.steps_of(session, [r.id for r in runs])
    admin = principal.is_tenant_admin
    authority = repository.is_authority(principal)

    def result_for(step: PipelineStep) -> dict[str, Any] | None:
        if step.result is None or admin or authority:
            return step.result
        if step.name == "checks":
            return {"plausibility": step.result.get("plausibility"), "conflicts": step.result.get("conflicts")}
        return None

    return {"application_id": str(app.id), "reference": app.reference, "runs": [{
        "id": str(r.id), "version": r.version, "trigger": r.trigger, "status": r.status,
        "created_at": iso(r.created_at), "started_at": iso(r.started_at) if r.started_at else None,
        "finished_at": iso(r.finished_at) if r.finished_at else None,
        "steps": [{"name": s.name, "status": s.status, "attempts": s.attempts,
                   "started_at": iso(s.started_at) if s.started_at else None,
                   "finished_at": iso(s.finished_at) if s.finished_at else None,
                   "error": s.error if admin else None, "result": result_for(s),
                   "allowed_commands": ["retry"] if admin and s.status == StepStatus.failed.value else []}
                  for s in steps[r.id]]} for r in runs]}


@router.get("/applications/{application_id}/pipeline",
            summary="The review pipeline's progress per step (errors only for tenant admins)")
def get_pipeline(application_id: uuid.UUID, principal: Principal = Depends(require()),
                 session: Session = Depends(get_read_session)) -> dict[str, Any]:
    return pipeline_out(session, principal, application_id)


@router.post("/applications/{application_id}/pipeline/{step}/retry", status_code=202,
             summary="Run a failed pipeline step again, and the steps after it (tenant admin)")
def retry_step(application_id: uuid.UUID, step: str, principal: Principal = Depends(require(Role.tenant_admin)),
               session: Session = write_session, now: datetime = Depends(clock.now)) -> dict[str, Any]:
    app = repository.get_application(session, principal, application_id)
    run = pipeline.retry(session, app.id, step, now)
    send_after_commit(session, pipeline.KICK_TASK, [str(run.id)])
    return pipeline_out(session, principal, app.id)
