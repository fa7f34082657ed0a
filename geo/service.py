"""Geo service: the resolution of affected road authorities (business rules; never commits)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from breitband.errors import NotFound
from geo import resolution
from geo.crs import crs_of, transform_geometry
from geo.route_files import RouteInput, read_route_file
from geo.rules import TenantRules, parse_rules
from geo.territory import territory
from geo.validation import (
    GeometryProblem,
    check_draft,
    check_length,
    output_precision,
    parse_route,
    problem,
    swapped,
    to_metric,
)

_TENANT_SQL = text("SELECT srid, rules, updated_at, data_changed_at FROM tenants WHERE key = :t")
# tenant key → ((updated_at, data_changed_at), parsed rules, srid)
_tenant_cache: dict[str, tuple[tuple[Any, Any], TenantRules, int]] = {}


def tenant_context(session: Session, tenant_key: str, known_stamp: tuple[Any, Any] | None = None
                   ) -> tuple[TenantRules, int, Any]:
    """The tenant's parsed rules, metric SRID and the stamp of its reference data (``tenants.data_changed_at``,
    moved by triggers on every import and directory change; the caches of territory, areas and directory are kept
    per stamp). ``known_stamp``: (updated_at, data_changed_at) as authentication read it a moment ago
    (``Principal.tenant_stamp``); while it matches the cache, no query is made."""
    cached = _tenant_cache.get(tenant_key)
    if known_stamp is not None and cached is not None and cached[0] == known_stamp:
        return cached[1], cached[2], known_stamp[1]
    row = session.execute(_TENANT_SQL, {"t": tenant_key}).first()
    if row is None:
        raise NotFound(f"No tenant {tenant_key!r}", type="tenant-not-found")
    rules = cached[1] if cached is not None and cached[0][0] == row.updated_at else parse_rules(row.rules or {})
    _tenant_cache[tenant_key] = ((row.updated_at, row.data_changed_at), rules, row.srid)
    return rules, row.srid, row.data_changed_at


def tenant_srid(session: Session, tenant_key: str) -> int:
    """The tenant's metric SRID alone (the CRS lengths are measured in, GIS answers' ``storageCrs``): read without
    the rules, so that what only needs the CRS does not depend on them."""
    cached = _tenant_cache.get(tenant_key)
    if cached is not None:
        return cached[2]
    srid = session.execute(text("SELECT srid FROM tenants WHERE key = :t"), {"t": tenant_key}).scalar()
    if srid is None:
        raise NotFound(f"No tenant {tenant_key!r}", type="tenant-not-found")
    return srid


def _check_territory(session: Session, tenant_key: str, route, srid: int, rules: TenantRules, stamp=None) -> None:
    """Wholly outside the tenant's territory → 422 (suggesting a swap of x/y where that would fit)."""
    area = territory(session, tenant_key, stamp)
    if any(shapely.dwithin(area, f.geom, rules.boundary_gap_m) for f in route.features):
        return
    alt = swapped(route)
    try:
        to_metric(alt, srid)
        fits = all(shapely.within(f.geom, area) for f in alt.features)
    except Exception:
        fits = False
    first = [round(v, 7) for v in shapely.get_coordinates(route.features[0].geom_in)[0].tolist()]
    if fits:
        raise problem("swapped-coordinates",
                      f"The route lies outside {tenant_key.upper()}, but with x and y exchanged it lies inside: "
                      "GeoJSON wants x/easting/longitude first, then y/northing/latitude. Swap the coordinates.",
                      feature_index=route.features[0].index, coordinate=first,
                      suggestion=[first[1], first[0]])
    raise problem("outside-territory", f"The route lies wholly outside the territory of tenant {tenant_key!r}",
                  feature_index=route.features[0].index, coordinate=first)


def check_route_limits(session: Session, tenant_key: str, data: Any, crs: str | int | None,
                       field: str = "sections") -> None:
    """The tenant's route limits (features, vertices, length; ``geo.rules.Limits``) for a route that is stored
    before it is judged (a draft, a supplement before its resolution). ``field``: where the route is in the
    request body, for the problem's ``field`` (``sections.features[i]``)."""
    rules, srid, _ = tenant_context(session, tenant_key)
    try:
        check_draft(data, crs, rules.limits, srid)
    except GeometryProblem as exc:
        if exc.type in ("too-many-features", "too-many-vertices", "route-too-long"):
            i = exc.extra.get("feature_index")
            exc.extra["field"] = f"{field}.features[{i}]" if i is not None else field
            exc.detail = f"{field}: {exc.detail}"
            exc.args = (exc.detail,)
        raise


def prepare(session: Session, tenant_key: str, data: dict | str | bytes, crs: str | int | None = None):
    """Parse, validate and transform a route; → (route, rules, tenant srid)."""
    rules, srid, stamp = tenant_context(session, tenant_key)
    return _prepare(session, tenant_key, data, crs, rules, srid, stamp), rules, srid


def _prepare(session: Session, tenant_key: str, data: dict | str | bytes, crs: str | int | None,
             rules: TenantRules, srid: int, stamp: Any, charge: Callable[[int], None] | None = None):
    route = parse_route(data, crs, rules.limits)
    if charge is not None:           # the caller's work budget, before the transformation and the queries
        charge(len(route.features))
    to_metric(route, srid)
    check_length(route, rules.limits)
    _check_territory(session, tenant_key, route, srid, rules, stamp)
    return route


def resolve(session: Session, tenant_key: str, data: dict | str | bytes, crs: str | int | None = None, *,
            raw_geometry: bool = False, tenant_stamp: tuple[Any, Any] | None = None,
            charge: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Resolve the authorities affected by a route (a dry run: nothing is stored). See geo.resolution.
    ``raw_geometry``: piece geometries as orjson fragments, for serialising with orjson (the HTTP API).
    ``charge``: called with the number of features once the route is parsed, before any work on it (a rate limit
    on the work may raise there)."""
    started = time.perf_counter()
    rules, srid, stamp = tenant_context(session, tenant_key, tenant_stamp)
    route = _prepare(session, tenant_key, data, crs, rules, srid, stamp, charge)
    digits = output_precision(route.crs)
    lines = route.lines
    others = [f for f in route.features if f.kind != "line"]
    line_runs = resolution.query_lines(session, resolution.line_query_params(
        tenant_key, srid, route.crs, digits, rules, lines))
    point_rows = resolution.query_points(session, resolution.line_query_params(
        tenant_key, srid, route.crs, digits, rules, others))
    total = sum(f.geom.length for f in lines)
    result = resolution.assemble(session, tenant_key, rules, line_runs, point_rows, total, stamp=stamp,
                                 raw_geometry=raw_geometry)
    if line_runs and all(r["ags"] is None for r in line_runs) and not point_rows:
        raise problem("outside-territory", f"The route lies wholly outside the territory of tenant {tenant_key!r}")
    result["crs"] = f"EPSG:{route.crs}"
    result["metric_crs"] = f"EPSG:{srid}"
    result["tolerance_m"] = rules.tolerance_m
    result["computed_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def resolve_file(session: Session, tenant_key: str, body: bytes, crs: str | None = None, layer: str | None = None,
                 **options: Any) -> dict[str, Any]:
    """``resolve`` for a route file in any accepted format (``geo.route_files``): the HTTP API and the CLI give
    the same answer for the same file. A file other than GeoJSON adds ``source`` (format, layer, the CRS read);
    what the reading noticed (heights dropped) joins ``warnings``."""
    route = read_route_file(body, crs, layer)
    result = resolve(session, tenant_key, route.data, route.crs, **options)
    if route.format != "GeoJSON":
        result["source"] = route.source()
    if route.warnings:
        result["warnings"] = list(result.get("warnings") or []) + route.warnings
    return result


def route_source(route_input: RouteInput, epsg: int) -> dict[str, Any]:
    """What was read from a route file, for answers and the audit trail: the format, the layer, the CRS the
    coordinates were in (the file's own, the ``crs`` parameter, or for GeoJSON its legacy member or EPSG:4326)
    and that CRS's name ("ETRS89 / UTM zone 32N")."""
    return {**route_input.source(), "crs": f"EPSG:{epsg}", "crs_name": crs_of(epsg).name}


def read_route(session: Session, tenant_key: str, body: bytes, crs: str | None = None,
               layer: str | None = None) -> dict[str, Any]:
    """A route file in any accepted format, checked as the resolution checks a route (geometry, CRS area, the
    tenant's limits and territory), → ``{"route": FeatureCollection in EPSG:4326 with each feature's
    properties as read, "source": route_source(...), "warnings": [...]}``. The one form in which a route from a
    file is shown (the web wizard's preview) and stored (an application's sections, ``crs`` EPSG:4326): the
    coordinates are transformed at full precision, the CRS they came in is named in ``source``."""
    route_input = read_route_file(body, crs, layer)
    route, _, _ = prepare(session, tenant_key, route_input.data, route_input.crs)
    geoms = transform_geometry(np.array([f.geom_in for f in route.features], dtype=object), route.crs, 4326)
    # mapping() gives tuples; JSON wants lists (what a route sent as JSON has, and what the section checks expect)
    features = orjson.loads(orjson.dumps([
        {"type": "Feature", "geometry": shapely.geometry.mapping(g), "properties": f.properties}
        for f, g in zip(route.features, geoms.tolist())], option=orjson.OPT_SERIALIZE_NUMPY))
    return {"route": {"type": "FeatureCollection", "features": features},
            "source": route_source(route_input, route.crs), "warnings": list(route_input.warnings)}
