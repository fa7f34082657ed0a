"""Resolution of the road authorities affected by a route.

Algorithm (one set-based SQL query does the spatial work; Python applies the state's rules to its few rows):

1. The route's lines, already in the tenant's metric CRS, are cut into pieces of at most ``step_m`` (10 m by
   default; ``ST_Segmentize`` + ``ST_DumpSegments``). Short pieces keep every index lookup's bounding box small,
   however long the route is.
2. For the midpoint of every piece, two index lookups (GiST on ``(tenant_key, geom)``):
   - the Gemeinde it lies in (or, across the gaps of simplified boundaries, the nearest within ``boundary_gap_m``);
     none → outside the tenant's territory;
   - the nearest road segment within ``tolerance_m``, where separately mapped footways and cycleways count
     ``path_penalty_m`` farther away, so that a trench in the sidewalk of a Bundesstraße goes with the
     Bundesstraße; none → outside public roads.
   For pieces on classified roads (bund, land, kreis) it also looks whether an Ortsdurchfahrt (OD) is on file there.
3. Consecutive pieces with the same Gemeinde, road (class, number, name), privacy and OD status are merged
   ("gaps and islands" with window functions) and their lengths summed; the run's line (its pieces joined in
   order with ST_MakeLine, no GEOS merge) is returned in the request's CRS.
4. Each merged run is assigned to an authority under the tenant's rules (``geo.rules``):
   - private road (``access=private|no``) → reported as private, no authority;
   - autobahn → the agency for ``autobahn``;
   - bund / land / kreis → the agency for the class (kreis: the Landkreis, or the kreisfreie Stadt) unless the
     piece lies in an OD on file in a Gemeinde above the state's threshold (then the Gemeinde). Where no OD is on
     file and the Gemeinde is above the threshold, the answer depends on the OD: the piece goes to the authority
     outside the OD and carries a warning naming the Gemeinde, its population and the rule;
   - everything else public → the Gemeinde.
   Every piece says which rule decided, in words an authority can check.

Lengths are measured in the tenant's metric CRS and rounded to 0.1 m. Points (pits, cabinets) and areas
(construction areas) are assigned to the nearest road within the tolerance in the same way, with no length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.rules import TenantRules

CLASS_LABEL = {"autobahn": "Bundesautobahn", "bund": "Bundesstraße", "land": "Landesstraße",
               "kreis": "Kreisstraße", "gemeinde": "Gemeindestraße"}
DEFAULT_LAWS = {"autobahn": "FStrG § 1, InfrGG", "bund": "FStrG § 5", "land": "Landesstraßengesetz",
                "kreis": "Landesstraßengesetz", "gemeinde": "Landesstraßengesetz"}

LINES_SQL = text("""
WITH input AS (
    SELECT u.feature, u.part, ST_GeomFromWKB(u.wkb, :srid) AS geom
    FROM unnest(CAST(:features AS int[]), CAST(:parts AS int[]), CAST(:wkbs AS bytea[])) AS u(feature, part, wkb)
),
segs AS MATERIALIZED (
    SELECT i.feature, i.part, d.path[1] AS seq, (d.path[1] - 1) / :chunk_n AS chunk,
           (d.path[1] - 1) / :gchunk_n AS gchunk, d.geom AS seg, ST_Centroid(d.geom) AS mid,
           ST_Expand(ST_Centroid(d.geom), :tol) AS midbox
    FROM input i, LATERAL ST_DumpSegments(ST_Segmentize(i.geom, :step)) AS d
),
chunks AS MATERIALIZED (
    SELECT feature, part, chunk, ST_Expand(ST_Extent(seg)::geometry, :tol) AS box
    FROM segs GROUP BY feature, part, chunk
),
gchunks AS MATERIALIZED (
    SELECT feature, part, gchunk, ST_Collect(seg) AS g FROM segs GROUP BY feature, part, gchunk
),
road_cand AS MATERIALIZED (
    SELECT c.feature, c.part, c.chunk, r.*
    FROM chunks c CROSS JOIN LATERAL (
        SELECT r.id, r.geom, r.is_path, r.ref, r.name, r.highway, r.road_class, r.class_source, r.class_ref,
               r.is_private FROM road_segments r
        WHERE r.tenant_key = :tenant AND r.geom && ST_SetSRID(c.box, :srid)
    ) r
),
gem_cand AS MATERIALIZED (
    SELECT c.feature, c.part, c.gchunk, a.ags, a.geom
    FROM gchunks c CROSS JOIN LATERAL (
        SELECT a.ags, a.geom FROM admin_areas a
        WHERE a.tenant_key = :tenant AND a.level = 'gemeinde' AND ST_DWithin(a.geom, c.g, :gap)
    ) a
),
gem_hit AS MATERIALIZED (
    SELECT gc.ags, p.feature, p.part, p.seq, p.dist
    FROM gem_cand gc CROSS JOIN LATERAL (
        SELECT s.feature, s.part, s.seq,
               CASE WHEN ST_Intersects(gc.geom, s.mid) THEN 0
                    WHEN ST_DWithin(gc.geom, s.mid, :gap) THEN ST_Distance(gc.geom, s.mid) END AS dist
        FROM segs s WHERE s.feature = gc.feature AND s.part = gc.part AND s.gchunk = gc.gchunk
    ) p
),
seg_road AS (
    SELECT DISTINCT ON (feature, part, seq) feature, part, seq, road_id, ref, name, highway, road_class,
           class_source, class_ref, is_private
    FROM (
        SELECT s.feature, s.part, s.seq, rc.id AS road_id, rc.is_path, ST_Distance(rc.geom, s.mid) AS dist,
               rc.ref, rc.name, rc.highway, rc.road_class, rc.class_source, rc.class_ref, rc.is_private
        FROM segs s JOIN road_cand rc USING (feature, part, chunk)
        WHERE rc.geom && s.midbox
    ) d
    WHERE dist <= :tol
    ORDER BY feature, part, seq, dist + CASE WHEN is_path THEN :penalty ELSE 0 END, road_id
),
seg_gem AS (
    SELECT DISTINCT ON (feature, part, seq) feature, part, seq, ags
    FROM gem_hit WHERE dist <= :gap
    ORDER BY feature, part, seq, dist, ags
),
m AS (
    SELECT s.feature, s.part, s.seq, s.seg, sg.ags, r.road_id, r.ref, r.name, r.highway, r.road_class,
           r.class_source, COALESCE(r.class_ref, r.ref) AS road_ref, r.is_private,
           CASE WHEN r.road_class IN ('bund', 'land', 'kreis') THEN EXISTS (
               SELECT 1 FROM ortsdurchfahrten o
               WHERE o.tenant_key = :tenant
                 AND ST_DWithin(o.geom, s.mid, CASE WHEN o.is_line THEN :tol ELSE 0 END)
                 AND (o.road_ref IS NULL OR o.road_ref = COALESCE(r.class_ref, r.ref)
                      OR o.road_ref = ANY(string_to_array(replace(r.ref, '; ', ';'), ';')))
           ) END AS od
    FROM segs s
    LEFT JOIN seg_gem sg USING (feature, part, seq)
    LEFT JOIN seg_road r USING (feature, part, seq)  -- the road's attributes came with the candidates
),
k AS (
    SELECT m.*, concat_ws('|', ags, road_class, road_ref, name, is_private, od, road_id IS NULL) AS key FROM m
),
runs AS (
    SELECT k.*, seq - row_number() OVER (PARTITION BY feature, part, key ORDER BY seq) AS grp FROM k
)
SELECT feature, part, min(seq) AS first_seq, ags, road_class, road_ref, name, min(ref) AS ref,
       min(class_source) AS class_source, min(highway) AS highway, is_private, od, (road_id IS NULL) AS unmatched,
       sum(ST_Length(seg)) AS length_m,
       ST_AsGeoJSON(ST_Transform(ST_MakeLine(seg ORDER BY seq), :out_srid), :digits) AS geometry
FROM runs
GROUP BY feature, part, key, grp, ags, road_class, road_ref, name, is_private, od, (road_id IS NULL)
ORDER BY feature, part, first_seq
""")

POINTS_SQL = text("""
WITH input AS (
    SELECT u.feature, u.part, ST_GeomFromWKB(u.wkb, :srid) AS geom
    FROM unnest(CAST(:features AS int[]), CAST(:parts AS int[]), CAST(:wkbs AS bytea[])) AS u(feature, part, wkb)
)
SELECT i.feature, i.part, g.ags, r.road_class, COALESCE(r.class_ref, r.ref) AS road_ref, r.name, r.ref,
       r.class_source, r.highway, r.is_private, (r.id IS NULL) AS unmatched,
       CASE WHEN r.road_class IN ('bund', 'land', 'kreis') THEN EXISTS (
           SELECT 1 FROM ortsdurchfahrten o
           WHERE o.tenant_key = :tenant AND ST_DWithin(o.geom, i.geom, CASE WHEN o.is_line THEN :tol ELSE 0 END)
       ) END AS od,
       ST_Area(i.geom) AS area_m2,
       ST_AsGeoJSON(ST_Transform(i.geom, :out_srid), :digits) AS geometry
FROM input i
LEFT JOIN LATERAL (
    SELECT a.ags FROM admin_areas a
    WHERE a.tenant_key = :tenant AND a.level = 'gemeinde' AND ST_DWithin(a.geom, ST_PointOnSurface(i.geom), :gap)
    ORDER BY ST_Distance(a.geom, ST_PointOnSurface(i.geom)), a.ags
    LIMIT 1
) g ON true
LEFT JOIN LATERAL (
    SELECT r.* FROM (
        SELECT * FROM road_segments r0
        WHERE r0.tenant_key = :tenant AND r0.geom && ST_Expand(i.geom, :tol) OFFSET 0  -- index on geom alone
    ) r
    WHERE ST_DWithin(r.geom, i.geom, :tol)
    ORDER BY ST_Distance(r.geom, i.geom) + CASE WHEN r.is_path THEN :penalty ELSE 0 END, r.id
    LIMIT 1
) r ON true
ORDER BY i.feature, i.part
""")


# Pieces per chunk: candidate roads are looked up once per chunk (~200 m) with the index, then every piece picks
# its nearest among the chunk's few candidates.
CHUNK_PIECES = 20
# Gemeinden change rarely along a route: one covering test per ~500 m, per piece only where a boundary is near.
GEMEINDE_CHUNK_PIECES = 50


def _parts(features) -> tuple[list[int], list[int], list[bytes]]:
    """(feature index, part number, WKB) of every part of every feature, vectorised (Shapely 2: one call for all
    parts, not one per feature: 10,000 pits cost milliseconds, not a quarter of a second)."""
    if not features:
        return [], [], []
    geoms = np.empty(len(features), dtype=object)
    geoms[:] = [f.geom for f in features]
    parts, owner = shapely.get_parts(geoms, return_index=True)
    first = np.searchsorted(owner, owner)              # owner is sorted: position of each feature's first part
    index = np.array([f.index for f in features])
    return (index[owner].tolist(), (np.arange(len(owner)) - first).tolist(),
            shapely.to_wkb(parts).tolist())


def line_query_params(tenant_key: str, srid: int, out_srid: int, digits: int, rules: TenantRules,
                      features) -> dict[str, Any]:
    fidx, pidx, wkbs = _parts(features)
    return {"tenant": tenant_key, "srid": srid, "out_srid": out_srid, "digits": digits, "step": rules.step_m,
            "chunk_n": CHUNK_PIECES, "gchunk_n": GEMEINDE_CHUNK_PIECES,
            "tol": rules.tolerance_m, "penalty": rules.path_penalty_m, "gap": rules.boundary_gap_m,
            "features": fidx, "parts": pidx, "wkbs": wkbs}


def query_lines(session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
    if not params["wkbs"]:
        return []
    return [dict(r._mapping) for r in session.execute(LINES_SQL, params)]


def query_points(session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
    if not params["wkbs"]:
        return []
    return [dict(r._mapping) for r in session.execute(POINTS_SQL, params)]


# --- rules ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """Who a run belongs to: an authority (by kind and key, or agency name)."""

    kind: str                   # authority kind
    key: str | None             # AGS where one applies
    agency: str | None = None   # agency name for autobahn/bund/land


def _fmt(n: int | None) -> str:
    return "unbekannt" if n is None else f"{n:,}".replace(",", ".")


class RuleBook:
    """Applies one tenant's rules to merged runs."""

    def __init__(self, rules: TenantRules, areas: dict[str, dict[str, Any]]) -> None:
        self.rules = rules
        self.areas = areas  # ags → admin area info (gemeinde and kreis)

    def law(self, cls: str) -> str:
        return self.rules.laws.get(cls) or DEFAULT_LAWS[cls]

    def agency(self, cls: str) -> str | None:
        return self.rules.agencies.get(cls)

    def decide(self, run: dict[str, Any]) -> tuple[Target | None, str, list[dict[str, Any]]]:
        """→ (target or None for no authority, rule text, warnings)."""
        cls = run["road_class"]
        ref = run["road_ref"]
        gem = self.areas.get(run["ags"] or "", {})
        gname = gem.get("name", "?")
        pop = gem.get("population")
        label = CLASS_LABEL[cls]
        what = self._what(run)
        warnings: list[dict[str, Any]] = []

        if cls == "gemeinde":
            return (Target("gemeinde", run["ags"]),
                    f"{what}: keine klassifizierte Straße → Gemeinde {gname} ({label})", warnings)
        if cls == "autobahn":
            agency = self.agency("autobahn")
            return (Target("autobahn", None, agency),
                    f"{what}: {label} → {agency or 'Autobahnverwaltung'} ({self.law('autobahn')})", warnings)

        threshold = getattr(self.rules.ortsdurchfahrt, cls)
        opt_in = getattr(self.rules.ortsdurchfahrt_opt_in, cls)
        outside_target, outside_name = self._outside_od(cls, run["ags"], gem)
        gemeinde_target = Target("gemeinde", run["ags"])
        law = self.law(cls)
        base = f"{what}: {label}"

        if cls == "kreis" and gem.get("kreisfrei"):
            return (gemeinde_target, f"{base} in der kreisfreien Stadt {gname} → die Stadt trägt die Kreisstraßen",
                    warnings)
        if threshold is None or pop is None:
            if pop is None and threshold is not None and run["ags"]:
                warnings.append(self._warning("population-unknown", run, gem,
                                              f"Für {gname} ist keine Einwohnerzahl erfasst; die Regel für "
                                              f"Ortsdurchfahrten ({law}) ließ sich nicht prüfen."))
            return outside_target, f"{base} → {outside_name}", warnings
        above = pop > threshold
        in_opt_in = opt_in is not None and opt_in < pop <= threshold
        if run["od"]:
            if above:
                return (gemeinde_target, f"{base} in der Ortsdurchfahrt {gname} ({_fmt(pop)} Einw. > "
                        f"{_fmt(threshold)}) → Gemeinde {gname} ({law})", warnings)
            if in_opt_in:
                warnings.append(self._warning(
                    "ortsdurchfahrt-opt-in", run, gem,
                    f"{ref} liegt in der Ortsdurchfahrt {gname} ({_fmt(pop)} Einw., zwischen {_fmt(opt_in)} und "
                    f"{_fmt(threshold)}): die Gemeinde kann die Baulast übernommen haben ({law}). Zugeordnet: "
                    f"{outside_name}."))
            return (outside_target, f"{base} in der Ortsdurchfahrt {gname} ({_fmt(pop)} Einw. ≤ "
                    f"{_fmt(threshold)}) → {outside_name} ({law})", warnings)
        if above or in_opt_in:
            warnings.append(self._warning(
                "ortsdurchfahrt-unknown", run, gem,
                f"Für {ref} in {gname} ist keine Ortsdurchfahrt erfasst. {gname} hat {_fmt(pop)} Einwohner "
                f"({'mehr als' if above else 'bis zu'} {_fmt(threshold)}): innerhalb einer Ortsdurchfahrt wäre "
                f"{'die Gemeinde' if above else 'die Gemeinde auf eigenen Wunsch'} zuständig ({law}). "
                f"Zugeordnet: {outside_name} (außerhalb der Ortsdurchfahrt)."))
            return (outside_target, f"{base} außerhalb einer erfassten Ortsdurchfahrt → {outside_name}", warnings)
        return (outside_target, f"{base} → {outside_name} ({gname}: {_fmt(pop)} Einw. ≤ {_fmt(threshold)}, "
                "Ortsdurchfahrt bleibt beim Träger der Straße)", warnings)

    def _outside_od(self, cls: str, ags: str | None, gem: dict[str, Any]) -> tuple[Target, str]:
        if cls == "kreis":
            kreis_ags = (ags or "")[:5]
            kreis = self.areas.get(kreis_ags, {})
            name = f"{kreis.get('bez') or 'Kreis'} {kreis.get('name', kreis_ags)}"
            return Target("kreis", kreis_ags), name
        agency = self.agency(cls)
        return Target(cls, None, agency), agency or CLASS_LABEL[cls]

    @staticmethod
    def _what(run: dict[str, Any]) -> str:
        ref, name, src = run["road_ref"], run["name"], run["class_source"]
        if src == "link":
            return f"Anschlussrampe ({run.get('highway')}) an {ref}"
        if src == "highway" or not ref:
            return f"{run.get('highway') or 'Straße'} {name or '(ohne Namen)'}".strip()
        return f"{ref}{' ' + name if name else ''}"

    @staticmethod
    def _warning(code: str, run: dict[str, Any], gem: dict[str, Any], message: str) -> dict[str, Any]:
        return {"code": code, "message": message, "road_ref": run["road_ref"],
                "gemeinde": {"ags": run["ags"], "name": gem.get("name"), "population": gem.get("population")}}


_areas_cache: dict[str, tuple[Any, dict[str, dict[str, Any]]]] = {}


def load_areas(session: Session, tenant_key: str, ags_list: set[str], stamp: Any = None) -> dict[str, dict[str, Any]]:
    """Name, type and population of the Gemeinden and Kreise a route touches. With ``stamp``
    (``tenants.data_changed_at``, moved by every import) the tenant's whole list is kept in memory until the next
    import: a round trip per resolution saved."""
    keys = set(ags_list) | {a[:5] for a in ags_list}
    if stamp is not None:
        cached = _areas_cache.get(tenant_key)
        if cached is None or cached[0] != stamp:
            rows = session.execute(text(
                "SELECT ags, level, name, bez, population, kreisfrei FROM admin_areas "
                "WHERE tenant_key = :t AND level IN ('gemeinde', 'kreis')"), {"t": tenant_key})
            cached = (stamp, {r.ags: dict(r._mapping) for r in rows})
            _areas_cache[tenant_key] = cached
        return {k: cached[1][k] for k in keys if k in cached[1]}
    rows = session.execute(text(
        "SELECT ags, level, name, bez, population, kreisfrei FROM admin_areas "
        "WHERE tenant_key = :t AND level IN ('gemeinde', 'kreis') AND ags = ANY(:keys)"),
        {"t": tenant_key, "keys": sorted(keys)})
    return {r.ags: dict(r._mapping) for r in rows}


_directory_cache: dict[str, tuple[Any, tuple[dict, dict]]] = {}


def load_authorities(session: Session, tenant_key: str, keys: set[str], agency_names: set[str], stamp: Any = None):
    """→ (authority by (kind, key), authority by organisation name). With ``stamp`` (``tenants.data_changed_at``,
    moved by triggers on every change of an authority or an organisation's name) the tenant's whole directory is
    kept in memory until it changes: a round trip per resolution saved."""
    if stamp is not None:
        cached = _directory_cache.get(tenant_key)
        if cached is None or cached[0] != stamp:
            cached = (stamp, _directory(session, tenant_key, None, None))
            _directory_cache[tenant_key] = cached
        return cached[1]
    return _directory(session, tenant_key, keys, agency_names)


def _directory(session: Session, tenant_key: str, keys: set[str] | None, agency_names: set[str] | None):
    where = "" if keys is None else " AND (a.key = ANY(:keys) OR o.name = ANY(:names))"
    rows = session.execute(text(
        "SELECT a.kind, a.key, o.id, o.name FROM authorities a JOIN organisations o ON o.id = a.organisation_id "
        "WHERE a.tenant_key = :t" + where + " ORDER BY o.created_at, o.id"),
        {"t": tenant_key, "keys": sorted(keys or ()), "names": sorted(agency_names or ())})
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    by_name: dict[str, dict[str, Any]] = {}
    for r in rows:
        info = {"id": str(r.id), "name": r.name, "kind": r.kind, "key": r.key}
        if r.key is not None:
            by_key[(r.kind, r.key)] = info
        by_name.setdefault(r.name, info)
    return by_key, by_name


def r1(x: float) -> float:
    return round(float(x) + 0.0, 1)


def assemble(session: Session, tenant_key: str, rules: TenantRules, line_runs: list[dict[str, Any]],
             point_rows: list[dict[str, Any]], total_length_m: float, *, stamp: Any = None,
             raw_geometry: bool = False) -> dict[str, Any]:
    """Apply the rules to the runs and build the documented JSON answer. With ``raw_geometry`` the piece
    geometries stay the GeoJSON text PostGIS wrote, wrapped as ``orjson.Fragment`` for a caller that serialises
    with orjson (the HTTP API): parsing them only to write them out again cost more than the rest of the answer."""
    ags_seen = {r["ags"] for r in line_runs + point_rows if r["ags"]}
    areas = load_areas(session, tenant_key, ags_seen, stamp)
    book = RuleBook(rules, areas)

    decided = []
    for row in line_runs + point_rows:
        if row["ags"] is None or row["unmatched"] or row["is_private"]:
            decided.append((row, None, None, []))
        else:
            decided.append((row, *book.decide(row)))

    keys = {t.key for _, t, _, _ in decided if t and t.key}
    agencies = {t.agency for _, t, _, _ in decided if t and t.agency}
    if rules.kreis_agency:
        agencies.add(rules.kreis_agency.name)
    by_key, by_name = load_authorities(session, tenant_key, keys, agencies, stamp)

    authorities: dict[str, dict[str, Any]] = {}
    outside = {"length_m": 0.0, "pieces": []}
    private = {"length_m": 0.0, "pieces": []}
    warnings: dict[tuple, dict[str, Any]] = {}
    outside_territory_m = 0.0

    for row, target, rule, warns in decided:
        is_line = "length_m" in row
        length = float(row["length_m"]) if is_line else 0.0
        piece = {
            "section": row["feature"],
            "road_ref": row["road_ref"],
            "road_name": row["name"],
            "road_class": row["road_class"],
            "length_m": r1(length),
            "rule": rule,
            "geometry": orjson.Fragment(row["geometry"]) if raw_geometry else json.loads(row["geometry"]),
        }
        if not is_line:
            piece["feature_type"] = "area" if row["area_m2"] else "point"
            if row["area_m2"]:
                piece["area_m2"] = r1(row["area_m2"])
        if row["ags"]:
            gem = areas.get(row["ags"], {})
            piece["gemeinde"] = {"ags": row["ags"], "name": gem.get("name")}
        if row["road_class"] in ("bund", "land", "kreis"):
            piece["ortsdurchfahrt_on_file"] = bool(row["od"])

        if row["ags"] is None:
            piece.update(road_ref=None, road_name=None, road_class=None, reason="outside_territory",
                         rule="außerhalb des Gebiets dieses Landes")
            outside["pieces"].append(piece)
            outside["length_m"] += length
            outside_territory_m += length
            continue
        if row["unmatched"]:
            piece.update(reason="no_public_road_within_tolerance",
                         rule=f"keine Straße im Umkreis von {rules.tolerance_m:g} m → außerhalb öffentlicher "
                              "Straßen (Zustimmung des Grundstückseigentümers nötig)")
            outside["pieces"].append(piece)
            outside["length_m"] += length
            continue
        if row["is_private"]:
            piece["rule"] = (f"{row['highway'] or 'Weg'} {row['name'] or ''}".strip()
                             + " ist nicht öffentlich (access=private/no) → kein Verfahren nach § 127 TKG, "
                               "Zustimmung des Eigentümers nötig")
            private["pieces"].append(piece)
            private["length_m"] += length
            continue

        info = (by_key.get((target.kind, target.key)) if target.key else None) or \
            (by_name.get(target.agency) if target.agency else None)
        if info is None:
            who = target.agency or f"{target.kind} {target.key}"
            info = {"id": None, "name": who, "kind": target.kind, "key": target.key}
            warns = warns + [{"code": "authority-missing", "message": f"Keine Behörde für {who} im Verzeichnis: "
                              "Grenzen oder Regeln des Landes neu importieren.", "road_ref": row["road_ref"]}]
        akey = info["id"] or info["name"]
        entry = authorities.setdefault(akey, {**info, "length_m": 0.0, "pieces": []})
        if (target.kind == "kreis" and rules.kreis_agency and target.key in rules.kreis_agency.kreise):
            agency = by_name.get(rules.kreis_agency.name)
            entry["administered_by"] = agency or {"id": None, "name": rules.kreis_agency.name}
        entry["pieces"].append(piece)
        entry["length_m"] += length
        for w in warns:
            wk = (w["code"], w.get("road_ref"), (w.get("gemeinde") or {}).get("ags"))
            if wk in warnings:
                warnings[wk]["length_m"] += length
            else:
                warnings[wk] = {**w, "authority": info["name"], "length_m": length}

    if outside_territory_m > 0:
        warnings[("outside-territory",)] = {
            "code": "partly-outside-territory", "length_m": outside_territory_m,
            "message": f"{r1(outside_territory_m)} m der Route liegen außerhalb des Landes; dafür sind die "
                       "Behörden des Nachbarlandes zuständig."}

    result_auths = sorted(authorities.values(), key=lambda a: (-a["length_m"], a["name"]))
    for a in result_auths:
        a["length_m"] = r1(a["length_m"])
    for bucket in (outside, private):
        bucket["length_m"] = r1(bucket["length_m"])
    warn_list = []
    for w in warnings.values():
        w["length_m"] = r1(w["length_m"])
        warn_list.append(w)
    return {
        "authorities": result_auths,
        "outside_public_roads": outside,
        "private_roads": private,
        "warnings": warn_list,
        "total_length_m": r1(total_length_m),
    }

