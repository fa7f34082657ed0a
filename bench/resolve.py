"""Benchmark of the resolution at state scale.

Builds a network of at least 1,000,000 road segments by REPLICATING the real OSM extract of the
Frankfurter Kreuz (data/roads/hessen/frankfurter-kreuz.osm.pbf) on a grid of tiles across the Hessen extent (each copy
shifted by whole tile sizes),
imports it with the product's road loader (COPY), then resolves routes of 1, 10 and 50 km that follow the
replicated A 5 and prints p50/p95 for the whole HTTP call (uvicorn, one worker, loopback) and for the bare SQL of
the same resolution (the same query and parameters over psycopg), and their ratio. Also prints the import time, and
what a browser session costs per request: the 1 km route sent alternately with a Bearer token and with a session
cookie (breitband/sessions.py; the web app's way), p50/p95 of each and the difference (target: the session adds
≤ 1 ms p95), plus the session lookup alone (the one query, in-process).

    .venv/bin/python bench/resolve.py [--segments 1000000] [--runs 40] [--auth-runs 300]

Uses its own database (BREITBAND_BENCH_DATABASE_URL, default …/breitband_bench), dropped and rebuilt each run.
Targets on a 2-core machine: 10 km p95 ≤ 40 ms through HTTP; HTTP/bare-SQL ≤ 1.5; import of 1M segments ≤ 90 s.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
MAIN_URL = os.environ.get("BREITBAND_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/breitband")
BENCH_URL = os.environ.get("BREITBAND_BENCH_DATABASE_URL") or make_url(MAIN_URL).set(
    database="breitband_bench").render_as_string(hide_password=False)
os.environ["BREITBAND_DATABASE_URL"] = BENCH_URL
os.environ.setdefault("BREITBAND_LOG_LEVEL", "WARNING")
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import shapely  # noqa: E402
import shapely.affinity  # noqa: E402
import shapely.ops  # noqa: E402
from sqlalchemy import text  # noqa: E402

TENANT = "he"
# The Frankfurter Kreuz extract (8 x 6.6 km: motorways, Bundes-, Landes-, Kreisstraßen, town and forest roads)
# tiles Hessen without overlaps; the long Darmstadt-Frankfurt corridor would make the tiles too coarse.
EXTRACTS = [ROOT / "data" / "roads" / "hessen" / "frankfurter-kreuz.osm.pbf"]


def pct(values, q):
    return float(np.percentile(np.array(values), q))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_database():
    from breitband.migrate import create_database, drop_database, upgrade

    drop_database(BENCH_URL)
    create_database(BENCH_URL)
    upgrade(BENCH_URL)


def base_ways(session):
    """Tenant, real Hessen boundaries, and the parsed real ways of all Hessen OSM extracts (metric CRS)."""
    from breitband.demo import ensure_tenant
    from geo import importers
    from geo.importers.common import Summary

    tenant = ensure_tenant(session)
    b = ROOT / "data" / "boundaries"
    importers.import_boundaries(session, TENANT, [b / "hessen_gemeinden_vg250_2018_sim200.geojson",
                                                  b / "hessen_kreise_vg250_2018_sim200.geojson",
                                                  b / "hessen_land_vg250_2018_sim20.geojson"])
    session.commit()
    files = EXTRACTS
    from geo.importers.roads import read_road_files

    ways = read_road_files(files, tenant.srid, Summary(layer="roads", tenant=TENANT))
    return ways, files


def tiles_for(session, ways, copies_needed: int):
    """Tile offsets (multiples of the extract's extent) whose centre lies in Hessen, nearest first."""
    land = shapely.from_wkb(bytes(session.execute(text(
        "SELECT ST_AsBinary(geom) FROM admin_areas WHERE tenant_key = :t AND level = 'land'"),
        {"t": TENANT}).scalar()))
    minx, miny = ways.coords.min(axis=0)
    maxx, maxy = ways.coords.max(axis=0)
    w, h = maxx - minx + 50, maxy - miny + 50
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    lminx, lminy, lmaxx, lmaxy = land.bounds
    cands = []
    for i in range(int((lminx - cx) // w) - 1, int((lmaxx - cx) // w) + 2):
        for j in range(int((lminy - cy) // h) - 1, int((lmaxy - cy) // h) + 2):
            if land.contains(shapely.Point(cx + i * w, cy + j * h)):
                cands.append((abs(i) + abs(j), i, j))
    cands.sort()
    if len(cands) < copies_needed:
        raise SystemExit(f"only {len(cands)} tiles fit into Hessen, {copies_needed} needed")
    return [(i * w, j * h) for _, i, j in cands[:copies_needed]], (w, h)


def shifted(ways, dx: float, dy: float):
    from geo.importers import WayArrays

    return WayArrays(osm_id=ways.osm_id, highway=ways.highway, ref=ways.ref, name=ways.name, access=ways.access,
                     coords=ways.coords + np.array([dx, dy]), offsets=ways.offsets, crs=ways.crs)


def a5_route(ways, offsets, length_m: float, copy: int):
    """A trench beside the real A 5 of copy `copy`: 12 m east of it going north, then 12 m west of it coming back
    (and again, for routes longer than the A 5 in the extract), cut to length_m."""
    a5 = [i for i, (r, hw) in enumerate(zip(ways.ref, ways.highway)) if r == "A 5" and hw == "motorway"]
    lines = [shapely.LineString(ways.coords[ways.offsets[i]:ways.offsets[i + 1]]) for i in a5]
    merged = shapely.ops.linemerge(shapely.MultiLineString(lines))
    base = max(getattr(merged, "geoms", [merged]), key=lambda g: g.length)
    dx, dy = offsets[copy]
    base = shapely.affinity.translate(base, dx, dy)
    there = base.offset_curve(12)
    back = shapely.LineString(base.coords[::-1]).offset_curve(12)
    coords: list = []
    while shapely.LineString(coords or [(0, 0), (0, 0)]).length < length_m + 50 or len(coords) < 2:
        coords.extend(there.coords)
        coords.extend(back.coords)
    return shapely.ops.substring(shapely.LineString(coords), 0, length_m)


def geojson_4326(geom) -> str:
    from geo.crs import transformer

    t = transformer(25832, 4326)
    g = shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    return shapely.to_geojson(g)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--segments", type=int, default=1_000_000, help="at least this many road segments")
    ap.add_argument("--runs", type=int, default=40, help="measured requests per route length")
    ap.add_argument("--auth-runs", type=int, default=300, help="requests per way of signing in (token, session)")
    args = ap.parse_args()

    import httpx
    import psycopg

    from breitband import identity, sessions
    from breitband.db import get_database
    from breitband.models import OrgKind, Role
    from geo import importers, resolution, service

    print(f"database: {make_url(BENCH_URL).render_as_string(hide_password=True)}")
    setup_database()
    db = get_database()
    with db.sessionmaker() as session:
        ways, files = base_ways(session)
        # segments per copy: load the original, count, then as many shifted copies as needed
        started = time.perf_counter()
        first = importers.load_road_segments(session, TENANT, ways, propagate_links=False, analyze=False)
        per_copy = first["segments"]
        copies = -(-args.segments // per_copy)
        offsets, (w, h) = tiles_for(session, ways, copies)
        for dx, dy in offsets[1:]:
            importers.load_road_segments(session, TENANT, shifted(ways, dx, dy), propagate_links=False,
                                         analyze=False)
        finish = importers.finish_road_segments(session, TENANT)
        session.commit()
        import_s = time.perf_counter() - started
        total = session.execute(text("SELECT count(*) FROM road_segments WHERE tenant_key = :t"),
                                {"t": TENANT}).scalar()
        op = identity.create_organisation(session, TENANT, OrgKind.operator, "Bench GmbH")
        user = identity.create_user(session, op, "bench@bench.example", "Bench", Role.operator_member)
        _, token = identity.create_token(session, user, "bench")
        browser = sessions.start(session, user.id, method="password", client_ip="127.0.0.1", user_agent="bench")
        session.commit()
    print(f"network: {total:,} road segments = {len(offsets)} copies of the real OSM extracts "
          f"({', '.join(f.name for f in files)}; {per_copy:,} segments per copy), replicated on a grid of "
          f"{w / 1000:.1f} x {h / 1000:.1f} km tiles across the Hessen extent — synthetic placement of real data")
    print(f"import of {total:,} segments (COPY, index maintenance, link classes, ANALYZE): {import_s:.1f} s "
          f"(target ≤ 90 s for 1,000,000){'' if import_s <= 90 else '  ** over target **'}"
          f"; links classified: {finish.get('links_classified')}")

    port = free_port()
    # The rate limits per token and per address (breitband/limits.py) would stop a benchmark after 120 requests a
    # minute: it measures the resolution, so they are off here (their own cost is in bench/body_limits.py).
    env = {**os.environ, "BREITBAND_DATABASE_URL": BENCH_URL, "BREITBAND_PORT": str(port),
           "BREITBAND_RATE_LIMIT_RESOLVE_TOKEN": "off", "BREITBAND_RATE_LIMIT_RESOLVE_CLIENT": "off"}
    server = subprocess.Popen([sys.executable, "-m", "breitband.cli", "serve", "--port", str(port)], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                              timeout=30)
        for _ in range(100):
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        raw = psycopg.connect(make_url(BENCH_URL).set(drivername="postgresql").render_as_string(
            hide_password=False), options="-c jit=off")
        print(f"\n{'route':>7} {'HTTP p50':>9} {'HTTP p95':>9} {'SQL p50':>8} {'SQL p95':>8} {'p95 ratio':>9}  "
              f"authorities")
        summary = {}
        for km in (1, 10, 50):
            routes = [a5_route(ways, offsets, km * 1000, c) for c in range(min(5, len(offsets)))]
            bodies = [geojson_4326(r) for r in routes]
            # the bare SQL: the same query with the same parameters, straight over psycopg
            with db.sessionmaker() as session:
                prepared = []
                for b in bodies:
                    route, rules, srid = service.prepare(session, TENANT, b, None)
                    prepared.append(resolution.line_query_params(TENANT, srid, 4326, 7, rules, route.lines))
            stmt, names = _psycopg_sql()
            http_ms, sql_ms = [], []
            answer = None
            for k in range(args.runs + 5):
                b, params = bodies[k % len(bodies)], prepared[k % len(prepared)]
                t0 = time.perf_counter()
                resp = client.post("/api/v1/resolve", content=b)
                t1 = time.perf_counter()
                if resp.status_code != 200:
                    raise SystemExit(f"HTTP {resp.status_code}: {resp.text[:500]}")
                answer = resp.json()
                t2 = time.perf_counter()
                raw.execute(stmt, {n: params[n] for n in names}).fetchall()
                t3 = time.perf_counter()
                if k >= 5:  # warm-up
                    http_ms.append((t1 - t0) * 1000)
                    sql_ms.append((t3 - t2) * 1000)
            auths = ", ".join(f"{a['name']} {a['length_m']:.0f} m" for a in answer["authorities"][:3])
            ratio = pct(http_ms, 95) / pct(sql_ms, 95)
            summary[km] = (pct(http_ms, 50), pct(http_ms, 95), pct(sql_ms, 50), pct(sql_ms, 95), ratio)
            print(f"{km:>5}km {pct(http_ms, 50):>8.1f}m {pct(http_ms, 95):>8.1f}m {pct(sql_ms, 50):>7.1f}m "
                  f"{pct(sql_ms, 95):>7.1f}m {ratio:>9.2f}  {auths}")
        raw.close()
        session_cost = _session_cost(client, db, sessions, browser, geojson_4326(
            a5_route(ways, offsets, 1000, 0)), args.auth_runs)
        p95_10 = summary[10][1]
        print(f"\ntargets: 10 km p95 {p95_10:.1f} ms (≤ 40 ms: {'met' if p95_10 <= 40 else 'NOT met'}); "
              f"HTTP/SQL p95 ratio {summary[10][4]:.2f} (≤ 1.5: {'met' if summary[10][4] <= 1.5 else 'NOT met'}); "
              f"import {import_s:.1f} s (≤ 90 s: {'met' if import_s <= 90 else 'NOT met'}); "
              f"session instead of token +{session_cost:.2f} ms p95 (≤ 1 ms: "
              f"{'met' if session_cost <= 1 else 'NOT met'})")
        print(f"({args.runs} measured requests per length over {len(bodies)} routes in different copies, after 5 "
              "warm-up; routes run 12 m beside the A 5 north and back south; one uvicorn worker, client and server "
              "on this machine)")
    finally:
        server.terminate()
        server.wait(10)


def _session_cost(client, db, sessions, browser, body: str, runs: int) -> float:
    """The 1 km route with the token and with the session cookie, alternating (same server, same moment); prints
    both and the session lookup alone. → p95(session) - p95(token) in ms."""
    import httpx

    cookie_client = httpx.Client(base_url=client.base_url, cookies={sessions.cookie_name(): browser.secret},
                                 timeout=30)
    token_ms, session_ms = [], []
    for k in range(runs + 10):
        for which, c, out in (("token", client, token_ms), ("session", cookie_client, session_ms)):
            t0 = time.perf_counter()
            resp = c.post("/api/v1/resolve", content=body, headers={"X-CSRF-Token": browser.csrf_token}
                          if which == "session" else None)
            elapsed = (time.perf_counter() - t0) * 1000
            if resp.status_code != 200:
                raise SystemExit(f"{which}: HTTP {resp.status_code}: {resp.text[:300]}")
            if k >= 10:
                out.append(elapsed)
    cookie_client.close()
    lookup_ms = []
    with db.statement_session() as session:
        for k in range(runs + 10):
            t0 = time.perf_counter()
            sessions.lookup(session, browser.secret)
            if k >= 10:
                lookup_ms.append((time.perf_counter() - t0) * 1000)
    diff = pct(session_ms, 95) - pct(token_ms, 95)
    print(f"\nsigned in by  {'HTTP p50':>9} {'HTTP p95':>9}   (1 km route, {runs} requests each, alternating)")
    print(f"  token       {pct(token_ms, 50):>8.2f}m {pct(token_ms, 95):>8.2f}m")
    print(f"  session     {pct(session_ms, 50):>8.2f}m {pct(session_ms, 95):>8.2f}m   "
          f"difference p50 {pct(session_ms, 50) - pct(token_ms, 50):+.2f} ms, p95 {diff:+.2f} ms")
    print(f"  session lookup alone (one indexed query, in-process): p50 {pct(lookup_ms, 50):.3f} ms, "
          f"p95 {pct(lookup_ms, 95):.3f} ms")
    return diff


def _psycopg_sql():
    """LINES_SQL with psycopg's %(name)s placeholders."""
    import re

    from geo import resolution

    raw = str(resolution.LINES_SQL)
    names = sorted(set(re.findall(r"(?<!:):([a-z_]+)", raw)))
    return re.sub(r"(?<!:):([a-z_]+)", r"%(\1)s", raw), names


if __name__ == "__main__":
    main()
