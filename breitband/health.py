"""Readiness checks: database, PostGIS, migrations at head, broker, at least one worker answering.

``readiness`` has the details (server versions, migration heads, worker host names, error texts that may name hosts);
``/readyz`` shows them only to a tenant admin's token. Anyone else (load balancers, probes, ``scripts/run``) gets
``public_readiness``: ready or not, and each check's ``ok``.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from sqlalchemy import text

from breitband.celery import celery_app
from breitband.db import Database
from breitband.migrate import alembic_config
from breitband.settings import Settings


def _check(fn) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = fn()
        result = {"ok": True, "detail": detail}
    except Exception as exc:  # every failure is a reason, not a 500
        result = {"ok": False, "detail": f"{type(exc).__name__}: {exc}".strip()[:500]}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    from alembic.script import ScriptDirectory  # deferred: alembic loads for ~0.15 s; once, at the first check

    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def readiness(settings: Settings, db: Database) -> dict[str, Any]:
    checks: dict[str, dict[str, Any]] = {}
    state: dict[str, Any] = {}

    def database() -> str:
        with db.engine.connect() as conn:
            state["version"] = conn.execute(text("SHOW server_version")).scalar_one()
            state["postgis"] = conn.execute(text(
                "SELECT extversion FROM pg_extension WHERE extname = 'postgis'")).scalar()
            state["revisions"] = set()
            if conn.execute(text("SELECT to_regclass('alembic_version')")).scalar() is not None:
                state["revisions"] = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        return f"PostgreSQL {state['version']}"

    checks["database"] = _check(database)

    def postgis() -> str:
        if not checks["database"]["ok"]:
            raise RuntimeError("database not reachable")
        if not state["postgis"]:
            raise RuntimeError("the postgis extension is not installed in this database (run `breitband db upgrade`)")
        return f"PostGIS {state['postgis']}"

    checks["postgis"] = _check(postgis)

    def migrations() -> str:
        if not checks["database"]["ok"]:
            raise RuntimeError("database not reachable")
        heads = migration_heads()
        if state["revisions"] != heads:
            have = ", ".join(sorted(state["revisions"])) or "none"
            raise RuntimeError(f"database at {have}, code at {', '.join(sorted(heads))}: run `breitband db upgrade`")
        return "at head " + ", ".join(sorted(heads))

    checks["migrations"] = _check(migrations)

    def broker() -> str:
        with celery_app.connection_for_write(url=settings.broker_url) as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.readiness_timeout_s)
        return "reachable"

    checks["broker"] = _check(broker)

    def worker() -> str:
        if not checks["broker"]["ok"]:
            raise RuntimeError("broker not reachable")
        answers = celery_app.control.ping(timeout=settings.readiness_timeout_s, limit=1)
        if not answers:
            raise RuntimeError("no worker answered a ping (start one with `breitband worker`)")
        return f"{len(answers)} worker(s): " + ", ".join(sorted(next(iter(a)) for a in answers))

    checks["worker"] = _check(worker)
    return {"ready": all(c["ok"] for c in checks.values()), "checks": checks}


def public_readiness(result: dict[str, Any]) -> dict[str, Any]:
    """What an anonymous caller learns: ready true/false and per check ok true/false, nothing about versions, hosts,
    broker URLs or workers."""
    return {"ready": result["ready"], "checks": {name: {"ok": c["ok"]} for name, c in result["checks"].items()}}
