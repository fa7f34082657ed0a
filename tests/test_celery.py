"""A real Celery worker on the real broker runs a task end to end; /readyz sees it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from celery.contrib.testing.worker import start_worker

from breitband.celery import BEAT_SCHEDULE
from breitband.settings import PROJECT_ROOT
from breitband.worker import celery_app


@pytest.fixture(scope="module")
def worker(engine):
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10,
                      loglevel="WARNING") as w:
        yield w


@pytest.mark.worker
def test_task_runs_on_real_worker(worker):
    from breitband.tasks import worker_health

    result = worker_health.delay().get(timeout=20)
    import os

    from sqlalchemy.engine import make_url

    assert result["database"] == make_url(os.environ["BREITBAND_DATABASE_URL"]).database  # set by conftest
    assert result["postgis"].startswith("3.")


@pytest.mark.worker
def test_readyz_sees_worker(client, worker, world):
    body = client.get("/readyz", headers=world.admin.headers).json()     # details for a tenant admin only
    assert body["checks"]["worker"]["ok"] is True
    assert body["checks"]["worker"]["detail"].startswith("1 worker(s)")
    assert body["ready"] is True


def test_celery_configuration():
    conf = celery_app.conf
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.task_time_limit > conf.task_soft_time_limit > 0


def test_the_worker_imports_every_task_module():
    """A fresh process that imports breitband.worker (what `breitband worker` and `celery -A breitband.worker` load)
    knows every task a message can name: the beat schedule's and those sent after commits and by the relay."""
    code = "from breitband.worker import app; print(' '.join(sorted(t for t in app.tasks if '.' in t and " \
           "not t.startswith('celery.'))))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(),
                          cwd=PROJECT_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    registered = set(proc.stdout.split())
    assert {entry["task"] for entry in BEAT_SCHEDULE.values()} <= registered
    assert registered == {
        "breitband.worker_health", "notifications.deliver", "notifications.dispatch_due", "notifications.relay",
        "permits.deadline_reminders", "permits.document_generate", "permits.documents_for_event",
        "permits.documents_sweep", "permits.pipeline_kick", "permits.pipeline_resume", "permits.pipeline_start",
        "permits.pipeline_step", "permits.sweep_deadlines"}


@pytest.mark.worker
def test_request_id_and_timings_travel_with_the_task(worker):
    """The request id of the sender becomes the task's (its log lines carry it); the worker records the task's
    queue wait and run time (breitband/metrics.py)."""
    import time

    from celery.signals import task_prerun

    from breitband import metrics
    from breitband.logging import request_id_var
    from breitband.tasks import worker_health

    seen: list[str | None] = []

    def record(**_):
        seen.append(request_id_var.get())

    task_prerun.connect(record, weak=False)       # after ours, which set the task's request id
    token = request_id_var.set("req-metrics-test-1")
    try:
        worker_health.delay().get(timeout=20)
    finally:
        request_id_var.reset(token)
        task_prerun.disconnect(record)
    assert seen == ["req-metrics-test-1"]
    assert metrics.TASK_WAIT.labels("breitband.worker_health")._sum.get() > 0
    deadline = time.monotonic() + 10              # the run time is recorded after the result is stored
    while metrics.TASK_DURATION.labels("breitband.worker_health", "success")._sum.get() == 0:
        assert time.monotonic() < deadline, "no task run time recorded"
        time.sleep(0.05)
