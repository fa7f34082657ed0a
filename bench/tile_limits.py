"""Benchmark of the ``applications`` tile layer over a route at the limits against one over a 1 km route.

    .venv/bin/python bench/tile_limits.py [--runs 30] [--zooms 10,12,14,16] [--seed 20261203] [--legacy]

Issue 11, finding 1: the layer simplified the whole route before clipping it to the tile, so one route of
100,000 vertices cost 14-16 s per tile. Target: a tile over a route at the limits (100,000 vertices, just under
200 km) costs no more than 2x a tile over a 1 km route.

What runs (in this process, on its own database, measured in the same run and interleaved):

- LONG: an operator's draft whose route is a trench of about 199 km (197 km plus the jitter) with exactly 100,000
  vertices (the tenant's ``max_vertices``), created through ``permits.applications.service.create`` (so the limits of
  drafts accept it);
- ZIGZAG: a draft at the vertex limit shaped like the route of the issue: a regular zigzag (±0.8 m, 0.5 m ahead
  per vertex along a straight line, 100,000 vertices, 168 km), the worst case of Douglas-Peucker;
- SHORT: another operator's draft whose route is a 1 km trench with the same vertex spacing (~2 m, 503 vertices);
- LEGACY (``--legacy``): a draft stored before drafts had limits, 300,000 vertices over 600 km, written into the
  tables directly (the API refuses it now); it must stay cheap on the map too.

Both routes are a meandering path (slowly turning heading) with ±0.3 m of lateral jitter, like a digitised trace,
so that simplification keeps many vertices at high zooms. Each tile is built with ``permits.gis.tiles.LAYER.tile``
(what ``GET /tiles/applications/{z}/{x}/{y}.mvt`` runs: the statement, the fetch, the ETag) for the route's
owner. Tiles: per zoom, ``--runs`` tiles that the route passes through (a reproducible random sample; where there are
fewer, each of them in turn again), plus, for LONG, tiles inside the route's bounding box that the route does not touch
(the index lookup finds the route there too). Every tile is built once per round; rounds alternate which route
goes first. Warm-up: 3 tiles per route at z11 (not measured).

Prints p50/p95 per zoom and route and the ratio LONG/SHORT of the p50 and the p95 per zoom.

Database: BREITBAND_BENCH_TILE_LIMITS_DATABASE_URL, default …/breitband_bench_tile_limits, dropped and rebuilt.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
MAIN_URL = os.environ.get("BREITBAND_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/breitband")
BENCH_URL = os.environ.get("BREITBAND_BENCH_TILE_LIMITS_DATABASE_URL") or make_url(MAIN_URL).set(
    database="breitband_bench_tile_limits").render_as_string(hide_password=False)
os.environ["BREITBAND_DATABASE_URL"] = BENCH_URL
os.environ.setdefault("BREITBAND_LOG_LEVEL", "WARNING")
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import shapely  # noqa: E402
from sqlalchemy import text  # noqa: E402

START_25832 = (470_000.0, 5_560_000.0)       # near Frankfurt am Main (ETRS89 / UTM 32N)
SPACING_M = 2.0
JITTER_M = 0.3


def pct(values, q) -> float:
    return float(np.percentile(np.array(values), q))


def meander(length_m: float, vertices: int, rng: np.random.Generator, start=START_25832) -> shapely.LineString:
    """A path of ``vertices`` points and about ``length_m`` metres: a heading that turns slowly (a smoothed random
    walk, so the route bends like a road) with ±JITTER_M lateral noise per vertex."""
    step = length_m / (vertices - 1)
    w = min(200, vertices)
    turns = np.convolve(rng.normal(0, 0.02, vertices), np.ones(w) / w, mode="same")
    heading = np.cumsum(turns) + rng.uniform(0, 2 * math.pi)
    dx, dy = np.cos(heading) * step, np.sin(heading) * step
    xy = np.column_stack([np.concatenate([[0], np.cumsum(dx[:-1])]), np.concatenate([[0], np.cumsum(dy[:-1])])])
    normal = np.column_stack([-np.sin(heading), np.cos(heading)])
    xy += normal * rng.uniform(-JITTER_M, JITTER_M, (vertices, 1))
    return shapely.LineString(xy + np.array(start))


def zigzag(vertices: int, rng: np.random.Generator, start) -> shapely.LineString:
    """A regular zigzag (±0.8 m across, 0.5 m ahead per vertex) along a straight line: the worst case of
    Douglas-Peucker (every split keeps one vertex: quadratic), the shape of the route in issue 11 that took
    14-16 s per tile."""
    heading = rng.uniform(0, 2 * math.pi)
    along = np.arange(vertices) * 0.5
    across = np.where(np.arange(vertices) % 2 == 0, 0.8, -0.8)
    x = along * math.cos(heading) - across * math.sin(heading)
    y = along * math.sin(heading) + across * math.cos(heading)
    return shapely.LineString(np.column_stack([x, y]) + np.array(start))


def to_4326(line: shapely.LineString) -> shapely.LineString:
    from geo.crs import transform_geometry

    return transform_geometry(line, 25832, 4326)


def sections(line_4326: shapely.LineString) -> dict:
    coords = np.round(shapely.get_coordinates(line_4326), 7).tolist()
    return {"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "LineString", "coordinates": coords},
        "properties": {"laying_method": "open_trench", "depth_cm": 80, "width_cm": 40}}]}


def tiles_on(line_4326: shapely.LineString, z: int) -> list[tuple[int, int, int]]:
    n = 1 << z
    xy = shapely.get_coordinates(shapely.segmentize(line_4326, 0.0005))
    lon, lat = xy[:, 0], xy[:, 1]
    tx = np.floor((lon + 180) / 360 * n).astype(int)
    ty = np.floor((1 - np.arcsinh(np.tan(np.radians(lat))) / math.pi) / 2 * n).astype(int)
    return sorted({(z, int(a), int(b)) for a, b in zip(tx, ty)})


def tiles_off(line_4326: shapely.LineString, z: int) -> list[tuple[int, int, int]]:
    """Tiles inside the route's bounding box that the route does not pass through."""
    on = set(tiles_on(line_4326, z))
    w, s, e, nn = line_4326.bounds
    n = 1 << z

    def tx(lon):
        return int((lon + 180) / 360 * n)

    def ty(lat):
        return int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)

    return sorted((z, x, y) for x in range(tx(w), tx(e) + 1) for y in range(ty(nn), ty(s) + 1)
                  if (z, x, y) not in on)


def setup(rng: np.random.Generator, legacy: bool):
    from breitband import identity
    from breitband.db import Database
    from breitband.demo import ensure_tenant
    from breitband.migrate import create_database, drop_database, upgrade
    from breitband.models import OrgKind, Role
    from breitband.settings import get_settings
    from permits.applications import service
    from permits.schemas import ApplicationCreate

    drop_database(BENCH_URL)
    create_database(BENCH_URL)
    upgrade(BENCH_URL)
    db = Database.from_settings(get_settings())
    routes = {
        "LONG": to_4326(meander(197_000, 100_000, rng)),
        "SHORT": to_4326(meander(SPACING_M * 502, 503, rng, (START_25832[0] + 3000, START_25832[1] + 3000))),
    }
    routes["ZIGZAG"] = to_4326(zigzag(100_000, rng, (START_25832[0] + 20_000, START_25832[1] + 20_000)))
    if legacy:
        routes["LEGACY"] = to_4326(meander(600_000, 300_000, rng, (START_25832[0] - 40_000, START_25832[1])))
    principals = {}
    now = datetime.now(timezone.utc)
    with db.sessionmaker() as session:
        ensure_tenant(session)
        session.commit()
        for name, line in routes.items():
            org = identity.create_organisation(session, "he", OrgKind.operator, f"Bench {name} GmbH")
            user = identity.create_user(session, org, f"{name.lower()}@bench.example", name, Role.operator_member)
            _, secret = identity.create_token(session, user, "bench")
            session.commit()
            principal = identity.authenticate(session, secret)
            body = sections(line) if name != "LEGACY" else sections(to_4326(meander(500, 100, rng)))
            app = service.create(session, principal, ApplicationCreate(project_name=f"Bench {name}",
                                                                       sections=body), now)
            session.commit()
            if name == "LEGACY":
                # stored before drafts had limits: the content and the map geometry as create wrote them then
                full = sections(line)
                session.execute(text("UPDATE application_versions SET content = jsonb_set(content, '{sections}', "
                                     "CAST(:s AS jsonb)) WHERE application_id = :id"),
                                {"s": json.dumps(full), "id": app.id})
                session.execute(text("UPDATE applications SET route_geom = ST_ForceCollection("
                                     "ST_GeomFromWKB(:wkb, 4326)) WHERE id = :id"),
                                {"wkb": shapely.to_wkb(line), "id": app.id})
                session.commit()
            principals[name] = principal
        session.execute(text("ANALYZE applications"))
        session.commit()
        vertices = {name: session.execute(text(
            "SELECT ST_NPoints(route_geom) FROM applications a JOIN organisations o ON o.id = a.applicant_org_id "
            "WHERE o.name = :n"), {"n": f"Bench {name} GmbH"}).scalar() for name in routes}
    return db, routes, principals, vertices


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30, help="tiles per zoom and route")
    ap.add_argument("--zooms", default="10,12,14,16")
    ap.add_argument("--seed", type=int, default=20261203)
    ap.add_argument("--legacy", action="store_true", help="also a 300,000-vertex draft stored before the limits")
    args = ap.parse_args()
    zooms = [int(z) for z in args.zooms.split(",")]
    rng = np.random.default_rng(args.seed)
    pick = random.Random(args.seed)

    from geo.tiles import TileKey
    from permits.gis.tiles import LAYER

    started = time.perf_counter()
    db, routes, principals, vertices = setup(rng, args.legacy)
    print(f"database {make_url(BENCH_URL).database}; set up in {time.perf_counter() - started:.1f} s")
    for name in routes:
        print(f"  {name:7s} route: {vertices[name]:,} vertices")

    def sample(tiles):
        """--runs tiles; where there are fewer, each of them in turn again (the short route has 1-4 per zoom)."""
        if len(tiles) >= args.runs:
            return pick.sample(tiles, args.runs)
        return [tiles[i % len(tiles)] for i in range(args.runs)]

    plan: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
    for name, line in routes.items():
        for z in zooms:
            on = tiles_on(line, z)
            plan[(name, z)] = sample(on)
            if name == "LONG":
                plan[("LONG off-route", z)] = sample(tiles_off(line, z))

    def build(name: str, zxy) -> tuple[float, int]:
        principal = principals[name.split()[0]]
        with db.sessionmaker() as session:
            t0 = time.perf_counter()
            tile = LAYER.tile(session, principal, TileKey(*zxy))
            elapsed = time.perf_counter() - t0
        return elapsed, tile.features

    for name, line in routes.items():
        for zxy in tiles_on(line, 11)[:3]:
            build(name, zxy)

    times: dict[tuple[str, int], list[float]] = {k: [] for k in plan}
    empty: dict[tuple[str, int], int] = {k: 0 for k in plan}
    for z in zooms:
        keys = [k for k in plan if k[1] == z]
        rounds = max(len(plan[k]) for k in keys)
        for i in range(rounds):
            order = keys if i % 2 == 0 else list(reversed(keys))
            for k in order:
                if i < len(plan[k]):
                    elapsed, features = build(k[0], plan[k][i])
                    times[k].append(elapsed)
                    if features == 0:
                        empty[k] += 1

    print("\nms per tile (permits.gis.tiles.LAYER.tile, the route owner's tile):")
    print(f"{'zoom':>4}  {'route':16s} {'tiles':>5} {'empty':>5} {'p50':>9} {'p95':>9}")
    for z in zooms:
        for k in [k for k in plan if k[1] == z]:
            v = times[k]
            print(f"{z:>4}  {k[0]:16s} {len(v):>5} {empty[k]:>5} {pct(v, 50) * 1000:9.2f} {pct(v, 95) * 1000:9.2f}")
    print("\nratio to SHORT (target ≤ 2.0):")
    worst = 0.0
    for z in zooms:
        s = times[("SHORT", z)]
        for k in [k for k in plan if k[1] == z and k[0] != "SHORT"]:
            r50, r95 = pct(times[k], 50) / pct(s, 50), pct(times[k], 95) / pct(s, 95)
            worst = max(worst, r50, r95)
            print(f"  z{z:<3} {k[0]:16s} p50 {r50:5.2f}   p95 {r95:5.2f}")
    print(f"\nworst ratio: {worst:.2f} ({'met' if worst <= 2.0 else 'NOT met'}); "
          f"total {time.perf_counter() - started:.0f} s")
    db.dispose()


if __name__ == "__main__":
    main()
