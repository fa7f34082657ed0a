"""Compare variants of the resolution query side by side, on the database bench/resolve.py leaves behind.

    .venv/bin/python bench/resolve.py            # once: builds breitband_bench (1M segments) and keeps it
    .venv/bin/python bench/resolve_sql.py [--km 10] [--runs 40] [variant.sql ...]

Runs geo.resolution.LINES_SQL ("product") and every given file (the same query rewritten; named parameters as in
LINES_SQL, plus ``:grp_n`` = 5 for grouped variants) over psycopg, interleaved and alternating their order, on the
routes bench/resolve.py measures (12 m beside the replicated A 5), and prints p50/p95/min per variant. Then it
compares each variant's rows with the product's, route by route: a variant that answers differently is reported,
however fast. A variant is a .sql file or the name of one of VARIANTS below: rewrites of one part of the product's
query that docs/resolution.md and docs/benchmarks.md mention as measured and not kept (built from the product's
text, so they follow it).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resolve as bench  # sets BREITBAND_DATABASE_URL to the bench database

EXTRA = {"grp_n": 5}

# coarse_to_fine: pieces grouped by 5; a group whose candidate roads (within its box) all share class, number,
# name, highway and privacy takes that road for each piece within the tolerance (a semi-join, no sort); the other
# groups match piece by piece as the product does. On the Frankfurter Kreuz about 1 group in 6 qualifies, and the
# planner's estimate of 1 row per CTE turns the extra joins into nested loops.
COARSE_TO_FINE = """grps AS MATERIALIZED (
    SELECT feature, part, grp, min(chunk) AS chunk, ST_SetSRID(ST_Expand(ST_Extent(mid)::geometry, :tol), :srid) AS box
    FROM segs GROUP BY feature, part, grp
),
grp_cand AS MATERIALIZED (
    SELECT g.feature, g.part, g.grp, rc.id, rc.geom, rc.is_path, rc.ref, rc.name, rc.highway, rc.road_class,
           rc.class_source, rc.class_ref, rc.is_private
    FROM grps g JOIN road_cand rc ON rc.feature = g.feature AND rc.part = g.part AND rc.chunk = g.chunk
    WHERE rc.geom && g.box
),
grp_kind AS MATERIALIZED (
    SELECT feature, part, grp,
           count(DISTINCT ROW(ref, name, highway, road_class, class_source, class_ref, is_private, is_path)::text) AS n,
           min(id) AS road_id, min(ref) AS ref, min(name) AS name, min(highway) AS highway,
           min(road_class) AS road_class, min(class_source) AS class_source, min(class_ref) AS class_ref,
           bool_and(is_private) AS is_private
    FROM grp_cand GROUP BY feature, part, grp
),
seg_road AS (
    SELECT s.feature, s.part, s.seq, k.road_id, k.ref, k.name, k.highway, k.road_class, k.class_source,
           k.class_ref, k.is_private
    FROM segs s JOIN grp_kind k USING (feature, part, grp)
    WHERE k.n = 1 AND EXISTS (
        SELECT 1 FROM grp_cand gc
        WHERE gc.feature = s.feature AND gc.part = s.part AND gc.grp = s.grp AND ST_DWithin(gc.geom, s.mid, :tol))
    UNION ALL
    (SELECT DISTINCT ON (feature, part, seq) feature, part, seq, road_id, ref, name, highway, road_class,
           class_source, class_ref, is_private
    FROM (
        SELECT s.feature, s.part, s.seq, gc.id AS road_id, gc.is_path, ST_Distance(gc.geom, s.mid) AS dist,
               gc.ref, gc.name, gc.highway, gc.road_class, gc.class_source, gc.class_ref, gc.is_private
        FROM segs s JOIN grp_kind k USING (feature, part, grp) JOIN grp_cand gc USING (feature, part, grp)
        WHERE k.n > 1 AND gc.geom && s.midbox
    ) d
    WHERE dist <= :tol
    ORDER BY feature, part, seq, dist + CASE WHEN is_path THEN :penalty ELSE 0 END, road_id)
),
"""
# narrow_sort: the nearest road per piece chosen on narrow rows (ids and distance), its attributes joined back from
# the candidates afterwards; the join back becomes a nested loop over the CTE.
NARROW_SORT = """seg_best AS (
    SELECT DISTINCT ON (feature, part, seq) feature, part, seq, chunk, road_id
    FROM (
        SELECT s.feature, s.part, s.seq, s.chunk, rc.id AS road_id,
               ST_Distance(rc.geom, s.mid) AS dist, rc.is_path
        FROM segs s JOIN road_cand rc USING (feature, part, chunk)
        WHERE rc.geom && s.midbox
    ) d
    WHERE dist <= :tol
    ORDER BY feature, part, seq, dist + CASE WHEN is_path THEN :penalty ELSE 0 END, road_id
),
seg_road AS (
    SELECT b.feature, b.part, b.seq, b.road_id, rc.ref, rc.name, rc.highway, rc.road_class, rc.class_source,
           rc.class_ref, rc.is_private
    FROM seg_best b JOIN road_cand rc ON rc.feature = b.feature AND rc.part = b.part AND rc.chunk = b.chunk
                                      AND rc.id = b.road_id
),
"""


def _replace(sql: str, start: str, end: str, new: str) -> str:
    """``sql`` with the text from ``start`` up to ``end`` replaced by ``new`` (both must occur, in that order)."""
    i, j = sql.index(start), sql.index(end)
    return sql[:i] + new.strip() + "\n" + sql[j:]


def coarse_to_fine(sql: str) -> str:
    sql = sql.replace("(d.path[1] - 1) / :gchunk_n AS gchunk,",
                      "(d.path[1] - 1) / :gchunk_n AS gchunk, (d.path[1] - 1) / :grp_n AS grp,")
    gem = sql[sql.index("gem_cand AS MATERIALIZED ("):sql.index("seg_road AS (")]
    sql = _replace(sql, "gem_cand AS MATERIALIZED (", "seg_road AS (", "")
    return _replace(sql, "seg_road AS (", "seg_gem AS (", COARSE_TO_FINE + gem)


def narrow_sort(sql: str) -> str:
    return _replace(sql, "seg_road AS (", "seg_gem AS (", NARROW_SORT)


VARIANTS = {"coarse_to_fine": coarse_to_fine, "narrow_sort": narrow_sort}


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
    ap.add_argument("variants", nargs="*", help=f"a .sql file or one of {', '.join(VARIANTS)}")
    args = ap.parse_args()

    import psycopg
    from sqlalchemy.engine import make_url

    from geo import resolution

    variants = [("product", *placeholders(str(resolution.LINES_SQL)))]
    for v in args.variants:
        sql = VARIANTS[v](str(resolution.LINES_SQL)) if v in VARIANTS else Path(v).read_text()
        variants.append((v, *placeholders(sql)))
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
        verdict = f"DIFFERENT rows on routes {differ}" if differ else "same rows as the product on every route"
        print(f"  {name}: {verdict}")


if __name__ == "__main__":
    main()
