"""Deemed approval (Zustimmungsfiktion, § 127 (3) TKG): an open case whose decision period has expired is granted
by law. The system records it as taking effect on the deadline day (``effective_on``), at the instant the period
expired (``decided_at`` = 24:00 Europe/Berlin on that day), whenever the sweep or a command notices it.

The sweep (``sweep``; run by the beat task ``permits.sweep_deadlines`` and by ``breitband deadlines run``):
* processes applications in batches, each batch in its own transaction;
* locks the applications with ``FOR UPDATE SKIP LOCKED``: two sweeps running at once take disjoint batches and
  never wait for each other; an application a user is changing right now is taken by the next run;
* re-reads the cases under the lock, so a case decided in the meantime is left alone: running it twice issues
  nothing twice;
* writes a batch set-based (``repository.deem_due``: three statements for up to ``batch_size`` applications), the
  same rows ``issue`` and ``core.touch`` write one case at a time inside a command, in two batch loops side by side;
* catches up after downtime: every case whose deadline lies before ``now`` is handled, with its own deadline as
  effective date, not the day of the sweep.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from breitband import clock
from breitband.dates import as_aware, iso
from breitband.db import Database
from permits import core, repository
from permits.models import Application, Case, CaseStatus

log = logging.getLogger("permits.deadlines")

LEGAL_BASIS = "§ 127 Abs. 3 Satz 1 TKG (Zustimmungsfiktion)"


def is_due(case: Case, now: datetime) -> bool:
    return case.status in core.OPEN and case.deadline_at is not None and case.deadline_at <= now


def issue(session: Session, app: Application, case: Case, now: datetime) -> dict[str, Any]:
    """Turn one due case into ``deemed_granted`` (the caller holds the locks)."""
    before_status, before_version = case.status, case.row_version
    case.status = CaseStatus.deemed_granted.value
    case.decided_at = case.deadline_at
    case.effective_on = case.decision_due
    case.decision = {
        "outcome": CaseStatus.deemed_granted.value, "legal_basis": LEGAL_BASIS,
        "effective_on": iso(case.decision_due), "effective_at": iso(case.deadline_at),
        "decision_due_statutory": iso(case.decision_due_statutory or case.decision_due),
        "moved": ((case.due_moves or {}).get("decision") or {}).get("reason"),
        "complete_at": iso(case.complete_at) if case.complete_at else None,
        "extended": case.extension is not None, "issued_at": iso(now),
        "conditions": [], "additional_conditions": [], "reasons": [], "explanation": None,
    }
    case.updated_at = now
    session.flush()
    core.audit(session, app=app, case=case, actor=core.SYSTEM, command="deemed-approval", at=now,
               version_before=before_version, version_after=case.row_version, status_before=before_status,
               status_after=case.status,
               detail={"effective_on": case.effective_on, "decision_due": case.decision_due,
                       "complete_at": case.complete_at, "extended": case.extension is not None})
    core.event(session, "case.deemed_granted", app, now, case, effective_on=case.effective_on,
               effective_at=case.deadline_at)
    return {"case_id": str(case.id), "application_id": str(app.id), "reference": app.reference,
            "authority_org_id": str(case.authority_org_id), "effective_on": iso(case.effective_on)}


def apply_due(session: Session, app: Application, cases: list[Case], now: datetime) -> list[dict[str, Any]]:
    """Issue what fell due before ``now`` (inside a command that already holds the locks)."""
    issued = [issue(session, app, c, now) for c in cases if is_due(c, now)]
    if issued:
        core.touch(session, app, cases, now)
        session.flush()
    return issued


def sweep_batch(session: Session, now: datetime, batch_size: int, tenant_key: str | None = None,
                window: int | None = None) -> tuple[int, list[dict[str, Any]]]:
    """One batch: → (applications locked, deemed approvals issued). The caller commits."""
    apps = repository.due_applications(session, now, batch_size, tenant_key, window)
    issued = repository.deem_due(session, apps, now, issued_at=iso(now), legal_basis=LEGAL_BASIS,
                                 actor_name=core.SYSTEM.name)
    return len(apps), issued


# Batches spend their time waiting for index and heap pages; two connections overlap that well (about 1.8 times the
# approvals per second with 1,000,000 applications on two cores; see bench/inbox.py).
SWEEP_WORKERS = 2


def _batches(db: Database, now: datetime, batch_size: int, tenant_key: str | None, window: int | None
             ) -> tuple[int, list[dict[str, Any]]]:
    issued: list[dict[str, Any]] = []
    batches = 0
    while True:
        # The sweep commits, once per batch, on purpose: a batch's locks are held only while it is written, and a
        # failure loses one batch, not the approvals issued before it. So the sweep is not a service that a caller
        # wraps in its transaction but a runner like a task (its callers, the beat task and `breitband deadlines
        # run`, pass the Database): it owns the loop and each batch's unit of work.
        with db.transaction() as session:
            locked, got = sweep_batch(session, now, batch_size, tenant_key, window)
        if not locked:
            break
        batches += 1
        issued += got
        if not got and locked < batch_size:
            break
    return batches, issued


def sweep(db: Database, now: datetime | None = None, *, batch_size: int = 500, tenant_key: str | None = None,
          workers: int = SWEEP_WORKERS) -> dict[str, Any]:
    """Issue every deemed approval due at ``now`` (default: the current time). Idempotent and concurrency-safe.

    ``workers`` batch loops run side by side, each on its own connection (SKIP LOCKED keeps their batches apart).
    A Database whose sessions share one connection (the tests' rolled-back transaction) gets one."""
    now = as_aware(now or clock.now()).astimezone(timezone.utc)
    if not isinstance(db.sessionmaker.kw.get("bind"), Engine):
        workers = 1
    if workers <= 1:
        results = [_batches(db, now, batch_size, tenant_key, None)]
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="sweep") as pool:
            futures = [pool.submit(_batches, db, now, batch_size, tenant_key, (workers + 1) * batch_size)
                       for _ in range(workers)]
            results = [f.result() for f in futures]
    issued = sorted((c for _, got in results for c in got), key=lambda c: c["application_id"])
    if issued:
        log.info("deemed approvals issued", extra={"count": len(issued), "now": iso(now)})
    return {"now": iso(now), "batches": sum(b for b, _ in results), "deemed_granted": len(issued), "cases": issued}
