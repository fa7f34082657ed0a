"""Parsing and validating a route given as GeoJSON.

Every problem is a 422 problem+json that names what is wrong and where: the feature index (position in the
FeatureCollection, 0 for a bare geometry or Feature), the coordinate, and where it helps a suggestion.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import shapely
from shapely.geometry import shape
from shapely.validation import explain_validity

from breitband.errors import UnprocessableEntity
from geo.crs import area_of_use, is_geographic, parse_crs, transformer

LINE_TYPES = {"LineString", "MultiLineString"}
POINT_TYPES = {"Point", "MultiPoint"}
AREA_TYPES = {"Polygon", "MultiPolygon"}
SUPPORTED = LINE_TYPES | POINT_TYPES | AREA_TYPES
# how far outside a CRS's declared area of use coordinates may still be (degrees); UTM zones are used beyond them
AREA_OF_USE_MARGIN_DEG = 3.0


class GeometryProblem(UnprocessableEntity):
    title = "Invalid route geometry"


def problem(type_: str, detail: str, **where: Any) -> GeometryProblem:
    return GeometryProblem(detail, type=type_, **{k: v for k, v in where.items() if v is not None})


@dataclass
class RouteFeature:
    index: int                      # position in the input (feature index)
    kind: str                       # line | point | area
    geom_in: Any                    # shapely geometry in the request CRS
    geom: Any = None                # shapely geometry in the tenant's metric CRS
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class Route:
    crs: int                        # EPSG of the request
    features: list[RouteFeature]

    @property
    def lines(self) -> list[RouteFeature]:
        return [f for f in self.features if f.kind == "line"]


def load_json(data: dict | str | bytes) -> Any:
    """orjson first (several times faster on large bodies); what it refuses (NaN literals, which the coordinate
    check then names; nesting beyond its limit) goes to the standard parser for its explanation."""
    if isinstance(data, (str, bytes)):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise problem("not-geojson", f"The body is not JSON: {str(exc)[:200]}") from None
    return data


def _features(doc: Any) -> tuple[list[tuple[int, dict, dict]], str | None]:
    """→ [(index, geometry, properties)], legacy GeoJSON 'crs' name if any."""
    if not isinstance(doc, dict) or "type" not in doc:
        raise problem("not-geojson", "Not GeoJSON: expected an object with a 'type' (a geometry, Feature or "
                      "FeatureCollection)")
    legacy_crs = None
    crs_member = doc.get("crs")
    if isinstance(crs_member, dict):
        legacy_crs = (crs_member.get("properties") or {}).get("name")
    t = doc["type"]
    if t == "FeatureCollection":
        feats = doc.get("features")
        if not isinstance(feats, list):
            raise problem("not-geojson", "A FeatureCollection needs a 'features' array")
        if not feats:
            raise problem("empty-geometry", "The FeatureCollection has no features")
        out = []
        for i, f in enumerate(feats):
            if not isinstance(f, dict) or f.get("type") != "Feature":
                raise problem("not-geojson", f"Feature {i} is not a GeoJSON Feature", feature_index=i)
            if not isinstance(f.get("geometry"), dict):
                raise problem("empty-geometry", f"Feature {i} has no geometry", feature_index=i)
            out.append((i, f["geometry"], f.get("properties") or {}))
        return out, legacy_crs
    if t == "Feature":
        if not isinstance(doc.get("geometry"), dict):
            raise problem("empty-geometry", "The Feature has no geometry", feature_index=0)
        return [(0, doc["geometry"], doc.get("properties") or {})], legacy_crs
    if t == "GeometryCollection":
        geoms = doc.get("geometries") or []
        if not geoms:
            raise problem("empty-geometry", "The GeometryCollection is empty")
        return [(i, g, {}) for i, g in enumerate(geoms)], legacy_crs
    if t in SUPPORTED or t in {"Polygon", "MultiPolygon"}:
        return [(0, doc, {})], legacy_crs
    raise problem("unsupported-geometry", f"Unsupported GeoJSON type {t!r}: send LineString or MultiLineString "
                  "(trench sections), Point (pits, cabinets) or Polygon (construction areas)", feature_index=0)


def _check_coordinates(coords: Any, depth: int, index: int, gtype: str) -> None:
    """Walk a coordinate array of the expected nesting depth; every position 2 or 3 finite numbers."""
    if depth == 0:
        if (not isinstance(coords, (list, tuple)) or len(coords) < 2
                or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in coords)):
            raise problem("not-geojson", f"Feature {index}: {gtype} has a position that is not [x, y] numbers: "
                          f"{json.dumps(coords)[:80]}", feature_index=index)
        if not all(math.isfinite(c) for c in coords[:3]):
            raise problem("non-finite-coordinate", f"Feature {index}: coordinate {list(coords)} is not finite "
                          "(NaN or infinite)", feature_index=index, coordinate=[str(c) for c in coords])
        return
    if not isinstance(coords, (list, tuple)):
        raise problem("not-geojson", f"Feature {index}: {gtype} coordinates are not nested arrays",
                      feature_index=index)
    for c in coords:
        _check_coordinates(c, depth - 1, index, gtype)


_DEPTH = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2, "MultiPolygon": 3}


def _to_shape(index: int, geometry: dict) -> Any:
    gtype = geometry.get("type")
    if gtype not in SUPPORTED:
        raise problem("unsupported-geometry", f"Feature {index}: unsupported geometry type {gtype!r}; send "
                      "LineString, MultiLineString, Point, MultiPoint, Polygon or MultiPolygon",
                      feature_index=index, geometry_type=gtype)
    coords = geometry.get("coordinates")
    if coords is None or (isinstance(coords, list) and not coords):
        raise problem("empty-geometry", f"Feature {index}: the {gtype} is empty", feature_index=index)
    _check_coordinates(coords, _DEPTH[gtype], index, gtype)
    try:
        geom = shape(geometry)
    except (ValueError, TypeError, IndexError, AttributeError, shapely.errors.GEOSException) as exc:
        raise problem("invalid-geometry", f"Feature {index}: the {gtype} cannot be built: {exc}",
                      feature_index=index) from None
    if geom.is_empty:
        raise problem("empty-geometry", f"Feature {index}: the {gtype} is empty", feature_index=index)
    return geom


def _first_coordinate(geom) -> list[float]:
    return [round(v, 7) for v in shapely.get_coordinates(geom)[0].tolist()]


def _check_shape(f: RouteFeature) -> None:
    geom, i = f.geom_in, f.index
    if f.kind == "line":
        for part_no, part in enumerate(getattr(geom, "geoms", [geom])):
            if part.length == 0:
                raise problem("zero-length", f"Feature {i}: line {part_no} has zero length (all its points are "
                              "the same)", feature_index=i, part=part_no, coordinate=_first_coordinate(part))
    elif f.kind == "area":
        if not geom.is_valid:
            reason = explain_validity(geom)
            loc = None
            if "[" in reason:
                try:
                    loc = [float(v) for v in reason[reason.index("[") + 1:reason.index("]")].split()]
                except ValueError:
                    loc = None
            raise problem("invalid-geometry", f"Feature {i}: invalid polygon: {reason}", feature_index=i,
                          reason=reason.split("[")[0], location=loc)
        if geom.area == 0:
            raise problem("zero-length", f"Feature {i}: the polygon has zero area", feature_index=i)


def _check_area_of_use(route: Route) -> None:
    """Every coordinate within the CRS's area of use (plus a margin): one vectorised pass over all features."""
    epsg = route.crs
    bounds = area_of_use(epsg)
    geoms = np.array([f.geom_in for f in route.features], dtype=object)
    xy, owner = shapely.get_coordinates(geoms, return_index=True)
    if epsg == 4326:
        lon, lat = xy[:, 0], xy[:, 1]
    else:
        lon, lat = transformer(epsg, 4326).transform(xy[:, 0], xy[:, 1])
    bad = ~(np.isfinite(lon) & np.isfinite(lat)) | (np.abs(lat) > 90) | (np.abs(lon) > 180)
    if bounds is not None and not bad.any():
        w, s, e, n = bounds
        m = AREA_OF_USE_MARGIN_DEG
        bad = (lon < w - m) | (lon > e + m) | (lat < s - m) | (lat > n + m)
    if bad.any():
        k = int(np.argmax(bad))
        f = route.features[int(owner[k])]
        coord = [round(float(v), 7) for v in xy[k]]
        hint = ""
        if epsg == 4326 and abs(xy[k][0]) <= 90 < abs(xy[k][1]) <= 180:
            hint = " The values look like latitude/longitude: GeoJSON wants longitude (x) first."
        elif epsg == 4326 and (abs(xy[k][0]) > 180 or abs(xy[k][1]) > 90):
            hint = " The values look like projected metres: give the CRS (e.g. crs=EPSG:25832)."
        where = f"within {bounds}" if bounds else "valid"
        raise problem("outside-crs-area", f"Feature {f.index}: coordinate {coord} is outside the area of use "
                      f"of EPSG:{epsg} ({where} as west, south, east, north in degrees).{hint}",
                      feature_index=f.index, coordinate=coord, crs=f"EPSG:{epsg}")


def _plain_positions(positions: list[Any]) -> np.ndarray | None:
    """[[x, y], ...] of plain finite numbers (2 or 3 each, all alike) as an array; None for anything else, which
    then takes the per-feature path that explains what is wrong."""
    if not positions or any(type(c) not in (int, float) for p in positions if type(p) is list for c in p):
        return None
    try:
        arr = np.array(positions, dtype=float)
    except (ValueError, TypeError):
        return None
    if arr.ndim != 2 or arr.shape[1] not in (2, 3) or not np.isfinite(arr).all():
        return None
    return arr


def _shapes(items: list[tuple[int, Any, Any]]) -> list[Any]:
    """The geometries of all features. Points and LineStrings, the bulk of large routes, are built vectorised
    (Shapely 2 from one coordinate array; a few µs per feature instead of ~60 for ``shape()`` per feature); the
    rest, and any feature whose coordinates are not plain, one by one with ``_to_shape``'s explanations."""
    out: list[Any] = [None] * len(items)
    points = [k for k, (_, g, _) in enumerate(items) if g.get("type") == "Point"]
    if points:
        arr = _plain_positions([items[k][1].get("coordinates") for k in points])
        if arr is not None:
            for k, geom in zip(points, shapely.points(arr).tolist()):
                out[k] = geom
    lines = [k for k, (_, g, _) in enumerate(items) if g.get("type") == "LineString"
             and isinstance(g.get("coordinates"), list) and len(g["coordinates"]) >= 2]
    if lines:
        coords = [items[k][1]["coordinates"] for k in lines]
        arr = _plain_positions([p for c in coords for p in c])
        if arr is not None:
            sizes = np.fromiter((len(c) for c in coords), dtype=np.int64, count=len(coords))
            for k, geom in zip(lines, shapely.linestrings(arr, indices=np.repeat(np.arange(len(lines)), sizes))
                               .tolist()):
                out[k] = geom
    for k, geom in enumerate(out):
        if geom is None:
            out[k] = _to_shape(items[k][0], items[k][1])
    return out


def _check_shapes(features: list[RouteFeature]) -> None:
    """``_check_shape`` for every feature; single LineStrings (most lines) vectorised, points need nothing."""
    simple = [f for f in features if f.kind == "line" and f.geom_in.geom_type == "LineString"]
    if simple:
        zero = shapely.length(np.array([f.geom_in for f in simple], dtype=object)) == 0
        if zero.any():
            _check_shape(simple[int(np.argmax(zero))])
    for f in features:
        if f.kind == "area" or (f.kind == "line" and f.geom_in.geom_type != "LineString"):
            _check_shape(f)


def vertex_count(geometry: Any) -> int:
    """The positions of a GeoJSON geometry, counted from its nesting without building it or looking at a number
    (the sum of the lengths of the innermost arrays: a few list lookups per part, not per vertex). Malformed
    parts count 0: the parser reports them with their place."""
    if not isinstance(geometry, dict):
        return 0
    depth = _DEPTH.get(geometry.get("type"))
    coords = geometry.get("coordinates")
    if depth is None or not isinstance(coords, list):
        return 0
    if depth == 0:
        return 1
    level = [coords]
    for _ in range(depth - 1):
        level = [c for outer in level for c in outer if isinstance(c, list)]
    return sum(len(c) for c in level)


def check_size(items: list[tuple[int, Any, Any]], limits: Any, where: str = "Feature") -> None:
    """The count limits of a route (``geo.rules.Limits``: ``max_features``, ``max_vertices``), checked on the
    parsed JSON before any geometry is built, so a request over them costs no more than reading it. ``items``:
    [(feature index, GeoJSON geometry, properties)]. → 422 naming the limit, the actual value and the feature
    with the most vertices."""
    n = len(items)
    if n > limits.max_features:
        raise problem("too-many-features", f"The route has {n} features; the limit is {limits.max_features}. "
                      "Split it into several applications or requests.", limit="max_features",
                      features=n, max_features=limits.max_features)
    counts = [vertex_count(g) for _, g, _ in items]
    total = sum(counts)
    if total > limits.max_vertices:
        k = max(range(n), key=counts.__getitem__)
        raise problem("too-many-vertices", f"The route has {total} vertices; the limit is {limits.max_vertices} "
                      f"for all features together ({where} {items[k][0]} alone has {counts[k]}). Split it into "
                      "several applications or simplify it.", limit="max_vertices", vertices=total,
                      max_vertices=limits.max_vertices, feature_index=items[k][0], feature_vertices=counts[k])


def parse_route(data: dict | str | bytes, crs: str | int | None = None, limits: Any = None) -> Route:
    """Parse and validate a route. With ``limits`` (``geo.rules.Limits``) the number of features and vertices is
    checked first, before any geometry is built; the length needs the metric CRS (``check_length``)."""
    doc = load_json(data)
    items, legacy = _features(doc)
    if limits is not None:
        check_size(items, limits)
    epsg = parse_crs(crs if crs not in (None, "") else legacy)
    features = []
    for (index, _, props), geom in zip(items, _shapes(items)):
        gtype = geom.geom_type
        kind = "line" if gtype in LINE_TYPES else "point" if gtype in POINT_TYPES else "area"
        features.append(RouteFeature(index=index, kind=kind, geom_in=geom,
                                     properties=props if isinstance(props, dict) else {}))
    _check_shapes(features)
    route = Route(crs=epsg, features=features)
    _check_area_of_use(route)
    return route


def check_length(route: Route, limits: Any) -> None:
    """The length limit (``geo.rules.Limits.max_length_km``) of a route already in the tenant's metric CRS: all
    lines together, naming the longest feature. (Features and vertices: ``check_size``, in ``parse_route``.)"""
    lengths = [(f.geom.length, f.index) for f in route.lines]
    length_km = sum(length for length, _ in lengths) / 1000
    if length_km > limits.max_length_km:
        longest, index = max(lengths)
        raise problem("route-too-long", f"The route is {length_km:.1f} km long; the limit is "
                      f"{limits.max_length_km:g} km for all lines together (feature {index} alone is "
                      f"{longest / 1000:.1f} km). Split it into several applications.", limit="max_length_km",
                      length_km=round(length_km, 1), limit_km=limits.max_length_km, feature_index=index,
                      feature_length_km=round(longest / 1000, 1))


def check_draft(data: Any, crs: str | int | None, limits: Any, srid: int) -> None:
    """The limits of a route that is not judged yet (a draft: its geometry may still be unfinished, submit
    explains what is wrong with it): features and vertices as ``check_size``; the length of every line feature
    that can be built and transformed (the others have no length yet). → 422 as ``check_size``/``check_length``."""
    items, legacy = _features(load_json(data))
    check_size(items, limits)
    epsg = parse_crs(crs if crs not in (None, "") else legacy)
    lines = []
    for index, geometry, _ in items:
        if not isinstance(geometry, dict) or geometry.get("type") not in LINE_TYPES:
            continue
        try:
            geom = _to_shape(index, geometry)
        except GeometryProblem:
            continue
        lines.append(RouteFeature(index=index, kind="line", geom_in=geom))
    if not lines:
        return
    route = Route(crs=epsg, features=lines)
    t = transformer(epsg, srid)
    for f in lines:
        f.geom = shapely.transform(f.geom_in, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    route.features = [f for f in lines if np.isfinite(shapely.get_coordinates(f.geom)).all()]
    check_length(route, limits)


def to_metric(route: Route, srid: int) -> None:
    """Transform every feature into the tenant's metric CRS (vectorised, x/y order)."""
    t = transformer(route.crs, srid)
    out = shapely.transform(np.array([f.geom_in for f in route.features], dtype=object),
                            lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    for f, geom in zip(route.features, out.tolist()):
        f.geom = geom
    xy, owner = shapely.get_coordinates(out, return_index=True)
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        f = route.features[int(owner[int(np.argmax(bad))])]
        raise problem("outside-crs-area", f"Feature {f.index}: the coordinates cannot be transformed into "
                      f"EPSG:{srid}", feature_index=f.index, coordinate=_first_coordinate(f.geom_in))


def swapped(route: Route) -> Route:
    """The same route with x and y exchanged (to test the suspicion of swapped latitude/longitude)."""
    feats = [RouteFeature(f.index, f.kind, shapely.transform(f.geom_in, lambda xy: xy[:, ::-1]),
                          properties=f.properties) for f in route.features]
    return Route(crs=route.crs, features=feats)


def output_precision(epsg: int) -> int:
    return 7 if is_geographic(epsg) else 2
