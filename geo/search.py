"""Search over the map: Gemeinden, Kreise, streets (with their Gemeinde), road numbers and coordinates.

The places come from the tenant's own tables: ``search_places`` (migration 0017) is rebuilt from ``admin_areas`` and
``road_segments`` after every import of boundaries or roads (:func:`rebuild_places`): one row per Gemeinde and
Kreis, per street name and Gemeinde (the extent of all its segments there) and per road number (the extent of the
whole road), each with its extent in EPSG:4326, which the map fits to. The query matches with pg_trgm's
``word_similarity`` over a GIN trigram index (typing errors and partial words: "Frankfurter Str" finds "Frankfurter
Straße"); a street's search text holds its Gemeinde, so "Bahnhofstraße Langen" finds the one in Langen.

Coordinates are recognised in the query itself (:func:`parse_coordinates`): longitude/latitude in EPSG:4326 (also
latitude first, as map sites copy it, recognised by Germany's ranges) and easting/northing in EPSG:25832 (also with
the zone prefix "32"); what looks like coordinates but is neither is a 422 that says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from breitband.errors import UnprocessableEntity
from geo.crs import transformer

MAX_QUERY = 100
# A road number as people type it: "L 3262", "l3262", "K163", "B 43a", "St 2181", "KU 12"
REF = re.compile(r"^([A-Za-zÄÖÜäöü]{1,3})\s*(\d{1,4}[a-zA-Z]?)$")
# Only digits, signs, decimal points/commas, separators, degree signs: the query is meant as coordinates
COORD_LIKE = re.compile(r"^[0-9\s.,;+\-°]+$")
NUMBER = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")
# Germany's extent (with a margin): tells latitude-first pairs apart from longitude-first ones
GERMANY_LON, GERMANY_LAT = (5.0, 16.0), (47.0, 56.0)
UTM32_E, UTM32_N = (100_000.0, 1_000_000.0), (5_000_000.0, 6_300_000.0)
KIND_RANK = {"gemeinde": 0, "kreis": 1, "road": 2, "street": 3}
# A coordinate result's extent: this many degrees either side (about 150 m)
POINT_PAD = (0.002, 0.0013)


@dataclass(frozen=True)
class Coordinates:
    lon: float
    lat: float
    crs: str              # "EPSG:4326" | "EPSG:25832": what the query was read as
    label: str            # the coordinates as read, e.g. "8.68100, 50.05000" or "E 478123, N 5545123"


# "Bahnhofstr", "Bahnhofstr." and "Frankfurter Str." as people abbreviate them
STR = re.compile(r"str\.?(?=\s|$)")


def normalise(q: str) -> str:
    """Collapsed whitespace, lower case, "str"/"str." at a word's end as "straße"; a road number as "l 3262"."""
    q = " ".join(q.split())
    m = REF.match(q)
    if m:
        return f"{m.group(1)} {m.group(2)}".lower()
    return STR.sub("straße", q.lower())


def _prefix(q: str) -> str:
    return q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def ref_key(q: str) -> str | None:
    """"L 3262" → "L3262" when the query is a road number, else None."""
    m = REF.match(" ".join(q.split()))
    return f"{m.group(1)}{m.group(2)}".upper() if m else None


def _invalid(q: str, why: str) -> UnprocessableEntity:
    return UnprocessableEntity(
        f"{q!r} is not a coordinate pair: {why}. Give longitude and latitude in degrees (EPSG:4326, e.g. "
        "'8.681, 50.050') or easting and northing in metres (EPSG:25832, e.g. '478123 5545123').",
        type="invalid-coordinates", field="q")


def _numbers(q: str) -> list[str]:
    """The numbers of a coordinate query: separated by ";", by a comma with spaces ("8.68, 50.05"), by spaces (then a
    comma is a decimal comma: "8,68 50,05"), or by a single comma without spaces ("8.68,50.05")."""
    q = q.strip().replace("°", " ")
    if ";" in q:
        parts = q.split(";")
    elif re.search(r"\s,|,\s", q):
        parts = re.split(r"\s*,\s*", q)
    elif re.search(r"\s", q):
        parts = q.split()
    else:
        parts = q.split(",")
    return [p.strip() for p in parts if p.strip()]


def parse_coordinates(q: str) -> Coordinates | None:
    """The query as coordinates, or None when it is not meant as coordinates (letters in it, or one number only:
    "3262" is searched as text). Raises 422 ``invalid-coordinates`` for a query of numbers that is neither."""
    q = q.strip()
    if not COORD_LIKE.match(q) or not re.search(r"\d", q):
        return None
    parts = _numbers(q)
    if len(parts) == 1 and NUMBER.match(parts[0]):
        return None
    if len(parts) != 2:
        raise _invalid(q, f"{len(parts)} numbers instead of two")
    bad = [p for p in parts if not NUMBER.match(p)]
    if bad:
        raise _invalid(q, f"{bad[0]!r} is not a number")
    a, b = (float(p.replace(",", ".")) for p in parts)
    if abs(a) <= 180 and abs(b) <= 180:
        lon, lat = a, b
        if GERMANY_LAT[0] <= a <= GERMANY_LAT[1] and GERMANY_LON[0] <= b <= GERMANY_LON[1]:
            lon, lat = b, a                       # latitude first, as map sites copy it
        if not (GERMANY_LON[0] <= lon <= GERMANY_LON[1] and GERMANY_LAT[0] <= lat <= GERMANY_LAT[1]):
            raise _invalid(q, "as degrees the point lies outside Germany (longitude 5–16, latitude 47–56)")
        return Coordinates(lon, lat, "EPSG:4326", f"{lon:.5f}, {lat:.5f}")
    e, n = a, b
    if UTM32_N[0] <= e <= UTM32_N[1] and UTM32_E[0] <= n <= UTM32_E[1] + 32_000_000:
        e, n = n, e                               # northing first
    if 32_000_000 <= e < 33_000_000:
        e -= 32_000_000                           # easting with the zone number in front ("32478123")
    if not (UTM32_E[0] <= e <= UTM32_E[1] and UTM32_N[0] <= n <= UTM32_N[1]):
        raise _invalid(q, "the numbers are neither degrees nor easting (100000–1000000 m) and northing "
                          "(5000000–6300000 m) in Germany")
    lon, lat = transformer(25832, 4326).transform(e, n)
    return Coordinates(lon, lat, "EPSG:25832", f"E {e:.0f}, N {n:.0f}")


def check_query(q: str) -> str:
    """The query stripped; 422 when it is empty, too long or holds control characters."""
    stripped = q.strip()
    if not stripped:
        raise UnprocessableEntity("The search query is empty: type a Gemeinde, street, road number, reference or "
                                  "coordinates", type="search-query-empty", field="q")
    if len(stripped) > MAX_QUERY:
        raise UnprocessableEntity(f"The search query has {len(stripped)} characters; at most {MAX_QUERY} are "
                                  "searched", type="search-query-too-long", field="q", max_length=MAX_QUERY)
    if any(ord(c) < 32 for c in stripped):
        raise UnprocessableEntity("The search query holds control characters", type="search-query-invalid",
                                  field="q")
    return stripped


def _bbox(row: Any) -> list[float]:
    return [round(row.west, 6), round(row.south, 6), round(row.east, 6), round(row.north, 6)]


_COLUMNS = """kind, name, context, key, west, south, east, north,
       (kind = 'road' AND key = :ref) OR lower(name) = :q OR search = :q AS exact"""
_ORDER = "array_position(ARRAY['gemeinde', 'kreis', 'road', 'street']::varchar[], kind), weight DESC, name"
# What was typed as the start of a name (of a street with its Gemeinde, of a road number), or a road number: a btree
# range scan, ranked by exactness, kind and size (a street that exists in many Gemeinden: the longest first).
_PREFIX = text(f"""
SELECT {_COLUMNS}, 1.0 AS score
FROM search_places
WHERE tenant_key = :t AND (search LIKE :prefix OR (kind = 'road' AND key = :ref))
ORDER BY exact DESC, {_ORDER}
LIMIT :limit
""")
# Otherwise typing errors and words in another order: pg_trgm word similarity over the GIN index, ranked by the mean
# of the query's word similarity to the name and to the whole search text (a street's text holds its Gemeinde:
# "Stuttgarter Straße Frankfurt am Main" must not rank with "Frankfurter Straße" above a street of that name).
_PLACES = text(f"""
SELECT {_COLUMNS}, (word_similarity(:q, lower(name)) + word_similarity(:q, search)) / 2 AS score
FROM search_places
WHERE tenant_key = :t AND :q <% search
ORDER BY score DESC, similarity(:q, lower(name)) DESC, {_ORDER}
LIMIT :limit
""")


def search_places(session: Session, tenant_key: str, q: str, limit: int, *,
                  fuzzy: bool = True) -> list[dict[str, Any]]:
    """Gemeinden, Kreise, streets and roads for a text query, best first: what starts with the query (exact names
    and road numbers first), and only when nothing does (and ``fuzzy``), the fuzzy match."""
    nq = normalise(q)
    params = {"t": tenant_key, "q": nq, "ref": ref_key(q) or "", "limit": limit, "prefix": _prefix(nq)}
    rows = session.execute(_PREFIX, params).all()
    if not rows and fuzzy:
        rows = session.execute(_PLACES, params).all()
    out = []
    for r in rows:
        item: dict[str, Any] = {"kind": r.kind, "label": r.name, "context": r.context, "bbox": _bbox(r),
                                "score": round(float(1.0 if r.exact else r.score), 3)}
        if r.kind in ("gemeinde", "kreis"):
            item["ags"] = r.key
        if r.kind == "road":           # context: "land", or "kreis|Landkreis Offenbach" for a Kreisstraße
            road_class, _, kreis = (r.context or "").partition("|")
            item["road_class"] = road_class or None
            item["context"] = kreis or None
        out.append(item)
    return out


_LOCATE = text("""
SELECT name FROM admin_areas
WHERE tenant_key = :t AND level = 'gemeinde'
  AND ST_Intersects(geom, ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :srid))
LIMIT 1
""")


def coordinate_result(session: Session, tenant_key: str, srid: int, c: Coordinates) -> dict[str, Any]:
    """The point of a coordinate query with the Gemeinde it lies in (None outside the tenant's Gemeinden)."""
    gemeinde = session.execute(_LOCATE, {"t": tenant_key, "lon": c.lon, "lat": c.lat, "srid": srid}).scalar()
    dx, dy = POINT_PAD
    return {"kind": "coordinates", "label": c.label, "context": gemeinde, "crs": c.crs,
            "point": [round(c.lon, 6), round(c.lat, 6)],
            "bbox": [round(c.lon - dx, 6), round(c.lat - dy, 6), round(c.lon + dx, 6), round(c.lat + dy, 6)],
            "score": 1.0}


# --- the index -------------------------------------------------------------------------------------------------

# Extents are computed in the tenant's metric CRS and transformed as boxes (the corners of an envelope; at the size of
# a street or Gemeinde the curvature of the transformed edges is far below what fitting the map needs).
_BOX = ("ST_Transform(ST_SetSRID(CAST({box} AS geometry), :srid), 4326)")
_INSERT = "INSERT INTO search_places (tenant_key, kind, name, context, key, search, weight, west, south, east, north) "

_AREAS = _INSERT + """
SELECT a.tenant_key, a.level, a.name,
       CASE WHEN a.level = 'kreis' THEN a.bez WHEN a.kreisfrei THEN 'Kreisfreie Stadt'
            ELSE nullif(concat_ws(' ', k.bez, k.name), '') END,
       a.ags, lower(CASE WHEN a.level = 'kreis' THEN concat_ws(' ', a.name, a.bez) ELSE a.name END),
       coalesce(a.population, 0),
       ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)
FROM admin_areas a
LEFT JOIN admin_areas k ON k.tenant_key = a.tenant_key AND k.level = 'kreis' AND k.ags = left(a.ags, 5)
     AND a.level = 'gemeinde'
CROSS JOIN LATERAL (SELECT """ + _BOX.format(box="ST_Envelope(a.geom)") + """ AS b) e
WHERE a.tenant_key = :t AND a.level IN ('gemeinde', 'kreis')
"""

# Each named segment goes with the Gemeinde its midpoint lies in. The join is driven from the Gemeinden (a few
# hundred): for each, the segments in its bounding box through the road network's GiST index, then the
# point-in-polygon test against the same polygon row after row, which PostGIS answers from its cached edge tree.
_STREETS = _INSERT + """
SELECT :t, 'street', s.name, g.name, g.ags, lower(s.name || ' ' || g.name), s.n,
       ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)
FROM (
    SELECT s.name, a.ags, ST_Extent(s.geom) AS ext, count(*) AS n
    FROM admin_areas a
    JOIN road_segments s ON s.geom && a.geom AND ST_Intersects(a.geom, ST_LineInterpolatePoint(s.geom, 0.5))
    WHERE a.tenant_key = :t AND a.level = 'gemeinde' AND s.tenant_key = :t AND s.name IS NOT NULL
      AND s.name <> ''
    GROUP BY s.name, a.ags
) s
JOIN admin_areas g ON g.tenant_key = :t AND g.level = 'gemeinde' AND g.ags = s.ags
CROSS JOIN LATERAL (SELECT """ + _BOX.format(box="s.ext") + """ AS b) e
"""

# A road number's extent over all its segments ("A 3;A 5": both numbers); its class: the most frequent one. Kreisstraßen
# are numbered per Kreis in many states (the same "K 12" in two Kreise are two roads), so a Kreisstraße is one place
# per Kreis (its segments' midpoints), named with the Kreis; Autobahn, Bundes- and Landesstraßen one per number.
_ROADS = _INSERT + """
WITH refs AS (
    SELECT trim(x.ref) AS ref, s.road_class, s.geom
    FROM road_segments s CROSS JOIN LATERAL unnest(string_to_array(s.ref, ';')) AS x(ref)
    WHERE s.tenant_key = :t AND s.ref IS NOT NULL AND trim(x.ref) <> ''
), classed AS (
    SELECT ref, mode() WITHIN GROUP (ORDER BY road_class) AS road_class FROM refs GROUP BY ref
), parts AS (
    SELECT r.ref, c.road_class, k.ags, ST_Extent(r.geom) AS ext, count(*) AS n
    FROM refs r JOIN classed c USING (ref)
    LEFT JOIN admin_areas k ON c.road_class = 'kreis' AND k.tenant_key = :t AND k.level = 'kreis'
         AND r.geom && k.geom AND ST_Intersects(k.geom, ST_LineInterpolatePoint(r.geom, 0.5))
    GROUP BY r.ref, c.road_class, k.ags
)
SELECT :t, 'road', p.ref, p.road_class || coalesce('|' || nullif(concat_ws(' ', k.bez, k.name), ''), ''),
       upper(replace(p.ref, ' ', '')),
       lower(concat_ws(' ', p.ref, k.name)), p.n, ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)
FROM parts p
LEFT JOIN admin_areas k ON k.tenant_key = :t AND k.level = 'kreis' AND k.ags = p.ags
CROSS JOIN LATERAL (SELECT """ + _BOX.format(box="p.ext") + """ AS b) e
"""


def rebuild_places(session: Session, tenant_key: str) -> dict[str, int]:
    """Replace the tenant's search places with those of its current boundaries and roads. Does not commit.
    Returns the number of places per kind."""
    srid = session.execute(text("SELECT srid FROM tenants WHERE key = :t"), {"t": tenant_key}).scalar_one()
    session.execute(text("DELETE FROM search_places WHERE tenant_key = :t"), {"t": tenant_key})
    params = {"t": tenant_key, "srid": srid}
    session.execute(text(_AREAS), params)
    session.execute(text(_STREETS), params)
    session.execute(text(_ROADS), params)
    session.execute(text("ANALYZE search_places"))   # the planner then takes the prefix index for rare prefixes
    counts = dict(session.execute(text("SELECT kind, count(*) FROM search_places WHERE tenant_key = :t "
                                       "GROUP BY kind"), {"t": tenant_key}).all())
    return {k: int(counts.get(k, 0)) for k in KIND_RANK}


__all__ = ["Coordinates", "check_query", "coordinate_result", "normalise", "parse_coordinates", "rebuild_places",
           "ref_key", "search_places", "MAX_QUERY"]
