"""Reliability against the real services: a real Celery worker on the real Redis broker, PostgreSQL, a real SMTP
server (aiosmtpd) and a real HTTP receiver in the test process. Data is committed (the worker has its own
connections) and deleted afterwards.

The worker runs in the test process (a thread), so it tells the time by the test's clock (``breitband.clock``): the
tests that go through back-off move that clock and run what beat runs, instead of waiting."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from breitband import clock as service_clock
from breitband.db import get_database
from notifications import delivery, webhooks
from notifications.outbox import send_task
from notifications.tasks import SELF_SCHEDULE_MAX_S
from tests.support.api import collection, trench
from tests.support.waiting import wait_for

pytestmark = pytest.mark.worker


@pytest.fixture(autouse=True)
def fast_retries(settings, monkeypatch):
    monkeypatch.setattr(settings, "notify_retry_base_s", 0.5)


class SteppedClock:
    """The service's clock, standing still until the test moves it."""

    def __init__(self, at: datetime) -> None:
        self.now = at

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


BASE_S = 600.0          # the back-off's base: longer than a task schedules itself (SELF_SCHEDULE_MAX_S)


@pytest.fixture
def beat_clock(settings, monkeypatch):
    """Back-off of 600, 1200, 2400 s on a clock that only the test moves. So long a wait is not scheduled by the
    failed task itself (a message with a countdown, in real seconds) but left to beat's ``notifications.dispatch_due``:
    the test moves the clock and runs that (``beat``), and no test waits through a back-off."""
    assert BASE_S > SELF_SCHEDULE_MAX_S
    monkeypatch.setattr(settings, "notify_retry_base_s", BASE_S)
    c = SteppedClock(datetime.now(timezone.utc))
    with service_clock.frozen(c):
        yield c


def beat() -> dict:
    """What beat's ``notifications.dispatch_due`` does, here in the test: enqueue the deliveries due by the clock."""
    return delivery.dispatch_due(get_database())


def run_of(engine, app_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT id, status, enqueued_at FROM pipeline_runs WHERE application_id = :a "
                                "ORDER BY version DESC LIMIT 1"), {"a": app_id}).mappings().first()
        if row is None:
            return None
        steps = dict(conn.execute(text("SELECT name, status FROM pipeline_steps WHERE run_id = :r"),
                                  {"r": row["id"]}).all())
        return {**row, "steps": steps}


def delivery_status(engine, app_id: str, event_type: str, target: str) -> tuple[str, int] | None:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT d.status, d.attempts FROM notification_deliveries d JOIN permit_events e ON e.id = d.event_id "
            "WHERE e.application_id = :a AND d.event_type = :t AND d.target = :g"),
            {"a": app_id, "t": event_type, "g": target}).first()


def enqueued_at(engine, app_id: str, event_type: str, target: str) -> datetime:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT d.enqueued_at FROM notification_deliveries d JOIN permit_events e ON e.id = d.event_id "
            "WHERE e.application_id = :a AND d.event_type = :t AND d.target = :g"),
            {"a": app_id, "t": event_type, "g": target}).scalar()


def retry_when_due(clock: SteppedClock, engine, app_id: str, event_type: str, target: str, wait_s: float) -> None:
    """Not a second early: one second before the back-off has passed beat leaves the delivery alone; then it is due
    and beat enqueues it for the worker."""
    before = enqueued_at(engine, app_id, event_type, target)
    clock.advance(wait_s - 1)
    beat()
    assert enqueued_at(engine, app_id, event_type, target) == before
    clock.advance(1)
    beat()
    assert enqueued_at(engine, app_id, event_type, target) == clock.now


def mails(smtp, app: dict) -> Counter:
    """(event type, recipient) → number of messages about this application."""
    return Counter((m.message["X-Breitband-Event-Type"], r) for m in smtp.received
                   if app["reference"] in m.subject or app["reference"] in m.body for r in m.rcpt)


def test_submission_flows_through_pipeline_and_notifications_without_a_manual_step(committed, worker, smtp, lines,
                                                                                 engine):
    app = committed.submit(collection(trench(lines["neu_isenburg"])))
    run = wait_for(lambda: (r := run_of(engine, app["id"])) and r["status"] == "succeeded" and r, 30,
                   what="the pipeline to finish")
    assert run["steps"] == dict.fromkeys(["resolution", "checks", "participation", "notifications"], "succeeded")
    svb = committed.body
    wait_for(lambda: mails(smtp, app)[("statement.requested", committed.body_email)] == 1, 30,
             what="the statement request mail")
    wait_for(lambda: mails(smtp, app)[("case.received", committed.authority_email)] == 1, 30,
             what="the new-case mail")
    wait_for(lambda: mails(smtp, app)[("application.submitted", committed.contact_email)] == 1, 30,
             what="the applicant's mail")
    statements = committed.client.get("/api/v1/statements", headers=svb.headers).json()["items"]
    assert [(s["application"]["reference"], s["status"]) for s in statements] == [(app["reference"], "requested")]
    feed = committed.client.get("/api/v1/events", headers=svb.headers).json()["items"]
    assert [e["type"] for e in feed] == ["statement.requested"]
    assert all(n == 1 for n in mails(smtp, app).values())


def test_smtp_down_the_mail_is_delivered_once_when_it_is_back(committed, worker, smtp, lines, engine, beat_clock):
    smtp.stop()
    app = committed.submit(collection(trench(lines["neu_isenburg"])), traffic_restrictions=[])
    target = committed.authority_email
    wait_for(lambda: delivery_status(engine, app["id"], "case.received", target) == ("retrying", 1), 30,
             what="the first failed try")
    retry_when_due(beat_clock, engine, app["id"], "case.received", target, BASE_S)
    wait_for(lambda: delivery_status(engine, app["id"], "case.received", target) == ("retrying", 2), 30,
             what="two failed tries")
    smtp.start()
    retry_when_due(beat_clock, engine, app["id"], "case.received", target, 2 * BASE_S)
    wait_for(lambda: delivery_status(engine, app["id"], "case.received", target)[0] == "delivered", 30,
             what="the delivery after the server came back")
    assert mails(smtp, app)[("case.received", target)] == 1
    with engine.connect() as conn:
        log = conn.execute(text("SELECT a.ok FROM notification_attempts a JOIN notification_deliveries d ON "
                                "d.id = a.delivery_id JOIN permit_events e ON e.id = d.event_id WHERE "
                                "e.application_id = :a AND d.target = :t ORDER BY a.number"),
                           {"a": app["id"], "t": target}).scalars().all()
    assert log[-1] is True and not any(log[:-1]) and len(log) >= 3


def test_webhook_answering_500_three_times_gets_it_on_the_fourth_try(committed, worker, smtp, receiver, lines,
                                                                    engine, beat_clock):
    receiver.failures = 3
    r = committed.client.post("/api/v1/webhooks", headers=committed.operator.headers,
                              json={"url": receiver.url, "event_types": ["application.submitted"]})
    assert r.status_code == 201, r.text
    secret, hook = r.json()["secret"], r.json()["id"]
    app = committed.submit(collection(trench(lines["neu_isenburg"])), traffic_restrictions=[])
    wait_for(lambda: delivery_status(engine, app["id"], "application.submitted", hook) == ("retrying", 1), 30,
             what="the first try")
    for n, wait_s in ((2, BASE_S), (3, 2 * BASE_S), (4, 4 * BASE_S)):       # exponential backoff
        retry_when_due(beat_clock, engine, app["id"], "application.submitted", hook, wait_s)
        after = ("delivered" if n == 4 else "retrying", n)
        wait_for(lambda after=after: delivery_status(engine, app["id"], "application.submitted", hook) == after, 30,
                 what=f"try {n}")
    assert [x.status for x in receiver.requests] == [500, 500, 500, 204]
    log = committed.client.get(f"/api/v1/webhooks/{hook}/deliveries", headers=committed.operator.headers).json()
    [d] = log["items"]
    assert (d["status"], [a["response_status"] for a in d["log"]]) == ("delivered", [500, 500, 500, 204])
    tried_at = [datetime.fromisoformat(a["started_at"].replace("Z", "+00:00")) for a in d["log"]]
    gaps = [(b - a).total_seconds() for a, b in zip(tried_at, tried_at[1:])]
    assert gaps[0] >= BASE_S and gaps[1] >= 2 * BASE_S and gaps[2] >= 4 * BASE_S   # exponential backoff
    event = json.loads(receiver.requests[0].body)
    assert (event["type"], event["data"]["application_id"]) == ("application.submitted", app["id"])
    for n, (x, at) in enumerate(zip(receiver.requests, tried_at), start=1):
        assert x.headers["Breitband-Event-Id"] == event["id"] and x.body == receiver.requests[0].body
        assert x.headers["Breitband-Delivery-Attempt"] == str(n)
        assert webhooks.verify_signature(secret, x.headers["Breitband-Timestamp"], x.body,      # when it came
                                         x.headers["Breitband-Signature"], now=at.timestamp())


def test_broker_down_at_submit_the_pipeline_starts_later(committed, worker, smtp, lines, engine):
    from breitband.celery import celery_app

    real = celery_app.conf.broker_url
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"          # nothing listens there: the broker is down
    try:
        app = committed.submit(collection(trench(lines["neu_isenburg"])), traffic_restrictions=[])
    finally:
        celery_app.conf.broker_url = real
    run = run_of(engine, app["id"])
    assert (run["status"], run["enqueued_at"]) == ("pending", None)        # the submit itself succeeded
    with engine.connect() as conn:
        unpublished = conn.execute(text("SELECT count(*) FROM permit_events WHERE application_id = :a AND "
                                        "published_at IS NULL"), {"a": app["id"]}).scalar()
    assert unpublished >= 4                                                # the after-commit kick was lost

    # the broker is back; beat runs its tasks
    for task in ("notifications.relay", "permits.pipeline_resume"):
        assert send_task(task)
    run = wait_for(lambda: (r := run_of(engine, app["id"])) and r["status"] == "succeeded" and r, 30,
                   what="the pipeline started by beat")
    wait_for(lambda: mails(smtp, app)[("case.received", committed.authority_email)] == 1, 30, what="the mail")
    assert all(n == 1 for n in mails(smtp, app).values())
