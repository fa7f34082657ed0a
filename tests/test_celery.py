"""A real Celery worker on the real broker runs a task end to end; /readyz sees it."""

from __future__ import annotations

import pytest
from celery.contrib.testing.worker import start_worker

from breitband.celery import celery_app


@pytest.fixture(scope="module")
def worker(engine):
    import breitband.tasks  # noqa: F401  (registers the tasks)

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
