"""PostgreSQL restarted while clients submit applications (private cluster, see tests/support/faults.py)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.api import collection, draft_body, trench
from tests.support.waiting import wait_for

pytestmark = pytest.mark.worker

REQUEST_TIMEOUT_S = 20.0
STEPS = {"resolution": "succeeded", "checks": "succeeded", "participation": "succeeded",
         "notifications": "succeeded"}


@dataclass
class Attempt:
    """One round of the client: create a draft, then submit it."""

    reference: str
    create: int | None = None
    submit: int | None = None
    app_id: str | None = None
    violations: list[str] = field(default_factory=list)


class Submitter(threading.Thread):
    """A client submitting applications in a loop, as fast as the service answers (0.2 s pause after a 503: it
    retries sooner than Retry-After asks, to send as many requests into the outage as it can)."""

    def __init__(self, stack, tag: str) -> None:
        super().__init__(daemon=True)
        self.stack, self.tag = stack, tag
        self.stop = threading.Event()
        self.attempts: list[Attempt] = []
        self.slowest_s = 0.0

    def ok(self) -> int:
        return sum(1 for a in self.attempts if a.submit == 200)

    def unavailable(self) -> int:
        return sum(1 for a in self.attempts for s in (a.create, a.submit) if s == 503)

    def _call(self, attempt: Attempt, what: str, http: httpx.Client, *args, expect: int, **kwargs):
        started = time.monotonic()
        try:
            r = http.post(*args, **kwargs)
        except httpx.HTTPError as exc:           # a timeout (hung request) or a broken connection
            attempt.violations.append(f"{what}: {type(exc).__name__} after {time.monotonic() - started:.1f} s")
            return None
        finally:
            self.slowest_s = max(self.slowest_s, time.monotonic() - started)
        if r.status_code == 503:
            if not r.headers.get("retry-after", "").isdigit():
                attempt.violations.append(f"{what}: 503 without Retry-After")
            if not r.headers.get("content-type", "").startswith("application/problem+json"):
                attempt.violations.append(f"{what}: 503 is not problem+json")
        elif r.status_code != expect:
            attempt.violations.append(f"{what}: {r.status_code} {r.text[:300]}")
        return r

    def run(self) -> None:
        headers = self.stack.people.operator.headers
        with httpx.Client(base_url=str(self.stack.http.base_url), timeout=REQUEST_TIMEOUT_S) as http:
            n = 0
            while not self.stop.is_set():
                n += 1
                a = Attempt(reference=f"PG-{self.tag}-{n:03d}")
                self.attempts.append(a)
                body = draft_body(collection(trench(self.stack.route)), planned_start="2027-03-01",
                                  planned_end="2027-04-30", operator_reference=a.reference,
                                  contact={"name": "Rita Zuverlässig", "email": self.stack.people.contact_email})
                r = self._call(a, "create", http, "/api/v1/applications", json=body, headers=headers, expect=201)
                a.create = r.status_code if r is not None else None
                if a.create == 201:
                    a.app_id = r.json()["id"]
                    r = self._call(a, "submit", http, f"/api/v1/applications/{a.app_id}/submit", json={},
                                   headers={**headers, "If-Match": r.headers["etag"]}, expect=200)
                    a.submit = r.status_code if r is not None else None
                if a.create != 201 or a.submit != 200:
                    time.sleep(0.2)


def state(stack, app_id: str) -> dict:
    """What the database holds of an application's submission."""
    events = dict(stack.rows("SELECT type, count(*) FROM permit_events WHERE application_id = :a GROUP BY type",
                             a=app_id))
    return {
        "status": stack.scalar("SELECT status FROM applications WHERE id = :a", a=app_id),
        "submitted": stack.scalar("SELECT submitted_at IS NOT NULL FROM applications WHERE id = :a", a=app_id),
        "cases": stack.scalar("SELECT count(*) FROM cases WHERE application_id = :a", a=app_id),
        "submitted_events": events.get("application.submitted", 0),
        "case_events": events.get("case.received", 0),
        "created_events": events.get("application.created", 0),
        "runs": stack.scalar("SELECT count(*) FROM pipeline_runs WHERE application_id = :a", a=app_id),
        "versions": stack.scalar("SELECT count(*) FROM application_versions WHERE application_id = :a", a=app_id),
    }


# A submission is all or nothing: one of exactly these two states (the route lies on a road of Neu-Isenburg: one
# case, for Stadt Neu-Isenburg).
SUBMITTED = {"status": "submitted", "submitted": True, "cases": 1, "submitted_events": 1, "case_events": 1,
             "created_events": 1, "runs": 1, "versions": 1}
DRAFT = {"status": "draft", "submitted": False, "cases": 0, "submitted_events": 0, "case_events": 0,
         "created_events": 1, "runs": 0, "versions": 1}


def test_postgres_restarted_during_submissions(stack):
    """Invariant: while PostgreSQL is restarted (``pg_ctl restart -m fast``) and later stopped (until the client has had
    three answers while it is down) and started, a client submitting in a loop gets only 2xx or 503 problem+json with
    Retry-After — never a 500, never a request hanging past 20 s; every submit answered 200 is completely in the
    database (submitted, one case, its application.submitted and case.received events, one pipeline run), every
    application whose submit or creation was answered 503 is either completely submitted or an untouched draft — nothing
    half-written; a 503'd submission repeated after the restart succeeds, and every submitted application's pipeline
    completes afterwards (the worker reconnects; beat's pipeline_resume and relay pick up what the outage
    interrupted)."""
    client = Submitter(stack, uuid.uuid4().hex[:6])
    client.start()
    try:
        wait_for(lambda: client.ok() >= 2 or not client.is_alive(), 90, what="two submissions before the restart")
        stack.pg.restart("fast")
        ok = client.ok()
        wait_for(lambda: client.ok() >= ok + 2 or not client.is_alive(), 90, what="submissions after the restart")
        stack.pg.stop("fast")
        unavailable = client.unavailable()
        wait_for(lambda: client.unavailable() >= unavailable + 3 or not client.is_alive(), 60,
                 what="three answers 503 while PostgreSQL is stopped")
        stack.pg.start()
        ok = client.ok()
        wait_for(lambda: client.ok() >= ok + 2 or not client.is_alive(), 90, what="submissions after the start")
    finally:
        client.stop.set()
        client.join(REQUEST_TIMEOUT_S * 2 + 5)
        if not stack.pg.running():
            stack.pg.start()
    attempts = client.attempts
    print(f"\npostgres restart: {len(attempts)} rounds, {client.ok()} submitted, {client.unavailable()} answers 503, "
          f"slowest request {client.slowest_s:.2f} s")
    assert not client.is_alive()
    assert [(a.reference, v) for a in attempts for v in a.violations] == []
    assert client.slowest_s < REQUEST_TIMEOUT_S
    assert client.unavailable() >= 1            # the time without a server was answered 503, not waited out
    assert client.ok() >= 6

    # nothing half-written: each application in one of the two states, as its answers say
    for a in attempts:
        found = stack.rows("SELECT id FROM applications WHERE operator_reference = :r", r=a.reference)
        if a.create == 201:
            assert [str(r[0]) for r in found] == [a.app_id]
            expected = SUBMITTED if a.submit == 200 else None
            got = state(stack, a.app_id)
            assert got == (expected or (SUBMITTED if got["status"] == "submitted" else DRAFT)), (a, got)
        else:                                    # 503 on create: the draft exists completely or not at all
            assert a.create == 503 and len(found) <= 1, a
            if found:
                assert state(stack, str(found[0][0])) == DRAFT, a
    half = [a for a in attempts if a.submit == 503 and state(stack, a.app_id)["status"] == "draft"]

    # the client repeats its 503'd submissions after the restart: they go through
    headers = stack.people.operator.headers
    for a in half:
        etag = stack.http.get(f"/api/v1/applications/{a.app_id}", headers=headers).headers["etag"]
        r = stack.http.post(f"/api/v1/applications/{a.app_id}/submit", json={},
                            headers={**headers, "If-Match": etag})
        assert r.status_code == 200, r.text
        assert state(stack, a.app_id) == SUBMITTED

    # the pipeline resumes: every submitted application's run completes (one beat cycle every 2 s)
    submitted = [a.app_id for a in attempts if a.app_id]
    assert [state(stack, app_id)["status"] for app_id in submitted] == ["submitted"] * len(submitted)

    def all_completed() -> bool:
        stack.tick()
        return all(stack.run_status(app_id) == "succeeded" for app_id in submitted)

    wait_for(all_completed, 120, interval=2.0, what="every pipeline run to complete after the restart")
    for app_id in submitted:
        steps = dict(stack.rows("SELECT s.name, s.status FROM pipeline_steps s JOIN pipeline_runs r ON "
                                "r.id = s.run_id WHERE r.application_id = :a", a=app_id))
        assert steps == STEPS
        events = dict(stack.rows("SELECT type, count(*) FROM permit_events WHERE application_id = :a AND type IN "
                                 "('statement.requested', 'pipeline.completed') GROUP BY type", a=app_id))
        assert events == {"statement.requested": 1, "pipeline.completed": 1}, app_id
        assert stack.scalar("SELECT count(*) FROM statement_requests WHERE application_id = :a", a=app_id) == 1
