"""Ways as parsed from the road files: OpenStreetMap via pyosmium, or GIS files (GeoJSON, GeoPackage, ...) with the
OSM tags as properties via pyogrio. Columnar (:class:`WayArrays`) so that the loader can work on whole arrays.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import osmium
import shapely

from geo.importers.common import Summary, bad_file, check_exists, progress, read_vector, to_tenant_crs, transform_xy

OSM_SUFFIXES = (".osm.pbf", ".pbf", ".osm", ".osm.gz", ".osm.bz2")


class Way(NamedTuple):
    """One parsed way: OSM id (or None), its tags, and its coordinates (x/longitude first)."""

    osm_id: int | None
    tags: Mapping[str, str]
    coords: Sequence[tuple[float, float]]


@dataclass
class WayArrays:
    """Ways as columns: tags as lists, all coordinates in one (N, 2) array; way i has the coordinates
    ``coords[offsets[i]:offsets[i + 1]]`` in ``crs``."""

    osm_id: list[int | None]
    highway: list[str | None]
    ref: list[str | None]
    name: list[str | None]
    access: list[str | None]
    coords: np.ndarray
    offsets: np.ndarray
    crs: str = "EPSG:4326"
    classified: list[tuple[str, str, str | None] | None] | None = None

    def __len__(self) -> int:
        return len(self.osm_id)

    @classmethod
    def from_ways(cls, ways: Iterable[Way | tuple], crs: str = "EPSG:4326") -> "WayArrays":
        b = WayBuilder(crs)
        for osm_id, tags, coords in ways:
            xy = np.asarray(coords, dtype=float).reshape(-1, 2)
            b.add(osm_id, tags.get("highway"), tags.get("ref"), tags.get("name"), tags.get("access"),
                  xy[:, 0], xy[:, 1])
        return b.build()

    @classmethod
    def concat(cls, parts: Sequence["WayArrays"], crs: str) -> "WayArrays":
        counts = [np.diff(p.offsets) for p in parts]
        counts_all = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
        classified = None
        if any(p.classified is not None for p in parts):
            classified = [x for p in parts for x in (p.classified if p.classified is not None else [None] * len(p))]
        return cls(
            osm_id=[x for p in parts for x in p.osm_id], highway=[x for p in parts for x in p.highway],
            ref=[x for p in parts for x in p.ref], name=[x for p in parts for x in p.name],
            access=[x for p in parts for x in p.access],
            coords=np.concatenate([p.coords for p in parts]) if parts else np.zeros((0, 2)),
            offsets=np.concatenate([[0], np.cumsum(counts_all)]).astype(np.int64), crs=crs, classified=classified)

    def slice(self, start: int, stop: int) -> "WayArrays":
        """Ways start..stop-1 (coordinates shared, not copied)."""
        stop = min(stop, len(self))
        a, b = int(self.offsets[start]), int(self.offsets[stop])
        return WayArrays(osm_id=self.osm_id[start:stop], highway=self.highway[start:stop], ref=self.ref[start:stop],
                         name=self.name[start:stop], access=self.access[start:stop], coords=self.coords[a:b],
                         offsets=self.offsets[start:stop + 1] - a, crs=self.crs,
                         classified=None if self.classified is None else self.classified[start:stop])

    def take(self, keep: np.ndarray) -> "WayArrays":
        keep = np.asarray(keep, dtype=bool)
        counts = np.diff(self.offsets)
        idx = np.flatnonzero(keep)
        return WayArrays(
            osm_id=[self.osm_id[i] for i in idx], highway=[self.highway[i] for i in idx],
            ref=[self.ref[i] for i in idx], name=[self.name[i] for i in idx], access=[self.access[i] for i in idx],
            coords=self.coords[np.repeat(keep, counts)],
            offsets=np.concatenate([[0], np.cumsum(counts[keep])]).astype(np.int64), crs=self.crs,
            classified=None if self.classified is None else [self.classified[i] for i in idx])


@dataclass
class WayBuilder:
    crs: str = "EPSG:4326"
    osm_id: list = field(default_factory=list)
    highway: list = field(default_factory=list)
    ref: list = field(default_factory=list)
    name: list = field(default_factory=list)
    access: list = field(default_factory=list)
    xs: list = field(default_factory=list)
    ys: list = field(default_factory=list)
    counts: list = field(default_factory=list)

    def add(self, osm_id, highway, ref, name, access, xs, ys) -> None:
        self.osm_id.append(osm_id)
        self.highway.append(highway)
        self.ref.append(ref)
        self.name.append(name)
        self.access.append(access)
        self.xs.extend(xs)
        self.ys.extend(ys)
        self.counts.append(len(xs))

    def build(self) -> WayArrays:
        coords = np.column_stack([np.asarray(self.xs, dtype=float), np.asarray(self.ys, dtype=float)]) \
            if self.xs else np.zeros((0, 2))
        offsets = np.concatenate([[0], np.cumsum(np.asarray(self.counts, dtype=np.int64))]).astype(np.int64)
        return WayArrays(self.osm_id, self.highway, self.ref, self.name, self.access, coords, offsets, self.crs)


# --- reading --------------------------------------------------------------------------------------------------

def is_osm_file(path: Path) -> bool:
    return path.name.lower().endswith(OSM_SUFFIXES)


def read_osm(path: Path, *, progress_bar: bool = False) -> WayArrays:
    """All ways with a ``highway`` tag of an OSM file, with their node locations (pyosmium)."""
    check_exists(path)
    b = WayBuilder("EPSG:4326")
    bar = progress(desc=path.name, unit=" ways", enabled=progress_bar)
    try:
        processor = (osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations()
                     .with_filter(osmium.filter.KeyFilter("highway")))
        for obj in processor:
            if not obj.is_way():
                continue
            xs, ys = [], []
            for node in obj.nodes:
                loc = node.location
                if loc.valid():
                    xs.append(loc.lon)
                    ys.append(loc.lat)
            tags = obj.tags
            b.add(obj.id, tags.get("highway"), tags.get("ref"), tags.get("name"), tags.get("access"), xs, ys)
            if len(b.counts) % 2000 == 0:
                bar.update(2000)
    except Exception as exc:  # osmium reports unreadable input as RuntimeError/ValueError
        raise bad_file(path, f"not an OpenStreetMap file that can be read: {str(exc).strip() or type(exc).__name__}"
                       ) from None
    finally:
        bar.close()
    return b.build()


def _osm_id(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float):
        return None if np.isnan(value) else int(value)
    m = re.search(r"(\d+)\s*$", str(value))
    return int(m.group(1)) if m else None


def _str(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    s = str(value).strip()
    return s or None


def read_gis_ways(path: Path, srid: int, summary: Summary) -> WayArrays:
    """Line features of a GeoJSON/GeoPackage/... with OSM tags as properties, transformed to ``srid``."""
    layer = read_vector(path, required=(("highway",),))
    geoms = to_tenant_crs(layer, srid)
    types = shapely.get_type_id(geoms)
    highway = layer.column("highway")
    keep = np.zeros(len(layer), dtype=bool)
    for i in range(len(layer)):
        if types[i] not in (1, 5):
            what = "no geometry" if types[i] == -1 else shapely.get_type_id(geoms[i])
            summary.skip(f"not a line ({_type_name(what)})", file=path, feature=i)
        elif _str(highway[i]) is None:
            summary.skip("no highway tag", file=path, feature=i)
        else:
            keep[i] = True
    sel = np.flatnonzero(keep)
    parts, part_of = shapely.get_parts(geoms[sel], return_index=True)
    feature = sel[part_of]
    coords, coord_of = shapely.get_coordinates(parts, return_index=True)
    counts = np.bincount(coord_of, minlength=len(parts)) if len(parts) else np.zeros(0, dtype=np.int64)
    cols = {name: layer.column(*alts) for name, alts in (
        ("osm_id", ("osm_id", "osm_way_id", "@id", "id")), ("ref", ("ref",)), ("name", ("name",)),
        ("access", ("access",)))}

    def values(col, conv):
        return [conv(col[i]) for i in feature] if col is not None else [None] * len(feature)

    return WayArrays(osm_id=values(cols["osm_id"], _osm_id), highway=values(highway, _str),
                     ref=values(cols["ref"], _str), name=values(cols["name"], _str),
                     access=values(cols["access"], _str), coords=coords,
                     offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), crs=f"EPSG:{srid}")


def _type_name(type_id: Any) -> str:
    return {0: "Point", 3: "Polygon", 4: "MultiPoint", 6: "MultiPolygon", 7: "GeometryCollection"}.get(
        type_id, str(type_id))


def read_road_files(paths: Sequence[Path], srid: int, summary: Summary, *, progress_bar: bool = False,
                    read_gis: Callable[[Path], WayArrays] | None = None) -> WayArrays:
    """The ways of OSM files and GIS files together (in ``srid``), a way in several files (by OSM id) once.
    ``read_gis``: how a GIS file is read (default: lines with OSM tags as properties, ``read_gis_ways``; a road
    database's file through a column mapping: geo.importers.road_mapping)."""
    parts = []
    for path in paths:
        if is_osm_file(path):
            part = read_osm(path, progress_bar=progress_bar)
            x, y = transform_xy(part.coords[:, 0], part.coords[:, 1], part.crs, srid)
            part.coords, part.crs = np.column_stack([x, y]), f"EPSG:{srid}"
        elif read_gis is not None:
            part = read_gis(path)
        else:
            part = read_gis_ways(path, srid, summary)
        if len(part) == 0:
            summary.warnings.append(f"{path.name}: no ways" + (" with a highway tag" if read_gis is None else ""))
        parts.append(part)
    ways = WayArrays.concat(parts, crs=f"EPSG:{srid}")
    seen: set[int] = set()
    keep = np.ones(len(ways), dtype=bool)
    for i, osm_id in enumerate(ways.osm_id):
        if osm_id is None:
            continue
        if osm_id in seen:
            keep[i] = False
        else:
            seen.add(osm_id)
    duplicates = int((~keep).sum())
    if duplicates:
        summary.skip_many("duplicate: the same way is in an earlier file", duplicates)
        ways = ways.take(keep)
    return ways
