"""Benchmark of route files (issue 14, "Measure and note"): parse time of a ~5 MB Shapefile (zip) and a ~5 MB
GeoPackage, and the resolve time of each, against the same route as GeoJSON measured in the same run.

    .venv/bin/python bench/route_files.py [--mb 5] [--runs 3] [--resolve-runs 5]

What it builds: tenant he's real data (VG250 boundaries of Hessen, the OSM roads of the Frankfurter Kreuz and the
Darmstadt-Frankfurt corridor, as the tests' ``he_data``) in its own database. The route: planners' trench lines
derived from those roads — every public road segment offset 8 m to the side (a trench in the verge), in
EPSG:25832, with the attributes a planning export carries (name, laying method, depth, width) — as many segments
as make the zipped Shapefile about ``--mb`` MB; the GeoPackage and the GeoJSON (legacy ``crs`` member) hold the
same lines.

What it measures, per format (``--runs`` times after one warm-up; p50 and p95):

* read: ``geo.route_files.read_route_file`` — format detection, GDAL (pyogrio) reading from a temporary file,
  the features as GeoJSON data (GeoJSON passes through: near zero);
* parse: read plus ``geo.validation.parse_route`` — the route as validated geometries, ready to resolve (for
  GeoJSON this is the JSON parse and validation, the baseline of the ratio);
* resolve: ``geo.service.resolve_file`` in-process on a read-only session — what ``POST /api/v1/resolve`` runs
  in its worker thread. A 5 MB route is a network of thousands of km, far over the default route limits (100,000
  vertices, 10,000 features, 200 km): with the bench tenant's limits raised it is resolved once (the service's
  60 s statement timeout may end it first: that is printed); then a route at the length limit (the first lines
  up to 200 km) as Shapefile, GeoPackage and GeoJSON (``--resolve-runs`` times after a warm-up), checked to give the
  same authorities and lengths; and the refusal of the 5 MB file under the default limits, timed.

Database: BREITBAND_BENCH_ROUTE_FILES_DATABASE_URL, default …/breitband_bench_route_files; the data is imported
when missing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
MAIN_URL = os.environ.get("BREITBAND_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/breitband")
BENCH_URL = os.environ.get("BREITBAND_BENCH_ROUTE_FILES_DATABASE_URL") or make_url(MAIN_URL).set(
    database="breitband_bench_route_files").render_as_string(hide_password=False)
os.environ["BREITBAND_DATABASE_URL"] = BENCH_URL
os.environ.setdefault("BREITBAND_LOG_LEVEL", "WARNING")
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pyogrio.raw  # noqa: E402
import shapely  # noqa: E402
from sqlalchemy import text  # noqa: E402

DATA = ROOT / "data"
BOUNDARIES = [DATA / "boundaries" / n for n in ("hessen_gemeinden_vg250_2018_sim200.geojson",
                                                "hessen_kreise_vg250_2018_sim200.geojson",
                                                "hessen_land_vg250_2018_sim20.geojson")]
ROADS = [DATA / "roads" / "hessen" / n for n in ("frankfurter-kreuz.osm.pbf",
                                                 "darmstadt-frankfurt-corridor_motis-test-case.osm.pbf")]
RAISED = {"max_vertices": 10_000_000, "max_features": 1_000_000, "max_length_km": 100_000.0}


def pct(values, q) -> float:
    return float(np.percentile(np.array(values), q))


def setup(limits: dict | None):
    import tomllib

    from breitband import identity
    from breitband.db import Database
    from breitband.migrate import create_database, upgrade
    from breitband.settings import get_settings
    from geo.importers import import_boundaries, import_roads, same_sources
    from geo.rules import validate_rules

    create_database(BENCH_URL)
    upgrade(BENCH_URL)
    db = Database.from_settings(get_settings())
    with open(DATA / "tenants" / "he.toml", "rb") as fh:
        raw = tomllib.load(fh)
    if limits is not None:
        raw["limits"] = limits
    with db.sessionmaker() as session:
        if session.get(identity.Tenant, "he") is None:
            identity.create_tenant(session, "he", raw["name"], raw["crs"], validate_rules(raw, "he"))
        else:
            identity.update_tenant(session, "he", rules=validate_rules(raw, "he"))
        if not same_sources(session, "he", "boundaries", BOUNDARIES):
            import_boundaries(session, "he", BOUNDARIES)
        if not same_sources(session, "he", "roads", ROADS):
            import_roads(session, "he", ROADS)
        session.commit()
    return db


def trench_lines(db) -> tuple[list, list[str]]:
    """Every public road segment, 8 m to its right (EPSG:25832), with its name; in a stable order."""
    with db.sessionmaker() as session:
        rows = session.execute(text(
            "SELECT ST_AsBinary(ST_OffsetCurve(geom, -8)), coalesce(name, ref, '') FROM road_segments "
            "WHERE tenant_key = 'he' AND NOT is_private AND ST_Length(geom) > 20 ORDER BY id")).all()
    geoms = shapely.from_wkb([bytes(r[0]) for r in rows])
    keep = [k for k, g in enumerate(geoms) if g is not None and g.geom_type == "LineString" and g.length > 1]
    return [geoms[k] for k in keep], [rows[k][1] for k in keep]


def write(path: Path, driver: str, geoms: list, names: list[str], layer: str = "trasse") -> None:
    n = len(geoms)
    pyogrio.raw.write(str(path), shapely.to_wkb(np.array(geoms, dtype=object)),
                      [np.array(names, dtype=object), np.array(["open_trench"] * n, dtype=object),
                       np.full(n, 60, dtype=np.int32), np.full(n, 40, dtype=np.int32)],
                      ["name", "laying_method", "depth_cm", "width_cm"], driver=driver, geometry_type="LineString",
                      crs="EPSG:25832", layer=layer)


def shapefile_zip(tmp: Path, geoms: list, names: list[str]) -> bytes:
    folder = tmp / f"shp{len(geoms)}"
    folder.mkdir()
    write(folder / "trasse.shp", "ESRI Shapefile", geoms, names)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for part in sorted(folder.iterdir()):
            zf.write(part, part.name)
    return out.getvalue()


def geopackage(tmp: Path, geoms: list, names: list[str]) -> bytes:
    path = tmp / f"trasse{len(geoms)}.gpkg"
    write(path, "GPKG", geoms, names)
    return path.read_bytes()


def geojson(geoms: list, names: list[str]) -> bytes:
    features = [{"type": "Feature", "geometry": json.loads(g),
                 "properties": {"name": n, "laying_method": "open_trench", "depth_cm": 60, "width_cm": 40}}
                for g, n in zip(shapely.to_geojson(np.array(geoms, dtype=object)).tolist(), names)]
    return json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:25832"}},
                       "features": features}).encode()


def sized(tmp: Path, geoms: list, names: list[str], mb: float) -> int:
    """How many of the lines make the zipped Shapefile about ``mb`` MB (all of them, repeated, when they are
    fewer)."""
    n = len(geoms)
    size = len(shapefile_zip(tmp, geoms, names))
    return max(1, int(n * mb * 1e6 / size))


def timed(fn, runs: int, warm_up: bool = True) -> tuple[list[float], object]:
    if warm_up:
        fn()
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=5.0, help="size of the zipped Shapefile (MB)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--resolve-runs", type=int, default=5)
    args = ap.parse_args()

    from geo import service
    from geo.route_files import read_route_file
    from geo.rules import Limits
    from geo.validation import parse_route

    started = time.perf_counter()
    db = setup(RAISED)
    lines, names = trench_lines(db)
    print(f"database {make_url(BENCH_URL).database}: {len(lines):,} trench lines beside public roads; "
          f"set up in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory(prefix="bench-route-files-") as tmpdir:
        tmp = Path(tmpdir)
        n = sized(tmp, lines, names, args.mb)
        reps = -(-n // len(lines))
        geoms = (lines * reps)[:n]
        labels = (names * reps)[:n]
        # the GeoPackage carries more per line (its R-tree, page slack): sized on its own to about --mb MB
        m = max(1, int(n * args.mb * 1e6 / len(geopackage(tmp, geoms, labels))))
        files = {"Shapefile (zip)": shapefile_zip(tmp, geoms, labels),
                 "GeoPackage": geopackage(tmp, geoms[:m], labels[:m]), "GeoJSON (baseline)": geojson(geoms, labels)}
        counts = {"Shapefile (zip)": n, "GeoPackage": m, "GeoJSON (baseline)": n}
    vertices = int(sum(len(g.coords) for g in geoms))
    length_km = sum(g.length for g in geoms) / 1000
    print(f"route: {n:,} lines, {vertices:,} vertices, {length_km:,.0f} km, EPSG:25832"
          + (f" (the {len(lines):,} lines {reps}×)" if reps > 1 else ""))
    limits = Limits(**RAISED)

    def parse(body: bytes):
        route = read_route_file(body)
        return parse_route(route.data, route.crs, limits)

    print(f"\n{'format':<20} {'MB':>6} {'lines':>7} {'read p50':>9} {'p95':>7} {'parse p50':>10} {'p95':>7} "
          f"{'µs/line':>8}   (ms, {args.runs} runs after a warm-up)")
    parsed = {}
    for name, body in files.items():
        read_t, _ = timed(lambda body=body: read_route_file(body), args.runs)
        parse_t, route = timed(lambda body=body: parse(body), args.runs)
        assert len(route.features) == counts[name], (name, len(route.features), counts[name])
        parsed[name] = pct(parse_t, 50) / counts[name]
        print(f"{name:<20} {len(body) / 1e6:6.2f} {counts[name]:7,} {pct(read_t, 50) * 1000:9.0f} "
              f"{pct(read_t, 95) * 1000:7.0f} {pct(parse_t, 50) * 1000:10.0f} {pct(parse_t, 95) * 1000:7.0f} "
              f"{pct(parse_t, 50) / counts[name] * 1e6:8.0f}")
    base = parsed["GeoJSON (baseline)"]
    print("parse time per line against the GeoJSON's: " + ", ".join(
        f"{k} {v / base:.2f}×" for k, v in parsed.items() if k != "GeoJSON (baseline)"))

    # Resolve: the whole 5 MB route is a network of thousands of km; the service's statement timeout (60 s,
    # breitband/db.py) ends its query first. Timed once, then a route at the default length limit (200 km: the
    # first lines up to it) from each format, the largest file a tenant with default limits resolves.
    with db.statement_session(readonly=True) as session:
        t0 = time.perf_counter()
        try:
            result = service.resolve_file(session, "he", files["Shapefile (zip)"], raw_geometry=True)
            print(f"\nresolve of the whole {length_km:,.0f} km Shapefile: {time.perf_counter() - t0:.1f} s, "
                  f"{len(result['authorities'])} authorities")
        except Exception as exc:  # noqa: BLE001 - the refusal is what is measured
            print(f"\nresolve of the whole {length_km:,.0f} km Shapefile: {type(exc).__name__} after "
                  f"{time.perf_counter() - t0:.1f} s ({str(exc).splitlines()[0][:90]})")
    cut = int(np.searchsorted(np.cumsum([g.length for g in lines]), Limits().max_length_km * 1000 * 0.99))
    small_g, small_n = lines[:cut], names[:cut]
    with tempfile.TemporaryDirectory(prefix="bench-route-files-") as tmpdir:
        small = {"Shapefile (zip)": shapefile_zip(Path(tmpdir), small_g, small_n),
                 "GeoPackage": geopackage(Path(tmpdir), small_g, small_n), "GeoJSON (baseline)": geojson(small_g,
                                                                                                        small_n)}
    print(f"\nroute at the length limit: {cut:,} lines, {sum(len(g.coords) for g in small_g):,} vertices, "
          f"{sum(g.length for g in small_g) / 1000:,.0f} km")
    print(f"{'format':<20} {'MB':>6} {'resolve p50':>12} {'p95':>7}   (ms, {args.resolve_runs} runs after a warm-up)")
    answers = {}
    for name, body in small.items():
        with db.statement_session(readonly=True) as session:
            resolve_t, result = timed(lambda body=body, session=session: service.resolve_file(
                session, "he", body, raw_geometry=True), args.resolve_runs)
        answers[name] = {a["name"]: a["length_m"] for a in result["authorities"]}
        print(f"{name:<20} {len(body) / 1e6:6.2f} {pct(resolve_t, 50) * 1000:12.0f} {pct(resolve_t, 95) * 1000:7.0f}"
              f"   {len(result['authorities'])} authorities, {result['total_length_m'] / 1000:,.1f} km")
    ref = answers["GeoJSON (baseline)"]
    for name in ("Shapefile (zip)", "GeoPackage"):
        same = answers[name].keys() == ref.keys() and all(abs(answers[name][k] - v) <= 0.5 for k, v in ref.items())
        print(f"{name}: authorities and lengths {'the same as' if same else 'DIFFERENT from'} the GeoJSON's "
              "(within 0.5 m)")

    setup(None)                               # the default limits: the 5 MB file is refused, and how fast
    with db.statement_session(readonly=True) as session:
        t0 = time.perf_counter()
        try:
            service.resolve_file(session, "he", files["Shapefile (zip)"])
            print("default limits: the 5 MB file is accepted")
        except Exception as exc:  # noqa: BLE001 - the refusal is what is measured
            print(f"default limits, the 5 MB file: {getattr(exc, 'type', type(exc).__name__)} in "
                  f"{(time.perf_counter() - t0) * 1000:.0f} ms: {str(exc)[:110]}")
    print(f"total {time.perf_counter() - started:.0f} s")
    db.dispose()


if __name__ == "__main__":
    main()
