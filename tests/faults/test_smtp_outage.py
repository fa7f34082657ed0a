"""The SMTP server down for an hour of simulated time (the notification tests' aiosmtpd server in the test process,
stopped and started; private stack, see tests/support/faults.py)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from tests.support.faults import NOTIFY_RETRY_BASE_S, TIME_SCALE, worker_idle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.worker

OUTAGE_S = 3600.0                   # simulated
SLACK_S = 5.0                       # real seconds a due retry may take to be picked up (task round trip)


def backoff(attempt: int) -> float:
    """The product's schedule in simulated seconds (notifications.delivery.backoff with the default settings):
    after the n-th failed try wait 30 s × 2^(n-1), i.e. tries at 0, 30, 90, 210, 450, 930, 1890, 3810 s."""
    return NOTIFY_RETRY_BASE_S * 2 ** (attempt - 1)


def attempts_of(stack, app_id: str) -> dict[tuple[str, str], list[tuple]]:
    """(event type, address) → the delivery log of every e-mail about the application: (number, started, finished,
    ok) in order."""
    out: dict[tuple[str, str], list[tuple]] = {}
    for event_type, target, number, started, finished, ok in stack.rows(
            "SELECT d.event_type, d.target, a.number, a.started_at, a.finished_at, a.ok FROM notification_attempts a "
            "JOIN notification_deliveries d ON d.id = a.delivery_id JOIN permit_events e ON e.id = d.event_id "
            "WHERE e.application_id = :a AND d.channel = 'email' ORDER BY a.number", a=app_id):
        out.setdefault((event_type, target), []).append((number, started, finished, ok))
    return out


def test_smtp_down_for_an_hour_then_each_mail_delivered_once(stack):
    """Invariant: with the SMTP server down for an hour, each e-mail is tried on the retry schedule — never before a
    retry is due (the gap after the n-th failure is at least 30 s × 2^(n-1)), and no due retry is lost (each comes
    within a few real seconds of being due) — and delivered exactly once after the server is back: one message per
    event and recipient at the server, one successful try as the last entry of each delivery log, nothing more after
    further relay, dispatch and redelivered task messages. The new-case notice to the authority, whose first try
    starts the hour, fails at 0, 30, 90, 210, 450, 930 and 1890 s and is delivered at the 8th try (3810 s).

    Simulated time: the worker runs with the default schedule divided by TIME_SCALE (360: base 30 s → 0.083 s,
    maximum delay and retry window likewise), so the hour takes 10 real seconds; the outage is timed from the
    recorded start of that first try. Not simulated: in real time the waits of more than 300 s (from the 6th try)
    are not scheduled by the task itself but by beat's ``notifications.dispatch_due``; scaled down, every wait is
    scheduled by the task."""
    people = stack.people
    scale = TIME_SCALE
    stack.smtp.stop()
    try:
        app = stack.submit(f"SM-{uuid.uuid4().hex[:6]}")
        first = ("case.received", people.authority.email)
        log = wait_for(lambda: attempts_of(stack, app["id"]).get(first), 60, what="the first failed try")
        start = log[0][1]                                        # started_at of the first try: the hour begins
        db_now = stack.scalar("SELECT clock_timestamp()")
        time.sleep(max(0.0, (start + timedelta(seconds=OUTAGE_S / scale) - db_now).total_seconds()))
        assert [ok for *_, ok in attempts_of(stack, app["id"])[first]] == [False] * 7    # 0 … 1890 s
    finally:
        stack.smtp.start()

    def all_delivered() -> dict:
        deliveries = stack.email_deliveries(app["id"])
        done = (stack.run_status(app["id"]) == "succeeded" and deliveries
                and set(deliveries.values()) == {"delivered"})
        return deliveries if done else {}

    deliveries = wait_for(all_delivered, 60, interval=0.5, what="every e-mail delivered after the outage")
    ids = [str(r[0]) for r in stack.rows("SELECT d.id FROM notification_deliveries d JOIN permit_events e ON "
                                         "e.id = d.event_id WHERE e.application_id = :a", a=app["id"])]
    for _ in range(2):                       # duplicates: beat's cycles and every delivery message once more
        stack.tick()
        for delivery_id in ids:
            stack.send("notifications.deliver", [delivery_id])
    wait_for(lambda: worker_idle(stack), 60, interval=0.2, what="the worker to work off the duplicates")

    assert {("case.received", people.authority.email), ("statement.requested", people.body.email)} <= set(deliveries)
    assert stack.mails_about(app["reference"]) == dict.fromkeys(deliveries, 1)
    logs = attempts_of(stack, app["id"])
    assert set(logs) == set(deliveries)
    assert [ok for *_, ok in logs[first]] == [False] * 7 + [True]
    t0 = logs[first][0][1]
    print("\nsmtp outage: tries of the new-case notice at (simulated s) "
          + ", ".join(f"{(started - t0).total_seconds() * scale:.0f}" for _, started, _, _ in logs[first]))
    for key, entries in logs.items():
        assert [n for n, *_ in entries] == list(range(1, len(entries) + 1)), key
        assert [ok for *_, ok in entries] == [False] * (len(entries) - 1) + [True], key
        for (n, _, finished, _), (_, started, _, _) in zip(entries, entries[1:]):
            gap = (started - finished).total_seconds()
            assert backoff(n) / scale <= gap <= backoff(n) / scale + SLACK_S, (key, n, gap)
