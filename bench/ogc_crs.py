"""Where the OGC API transforms geometries into the requested CRS (Part 2, ``crs=``): in PostGIS, in the query that
writes the GeoJSON (``ST_AsGeoJSON(ST_Transform(geom, srid))``, what ``permits/gis/features.py`` does), or in Python
with pyproj after the query (``ST_AsGeoJSON(geom)``, then ``json.loads`` → shapely → ``geo.crs.transform_geometry`` →
GeoJSON again).

A page of the OGC API is up to 1,000 features; the routes are lines of tens to thousands of vertices. Measured on
the road segments of tenant he (real OSM lines; stored in EPSG:25832, served as EPSG:4326 here, the same work as
EPSG:4326 → EPSG:25832): pages of --page lines, --runs times each after 3 warm-ups, p50/p95 of both ways, and the
ratio. Baseline in the same run: the query without any transformation.

    .venv/bin/python bench/ogc_crs.py [--page 1000] [--runs 20]

Reads BREITBAND_DATABASE_URL (a database with tenant he's roads, e.g. after scripts/run or the test database).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import shapely
import shapely.geometry
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from geo.crs import transform_geometry

URL = os.environ.get("BREITBAND_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/breitband")

PAGE = """SELECT ST_AsGeoJSON({geom}, {digits}) FROM (SELECT geom FROM road_segments WHERE tenant_key = 'he'
          ORDER BY id LIMIT :n OFFSET :off) s"""


def pct(values: list[float], p: int) -> float:
    return float(np.percentile(values, p))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--page", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    engine = create_engine(URL, connect_args={"options": "-c jit=off"})
    ways = {
        "no transformation (baseline)": (PAGE.format(geom="geom", digits=3), None),
        "PostGIS ST_Transform in the query": (PAGE.format(geom="ST_Transform(geom, 4326)", digits=7), None),
        "pyproj after the query": (PAGE.format(geom="geom", digits=3), (25832, 4326)),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    vertices = 0
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM road_segments WHERE tenant_key = 'he'")).scalar()
        if not total:
            sys.exit("error: no road segments of tenant he in " + URL)
        for run in range(args.runs + 3):
            off = (run * args.page) % max(1, total - args.page)
            for name, (sql, pyproj_way) in ways.items():
                t0 = time.perf_counter()
                rows = conn.execute(text(sql), {"n": args.page, "off": off}).scalars().all()
                if pyproj_way:
                    out = []
                    for raw in rows:
                        g = transform_geometry(shapely.geometry.shape(json.loads(raw)), *pyproj_way)
                        out.append(shapely.to_geojson(shapely.set_precision(g, 1e-7)))
                    rows = out
                if run >= 3:
                    times[name].append((time.perf_counter() - t0) * 1000)
                if name.startswith("no") and run == 3:
                    vertices = sum(len(json.loads(r)["coordinates"]) for r in rows)
    print(f"pages of {args.page} road lines (~{vertices:,} vertices a page), {args.runs} runs")
    base = pct(times["no transformation (baseline)"], 50)
    for name, ts in times.items():
        print(f"{name:<36} p50 {pct(ts, 50):7.1f} ms  p95 {pct(ts, 95):7.1f} ms  "
              f"p50/baseline {pct(ts, 50) / base:4.2f}")


if __name__ == "__main__":
    main()
