"""The deadline sweep on COMMITTED data, as production runs it: `breitband deadlines run --now` in a subprocess, the
Celery task on a real worker, twice in a row, twice at the same time, and past a row another transaction holds.

The data lives in tenant he (its real authorities and roads) in the year 2025, and is removed afterwards (the
append-only audit records stay, as they would in production)."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import sessionmaker

from breitband import dates, identity
from breitband.db import Database
from notifications.models import Event
from permits import repository
from permits.applications import service
from permits.cases import deemed, review
from permits.models import AuditRecord, Case
from permits.schemas import ApplicationCreate, ExtendDeadlineIn, RequestInformationIn
from tests.support.api import collection, draft_body, trench
from tests.support.cli import breitband_cli
from tests.support.people import build_he

PREFIX = "sweep-"


def at(text_: str) -> datetime:
    return dates.parse_instant(text_)


@pytest.fixture
def committed(engine, he_data):
    """A Database that really commits, people in tenant he, and a submit helper; everything removed afterwards."""
    db = Database(engine=engine, readonly_engine=engine, sessionmaker=sessionmaker(engine, expire_on_commit=False),
                  readonly_sessionmaker=sessionmaker(engine, expire_on_commit=False))
    with db.sessionmaker() as s:
        people = build_he(s, prefix=PREFIX)
        s.commit()
    app_ids: list[uuid.UUID] = []

    def submit(line: dict, received: str) -> tuple[uuid.UUID, uuid.UUID]:
        now = at(received)
        with db.sessionmaker() as s:
            principal = identity.authenticate(s, people.operator.token)
            body = draft_body(collection(trench(line)), planned_start="2026-06-01")
            app = service.create(s, principal, ApplicationCreate.model_validate(body), now)
            service.submit(s, principal, app.id, None, now)
            case_id = s.scalars(select(Case.id).where(Case.application_id == app.id)).one()
            s.commit()
        app_ids.append(app.id)
        return app.id, case_id

    yield db, people, submit
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM permit_events WHERE application_id = ANY(:ids)"), {"ids": app_ids})
        conn.execute(text("DELETE FROM applications WHERE id = ANY(:ids)"), {"ids": app_ids})
        conn.execute(text("DELETE FROM users WHERE email LIKE :p"), {"p": PREFIX + "%"})
        conn.execute(text("DELETE FROM organisations WHERE name LIKE :p"), {"p": PREFIX + "%"})
        conn.execute(text("DELETE FROM permit_reference_counters WHERE tenant_key = 'he' AND year = 2025"))


cli = breitband_cli      # tests/support/cli.py


def case_row(db, case_id):
    with db.sessionmaker() as s:
        return s.get(Case, case_id)


@pytest.mark.slow
def test_cli_issues_deemed_approvals_on_the_deadline_and_is_idempotent(committed, lines):
    db, people, submit = committed
    # statutory last day Saturday 2026-01-10: the period ends on Monday 2026-01-12 (§ 193 BGB)
    _, first = submit(lines["neu_isenburg"], "2025-10-10T09:00:00+02:00")
    _, second = submit(lines["neu_isenburg_2"], "2025-10-20T15:00:00+02:00")       # due Tuesday 2026-01-20

    for now in ("2026-01-10T23:59:59+01:00", "2026-01-12T23:59:59+01:00"):
        run = cli("deadlines", "run", "--now", now)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["deemed_granted"] == 0

    run = cli("deadlines", "run", "--now", "2026-01-15T08:00:00")                   # Berlin wall time
    out = json.loads(run.stdout)
    assert (out["now"], out["deemed_granted"]) == ("2026-01-15T07:00:00Z", 1)
    assert [(c["case_id"], c["effective_on"], c["reference"]) for c in out["cases"]] == [
        (str(first), "2026-01-12", "HE-2025-000001")]
    case = case_row(db, first)
    assert (case.status, case.effective_on.isoformat(), case.decided_at) == (
        "deemed_granted", "2026-01-12", at("2026-01-13T00:00:00+01:00"))
    assert case.decision["issued_at"] == "2026-01-15T07:00:00Z"
    assert (case.decision["decision_due_statutory"], case.decision["moved"]) == (
        "2026-01-10", "der 10.01.2026 ist ein Samstag, der 11.01.2026 ist ein Sonntag")

    again = json.loads(cli("deadlines", "run", "--now", "2026-01-15T08:00:00").stdout)
    assert again["deemed_granted"] == 0
    later = json.loads(cli("deadlines", "run", "--now", "2026-03-01").stdout)        # catches up after downtime
    assert [(c["case_id"], c["effective_on"]) for c in later["cases"]] == [(str(second), "2026-01-20")]
    with db.sessionmaker() as s:
        audits = s.scalars(select(AuditRecord).where(AuditRecord.case_id.in_([first, second]),
                                                     AuditRecord.command == "deemed-approval")).all()
        events = s.scalars(select(Event).where(Event.case_id.in_([first, second]),
                                               Event.type == "case.deemed_granted")).all()
    assert sorted(a.detail["effective_on"] for a in audits) == ["2026-01-12", "2026-01-20"]
    assert sorted(e.payload["effective_on"] for e in events) == ["2026-01-12", "2026-01-20"]

    bad = cli("deadlines", "run", "--now", "gestern")
    assert (bad.returncode, bad.stderr.strip()) == (2, "error: --now 'gestern' is not an ISO 8601 date or datetime")


@pytest.mark.worker
def test_the_beat_task_runs_on_a_real_worker(committed, lines):
    from celery.contrib.testing.worker import start_worker

    from breitband.celery import BEAT_SCHEDULE
    from breitband.worker import celery_app
    from permits.cases.tasks import sweep_deadlines

    assert BEAT_SCHEDULE["permits-sweep-deadlines"] == {"task": "permits.sweep_deadlines", "schedule": 300.0}
    db, people, submit = committed
    _, case_id = submit(lines["neu_isenburg"], "2025-10-10T09:00:00+02:00")
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10, loglevel="WARNING"):
        # statutory last day Saturday 2026-01-10, moved to Monday 2026-01-12: expires 2026-01-13 00:00 Berlin
        assert sweep_deadlines.delay(now="2026-01-12T23:59:59+01:00").get(timeout=30)["deemed_granted"] == 0
        result = sweep_deadlines.delay(now="2026-01-13T00:00:00+01:00").get(timeout=30)
        assert [(c["case_id"], c["effective_on"]) for c in result["cases"]] == [(str(case_id), "2026-01-12")]
        assert sweep_deadlines.delay(now="2026-01-14").get(timeout=30)["deemed_granted"] == 0
    assert case_row(db, case_id).status == "deemed_granted"


def test_a_stopped_clock_is_not_swept(committed, lines):
    db, people, submit = committed
    _, case_id = submit(lines["neu_isenburg"], "2025-10-10T09:00:00+02:00")
    with db.sessionmaker() as s:
        principal = identity.authenticate(s, people.neu_isenburg.token)
        review.request_information(s, principal, case_id, RequestInformationIn(message="Querschnitt fehlt"), None,
                                   at("2025-10-20T09:00:00+02:00"))
        s.commit()
    assert deemed.sweep(db, at("2026-06-01"))["deemed_granted"] == 0
    assert case_row(db, case_id).status == "incomplete"


def test_a_locked_application_is_skipped_and_taken_by_the_next_run(committed, lines, engine):
    db, people, submit = committed
    locked_app, locked_case = submit(lines["neu_isenburg"], "2025-10-10T09:00:00+02:00")
    _, free_case = submit(lines["neu_isenburg_2"], "2025-10-10T10:00:00+02:00")
    with engine.connect() as holder:                   # e.g. a user's command in flight on that application
        holder.execute(text("SELECT id FROM applications WHERE id = :id FOR UPDATE"), {"id": locked_app})
        outcome: list = []
        sweeper = threading.Thread(target=lambda: outcome.append(deemed.sweep(db, at("2026-01-13"))), daemon=True)
        sweeper.start()
        sweeper.join(timeout=20)
        assert outcome, "the sweep waited for the locked application instead of skipping it"
        first = outcome[0]
        assert [c["case_id"] for c in first["cases"]] == [str(free_case)]
        assert case_row(db, locked_case).status == "received"
        holder.rollback()
    second = deemed.sweep(db, at("2026-01-13"))      # due Saturday 2026-01-10, moved to Monday 2026-01-12
    assert [(c["case_id"], c["effective_on"]) for c in second["cases"]] == [(str(locked_case), "2026-01-12")]


def test_two_sweeps_at_once_issue_each_approval_exactly_once(committed, lines):
    db, people, submit = committed
    cases = [submit(lines[name], f"2025-10-{day:02d}T09:00:00+02:00")[1]
             for day, name in zip(range(1, 7), ["neu_isenburg", "neu_isenburg_2"] * 3)]
    results: list[dict] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def sweeper():
        try:
            barrier.wait(timeout=10)
            results.append(deemed.sweep(db, at("2026-02-01"), batch_size=1))
        except BaseException as exc:            # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=sweeper) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    issued = sorted(c["case_id"] for r in results for c in r["cases"])
    assert issued == sorted(str(c) for c in cases)
    with db.sessionmaker() as s:
        audits = s.scalars(select(AuditRecord.case_id).where(AuditRecord.case_id.in_(cases),
                                                             AuditRecord.command == "deemed-approval")).all()
        statuses = s.scalars(select(Case.status).where(Case.id.in_(cases))).all()
    assert sorted(audits) == sorted(cases)
    assert set(statuses) == {"deemed_granted"}
    assert [c.effective_on.isoformat() for c in sorted((case_row(db, c) for c in cases),
                                                       key=lambda c: c.received_at)] == [
        # statutory 1-6 January 2026; Neujahr (Thu) → Fri 2nd, Sat 3rd and Sun 4th → Mon 5th (§ 193 BGB)
        "2026-01-02", "2026-01-02", "2026-01-05", "2026-01-05", "2026-01-05", "2026-01-06"]


def test_reference_numbers_are_unique_under_concurrency(committed):
    db, people, submit = committed
    references: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)
    with db.sessionmaker() as s:
        principal = identity.authenticate(s, people.operator.token)
        s.commit()

    def create():
        try:
            with db.sessionmaker() as s:
                barrier.wait(timeout=10)
                app = service.create(s, principal, ApplicationCreate(project_name="parallel"),
                                     at("2025-11-02T10:00:00+01:00"))
                s.commit()
                references.append(app.reference)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    with db.sessionmaker() as s:          # let the fixture remove them
        ids = s.scalars(text("SELECT id FROM applications WHERE reference LIKE 'HE-2025-%' "
                             "AND project_name = 'parallel'")).all()
    committed_ids = list(ids)
    assert errors == []
    assert sorted(references) == [f"HE-2025-{n:06d}" for n in range(1, 7)]
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM permit_events WHERE application_id = ANY(:ids)"), {"ids": committed_ids})
        conn.execute(text("DELETE FROM applications WHERE id = ANY(:ids)"), {"ids": committed_ids})


def test_the_batch_sweep_writes_what_a_command_writes(committed, lines):
    """The sweep issues deemed approvals set-based, a batch at a time; a command that meets a lapsed case settles it
    case by case (deemed.apply_due). Both must write the same: case, audit record, events, application. Covered
    with and without an extension (a running clock stores "no extension" as JSON null)."""
    db, people, submit = committed
    pairs = []
    for extend in (False, True):
        pair = [submit(lines["neu_isenburg"], "2025-10-10T09:00:00+02:00") for _ in range(2)]
        if extend:
            with db.sessionmaker() as s:
                reviewer = identity.authenticate(s, people.neu_isenburg.token)
                for _, case_id in pair:
                    review.extend_deadline(s, reviewer, case_id, ExtendDeadlineIn(reason="Abstimmung"), None,
                                           at("2025-12-01T10:00:00+01:00"))
                s.commit()
        pairs.append(pair)
    now = at("2026-03-01T06:30:00.250000+01:00")
    with db.sessionmaker() as s:                               # inside a command: one case at a time
        for (app_id, _), _ in pairs:
            deemed.apply_due(s, repository.lock_application(s, app_id), repository.lock_cases(s, app_id), now)
        s.commit()
    swept = deemed.sweep(db, now)                              # the rest: the batch sweep
    assert sorted(c["case_id"] for c in swept["cases"]) == sorted(str(b[1]) for _, b in pairs)

    def rows(app_id, case_id):
        with db.engine.connect() as conn:
            case = conn.execute(text("SELECT to_jsonb(c) - 'id' - 'application_id' - 'created_at' "
                                     "FROM cases c WHERE id = :id"), {"id": case_id}).scalar()
            app = conn.execute(text("SELECT status, row_version, updated_at FROM applications WHERE id = :id"),
                               {"id": app_id}).one()
            audit = conn.execute(text("SELECT to_jsonb(a) - 'id' - 'application_id' - 'case_id' FROM permit_audit a "
                                      "WHERE case_id = :id AND command = 'deemed-approval'"), {"id": case_id}).all()
            events = conn.execute(text("SELECT type, case_id IS NOT NULL, payload - 'application_id' - 'reference' "
                                       "- 'case_id', created_at, published_at FROM permit_events "
                                       "WHERE application_id = :id AND created_at = :now ORDER BY seq"),
                                  {"id": app_id, "now": now}).all()
        return case, tuple(app), [r[0] for r in audit], [tuple(r) for r in events]

    for (app_a, case_a), (app_b, case_b) in pairs:
        by_command, by_sweep = rows(app_a, case_a), rows(app_b, case_b)
        assert by_command == by_sweep
        case, app, audit, events = by_sweep
        assert (case["status"], case["row_version"], app[0]) == ("deemed_granted", 2 + (case["extension"] is not None),
                                                                 "granted")
        assert case["decision"]["extended"] is (case["extension"] is not None)
        assert case["decision"]["issued_at"] == "2026-03-01T05:30:00.250000Z"
        assert [e[0] for e in events] == ["case.deemed_granted", "application.status_changed"]
        assert len(audit) == 1 and audit[0]["detail"]["extended"] is (case["extension"] is not None)
