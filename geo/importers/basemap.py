"""Import of the base map: what a map needs around the roads to orient a reader, from the same OpenStreetMap
extracts as the road network (read with pyosmium, node locations resolved, multipolygons assembled).

What is kept (everything else in the file is ignored, not counted as skipped):

- areas (``basemap_areas``), kind and class:
  - ``water``: natural=water, water=*, waterway=riverbank|dock, landuse=basin|reservoir (class: the water type);
  - ``landuse``: landuse=* (forest, residential, farmland, industrial, ...), natural=wood|scrub|heath|grassland|
    wetland|sand|beach|bare_rock, leisure=park|garden|pitch|playground|golf_course|nature_reserve|sports_centre|
    stadium|track, amenity=grave_yard (class: the value, amenity=grave_yard as "cemetery");
  - ``building``: building=* except "no" (class: the building value);
- lines (``basemap_lines``): ``water`` waterway=river|stream|canal|ditch|drain; ``railway``
  railway=rail|light_rail|subway|tram|narrow_gauge|monorail|funicular|preserved (class: the value);
- points (``basemap_points``): ``place`` place=city|town|village|suburb|quarter|hamlet|neighbourhood|borough|
  isolated_dwelling with a name, on nodes, or on areas at a point inside them (class: the place value, population
  if tagged); ``housenumber`` addr:housenumber on nodes and on areas (a building's number at a point inside it).

Road labels: after the OSM layers, the tenant's road network (``road_segments``, imported before) is merged per road
(same class, name and ref; footways and cycleways left out) into long lines (``ST_LineMerge``), cut into pieces of
at most ``LABEL_PIECE_M`` for the spatial index, and stored as lines of kind ``road_label``, so that street names and
road numbers have room along their road. Re-import the base map after a new road import to renew them.

Geometries are transformed to the tenant's metric CRS; an area's ``area_m2`` and a line's ``length_m`` are measured
there. The import replaces the tenant's base map (all three tables) in the caller's transaction (idempotent: the
same files give the same rows) and records a LayerImport "basemap" with counts per kind and class.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import osmium
import shapely
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.importers.common import (
    Summary,
    bad_file,
    check_exists,
    file_info,
    load_tenant,
    lock_layer,
    progress,
    psycopg_connection,
    record_import,
    transformer,
)
from geo.importers.ways import is_osm_file

LAYER = "basemap"
LABEL_PIECE_M = 3000.0
TABLES = ("basemap_areas", "basemap_lines", "basemap_points")

WATER_AREA = {"riverbank", "dock"}
LANDUSE_NATURAL = {"wood", "scrub", "heath", "grassland", "wetland", "sand", "beach", "bare_rock"}
LEISURE = {"park", "garden", "pitch", "playground", "golf_course", "nature_reserve", "sports_centre", "stadium",
           "track"}
WATERWAY_LINES = {"river", "stream", "canal", "ditch", "drain"}
RAILWAY_LINES = {"rail", "light_rail", "subway", "tram", "narrow_gauge", "monorail", "funicular", "preserved"}
PLACES = {"city", "town", "village", "suburb", "quarter", "hamlet", "neighbourhood", "borough", "isolated_dwelling"}
_KEYS = ("landuse", "natural", "leisure", "building", "water", "waterway", "railway", "place", "addr:housenumber",
         "amenity")
_LIMITS = {"class": 50, "name": 300, "ref": 100, "housenumber": 50}


def area_kind(tags) -> tuple[str, str] | None:
    """(kind, class) of an area by its tags, or None: not a base map area."""
    natural, landuse, waterway = tags.get("natural"), tags.get("landuse"), tags.get("waterway")
    if natural == "water" or "water" in tags or waterway in WATER_AREA or landuse in ("basin", "reservoir"):
        return "water", tags.get("water") or (waterway if waterway in WATER_AREA else None) or landuse or "water"
    building = tags.get("building")
    if building and building != "no":
        return "building", building
    if landuse:
        return "landuse", landuse
    if natural in LANDUSE_NATURAL:
        return "landuse", natural
    leisure = tags.get("leisure")
    if leisure in LEISURE:
        return "landuse", leisure
    if tags.get("amenity") == "grave_yard":
        return "landuse", "cemetery"
    return None


def line_kind(tags) -> tuple[str, str] | None:
    waterway, railway = tags.get("waterway"), tags.get("railway")
    if waterway in WATERWAY_LINES:
        return "water", waterway
    if railway in RAILWAY_LINES:
        return "railway", railway
    return None


def _population(value: str | None) -> int | None:
    if not value:
        return None
    digits = value.replace(".", "").replace(",", "").replace(" ", "")
    return int(digits) if digits.isdigit() and len(digits) < 10 else None


def _cut(value: str | None, column: str) -> str | None:
    return value[:_LIMITS[column]] if value is not None and len(value) > _LIMITS[column] else value


class _Collected:
    """Rows per table as (attributes, WKB in EPSG:4326) until they are transformed and written."""

    def __init__(self) -> None:
        self.areas: list[tuple] = []
        self.lines: list[tuple] = []
        self.points: list[tuple] = []
        self.area_ids: set[int] = set()
        self.way_ids: set[int] = set()
        self.node_ids: set[int] = set()


def read_basemap_osm(path: Path, out: _Collected, summary: Summary, *, progress_bar: bool = False) -> None:
    """Collect the base map objects of one OSM file (an object in several files is kept once)."""
    check_exists(path)
    wkb = osmium.geom.WKBFactory()
    bar = progress(desc=path.name, unit=" objects", enabled=progress_bar)
    n = 0
    try:
        processor = (osmium.FileProcessor(str(path)).with_locations().with_areas()
                     .with_filter(osmium.filter.KeyFilter(*_KEYS)))
        for obj in processor:
            n += 1
            if n % 5000 == 0:
                bar.update(5000)
            tags = obj.tags
            if obj.is_node():
                _node(obj, tags, wkb, out)
            elif obj.is_way():
                _way(obj, tags, wkb, out, summary)
            elif obj.is_area():
                _area(obj, tags, wkb, out, summary)
    except Exception as exc:  # osmium reports unreadable input as RuntimeError/ValueError
        raise bad_file(path, f"not an OpenStreetMap file that can be read: {str(exc).strip() or type(exc).__name__}"
                       ) from None
    finally:
        bar.close()


def _node(obj, tags, wkb, out: _Collected) -> None:
    if obj.id in out.node_ids or not obj.location.valid():
        return
    place, number = tags.get("place"), tags.get("addr:housenumber")
    if place in PLACES and tags.get("name"):
        out.node_ids.add(obj.id)
        out.points.append((obj.id, "place", place, _cut(tags.get("name"), "name"), None,
                           _population(tags.get("population")), wkb.create_point(obj)))
    elif number:
        out.node_ids.add(obj.id)
        out.points.append((obj.id, "housenumber", None, None, _cut(number, "housenumber"), None,
                           wkb.create_point(obj)))


def _way(obj, tags, wkb, out: _Collected, summary: Summary) -> None:
    kind = line_kind(tags)
    if kind is None or obj.id in out.way_ids:
        return
    try:
        geom = wkb.create_linestring(obj)
    except RuntimeError:
        summary.skip(f"{kind[0]} line without node locations", ident=f"way {obj.id}")
        return
    out.way_ids.add(obj.id)
    out.lines.append((obj.id, kind[0], _cut(kind[1], "class"), _cut(tags.get("name"), "name"),
                      _cut(tags.get("ref"), "ref"), geom))


def _area(obj, tags, wkb, out: _Collected, summary: Summary) -> None:
    kind = area_kind(tags)
    place, number = tags.get("place"), tags.get("addr:housenumber")
    wanted_place = place in PLACES and tags.get("name")
    if (kind is None and not wanted_place and not number) or obj.id in out.area_ids:
        return
    osm_id = obj.orig_id()
    try:
        geom = wkb.create_multipolygon(obj)
    except RuntimeError:
        summary.skip("area whose outline cannot be built", ident=f"{'way' if obj.from_way() else 'relation'} "
                                                                    f"{osm_id}")
        return
    out.area_ids.add(obj.id)
    if kind is not None:
        out.areas.append((osm_id, kind[0], _cut(kind[1], "class"), _cut(tags.get("name"), "name"), geom))
    if wanted_place:
        out.points.append((osm_id, "place", place, _cut(tags.get("name"), "name"), None,
                           _population(tags.get("population")), ("inside", geom)))
    elif number:
        out.points.append((osm_id, "housenumber", None, None, _cut(number, "housenumber"), None, ("inside", geom)))


def _geoms(wkbs: list, srid: int) -> np.ndarray:
    """WKB (hex, EPSG:4326) → shapely geometries in the tenant's CRS; ("inside", wkb) → a point inside the area."""
    inside = np.array([isinstance(w, tuple) for w in wkbs], dtype=bool)
    raw = [w[1] if isinstance(w, tuple) else w for w in wkbs]
    geoms = shapely.from_wkb(raw, on_invalid="ignore") if raw else np.zeros(0, dtype=object)
    if inside.any():
        geoms[inside] = shapely.point_on_surface(shapely.make_valid(geoms[inside]))
    t = transformer("EPSG:4326", srid)

    def _apply(coords: np.ndarray) -> np.ndarray:
        x, y = t.transform(coords[:, 0], coords[:, 1], errcheck=False)
        return np.column_stack([x, y])

    return shapely.transform(geoms, _apply) if len(geoms) else geoms


def _copy(session: Session, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> int:
    conn = psycopg_connection(session)
    n = 0
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN", writer=QueuedLibpqWriter(cur)) as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
    return n


def _ewkb(geoms: np.ndarray, srid: int) -> list[str]:
    return list(shapely.to_wkb(shapely.set_srid(geoms, srid), hex=True, include_srid=True))


def _load_areas(session: Session, tenant_key: str, srid: int, rows: list[tuple], summary: Summary) -> Counter:
    geoms = _geoms([r[-1] for r in rows], srid)
    valid = shapely.is_valid(geoms)
    if not valid.all():
        geoms[~valid] = shapely.make_valid(geoms[~valid])
    # keep the polygonal part (make_valid may return a collection with lines), as a MultiPolygon
    polys = np.array([_multipolygon(g) for g in geoms], dtype=object)
    keep = np.array([p is not None for p in polys], dtype=bool)
    for i in np.flatnonzero(~keep):
        summary.skip("area without a polygon after repair", ident=f"osm {rows[i][0]}")
    rows = [r for r, k in zip(rows, keep) if k]
    polys = polys[keep]
    areas = shapely.area(polys) if len(polys) else np.zeros(0)
    wkb = _ewkb(polys, srid)
    counts: Counter = Counter()
    for r in rows:
        counts[f"{r[1]}:{r[2]}"] += 1
    _copy(session, "basemap_areas", ("tenant_key", "osm_id", "kind", "class", "name", "area_m2", "geom"),
          ((tenant_key, r[0], r[1], r[2], r[3], float(a), g) for r, a, g in zip(rows, areas, wkb)))
    return counts


def _multipolygon(g):
    if g is None or g.is_empty:
        return None
    if g.geom_type == "MultiPolygon":
        return g
    if g.geom_type == "Polygon":
        return shapely.MultiPolygon([g])
    parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
    polys = [q for p in parts for q in (p.geoms if p.geom_type == "MultiPolygon" else [p])]
    return shapely.MultiPolygon(polys) if polys else None


def _load_lines(session: Session, tenant_key: str, srid: int, rows: list[tuple]) -> int:
    geoms = _geoms([r[-1] for r in rows], srid)
    lengths = shapely.length(geoms) if len(geoms) else np.zeros(0)
    wkb = _ewkb(geoms, srid)
    return _copy(session, "basemap_lines", ("tenant_key", "osm_id", "kind", "class", "name", "ref", "length_m",
                                            "geom"),
                 ((tenant_key, r[0], r[1], r[2], r[3], r[4], float(length), g)
                  for r, length, g in zip(rows, lengths, wkb) if length > 0))


def _load_points(session: Session, tenant_key: str, srid: int, rows: list[tuple]) -> int:
    geoms = _geoms([r[-1] for r in rows], srid)
    good = ~shapely.is_empty(geoms) if len(geoms) else np.zeros(0, dtype=bool)
    wkb = _ewkb(geoms, srid)
    return _copy(session, "basemap_points", ("tenant_key", "osm_id", "kind", "class", "name", "housenumber",
                                             "population", "geom"),
                 ((tenant_key, *r[:6], g) for r, ok, g in zip(rows, good, wkb) if ok))


_ROAD_LABELS = text("""
INSERT INTO basemap_lines (tenant_key, kind, class, name, ref, length_m, geom)
SELECT :t, 'road_label', road_class, name, ref,
       ST_Length(piece), piece
FROM (
    SELECT road_class, name, ref,
           CASE WHEN k.n = 1 THEN m.g ELSE ST_LineSubstring(m.g, (i - 1)::float8 / k.n, i::float8 / k.n) END AS piece
    FROM (
        SELECT road_class, name, ref, (ST_Dump(ST_LineMerge(ST_Collect(geom)))).geom AS g
        FROM road_segments
        WHERE tenant_key = :t AND (name IS NOT NULL OR ref IS NOT NULL) AND NOT is_path
        GROUP BY road_class, name, ref
    ) m
    CROSS JOIN LATERAL (SELECT greatest(1, ceil(ST_Length(m.g) / :piece))::int AS n) k
    CROSS JOIN LATERAL generate_series(1, k.n) AS i
) x
WHERE ST_Length(piece) > 0
""")


def import_basemap(session: Session, tenant_key: str, paths: Iterable[Path | str], *,
                   progress_bar: bool = False) -> dict[str, Any]:
    """Replace the tenant's base map with the objects of the given OSM files plus the road labels of its road
    network. Does not commit. Every file is read before anything is deleted: a bad file leaves the base map as it
    is. Returns the summary (also recorded as LayerImport "basemap")."""
    tenant, _rules = load_tenant(session, tenant_key)
    paths = [Path(p) for p in paths]
    if not paths:
        raise bad_file("basemap", "no files given")
    summary = Summary(layer=LAYER, tenant=tenant_key)
    collected = _Collected()
    for path in paths:
        if not is_osm_file(path):
            raise bad_file(path, "the base map is read from OpenStreetMap files (.osm.pbf, .osm, .osm.gz, .osm.bz2)",
                           "import-not-osm")
        before = (len(collected.areas), len(collected.lines), len(collected.points))
        read_basemap_osm(path, collected, summary, progress_bar=progress_bar)
        if (len(collected.areas), len(collected.lines), len(collected.points)) == before:
            summary.warnings.append(f"{path.name}: no base map objects (land use, water, buildings, railways, "
                                    "places, house numbers)")
    lock_layer(session, tenant_key, LAYER)
    for table in TABLES:
        session.execute(text(f"DELETE FROM {table} WHERE tenant_key = :t"), {"t": tenant_key})
    session.flush()
    srid = tenant.srid
    area_classes = _load_areas(session, tenant_key, srid, collected.areas, summary)
    _load_lines(session, tenant_key, srid, collected.lines)
    _load_points(session, tenant_key, srid, collected.points)
    session.execute(_ROAD_LABELS, {"t": tenant_key, "piece": LABEL_PIECE_M})
    for table in TABLES:
        session.execute(text(f"ANALYZE {table}"))
    counts: dict[str, Any] = {}
    for table in TABLES:
        counts[table.removeprefix("basemap_")] = dict(session.execute(text(
            f"SELECT kind, count(*) FROM {table} WHERE tenant_key = :t GROUP BY kind ORDER BY kind"),
            {"t": tenant_key}).all())
    if not counts["lines"].get("road_label"):
        summary.warnings.append("no road labels: the tenant has no named or numbered roads yet (import the roads "
                                "first, then the base map)")
    landuse = Counter({k.split(":", 1)[1]: v for k, v in area_classes.items() if k.startswith("landuse:")})
    counts["landuse_classes"] = dict(landuse.most_common(8))
    summary.counts = counts
    summary.files = [file_info(p) for p in paths]
    result = summary.finish()
    record_import(session, tenant_key, LAYER, result)
    session.flush()
    return result
