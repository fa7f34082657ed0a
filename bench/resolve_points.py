"""Benchmark of ``POST /api/v1/resolve`` with many point features (issue 11, finding 2: 20,000 points took 10 s,
50,000 took 17 s, for any role).

    .venv/bin/python bench/resolve_points.py [--runs 5] [--sizes 1000,10000] [--profile]

What runs: the app in this process (``fastapi.testclient``, the whole request: authentication, body, parsing,
validation, the resolution's SQL, the JSON answer) on its own database with tenant he's real data (VG250
boundaries of Hessen, OSM roads of the Frankfurter Kreuz and the Darmstadt-Frankfurt corridor, as the tests'
``he_data``). The request: a FeatureCollection of N points (pits), each 3 m beside a real road segment's first
vertex near the Frankfurter Kreuz, in EPSG:4326. Per size, ``--runs`` requests (one warm-up before); prints
p50/p95 and the time per feature. Then the limits: a request with max_features + 1 points and one with 50,000
points, both refused with 422 (``too-many-features``), with their times. ``--profile``: cProfile of
``geo.service.resolve`` (what the endpoint runs in its worker thread) for the largest size: where the time goes.

Database: BREITBAND_BENCH_RESOLVE_POINTS_DATABASE_URL, default …/breitband_bench_resolve_points; the data is
imported when missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
MAIN_URL = os.environ.get("BREITBAND_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/breitband")
BENCH_URL = os.environ.get("BREITBAND_BENCH_RESOLVE_POINTS_DATABASE_URL") or make_url(MAIN_URL).set(
    database="breitband_bench_resolve_points").render_as_string(hide_password=False)
os.environ["BREITBAND_DATABASE_URL"] = BENCH_URL
os.environ.setdefault("BREITBAND_LOG_LEVEL", "WARNING")
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sqlalchemy import text  # noqa: E402

DATA = ROOT / "data"
BOUNDARIES = [DATA / "boundaries" / n for n in ("hessen_gemeinden_vg250_2018_sim200.geojson",
                                                "hessen_kreise_vg250_2018_sim200.geojson",
                                                "hessen_land_vg250_2018_sim20.geojson")]
ROADS = [DATA / "roads" / "hessen" / n for n in ("frankfurter-kreuz.osm.pbf",
                                                 "darmstadt-frankfurt-corridor_motis-test-case.osm.pbf")]


def pct(values, q) -> float:
    return float(np.percentile(np.array(values), q))


def setup():
    import tomllib

    from breitband import identity
    from breitband.db import Database
    from breitband.migrate import create_database, upgrade
    from breitband.models import OrgKind, Role
    from breitband.settings import get_settings
    from geo.importers import import_boundaries, import_roads, same_sources
    from geo.rules import validate_rules

    create_database(BENCH_URL)
    upgrade(BENCH_URL)
    db = Database.from_settings(get_settings())
    with open(DATA / "tenants" / "he.toml", "rb") as fh:
        raw = tomllib.load(fh)
    with db.sessionmaker() as session:
        if session.get(identity.Tenant, "he") is None:
            identity.create_tenant(session, "he", raw["name"], raw["crs"], validate_rules(raw, "he"))
        else:
            identity.update_tenant(session, "he", rules=validate_rules(raw, "he"))
        if not same_sources(session, "he", "boundaries", BOUNDARIES):
            import_boundaries(session, "he", BOUNDARIES)
        if not same_sources(session, "he", "roads", ROADS):
            import_roads(session, "he", ROADS)
        org = identity.create_organisation(session, "he", OrgKind.operator, f"Bench {time.time_ns()} GmbH")
        user = identity.create_user(session, org, f"bench{time.time_ns()}@bench.example", "bench",
                                    Role.operator_member)
        _, secret = identity.create_token(session, user, "bench")
        session.commit()
        # first vertices of real road segments around the Frankfurter Kreuz (EPSG:4326), 3 m beside them
        rows = session.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_Translate(ST_StartPoint(geom), 3, 0), 4326) AS p "
            "FROM road_segments WHERE tenant_key = 'he' AND NOT is_private ORDER BY id) s")).all()
    return db, secret, np.array(rows)


def body(points: np.ndarray, n: int) -> bytes:
    pts = points[np.arange(n) % len(points)]
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [round(x, 7), round(y, 7)]},
              "properties": {"kind": "pit"}} for x, y in pts.tolist()]
    return json.dumps({"type": "FeatureCollection", "features": feats}).encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    from fastapi.testclient import TestClient

    from breitband.app import create_app
    from breitband.settings import get_settings
    from geo.rules import Limits

    started = time.perf_counter()
    db, secret, points = setup()
    print(f"database {make_url(BENCH_URL).database}: {len(points):,} road segments to put points beside; "
          f"set up in {time.perf_counter() - started:.1f} s")
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/geo+json"}
    client = TestClient(create_app(get_settings(), db), raise_server_exceptions=False)

    def post(payload: bytes):
        t0 = time.perf_counter()
        r = client.post("/api/v1/resolve", content=payload, headers=headers)
        return time.perf_counter() - t0, r

    print(f"\n{'features':>9} {'runs':>5} {'p50 ms':>9} {'p95 ms':>9} {'µs/feature':>11} {'status':>7}")
    for n in sizes:
        payload = body(points, n)
        _, r = post(payload)            # warm-up
        times = []
        for _ in range(args.runs):
            elapsed, r = post(payload)
            times.append(elapsed)
        pieces = sum(len(a["pieces"]) for a in r.json().get("authorities", [])) if r.status_code == 200 else 0
        print(f"{n:>9,} {args.runs:>5} {pct(times, 50) * 1000:9.1f} {pct(times, 95) * 1000:9.1f} "
              f"{pct(times, 50) / n * 1e6:11.1f} {r.status_code:>7}   ({pieces:,} pieces with an authority)")

    limit = Limits().max_features
    for n in (limit + 1, 50_000):
        elapsed, r = post(body(points, n))
        p = r.json()
        print(f"{n:>9,} {1:>5} {elapsed * 1000:9.1f} {'':>9} {'':>11} {r.status_code:>7}   "
              f"{p.get('type', '').rsplit('/', 1)[-1]}: {p.get('detail', '')[:70]}")

    if args.profile:
        import cProfile
        import pstats

        from geo import service

        payload = body(points, max(sizes))
        profiler = cProfile.Profile()
        with db.statement_session(readonly=True) as session:
            profiler.enable()
            service.resolve(session, "he", payload, None, raw_geometry=True)
            profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
    print(f"total {time.perf_counter() - started:.0f} s")
    db.dispose()


if __name__ == "__main__":
    main()
