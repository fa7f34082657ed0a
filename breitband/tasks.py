"""Infrastructure tasks of the shell."""

from __future__ import annotations

from sqlalchemy import text

from breitband.celery import celery_app
from breitband.db import get_database


@celery_app.task(name="breitband.worker_health", acks_late=True, autoretry_for=(), ignore_result=False)
def worker_health() -> dict:
    """Reports what the worker itself sees: its database and PostGIS. Used by `breitband worker check`."""
    db = get_database()
    with db.engine.connect() as conn:
        postgis = conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
        database = conn.execute(text("SELECT current_database()")).scalar_one()
    return {"database": database, "postgis": postgis}
