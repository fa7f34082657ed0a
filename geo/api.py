"""Geo endpoints: the resolution dry run."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from breitband import limits
from breitband.auth import require
from breitband.errors import UnprocessableEntity
from breitband.identity import Principal
from geo import service
from geo.route_files import ACCEPTED, MEDIA_TYPES

router = APIRouter(prefix="/api/v1", tags=["resolution"])

_FILE_MEDIA = {m: {"schema": {"type": "string", "format": "binary"}} for m in MEDIA_TYPES if "json" not in m}
_GEOJSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/geo+json": {"schema": {"type": "object"}},
                    "application/json": {"schema": {"type": "object"},
                                         "example": {"type": "LineString",
                                                     "coordinates": [[8.6810, 50.0500], [8.6900, 50.0560]]}},
                    **_FILE_MEDIA,
                    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "crs": {"type": "string"}, "layer": {"type": "string"}}}}},
        "description": "The route as a file in any of: " + ", ".join(ACCEPTED) + " — the raw body, or "
                       "multipart/form-data with a field `file` (and optional `crs`, `layer`). The format is "
                       "recognised by content. GeoJSON: a geometry, Feature or FeatureCollection: "
                       "LineString/MultiLineString (trench sections), Point (pits, cabinets), Polygon "
                       "(construction areas).",
    }
}


async def route_upload(request: Request, crs: str | None, layer: str | None) -> tuple[bytes, str | None, str | None]:
    """The route file of a request: the raw body, or the field ``file`` of multipart/form-data (``crs`` and
    ``layer`` as form fields or query parameters) → (bytes, crs, layer)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        return await request.body(), crs, layer   # bounded while it streamed in (breitband/limits.py)
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise UnprocessableEntity("multipart/form-data needs the route file in a field named 'file'",
                                  type="file-required", field="file")
    crs = crs or _form_text(form.get("crs"))
    layer = layer or _form_text(form.get("layer"))
    return await upload.read(), crs, layer


def _form_text(value) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _resolve(request: Request, principal: Principal, body: bytes, crs: str | None, layer: str | None) -> dict:
    """The whole dry run in one worker-thread hop, on a read-only session without a transaction around its few
    statements (a session dependency would cost two more hops and the BEGIN/ROLLBACK round trips). The features
    count against the token's work budget (``rate_limit_resolve_features_token``) before they are resolved."""
    def charge(features: int) -> None:
        limits.check_token_rate(request, "resolve-features", principal.token_id or principal.user_id, features)

    with request.app.state.db.statement_session(readonly=True) as session:
        return service.resolve_file(session, principal.tenant_key, body, crs, layer, raw_geometry=True,
                                    tenant_stamp=principal.tenant_stamp, charge=charge)


@router.post("/resolve", summary="Which road authorities must consent to this route (dry run, any role)",
             openapi_extra=_GEOJSON_BODY)
async def resolve(request: Request,
                  crs: str | None = Query(None, description="CRS of the coordinates, e.g. EPSG:25832 "
                                                            "(default: the file's own CRS; GeoJSON: its legacy "
                                                            "crs member, else EPSG:4326, x/longitude first)"),
                  layer: str | None = Query(None, description="The layer of a multi-layer file (GeoPackage, KML, "
                                                              "…); needed when several hold geometries"),
                  principal: Principal = Depends(require())) -> Response:
    body, crs, layer = await route_upload(request, crs, layer)
    result = await run_in_threadpool(_resolve, request, principal, body, crs, layer)
    # Serialised directly with orjson: the answer is plain JSON data with the piece geometries as PostGIS wrote
    # them (fragments); jsonable_encoder would only walk their coordinates.
    return Response(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
