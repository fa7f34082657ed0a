"""Vector tile endpoints: tiles, TileJSON per layer, and the MapLibre style.

- ``GET /tiles/{layer}/{z}/{x}/{y}.mvt`` — ``application/vnd.mapbox-vector-tile``; an empty tile is
  ``204 No Content`` (MapLibre treats it as an empty tile), with the same ETag and Cache-Control as a full one.
  Headers: ``ETag``; ``Cache-Control: public, max-age=…`` for public layers (roads, boundaries),
  ``private, no-cache`` for per-caller layers (applications); ``X-Tile-Features`` (features in the tile),
  ``X-Tile-Truncated: true`` and ``X-Tile-Feature-Limit`` when the feature limit cut the tile.
  ``If-None-Match`` → 304.
- ``GET /tiles/{layer}.json`` — TileJSON 3.0.0.
- ``GET /styles/breitband.json`` — MapLibre style over our own tiles.
- ``GET /fonts/{fontstack}/{range}.pbf`` — SDF glyphs for the style's labels, made from DejaVu by us.

Which tenant: public layers take ``?tenant=KEY``, else the tenant of the Bearer token; per-caller layers need the
token (401 without) and always show the caller's own tenant.
"""

from __future__ import annotations

import hashlib
import json

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from breitband import metrics
from breitband.auth import BEARER_OR_BASIC, VARY_CREDENTIALS, credentials_sent, current_principal
from breitband.db import get_read_session
from breitband.errors import ProblemError, Unauthorized
from breitband.identity import Principal
from geo import glyphs, tiles
from geo.style import style

router = APIRouter(tags=["tiles"])

TENANT_QUERY = Query(None, description="Tenant (state) key for public layers, e.g. `he`; default: the tenant of "
                                       "the Bearer token", pattern=r"^[a-z][a-z0-9-]{1,15}$")


def _principal_if_any(request: Request) -> Principal | None:
    """The caller when a token or the session cookie is sent (an invalid one is a 401, never silently public)."""
    if not credentials_sent(request):
        return None
    return current_principal(request, basic=True)


def _public_tenant(request: Request, tenant: str | None) -> tuple[str, bool]:
    """→ (tenant key, whether it came from the token)."""
    if tenant:
        return tenant, False
    principal = _principal_if_any(request)
    if principal is None:
        raise ProblemError("Say which tenant: ?tenant=KEY (e.g. ?tenant=he), or send a Bearer token",
                           type="tenant-required", title="Tenant required")
    return principal.tenant_key, True


def _require_principal(request: Request, layer_name: str) -> Principal:
    if not credentials_sent(request):
        raise Unauthorized(f"The layer {layer_name!r} depends on the caller: send 'Authorization: Bearer <token>' "
                           "(or HTTP Basic with any user name and the token as the password)", type="token-missing",
                           challenge=BEARER_OR_BASIC)
    return current_principal(request, basic=True)


def _etag_matches(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    if header.strip() == "*":
        return True
    candidates = {c.strip().removeprefix("W/") for c in header.split(",")}
    return etag in candidates


def _tile_headers(tile_etag: str, cache_control: str, vary: str | None) -> dict[str, str]:
    headers = {"ETag": tile_etag, "Cache-Control": cache_control}
    if vary:
        headers["Vary"] = vary
    return headers


@router.get("/tiles/{layer}/{z}/{x}/{y}.mvt", summary="A vector tile (MVT) of a layer",
            responses={200: {"content": {tiles.MVT_MEDIA_TYPE: {}}, "description": "The tile"},
                       204: {"description": "Empty tile (no features)"},
                       304: {"description": "Not modified (If-None-Match)"}})
def get_tile(request: Request, layer: str, z: int, x: int, y: int, tenant: str | None = TENANT_QUERY,
             session: Session = Depends(get_read_session)) -> Response:
    spec = tiles.get_layer(layer)
    key = tiles.validate_tile(z, x, y)
    if spec.public:
        tenant_key, from_token = _public_tenant(request, tenant)
        settings = tiles.tile_settings()
        cache = f"public, max-age={settings.public_max_age_s}"
        vary = VARY_CREDENTIALS if from_token else None
        if request.headers.get("if-none-match"):
            etag = tiles.public_tile_etag(session, spec, tenant_key, key)
            if _etag_matches(request, etag):
                metrics.record_tile(layer, "not_modified")
                return Response(status_code=304, headers=_tile_headers(etag, cache, vary))
        tile = tiles.public_tile(session, spec, tenant_key, key)
    else:
        principal = _require_principal(request, layer)
        cache, vary = "private, no-cache", VARY_CREDENTIALS
        tile = spec.tile(session, principal, key)
        if _etag_matches(request, tile.etag):
            metrics.record_tile(layer, "not_modified")
            return Response(status_code=304, headers=_tile_headers(tile.etag, cache, vary))
    headers = _tile_headers(tile.etag, cache, vary)
    headers["X-Tile-Features"] = str(tile.features)
    if tile.truncated:
        headers["X-Tile-Truncated"] = "true"
        headers["X-Tile-Feature-Limit"] = str(tile.limit)
    if not tile.data:
        metrics.record_tile(layer, "empty")
        return Response(status_code=204, headers=headers)
    metrics.record_tile(layer, "rendered")
    return Response(content=tile.data, media_type=tiles.MVT_MEDIA_TYPE, headers=headers)


def _json(request: Request, body: dict, cache_control: str, vary: str | None) -> Response:
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    etag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
    headers = _tile_headers(etag, cache_control, vary)
    if _etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(content=raw, media_type="application/json", headers=headers)


@router.get("/tiles/{layer}.json", summary="TileJSON 3.0.0 of a layer")
def get_tilejson(request: Request, layer: str, tenant: str | None = TENANT_QUERY,
                 session: Session = Depends(get_read_session)) -> Response:
    spec = tiles.get_layer(layer)
    base = request.app.state.settings.public_base_url
    max_age = tiles.tile_settings().metadata_max_age_s
    if spec.public:
        tenant_key, from_token = _public_tenant(request, tenant)
        body = tiles.tilejson(session, spec, tenant_key, base, tenant_in_url=True)
        return _json(request, body, f"public, max-age={max_age}", VARY_CREDENTIALS if from_token else None)
    principal = _require_principal(request, layer)
    body = tiles.tilejson(session, spec, principal.tenant_key, base, tenant_in_url=False)
    return _json(request, body, "private, no-cache", VARY_CREDENTIALS)


@router.get("/styles/breitband.json", summary="MapLibre style over our own tiles (roads, boundaries; with a "
                                              "Bearer token also the caller's applications)")
def get_style(request: Request, tenant: str | None = TENANT_QUERY,
              session: Session = Depends(get_read_session)) -> Response:
    principal = _principal_if_any(request)
    tenant_key = tenant or (principal.tenant_key if principal else None)
    if tenant_key is None:
        raise ProblemError("Say which tenant: ?tenant=KEY (e.g. ?tenant=he), or send a Bearer token",
                           type="tenant-required", title="Tenant required")
    own_tenant = principal is not None and principal.tenant_key == tenant_key
    bounds = tiles.tenant_bounds(session, tenant_key)
    body = style(request.app.state.settings.public_base_url, tenant_key, bounds,
                       caller_layers=tiles.caller_layers() if own_tenant else ())
    max_age = tiles.tile_settings().metadata_max_age_s
    if principal is not None:
        return _json(request, body, "private, no-cache", VARY_CREDENTIALS)
    return _json(request, body, f"public, max-age={max_age}", None)


GLYPH_MEDIA_TYPE = "application/x-protobuf"


@router.get("/fonts/{fontstack}/{glyph_range}.pbf", summary="SDF glyphs of a font stack for the map's labels",
            responses={200: {"content": {GLYPH_MEDIA_TYPE: {}}, "description": "Glyph PBF (256 code points)"},
                       304: {"description": "Not modified (If-None-Match)"}})
def get_glyphs(request: Request, fontstack: str, glyph_range: str) -> Response:
    """Signed distance fields of the code points ``start``–``end`` (a 256-aligned range such as ``0-255``) of the
    fonts in ``fontstack`` (comma-separated, e.g. ``DejaVu Sans Bold,DejaVu Sans``; each glyph from the first font
    that has it), made from the font files by this service. Public, cacheable: the same fonts give the same
    bytes."""
    names = glyphs.parse_fontstack(fontstack)
    start = glyphs.parse_range(glyph_range)
    data = glyphs.glyph_range(names, start)
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400"}
    if _etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type=GLYPH_MEDIA_TYPE, headers=headers)


# HEAD of the same resources (GIS clients and caches ask for the headers: ETag, Cache-Control, Content-Length):
# the GET endpoints answer it, the server sends the headers without the body. Not listed again in the OpenAPI.
for _path, _endpoint in (("/tiles/{layer}/{z}/{x}/{y}.mvt", get_tile), ("/tiles/{layer}.json", get_tilejson),
                         ("/styles/breitband.json", get_style), ("/fonts/{fontstack}/{glyph_range}.pbf", get_glyphs)):
    router.add_api_route(_path, _endpoint, methods=["HEAD"], include_in_schema=False)

__all__ = ["router"]
