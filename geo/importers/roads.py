"""Import of the road network: OpenStreetMap ways with a ``highway`` tag → road segments of a tenant.

Sources: ``.osm.pbf``, ``.osm``, ``.osm.gz``/``.osm.bz2`` (read with pyosmium, node locations resolved), or any GIS
file GDAL reads (GeoJSON, GeoPackage, ...) with line geometries and the OSM tags as properties (``osm_id``,
``highway``, ``ref``, ``name``, ``access``). Several files form one layer; a way present in several files (by OSM
id) is imported once. Road files of a road database (ATKIS Basis-DLM, a state's road information system), which
carry no OSM tags, are read through a column mapping (geo/importers/road_mapping.py): its class column decides the
class (``class_source`` "attribute"), or else the ref by the rules as below; they have no highway, access or path
tags (never private, never a path, no link propagation).

Per way (the rules are the tenant's, see geo/rules.py):
- skipped with reason: a ``highway`` value in ``excluded_highways`` (proposed, construction, platform, ...), fewer
  than two node locations, zero length;
- ``road_class`` from the first token of each ``ref`` ("B 43;B 44", "L3262", "St 2183", "KU 18": the leading
  letters are the prefix, digits follow): prefix → class by ``road_classes`` (exact match first, then
  case-insensitive); with several refs the highest class in the order autobahn > bund > land > kreis > gemeinde
  wins (``class_source`` "ref", ``class_ref`` that ref). Without an applicable ref, ``highway_classes`` by the
  highway value (``class_source`` "highway"), otherwise "gemeinde" (``class_source`` "default");
- link roads (``*_link``) without an applicable ref take the class and ``class_ref`` of the highest-class road they
  join at one of their end points (within 0.5 m), propagated through chains of links (``class_source`` "link").
  This is done set-based after loading: one spatial query for the joins, the chains followed in memory, one
  UPDATE (see propagate_link_classes);
- ``is_private``: ``access`` in the rules' ``private_access``; ``is_path``: footway, cycleway, path, steps,
  bridleway.
Ways are transformed to the tenant's metric CRS and cut into pieces of at most 200 m (every original vertex is
kept, the cut points are added), so that a spatial index lookup stays selective; each piece is one row with the
way's OSM id. Loading uses COPY; everything per coordinate is vectorised with numpy/shapely/pyproj.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import search
from geo.importers.common import (
    Summary,
    bad_file,
    file_info,
    load_tenant,
    lock_layer,
    progress,
    psycopg_connection,
    record_import,
    transform_xy,
)
from geo.importers.road_mapping import RoadMapping, read_mapped_ways
from geo.importers.ways import Way, WayArrays, read_road_files
from geo.models import PATH_HIGHWAYS
from geo.rules import TenantRules

LAYER = "roads"
MAX_PIECE_M = 200.0
LINK_TOLERANCE_M = 0.5
CLASS_RANK = {"autobahn": 5, "bund": 4, "land": 3, "kreis": 2, "gemeinde": 1}
_REF = re.compile(r"^\s*([^\W\d_]+)\s*\.?\s*(\d)")
_COLUMNS = ("tenant_key", "osm_id", "ref", "name", "highway", "access", "road_class", "class_source", "class_ref",
            "is_private", "is_path", "geom")
_LIMITS = {"ref": 100, "name": 300, "highway": 50, "access": 50, "class_ref": 100}


# --- classification -------------------------------------------------------------------------------------------

def ref_prefix(ref: str) -> str | None:
    """'B 43' → 'B', 'L3262' → 'L', 'St 2183' → 'St', 'KU 18' → 'KU'; None without leading letters + digits."""
    m = _REF.match(ref)
    return m.group(1) if m else None


class Classifier:
    """Road class of a way from its ``ref`` and ``highway`` under a tenant's rules (memoised per tag pair)."""

    def __init__(self, rules: TenantRules) -> None:
        self.exact = dict(rules.road_classes)
        self.folded: dict[str, str] = {}
        for prefix, cls in rules.road_classes.items():
            self.folded.setdefault(prefix.casefold(), cls)
        self.highway_classes = dict(rules.highway_classes)
        self._cache: dict[tuple[str | None, str | None], tuple[str, str, str | None]] = {}

    def prefix_class(self, prefix: str) -> str | None:
        """The class of a road-number prefix ("B", "St"): exact first, then case-insensitive."""
        return self.exact.get(prefix) or self.folded.get(prefix.casefold())

    def ref_class(self, ref: str | None) -> tuple[str, str] | None:
        best: tuple[str, str] | None = None
        if not ref:
            return None
        for token in re.split(r"[;,]", ref):
            token = token.strip()
            prefix = ref_prefix(token) if token else None
            if prefix is None:
                continue
            cls = self.prefix_class(prefix)
            if cls and (best is None or CLASS_RANK[cls] > CLASS_RANK[best[0]]):
                best = (cls, token)
        return best

    def __call__(self, highway: str | None, ref: str | None) -> tuple[str, str, str | None]:
        key = (highway, ref)
        hit = self._cache.get(key)
        if hit is None:
            by_ref = self.ref_class(ref)
            if by_ref is not None:
                hit = (by_ref[0], "ref", by_ref[1])
            elif highway in self.highway_classes:
                hit = (self.highway_classes[highway], "highway", None)
            else:
                hit = ("gemeinde", "default", None)
            self._cache[key] = hit
        return hit


# --- geometry -------------------------------------------------------------------------------------------------

def split_ways(coords: np.ndarray, offsets: np.ndarray, max_len: float = MAX_PIECE_M
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut every way longer than ``max_len`` into equal pieces of at most ``max_len`` (metric coordinates).

    Keeps every original vertex; each cut point is added as the end of one piece and the start of the next.
    Returns (piece coordinates, piece index per coordinate (ascending), way index per piece, length per way).
    """
    n = len(offsets) - 1
    counts = np.diff(offsets)
    way_of_vertex = np.repeat(np.arange(n, dtype=np.int64), counts)
    d = np.diff(coords, axis=0)
    elen = np.hypot(d[:, 0], d[:, 1]) if len(d) else np.zeros(0)
    elen = np.where(way_of_vertex[1:] == way_of_vertex[:-1], elen, 0.0)  # no edges between ways
    cum = np.concatenate([[0.0], np.cumsum(elen)])
    start = cum[offsets[:-1]]
    way_len = cum[offsets[1:] - 1] - start
    npieces = np.maximum(1, np.ceil(way_len / max_len - 1e-9)).astype(np.int64)
    ncuts = npieces - 1
    total = int(ncuts.sum())
    if total == 0:
        return coords, way_of_vertex, np.arange(n, dtype=np.int64), way_len
    cut_way = np.repeat(np.arange(n, dtype=np.int64), ncuts)
    c = np.arange(total, dtype=np.int64)
    k = c - np.repeat(np.cumsum(ncuts) - ncuts, ncuts) + 1          # 1..ncuts within its way
    pos = start[cut_way] + k * (way_len[cut_way] / npieces[cut_way])
    edge = np.searchsorted(cum, pos, side="right") - 1
    edge = np.clip(edge, offsets[cut_way], offsets[cut_way + 1] - 2)
    seg = elen[edge]
    t = np.clip(np.divide(pos - cum[edge], seg, out=np.zeros_like(pos), where=seg > 0), 0.0, 1.0)
    cut_xy = coords[edge] + t[:, None] * d[edge]
    # Output layout without sorting: vertex j goes to j + 2·(cuts before j); cut c (on edge e) is written twice,
    # at e + 1 + 2c (end of its piece) and e + 2 + 2c (start of the next).
    before = np.searchsorted(edge, np.arange(len(coords), dtype=np.int64), side="left")
    out = np.empty((len(coords) + 2 * total, 2))
    piece = np.empty(len(coords) + 2 * total, dtype=np.int64)
    vpos = np.arange(len(coords), dtype=np.int64) + 2 * before
    out[vpos] = coords
    piece[vpos] = way_of_vertex + before
    end_pos = edge + 1 + 2 * c
    out[end_pos] = cut_xy
    out[end_pos + 1] = cut_xy
    piece[end_pos] = cut_way + c
    piece[end_pos + 1] = cut_way + c + 1
    return out, piece, np.repeat(np.arange(n, dtype=np.int64), npieces), way_len


# --- loading --------------------------------------------------------------------------------------------------

def load_road_segments(session: Session, tenant_key: str, ways: WayArrays | Iterable[Way | tuple], *,
                       summary: Summary | None = None, progress_bar: bool = False, propagate_links: bool = True,
                       analyze: bool = True) -> dict[str, int]:
    """Classify, cut, transform and COPY ways into the tenant's road segments (appends; does not delete or commit).

    ``ways``: a WayArrays (fast path: columns and one coordinate array, in ``ways.crs``) or an iterable of
    ``Way(osm_id, tags, coords)`` in EPSG:4326. When loading in several batches, pass ``propagate_links=False,
    analyze=False`` and call :func:`finish_road_segments` once at the end.

    The ways are prepared in chunks while COPY streams the previous ones (a writer thread sends the data), so that
    the Python/numpy work on one core overlaps with PostgreSQL's work (parsing, index maintenance) on the other.
    """
    tenant, rules = load_tenant(session, tenant_key)
    if not isinstance(ways, WayArrays):
        ways = WayArrays.from_ways(ways)
    summary = summary or Summary(layer=LAYER, tenant=tenant_key)
    prepare = _Preparer(tenant_key, tenant.srid, rules, summary)
    session.flush()
    conn = psycopg_connection(session)
    bar = progress(total=len(ways), desc="road ways", unit=" ways", enabled=progress_bar)
    n_ways = n_segments = 0
    with conn.cursor() as cur:
        with cur.copy(f"COPY road_segments ({', '.join(_COLUMNS)}) FROM STDIN",
                      writer=QueuedLibpqWriter(cur)) as copy:
            write = copy.write_row
            for start in range(0, len(ways), CHUNK_WAYS):
                chunk = ways.slice(start, start + CHUNK_WAYS)
                attrs, piece_way, wkb = prepare(chunk)
                for w, g in zip(piece_way.tolist(), wkb):
                    write((*attrs[w], g))
                n_ways += len(attrs)
                n_segments += len(wkb)
                bar.update(len(chunk))
    bar.close()
    result = {"ways": n_ways, "segments": n_segments}
    if propagate_links or analyze:
        result.update(finish_road_segments(session, tenant_key, propagate_links=propagate_links, analyze=analyze))
    return result


CHUNK_WAYS = 50_000


class _Preparer:
    """Per chunk of ways: skip what the rules exclude, classify, transform, cut, encode as EWKB hex."""

    def __init__(self, tenant_key: str, srid: int, rules: TenantRules, summary: Summary) -> None:
        self.tenant_key, self.srid, self.summary = tenant_key, srid, summary
        self.classify = Classifier(rules)
        self.excluded = set(rules.excluded_highways)
        self.private = set(rules.private_access)
        self.paths = set(PATH_HIGHWAYS)
        self.zero_reported = 0

    def __call__(self, ways: WayArrays) -> tuple[list[tuple], np.ndarray, np.ndarray]:
        summary, n = self.summary, len(ways)
        counts = np.diff(ways.offsets)
        keep = np.zeros(n, dtype=bool)
        attrs: list[tuple] = []
        given = ways.classified
        for i in range(n):
            hw = ways.highway[i]
            if given is not None and given[i] is not None:
                # a road database's way, classified through the column mapping (no OSM tags)
                if counts[i] < 2:
                    summary.skip("fewer than 2 vertices", ident=_ident(ways, i))
                    continue
                cls, source, class_ref = given[i]
                attrs.append((self.tenant_key, None, _cut(ways.ref[i], "ref"), _cut(ways.name[i], "name"), None, None,
                              cls, source, _cut(class_ref, "class_ref"), False, False))
                keep[i] = True
                continue
            if hw is None:
                summary.skip("no highway tag", ident=_ident(ways, i))
                continue
            if hw in self.excluded:
                summary.skip(f"highway={hw} is excluded by the rules", ident=_ident(ways, i))
                continue
            if counts[i] < 2:
                summary.skip("fewer than 2 node locations", ident=_ident(ways, i))
                continue
            ref, access = ways.ref[i], ways.access[i]
            cls, source, class_ref = self.classify(hw, ref)
            attrs.append((self.tenant_key, ways.osm_id[i], _cut(ref, "ref"), _cut(ways.name[i], "name"),
                          _cut(hw, "highway"), _cut(access, "access"), cls, source, _cut(class_ref, "class_ref"),
                          access in self.private, hw in self.paths))
            keep[i] = True
        if not keep.all():
            ways = ways.take(keep)
        x, y = transform_xy(ways.coords[:, 0], ways.coords[:, 1], ways.crs, self.srid)
        coords = np.column_stack([x, y])
        finite = np.isfinite(coords).all(axis=1)
        if not finite.all():
            bad_way = np.searchsorted(ways.offsets, np.flatnonzero(~finite)[0], side="right") - 1
            raise bad_file("roads", f"{_ident(ways, int(bad_way))} has coordinates that cannot be transformed from "
                           f"{ways.crs} to EPSG:{self.srid}", "import-bad-coordinates")
        out, piece, piece_way, way_len = split_ways(coords, ways.offsets)
        lines = shapely.linestrings(out, indices=piece)
        zero = way_len <= 0
        if zero.any():
            for i in np.flatnonzero(zero):
                if self.zero_reported < 50:
                    summary.skip("zero length (all nodes at one place)", ident=_ident(ways, int(i)))
                    self.zero_reported += 1
                else:
                    summary.skip_many("zero length (all nodes at one place)", 1)
            good = ~zero[piece_way]
            lines, piece_way = lines[good], piece_way[good]
            # renumber the ways that are left, so that piece_way indexes attrs
            remap = np.cumsum(~zero) - 1
            attrs = [a for a, z in zip(attrs, zero) if not z]
            piece_way = remap[piece_way]
        wkb = shapely.to_wkb(shapely.set_srid(lines, self.srid), hex=True, include_srid=True)
        return attrs, piece_way, wkb


def finish_road_segments(session: Session, tenant_key: str, *, propagate_links: bool = True,
                         analyze: bool = True) -> dict[str, int]:
    out = {}
    if propagate_links or analyze:
        # Statistics before the link query: right after a COPY the planner knows nothing of the new rows and ANDs
        # the spatial index with the tenant index for every link piece (over a minute at 1M segments instead of
        # seconds). The link classes change a few per cent of the rows, not the statistics.
        session.execute(text("ANALYZE road_segments"))
    if propagate_links:
        out["links_classified"] = propagate_link_classes(session, tenant_key)
    return out


def _cut(value: str | None, column: str) -> str | None:
    return value[:_LIMITS[column]] if value is not None and len(value) > _LIMITS[column] else value


def _ident(ways: WayArrays, i: int) -> str:
    osm_id = ways.osm_id[i]
    label = f"way {osm_id}" if osm_id is not None else f"way #{i}"
    extra = ", ".join(x for x in (ways.highway[i], ways.ref[i], ways.name[i]) if x)
    return f"{label} ({extra})" if extra else label


_LINK_NEIGHBOURS = """
WITH cand AS (
    SELECT id, geom FROM road_segments
    WHERE tenant_key = :t AND right(highway, 5) = '_link' AND class_source <> 'ref'
)
SELECT c.id, n.id, (right(coalesce(n.highway, ''), 5) = '_link' AND n.class_source <> 'ref') AS open,
       n.road_class, n.class_ref
FROM cand c
JOIN road_segments n ON n.tenant_key = :t AND n.id <> c.id
 AND ST_DWithin(n.geom, ST_Collect(ST_StartPoint(c.geom), ST_EndPoint(c.geom)), :tol)
"""
_LINK_UPDATE = """
UPDATE road_segments s SET road_class = v.road_class, class_source = 'link', class_ref = v.class_ref
FROM unnest(CAST(:ids AS bigint[]), CAST(:classes AS text[]), CAST(:refs AS text[])) AS v(id, road_class, class_ref)
WHERE s.id = v.id AND s.tenant_key = :t
"""


def propagate_link_classes(session: Session, tenant_key: str, tolerance_m: float = LINK_TOLERANCE_M) -> int:
    """Give link roads without an applicable ref the class of the highest-class road they join (set-based).

    One spatial query finds, for every such link piece of the tenant, the segments within ``tolerance_m`` of its
    start or end point. Joined roads that are not open links (any other road, or a link classified by its own ref)
    are seeds; open links pass a class on to the link pieces whose end points touch them. Each link piece gets the
    highest class reachable through such chains, the nearest seed deciding among equal classes: the fixed point of
    "take the class of the highest-class road you join", computed in one pass instead of one UPDATE per step of
    the chain. Returns the number of link pieces classified so."""
    rows = session.execute(text(_LINK_NEIGHBOURS), {"t": tenant_key, "tol": tolerance_m}).all()
    seed: dict[int, tuple[int, str, str | None]] = {}
    takes_from: dict[int, list[int]] = {}  # open link n -> link pieces c that touch n with an end point
    for c, n, is_open, cls, class_ref in rows:
        if is_open:
            takes_from.setdefault(n, []).append(c)
            continue
        # highest class first; among equals a road with a ref, then the first ref in sort order (not load order)
        rank = CLASS_RANK.get(cls, 1)
        cand = (rank, cls, class_ref, (-rank, class_ref is None, class_ref or "", n))
        best = seed.get(c)
        if best is None or cand[3] < best[3]:
            seed[c] = cand
    assigned: dict[int, tuple[str, str | None]] = {}
    for rank in sorted({s[0] for s in seed.values()}, reverse=True):
        frontier = sorted((c for c, s in seed.items() if s[0] == rank and c not in assigned),
                          key=lambda c: (seed[c][2] is None, seed[c][2] or "", c))
        for c in frontier:
            assigned[c] = seed[c][1:3]
        while frontier:  # breadth first: the nearest seed of this rank wins
            nxt = []
            for n in frontier:
                for c in takes_from.get(n, ()):
                    if c not in assigned:
                        assigned[c] = assigned[n]
                        nxt.append(c)
            frontier = nxt
    if assigned:
        ids = list(assigned)
        session.execute(text(_LINK_UPDATE), {"t": tenant_key, "ids": ids,
                                             "classes": [assigned[i][0] for i in ids],
                                             "refs": [assigned[i][1] for i in ids]})
    return len(assigned)


# --- the import -----------------------------------------------------------------------------------------------

def import_roads(session: Session, tenant_key: str, paths: Iterable[Path | str], *,
                 mapping: RoadMapping | None = None, progress_bar: bool = False) -> dict[str, Any]:
    """Replace the tenant's road layer with the ways of the given files. Does not commit. Returns the summary.

    ``mapping``: the GIS files (not the OSM ones) are a road database's, read through this column mapping
    (geo.importers.road_mapping) instead of by their OSM tags. Every file is read and checked before the old layer
    is deleted: a bad file, an unknown column or an unmapped class value leaves the layer as it is."""
    tenant, rules = load_tenant(session, tenant_key)
    paths = [Path(p) for p in paths]
    if not paths:
        raise bad_file("roads", "no files given")
    summary = Summary(layer=LAYER, tenant=tenant_key)
    read_gis = None
    if mapping is not None:
        classifier = Classifier(rules)

        def read_gis(path: Path) -> WayArrays:
            return read_mapped_ways(path, tenant.srid, summary, mapping, classifier)

    ways = read_road_files(paths, tenant.srid, summary, progress_bar=progress_bar, read_gis=read_gis)
    ways_read = len(ways)
    if ways_read == 0:
        what = "no line features to import" if mapping is not None else "no ways with a highway tag"
        raise bad_file(", ".join(str(p) for p in paths), f"{what} in the file(s); the road layer "
                       "is left as it is", "import-nothing-to-import")
    lock_layer(session, tenant_key, LAYER)
    session.execute(text("DELETE FROM road_segments WHERE tenant_key = :t"), {"t": tenant_key})
    loaded = load_road_segments(session, tenant_key, ways, summary=summary, progress_bar=progress_bar)
    rows = session.execute(text(
        "SELECT road_class, class_source, count(*), count(*) FILTER (WHERE is_private), "
        "count(*) FILTER (WHERE is_path) FROM road_segments WHERE tenant_key = :t GROUP BY 1, 2"),
        {"t": tenant_key}).all()
    by_class: dict[str, int] = {}
    by_source: dict[str, int] = {}
    for cls, source, n, _p, _f in rows:
        by_class[cls] = by_class.get(cls, 0) + n
        by_source[source] = by_source.get(source, 0) + n
    summary.counts = {
        "ways_read": ways_read,
        "ways": loaded["ways"],
        "segments": loaded["segments"],
        "segments_by_class": {c: by_class[c] for c in CLASS_RANK if c in by_class},
        "segments_by_class_source": by_source,
        "links_classified": loaded.get("links_classified", 0),
        "private_segments": sum(r[3] for r in rows),
        "path_segments": sum(r[4] for r in rows),
    }
    if mapping is not None:
        summary.counts["mapping"] = mapping.describe()
    summary.files = [file_info(p) for p in paths]
    result = summary.finish()
    record_import(session, tenant_key, LAYER, result)
    session.flush()
    search.rebuild_places(session, tenant_key)     # streets and road numbers of the map's search
    return result
