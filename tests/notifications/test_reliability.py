"""Reliability against the real services: a real Celery worker on the real Redis broker, PostgreSQL, a real SMTP
server (aiosmtpd) and a real HTTP receiver in the test process. Data is committed (the worker has its own
connections) and deleted afterwards."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from sqlalchemy import text

from notifications import webhooks
from notifications.outbox import send_task
from tests.support.api import collection, trench
from tests.support.waiting import wait_for

pytestmark = pytest.mark.worker


@pytest.fixture(autouse=True)
def fast_retries(settings, monkeypatch):
    monkeypatch.setattr(settings, "notify_retry_base_s", 0.5)


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


def test_smtp_down_the_mail_is_delivered_once_when_it_is_back(committed, worker, smtp, lines, engine):
    smtp.stop()
    app = committed.submit(collection(trench(lines["neu_isenburg"])), traffic_restrictions=[])
    target = committed.authority_email
    wait_for(lambda: (d := delivery_status(engine, app["id"], "case.received", target)) and d[1] >= 2, 30,
             what="two failed tries")
    assert delivery_status(engine, app["id"], "case.received", target)[0] in ("retrying", "sending")
    smtp.start()
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
                                                                    engine):
    receiver.failures = 3
    r = committed.client.post("/api/v1/webhooks", headers=committed.operator.headers,
                              json={"url": receiver.url, "event_types": ["application.submitted"]})
    assert r.status_code == 201, r.text
    secret, hook = r.json()["secret"], r.json()["id"]
    app = committed.submit(collection(trench(lines["neu_isenburg"])), traffic_restrictions=[])
    wait_for(lambda: len([x for x in receiver.requests if x.status == 204]) == 1, 30, what="the fourth try")
    assert [x.status for x in receiver.requests] == [500, 500, 500, 204]
    event = json.loads(receiver.requests[0].body)
    assert (event["type"], event["data"]["application_id"]) == ("application.submitted", app["id"])
    for n, x in enumerate(receiver.requests, start=1):
        assert x.headers["Breitband-Event-Id"] == event["id"] and x.body == receiver.requests[0].body
        assert x.headers["Breitband-Delivery-Attempt"] == str(n)
        assert webhooks.verify_signature(secret, x.headers["Breitband-Timestamp"], x.body,
                                         x.headers["Breitband-Signature"])
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:])]
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0 and gaps[2] >= 2.0           # exponential backoff
    log = committed.client.get(f"/api/v1/webhooks/{hook}/deliveries", headers=committed.operator.headers).json()
    [d] = log["items"]
    assert (d["status"], [a["response_status"] for a in d["log"]]) == ("delivered", [500, 500, 500, 204])


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
