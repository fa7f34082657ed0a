"""Infrastructure tasks of the shell."""

from __future__ import annotations

from sqlalchemy import text

from breitband.celery import celery_app
from breitband.db import get_database


@celery_app.task(name="breitband.worker_health", acks_late=True, autoretry_for=(), ignore_result=False)
def worker_health() -> dict:
    """Reports what the worker itself sees: its database and PostGIS. tests/test_celery.py runs it on a real worker."""
    with get_database().transaction() as session:
        postgis = session.execute(text("SELECT postgis_lib_version()")).scalar_one()
        database = session.execute(text("SELECT current_database()")).scalar_one()
    return {"database": database, "postgis": postgis}
