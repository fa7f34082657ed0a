"""Benchmark of the authority inbox and the deadline sweep at 1,000,000 applications.

Builds its own database (BREITBAND_BENCH_DATABASE_URL, default …/breitband_inbox_bench; dropped and rebuilt with
`alembic upgrade head` every run): tenant "he" with the real Hessen boundaries (VG250 Gemeinden, Kreise, Land: the
authority directory of 446 road authorities) and a road network made, as bench/resolve.py does, of copies of the
real OSM extract of the Frankfurter Kreuz placed on tiles spread over Hessen, so that the same real roads lie in
many Gemeinden and Kreise.

How the applications are generated (printed again by the run):

1. Route templates: 7 real routes of the Frankfurter Kreuz extract (street only; two streets; Landesstraße +
   street; Kreisstraße + street; A 5 + L + K + street; one Kreisstraße; A 5 + K), copied into every tile and resolved
   by the product's resolution (geo.service.resolve): one template per tile and route, with the authorities the
   route touches THERE (the Gemeinde, Kreis, Hessen Mobil, Autobahn GmbH as the rules of data/tenants/he.toml say).
2. Plans: for every application a random plan (SQL random() with a fixed seed): template (weighted by route),
   applicant (24 operators), created and submitted on working days at working hours over the last --months months,
   2.5 % left as drafts; per application maybe one authority requesting information within the completeness month
   and a supplement after it, maybe a withdrawal; per case maybe a confirmation of completeness, a decision
   (granted 88 %, partially granted 7 %, refused 5 %, with catalogue conditions/reasons) after a delay, or none, so
   that the decision period lapses, maybe an extension. Commands after the generation instant G (= the start of the
   run) have not happened yet.
3. The first application of every template is carried through its plan by the REAL service functions
   (permits.applications.service / permits.cases.review, and permits.cases.deemed.sweep at the beat tick after each
   deadline).
4. All other applications are written set-based (INSERT … SELECT from the plans, in this database), with the rows
   the API would have written: applications, application_versions (submission, supplement), cases (parts, clocks,
   information requests, extensions, decisions), permit_events (outbox, published_at NULL) and permit_audit, a
   pending pipeline run with its steps per submitted version (what submit/supplement write; the relay and the
   pipeline workers, which would publish and run them, are not simulated), the reference counter; the deadlines with
   SQL equal to permits/deadlines.py (date + n months clamps like § 188 (3) BGB, 24:00 Europe/Berlin), deemed
   approvals as the 5-minute beat would have issued them.
5. Checks: the set-based SQL is run once more for the plans of step 3 (in a transaction that is rolled back) and
   every row is compared with the rows the real service wrote (ids, references and sequence numbers mapped); the
   deadline columns of a sample of generated cases are recomputed with permits/deadlines.py.

Then it measures:

(a) the authority inbox first page, GET /api/v1/cases through HTTP (uvicorn subprocess, one worker, loopback) as
    a reviewer of the busiest authority, default order (open cases FIFO by complete receipt), and a filtered
    variant; p50/p95 over --runs requests each, beside the bare SQL of the same queries (same statements and
    parameters over psycopg) measured in the same run, and their ratio; also a deep page by cursor and by offset;
(b) the deadline sweep over all of them: `breitband deadlines run --now G+--sweep-days` as a subprocess (wall time
    including the process start), the number of deemed approvals issued; then the same command again.

    .venv/bin/python bench/inbox.py [--applications 1000000] [--tiles 40] [--months 8] [--runs 60]

Targets: inbox first page p95 ≤ 100 ms through HTTP; sweep over 1,000,000 applications ≤ 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
MAIN_URL = os.environ.get("BREITBAND_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/breitband")
BENCH_URL = os.environ.get("BREITBAND_BENCH_DATABASE_URL") or make_url(MAIN_URL).set(
    database="breitband_inbox_bench").render_as_string(hide_password=False)
os.environ["BREITBAND_DATABASE_URL"] = BENCH_URL
os.environ.pop("BREITBAND_DATABASE_READONLY_URL", None)
os.environ.setdefault("BREITBAND_LOG_LEVEL", "WARNING")
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import shapely  # noqa: E402
import shapely.affinity  # noqa: E402
import shapely.ops  # noqa: E402
from sqlalchemy import text  # noqa: E402

TENANT = "he"
DATA = ROOT / "data"
BOUNDARIES = [DATA / "boundaries" / name for name in (
    "hessen_gemeinden_vg250_2018_sim200.geojson", "hessen_kreise_vg250_2018_sim200.geojson",
    "hessen_land_vg250_2018_sim20.geojson")]
EXTRACT = DATA / "roads" / "hessen" / "frankfurter-kreuz.osm.pbf"

# Real roads of the extract: (SQL condition on road_segments, offset m beside the centre line, start m, length m).
STRETCHES = {
    "a5": ("ref = 'A 5' AND highway = 'motorway'", 12, 100, 300),
    "l3262": ("ref = 'L 3262' AND ST_Within(geom, (SELECT geom FROM admin_areas WHERE tenant_key = 'he' "
              "AND ags = '06438009'))", 8, 50, 300),
    "k163": ("ref = 'K 163'", 8, 20, 300),
    "k823": ("ref = 'K 823'", 8, 0, 250),
    "street": ("name = 'Admiral-Rosendahl-Straße'", 6, 0, 200),
    "street_2": ("name = 'Buchenring'", 6, 0, 150),
}
# Routes (sections along the stretches, laying method per section) and their share of the applications.
ROUTES = {
    "street": ([("street", "micro_trenching")], 0.10),
    "two_streets": ([("street", "open_trench"), ("street_2", "mini_trenching")], 0.10),
    "landesstrasse": ([("l3262", "directional_drilling"), ("street", "open_trench")], 0.20),
    "kreisstrasse": ([("k163", "open_trench"), ("street_2", "micro_trenching")], 0.20),
    "kreuz": ([("a5", "press_drilling"), ("l3262", "open_trench"), ("k163", "ploughing"),
               ("street", "open_trench")], 0.25),
    "k823": ([("k823", "open_trench")], 0.05),
    "a5_k823": ([("a5", "directional_drilling"), ("k823", "milling")], 0.10),
}
OPERATORS = ["Glasfaser Rhein-Main", "Fibernet Hessen", "Breitband Nordhessen", "Lichtweg Netze", "Odenwald-Faser",
             "Vogelsberg Digital", "Wetterau Glasfaser", "Taunus Netzbau", "Main-Kinzig Fiber", "Lahn-Dill Breitband",
             "Bergstraße Glas", "Rheingau Fiber", "Fulda Netz", "Schwalm-Eder Digital", "Werra-Meißner Faser",
             "Waldeck Glasfaser", "Limburg Netze", "Giessen Fiber", "Marburg Glas", "Darmstadt Faser",
             "Offenbach Netz", "Hanau Glasfaser", "Wiesbaden Fiber", "Kassel Breitband"]
CONDITION_SETS = [["HE-N01", "HE-N02"], ["HE-N01", "HE-N02", "HE-N05"], ["HE-N01", "HE-N03", "HE-N06"],
                  ["HE-N02", "HE-N04", "HE-N06", "HE-N07"], ["HE-N01", "HE-N02", "HE-N09"],
                  ["HE-N01", "HE-N08", "HE-N11"]]
REASON_SETS = [["HE-V02"], ["HE-V03"], ["HE-V04"], ["HE-V06", "HE-V07"], ["HE-V05"]]
TRAFFIC = [{"kind": "sidewalk_closure", "description": "Gehweg halbseitig gesperrt"},
           {"kind": "lane_narrowing", "description": "Fahrbahnverengung mit Baustellenampel"}]
ASK_MESSAGE = "Bitte reichen Sie einen Regelquerschnitt und den Verkehrszeichenplan nach."
ASK_ITEMS = ["Regelquerschnitt", "Verkehrszeichenplan"]
SUPPLEMENT_MESSAGE = "Anbei der Regelquerschnitt und der Verkehrszeichenplan wie angefordert."
EXTENSION_REASON = "Abstimmung mit der Straßenverkehrsbehörde wegen der Vollsperrung dauert an (§ 150 TKG)."
EXTRA_CONDITION = "Arbeiten nur außerhalb der Hauptverkehrszeiten (6–9 Uhr und 15–19 Uhr)."
EXPLANATION = "Die beantragte Trasse kann in diesem Abschnitt so nicht zugelassen werden; siehe die Gründe."
WITHDRAW_REASON = "Projekt zurückgestellt"
BEAT_S = 300                     # permits.sweep_deadlines runs every 5 minutes (breitband.celery.BEAT_SCHEDULE)
SEED = 0.20261122


def pct(values, q):
    return float(np.percentile(np.array(values), q))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def say(msg: str = "") -> None:
    print(msg, flush=True)


class Timer:
    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []
        self.t = time.perf_counter()

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.steps.append((name, now - self.t))
        self.t = now
        return self.steps[-1][1]


# --- the world: tenant, boundaries, roads on tiles, people -----------------------------------------------------

def setup_database() -> None:
    from breitband.migrate import create_database, drop_database, upgrade

    drop_database(BENCH_URL)
    create_database(BENCH_URL)
    upgrade(BENCH_URL)


def shifted(ways, dx: float, dy: float):
    from geo.importers import WayArrays

    return WayArrays(osm_id=ways.osm_id, highway=ways.highway, ref=ways.ref, name=ways.name, access=ways.access,
                     coords=ways.coords + np.array([dx, dy]), offsets=ways.offsets, crs=ways.crs)


def tile_offsets(session, ways, count: int, rng) -> list[tuple[float, float]]:
    """(0, 0) (the real place) and count-1 other tiles whose centre lies in Hessen, drawn at random."""
    land = shapely.from_wkb(bytes(session.execute(text(
        "SELECT ST_AsBinary(geom) FROM admin_areas WHERE tenant_key = :t AND level = 'land'"),
        {"t": TENANT}).scalar()))
    minx, miny = ways.coords.min(axis=0)
    maxx, maxy = ways.coords.max(axis=0)
    w, h = maxx - minx + 50, maxy - miny + 50
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    lminx, lminy, lmaxx, lmaxy = land.bounds
    cands = [(i, j) for i in range(int((lminx - cx) // w) - 1, int((lmaxx - cx) // w) + 2)
             for j in range(int((lminy - cy) // h) - 1, int((lmaxy - cy) // h) + 2)
             if (i, j) != (0, 0) and land.contains(shapely.Point(cx + i * w, cy + j * h))]
    picked = [cands[k] for k in rng.choice(len(cands), min(count - 1, len(cands)), replace=False)]
    return [(0.0, 0.0)] + [(i * w, j * h) for i, j in picked]


def base_stretches(session) -> dict[str, shapely.LineString]:
    """The stretches in the tenant's metric CRS (EPSG:25832), from the base copy (the only one loaded yet)."""
    out = {}
    for name, (where, offset, start, length) in STRETCHES.items():
        wkb = session.execute(text("SELECT ST_AsBinary(ST_LineMerge(ST_Union(geom))) FROM road_segments "
                                   f"WHERE tenant_key = 'he' AND {where}")).scalar()
        line = shapely.from_wkb(bytes(wkb))
        if line.geom_type == "MultiLineString":
            line = max(line.geoms, key=lambda g: g.length)
        piece = shapely.ops.substring(line, start, min(start + length, line.length))
        out[name] = piece.offset_curve(offset)
    return out


def to_4326(geom) -> dict:
    from geo.crs import transformer

    t = transformer(25832, 4326)
    g = shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    return json.loads(shapely.to_geojson(shapely.set_precision(g, 1e-7)))


def trench(geometry: dict, method: str) -> dict:
    props = {"laying_method": method}
    if method in ("micro_trenching", "mini_trenching", "milling"):
        props.update(depth_cm=30, width_cm=12, reduced_depth=True)
    elif method not in ("aerial", "existing_duct"):
        props.update(depth_cm=60 if method == "open_trench" else 120, width_cm=40 if method == "open_trench" else 20)
    return {"type": "Feature", "geometry": geometry, "properties": props}


def build_world(session, args, rng) -> dict:
    from breitband import identity
    from breitband.demo import ensure_tenant
    from breitband.models import OrgKind, Role
    from geo import importers
    from geo.importers.common import Summary
    from geo.importers.roads import read_road_files
    from permits.cases.catalogue import load_catalogue_file

    tenant = ensure_tenant(session)
    importers.import_boundaries(session, TENANT, BOUNDARIES)
    load_catalogue_file(session, TENANT, DATA / "tenants" / "he_conditions.toml")
    session.commit()
    ways = read_road_files([EXTRACT], tenant.srid, Summary(layer="roads", tenant=TENANT))
    importers.load_road_segments(session, TENANT, ways, propagate_links=False, analyze=False)
    stretches = base_stretches(session)
    offsets = tile_offsets(session, ways, args.tiles, rng)
    for dx, dy in offsets[1:]:
        importers.load_road_segments(session, TENANT, shifted(ways, dx, dy), propagate_links=False, analyze=False)
    importers.finish_road_segments(session, TENANT)
    session.commit()
    segments = session.execute(text("SELECT count(*) FROM road_segments")).scalar()

    ops = []
    for k, name in enumerate(OPERATORS, 1):
        slug = name.lower().replace(" ", "-").replace("ß", "ss").replace("ö", "oe").replace("ä", "ae")
        org = identity.create_organisation(session, TENANT, OrgKind.operator, f"{name} GmbH",
                                           email=f"planung@{slug}.example")
        user = identity.create_user(session, org, f"planer@{slug}.example", f"Planer {k:02d} ({name})",
                                    Role.operator_member)
        ops.append({"k": k, "org_id": org.id, "user_id": user.id, "user_name": user.name, "org_name": org.name,
                    "email": user.email, "prefix": "".join(w[0] for w in name.replace("-", " ").split()).upper(),
                    "contact": {"name": f"Projektleitung {name}", "email": f"projekte@{slug}.example",
                                "phone": f"+49 69 {100000 + k * 37:06d}"}})
    session.commit()
    return {"tenant": tenant, "stretches": stretches, "offsets": offsets, "segments": segments, "ops": ops}


def resolve_templates(session, world) -> list[dict]:
    """Every route in every tile, resolved by the product; routes the resolution refuses there are left out."""
    from breitband.errors import ProblemError
    from geo.service import resolve

    templates: list[dict] = []
    missing: set = set()
    for tile, (dx, dy) in enumerate(world["offsets"]):
        for route, (sections, weight) in ROUTES.items():
            features = [trench(to_4326(shapely.affinity.translate(world["stretches"][s], dx, dy)), method)
                        for s, method in sections]
            body = {"type": "FeatureCollection", "features": features}
            try:
                result = resolve(session, TENANT, body, "EPSG:4326")
            except ProblemError:
                continue
            if not result.get("authorities"):
                continue
            if any(a["id"] is None for a in result["authorities"]):
                # an area without an authority in the directory (gemeindefreies Gebiet): submit cannot create a
                # case for it (it would fail on the missing id), so such a route is no template
                missing.add(tuple(a["name"] for a in result["authorities"] if a["id"] is None))
                continue
            gemeinden = [p["gemeinde"]["name"] for a in result["authorities"] for p in a["pieces"]
                         if p.get("gemeinde")]
            templates.append({"t": len(templates) + 1, "tile": tile, "route": route, "weight": weight,
                              "sections": body, "label": gemeinden[0] if gemeinden else "Hessen",
                              "authorities": [(uuid.UUID(a["id"]), a["name"]) for a in result["authorities"]]})
    session.rollback()
    world["missing_authorities"] = sorted(missing)
    return templates


def create_reviewers(session, templates) -> dict[uuid.UUID, dict]:
    from breitband import identity
    from breitband.models import Organisation, Role

    reviewers = {}
    for t in templates:
        for org_id, _ in t["authorities"]:
            if org_id in reviewers:
                continue
            org = session.get(Organisation, org_id)
            user = identity.create_user(session, org, f"pruefer-{len(reviewers) + 1:03d}@behoerde.bench.example",
                                        f"Prüfer {len(reviewers) + 1:03d} ({org.name})", Role.authority_reviewer)
            reviewers[org_id] = {"user_id": user.id, "name": user.name, "org_name": org.name, "email": user.email}
    session.commit()
    return reviewers


# --- the plans (SQL) ---------------------------------------------------------------------------------------------

def gen_functions(monday: date) -> str:
    """Helpers in schema gen. Working day i is the i-th weekday after `monday`; inst(i, f) an instant on it at
    working hours (07:00 + f * 11 h, Europe/Berlin). The deadline arithmetic is that of permits/deadlines.py."""
    m = monday.isoformat()
    return f"""
CREATE FUNCTION gen.wdate(i int) RETURNS date IMMUTABLE LANGUAGE sql AS
  $$ SELECT DATE '{m}' + 7 * (i / 5) + i % 5 $$;
CREATE FUNCTION gen.widx(d date) RETURNS int IMMUTABLE LANGUAGE sql AS
  $$ SELECT 5 * ((d - DATE '{m}') / 7) + least((d - DATE '{m}') % 7, 4) $$;
CREATE FUNCTION gen.inst(i int, f float8) RETURNS timestamptz IMMUTABLE LANGUAGE sql AS
  $$ SELECT (gen.wdate(i) + interval '7 hours' + f * interval '11 hours') AT TIME ZONE 'Europe/Berlin' $$;
-- deadlines.local_date, add_months (§ 188 (2), (3) BGB: PostgreSQL clamps to the month's last day alike),
-- period_end (24:00 Europe/Berlin on the last day)
CREATE FUNCTION gen.ld(t timestamptz) RETURNS date IMMUTABLE LANGUAGE sql AS
  $$ SELECT (t AT TIME ZONE 'Europe/Berlin')::date $$;
CREATE FUNCTION gen.addm(d date, m int) RETURNS date IMMUTABLE LANGUAGE sql AS
  $$ SELECT (d + make_interval(months => m))::date $$;
CREATE FUNCTION gen.pe(d date) RETURNS timestamptz IMMUTABLE LANGUAGE sql AS
  $$ SELECT (d + 1)::timestamp AT TIME ZONE 'Europe/Berlin' $$;
-- dates.iso for instants (UTC, microseconds only when not zero, Z) and dates; str() of an aware datetime
-- (what json.dumps(default=str) writes into audit details and event payloads)
CREATE FUNCTION gen.iso(t timestamptz) RETURNS text IMMUTABLE LANGUAGE sql AS
  $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
            || CASE WHEN extract(microseconds FROM t)::bigint % 1000000 <> 0
                    THEN '.' || to_char(t AT TIME ZONE 'UTC', 'US') ELSE '' END || 'Z' $$;
CREATE FUNCTION gen.isod(d date) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT to_char(d, 'YYYY-MM-DD') $$;
CREATE FUNCTION gen.strt(t timestamptz) RETURNS text IMMUTABLE LANGUAGE sql AS
  $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
            || CASE WHEN extract(microseconds FROM t)::bigint % 1000000 <> 0
                    THEN '.' || to_char(t AT TIME ZONE 'UTC', 'US') ELSE '' END || '+00:00' $$;
-- the first beat tick at or after an instant (ticks every {BEAT_S} s at a fixed phase) plus the task's start delay
CREATE FUNCTION gen.tick(t timestamptz, phase int, delay interval) RETURNS timestamptz IMMUTABLE LANGUAGE sql AS
  $$ SELECT 'epoch'::timestamptz + (phase + ceil((extract(epoch FROM t) - phase) / {BEAT_S}.0)::bigint * {BEAT_S})
            * interval '1 second' + delay $$;
-- a case's row_version after its commands up to tx (every command that changes a case bumps it once)
CREATE FUNCTION gen.crv(ta timestamptz, ts timestamptz, tc timestamptz, te timestamptz, tend timestamptz,
                        tx timestamptz) RETURNS int IMMUTABLE LANGUAGE sql AS
  $$ SELECT 1 + coalesce((ta <= tx)::int, 0) + coalesce((ts <= tx)::int, 0) + coalesce((tc <= tx)::int, 0)
              + coalesce((te <= tx)::int, 0) + coalesce((tend <= tx)::int, 0) $$;
-- the derived application status (permits.core.derive_status) from counts of the cases' states
CREATE FUNCTION gen.derive(open int, incomplete int, decided int, granted int, refused int) RETURNS text
  IMMUTABLE LANGUAGE sql AS
  $$ SELECT CASE WHEN incomplete > 0 THEN 'information_requested' WHEN open > 0 THEN 'submitted'
                 WHEN decided = 0 THEN 'withdrawn' WHEN granted = decided THEN 'granted'
                 WHEN refused = decided THEN 'refused' ELSE 'partially_granted' END $$;
"""


PLAN_SQL = """
CREATE TABLE gen.apps AS
WITH r AS (
    SELECT n, random() AS u_draft, random() AS u_tmpl, random() AS u_op, random() AS u_sub, random() AS f_sub,
           random() AS u_ck, random() AS f_ck, random() AS u_ask, random() AS u_askidx, random() AS u_askk,
           random() AS f_ask, random() AS u_supk, random() AS f_sup, random() AS u_wd, random() AS u_wdk,
           random() AS f_wd, random() AS u_ps, random() AS u_pe, random() AS u_ba, random() AS u_wdr
    FROM generate_series(1, (SELECT n_apps FROM gen.p)) AS n
), b AS (
    SELECT r.*, p.*, r.n <= p.n_tmpl AS is_tmpl,
           CASE WHEN r.n <= p.n_tmpl THEN r.n
                ELSE (SELECT t FROM gen.pool WHERE slot = floor(r.u_tmpl * p.pool_size)::int) END AS tmpl,
           r.n > p.n_tmpl AND r.u_draft < p.p_draft AS draft,
           1 + floor(p.n_ops * r.u_op * r.u_op)::int AS op
    FROM r CROSS JOIN gen.p p
), c AS (
    SELECT b.*, t.ncases, t.label,
           CASE WHEN draft THEN NULL ELSE i_lo + floor(u_sub * (i_g - i_lo))::int END AS i_sub,
           floor(u_ck * 8)::int AS k_create
    FROM b JOIN gen.tmpl t ON t.t = b.tmpl
), d AS (
    SELECT c.*,
           CASE WHEN draft THEN i_g - 1 - floor(u_sub * 40)::int ELSE i_sub - k_create END AS i_create,
           CASE WHEN NOT draft AND k_create = 0 THEN f_sub * f_ck ELSE f_ck END AS f_create,
           NOT draft AND CASE WHEN is_tmpl THEN n % 3 = 0 ELSE u_ask < p_ask END AS ask,
           NOT draft AND CASE WHEN is_tmpl THEN n % 13 = 6 ELSE u_wd < p_wd END AS wd,
           i_sub + 1 + floor(u_askk * 17)::int AS i_ask
    FROM c
), e AS (
SELECT n, gen_random_uuid() AS app_id, NULL::uuid AS real_app_id, is_tmpl, tmpl, op, draft, ncases,
       gen.inst(i_create, f_create) AS t_create,
       i_sub, CASE WHEN NOT draft THEN gen.inst(i_sub, f_sub) END AS t_sub,
       ask, CASE WHEN ask THEN floor(u_askidx * ncases)::int END AS ask_idx,
       CASE WHEN ask THEN gen.inst(i_ask, f_ask) END AS t_ask,
       CASE WHEN ask THEN i_ask + 2 + floor(u_supk * 24)::int END AS i_sup,
       CASE WHEN ask THEN gen.inst(i_ask + 2 + floor(u_supk * 24)::int, f_sup) END AS t_sup,
       wd, CASE WHEN wd THEN gen.inst(i_sub + 5 + floor(u_wdk * 55)::int, f_wd) END AS t_wd,
       CASE WHEN u_wdr < 0.5 THEN NULL ELSE @withdraw_reason@ END AS wd_reason,
       'FTTH ' || label || ', Bauabschnitt ' || (1 + floor(u_ba * 12)::int) AS project_name,
       gen.wdate(coalesce(i_sub, i_create)) + 30 + floor(u_ps * 90)::int AS planned_start,
       floor(u_pe * 76)::int + 14 AS planned_days
FROM d
), f AS (
    SELECT e.*, extract(year FROM gen.ld(t_create))::int AS year,
           row_number() OVER (PARTITION BY extract(year FROM gen.ld(t_create)) ORDER BY t_create, n) AS ref_no
    FROM e
)
SELECT f.*, 'HE-' || year || '-' || CASE WHEN ref_no < 1000000 THEN lpad(ref_no::text, 6, '0') ELSE ref_no::text END
         AS reference,
       o.prefix || '-' || right(year::text, 2) || '-' || lpad(n::text, 7, '0') AS operator_reference
FROM f JOIN gen.ops o ON o.k = f.op;
ALTER TABLE gen.apps ADD PRIMARY KEY (n);

CREATE TABLE gen.cases AS
SELECT n, idx, case_id, request_id, authority_org_id, conf, k_conf, f_conf, never, k_dec, f_dec, ext, k_ext, f_ext,
       CASE WHEN is_tmpl THEN ('{granted,granted,granted,granted,granted,granted,partially_granted,'
                               'partially_granted,refused}'::text[])[1 + (n + idx) % 9]
            WHEN u_out < 0.88 THEN 'granted' WHEN u_out < 0.95 THEN 'partially_granted' ELSE 'refused' END AS outcome,
       cond_set, reason_set, extra_condition
FROM (
    SELECT a.n, a.is_tmpl, tc.idx, gen_random_uuid() AS case_id, gen_random_uuid() AS request_id,
           tc.authority_org_id, random() < p.p_conf AS conf, 1 + floor(random() * 12)::int AS k_conf,
           random() AS f_conf,
           CASE WHEN a.is_tmpl THEN (a.n + tc.idx) % 6 = 2 ELSE random() < p.p_never END AS never,
           CASE WHEN random() < 0.75 THEN 3 + floor(random() * 27)::int ELSE 30 + floor(random() * 40)::int END
             AS k_dec,
           random() AS f_dec,
           CASE WHEN a.is_tmpl THEN (a.n + tc.idx) % 5 = 1 ELSE random() < p.p_ext END AS ext,
           2 + floor(random() * 12)::int AS k_ext, random() AS f_ext, random() AS u_out,
           1 + floor(random() * p.n_cond_sets)::int AS cond_set,
           1 + floor(random() * p.n_reason_sets)::int AS reason_set,
           random() < 0.3 AS extra_condition
    FROM gen.apps a JOIN gen.tmpl_case tc ON tc.t = a.tmpl CROSS JOIN gen.p p
    WHERE NOT a.draft
) z;
CREATE INDEX ON gen.cases (n);
"""

# The timeline of every case as it would run if nothing were withdrawn ("natural"), then the withdrawals, then
# the final state of every case at G (gen.cf) and every command that happened (gen.cmds).
STATE_SQL = """
CREATE TABLE gen.cs AS
WITH b AS (
    SELECT c.*, a.app_id, a.t_sub, a.t_ask, a.t_sup, p.g, p.phase, p.tick_delay,
           (a.ask AND a.ask_idx = c.idx) AS asked,
           CASE WHEN a.ask AND a.ask_idx = c.idx THEN a.i_sup ELSE a.i_sub END AS i_r
    FROM gen.cases c JOIN gen.apps a USING (n) CROSS JOIN gen.p p
), s1 AS (
    SELECT b.*, asked AND t_ask <= g AS ask_nat, asked AND t_sup <= g AS sup_nat,
           CASE WHEN conf THEN gen.inst(i_r + k_conf, f_conf) END AS tc_plan,
           CASE WHEN NOT never THEN gen.inst(i_r + k_dec, f_dec) END AS td_plan
    FROM b
), s2 AS (
    SELECT s1.*, CASE WHEN sup_nat THEN t_sup ELSE t_sub END AS r_nat, ask_nat AND NOT sup_nat AS stopped_nat
    FROM s1
), s3 AS (
    SELECT s2.*, gen.addm(gen.ld(r_nat), 3) AS dd0_nat FROM s2
), s4 AS (
    SELECT s3.*, CASE WHEN ext THEN gen.inst(gen.widx(dd0_nat) - k_ext, f_ext) END AS te_plan FROM s3
), s5 AS (
    SELECT s4.*, (te_plan IS NOT NULL AND NOT stopped_nat AND te_plan <= g AND te_plan > r_nat
                  AND te_plan < gen.pe(dd0_nat) AND (td_plan IS NULL OR te_plan < td_plan)) AS ext_nat
    FROM s4
), s6 AS (
    SELECT s5.*, gen.pe(CASE WHEN ext_nat THEN gen.addm(dd0_nat, 1) ELSE dd0_nat END) AS dl_nat FROM s5
), s7 AS (
    SELECT s6.*, (td_plan IS NOT NULL AND NOT stopped_nat AND td_plan < dl_nat AND td_plan <= g) AS dec_nat,
           gen.tick(dl_nat, phase, tick_delay) AS ti_nat
    FROM s6
), s8 AS (
    SELECT s7.*, (NOT stopped_nat AND NOT dec_nat AND ti_nat <= g) AS deemed_nat FROM s7
)
SELECT s8.*, CASE WHEN dec_nat THEN td_plan WHEN deemed_nat THEN ti_nat END AS end_nat FROM s8;
CREATE INDEX ON gen.cs (n);

-- withdrawal happens when it is due by G and some case is still open then
CREATE TABLE gen.aw AS
SELECT a.n, a.t_wd, a.wd_reason,
       a.wd AND a.t_wd <= p.g AND bool_or(c.end_nat IS NULL OR c.end_nat > a.t_wd) AS wd_f
FROM gen.apps a JOIN gen.cs c USING (n) CROSS JOIN gen.p p
WHERE a.wd
GROUP BY a.n, a.t_wd, a.wd_reason, a.wd, p.g;
ALTER TABLE gen.aw ADD PRIMARY KEY (n);

CREATE TABLE gen.cf AS
WITH w AS (
    SELECT cs.*, coalesce(aw.wd_f, false) AS wd_f, aw.t_wd, aw.wd_reason,
           coalesce(aw.wd_f, false) AND (cs.end_nat IS NULL OR cs.end_nat > aw.t_wd) AS closed_by_wd
    FROM gen.cs cs LEFT JOIN gen.aw aw USING (n)
), f1 AS (
    SELECT w.*,
           ask_nat AND NOT (wd_f AND t_ask > t_wd) AS ask_f,
           sup_nat AND NOT (wd_f AND t_sup > t_wd) AS sup_f,
           tc_plan IS NOT NULL AND tc_plan <= g AND NOT stopped_nat AND tc_plan > r_nat
             AND (end_nat IS NULL OR tc_plan < end_nat) AND NOT (closed_by_wd AND tc_plan > t_wd) AS conf_f,
           ext_nat AND NOT (closed_by_wd AND te_plan > t_wd) AS ext_f
    FROM w
), f2 AS (
    SELECT f1.*, CASE WHEN sup_f THEN t_sup ELSE t_sub END AS r_f, ask_f AND NOT sup_f AS stopped_f FROM f1
), f3 AS (
    SELECT f2.*, gen.addm(gen.ld(r_f), 1) AS cd_f, gen.addm(gen.ld(r_f), 3) AS dd0_f FROM f2
), f4 AS (
    SELECT f3.*, CASE WHEN ext_f THEN gen.addm(dd0_f, 1) ELSE dd0_f END AS dd_f,
           CASE WHEN closed_by_wd THEN 'withdrawn' WHEN dec_nat THEN 'decision' WHEN deemed_nat THEN 'deemed' END
             AS end_kind
    FROM f3
)
SELECT n, idx, case_id, request_id, authority_org_id, app_id, t_sub, asked, stopped_f, sup_f, r_f, cd_f, dd0_f,
       dd_f, gen.pe(dd_f) AS dl_f, ext_f, cond_set, reason_set, extra_condition,
       CASE WHEN ask_f THEN t_ask END AS t_ask, CASE WHEN sup_f THEN t_sup END AS t_sup,
       CASE WHEN conf_f THEN tc_plan END AS t_conf, CASE WHEN ext_f THEN te_plan END AS t_ext,
       end_kind,
       CASE end_kind WHEN 'withdrawn' THEN t_wd WHEN 'decision' THEN td_plan WHEN 'deemed' THEN ti_nat END AS t_end,
       CASE end_kind WHEN 'withdrawn' THEN 'withdrawn' WHEN 'decision' THEN outcome WHEN 'deemed' THEN 'deemed_granted'
            ELSE CASE WHEN ask_f AND NOT sup_f THEN 'incomplete' WHEN conf_f THEN 'in_review' ELSE 'received' END
       END AS status,
       CASE WHEN end_kind = 'withdrawn' THEN coalesce(wd_reason, 'Withdrawn by the applicant') END AS closed_reason
FROM f4
ORDER BY t_sub, n, idx;
CREATE INDEX ON gen.cf (n);

-- every command that happened, with the changes of the case counts behind the derived application status
CREATE TABLE gen.cmds0 AS
SELECT n, kind, t, idx, cnt, d_open, d_inc, d_dec, d_gr, d_ref FROM (
    SELECT n, 'create' AS kind, t_create AS t, NULL::int AS idx, 0 AS cnt, 0 AS d_open, 0 AS d_inc, 0 AS d_dec,
           0 AS d_gr, 0 AS d_ref FROM gen.apps
    UNION ALL
    SELECT n, 'submit', t_sub, NULL, ncases, ncases, 0, 0, 0, 0 FROM gen.apps WHERE NOT draft
    UNION ALL
    SELECT n, 'ask', t_ask, idx, 1, 0, 1, 0, 0, 0 FROM gen.cf WHERE t_ask IS NOT NULL
    UNION ALL
    SELECT n, 'supplement', t_sup, NULL, 1, 0, -1, 0, 0, 0 FROM gen.cf WHERE t_sup IS NOT NULL
    UNION ALL
    SELECT n, 'confirm', t_conf, idx, 1, 0, 0, 0, 0, 0 FROM gen.cf WHERE t_conf IS NOT NULL
    UNION ALL
    SELECT n, 'extend', t_ext, idx, 1, 0, 0, 0, 0, 0 FROM gen.cf WHERE t_ext IS NOT NULL
    UNION ALL
    SELECT n, 'decision', t_end, idx, 1, -1, 0, 1, (status = 'granted')::int, (status = 'refused')::int
    FROM gen.cf WHERE end_kind = 'decision'
    UNION ALL
    SELECT n, 'deemed', t_end, NULL, count(*), -count(*), 0, count(*), count(*), 0
    FROM gen.cf WHERE end_kind = 'deemed' GROUP BY n, t_end
    UNION ALL
    SELECT n, 'withdraw', t_end, NULL, count(*), -count(*), -count(*) FILTER (WHERE stopped_f), 0, 0, 0
    FROM gen.cf WHERE end_kind = 'withdrawn' GROUP BY n, t_end
) x;

CREATE TABLE gen.cmds AS
WITH s AS (
    SELECT c.*,
           sum(d_open) OVER w AS c_open, sum(d_inc) OVER w AS c_inc, sum(d_dec) OVER w AS c_dec,
           sum(d_gr) OVER w AS c_gr, sum(d_ref) OVER w AS c_ref,
           row_number() OVER w + sum((kind IN ('submit', 'supplement'))::int) OVER w AS app_rv
    FROM gen.cmds0 c
    WINDOW w AS (PARTITION BY n ORDER BY t ROWS UNBOUNDED PRECEDING)
), st AS (
    SELECT s.*, CASE WHEN kind = 'create' THEN 'draft'
                     ELSE gen.derive(c_open::int, c_inc::int, c_dec::int, c_gr::int, c_ref::int) END AS status_after
    FROM s
), st2 AS (
    SELECT st.*, lag(status_after) OVER (PARTITION BY n ORDER BY t) AS status_before,
           lag(app_rv) OVER (PARTITION BY n ORDER BY t) AS app_rv_before FROM st
), ev AS (
    SELECT st2.*, kind <> 'create' AND status_before IS DISTINCT FROM status_after AS changed,
           CASE kind WHEN 'create' THEN 1 WHEN 'submit' THEN 1 + cnt WHEN 'supplement' THEN 2
                     WHEN 'deemed' THEN cnt WHEN 'withdraw' THEN cnt + 1 ELSE 1 END
             + (kind <> 'create' AND status_before IS DISTINCT FROM status_after)::int AS n_ev,
           CASE WHEN kind = 'deemed' THEN cnt ELSE 1 END AS n_aud
    FROM st2
)
SELECT * FROM ev;
CREATE INDEX ON gen.cmds (n);
"""

# Per-command bases of the event sequence numbers and audit ids, chronological, after what the service wrote.
BASES_SQL = """
CREATE TABLE gen.cmdx AS
SELECT n, kind, t, idx, cnt, app_rv, app_rv_before, status_before, status_after, changed, n_ev, n_aud,
       (SELECT coalesce(max(seq), 0) FROM permit_events) + sum(n_ev) OVER o - n_ev AS seq_base,
       (SELECT coalesce(max(id), 0) FROM permit_audit) + sum(n_aud) OVER o - n_aud AS aud_base
FROM gen.cmds
WINDOW o AS (ORDER BY t, n, kind ROWS UNBOUNDED PRECEDING);
CREATE INDEX ON gen.cmdx (n);
CREATE TABLE gen.alast AS
SELECT DISTINCT ON (n) n, t, app_rv, status_after FROM gen.cmds ORDER BY n, t DESC;
ALTER TABLE gen.alast ADD PRIMARY KEY (n);
CREATE TABLE gen.case_ids AS
SELECT n, jsonb_agg(case_id::text ORDER BY idx) AS ids FROM gen.cf GROUP BY n;
ALTER TABLE gen.case_ids ADD PRIMARY KEY (n);
"""

# The rows the API would have written, for the applications selected by @sel@ (on gen.apps a).
EVB = "jsonb_build_object('application_id', a.app_id::text, 'reference', a.reference, 'tenant_key', 'he')"


def evc(status: str) -> str:
    return (f"jsonb_build_object('case_id', c.case_id::text, 'authority_org_id', c.authority_org_id::text, "
            f"'status', {status})")


CONTENT = ("t.content || jsonb_build_object('project_name', a.project_name, 'operator_reference', "
           "a.operator_reference, 'contact', o.contact, 'planned_start', gen.isod(a.planned_start), "
           "'planned_end', gen.isod(a.planned_start + a.planned_days))")
CRV = "gen.crv(c.t_ask, c.t_sup, c.t_conf, c.t_ext, c.t_end, m.t)"
OP_ACTOR = "o.user_id, o.user_name, 'operator_member', o.org_id, o.org_id"
REV_ACTOR = "r.user_id, r.name, 'authority_reviewer', c.authority_org_id, c.authority_org_id"
SYSTEM_ACTOR = "NULL::uuid, 'Breitband (Fristablauf)', 'system', NULL::uuid, NULL::uuid"
CMD_CASE = "FROM gen.cmdx m JOIN gen.apps a USING (n) JOIN gen.cf c ON c.n = m.n AND c.idx = m.idx"

GENERATE_SQL = [
    ("applications", """
INSERT INTO applications (id, tenant_key, reference, applicant_org_id, created_by, status, current_version,
    project_name, operator_reference, route_geom, submitted_at, withdrawn_at, works_started_on, works_completed_on,
    works, created_at, updated_at, row_version)
SELECT a.app_id, 'he', a.reference, o.org_id, o.user_id, l.status_after,
       CASE WHEN EXISTS (SELECT 1 FROM gen.cf c WHERE c.n = a.n AND c.t_sup IS NOT NULL) THEN 2 ELSE 1 END,
       a.project_name, a.operator_reference, t.route_geom, a.t_sub, CASE WHEN aw.wd_f THEN aw.t_wd END, NULL, NULL,
       '{}'::jsonb, a.t_create, l.t, l.app_rv
FROM gen.apps a JOIN gen.ops o ON o.k = a.op JOIN gen.tmpl t ON t.t = a.tmpl JOIN gen.alast l ON l.n = a.n
LEFT JOIN gen.aw aw ON aw.n = a.n
WHERE @sel@
ORDER BY a.t_create    -- stored in the order the API would have created them (cases are, by receipt)"""),
    ("application_versions", f"""
INSERT INTO application_versions (id, application_id, tenant_key, number, kind, content, resolution, route_changed,
    note, addressed_case_ids, created_by, created_at, submitted_at)
SELECT gen_random_uuid(), a.app_id, 'he', 1, CASE WHEN a.draft THEN 'draft' ELSE 'submission' END, {CONTENT},
       CASE WHEN a.draft THEN NULL ELSE t.resolution END, false, NULL, coalesce(ids.ids, '[]'::jsonb), o.user_id,
       a.t_create, a.t_sub
FROM gen.apps a JOIN gen.ops o ON o.k = a.op JOIN gen.tmpl t ON t.t = a.tmpl LEFT JOIN gen.case_ids ids ON ids.n = a.n
WHERE @sel@
UNION ALL
SELECT gen_random_uuid(), a.app_id, 'he', 2, 'supplement', {CONTENT}, t.resolution, false, @supplement_message@,
       jsonb_build_array(c.case_id::text), o.user_id, c.t_sup, c.t_sup
FROM gen.cf c JOIN gen.apps a USING (n) JOIN gen.ops o ON o.k = a.op JOIN gen.tmpl t ON t.t = a.tmpl
WHERE c.t_sup IS NOT NULL AND @sel@"""),
    ("cases", """
INSERT INTO cases (id, tenant_key, application_id, authority_org_id, applicant_org_id, status, application_version,
    part, received_at, completeness_due, completeness_due_statutory, complete_at, completeness_confirmed_at,
    decision_due, decision_due_statutory, deadline_at, extension, information_requests, decision, decided_at,
    effective_on, forwarded_from_case_id, forwarded_to_case_id, forward,
    closed_reason, created_at, updated_at, row_version)
SELECT c.case_id, 'he', c.app_id, c.authority_org_id, o.org_id, c.status, CASE WHEN c.sup_f THEN 2 ELSE 1 END,
       tc.part,
       c.r_f, c.cd_f, c.cd_f, CASE WHEN NOT c.stopped_f THEN c.r_f END, c.t_conf,
       CASE WHEN NOT c.stopped_f THEN c.dd_f END, CASE WHEN NOT c.stopped_f THEN c.dd_f END,
       CASE WHEN NOT c.stopped_f THEN c.dl_f END,
       CASE WHEN c.ext_f THEN jsonb_build_object('reason', @extension_reason@, 'at', gen.iso(c.t_ext), 'by', r.name,
            'previous_due', gen.isod(c.dd0_f), 'decision_due', gen.isod(c.dd_f)) ELSE 'null'::jsonb END,
       CASE WHEN c.t_ask IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(jsonb_build_object(
            'id', c.request_id::text, 'requested_at', gen.iso(c.t_ask), 'requested_on', gen.isod(gen.ld(c.t_ask)),
            'message', @ask_message@, 'items', @ask_items@::jsonb, 'stops_clock', true, 'by', r.name,
            'answered_at', gen.iso(c.t_sup), 'answered_in_version', CASE WHEN c.sup_f THEN 2 END)) END,
       CASE c.end_kind
         WHEN 'decision' THEN jsonb_build_object(
            'outcome', c.status, 'effective_on', gen.isod(gen.ld(c.t_end)), 'decided_at', gen.iso(c.t_end),
            'conditions', CASE WHEN c.status = 'refused' THEN '[]'::jsonb ELSE cs.entries END,
            'additional_conditions', CASE WHEN c.status <> 'refused' AND c.extra_condition
                                          THEN jsonb_build_array(@extra_condition@) ELSE '[]'::jsonb END,
            'reasons', CASE WHEN c.status = 'granted' THEN '[]'::jsonb ELSE rs.entries END,
            'explanation', CASE WHEN c.status <> 'granted' THEN @explanation@ END, 'note', NULL,
            'decided_by', jsonb_build_object('user_id', r.user_id::text, 'name', r.name, 'organisation', r.org_name))
         WHEN 'deemed' THEN jsonb_build_object(
            'outcome', 'deemed_granted', 'legal_basis', @legal_basis@, 'effective_on', gen.isod(c.dd_f),
            'effective_at', gen.iso(c.dl_f), 'complete_at', gen.iso(c.r_f), 'extended', c.ext_f,
            'issued_at', gen.iso(c.t_end), 'conditions', '[]'::jsonb, 'additional_conditions', '[]'::jsonb,
            'reasons', '[]'::jsonb, 'explanation', NULL) END,
       CASE c.end_kind WHEN 'decision' THEN c.t_end WHEN 'deemed' THEN c.dl_f END,
       CASE c.end_kind WHEN 'decision' THEN gen.ld(c.t_end) WHEN 'deemed' THEN c.dd_f END,
       NULL, NULL, NULL, c.closed_reason, c.t_sub, greatest(c.t_sub, c.t_ask, c.t_sup, c.t_conf, c.t_ext, c.t_end),
       1 + (c.t_ask IS NOT NULL)::int + (c.t_sup IS NOT NULL)::int + (c.t_conf IS NOT NULL)::int
         + (c.t_ext IS NOT NULL)::int + (c.end_kind IS NOT NULL)::int
FROM gen.cf c JOIN gen.apps a USING (n) JOIN gen.ops o ON o.k = a.op
JOIN gen.tmpl_case tc ON tc.t = a.tmpl AND tc.idx = c.idx JOIN gen.rev r ON r.org_id = c.authority_org_id
JOIN gen.cond_sets cs ON cs.k = c.cond_set JOIN gen.reason_sets rs ON rs.k = c.reason_set
WHERE @sel@"""),
    ("pipeline_runs", """
INSERT INTO pipeline_runs (id, tenant_key, application_id, version, trigger, status, created_at, updated_at)
SELECT gen_random_uuid(), 'he', a.app_id, 1, 'submission', 'pending', a.t_sub, a.t_sub
FROM gen.apps a WHERE NOT a.draft AND @sel@
UNION ALL
SELECT gen_random_uuid(), 'he', a.app_id, 2, 'supplement', 'pending', c.t_sup, c.t_sup
FROM gen.cf c JOIN gen.apps a USING (n) WHERE c.t_sup IS NOT NULL AND @sel@"""),
    ("pipeline_steps", """
INSERT INTO pipeline_steps (run_id, name, position, status, attempts, updated_at)
SELECT r.id, s.name, (s.ord - 1)::int, 'pending', 0, r.created_at
FROM gen.apps a JOIN pipeline_runs r ON r.application_id = a.app_id
CROSS JOIN unnest(@pipeline_steps@::text[]) WITH ORDINALITY AS s(name, ord)
WHERE @sel@"""),
    ("permit_events", f"""
INSERT INTO permit_events (id, seq, tenant_key, application_id, case_id, type, payload, created_at)
SELECT gen_random_uuid(), seq, 'he', app_id, case_id, type, payload, t FROM (
    SELECT m.seq_base + 1 AS seq, a.app_id, NULL::uuid AS case_id, 'application.created' AS type,
           {EVB} || '{{"status": "draft"}}'::jsonb AS payload, m.t
    FROM gen.cmdx m JOIN gen.apps a USING (n) WHERE m.kind = 'create' AND @sel@
    UNION ALL
    SELECT m.seq_base + 1, a.app_id, NULL, 'application.submitted', {EVB} || '{{"version": 1}}'::jsonb, m.t
    FROM gen.cmdx m JOIN gen.apps a USING (n) WHERE m.kind = 'submit' AND @sel@
    UNION ALL
    SELECT m.seq_base + 2 + c.idx, a.app_id, c.case_id, 'case.received',
           {EVB} || {evc("'received'")} || jsonb_build_object(
               'decision_due', gen.isod(gen.addm(gen.ld(c.t_sub), 3)),
               'completeness_due', gen.isod(gen.addm(gen.ld(c.t_sub), 1))), m.t
    FROM gen.cmdx m JOIN gen.apps a USING (n) JOIN gen.cf c ON c.n = m.n WHERE m.kind = 'submit' AND @sel@
    UNION ALL
    SELECT m.seq_base + m.n_ev, a.app_id, NULL, 'application.status_changed',
           {EVB} || jsonb_build_object('status_before', m.status_before, 'status', m.status_after), m.t
    FROM gen.cmdx m JOIN gen.apps a USING (n) WHERE m.changed AND @sel@
    UNION ALL
    SELECT m.seq_base + 1, a.app_id, c.case_id, 'case.information_requested',
           {EVB} || {evc("'incomplete'")} || jsonb_build_object('request_id', c.request_id::text,
               'stops_clock', true, 'message', @ask_message@, 'items', @ask_items@::jsonb), m.t
    {CMD_CASE} WHERE m.kind = 'ask' AND @sel@
    UNION ALL
    SELECT m.seq_base + 1, a.app_id, c.case_id, 'case.restarted',
           {EVB} || {evc("'received'")} || jsonb_build_object('reason', 'supplement', 'status_before',
               'incomplete', 'version', 2, 'completeness_due', gen.isod(c.cd_f), 'decision_due', gen.isod(c.dd0_f)),
           m.t
    FROM gen.cmdx m JOIN gen.apps a USING (n) JOIN gen.cf c ON c.n = m.n AND c.t_sup = m.t
    WHERE m.kind = 'supplement' AND @sel@
    UNION ALL
    SELECT m.seq_base + 2, a.app_id, NULL, 'application.supplemented',
           {EVB} || jsonb_build_object('version', 2, 'route_changed', false,
                                       'case_ids', jsonb_build_array(c.case_id::text)), m.t
    FROM gen.cmdx m JOIN gen.apps a USING (n) JOIN gen.cf c ON c.n = m.n AND c.t_sup = m.t
    WHERE m.kind = 'supplement' AND @sel@
    UNION ALL
    SELECT m.seq_base + 1, a.app_id, c.case_id, 'case.completeness_confirmed',
           {EVB} || {evc("'in_review'")} || jsonb_build_object('complete_at', gen.strt(c.r_f),
               'decision_due', gen.isod(CASE WHEN c.t_ext < c.t_conf THEN c.dd_f ELSE c.dd0_f END)), m.t
    {CMD_CASE} WHERE m.kind = 'confirm' AND @sel@
    UNION ALL
    SELECT m.seq_base + 1, a.app_id, c.case_id, 'case.deadline_extended',
           {EVB} || {evc("CASE WHEN c.t_conf < c.t_ext THEN 'in_review' ELSE 'received' END")}
             || jsonb_build_object('previous_due', gen.isod(c.dd0_f), 'decision_due', gen.isod(c.dd_f),
                                   'reason', @extension_reason@), m.t
    {CMD_CASE} WHERE m.kind = 'extend' AND @sel@
    UNION ALL
    SELECT m.seq_base + 1, a.app_id, c.case_id, 'case.decided',
           {EVB} || {evc("c.status")} || jsonb_build_object('outcome', c.status,
               'effective_on', gen.isod(gen.ld(c.t_end))), m.t
    {CMD_CASE} WHERE m.kind = 'decision' AND @sel@
    UNION ALL
    SELECT m.seq_base + row_number() OVER (PARTITION BY m.n, m.t ORDER BY c.case_id), a.app_id, c.case_id,
           'case.deemed_granted', {EVB} || {evc("'deemed_granted'")} || jsonb_build_object(
               'effective_on', gen.isod(c.dd_f), 'effective_at', gen.strt(c.dl_f)), m.t
    FROM gen.cmdx m JOIN gen.apps a USING (n) JOIN gen.cf c ON c.n = m.n AND c.end_kind = 'deemed' AND c.t_end = m.t
    WHERE m.kind = 'deemed' AND @sel@
    UNION ALL
    SELECT m.seq_base + row_number() OVER (PARTITION BY m.n ORDER BY c.case_id), a.app_id, c.case_id,
           'case.withdrawn', {EVB} || {evc("'withdrawn'")} || '{{"reason": "applicant"}}'::jsonb, m.t
    FROM gen.cmdx m JOIN gen.apps a USING (n) JOIN gen.cf c ON c.n = m.n AND c.end_kind = 'withdrawn'
    WHERE m.kind = 'withdraw' AND @sel@
    UNION ALL
    SELECT m.seq_base + m.cnt + 1, a.app_id, NULL, 'application.withdrawn',
           {EVB} || jsonb_build_object('reason', aw.wd_reason, 'case_ids', (
               SELECT jsonb_agg(c.case_id::text ORDER BY c.case_id) FROM gen.cf c
               WHERE c.n = m.n AND c.end_kind = 'withdrawn')), m.t
    FROM gen.cmdx m JOIN gen.apps a USING (n) JOIN gen.aw aw ON aw.n = m.n WHERE m.kind = 'withdraw' AND @sel@
) e"""),
    ("permit_audit", f"""
INSERT INTO permit_audit (id, tenant_key, application_id, case_id, command, actor_user_id, actor_name, actor_role,
    actor_org_id, on_behalf_of_org_id, at, version_before, version_after, status_before, status_after, detail)
SELECT m.aud_base + 1, 'he', a.app_id, NULL::uuid, 'create', {OP_ACTOR}, m.t, NULL::int, 1, NULL::text, 'draft',
       jsonb_build_object('fields', @create_fields@::jsonb)
FROM gen.cmdx m JOIN gen.apps a USING (n) JOIN gen.ops o ON o.k = a.op WHERE m.kind = 'create' AND @sel@
UNION ALL
SELECT m.aud_base + 1, 'he', a.app_id, NULL, 'submit', {OP_ACTOR}, m.t, m.app_rv_before, m.app_rv, m.status_before,
       m.status_after, jsonb_build_object('version', 1, 'case_ids', ids.ids, 'authorities', t.authority_names,
                                          'total_length_m', t.resolution -> 'total_length_m')
FROM gen.cmdx m JOIN gen.apps a USING (n) JOIN gen.ops o ON o.k = a.op JOIN gen.tmpl t ON t.t = a.tmpl
JOIN gen.case_ids ids ON ids.n = m.n WHERE m.kind = 'submit' AND @sel@
UNION ALL
SELECT m.aud_base + 1, 'he', a.app_id, c.case_id, 'request-information', {REV_ACTOR}, m.t, {CRV} - 1, {CRV},
       'received', 'incomplete',
       jsonb_build_object('request_id', c.request_id::text, 'stops_clock', true,
                          'completeness_due', gen.isod(gen.addm(gen.ld(c.t_sub), 1)), 'message', @ask_message@,
                          'items', @ask_items@::jsonb)
{CMD_CASE} JOIN gen.rev r ON r.org_id = c.authority_org_id WHERE m.kind = 'ask' AND @sel@
UNION ALL
SELECT m.aud_base + 1, 'he', a.app_id, NULL, 'supplement', {OP_ACTOR}, m.t, m.app_rv_before, m.app_rv,
       m.status_before, m.status_after,
       jsonb_build_object('version', 2, 'route_changed', false, 'case_ids', jsonb_build_array(c.case_id::text),
                          'message', @supplement_message@, 'attachment_ids', '[]'::jsonb)
FROM gen.cmdx m JOIN gen.apps a USING (n) JOIN gen.ops o ON o.k = a.op JOIN gen.cf c ON c.n = m.n AND c.t_sup = m.t
WHERE m.kind = 'supplement' AND @sel@
UNION ALL
SELECT m.aud_base + 1, 'he', a.app_id, c.case_id, 'confirm-complete', {REV_ACTOR}, m.t, {CRV} - 1, {CRV},
       'received', 'in_review',
       jsonb_build_object('complete_at', gen.strt(c.r_f),
                          'decision_due', gen.isod(CASE WHEN c.t_ext < c.t_conf THEN c.dd_f ELSE c.dd0_f END),
                          'note', NULL)
{CMD_CASE} JOIN gen.rev r ON r.org_id = c.authority_org_id WHERE m.kind = 'confirm' AND @sel@
UNION ALL
SELECT m.aud_base + 1, 'he', a.app_id, c.case_id, 'extend-deadline', {REV_ACTOR}, m.t, {CRV} - 1, {CRV},
       CASE WHEN c.t_conf < c.t_ext THEN 'in_review' ELSE 'received' END,
       CASE WHEN c.t_conf < c.t_ext THEN 'in_review' ELSE 'received' END,
       jsonb_build_object('previous_due', gen.isod(c.dd0_f), 'decision_due', gen.isod(c.dd_f),
                          'reason', @extension_reason@)
{CMD_CASE} JOIN gen.rev r ON r.org_id = c.authority_org_id WHERE m.kind = 'extend' AND @sel@
UNION ALL
SELECT m.aud_base + 1, 'he', a.app_id, c.case_id, 'decision', {REV_ACTOR}, m.t, {CRV} - 1, {CRV},
       CASE WHEN c.t_conf IS NOT NULL THEN 'in_review' ELSE 'received' END, c.status,
       jsonb_build_object('outcome', c.status,
                          'conditions', CASE WHEN c.status = 'refused' THEN '[]'::jsonb ELSE cs.codes END,
                          'additional_conditions', (c.status <> 'refused' AND c.extra_condition)::int,
                          'reasons', CASE WHEN c.status = 'granted' THEN '[]'::jsonb ELSE rs.codes END,
                          'effective_on', gen.isod(gen.ld(c.t_end)))
{CMD_CASE} JOIN gen.rev r ON r.org_id = c.authority_org_id
JOIN gen.cond_sets cs ON cs.k = c.cond_set JOIN gen.reason_sets rs ON rs.k = c.reason_set
WHERE m.kind = 'decision' AND @sel@
UNION ALL
SELECT m.aud_base + row_number() OVER (PARTITION BY m.n, m.t ORDER BY c.case_id), 'he', a.app_id, c.case_id,
       'deemed-approval', {SYSTEM_ACTOR}, m.t, {CRV} - 1, {CRV},
       CASE WHEN c.t_conf IS NOT NULL THEN 'in_review' ELSE 'received' END, 'deemed_granted',
       jsonb_build_object('effective_on', gen.isod(c.dd_f), 'decision_due', gen.isod(c.dd_f),
                          'complete_at', gen.strt(c.r_f), 'extended', c.ext_f)
FROM gen.cmdx m JOIN gen.apps a USING (n) JOIN gen.cf c ON c.n = m.n AND c.end_kind = 'deemed' AND c.t_end = m.t
WHERE m.kind = 'deemed' AND @sel@
UNION ALL
SELECT m.aud_base + 1, 'he', a.app_id, NULL, 'withdraw', {OP_ACTOR}, m.t, m.app_rv_before, m.app_rv,
       m.status_before, m.status_after,
       jsonb_build_object('reason', aw.wd_reason, 'case_ids', (
           SELECT jsonb_agg(c.case_id::text ORDER BY c.case_id) FROM gen.cf c
           WHERE c.n = m.n AND c.end_kind = 'withdrawn'))
FROM gen.cmdx m JOIN gen.apps a USING (n) JOIN gen.ops o ON o.k = a.op JOIN gen.aw aw ON aw.n = m.n
WHERE m.kind = 'withdraw' AND @sel@"""),
]


def lit(value) -> str:
    """A SQL literal of our own constants (text, or JSON for lists)."""
    if value is None:
        return "NULL"
    if isinstance(value, (list, dict)):
        value = json.dumps(value, ensure_ascii=False)
    return "'" + str(value).replace("'", "''") + "'"


def fill(sql: str, sel: str = "true") -> str:
    from permits.cases.deemed import LEGAL_BASIS
    from permits.pipeline.service import STEPS as PIPELINE_STEPS

    tokens = {"sel": sel, "withdraw_reason": lit(WITHDRAW_REASON), "supplement_message": lit(SUPPLEMENT_MESSAGE),
              "extension_reason": lit(EXTENSION_REASON), "ask_message": lit(ASK_MESSAGE), "ask_items": lit(ASK_ITEMS),
              "extra_condition": lit(EXTRA_CONDITION), "explanation": lit(EXPLANATION),
              "legal_basis": lit(LEGAL_BASIS), "create_fields": lit(CREATE_FIELDS),
              "pipeline_steps": "ARRAY[" + ", ".join(lit(n) for n in PIPELINE_STEPS) + "]"}
    for k, v in tokens.items():
        sql = sql.replace(f"@{k}@", v)
    return sql


def create_body(plan: dict, template: dict, op: dict) -> dict:
    return {"project_name": plan["project_name"], "operator_reference": plan["operator_reference"],
            "contact": op["contact"], "sections": template["sections"],
            "planned_start": plan["planned_start"].isoformat(),
            "planned_end": (plan["planned_start"] + timedelta(days=plan["planned_days"])).isoformat(),
            "traffic_restrictions": TRAFFIC}


CREATE_FIELDS = sorted(["project_name", "operator_reference", "contact", "sections", "planned_start", "planned_end",
                        "traffic_restrictions"])


def monday_before(day: date) -> date:
    return day - timedelta(days=day.weekday())


def widx(day: date, monday: date) -> int:
    days = (day - monday).days
    return 5 * (days // 7) + min(days % 7, 4)


def prepare_plans(conn, args, g: datetime, world, templates, reviewers) -> dict:
    """Schema gen with the helpers, the inputs (templates, people, catalogue sets) and the plans."""
    from permits.deadlines import local_date

    g_date = local_date(g)
    lo_date = g_date - timedelta(days=round(args.months * 30.44))
    monday = monday_before(lo_date - timedelta(days=60))
    cur = conn.cursor()
    cur.execute("DROP SCHEMA IF EXISTS gen CASCADE; CREATE SCHEMA gen")
    cur.execute(gen_functions(monday))
    cur.execute("""CREATE TABLE gen.p (g timestamptz, i_lo int, i_g int, n_apps int, n_tmpl int, pool_size int,
                   n_ops int, p_draft float8, p_ask float8, p_wd float8, p_conf float8, p_never float8, p_ext float8,
                   phase int, tick_delay interval, n_cond_sets int, n_reason_sets int)""")
    rng = np.random.default_rng(args.seed)
    phase = int(rng.integers(0, BEAT_S))
    cur.execute("INSERT INTO gen.p VALUES (%s, %s, %s, %s, %s, 10000, %s, 0.025, 0.18, 0.02, 0.45, 0.06, 0.04, %s, "
                "%s, %s, %s)", (g, widx(lo_date, monday), widx(g_date, monday), args.applications, len(templates),
                                len(world["ops"]), phase, timedelta(microseconds=int(rng.integers(20000, 90000))),
                                len(CONDITION_SETS), len(REASON_SETS)))
    cur.execute("CREATE TABLE gen.ops (k int PRIMARY KEY, org_id uuid, user_id uuid, user_name text, prefix text, "
                "contact jsonb)")
    cur.executemany("INSERT INTO gen.ops VALUES (%s, %s, %s, %s, %s, %s)",
                    [(o["k"], o["org_id"], o["user_id"], o["user_name"], o["prefix"], json.dumps(o["contact"]))
                     for o in world["ops"]])
    cur.execute("CREATE TABLE gen.rev (org_id uuid PRIMARY KEY, user_id uuid, name text, org_name text)")
    cur.executemany("INSERT INTO gen.rev VALUES (%s, %s, %s, %s)",
                    [(k, r["user_id"], r["name"], r["org_name"]) for k, r in reviewers.items()])
    cur.execute("CREATE TABLE gen.tmpl (t int PRIMARY KEY, label text, weight float8, ncases int, content jsonb, "
                "resolution jsonb, route_geom geometry, authority_names jsonb)")
    cur.execute("CREATE TABLE gen.tmpl_case (t int, idx int, authority_org_id uuid, part jsonb, PRIMARY KEY (t, idx))")
    per_route = {}
    for t in templates:
        per_route[t["route"]] = per_route.get(t["route"], 0) + 1
    for t in templates:
        t["share"] = t["weight"] / per_route[t["route"]]
    total = sum(t["share"] for t in templates)
    cur.executemany("INSERT INTO gen.tmpl (t, label, weight, ncases) VALUES (%s, %s, %s, %s)",
                    [(t["t"], t["label"], t["share"] / total, len(t["authorities"])) for t in templates])
    cur.executemany("INSERT INTO gen.tmpl_case (t, idx, authority_org_id) VALUES (%s, %s, %s)",
                    [(t["t"], i, org) for t in templates for i, (org, _) in enumerate(t["authorities"])])
    # 10,000 slots shared out by weight: a uniform slot picks a template with its route's share
    slots = np.floor(np.cumsum([t["share"] / total for t in templates]) * 10000).astype(int)
    slots[-1] = 10000
    cur.execute("CREATE TABLE gen.pool (slot int PRIMARY KEY, t int)")
    start = 0
    rows = []
    for t, end in zip(templates, slots):
        rows += [(s, t["t"]) for s in range(start, end)]
        start = end
    cur.executemany("INSERT INTO gen.pool VALUES (%s, %s)", rows)
    for name, sets, kind in (("cond_sets", CONDITION_SETS, "condition"), ("reason_sets", REASON_SETS,
                                                                          "refusal_reason")):
        cur.execute(f"CREATE TABLE gen.{name} (k int PRIMARY KEY, arr text[], codes jsonb, entries jsonb)")
        cur.executemany(f"INSERT INTO gen.{name} (k, arr) VALUES (%s, %s)", list(enumerate(sets, 1)))
        cur.execute(f"""UPDATE gen.{name} s SET codes = to_jsonb(arr), entries = (
            SELECT jsonb_agg(jsonb_build_object('code', e.code, 'title', e.title, 'text', e.text) ORDER BY u.ord)
            FROM unnest(s.arr) WITH ORDINALITY AS u(code, ord)
            JOIN permit_catalogue e ON e.tenant_key = 'he' AND e.kind = '{kind}' AND e.code = u.code AND e.active)""")
    cur.execute("SELECT setseed(%s)", (SEED,))
    cur.execute(fill(PLAN_SQL))
    cur.execute(STATE_SQL)
    conn.commit()
    return {"monday": monday, "lo_date": lo_date, "g_date": g_date, "phase": phase}


# --- step 3: the first application of every template through the real service ----------------------------------

def principal(user_id, email, name, role, org_id, org_kind, org_name):
    from breitband.identity import Principal

    return Principal(user_id=user_id, email=email, name=name, role=role, tenant_key=TENANT, organisation_id=org_id,
                     organisation_kind=org_kind, organisation_name=org_name)


def replay_templates(db, conn, world, templates, reviewers) -> dict:
    """Carry the plans of the template applications through permits.applications.service / permits.cases.review /
    permits.cases.deemed."""
    from sqlalchemy import select

    from breitband.models import OrgKind, Role
    from permits.applications import service
    from permits.cases import deemed, review
    from permits.models import Case
    from permits.schemas import (
        ApplicationCreate,
        ConfirmCompleteIn,
        DecisionIn,
        ExtendDeadlineIn,
        RequestInformationIn,
        SupplementIn,
        WithdrawIn,
    )

    cur = conn.cursor()
    cols = ["n", "tmpl", "op", "year", "ref_no", "t_create", "project_name", "operator_reference", "planned_start",
            "planned_days", "wd_reason"]
    plans = [dict(zip(cols, r)) for r in cur.execute(f"SELECT {', '.join(cols)} FROM gen.apps WHERE is_tmpl "
                                                     "ORDER BY n").fetchall()]
    cmds: dict[int, list] = {}
    for n, kind, t, idx, cnt in cur.execute("SELECT n, kind, t, idx, cnt FROM gen.cmds WHERE n <= "
                                            "(SELECT n_tmpl FROM gen.p) ORDER BY n, t").fetchall():
        cmds.setdefault(n, []).append((kind, t, idx, cnt))
    fates = {(n, idx): (status, cs, rs, extra) for n, idx, status, cs, rs, extra in cur.execute(
        "SELECT n, idx, status, cond_set, reason_set, extra_condition FROM gen.cf WHERE n <= "
        "(SELECT n_tmpl FROM gen.p)").fetchall()}
    conn.commit()
    by_t = {t["t"]: t for t in templates}
    ops = {o["k"]: o for o in world["ops"]}
    counts: dict[str, int] = {}
    real_ids = []
    for plan in plans:
        tmpl, op = by_t[plan["tmpl"]], ops[plan["op"]]
        who = principal(op["user_id"], op["email"], op["user_name"], Role.operator_member, op["org_id"],
                        OrgKind.operator, op["org_name"])
        case_ids: dict[int, uuid.UUID] = {}
        app_id = None
        for kind, t, idx, cnt in cmds[plan["n"]]:
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "deemed":
                result = deemed.sweep(db, t)
                assert result["deemed_granted"] == cnt, (plan["n"], result)
                continue
            with db.sessionmaker() as s:
                if idx is not None:
                    org = tmpl["authorities"][idx][0]
                    r = reviewers[org]
                    rev = principal(r["user_id"], r["email"], r["name"], Role.authority_reviewer, org,
                                    OrgKind.road_authority, r["org_name"])
                if kind == "create":
                    s.execute(text("INSERT INTO permit_reference_counters (tenant_key, year, last_value) "
                                   "VALUES ('he', :y, :v) ON CONFLICT (tenant_key, year) DO UPDATE "
                                   "SET last_value = EXCLUDED.last_value"),
                              {"y": plan["year"], "v": plan["ref_no"] - 1})
                    body = ApplicationCreate.model_validate(create_body(plan, tmpl, op))
                    app_id = service.create(s, who, body, t).id
                elif kind == "submit":
                    service.submit(s, who, app_id, None, t)
                    s.flush()
                    by_org = {c.authority_org_id: c.id for c in s.scalars(select(Case).where(
                        Case.application_id == app_id))}
                    case_ids = {i: by_org[org] for i, (org, _) in enumerate(tmpl["authorities"])}
                    assert len(by_org) == len(tmpl["authorities"]), "the submission resolved other authorities"
                elif kind == "ask":
                    review.request_information(s, rev, case_ids[idx], RequestInformationIn(
                        message=ASK_MESSAGE, items=ASK_ITEMS), None, t)
                elif kind == "supplement":
                    service.supplement(s, who, app_id, SupplementIn(message=SUPPLEMENT_MESSAGE), None, t)
                elif kind == "confirm":
                    review.confirm_complete(s, rev, case_ids[idx], ConfirmCompleteIn(), None, t)
                elif kind == "extend":
                    review.extend_deadline(s, rev, case_ids[idx], ExtendDeadlineIn(reason=EXTENSION_REASON), None, t)
                elif kind == "decision":
                    outcome, cs, rs, extra = fates[(plan["n"], idx)]
                    review.decide(s, rev, case_ids[idx], DecisionIn(
                        outcome=outcome, conditions=[] if outcome == "refused" else CONDITION_SETS[cs - 1],
                        additional_conditions=[EXTRA_CONDITION] if extra and outcome != "refused" else [],
                        reasons=[] if outcome == "granted" else REASON_SETS[rs - 1],
                        explanation=None if outcome == "granted" else EXPLANATION), None, t)
                elif kind == "withdraw":
                    service.withdraw(s, who, app_id, WithdrawIn(reason=plan["wd_reason"]), None, t)
                else:
                    raise AssertionError(kind)
                s.commit()
        real_ids.append((app_id, plan["n"]))
    cur.executemany("UPDATE gen.apps SET real_app_id = %s WHERE n = %s", real_ids)
    cur.execute("""
        UPDATE gen.tmpl t SET content = v.content, resolution = v.resolution, route_geom = ap.route_geom,
               authority_names = (SELECT jsonb_agg(x -> 'name' ORDER BY o)
                                  FROM jsonb_array_elements(v.resolution -> 'authorities') WITH ORDINALITY y(x, o))
        FROM gen.apps a JOIN applications ap ON ap.id = a.real_app_id
        JOIN application_versions v ON v.application_id = ap.id AND v.number = 1
        WHERE a.is_tmpl AND a.tmpl = t.t""")
    cur.execute("""
        UPDATE gen.tmpl_case tc SET part = c.part
        FROM gen.apps a JOIN cases c ON c.application_id = a.real_app_id
        WHERE a.is_tmpl AND a.tmpl = tc.t AND c.authority_org_id = tc.authority_org_id""")
    missing = cur.execute("SELECT count(*) FROM gen.tmpl_case WHERE part IS NULL").fetchone()[0]
    assert missing == 0, "template parts missing"
    conn.commit()
    return counts


# --- step 5: the set-based rows of the template plans against what the service wrote ---------------------------

def _norm(value, mapping: dict):
    if isinstance(value, dict):
        return {k: _norm(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [_norm(v, mapping) for v in value]
    if isinstance(value, str):
        return mapping.get(value, value)
    return value


def twin_check(conn) -> tuple[int, int, list[str]]:
    """Write the template plans set-based (rolled back afterwards) and compare every row with the service's."""
    cur = conn.cursor()
    cur.execute("UPDATE gen.apps SET reference = 'TWIN-' || n WHERE is_tmpl")
    # Commands take an application's cases in the order of their ids; permute the twin's (random) case ids among
    # its cases so that they sort like the service's, else the comparison would see only that order differ.
    cur.execute("""
        WITH r AS (
            SELECT c.n, c.idx, c.case_id AS twin_id,
                   row_number() OVER (PARTITION BY c.n ORDER BY rc.id) AS real_rank,
                   row_number() OVER (PARTITION BY c.n ORDER BY c.case_id) AS twin_rank
            FROM gen.cf c JOIN gen.apps a ON a.n = c.n AND a.is_tmpl
            JOIN cases rc ON rc.application_id = a.real_app_id AND rc.authority_org_id = c.authority_org_id
        ), m AS (
            SELECT r1.n, r1.idx, r2.twin_id AS new_id FROM r r1 JOIN r r2 ON r2.n = r1.n AND r2.twin_rank = r1.real_rank
        )
        UPDATE gen.cf c SET case_id = m.new_id FROM m WHERE c.n = m.n AND c.idx = m.idx""")
    cur.execute("""UPDATE gen.case_ids ci SET ids = (SELECT jsonb_agg(case_id::text ORDER BY idx) FROM gen.cf c
                   WHERE c.n = ci.n) WHERE ci.n IN (SELECT n FROM gen.apps WHERE is_tmpl)""")
    for _, sql in GENERATE_SQL:
        cur.execute(fill(sql, "a.is_tmpl"))
    pairs = cur.execute("SELECT a.n, a.app_id, a.real_app_id, a.reference, r.reference FROM gen.apps a "
                        "JOIN applications r ON r.id = a.real_app_id WHERE a.is_tmpl ORDER BY a.n").fetchall()
    problems: list[str] = []
    rows_compared = 0

    def fetch(sql: str, app_id) -> list[dict]:
        return [r[0] for r in cur.execute(sql, (app_id,)).fetchall()]

    def sqlnull(*cols: str) -> str:       # to_jsonb shows SQL NULL and JSON null alike
        return "jsonb_build_object('sql_null', jsonb_build_array(" + ", ".join(f"x.{c} IS NULL" for c in cols) + "))"

    queries = {
        "applications": ("SELECT to_jsonb(x) - 'id' - 'route_geom' || jsonb_build_object('geom', "
                         f"ST_AsEWKT(x.route_geom)) || {sqlnull('works', 'route_geom')} "
                         "FROM applications x WHERE id = %s"),
        "application_versions": ("SELECT to_jsonb(x) - 'id' || "
                                 f"{sqlnull('content', 'resolution', 'addressed_case_ids')}"
                                 " FROM application_versions x WHERE application_id = %s ORDER BY number"),
        "cases": (f"SELECT to_jsonb(x) || {sqlnull('part', 'extension', 'information_requests', 'decision', 'forward')}"
                  " FROM cases x WHERE application_id = %s ORDER BY authority_org_id"),
        "permit_events": ("SELECT to_jsonb(x) - 'id' - 'seq' FROM permit_events x WHERE application_id = %s "
                          "ORDER BY seq"),
        "permit_audit": "SELECT to_jsonb(x) - 'id' FROM permit_audit x WHERE application_id = %s ORDER BY id",
        "pipeline_runs": "SELECT to_jsonb(x) - 'id' FROM pipeline_runs x WHERE application_id = %s ORDER BY version",
        "pipeline_steps": (f"SELECT to_jsonb(x) - 'run_id' || {sqlnull('result')} FROM pipeline_steps x "
                           "JOIN pipeline_runs r ON r.id = x.run_id WHERE r.application_id = %s "
                           "ORDER BY r.version, x.position"),
    }
    for n, twin_id, real_id, twin_ref, real_ref in pairs:
        mapping = {str(twin_id): str(real_id), twin_ref: real_ref}
        twin_cases = fetch(queries["cases"], twin_id)
        real_cases = fetch(queries["cases"], real_id)
        for tc, rc in zip(twin_cases, real_cases):
            mapping[tc["id"]] = rc["id"]
            for tr, rr in zip(tc["information_requests"], rc["information_requests"]):
                mapping[tr["id"]] = rr["id"]
        for table, sql in queries.items():
            twin = [_norm(r, mapping) for r in fetch(sql, twin_id)]
            real = fetch(sql, real_id)
            rows_compared += len(real)
            if len(twin) != len(real):
                problems.append(f"plan {n}: {table}: {len(twin)} generated rows, {len(real)} from the service")
                continue
            for k, (a, b) in enumerate(zip(twin, real)):
                if a != b:
                    diff = {key: (a.get(key), b.get(key)) for key in sorted(set(a) | set(b))
                            if a.get(key) != b.get(key)}
                    problems.append(f"plan {n}: {table} row {k}: " + json.dumps(diff, default=str)[:1500])
    conn.rollback()
    return len(pairs), rows_compared, problems


BULK_TABLES = ("applications", "application_versions", "cases", "permit_events", "permit_audit", "pipeline_runs",
               "pipeline_steps")


def index_definitions(conn) -> list[tuple]:
    """(table, index, CREATE INDEX …, constraint name or None, constraint definition, referenced by a FK)."""
    return conn.execute("""
        SELECT t.relname, i.relname, pg_get_indexdef(x.indexrelid), c.conname, pg_get_constraintdef(c.oid),
               EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = x.indexrelid)
        FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
        LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.contype IN ('p', 'u')
        WHERE t.relnamespace = 'public'::regnamespace AND t.relname = ANY(%s) ORDER BY 1, 2""",
                        (list(BULK_TABLES),)).fetchall()


def drop_indexes(conn) -> list[tuple]:
    """Bulk load: drop the indexes (and unique/primary constraints) no foreign key depends on; → what to rebuild."""
    dropped = [d for d in index_definitions(conn) if not d[5]]
    for table, index, _, constraint, _, _ in dropped:
        conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}" if constraint else f"DROP INDEX {index}")
    conn.commit()
    return dropped


def as_written(definition: str) -> str:
    """pg_get_indexdef renders the migrations' `status IN ('a', 'b')` as `(status)::text = ANY ((ARRAY['a'::character
    varying, …])::text[])`, which parses back into another (equivalent) expression; give it back as written."""
    import re

    def back(m):
        values = re.findall(r"'([a-z_]+)'::character varying", m.group(1))
        return "status IN (" + ", ".join(f"'{v}'" for v in values) + ")"

    return re.sub(r"\(\(status\)::text = ANY \(\(ARRAY\[(.*?)\]\)::text\[\]\)\)", back, definition)


def rebuild_indexes(conn, dropped: list[tuple], before: list[tuple]) -> None:
    for table, _index, definition, constraint, condef, _ in dropped:
        conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {constraint} {condef}" if constraint
                     else as_written(definition))
        conn.commit()
    after = index_definitions(conn)
    differ = set(d[:5] for d in after) ^ set(d[:5] for d in before)
    assert not differ, f"the rebuilt indexes differ from the migrated ones: {differ}"


def generate(conn, timer: Timer) -> dict[str, float]:
    cur = conn.cursor()
    out = {}
    before = index_definitions(conn)
    conn.commit()
    dropped = drop_indexes(conn)
    for table, sql in GENERATE_SQL:
        t0 = time.perf_counter()
        cur.execute(fill(sql, "NOT a.is_tmpl"))
        conn.commit()
        out[table] = time.perf_counter() - t0
    cur.execute("""
        INSERT INTO permit_reference_counters (tenant_key, year, last_value)
        SELECT 'he', year, max(ref_no) FROM gen.apps GROUP BY year
        ON CONFLICT (tenant_key, year) DO UPDATE SET last_value = EXCLUDED.last_value""")
    cur.execute("SELECT setval(pg_get_serial_sequence('permit_events', 'seq'), (SELECT max(seq) FROM permit_events))")
    cur.execute("SELECT setval(pg_get_serial_sequence('permit_audit', 'id'), (SELECT max(id) FROM permit_audit))")
    conn.commit()
    t0 = time.perf_counter()
    rebuild_indexes(conn, dropped, before)
    out[f"{len(dropped)} indexes rebuilt"] = time.perf_counter() - t0
    return out


def check_deadlines(conn, sample: int) -> tuple[int, int]:
    """Recompute the clock columns of a sample of generated cases with permits/deadlines.py."""
    from breitband import dates
    from permits import deadlines

    rows = conn.execute(f"""
        SELECT received_at, completeness_due, complete_at, decision_due, deadline_at, extension, status,
               decided_at, effective_on, decision
        FROM cases TABLESAMPLE SYSTEM (5) REPEATABLE (7) LIMIT {sample}""").fetchall()
    bad = 0
    for (received, cdue, complete, ddue, deadline, extension, status, decided_at, effective_on, decision) in rows:
        ok = cdue == deadlines.completeness_due(received)
        if complete is not None:
            due = deadlines.decision_due(complete)
            if extension:
                ok &= extension["previous_due"] == due.isoformat()
                due = deadlines.extended(due)
            ok &= ddue == due and deadline == deadlines.period_end(due)
        else:
            ok &= ddue is None and deadline is None and status in ("incomplete", "withdrawn")
        if status == "deemed_granted":
            ok &= (effective_on == ddue and decided_at == deadline
                   and decision["effective_at"] == dates.iso(deadline))
        bad += not ok
    conn.rollback()
    return len(rows), bad


# --- measurements ------------------------------------------------------------------------------------------------

def compiled(stmt) -> tuple[str, dict]:
    """A SQLAlchemy statement as psycopg SQL with its parameters (what the app sends, minus the ORM)."""
    from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg

    c = stmt.compile(dialect=pg_psycopg.dialect(), compile_kwargs={"render_postcompile": True})
    return str(c), dict(c.params)


def measure_inbox(client, raw, who, variants: list[tuple[str, dict]], runs: int, g: datetime) -> list[dict]:
    """Each variant: HTTP (the whole GET through uvicorn) and the bare SQL of its two inbox statements."""
    from permits import repository

    results = []
    for label, params in variants:
        after = params.get("after")
        cursor = repository.InboxCursor.decode(after) if after else None
        stmt = repository.inbox_query(
            who, statuses=params.get("status"), due_before=date.fromisoformat(params["due_before"])
            if "due_before" in params else None, overdue_at=None, bbox=None, application_id=None,
            limit=int(params.get("limit", 50)), offset=int(params.get("offset", 0)), after=cursor)
        ids_sql, ids_params = compiled(stmt)
        http_ms, sql_ms = [], []
        body = None
        for k in range(runs + 5):
            t0 = time.perf_counter()
            resp = client.get("/api/v1/cases", params=params)
            t1 = time.perf_counter()
            if resp.status_code != 200:
                raise SystemExit(f"HTTP {resp.status_code}: {resp.text[:500]}")
            body = resp.json()
            t2 = time.perf_counter()
            ids = [r[0] for r in raw.execute(ids_sql, ids_params).fetchall()]
            rows_sql, rows_params = compiled(repository.inbox_rows_query(ids[:int(params.get("limit", 50))]))
            raw.execute(rows_sql, rows_params).fetchall()
            t3 = time.perf_counter()
            if k >= 5:
                http_ms.append((t1 - t0) * 1000)
                sql_ms.append((t3 - t2) * 1000)
        assert [i["id"] for i in body["items"]] == [str(i) for i in ids[:len(body["items"])]], label
        results.append({"label": label, "params": params, "items": len(body["items"]), "body": body,
                        "http50": pct(http_ms, 50), "http95": pct(http_ms, 95), "sql50": pct(sql_ms, 50),
                        "sql95": pct(sql_ms, 95)})
    return results


def run_cli(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "BREITBAND_DATABASE_URL": BENCH_URL}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "breitband.cli", *args], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=3600)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--applications", type=int, default=1_000_000)
    ap.add_argument("--tiles", type=int, default=40, help="copies of the Frankfurter Kreuz extract over Hessen")
    ap.add_argument("--months", type=float, default=8, help="submissions spread over this many months before now")
    ap.add_argument("--runs", type=int, default=60, help="measured requests per inbox variant (after 5 warm-up)")
    ap.add_argument("--sweep-days", type=int, default=14,
                    help="the sweep runs with --now this many days after the generation instant")
    ap.add_argument("--seed", type=int, default=20261122)
    args = ap.parse_args()

    import httpx
    import psycopg

    from breitband import dates, identity
    from breitband.db import get_database
    from permits import deadlines

    timer = Timer()
    g = datetime.now(timezone.utc).replace(microsecond=0)
    rng = np.random.default_rng(args.seed)
    say(f"database: {make_url(BENCH_URL).render_as_string(hide_password=True)}; generation instant G = "
        f"{dates.iso(g)} ({g.astimezone(dates.BERLIN):%Y-%m-%d %H:%M %Z})")
    setup_database()
    db = get_database()
    with db.sessionmaker() as session:
        world = build_world(session, args, rng)
        timer.lap("tenant, boundaries, roads")
        templates = resolve_templates(session, world)
        reviewers = create_reviewers(session, templates)
    timer.lap("templates resolved")
    n_auth = len({o for t in templates for o, _ in t["authorities"]})
    say(f"world: tenant he, 446 authorities from the VG250 boundaries; {world['segments']:,} road segments = "
        f"{len(world['offsets'])} copies of {EXTRACT.name} on tiles across Hessen; {len(world['ops'])} operators")
    say(f"templates: {len(templates)} (7 routes x {len(world['offsets'])} tiles; left out where the resolution "
        f"refuses the route or names an authority missing from the directory"
        + (f", e.g. {world['missing_authorities'][0][0]}" if world["missing_authorities"] else "")
        + f"), touching {n_auth} authorities, {np.mean([len(t['authorities']) for t in templates]):.2f} "
          "authorities per route")

    url = make_url(BENCH_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(url, options="-c jit=off -c synchronous_commit=off -c work_mem=256MB "
                                        "-c max_parallel_workers_per_gather=0 -c default_toast_compression=lz4 "
                                        "-c maintenance_work_mem=512MB")
    prepare_plans(conn, args, g, world, templates, reviewers)
    timer.lap("plans")
    counts = replay_templates(db, conn, world, templates, reviewers)
    timer.lap("template applications through the service")
    say(f"through the real service: {len(templates)} applications, commands "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    conn.execute("SET session_replication_role = replica")      # bulk load: no FK triggers (rows are consistent)
    conn.commit()
    conn.execute(BASES_SQL)
    conn.commit()
    n_twins, n_rows, problems = twin_check(conn)
    timer.lap("twin check")
    say(f"check: set-based rows of the {n_twins} template plans vs the service's rows: {n_rows:,} rows compared, "
        f"{len(problems)} differences")
    for p in problems[:10]:
        say("  " + p)
    if problems:
        raise SystemExit("the generator does not write what the service writes")
    t_gen = time.perf_counter()
    per_table = generate(conn, timer)
    conn.execute("SET session_replication_role = origin")
    conn.commit()
    timer.lap("set-based generation")
    conn.autocommit = True
    t0 = time.perf_counter()
    conn.execute("VACUUM (ANALYZE) applications, application_versions, cases")
    conn.execute("ANALYZE permit_events, permit_audit, permit_reference_counters")
    t_vac = time.perf_counter() - t0
    conn.autocommit = False
    timer.lap("vacuum, analyze")
    checked, bad = check_deadlines(conn, 20000)
    stats = dict(conn.execute("""
        SELECT 'applications', count(*) FROM applications UNION ALL SELECT 'cases', count(*) FROM cases
        UNION ALL SELECT 'versions', count(*) FROM application_versions
        UNION ALL SELECT 'events', count(*) FROM permit_events UNION ALL SELECT 'audit', count(*) FROM permit_audit
        UNION ALL SELECT 'runs', count(*) FROM pipeline_runs UNION ALL SELECT 'steps', count(*) FROM pipeline_steps
    """).fetchall())
    by_status = conn.execute("SELECT status, count(*) FROM cases GROUP BY 1 ORDER BY 2 DESC").fetchall()
    app_status = conn.execute("SELECT status, count(*) FROM applications GROUP BY 1 ORDER BY 2 DESC").fetchall()
    size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    span = conn.execute("SELECT min(submitted_at), max(submitted_at) FROM applications").fetchone()
    conn.execute("DROP SCHEMA gen CASCADE")
    conn.commit()
    gen_s = time.perf_counter() - t_gen
    say(f"generated set-based in {gen_s:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in per_table.items())
        + f", VACUUM ANALYZE {t_vac:.0f} s); database {size}")
    say(f"rows: {stats['applications']:,} applications, {stats['cases']:,} cases, {stats['versions']:,} versions, "
        f"{stats['events']:,} events (unpublished), {stats['audit']:,} audit records, {stats['runs']:,} pipeline runs "
        f"with {stats['steps']:,} steps (pending); submitted "
        f"{span[0]:%Y-%m-%d} … {span[1]:%Y-%m-%d}")
    say("cases: " + ", ".join(f"{s} {c:,}" for s, c in by_status))
    say("applications: " + ", ".join(f"{s} {c:,}" for s, c in app_status))
    say(f"check: deadline columns of {checked:,} sampled cases recomputed with permits/deadlines.py: {bad} differ")
    if bad:
        raise SystemExit("deadline columns differ from permits/deadlines.py")

    # --- (a) the inbox -------------------------------------------------------------------------------------------
    busy = conn.execute("""
        SELECT c.authority_org_id, o.name, count(*), count(*) FILTER (WHERE c.status IN
               ('received', 'incomplete', 'in_review'))
        FROM cases c JOIN organisations o ON o.id = c.authority_org_id GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 1
    """).fetchone()
    conn.rollback()
    busy_op = conn.execute("""
        SELECT c.applicant_org_id, count(*), count(*) FILTER (WHERE c.status IN ('received', 'incomplete', 'in_review'))
        FROM cases c GROUP BY 1 ORDER BY 2 DESC LIMIT 1
    """).fetchone()
    conn.rollback()
    rev = reviewers[busy[0]]
    op = next(o for o in world["ops"] if o["org_id"] == busy_op[0])
    with db.sessionmaker() as session:
        from breitband.models import OrgKind, Role, User

        _, token = identity.create_token(session, session.get(User, rev["user_id"]), "bench")
        office = identity.create_organisation(session, TENANT, OrgKind.operating_office, "Servicestelle Bench")
        admin = identity.create_user(session, office, "admin@servicestelle-bench.example", "Bench Admin",
                                     Role.tenant_admin)
        _, admin_token = identity.create_token(session, admin, "bench")
        _, op_token = identity.create_token(session, session.get(User, op["user_id"]), "bench")
        session.commit()
        who = identity.authenticate(session, token)
        scopes = [(f"tenant admin: first page ({stats['cases']:,} cases)", admin_token,
                   identity.authenticate(session, admin_token)),
                  (f"operator: first page ({busy_op[1]:,} cases)", op_token, identity.authenticate(session, op_token))]
        session.commit()
    say(f"\ninbox of {busy[1]} ({busy[2]:,} cases, {busy[3]:,} open) as {rev['name']}; also the first pages of "
        f"a tenant admin (every case of the tenant) and of {op['org_name']} ({busy_op[1]:,} cases, {busy_op[2]:,} "
        "open), the busiest operator")
    port = free_port()
    env = {**os.environ, "BREITBAND_DATABASE_URL": BENCH_URL, "BREITBAND_PORT": str(port)}
    server = subprocess.Popen([sys.executable, "-m", "breitband.cli", "serve", "--port", str(port)], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                              timeout=60)
        for _ in range(200):
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        raw = psycopg.connect(url, options="-c jit=off")
        raw.autocommit = True
        due = (deadlines.local_date(g) + timedelta(days=14)).isoformat()
        variants = [("first page (FIFO, 50)", {}),
                    ("filtered: open, due within 14 days", {"status": ["received", "in_review"], "due_before": due})]
        res = measure_inbox(client, raw, who, variants, args.runs, g)
        # a deep page: page 101 (after 5,000 cases) by cursor and by offset
        params: dict = {}
        for _ in range(100):
            params = {"after": client.get("/api/v1/cases", params=params).json()["next"]}
        deep = measure_inbox(client, raw, who, [("page 101 by cursor (?after=)", params),
                                                 ("page 101 by offset (?offset=5000)", {"offset": 5000})],
                             max(20, args.runs // 3), g)
        assert [i["id"] for i in deep[0]["body"]["items"]] == [i["id"] for i in deep[1]["body"]["items"]]
        for label, scope_token, scope_who in scopes:
            scope_client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                        headers={"Authorization": f"Bearer {scope_token}"})
            deep += measure_inbox(scope_client, raw, scope_who, [(label, {})], args.runs, g)
        raw.close()
    finally:
        server.terminate()
        server.wait(10)
    say(f"{'GET /api/v1/cases':<42} {'HTTP p50':>9} {'HTTP p95':>9} {'SQL p50':>8} {'SQL p95':>8} {'p95 ratio':>9}")
    for r in res + deep:
        say(f"{r['label']:<42} {r['http50']:>7.1f}ms {r['http95']:>7.1f}ms {r['sql50']:>6.1f}ms {r['sql95']:>6.1f}ms "
            f"{r['http95'] / r['sql95']:>9.2f}")
    first = res[0]["body"]["items"][0]
    say(f"(first item: {first['reference']} {first['status']}, complete {first['complete_at']}, due "
        f"{first['decision_due']}, {first['days_left']} days left; {args.runs} requests per variant after 5 warm-up, "
        f"{max(20, args.runs // 3)} for the deep pages; SQL = the two inbox statements over psycopg)")

    # --- (b) the sweep -------------------------------------------------------------------------------------------
    now = g + timedelta(days=args.sweep_days)
    expect = conn.execute("SELECT count(*), count(DISTINCT application_id) FROM cases WHERE status IN "
                          "('received', 'incomplete', 'in_review') AND deadline_at <= %s", (now,)).fetchone()
    open_cases = conn.execute("SELECT count(*) FROM cases WHERE status IN ('received', 'incomplete', 'in_review')"
                              ).fetchone()[0]
    conn.rollback()
    start_s, _ = run_cli("deadlines", "run", "--help")
    sweeps = []
    for _ in range(2):
        wall, out = run_cli("deadlines", "run", "--now", dates.iso(now))
        if out.returncode != 0:
            raise SystemExit(out.stderr[-2000:])
        result = json.loads(out.stdout)
        sweeps.append((wall, result["deemed_granted"], result["batches"]))
    say(f"\nsweep `breitband deadlines run --now {dates.iso(now)}` (G + {args.sweep_days} days) over "
        f"{stats['applications']:,} applications ({open_cases:,} open cases, {expect[0]:,} of them past their "
        f"deadline then, in {expect[1]:,} applications):")
    for k, (wall, issued, batches) in enumerate(sweeps, 1):
        say(f"  run {k}: {issued:,} deemed approvals issued in {wall:.2f} s ({batches} batches; wall time of the "
            f"command, of which ~{start_s:.1f} s is starting the process)")
    assert sweeps[0][1] == expect[0] and sweeps[1][1] == 0
    p95 = res[0]["http95"]
    say(f"\ntargets: inbox first page p95 {p95:.1f} ms (≤ 100 ms: {'met' if p95 <= 100 else 'NOT met'}); "
        f"filtered p95 {res[1]['http95']:.1f} ms; sweep {sweeps[0][0]:.2f} s "
        f"(≤ 10 s: {'met' if sweeps[0][0] <= 10 else 'NOT met'}); second run {sweeps[1][0]:.2f} s, "
        f"{sweeps[1][1]} issued")
    say("timing of the run: " + ", ".join(f"{k} {v:.0f} s" for k, v in timer.steps))


if __name__ == "__main__":
    main()
