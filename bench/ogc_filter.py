"""Benchmark of CQL2-filtered OGC API items at 200,000 applications: an authority's open cases, before and after the
indexes of migration 0012.

Data: the generator of bench/inbox.py (imported, not copied), with --applications 200000 by default, into a database
of its own (BREITBAND_OGC_BENCH_DATABASE_URL, default …/breitband_ogc_bench; dropped and rebuilt with `alembic upgrade
head` unless --reuse): tenant he with the real Hessen boundaries and the authority directory, routes made from real
roads (the OSM extract of the Frankfurter Kreuz copied onto tiles across Hessen) and resolved by the product, one
template application per route through the real service, all others written set-based with the same rows
(applications, versions, cases with their clocks and decisions, events, audit) and checked against the service's rows.

Measured, for the busiest authority (Hessen Mobil) and a small one (a Gemeinde), --runs requests each after 5
warm-up, p50 and p95:

- the filter ``case_status IN ('received','in_review') AND decision_due < DATE(<G + --due-days>)`` sorted by
  ``decision_due`` (and a second, narrower one), as SQL built by ``permits.gis.cql`` the way an items endpoint over
  the cases would: the caller's cases (``permits.repository.readable_cases``) with the WHERE clause from
  ``parse_filter`` (``case_status`` a queryable with the case statuses as its enum), joined to their applications,
  ORDER BY from ``parse_sortby`` + id, LIMIT 101, the route as GeoJSON; numberMatched as count(*) of the caller's cases
  under the filter (joined to the applications only when the filter reads their columns); two statements over one
  session, as the endpoint runs them;
- through HTTP (uvicorn, one worker, loopback; GET /api/v1/ogc/collections/<--collection>/items?filter=…&sortby=…)
  when the running code's items endpoint takes ``filter`` (it is probed first; without it only the SQL is measured,
  and the run says so);

first with the indexes of migration 0012 dropped (the state before it), then with them built again (build time
printed).

    .venv/bin/python bench/ogc_filter.py [--applications 200000] [--runs 60] [--reuse] [--collection case-parts]

Target (issue 14): p95 ≤ 100 ms for an authority's open cases filtered by CQL2 at 200,000 applications.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
MAIN_URL = os.environ.get("BREITBAND_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/breitband")
BENCH_URL = os.environ.get("BREITBAND_OGC_BENCH_DATABASE_URL") or make_url(MAIN_URL).set(
    database="breitband_ogc_bench").render_as_string(hide_password=False)
# bench/inbox.py reads its database from BREITBAND_BENCH_DATABASE_URL when imported: ours
os.environ["BREITBAND_BENCH_DATABASE_URL"] = BENCH_URL
os.environ["BREITBAND_DATABASE_URL"] = BENCH_URL
os.environ.setdefault("BREITBAND_LOG_LEVEL", "WARNING")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import inbox as gen  # noqa: E402  (bench/inbox.py: the generator of the 1,000,000-application inbox bench)
import numpy as np  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.sql.util import find_tables  # noqa: E402

# The indexes of migration 0012, as it creates them (dropped for the "before" figures, then built again).
INDEXES = {
    "ix_cases_open_due": "CREATE INDEX ix_cases_open_due ON cases (authority_org_id, decision_due, id) "
                         "INCLUDE (status, tenant_key, application_id, line_pieces, point_pieces, area_pieces) "
                         "WHERE status IN ('received', 'incomplete', 'in_review')",
}
PAGE = 100


def pct(values, q):
    return float(np.percentile(np.array(values), q))


def seed(args) -> None:
    import psycopg

    from breitband import dates
    from breitband.db import get_database

    timer = gen.Timer()
    g = datetime.now(timezone.utc).replace(microsecond=0)
    rng = np.random.default_rng(args.seed)
    gen.say(f"seeding {make_url(BENCH_URL).render_as_string(hide_password=True)} with {args.applications:,} "
            f"applications (bench/inbox.py's generator; G = {dates.iso(g)})")
    gen.setup_database()
    db = get_database()
    with db.sessionmaker() as session:
        world = gen.build_world(session, args, rng)
        templates = gen.resolve_templates(session, world)
        reviewers = gen.create_reviewers(session, templates)
    timer.lap("world and templates")
    url = make_url(BENCH_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(url, options="-c jit=off -c synchronous_commit=off -c work_mem=256MB "
                                        "-c max_parallel_workers_per_gather=0 -c maintenance_work_mem=512MB")
    gen.prepare_plans(conn, args, g, world, templates, reviewers)
    gen.replay_templates(db, conn, world, templates, reviewers)
    conn.execute("SET session_replication_role = replica")
    conn.commit()
    conn.execute(gen.BASES_SQL)
    conn.commit()
    n_twins, n_rows, problems = gen.twin_check(conn)
    if problems:
        raise SystemExit("the generator does not write what the service writes: " + "; ".join(problems[:5]))
    gen.generate(conn, timer)
    conn.execute("SET session_replication_role = origin")
    conn.execute("DROP SCHEMA gen CASCADE")
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM (ANALYZE) applications, application_versions, cases")
    timer.lap("generation")
    gen.say(f"check: {n_twins} template plans, {n_rows:,} rows compared with the service's, 0 differences; "
            + ", ".join(f"{k} {v:.0f} s" for k, v in timer.steps))
    conn.close()


def authorities(conn) -> list[tuple]:
    """(org id, name, cases, open cases) of the busiest authority and of a small one (a Gemeinde with ≥ 200 cases)."""
    rows = conn.execute(text("""
        SELECT c.authority_org_id, o.name, count(*), count(*) FILTER (WHERE c.status IN ('received', 'in_review'))
        FROM cases c JOIN organisations o ON o.id = c.authority_org_id GROUP BY 1, 2 ORDER BY 3 DESC""")).all()
    small = next(r for r in reversed(rows) if r[2] >= 200)
    return [tuple(rows[0]), tuple(small)]


def reviewer(session, org_id):
    from breitband import identity
    from breitband.models import Organisation, Role, User

    user = session.scalars(select(User).where(User.organisation_id == org_id)).first()
    if user is None:
        org = session.get(Organisation, org_id)
        user = identity.create_user(session, org, f"bench-{str(org_id)[:8]}@behoerde.bench.example", "Bench",
                                    Role.authority_reviewer)
    _, token = identity.create_token(session, user, "ogc-filter-bench")
    session.commit()
    return token, identity.authenticate(session, token)


def statements(principal, filter_text: str, sortby: str):
    """The page and the count of the items request, as SQL built by permits.gis.cql (see the docstring)."""
    from permits import repository
    from permits.gis import cql
    from permits.models import Application, Case, CaseStatus

    queryables = {q.name: q for q in (
        cql.Queryable("case_status", Case.status, "string", "case status", enum=tuple(s.value for s in CaseStatus)),
        cql.Queryable("decision_due", Case.decision_due, "date", "decision due"),
        cql.Queryable("received_at", Case.received_at, "datetime", "received"),
        cql.Queryable("reference", Application.reference, "string", "reference"),
        cql.Queryable("project_name", Application.project_name, "string", "project"))}
    where = cql.parse_filter(filter_text, None, queryables, geometry=Application.route_geom)
    cases = repository.readable_cases(principal).where(where)
    page = (cases.join(Application, Application.id == Case.application_id)
            .with_only_columns(Case.id, Case.status, Case.decision_due, Application.reference,
                               Application.project_name, func.ST_AsGeoJSON(Application.route_geom, 7))
            .order_by(*cql.parse_sortby(sortby, queryables), Case.id).limit(PAGE + 1))
    # numberMatched: every case has its application (foreign key, not null), so the join changes the count only when
    # the filter reads the application's columns; then it is joined
    if "applications" in {t.name for t in find_tables(where, check_columns=True)}:
        cases = cases.join(Application, Application.id == Case.application_id)
    count = select(func.count()).select_from(cases.with_only_columns(Case.id).subquery())
    return page, count


def measure_sql(session, principal, filter_text, sortby, runs) -> tuple[list[float], int, int]:
    page, count = statements(principal, filter_text, sortby)
    times, rows, matched = [], 0, 0
    for k in range(runs + 5):
        t0 = time.perf_counter()
        rows = len(session.execute(page).all())
        matched = session.scalar(count)
        if k >= 5:
            times.append((time.perf_counter() - t0) * 1000)
        session.rollback()
    return times, rows, matched


def measure_http(client, collection, filter_text, sortby, runs) -> tuple[list[float], dict]:
    params = {"filter": filter_text, "sortby": sortby, "limit": str(PAGE)}
    times, body = [], {}
    for k in range(runs + 5):
        t0 = time.perf_counter()
        r = client.get(f"/api/v1/ogc/collections/{collection}/items", params=params)
        if k >= 5:
            times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"HTTP {r.status_code}: {r.text[:300]}")
        body = r.json()
    return times, body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--applications", type=int, default=200_000)
    ap.add_argument("--tiles", type=int, default=40)
    ap.add_argument("--months", type=float, default=8)
    ap.add_argument("--seed", type=int, default=20261203)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--due-days", type=int, default=88, help="the filter's DATE: G + this many days")
    ap.add_argument("--reuse", action="store_true", help="keep the database of an earlier run")
    ap.add_argument("--collection", default="case-parts", help="the collection asked through HTTP")
    ap.add_argument("--port", type=int, default=8110)
    args = ap.parse_args()

    import httpx

    from breitband.db import get_database
    from permits import deadlines

    if not args.reuse:
        seed(args)
    db = get_database()
    with db.sessionmaker() as session:
        session.execute(text("SET jit = off"))
        g = session.scalar(text("SELECT max(created_at) FROM applications"))
        auths = authorities(session)
        session.rollback()
        total = session.execute(text("SELECT (SELECT count(*) FROM applications), (SELECT count(*) FROM cases)")).one()
    due = (deadlines.local_date(g) + timedelta(days=args.due_days)).isoformat()
    soon = (deadlines.local_date(g) + timedelta(days=14)).isoformat()
    filters = [(f"case_status IN ('received','in_review') AND decision_due < DATE('{due}')", "decision_due"),
               (f"case_status = 'in_review' AND decision_due <= DATE('{soon}') AND reference LIKE 'HE-%'",
                "-decision_due")]
    gen.say(f"{total[0]:,} applications, {total[1]:,} cases; authorities: "
            + "; ".join(f"{a[1]} ({a[2]:,} cases, {a[3]:,} received or in review)" for a in auths))

    port = args.port
    env = {**os.environ, "BREITBAND_DATABASE_URL": BENCH_URL, "BREITBAND_PORT": str(port)}
    server = subprocess.Popen([sys.executable, "-m", "breitband.cli", "serve", "--port", str(port)], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = []
    try:
        with db.sessionmaker() as session:
            who = [(a, *reviewer(session, a[0])) for a in auths]
        probe = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                             headers={"Authorization": f"Bearer {who[0][1]}"})
        for _ in range(300):
            try:
                if probe.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        r = probe.get(f"/api/v1/ogc/collections/{args.collection}/items",
                      params={"filter": filters[0][0], "sortby": "decision_due", "limit": "1"})
        http = r.status_code == 200
        gen.say("HTTP: " + (f"GET /api/v1/ogc/collections/{args.collection}/items takes filter and sortby: measured"
                            if http else f"the items endpoint of this code answers {r.status_code} to filter= "
                            f"({r.json().get('detail', '')[:100]}): SQL only"))
        for phase in ("before 0012", "after 0012"):
            with db.sessionmaker() as session:
                if phase == "before 0012":
                    for name in INDEXES:
                        session.execute(text(f"DROP INDEX IF EXISTS {name}"))
                    build = None
                else:
                    t0 = time.perf_counter()
                    for ddl in INDEXES.values():
                        session.execute(text(ddl.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS")))
                    build = time.perf_counter() - t0
                session.execute(text("ANALYZE cases"))
                session.commit()
            if build is not None:
                gen.say(f"indexes of 0012 built in {build:.1f} s")
            for (auth, token, principal) in who:
                client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                      headers={"Authorization": f"Bearer {token}"})
                for ftext, sortby in filters:
                    with db.sessionmaker() as session:
                        session.execute(text("SET jit = off"))
                        sql_t, rows, matched = measure_sql(session, principal, ftext, sortby, args.runs)
                    row = {"phase": phase, "auth": auth[1], "filter": ftext, "sortby": sortby, "rows": rows,
                           "matched": matched, "sql50": pct(sql_t, 50), "sql95": pct(sql_t, 95)}
                    if http:
                        http_t, body = measure_http(client, args.collection, ftext, sortby, args.runs)
                        row.update(http50=pct(http_t, 50), http95=pct(http_t, 95),
                                   http_matched=body.get("numberMatched"))
                    results.append(row)
    finally:
        server.terminate()
        server.wait(10)
    gen.say(f"\n{'phase':<12} {'authority':<28} {'filter / sortby':<50} {'matched':>8} {'SQL p50':>8} {'SQL p95':>8}"
            + (f" {'HTTP p50':>9} {'HTTP p95':>9}" if http else ""))
    for r in results:
        gen.say(f"{r['phase']:<12} {r['auth'][:28]:<28} {(r['filter'][:36] + '… / ' + r['sortby']):<50} "
                f"{r['matched']:>8,} {r['sql50']:>6.1f}ms {r['sql95']:>6.1f}ms"
                + (f" {r['http50']:>7.1f}ms {r['http95']:>7.1f}ms" if http else ""))
    gen.say("filters: " + " | ".join(f"{f} sortby={s}" for f, s in filters))
    worst = max(r["http95" if http else "sql95"] for r in results if r["phase"] == "after 0012")
    gen.say(f"target p95 ≤ 100 ms ({'HTTP' if http else 'SQL'}): worst after 0012 {worst:.1f} ms: "
            + ("met" if worst <= 100 else "NOT met"))


if __name__ == "__main__":
    main()
