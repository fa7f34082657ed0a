"""Geo endpoints: the resolution dry run."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from breitband import limits
from breitband.auth import require
from breitband.errors import UnprocessableEntity
from breitband.identity import Principal
from breitband.openapi import PROBLEM
from geo import service
from geo.route_files import ACCEPTED, MEDIA_TYPES, combine_parts

router = APIRouter(prefix="/api/v1", tags=["resolution"])
# a Shapefile's five parts, and the JSON part of a multipart application create beside them
MAX_FILE_PARTS = 8
# the answer to content in no accepted format, on every operation that takes a route file
UNSUPPORTED_FORMAT = {415: {"description": "The file is in no format the reader takes (`unsupported-format`, the "
                                           "accepted formats named)", "content": PROBLEM}}

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
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"},
                                 "description": "The route file; or the parts of one Shapefile (.shp, .shx, "
                                                ".dbf, .prj, .cpg), one `file` each"},
                        "crs": {"type": "string"}, "layer": {"type": "string"}}}}},
        "description": "The route as a file in any of: " + ", ".join(ACCEPTED) + " — the raw body, or "
                       "multipart/form-data with a field `file` (and optional `crs`, `layer`; a Shapefile also as "
                       "its parts, `file` repeated). The format is recognised by content. GeoJSON: a geometry, "
                       "Feature or FeatureCollection: "
                       "LineString/MultiLineString (trench sections), Point (pits, cabinets), Polygon "
                       "(construction areas).",
    }
}


@dataclass
class RouteUpload:
    """The route file of a request and its parameters; ``form``: the multipart form (None for a raw body), for
    endpoints that take further fields beside the file."""

    body: bytes
    crs: str | None
    layer: str | None
    form: FormData | None = None

    def text(self, name: str) -> str | None:
        """A text field of the multipart form (stripped; None when absent or empty)."""
        return form_text(self.form.get(name)) if self.form is not None else None


async def route_upload(request: Request, crs: str | None, layer: str | None, *,
                       required: bool = True) -> RouteUpload:
    """The route file of a request: the raw body, or the field ``file`` of multipart/form-data — one file, or the
    parts of one Shapefile as ``file`` repeated (``geo.route_files.combine_parts``) — with ``crs`` and ``layer``
    as form fields or query parameters. ``required=False``: a multipart request without ``file`` gives an empty
    body (the caller decides)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        return RouteUpload(await request.body(), crs, layer)   # bounded while it streamed in (breitband/limits.py)
    form = await request.form(max_files=MAX_FILE_PARTS, max_fields=20)
    uploads = [u for u in form.getlist("file") if isinstance(u, UploadFile)]
    if not uploads and required:
        raise UnprocessableEntity("multipart/form-data needs the route file in a field named 'file' (a "
                                  "Shapefile's parts: 'file' once per part)", type="file-required", field="file")
    body = combine_parts([(u.filename, await u.read()) for u in uploads]) if uploads else b""
    return RouteUpload(body, crs or form_text(form.get("crs")), layer or form_text(form.get("layer")), form)


def form_text(value) -> str | None:
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


CRS_QUERY = Query(None, description="CRS of the coordinates, e.g. EPSG:25832 (default: the file's own CRS; "
                                    "GeoJSON: its legacy crs member, else EPSG:4326, x/longitude first)")
LAYER_QUERY = Query(None, description="The layer of a multi-layer file (GeoPackage, KML, …); needed when several "
                                      "hold geometries")


@router.post("/resolve", summary="Which road authorities must consent to this route (dry run, any role)",
             openapi_extra=_GEOJSON_BODY, responses=UNSUPPORTED_FORMAT)
async def resolve(request: Request, crs: str | None = CRS_QUERY, layer: str | None = LAYER_QUERY,
                  principal: Principal = Depends(require())) -> Response:
    upload = await route_upload(request, crs, layer)
    result = await run_in_threadpool(_resolve, request, principal, upload.body, upload.crs, upload.layer)
    # Serialised directly with orjson: the answer is plain JSON data with the piece geometries as PostGIS wrote
    # them (fragments); jsonable_encoder would only walk their coordinates.
    return Response(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


def _read(request: Request, principal: Principal, upload: RouteUpload) -> dict:
    with request.app.state.db.statement_session(readonly=True) as session:
        return service.read_route(session, principal.tenant_key, upload.body, upload.crs, upload.layer)


@router.post("/route-file", summary="Read a route file: its route as EPSG:4326 GeoJSON and what was read (dry run, "
                                    "any role)", openapi_extra=_GEOJSON_BODY, responses=UNSUPPORTED_FORMAT)
async def route_file(request: Request, crs: str | None = CRS_QUERY, layer: str | None = LAYER_QUERY,
                          principal: Principal = Depends(require())) -> Response:
    """The route of a file in any accepted format as the service reads it — checked like a route to resolve
    (geometry, CRS, the tenant's limits and territory) — as a GeoJSON FeatureCollection in EPSG:4326 with the
    file's attributes (``route``), the format, layer and CRS read (``source``) and the notes (``warnings``: heights
    dropped). What the web wizard shows before the application is created; counts under the resolve rate."""
    upload = await route_upload(request, crs, layer)
    result = await run_in_threadpool(_read, request, principal, upload)
    return Response(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
