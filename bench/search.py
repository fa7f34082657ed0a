"""Benchmark of the map's search (``GET /api/v1/search``) at state scale.

    BREITBAND_BENCH_DATABASE_URL=…/breitband_bench .venv/bin/python bench/search.py [--segments 1000000] [--runs 200]

The network: the state-scale road network of bench/resolve.py (≥ ``--segments`` road segments of tenant "he": the
real OSM extract of the Frankfurter Kreuz REPLICATED on a grid of tiles across Hessen, each copy shifted by whole
tile sizes — synthetic placement of real data; reused when the bench database already holds it, as bench/tiles.py
does), with the real VG250 boundaries of Hessen. On it the search index is rebuilt with the product's function
(``geo.search.rebuild_places``, what every road import runs) and timed. A copy's streets fall into the Gemeinde
they are shifted into, so the index holds each street name once per Gemeinde it lands in, as a state's does.

References: ``--applications`` (default 20,000) SYNTHETIC submitted applications of one operator (labelled
"Bench", references BENCH-2026-000001 …, each route a short line of a copy of the network) are inserted straight
into ``applications`` (the table the search reads) unless present.

Measured through HTTP (uvicorn, one worker, loopback, a Bearer token; httpx in this process), ``--runs`` requests
per kind of query, each query drawn from the data (a reproducible sample, ``--seed``), after a warm-up of 20:

- gemeinde: a Gemeinde's name, in full or its first 4–8 letters or with one letter changed (typing error);
- street: a street name with its Gemeinde ("Bahnhofstraße Langen"), or cut short ("Bahnhofstr"), or alone;
- road: a road number as people type it ("L 3262", "l3262", "K163");
- reference: a reference in full or its last 6 digits (as the operator, whose 20,000 applications are searched);
- reference_authority: the same as an authority of the tenant (no case: the scope must answer quickly with none);
- coordinates: a point in Hessen as "lon, lat" or EPSG:25832 "easting northing".

Baseline in the same run: the bare SQL of the place queries (``geo.search._PREFIX``, then ``_PLACES`` when the
prefix finds nothing; same parameters) over psycopg, for the text kinds; the ratio HTTP p95 / SQL p95 shows what
the service adds. And the floor: ``GET /api/v1/map/layers`` (token check and one small query), what any
authenticated request costs on the machine at that moment. Target: p95 ≤ 50 ms for every kind.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import resolve  # noqa: E402  (sets BREITBAND_DATABASE_URL to the bench database; puts the project on sys.path)
import tiles  # noqa: E402

# isort: split

import numpy as np  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

ROOT = resolve.ROOT
BENCH_URL = resolve.BENCH_URL
TENANT = resolve.TENANT
TARGET_MS = 50.0


def pct(values, q) -> float:
    return float(np.percentile(np.array(values), q))


def rebuild_index(engine) -> tuple[float, dict[str, int]]:
    from geo.search import rebuild_places

    with Session(engine) as session:
        started = time.perf_counter()
        counts = rebuild_places(session, TENANT)
        session.execute(text("ANALYZE search_places"))
        session.commit()
        return time.perf_counter() - started, counts


def ensure_applications(engine, n: int) -> tuple[str, str, str]:
    """``n`` synthetic submitted applications of the operator "Bench Such GmbH" (inserted in one statement), each
    route a 100 m line at a segment of the network; an operator member and an authority reviewer with tokens.
    Returns (operator token, authority token, reference prefix)."""
    from breitband import identity
    from breitband.models import Organisation, OrgKind, Role

    with Session(engine) as session:
        op = session.query(Organisation).filter_by(tenant_key=TENANT, name="Bench Such GmbH").first()
        if op is None:
            op = identity.create_organisation(session, TENANT, OrgKind.operator, "Bench Such GmbH")
        have = session.execute(text("SELECT count(*) FROM applications WHERE applicant_org_id = :o"),
                               {"o": op.id}).scalar()
        if have < n:
            session.execute(text("""
                INSERT INTO applications (id, tenant_key, reference, applicant_org_id, status, current_version,
                                          project_name, operator_reference, route_geom, submitted_at, works,
                                          created_at, updated_at, row_version)
                SELECT gen_random_uuid(), :t, 'BENCH-2026-' || lpad(g::text, 6, '0'), :o, 'submitted', 1,
                       'Synthetischer Antrag ' || g, 'BS-' || g,
                       ST_Transform(ST_SetSRID(ST_LineSubstring(s.geom, 0,
                                                                least(1, 100 / greatest(ST_Length(s.geom), 1))),
                                               25832), 4326),
                       now(), '{}'::jsonb, now(), now(), 1
                FROM generate_series(CAST(:first AS integer), CAST(:n AS integer)) AS g
                JOIN LATERAL (SELECT geom FROM road_segments WHERE tenant_key = :t AND id = (g * 37) % 900000 + 1
                              LIMIT 1) s ON true
            """), {"t": TENANT, "o": op.id, "first": have + 1, "n": n})
            session.execute(text("ANALYZE applications"))
        member = identity.create_user(session, op, f"such-{time.time_ns()}@bench.example", "Bench",
                                      Role.operator_member)
        _, op_token = identity.create_token(session, member, "bench search")
        authority = session.query(Organisation).filter_by(tenant_key=TENANT, kind="road_authority").first()
        reviewer = identity.create_user(session, authority, f"such-{time.time_ns()}@bench.example", "Bench",
                                        Role.authority_reviewer)
        _, auth_token = identity.create_token(session, reviewer, "bench search")
        session.commit()
    return op_token, auth_token, "BENCH-2026-"


def typo(rng: random.Random, s: str) -> str:
    letters = [i for i, c in enumerate(s) if c.isalpha()]
    if len(letters) < 5:
        return s
    i = rng.choice(letters[1:-1])
    return s[:i] + rng.choice("aeinrst") + s[i + 1:]


def queries(engine, rng: random.Random, runs: int, n_apps: int) -> dict[str, list[str]]:
    from geo.crs import transformer

    with engine.connect() as conn:
        gemeinden = [r[0] for r in conn.execute(text(
            "SELECT name FROM search_places WHERE tenant_key = :t AND kind = 'gemeinde'"), {"t": TENANT})]
        streets = [tuple(r) for r in conn.execute(text(
            "SELECT name, context FROM search_places WHERE tenant_key = :t AND kind = 'street' "
            "ORDER BY random() LIMIT 5000"), {"t": TENANT})]
        roads = [r[0] for r in conn.execute(text(
            "SELECT name FROM search_places WHERE tenant_key = :t AND kind = 'road'"), {"t": TENANT})]
        box = conn.execute(text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
                                "ST_Extent(ST_Transform(ST_SetSRID(geom, 25832), 4326)) e FROM admin_areas "
                                "WHERE tenant_key = :t AND level = 'land') x"), {"t": TENANT}).one()
    out: dict[str, list[str]] = {k: [] for k in ("gemeinde", "street", "road", "reference", "reference_authority",
                                                 "coordinates")}
    t = transformer(4326, 25832)
    for _ in range(runs):
        g = rng.choice(gemeinden)
        out["gemeinde"].append(rng.choice([g, g[:rng.randint(4, 8)], typo(rng, g)]))
        name, gem = rng.choice(streets)
        short = name.replace("straße", "str").replace("Straße", "Str")
        out["street"].append(rng.choice([f"{name} {gem}", f"{short} {gem}", short, name]))
        ref = rng.choice(roads)
        out["road"].append(rng.choice([ref, ref.replace(" ", ""), ref.lower()]))
        number = rng.randint(1, n_apps)
        reference = f"BENCH-2026-{number:06d}"
        out["reference"].append(rng.choice([reference, f"{number:06d}"]))
        out["reference_authority"].append(reference)
        lon, lat = rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])
        if rng.random() < 0.5:
            out["coordinates"].append(f"{lon:.5f}, {lat:.5f}")
        else:
            e, n = t.transform(lon, lat)
            out["coordinates"].append(f"{e:.0f} {n:.0f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--segments", type=int, default=1_000_000, help="at least this many road segments")
    ap.add_argument("--runs", type=int, default=200, help="measured requests per kind of query")
    ap.add_argument("--applications", type=int, default=20_000, help="synthetic applications for references")
    ap.add_argument("--seed", type=int, default=20261204)
    args = ap.parse_args()

    import httpx
    import psycopg

    from geo.search import _PLACES, _PREFIX, _prefix, normalise, ref_key

    print(f"database: {make_url(BENCH_URL).render_as_string(hide_password=True)}")
    n_segments = tiles.ensure_network(args.segments)
    engine = create_engine(BENCH_URL, connect_args={"options": "-c jit=off -c statement_timeout=0"})
    rebuild_s, counts = rebuild_index(engine)
    print(f"network: {n_segments:,} road segments (real OSM extract replicated across Hessen: synthetic placement "
          f"of real data)")
    print(f"search index rebuilt in {rebuild_s:.1f} s: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))
    op_token, auth_token, _ = ensure_applications(engine, args.applications)
    print(f"references: {args.applications:,} synthetic applications of one operator (BENCH-2026-…)")
    rng = random.Random(args.seed)
    qs = queries(engine, rng, args.runs + 20, args.applications)

    port = resolve.free_port()
    env = {**os.environ, "BREITBAND_DATABASE_URL": BENCH_URL, "BREITBAND_PORT": str(port)}
    server = subprocess.Popen([sys.executable, "-m", "breitband.cli", "serve", "--port", str(port)], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    raw = psycopg.connect(make_url(BENCH_URL).set(drivername="postgresql").render_as_string(hide_password=False),
                          options="-c jit=off")
    try:
        clients = {who: httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                     headers={"Authorization": f"Bearer {tok}"})
                   for who, tok in (("operator", op_token), ("authority", auth_token))}
        for _ in range(200):
            try:
                if clients["operator"].get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        def psycopg_sql(stmt) -> str:
            return (stmt.text.replace("%", "%%").replace(":t", "%(t)s").replace(":q", "%(q)s")
                    .replace(":ref", "%(ref)s").replace(":limit", "%(limit)s").replace(":prefix", "%(prefix)s"))

        prefix_sql, fuzzy_sql = psycopg_sql(_PREFIX), psycopg_sql(_PLACES)
        print(f"\n{'kind':<20} {'HTTP p50':>9} {'HTTP p95':>9} {'SQL p50':>8} {'SQL p95':>8} {'ratio':>6} "
              f"{'hits/q':>7}  example")
        worst = 0.0
        for kind, items in qs.items():
            client = clients["authority" if kind == "reference_authority" else "operator"]
            for q in items[:20]:                                   # warm-up: connections, prepared statements
                client.get("/api/v1/search", params={"q": q, "limit": 8})
            times, hits = [], []
            for q in items[20:]:
                started = time.perf_counter()
                r = client.get("/api/v1/search", params={"q": q, "limit": 8})
                times.append((time.perf_counter() - started) * 1000)
                if r.status_code != 200:
                    raise SystemExit(f"{kind} {q!r}: {r.status_code} {r.text[:300]}")
                hits.append(len(r.json()["results"]))
            sql_times = []
            if kind in ("gemeinde", "street", "road"):
                for q in items[20:]:
                    started = time.perf_counter()
                    p = {"t": TENANT, "q": normalise(q), "ref": ref_key(q) or "", "limit": 8,
                         "prefix": _prefix(normalise(q))}
                    if not raw.execute(prefix_sql, p).fetchall():
                        raw.execute(fuzzy_sql, p).fetchall()
                    sql_times.append((time.perf_counter() - started) * 1000)
            p95 = pct(times, 95)
            worst = max(worst, p95)
            sql_cols = (f"{pct(sql_times, 50):8.1f} {pct(sql_times, 95):8.1f} {p95 / pct(sql_times, 95):6.2f}"
                        if sql_times else f"{'–':>8} {'–':>8} {'–':>6}")
            print(f"{kind:<20} {pct(times, 50):9.1f} {p95:9.1f} {sql_cols} {sum(hits) / len(hits):7.1f}  "
                  f"{items[20]!r}")
        # the floor of any authenticated request on this machine now: GET /map/layers (the token, one small query)
        floor = []
        for i in range(args.runs + 20):
            started = time.perf_counter()
            clients["operator"].get("/api/v1/map/layers")
            if i >= 20:
                floor.append((time.perf_counter() - started) * 1000)
        print(f"{'floor: /map/layers':<20} {pct(floor, 50):9.1f} {pct(floor, 95):9.1f}  (an authenticated request "
              "with one small query: what every request costs here)")
        print(f"\nworst p95 {worst:.1f} ms (target ≤ {TARGET_MS:.0f} ms): "
              f"{'met' if worst <= TARGET_MS else '** NOT met **'}")
    finally:
        server.terminate()
        server.wait(10)
        raw.close()
        engine.dispose()


if __name__ == "__main__":
    main()
