"""What CORS per tenant (geo/cors.py) costs a GIS read: the same request with and without an allowed ``Origin``.

    .venv/bin/python bench/cors.py [--runs 400]

A request with an ``Origin`` that is not our own needs the tenants listing that origin: one statement (on the
replica, in a worker thread), kept for 10 s per process, so a map view's burst of tiles asks once; a request
without one (the web app, GIS desktops) only gets ``Vary: Origin``. Measured
in-process through the ASGI app (``TestClient``, no network), interleaved in the same run, on its own database with
one tenant whose rules list the portal's origin:

- ``GET /tiles/roads.json?tenant=bx`` (TileJSON: two small statements of its own) without ``Origin``;
- the same with ``Origin: https://geoportal.example`` (allowed: the answer carries ``Access-Control-Allow-Origin``);
- the preflight ``OPTIONS`` of it (answered by the middleware alone, after the lookup);
- the lookup itself without the cache (``geo.cors.tenants_allowing``), what a request pays every 10 s.

Prints p50/p95 in ms of each and the ratio with/without ``Origin``.

Database: BREITBAND_BENCH_CORS_DATABASE_URL, default …/breitband_bench_cors, dropped and rebuilt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
MAIN_URL = os.environ.get("BREITBAND_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/breitband")
BENCH_URL = os.environ.get("BREITBAND_BENCH_CORS_DATABASE_URL") or make_url(MAIN_URL).set(
    database="breitband_bench_cors").render_as_string(hide_password=False)
os.environ["BREITBAND_DATABASE_URL"] = BENCH_URL
os.environ.setdefault("BREITBAND_LOG_LEVEL", "WARNING")
sys.path.insert(0, str(ROOT))

PORTAL = "https://geoportal.example"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    args = parser.parse_args()

    import tomllib  # deferred: the bench's set-up only

    from fastapi.testclient import TestClient  # deferred: the bench's set-up only

    from breitband import identity  # deferred: after the database URL is set
    from breitband.app import create_app  # deferred: after the database URL is set
    from breitband.db import get_database  # deferred: after the database URL is set
    from breitband.migrate import create_database, drop_database, upgrade  # deferred: after the database URL is set
    from breitband.settings import get_settings  # deferred: after the database URL is set
    from geo.cors import tenants_allowing  # deferred: after the database URL is set
    from geo.rules import validate_rules  # deferred: after the database URL is set

    drop_database(BENCH_URL)
    create_database(BENCH_URL)
    upgrade(BENCH_URL)
    with open(ROOT / "data" / "tenants" / "he.toml", "rb") as fh:
        raw = tomllib.load(fh)
    raw.update(key="bx", gis={"cors_origins": [PORTAL]})
    with get_database().transaction() as session:
        identity.create_tenant(session, "bx", "Bench", "EPSG:25832", validate_rules(raw, "bx"))

    path = "/tiles/roads.json?tenant=bx"
    kinds = {
        "without Origin": lambda c: c.get(path),
        "with an allowed Origin": lambda c: c.get(path, headers={"Origin": PORTAL}),
        "preflight": lambda c: c.options(path, headers={"Origin": PORTAL, "Access-Control-Request-Method": "GET",
                                                         "Access-Control-Request-Headers": "authorization"}),
        "lookup (uncached)": lambda c: tenants_allowing(c.app.state.db, PORTAL),
    }
    times: dict[str, list[float]] = {k: [] for k in kinds}
    with TestClient(create_app(get_settings())) as client:
        assert kinds["with an allowed Origin"](client).headers["access-control-allow-origin"] == PORTAL
        assert "access-control-allow-origin" not in kinds["without Origin"](client).headers
        assert kinds["preflight"](client).status_code == 204
        for _ in range(20):                                    # warm-up
            for call in kinds.values():
                call(client)
        for i in range(args.runs):
            order = list(kinds.items())
            if i % 2:
                order.reverse()
            for name, call in order:
                started = time.perf_counter()
                call(client)
                times[name].append((time.perf_counter() - started) * 1000)

    print(f"{args.runs} requests each, interleaved, in-process (ms)")
    for name, values in times.items():
        print(f"  {name:<24} p50 {statistics.median(values):6.2f}   p95 {pct(values, 95):6.2f}")
    base, cors = times["without Origin"], times["with an allowed Origin"]
    print(f"  ratio with/without Origin: p50 {statistics.median(cors) / statistics.median(base):.2f}, "
          f"p95 {pct(cors, 95) / pct(base, 95):.2f}")
    drop_database(BENCH_URL)


if __name__ == "__main__":
    main()
