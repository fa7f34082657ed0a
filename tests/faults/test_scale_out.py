"""Scale-out on one database: two API processes and two workers (each a prefork pool of 2) of the private stack
(tests/support/faults.py), as two machines of a deployment would run them. Applications arrive through both APIs;
the deadline sweep, the outbox relay and the document generation run on both workers at once (every beat task sent
several times, as two beats or a redelivery would). Each piece of work is done exactly once: one feed entry and one
delivery per event and recipient, one e-mail per event and recipient at the SMTP server, one pipeline run and one
statement request per body, one deemed approval per case, one signed document per decided case."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.support.api import collection, draft_body, trench
from tests.support.faults import BIN, Service, queue_drained
from tests.support.waiting import free_port, wait_for

pytestmark = pytest.mark.worker


def both_idle(stack, names: tuple[str, ...]) -> bool:
    """The queue is empty and neither worker runs or holds a message (asked twice; see worker_idle)."""
    for _ in range(2):
        if not queue_drained(stack):
            return False
        with stack.celery.connection_for_write() as conn:
            inspect = stack.celery.control.inspect(timeout=2.0, connection=conn)
            active, reserved = inspect.active() or {}, inspect.reserved() or {}
        if not all(any(n in host for host in active) and any(n in host for host in reserved) for n in names):
            return False                                             # a worker did not answer (yet)
        if any(active.values()) or any(reserved.values()):
            return False
    return True


def submit(stack, http: httpx.Client, reference: str) -> dict:
    body = draft_body(collection(trench(stack.route)), planned_start="2027-03-01", planned_end="2027-04-30",
                      operator_reference=reference,
                      contact={"name": "Rita Zuverlässig", "email": stack.people.contact_email})
    headers = stack.people.operator.headers
    r = http.post("/api/v1/applications", json=body, headers=headers)
    assert r.status_code == 201, r.text
    r = http.post(f"/api/v1/applications/{r.json()['id']}/submit", json={},
                  headers={**headers, "If-Match": r.headers["etag"]})
    assert r.status_code == 200, r.text
    return r.json()


def test_two_apis_and_two_workers_do_every_piece_of_work_once(stack):
    port = free_port()
    api2 = Service("api-2", [str(BIN / "breitband"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                   stack.env(), stack.root / "api-2.log")
    worker2 = Service("worker-b", [str(BIN / "breitband"), "worker", "--concurrency", "2", "--loglevel", "WARNING",
                                   "--hostname=scaleb@%h", "--without-heartbeat"], stack.env(),
                      stack.root / "worker-b.log")
    api2.start()
    worker2.start()
    http2 = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0)
    first_worker = f"faults{stack._workers}@"
    try:
        wait_for(lambda: _up(http2), 90, 0.2, what="the second API")
        wait_for(lambda: _answers(stack, "scaleb@"), 90, 0.5, what="the second worker")
        apis = (stack.http, http2)
        tag = datetime.now().strftime("%H%M%S")
        apps = [submit(stack, apis[i % 2], f"SO-{tag}-{i}") for i in range(6)]
        ids = [a["id"] for a in apps]
        for _ in range(3):                           # beat's backstops, from "two beats"
            stack.tick()
        wait_for(lambda: all(stack.run_status(a) == "succeeded" for a in ids), 180, 0.5, what="every pipeline")

        # Decide the first three through alternating APIs; leave the rest for the deadline sweep.
        authority = stack.people.authority.headers
        decided = []
        for i, app in enumerate(apps[:3]):
            http = apis[i % 2]
            case_id = app["cases"][0]["id"]
            r = http.get(f"/api/v1/cases/{case_id}", headers=authority)
            body = {"outcome": "granted", "confirm_pending_statements": True}
            r = http.post(f"/api/v1/cases/{case_id}/decision", json=body,
                          headers={**authority, "If-Match": r.headers["etag"]})
            assert r.status_code == 200, r.text
            decided.append(case_id)
        # The deadline sweep, told a time a year later, sent six times at once: both workers run it concurrently.
        later = (datetime.now(timezone.utc) + timedelta(days=365)).isoformat()
        for _ in range(6):
            stack.send("permits.sweep_deadlines", [later])
        for _ in range(4):
            stack.send("notifications.relay")
            stack.send("permits.documents_sweep")
            stack.send("notifications.dispatch_due")
        deemed = [a["cases"][0]["id"] for a in apps[3:]]
        wait_for(lambda: stack.scalar("SELECT count(*) FROM decision_documents WHERE case_id = ANY(:c) AND "
                                      "status = 'ready'", c=decided + deemed) == 6, 240, 0.5,
                 what="a signed document for every decided and deemed case")
        wait_for(lambda: stack.scalar("SELECT count(*) FROM permit_events WHERE application_id = ANY(:a) AND "
                                      "published_at IS NULL", a=ids) == 0, 60, 0.5, what="the relay")
        for _ in range(2):
            stack.tick()
        wait_for(lambda: both_idle(stack, (first_worker, "scaleb@")), 120, 0.5, what="both workers to be idle")
        wait_for(lambda: stack.scalar("SELECT count(*) FROM notification_deliveries d JOIN permit_events e ON "
                                      "e.id = d.event_id WHERE e.application_id = ANY(:a) AND d.status NOT IN "
                                      "('delivered', 'failed')", a=ids) == 0, 120, 0.5, what="every delivery")

        # Both workers took part (each ran tasks), and both are still up.
        assert stack.worker.running() and worker2.running()
        with stack.celery.connection_for_write() as conn:
            stats = stack.celery.control.inspect(timeout=2.0, connection=conn).stats() or {}
        ran = {host: sum((s.get("total") or {}).values()) for host, s in stats.items()}
        assert any(first_worker in h and n > 0 for h, n in ran.items()), ran
        assert any("scaleb@" in h and n > 0 for h, n in ran.items()), ran

        # Exactly once, everywhere.
        assert stack.rows("SELECT application_id, version, count(*) FROM pipeline_runs WHERE application_id = "
                          "ANY(:a) GROUP BY 1, 2 HAVING count(*) > 1", a=ids) == []
        assert stack.rows("SELECT application_id, body_org_id, count(*) FROM statement_requests WHERE "
                          "application_id = ANY(:a) GROUP BY 1, 2 HAVING count(*) > 1", a=ids) == []
        assert stack.scalar("SELECT count(*) FROM permit_events WHERE type = 'case.deemed_granted' AND "
                            "case_id = ANY(:c)", c=deemed) == 3
        assert stack.rows("SELECT case_id, count(*) FROM permit_events WHERE type IN ('case.decided', "
                          "'case.deemed_granted') AND case_id = ANY(:c) GROUP BY 1 HAVING count(*) > 1",
                          c=decided + deemed) == []
        assert stack.rows("SELECT case_id, count(*) FROM decision_documents WHERE case_id = ANY(:c) GROUP BY 1 "
                          "HAVING count(*) > 1", c=decided + deemed) == []
        assert stack.rows("SELECT case_id, count(*) FROM permit_events WHERE type = 'document.issued' AND "
                          "case_id = ANY(:c) GROUP BY 1 HAVING count(*) > 1", c=decided + deemed) == []
        assert stack.rows("SELECT f.event_id, f.organisation_id, count(*) FROM notification_feed f "
                          "JOIN permit_events e ON e.id = f.event_id WHERE e.application_id = ANY(:a) "
                          "GROUP BY 1, 2 HAVING count(*) > 1",
                          a=ids) == []
        assert stack.rows("SELECT d.event_id, d.target, count(*) FROM notification_deliveries d JOIN permit_events e "
                          "ON e.id = d.event_id WHERE e.application_id = ANY(:a) GROUP BY 1, 2 HAVING count(*) > 1",
                          a=ids) == []
        for app in apps:
            mails = stack.mails_about(app["reference"])
            assert mails, app["reference"]
            assert {k: n for k, n in mails.items() if n > 1} == {}, app["reference"]
    finally:
        http2.close()
        api2.stop()
        worker2.stop()


def _answers(stack, name: str) -> bool:
    try:
        with stack.celery.connection_for_write() as conn:      # fresh: an earlier test restarted Redis
            replies = stack.celery.control.ping(timeout=1.0, connection=conn)
    except Exception:  # noqa: BLE001 - broker not reachable yet
        return False
    return any(name in host for r in replies for host in r)


def _up(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
