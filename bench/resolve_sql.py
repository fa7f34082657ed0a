"""Compare variants of the resolution query side by side, on the database bench/resolve.py leaves behind.

    .venv/bin/python bench/resolve.py            # once: builds breitband_bench (1M segments) and keeps it
    .venv/bin/python bench/resolve_sql.py [--km 10] [--runs 40] [variant.sql ...]

Runs geo.resolution.LINES_SQL ("product") and every given file (the same query rewritten; named parameters as in
LINES_SQL, plus ``:grp_n`` = 5 for grouped variants) over psycopg, interleaved and alternating their order, on the
routes bench/resolve.py measures (12 m beside the replicated A 5), and prints p50/p95/min per variant. Then it
compares each variant's rows with the product's, route by route: a variant that answers differently is reported,
however fast. bench/variants/ holds the variants the README mentions as measured and not kept.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resolve as bench  # noqa: E402  (sets BREITBAND_DATABASE_URL to the bench database)

EXTRA = {"grp_n": 5}


def placeholders(sql: str) -> tuple[str, list[str]]:
    names = sorted(set(re.findall(r"(?<!:):([a-z_]+)", sql)))
    return re.sub(r"(?<!:):([a-z_]+)", r"%(\1)s", sql), names


def routes(km: float) -> list[dict]:
    from breitband.db import get_database
    from geo import resolution, service
    from geo.importers.common import Summary
    from geo.importers.roads import read_road_files

    with get_database().sessionmaker() as session:
        if not session.execute(bench.text("SELECT count(*) FROM road_segments WHERE tenant_key = :t"),
                               {"t": bench.TENANT}).scalar():
            raise SystemExit("no bench network: run bench/resolve.py first")
        ways = read_road_files(bench.EXTRACTS, 25832, Summary(layer="roads", tenant=bench.TENANT))
        offsets, _ = bench.tiles_for(session, ways, 5)   # the nearest tiles, as bench/resolve.py's routes use
        params = []
        for c in range(5):
            body = bench.geojson_4326(bench.a5_route(ways, offsets, km * 1000, c))
            route, rules, srid = service.prepare(session, bench.TENANT, body, None)
            params.append(resolution.line_query_params(bench.TENANT, srid, 4326, 7, rules, route.lines))
    return params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--km", type=float, default=10)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("variants", nargs="*", type=Path)
    args = ap.parse_args()

    import psycopg
    from sqlalchemy.engine import make_url

    from geo import resolution

    variants = [("product", *placeholders(str(resolution.LINES_SQL)))]
    variants += [(p.name, *placeholders(p.read_text())) for p in args.variants]
    params = routes(args.km)
    conn = psycopg.connect(make_url(bench.BENCH_URL).set(drivername="postgresql").render_as_string(
        hide_password=False), options="-c jit=off")
    times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    rows: dict[tuple[int, str], list] = {}
    for k in range(args.runs + 5):
        p = params[k % len(params)]
        for name, stmt, names in (variants if k % 2 == 0 else variants[::-1]):
            t0 = time.perf_counter()
            out = conn.execute(stmt, {n: p.get(n, EXTRA.get(n)) for n in names}).fetchall()
            if k >= 5:
                times[name].append((time.perf_counter() - t0) * 1000)
            if k < len(params):
                rows[(k, name)] = [tuple(round(float(v), 3) if isinstance(v, float) else v for v in r) for r in out]
    print(f"{args.km:g} km routes, {args.runs} runs each after 5 warm-up, interleaved")
    for name, _, _ in variants:
        t = np.array(times[name])
        print(f"  {name:32s} p50 {np.percentile(t, 50):6.1f} ms  p95 {np.percentile(t, 95):6.1f} ms  "
              f"min {t.min():6.1f} ms")
    for name, _, _ in variants[1:]:
        differ = [k for k in range(len(params)) if rows[(k, name)] != rows[(k, "product")]]
        print(f"  {name}: {'same rows as the product on every route' if not differ else f'DIFFERENT rows on routes {differ}'}")


if __name__ == "__main__":
    main()
