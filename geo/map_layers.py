"""``GET /api/v1/map/layers``: the external base layers the tenant's rules configure (``[[map.base_layers]]``), as
MapLibre raster sources the web app offers as toggles. None by default: the map is complete without them."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from breitband.auth import require
from breitband.identity import Principal
from geo.rules import BaseLayer, MapRules

router = APIRouter(prefix="/api/v1", tags=["map"])


class BaseLayerOut(BaseModel):
    id: str
    name: str = Field(description="German label of the toggle")
    name_en: str | None = None
    kind: str = Field(description="wms | tiles (as configured)")
    tiles: list[str] = Field(description="MapLibre raster tile URL template ({z}/{x}/{y}, or {bbox-epsg-3857} for "
                                         "a WMS GetMap)")
    tile_size: int
    min_zoom: int
    max_zoom: int
    opacity: float
    attribution: str
    origin: str = Field(description="The origin the Content-Security-Policy allows for it")


class MapLayersOut(BaseModel):
    base_layers: list[BaseLayerOut]


def tile_template(layer: BaseLayer) -> str:
    """The raster URL MapLibre requests: a tile URL as configured; a WMS as GetMap of a EPSG:3857 tile (MapLibre
    fills in ``{bbox-epsg-3857}``)."""
    if layer.kind == "tiles":
        return layer.url
    crs_key = "CRS" if layer.version == "1.3.0" else "SRS"
    params = urlencode({"SERVICE": "WMS", "REQUEST": "GetMap", "VERSION": layer.version, "LAYERS": layer.layers,
                        "STYLES": "", crs_key: "EPSG:3857", "WIDTH": layer.tile_size, "HEIGHT": layer.tile_size,
                        "FORMAT": layer.format, "TRANSPARENT": "TRUE" if layer.format == "image/png" else "FALSE"})
    return f"{layer.url}{'&' if '?' in layer.url else '?'}{params}&BBOX={{bbox-epsg-3857}}"


def layers_out(layers: list[BaseLayer]) -> MapLayersOut:
    return MapLayersOut(base_layers=[BaseLayerOut(
        id=b.id, name=b.name, name_en=b.name_en, kind=b.kind, tiles=[tile_template(b)], tile_size=b.tile_size,
        min_zoom=b.min_zoom, max_zoom=b.max_zoom, opacity=b.opacity, attribution=b.attribution, origin=b.origin)
        for b in layers])


def _map_rules(request: Request, principal: Principal) -> MapRules:
    """The ``map`` part of the tenant's rules alone (validated when the rules were stored): a tenant whose other
    rules are incomplete still has a map."""
    with request.app.state.db.statement_session(readonly=True) as session:
        raw = session.execute(text("SELECT rules->'map' FROM tenants WHERE key = :t"),
                              {"t": principal.tenant_key}).scalar()
    return MapRules.model_validate(raw or {})


@router.get("/map/layers", response_model=MapLayersOut, response_model_exclude_none=True,
            summary="The tenant's optional external base layers for the map (any role)")
async def map_layers(request: Request, principal: Principal = Depends(require())) -> MapLayersOut:
    """What the tenant's rules configure under ``[[map.base_layers]]`` (none by default): a WMS or a tile URL with
    its attribution. The web app shows each as a toggle, off until the user turns it on."""
    rules = await run_in_threadpool(_map_rules, request, principal)
    return layers_out(rules.base_layers)


__all__ = ["router", "tile_template", "layers_out"]
