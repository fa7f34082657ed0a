"""Celery tasks in tests: called in the test process on the test's database, or run by a real worker."""

from __future__ import annotations

import pytest
from celery.contrib.testing.worker import start_worker

import breitband.db
from breitband.worker import celery_app


@pytest.fixture
def task_db(db, monkeypatch):
    """Celery tasks called in the test process (``task.apply()``) use the test's rolled-back database."""
    monkeypatch.setattr(breitband.db, "_default_db", db)
    return db


@pytest.fixture(scope="module")
def worker(engine, settings):
    """A real Celery worker (thread, solo pool) on the test broker: it runs the outbox relay, the pipeline steps and
    the document generation as in production. Stale messages of earlier tests are purged first. A test that uses
    it is marked ``worker``."""
    celery_app.control.purge()
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10,
                      loglevel="WARNING") as w:
        yield w
