"""Redis (broker, results and rate-limit counters) stopped and started again (private redis-server without
persistence, see tests/support/faults.py)."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.support.faults import queue_drained, worker_idle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.worker

# A generous bound on the create + submit of one application while the broker is down (about 0.5 s on this machine;
# a wait for the broker costs ~19 s per command).
MAX_ANSWER_S = 8.0


def reconnecting(worker, mark: int) -> bool:
    """The worker has logged, since ``mark``, that it cannot reach the broker and tries again: it got past closing
    the lost connection (where Celery/kombu 5.7 exit without the workaround in breitband/celery.py) into its
    reconnect loop."""
    return "consumer: Cannot connect to redis://" in worker.output(mark)


def test_redis_stopped_and_started(stack):
    """Invariant: while Redis is down, everything that needs no broker keeps answering — the lists and details of
    applications and cases 200, a submission is accepted (201, 200) at once (no command waits for the broker),
    with its events written in its own transaction as unpublished outbox rows — and /readyz says 503; nothing is
    lost although the restarted Redis is empty (no persistence: every queued message is gone): once it is back and
    beat's relay and pipeline_resume have run, the events are published, the pipeline completes and every planned
    e-mail reaches the SMTP server exactly once, even after further relay, dispatch and resume cycles."""
    people, http = stack.people, stack.http
    stack.fresh_worker()           # holding no scheduled message (with one see the next test)
    before = stack.submit(f"RD-{uuid.uuid4().hex[:6]}-vorher")            # submitted while Redis is up
    wait_for(lambda: stack.run_status(before["id"]) == "succeeded", 60, what="the pipeline before the outage")
    # ready: the worker answers the readiness ping (within 1 s each; on a busy machine a ping may miss it)
    wait_for(lambda: http.get("/readyz").status_code == 200, 30, interval=0.5, what="/readyz 200 before the outage")

    mark = stack.worker.log_size()
    stack.redis.stop()
    try:
        r = http.get("/api/v1/applications", headers=people.operator.headers)
        assert r.status_code == 200, r.text
        assert before["id"] in [a["id"] for a in r.json()["items"]]
        r = http.get("/api/v1/cases", headers=people.authority.headers)
        assert r.status_code == 200, r.text
        assert before["reference"] in [c["reference"] for c in r.json()["items"]]
        assert http.get(f"/api/v1/applications/{before['id']}", headers=people.operator.headers).status_code == 200
        r = http.get("/readyz")
        assert (r.status_code, r.json()["ready"]) == (503, False)

        started = time.monotonic()
        during = stack.submit(f"RD-{uuid.uuid4().hex[:6]}-waehrend")     # asserts 201 and 200
        # Nothing waits for the broker: the kicks after the commits fail at once. (Before the fix in
        # notifications/outbox.py each kick waited ~19 s for Celery's Redis result backend to give up.)
        assert time.monotonic() - started < MAX_ANSWER_S
        r = http.get(f"/api/v1/applications/{during['id']}", headers=people.operator.headers)
        assert (r.status_code, r.json()["status"], len(r.json()["cases"])) == (200, "submitted", 1)
        r = http.get("/api/v1/cases", headers=people.authority.headers)
        assert during["reference"] in [c["reference"] for c in r.json()["items"]]
        # the outbox rows are there, unpublished: the after-commit kicks of both transactions were dropped
        assert dict(stack.rows("SELECT type, count(*) FROM permit_events WHERE application_id = :a AND "
                               "published_at IS NULL GROUP BY type", a=during["id"])) == {
            "application.created": 1, "application.submitted": 1, "application.status_changed": 1, "case.received": 1}
        assert stack.rows("SELECT status, enqueued_at FROM pipeline_runs WHERE application_id = :a",
                          a=during["id"]) == [("pending", None)]
        wait_for(lambda: reconnecting(stack.worker, mark) or not stack.worker.running(), 30,
                 what="the worker to try to reconnect to Redis (or to exit)")
        assert stack.worker.running()                # the worker waits for the broker, it does not die
    finally:
        stack.redis.start()
    back = time.monotonic()

    def caught_up() -> bool:
        stack.tick()                                 # beat: relay every 10 s, pipeline_resume every 60 s
        deliveries = stack.email_deliveries(during["id"])
        return (stack.run_status(during["id"]) == "succeeded" and deliveries
                and set(deliveries.values()) == {"delivered"})

    wait_for(caught_up, 90, interval=2.0, what="the outbox and the pipeline to catch up after Redis is back")
    print(f"\nredis restart: caught up {time.monotonic() - back:.1f} s after Redis was back")
    for _ in range(2):                               # more beat cycles and a redelivered relay: nothing twice
        stack.tick()
        stack.send("notifications.relay")
    wait_for(lambda: worker_idle(stack), 60, interval=0.2, what="the worker to work off the beat cycles")

    assert stack.scalar("SELECT count(*) FROM permit_events WHERE application_id = :a AND published_at IS NULL",
                        a=during["id"]) == 0
    assert dict(stack.rows("SELECT type, count(*) FROM permit_events WHERE application_id = :a GROUP BY type",
                           a=during["id"])) == {
        "application.created": 1, "application.submitted": 1, "application.status_changed": 1, "case.received": 1,
        "statement.requested": 1, "pipeline.completed": 1}
    deliveries = stack.email_deliveries(during["id"])
    mails = stack.mails_about(during["reference"])
    # the applicant's notice goes to the contact person or the operator (pipeline_audience decides): by type only
    assert {("case.received", people.authority.email), ("statement.requested", people.body.email)} <= set(deliveries)
    assert "application.submitted" in {t for t, _ in deliveries}
    assert mails == dict.fromkeys(deliveries, 1)     # every planned e-mail received, each exactly once
    assert stack.scalar("SELECT count(*) FROM notification_attempts a JOIN notification_deliveries d ON "
                        "d.id = a.delivery_id JOIN permit_events e ON e.id = d.event_id WHERE "
                        "e.application_id = :a", a=during["id"]) == len(deliveries)     # one try each


def test_worker_holding_a_scheduled_message_survives_a_redis_restart(stack):
    """Invariant: a worker that holds a message it must not run yet — as it holds every retry a task scheduled for
    itself (e-mail and webhook retries up to 300 s, pipeline steps, the relay's backoff): received, not acknowledged
    until its time — keeps running while Redis is down and takes work again when it is back, without a restart.

    Without the workaround in breitband/celery.py (``_survive_lost_redis_connection``, installed when a worker
    starts) this fails on Celery 5.7.0 / kombu 5.7.0: on the lost connection Celery's consumer first ``collect()``s
    the connection (which detaches its transport) and then closes it; closing the channel tries to put the
    unacknowledged messages back through the detached transport and raises ``AttributeError: 'NoneType' object has
    no attribute 'hostname'`` (kombu/transport/redis.py ``_connparams``), which Celery reports as "Unrecoverable
    error", and the worker process exits; ``scripts/run`` then stops the whole service. The test without a held
    message is test_redis_stopped_and_started."""
    worker = stack.worker
    pid = worker.pid
    stack.send("notifications.dispatch_due", countdown=300)
    wait_for(lambda: queue_drained(stack), 30, what="the worker to take the scheduled message")
    mark = worker.log_size()
    stack.redis.stop()
    try:
        wait_for(lambda: reconnecting(worker, mark) or not worker.running(), 30,
                 what="the worker to try to reconnect to Redis (or to exit)")
        assert worker.running(), "the worker exited when the broker connection was lost"
    finally:
        stack.redis.start()
    app = stack.submit(f"RD-{uuid.uuid4().hex[:6]}-gehalten")

    def completed() -> bool:
        stack.tick()
        return stack.run_status(app["id"]) == "succeeded"

    wait_for(completed, 60, interval=2.0, what="the same worker to run the pipeline after Redis is back")
    assert (stack.worker is worker, worker.running(), worker.pid) == (True, True, pid)
