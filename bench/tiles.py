"""Benchmark of the vector tiles against TiPG, over the state-scale road network of bench/resolve.py.

    .venv/bin/python bench/tiles.py [--runs 40] [--seed 20261122] [--zooms 10,12,14,16]

What runs (both on this machine, both one uvicorn worker, loopback HTTP, measured with httpx in the same run):

- OURS: ``breitband`` (this repository's app, ``geo/tiles.py``) with one extra layer ``bench_roads`` = the product's
  ``roads`` layer definition (same SQL, zoom bands, simplification, feature limit) reading the relation below.
- TIPG: ``uvicorn tipg.main:app`` (PyPI ``tipg``) serving the same relation as the collection
  ``public.bench_tiles_roads`` (``/collections/public.bench_tiles_roads/tiles/WebMercatorQuad/{z}/{x}/{y}``), asked
  for the same properties (``properties=road_class,ref,name,highway,is_private``), the same classes per zoom (CQL2
  ``filter`` equal to our zoom band: z<12 classified roads only, z12–13 no separately mapped paths, z≥14 all), the
  same feature limit (20,000), extent (4096) and buffer (64).

The relation: TiPG takes a geometry column's SRID from its type modifier and treats an SRID-less column as
EPSG:4326, which our ``road_segments.geom`` is (SRIDs per tenant). So the benchmark serves, on both sides,
``public.bench_tiles_roads``: a copy of tenant he's ``road_segments`` (id, tenant_key, ref, name, highway,
road_class, is_private, is_path) with ``geom geometry(LineString, 25832)``, a GiST index on ``geom`` (the same kind
as ``ix_road_segments_geom``) and ANALYZE. For reference, our product endpoint ``/tiles/roads`` on the real
``public.road_segments`` is measured on the same tiles too (third column; no TiPG counterpart).

Cold cache: every tile is requested once per server (distinct tiles, no repeats, no tile cache on either side);
PostgreSQL's buffer cache and the OS page cache are as they are (not flushed: the whole table may be in memory).
Both servers get the same tiles; who goes first alternates per tile, so neither profits systematically from
pages the other just read. PostgreSQL's JIT is off on both sides (ours: engine option; TiPG: a custom SQL file
with ``SET jit = off`` that TiPG runs on each new connection).

Tiles: all tiles that hold at least one segment midpoint, per zoom; a reproducible random sample (``--seed``) of
``--runs`` of them (z10 has fewer in Hessen: all of them are used). Warm-up: 3 requests per server at each of
z11, z13 and z15 (one per zoom band of the measured zooms; never a measured tile).

The network (database BREITBAND_BENCH_DATABASE_URL, default …/breitband_bench, tenant "he"): reused when it holds
≥ ``--segments`` road segments of tenant he, else built with bench/resolve.py's functions (real Frankfurter Kreuz
extract replicated across Hessen, imported with the product's loader).

Target: our p95 ≤ TiPG's p95 at every zoom.

The base map (issue 16), in the same run against the same TiPG: the layers ``basemap_areas``, ``basemap_lines``,
``basemap_points`` and ``admin_labels``. Their data: the base map of every Hessen extract in data/roads/hessen/
(``breitband import basemap``: land use, buildings, railways, house numbers, and the road labels merged from the
whole state-scale road network), its OSM objects replicated over Hessen on a grid of the extracts' extent
(``--basemap-copies`` copies at most; reused when present). Each layer is served on both sides from a typed copy
(``bench_tiles_basemap_*``, ``bench_tiles_admin_labels``) with a GiST index, ours through the product's layer
definition (``bench_<layer>``), TiPG with a CQL2 filter equal to the layer's zoom band; tiles: a sample of those
holding a feature of the layer.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import resolve  # noqa: E402  (sets BREITBAND_DATABASE_URL to the bench database; puts the project on sys.path)

# isort: split

import numpy as np  # noqa: E402
import shapely  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

ROOT = resolve.ROOT
BENCH_URL = resolve.BENCH_URL
TENANT = resolve.TENANT
RELATION = "bench_tiles_roads"
# base map layer → (typed copy, geometry type, columns of the copy, properties asked from TiPG, point of a feature)
BASEMAP = {
    "basemap_areas": ("bench_tiles_basemap_areas", "MultiPolygon", "id, tenant_key, osm_id, kind, class, name, area_m2",
                      "kind,class,name", "ST_PointOnSurface(geom)"),
    "basemap_lines": ("bench_tiles_basemap_lines", "LineString",
                      "id, tenant_key, osm_id, kind, class, name, ref, length_m", "kind,class,name,ref",
                      "ST_LineInterpolatePoint(geom, 0.5)"),
    "basemap_points": ("bench_tiles_basemap_points", "Point",
                       "id, tenant_key, osm_id, kind, class, name, housenumber, population",
                       "kind,class,name,housenumber,population", "geom"),
    "admin_labels": ("bench_tiles_admin_labels", "Point", "id, tenant_key, level, name, bez, population",
                     "level,name,bez,population", "geom"),
}
FEATURE_LIMIT = 20_000
BUFFER = 64
PROPERTIES = "road_class,ref,name,highway,is_private"
# Warm-up zooms: one per zoom band of the roads layer at the measured zooms (z11: band of z10, z13: of z12, z15: of
# z14 and z16), so that connection set-up and the first use of each statement are not measured; not measured zooms,
# so no measured tile is requested twice.
WARM_ZOOMS = (11, 13, 15)


# --- data ------------------------------------------------------------------------------------------------------

def ensure_network(min_segments: int) -> int:
    """The state-scale network of bench/resolve.py; built with its functions when missing or too small."""
    import psycopg
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from breitband.migrate import upgrade

    raw = make_url(BENCH_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        upgrade(BENCH_URL)
        with psycopg.connect(raw) as conn:
            n = conn.execute("SELECT count(*) FROM road_segments WHERE tenant_key = %s", (TENANT,)).fetchone()[0]
    except Exception as exc:  # noqa: BLE001 - no database yet, or not migrated
        print(f"bench database not usable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
        n = 0
    if n >= min_segments:
        return n
    others = _other_sessions()
    if others:
        raise SystemExit(f"the bench database has {n:,} segments and {others} other open connection(s) (another "
                         "benchmark building it?); not rebuilding it under them. Retry when they are gone.")
    print(f"building the network: ≥ {min_segments:,} segments (bench/resolve.py's functions)")
    from geo import importers

    resolve.setup_database()
    # The app engine's 60 s statement timeout is for requests; the state-scale import's link pass can take longer
    # on a busy 2-core machine.
    engine = create_engine(BENCH_URL, connect_args={"options": "-c jit=off -c statement_timeout=0"})
    started = time.perf_counter()
    with Session(engine) as session:
        ways, _files = resolve.base_ways(session)
        first = importers.load_road_segments(session, TENANT, ways, propagate_links=False, analyze=False)
        copies = -(-min_segments // first["segments"])
        offsets, _ = resolve.tiles_for(session, ways, copies)
        for dx, dy in offsets[1:]:
            importers.load_road_segments(session, TENANT, resolve.shifted(ways, dx, dy), propagate_links=False,
                                         analyze=False)
        importers.finish_road_segments(session, TENANT)
        session.commit()
        n = session.execute(text("SELECT count(*) FROM road_segments WHERE tenant_key = :t"), {"t": TENANT}).scalar()
    engine.dispose()
    print(f"built {n:,} segments in {time.perf_counter() - started:.0f} s")
    return n


def _other_sessions() -> int:
    import psycopg

    name = make_url(BENCH_URL).database
    admin = make_url(BENCH_URL).set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False)
    try:
        with psycopg.connect(admin) as conn:
            return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                                "pg_backend_pid()", (name,)).fetchone()[0]
    except psycopg.Error:
        return 0


def ensure_relation(conn, n_segments: int) -> float:
    """``public.bench_tiles_roads`` (typed geometry column for TiPG), rebuilt when it does not match."""
    exists = conn.execute(text("SELECT to_regclass(:r) IS NOT NULL"), {"r": f"public.{RELATION}"}).scalar()
    if exists and conn.execute(text(f"SELECT count(*) FROM {RELATION}")).scalar() == n_segments:
        return 0.0
    started = time.perf_counter()
    conn.execute(text(f"DROP TABLE IF EXISTS {RELATION}"))
    conn.execute(text(f"""
        CREATE TABLE {RELATION} AS
        SELECT id, tenant_key, ref, name, highway, road_class, is_private, is_path,
               geom::geometry(LineString, 25832) AS geom
        FROM road_segments WHERE tenant_key = :t ORDER BY id"""), {"t": TENANT})
    conn.execute(text(f"ALTER TABLE {RELATION} ADD PRIMARY KEY (id)"))
    conn.execute(text(f"CREATE INDEX ix_{RELATION}_geom ON {RELATION} USING gist (geom)"))
    conn.execute(text(f"ANALYZE {RELATION}"))
    return time.perf_counter() - started


def ensure_basemap(max_copies: int) -> dict[str, int]:
    """The state-scale base map of tenant he: imported from every Hessen extract (road labels from the whole road
    network), its OSM objects replicated over Hessen; reused when it was built with the same number of copies."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from breitband.demo import demo_roads
    from geo import importers

    engine = create_engine(BENCH_URL, connect_args={"options": "-c jit=off -c statement_timeout=0"})
    try:
        with Session(engine) as session:
            log = session.execute(text("SELECT summary FROM layer_imports WHERE tenant_key = :t AND layer = "
                                       "'basemap'"), {"t": TENANT}).scalar()
            if log and log.get("bench_copies") == max_copies:
                return log["bench_counts"]
            print(f"building the base map: every Hessen extract, replicated up to {max_copies} times")
            started = time.perf_counter()
            summary = importers.import_basemap(session, TENANT, demo_roads())
            land = shapely.from_wkb(bytes(session.execute(text(
                "SELECT ST_AsBinary(geom) FROM admin_areas WHERE tenant_key = :t AND level = 'land'"),
                {"t": TENANT}).scalar()))
            ext = session.execute(text("""
                SELECT min(x0), min(y0), max(x1), max(y1) FROM (
                    SELECT ST_XMin(geom) x0, ST_YMin(geom) y0, ST_XMax(geom) x1, ST_YMax(geom) y1
                    FROM basemap_areas WHERE tenant_key = :t
                    UNION ALL SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom)
                    FROM basemap_lines WHERE tenant_key = :t AND kind <> 'road_label'
                    UNION ALL SELECT ST_X(geom), ST_Y(geom), ST_X(geom), ST_Y(geom)
                    FROM basemap_points WHERE tenant_key = :t) e"""), {"t": TENANT}).one()
            minx, miny, maxx, maxy = (float(v) for v in ext)
            w, h = maxx - minx + 50, maxy - miny + 50
            cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
            lx0, ly0, lx1, ly1 = land.bounds
            cands = sorted((abs(i) + abs(j), i, j)
                           for i in range(int((lx0 - cx) // w) - 1, int((lx1 - cx) // w) + 2)
                           for j in range(int((ly0 - cy) // h) - 1, int((ly1 - cy) // h) + 2)
                           if (i, j) != (0, 0) and land.contains(shapely.Point(cx + i * w, cy + j * h)))
            offsets = [(i * w, j * h) for _, i, j in cands[:max_copies - 1]]
            params = {"t": TENANT, "dx": [o[0] for o in offsets], "dy": [o[1] for o in offsets]}
            shift = "CROSS JOIN unnest(CAST(:dx AS float8[]), CAST(:dy AS float8[])) AS o(dx, dy)"
            session.execute(text(f"""INSERT INTO basemap_areas (tenant_key, osm_id, kind, class, name, area_m2, geom)
                SELECT tenant_key, osm_id, kind, class, name, area_m2, ST_Translate(geom, o.dx, o.dy)
                FROM basemap_areas {shift} WHERE tenant_key = :t"""), params)
            session.execute(text(f"""INSERT INTO basemap_lines (tenant_key, osm_id, kind, class, name, ref, length_m,
                                                                geom)
                SELECT tenant_key, osm_id, kind, class, name, ref, length_m, ST_Translate(geom, o.dx, o.dy)
                FROM basemap_lines {shift} WHERE tenant_key = :t AND kind <> 'road_label'"""), params)
            session.execute(text(f"""INSERT INTO basemap_points (tenant_key, osm_id, kind, class, name, housenumber,
                                                                 population, geom)
                SELECT tenant_key, osm_id, kind, class, name, housenumber, population, ST_Translate(geom, o.dx, o.dy)
                FROM basemap_points {shift} WHERE tenant_key = :t"""), params)
            for table in ("basemap_areas", "basemap_lines", "basemap_points"):
                session.execute(text(f"ANALYZE {table}"))
            counts = {table: session.execute(text(f"SELECT count(*) FROM {table} WHERE tenant_key = :t"),
                                             {"t": TENANT}).scalar()
                      for table in ("basemap_areas", "basemap_lines", "basemap_points")}
            summary.update({"bench_copies": max_copies, "bench_counts": counts})
            session.execute(text("UPDATE layer_imports SET summary = CAST(:s AS jsonb) WHERE tenant_key = :t AND "
                                 "layer = 'basemap'"), {"s": json.dumps(summary, default=str), "t": TENANT})
            session.commit()
            print(f"built the base map ({len(offsets) + 1} copies: {counts}) in "
                  f"{time.perf_counter() - started:.0f} s")
            return counts
    finally:
        engine.dispose()


def ensure_basemap_relations(conn) -> None:
    """Typed copies of the base map tables (TiPG reads a geometry column's SRID from its type), rebuilt each run."""
    for layer, (relation, gtype, columns, _props, _point) in BASEMAP.items():
        source = "admin_areas" if layer == "admin_labels" else layer
        geom = "label_point" if layer == "admin_labels" else "geom"
        conn.execute(text(f"DROP TABLE IF EXISTS {relation}"))
        conn.execute(text(f"CREATE TABLE {relation} AS SELECT {columns}, {geom}::geometry({gtype}, 25832) AS geom "
                          f"FROM {source} WHERE tenant_key = :t ORDER BY id"), {"t": TENANT})
        conn.execute(text(f"ALTER TABLE {relation} ADD PRIMARY KEY (id)"))
        conn.execute(text(f"CREATE INDEX ix_{relation}_geom ON {relation} USING gist (geom)"))
        conn.execute(text(f"ANALYZE {relation}"))


def basemap_tiles(conn, layer: str, zooms: list[int]) -> dict[int, list[tuple[int, int]]]:
    relation, _g, _c, _p, point = BASEMAP[layer]
    rows = conn.execute(text(f"SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform({point}, 4326) AS p "
                             f"FROM {relation}) s")).all()
    if not rows:
        return {z: [] for z in zooms}
    lon, lat = np.array(rows, dtype=float).T
    fx = (lon + 180) / 360
    fy = (1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2
    out = {}
    for z in zooms:
        n = 1 << z
        xy = np.unique(np.column_stack([np.floor(fx * n), np.floor(fy * n)]).astype(np.int64), axis=0)
        out[z] = [(int(x), int(y)) for x, y in xy]
    return out


def basemap_filter(layer: str, z: int) -> str | None:
    """CQL2 for TiPG equal to the base map layers' zoom bands (geo.tiles BASEMAP_*, ADMIN_LABELS)."""
    if layer == "basemap_areas":
        for below, cond in ((9, "area_m2 >= 1000000"), (11, "area_m2 >= 100000"), (13, "area_m2 >= 10000"),
                            (14, None)):
            if z < below:
                return "kind <> 'building'" + (f" AND {cond}" if cond else "")
        return None
    if layer == "basemap_lines":
        if z < 10:
            return ("(kind = 'water' AND class IN ('river','canal')) OR (kind = 'railway' AND class = 'rail') OR "
                    "(kind = 'road_label' AND class IN ('autobahn','bund'))")
        if z < 12:
            return ("(kind = 'water' AND class IN ('river','canal','stream')) OR (kind = 'railway' AND class IN "
                    "('rail','light_rail','subway','narrow_gauge')) OR (kind = 'road_label' AND class IN "
                    "('autobahn','bund','land','kreis'))")
        return None
    if layer == "basemap_points":
        if z < 8:
            return "kind = 'place' AND class = 'city'"
        if z < 10:
            return "kind = 'place' AND class IN ('city','town')"
        if z < 12:
            return "kind = 'place' AND class IN ('city','town','village','suburb','borough')"
        if z < 16:
            return "kind = 'place'"
        return None
    if z < 6:
        return "level = 'land'"
    if z < 9:
        return "level IN ('land','kreis')"
    return None


def check_basemap_bands_match() -> None:
    from geo import tiles

    got = {name: [b.minzoom for b in layer.bands] for name, layer in (
        ("basemap_areas", tiles.BASEMAP_AREAS), ("basemap_lines", tiles.BASEMAP_LINES),
        ("basemap_points", tiles.BASEMAP_POINTS), ("admin_labels", tiles.ADMIN_LABELS))}
    expected = {"basemap_areas": [0, 9, 11, 13, 14], "basemap_lines": [0, 10, 12],
                "basemap_points": [0, 8, 10, 12, 16], "admin_labels": [0, 6, 9]}
    if got != expected:
        raise SystemExit(f"the base map layers' bands changed ({got}); update basemap_filter() for TiPG")


def populated_tiles(conn, zooms: list[int]) -> dict[int, list[tuple[int, int]]]:
    """Per zoom, the sorted tiles that hold at least one segment midpoint."""
    rows = conn.execute(text(f"""
        SELECT ST_X(p), ST_Y(p) FROM (
            SELECT ST_Transform(ST_LineInterpolatePoint(geom, 0.5), 4326) AS p FROM {RELATION}) s""")).all()
    lon, lat = np.array(rows, dtype=float).T
    fx = (lon + 180) / 360
    fy = (1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2
    out = {}
    for z in zooms:
        n = 1 << z
        xy = np.unique(np.column_stack([np.floor(fx * n), np.floor(fy * n)]).astype(np.int64), axis=0)
        out[z] = [(int(x), int(y)) for x, y in xy]
    return out


# --- servers ---------------------------------------------------------------------------------------------------

def bench_app():
    """Our app with the layer ``bench_roads``: the product's roads layer reading ``bench_tiles_roads``
    (``uvicorn --factory tiles:bench_app --app-dir bench``)."""
    from geoalchemy2 import Geometry
    from sqlalchemy import Column, Integer, MetaData, String, Table

    from breitband.app import create_app
    from geo import tiles

    table = tiles.ROADS.table.to_metadata(MetaData(), name=RELATION)
    tiles.register_layer(replace(tiles.ROADS, name="bench_roads", table=table))
    md = MetaData()
    for layer in (tiles.BASEMAP_AREAS, tiles.BASEMAP_LINES, tiles.BASEMAP_POINTS):
        copy = layer.table.to_metadata(md, name=BASEMAP[layer.name][0])
        tiles.register_layer(replace(layer, name=f"bench_{layer.name}", table=copy))
    labels = Table(BASEMAP["admin_labels"][0], md, Column("id", Integer, primary_key=True),
                   Column("tenant_key", String), Column("level", String), Column("name", String),
                   Column("bez", String), Column("population", Integer),
                   Column("geom", Geometry("POINT", srid=25832, spatial_index=False)))
    tiles.register_layer(replace(tiles.ADMIN_LABELS, name="bench_admin_labels", table=labels))
    return create_app()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(client, path: str, proc: subprocess.Popen, name: str) -> None:
    import httpx

    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode}")
        try:
            if client.get(path).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{name} did not come up")


@dataclass
class Side:
    name: str
    url: str                       # path template with {z} {x} {y}
    params: dict[str, str]
    ms: dict[int, list[float]] = field(default_factory=dict)
    kb: dict[int, list[float]] = field(default_factory=dict)
    features: dict[int, list[int]] = field(default_factory=dict)


def band_filter(z: int) -> str | None:
    """CQL2 for TiPG equal to our roads layer's zoom bands (geo.tiles.ROADS.bands) at the benchmarked zooms."""
    if z < 8:
        return "road_class IN ('autobahn','bund')"
    if z < 12:
        return "road_class IN ('autobahn','bund','land','kreis')"
    if z < 14:
        return "is_path = false"
    return None


def check_bands_match() -> None:
    """Our bands, written out, must be what band_filter gives TiPG (fails loudly when geo.tiles changes)."""
    from geo import tiles

    labels = [(b.minzoom, b.label) for b in tiles.ROADS.bands]
    expected = [(0, "Autobahnen and Bundesstraßen"), (8, "classified roads (autobahn, bund, land, kreis)"),
                (12, "all roads except separately mapped footways and cycleways"), (14, "everything")]
    if labels != expected:
        raise SystemExit(f"geo.tiles.ROADS.bands changed ({labels}); update band_filter() for TiPG")


def pct(values, q) -> float:
    return float(np.percentile(np.array(values), q))


def count_features(content: bytes) -> int:
    import mapbox_vector_tile

    if not content:
        return 0
    return sum(len(layer["features"]) for layer in mapbox_vector_tile.decode(content).values())


def bench_basemap(args, zooms, pool, rng, ours_c, tipg_c) -> None:
    """p50/p95 per base map layer and zoom, ours against TiPG on the same typed copy, alternating who goes first."""
    print(f"\n{'layer':<15} {'zoom':>4} {'tiles':>5} | {'ours p50':>8} {'ours p95':>8} | {'TiPG p50':>8} "
          f"{'TiPG p95':>8} | {'p95 ours/TiPG':>13} | {'feat ours':>9} {'feat TiPG':>9}")
    verdicts = []
    for layer, (relation, _g, _c, props, _p) in BASEMAP.items():
        for z in zooms:
            tiles_z = pool[layer][z]
            sample = rng.sample(tiles_z, min(args.runs, len(tiles_z)))
            if not sample:
                continue
            ms = {"ours": [], "tipg": []}
            feats = {"ours": [], "tipg": []}
            for i, (x, y) in enumerate(sample):
                for side in (("ours", "tipg") if i % 2 == 0 else ("tipg", "ours")):
                    if side == "ours":
                        client, url, params = ours_c, f"/tiles/bench_{layer}/{z}/{x}/{y}.mvt", {"tenant": TENANT}
                    else:
                        client = tipg_c
                        url = f"/collections/public.{relation}/tiles/WebMercatorQuad/{z}/{x}/{y}"
                        params = {"properties": props}
                        if basemap_filter(layer, z):
                            params.update({"filter": basemap_filter(layer, z), "filter-lang": "cql2-text"})
                    t0 = time.perf_counter()
                    resp = client.get(url, params=params)
                    ms[side].append((time.perf_counter() - t0) * 1000)
                    if resp.status_code not in (200, 204):
                        raise SystemExit(f"{side} {url}: HTTP {resp.status_code} {resp.text[:300]}")
                    if i < args.decode:
                        feats[side].append(count_features(resp.content))
            ratio = pct(ms["ours"], 95) / pct(ms["tipg"], 95)
            verdicts.append((layer, z, ratio))
            print(f"{layer:<15} {z:>4} {len(sample):>5} | {pct(ms['ours'], 50):>6.1f}ms "
                  f"{pct(ms['ours'], 95):>6.1f}ms | {pct(ms['tipg'], 50):>6.1f}ms {pct(ms['tipg'], 95):>6.1f}ms | "
                  f"{ratio:>13.2f} | "
                  f"{np.mean(feats['ours']):>9.0f} {np.mean(feats['tipg']):>9.0f}")
    met = all(r <= 1.0 for *_, r in verdicts)
    print(f"\nbase map target our p95 ≤ TiPG's p95 at every layer and zoom: {'met' if met else 'NOT met'} "
          f"({', '.join(f'{layer} z{z} {r:.2f}' for layer, z, r in verdicts if r > 1.0) or 'all ≤ 1'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=40, help="distinct tiles per zoom (fewer where fewer are populated)")
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--zooms", default="10,12,14,16")
    ap.add_argument("--segments", type=int, default=1_000_000, help="build the network when it has fewer")
    ap.add_argument("--decode", type=int, default=10, help="tiles per zoom decoded to count features (untimed)")
    ap.add_argument("--basemap-copies", type=int, default=600, help="copies of the extracts' base map over Hessen "
                                                                   "(0: no base map layers)")
    args = ap.parse_args()
    zooms = [int(z) for z in args.zooms.split(",")]
    if not 1 <= args.runs <= 500:
        raise SystemExit("--runs must be between 1 and 500")

    import httpx

    from breitband.db import get_database

    check_bands_match()
    check_basemap_bands_match()
    print(f"database: {make_url(BENCH_URL).render_as_string(hide_password=True)}")
    n_segments = ensure_network(args.segments)
    basemap_counts = ensure_basemap(args.basemap_copies) if args.basemap_copies else None
    db = get_database()
    with db.engine.begin() as conn:
        built_s = ensure_relation(conn, n_segments)
        basemap_samples_pool = {}
        if basemap_counts is not None:
            ensure_basemap_relations(conn)
            basemap_samples_pool = {layer: basemap_tiles(conn, layer, zooms) for layer in BASEMAP}
        tiles_by_zoom = populated_tiles(conn, sorted(set(zooms) | set(WARM_ZOOMS)))
        classified = conn.execute(text(f"SELECT count(*) FROM {RELATION} WHERE road_class <> 'gemeinde'")).scalar()
    print(f"network: {n_segments:,} road segments of tenant {TENANT} ({classified:,} classified), "
          f"relation public.{RELATION}{f' built in {built_s:.1f} s' if built_s else ' reused'}")

    if basemap_counts is not None:
        print(f"base map: {basemap_counts}")
    rng = random.Random(args.seed)
    samples = {}
    for z in zooms:
        pool = tiles_by_zoom[z]
        samples[z] = rng.sample(pool, min(args.runs, len(pool)))
        print(f"z{z}: {len(pool):,} populated tiles, {len(samples[z])} sampled")
    measured = {(z, x, y) for z in zooms for x, y in samples[z]}
    warm = [(z, x, y) for z in WARM_ZOOMS
            for x, y in [t for t in rng.sample(tiles_by_zoom[z], 10) if (z, *t) not in measured][:3]]

    ours_port, tipg_port = free_port(), free_port()
    logs = {name: tempfile.TemporaryFile() for name in ("breitband", "tipg")}
    env = {**os.environ, "BREITBAND_DATABASE_URL": BENCH_URL, "BREITBAND_LOG_LEVEL": "WARNING",
           "BREITBAND_TILE_FEATURE_LIMIT": str(FEATURE_LIMIT)}
    ours = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "tiles:bench_app", "--app-dir",
                             str(BENCH_DIR), "--host", "127.0.0.1", "--port", str(ours_port), "--workers", "1",
                             "--log-level", "warning", "--no-access-log"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=logs["breitband"])
    sql_dir = tempfile.mkdtemp(prefix="tipg-sql-")
    Path(sql_dir, "jit_off.sql").write_text("SET jit = off;\n")
    raw_url = make_url(BENCH_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    tipg_env = {**{k: v for k, v in os.environ.items() if not k.startswith("TIPG_")},
                "DATABASE_URL": raw_url, "TIPG_DB_SCHEMAS": '["public"]',
                "TIPG_DB_TABLES": json.dumps([f"public.{RELATION}"] + [f"public.{r[0]}" for r in BASEMAP.values()]),
                "TIPG_DB_EXCLUDE_FUNCTION_SCHEMAS": '["public"]',
                "TIPG_MAX_FEATURES_PER_TILE": str(FEATURE_LIMIT), "TIPG_TILE_BUFFER": str(BUFFER),
                "TIPG_TILE_RESOLUTION": "4096", "TIPG_CATALOG_TTL": "86400", "TIPG_CUSTOM_SQL_DIRECTORY": sql_dir,
                "TIPG_DB_SPATIAL_EXTENT": "false", "TIPG_DB_DATETIME_EXTENT": "false"}
    tipg = subprocess.Popen([sys.executable, "-m", "uvicorn", "tipg.main:app", "--host", "127.0.0.1", "--port",
                             str(tipg_port), "--workers", "1", "--log-level", "warning", "--no-access-log"],
                            env=tipg_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=logs["tipg"])
    try:
        ours_c = httpx.Client(base_url=f"http://127.0.0.1:{ours_port}", timeout=60)
        tipg_c = httpx.Client(base_url=f"http://127.0.0.1:{tipg_port}", timeout=60)
        wait_ready(ours_c, "/healthz", ours, "breitband")
        wait_ready(tipg_c, "/healthz", tipg, "tipg")
        collection = tipg_c.get("/collections").json()
        ids = [c["id"] for c in collection["collections"]]
        if f"public.{RELATION}" not in ids:
            raise SystemExit(f"TiPG does not serve public.{RELATION}: {ids}")

        sides = {
            "ours": Side("ours", "/tiles/bench_roads/{z}/{x}/{y}.mvt", {"tenant": TENANT}),
            "tipg": Side("tipg", f"/collections/public.{RELATION}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}",
                         {"properties": PROPERTIES}),
            "product": Side("product", "/tiles/roads/{z}/{x}/{y}.mvt", {"tenant": TENANT}),
        }
        clients = {"ours": ours_c, "tipg": tipg_c, "product": ours_c}

        def get(side: Side, z: int, x: int, y: int):
            url = side.url.format(z=z, x=x, y=y)
            params = dict(side.params)
            if side.name == "tipg" and band_filter(z):
                params.update({"filter": band_filter(z), "filter-lang": "cql2-text"})
            t0 = time.perf_counter()
            resp = clients[side.name].get(url, params=params)
            ms = (time.perf_counter() - t0) * 1000
            if resp.status_code not in (200, 204):
                raise SystemExit(f"{side.name} {url}: HTTP {resp.status_code} {resp.text[:300]}")
            return ms, resp

        for z, x, y in warm:
            for side in sides.values():
                get(side, z, x, y)

        for z in zooms:
            for side in sides.values():
                side.ms[z], side.kb[z], side.features[z] = [], [], []
            for i, (x, y) in enumerate(samples[z]):
                order = ("ours", "tipg") if i % 2 == 0 else ("tipg", "ours")
                for name in (*order, "product"):
                    side = sides[name]
                    ms, resp = get(side, z, x, y)
                    side.ms[z].append(ms)
                    side.kb[z].append(len(resp.content) / 1024)
                    if i < args.decode:
                        side.features[z].append(count_features(resp.content))

        print(f"\n{'zoom':>4} {'tiles':>5} | {'ours p50':>8} {'ours p95':>8} | {'TiPG p50':>8} {'TiPG p95':>8} | "
              f"{'p95 ours/TiPG':>13} | {'KB ours':>7} {'KB TiPG':>7} | {'feat ours':>9} {'feat TiPG':>9} | "
              f"{'product p50':>11} {'p95':>6}")
        verdicts = []
        for z in zooms:
            o, t, p = sides["ours"], sides["tipg"], sides["product"]
            ratio = pct(o.ms[z], 95) / pct(t.ms[z], 95)
            verdicts.append((z, ratio))
            print(f"{z:>4} {len(o.ms[z]):>5} | {pct(o.ms[z], 50):>6.1f}ms {pct(o.ms[z], 95):>6.1f}ms | "
                  f"{pct(t.ms[z], 50):>6.1f}ms {pct(t.ms[z], 95):>6.1f}ms | {ratio:>13.2f} | "
                  f"{np.mean(o.kb[z]):>7.1f} {np.mean(t.kb[z]):>7.1f} | "
                  f"{np.mean(o.features[z]):>9.0f} {np.mean(t.features[z]):>9.0f} | "
                  f"{pct(p.ms[z], 50):>9.1f}ms {pct(p.ms[z], 95):>4.1f}ms")
        met = all(r <= 1.0 for _, r in verdicts)
        print(f"\ntarget our p95 ≤ TiPG's p95 at every zoom: {'met' if met else 'NOT met'} "
              f"({', '.join(f'z{z} {r:.2f}' for z, r in verdicts)})")
        print("(KB and features: means; features decoded from the first "
              f"{args.decode} tiles per zoom, untimed. 'product' = our /tiles/roads on public.road_segments, the "
              "SRID-less production table, same tiles, requested after the pair.)")
        if basemap_counts is not None:
            bench_basemap(args, zooms, basemap_samples_pool, rng, ours_c, tipg_c)
    finally:
        for proc in (ours, tipg):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(sql_dir, ignore_errors=True)
        for name, log in logs.items():
            log.seek(0)
            err = log.read().decode(errors="replace").strip()
            if "error" in err.lower() or "traceback" in err.lower():
                print(f"--- {name} stderr (last 2000 characters) ---\n{err[-2000:]}")


if __name__ == "__main__":
    main()
