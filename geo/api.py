"""Geo endpoints: the resolution dry run."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from breitband import limits
from breitband.auth import require
from breitband.identity import Principal
from geo import service

router = APIRouter(prefix="/api/v1", tags=["resolution"])

_GEOJSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/geo+json": {"schema": {"type": "object"}},
                    "application/json": {"schema": {"type": "object"},
                                         "example": {"type": "LineString",
                                                     "coordinates": [[8.6810, 50.0500], [8.6900, 50.0560]]}}},
        "description": "A GeoJSON geometry, Feature or FeatureCollection: LineString/MultiLineString (trench "
                       "sections), Point (pits, cabinets), Polygon (construction areas).",
    }
}


def _resolve(request: Request, principal: Principal, body: bytes, crs: str | None) -> dict:
    """The whole dry run in one worker-thread hop, on a read-only session without a transaction around its few
    statements (a session dependency would cost two more hops and the BEGIN/ROLLBACK round trips). The features
    count against the token's work budget (``rate_limit_resolve_features_token``) before they are resolved."""
    def charge(features: int) -> None:
        limits.check_token_rate(request, "resolve-features", principal.token_id or principal.user_id, features)

    with request.app.state.db.statement_session(readonly=True) as session:
        return service.resolve(session, principal.tenant_key, body, crs, raw_geometry=True,
                               tenant_stamp=principal.tenant_stamp, charge=charge)


@router.post("/resolve", summary="Which road authorities must consent to this route (dry run, any role)",
             openapi_extra=_GEOJSON_BODY)
async def resolve(request: Request,
                  crs: str | None = Query(None, description="CRS of the coordinates, e.g. EPSG:25832 "
                                                            "(default EPSG:4326, x/longitude first)"),
                  principal: Principal = Depends(require())) -> Response:
    body = await request.body()      # bounded while it streamed in (breitband/limits.py, body_limit_route_mb)
    result = await run_in_threadpool(_resolve, request, principal, body, crs)
    # Serialised directly with orjson: the answer is plain JSON data with the piece geometries as PostGIS wrote
    # them (fragments); jsonable_encoder would only walk their coordinates.
    return Response(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
