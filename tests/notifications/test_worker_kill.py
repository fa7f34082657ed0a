"""A worker process killed with SIGKILL in the middle of the pipeline: after a new worker starts and beat resumes the
run, the work completes exactly once — one statement request, one e-mail per recipient and event — even when the
same step messages are delivered again (what acks_late does after a crash)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest
import redis
from sqlalchemy import text

from notifications.outbox import send_task
from tests.support.api import collection, trench
from tests.support.waiting import wait_for

pytestmark = pytest.mark.worker

STEPS = ["resolution", "checks", "participation", "notifications"]
QUEUE, UNACKED = "celery", "unacked"          # the broker's task queue and kombu's hash of taken, unacknowledged ones


def broker_backlog(broker: redis.Redis, stale: set[bytes]) -> int:
    """Messages waiting in the queue plus those a worker has taken and not acknowledged yet (late acks: a task's
    message is acknowledged after the task ran, and what it sent on was sent before that), both read in one
    transaction; ``stale`` are the killed worker's, which would come back only after the visibility timeout."""
    with broker.pipeline() as pipe:
        waiting, taken = pipe.llen(QUEUE).hkeys(UNACKED).execute()
    return waiting + len(set(taken) - stale)


def start_worker_process(settings, smtp_port: int, name: str) -> subprocess.Popen:
    env = {**os.environ, "BREITBAND_DATABASE_URL": settings.database_url, "BREITBAND_BROKER_URL": settings.broker_url,
           "BREITBAND_RESULT_BACKEND": settings.result_backend, "BREITBAND_SMTP_HOST": "127.0.0.1",
           "BREITBAND_SMTP_PORT": str(smtp_port), "BREITBAND_NOTIFY_RETRY_BASE_S": "0.5",
           "BREITBAND_PIPELINE_STALE_AFTER_S": "2", "BREITBAND_DATA_DIR": str(settings.data_dir),
           "BREITBAND_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "breitband.worker", "worker", "--pool=solo",
                             "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
                             f"--hostname={name}@%h"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_worker_killed_mid_pipeline_completes_once(committed, smtp, lines, engine, settings, processes):
    from breitband.worker import celery_app

    celery_app.control.purge()
    first = start_worker_process(settings, smtp.port, "victim")
    processes.append(first)

    blocker = engine.connect()
    tx = blocker.begin()
    blocker.execute(text("LOCK TABLE statement_requests IN ACCESS EXCLUSIVE MODE"))   # participation must wait
    app = committed.submit(collection(trench(lines["neu_isenburg"])))

    def waiting_in_participation() -> bool:
        with engine.connect() as conn:
            step = conn.execute(text("SELECT s.status FROM pipeline_steps s JOIN pipeline_runs r ON r.id = s.run_id "
                                     "WHERE r.application_id = :a AND s.name = 'participation'"),
                                {"a": app["id"]}).scalar()
            waiting = conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted AND "
                                        "relation = 'statement_requests'::regclass")).scalar()
        return step == "running" and waiting > 0

    wait_for(waiting_in_participation, 60, what="the worker to be inside the participation step")
    first.send_signal(signal.SIGKILL)                       # in the middle of the step's transaction
    first.wait(timeout=10)
    tx.rollback()
    blocker.close()
    broker = redis.Redis.from_url(settings.broker_url)
    stale = set(broker.hkeys(UNACKED))                       # what the killed worker held

    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM statement_requests WHERE application_id = :a"),
                            {"a": app["id"]}).scalar() == 0                     # the step's work was rolled back
    second = start_worker_process(settings, smtp.port, "survivor")
    processes.append(second)

    def finished() -> bool:
        send_task("permits.pipeline_resume")                # beat: the run made no progress for 2 s → sent again
        send_task("notifications.relay")
        with engine.connect() as conn:
            return conn.execute(text("SELECT status FROM pipeline_runs WHERE application_id = :a"),
                                {"a": app["id"]}).scalar() == "succeeded"

    wait_for(finished, 60, interval=1.0, what="the pipeline to complete after the restart")

    # the original messages come back (acks_late redelivery after a crash): nothing happens twice
    with engine.connect() as conn:
        run_id = conn.execute(text("SELECT id FROM pipeline_runs WHERE application_id = :a"), {"a": app["id"]}).scalar()
    for name in STEPS:
        send_task("permits.pipeline_step", [str(run_id), name])
    send_task("permits.pipeline_resume")
    send_task("notifications.relay")

    def all_mail() -> Counter:
        return Counter((m.message["X-Breitband-Event-Type"], r) for m in smtp.received
                       if app["reference"] in m.subject for r in m.rcpt)

    expected = {("statement.requested", committed.body_email), ("case.received", committed.authority_email),
                ("application.submitted", committed.contact_email)}
    wait_for(lambda: expected <= set(all_mail()), 60, interval=0.5, what="the e-mails")

    def unsettled() -> int:
        """What could still send a duplicate: a message not yet run, a delivery of the application not yet in its
        final state, an event of it not yet published."""
        with engine.connect() as conn:
            open_deliveries = conn.execute(text(
                "SELECT count(*) FROM notification_deliveries d JOIN permit_events e ON e.id = d.event_id "
                "WHERE e.application_id = :a AND d.status NOT IN ('delivered', 'failed')"), {"a": app["id"]}).scalar()
            unpublished = conn.execute(text("SELECT count(*) FROM permit_events WHERE application_id = :a AND "
                                            "published_at IS NULL"), {"a": app["id"]}).scalar()
        return broker_backlog(broker, stale) + open_deliveries + unpublished

    # Settled twice in a row, half a second apart: a worker takes a message off the queue and records it as
    # unacknowledged in two steps, so one look could fall between them.
    looks: list[int] = []
    wait_for(lambda: looks.append(unsettled()) or looks[-2:] == [0, 0], 60, interval=0.5,
             what="the redelivered messages, and everything they sent on, to have run")
    broker.close()
    assert all(n == 1 for n in all_mail().values()), all_mail()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM statement_requests WHERE application_id = :a"),
                            {"a": app["id"]}).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM cases WHERE application_id = :a"),
                            {"a": app["id"]}).scalar() == 1
        steps = dict(conn.execute(text("SELECT name, attempts FROM pipeline_steps WHERE run_id = :r"),
                                  {"r": run_id}).all())
        events = conn.execute(text("SELECT type, count(*) FROM permit_events WHERE application_id = :a AND type IN "
                                   "('statement.requested', 'pipeline.completed') GROUP BY type"),
                              {"a": app["id"]}).all()
    assert steps["participation"] == 2 and steps["resolution"] == 1          # tried again once, not redone before
    assert dict(events) == {"statement.requested": 1, "pipeline.completed": 1}
