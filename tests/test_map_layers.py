"""Optional external base layers per tenant (issue 16, point 6): the rules ``[[map.base_layers]]``, what
``GET /api/v1/map/layers`` tells the web app, and the Content-Security-Policy, which allows a layer's origin only
while some tenant configures it. The browser side: tests/web/test_map_search.py."""

from __future__ import annotations

import pytest

from breitband import identity
from breitband.errors import UnprocessableEntity
from breitband.headers import CSP
from geo.rules import parse_rules

WMS = {"id": "dop", "name": "Luftbild (DOP20)", "name_en": "Orthophoto", "kind": "wms",
       "url": "https://geodienste.example.de/wms/dop?map=dop20", "layers": "he_dop20_rgb", "format": "image/jpeg",
       "attribution": "© GeoBasis-DE / HVBG"}
TILES = {"id": "basemap", "name": "basemap.de", "kind": "tiles",
         "url": "https://sgx.example.de/wmts_basemapde/tile/1.0.0/de_basemapde_web_raster_farbe/default/"
                "GLOBAL_WEBMERCATOR/{z}/{y}/{x}.png", "attribution": "© basemap.de / BKG", "max_zoom": 18}


def _csp(response) -> dict[str, str]:
    return {d.split()[0]: " ".join(d.split()[1:]) for d in response.headers["content-security-policy"].split("; ")}


def _configure(session, layers) -> None:
    rules = dict(session.get(identity.Tenant, "he").rules)
    rules["map"] = {"base_layers": layers}
    identity.update_tenant(session, "he", rules=parse_rules(rules, "he").model_dump(mode="json"))
    session.commit()


@pytest.fixture
def fresh_csp(client):
    """The CSP's origins read again on the next request, before and after the test (its rules are rolled back)."""
    client.get("/healthz")
    client.app.state.csp_base_layers.clear()
    yield
    client.app.state.csp_base_layers.clear()


def test_none_by_default(client, he, fresh_csp):
    r = client.get("/api/v1/map/layers", headers=he.operator.headers)
    assert r.status_code == 200 and r.json() == {"base_layers": []}
    assert client.get("/").headers["content-security-policy"] == CSP


def test_configured_layers_and_the_csp(client, session, he, fresh_csp):
    _configure(session, [WMS, TILES])
    client.app.state.csp_base_layers.clear()
    r = client.get("/api/v1/map/layers", headers=he.neu_isenburg.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"base_layers": [
        {"id": "dop", "name": "Luftbild (DOP20)", "name_en": "Orthophoto", "kind": "wms",
         "tiles": ["https://geodienste.example.de/wms/dop?map=dop20&SERVICE=WMS&REQUEST=GetMap&VERSION=1.3.0"
                   "&LAYERS=he_dop20_rgb&STYLES=&CRS=EPSG%3A3857&WIDTH=256&HEIGHT=256&FORMAT=image%2Fjpeg"
                   "&TRANSPARENT=FALSE&BBOX={bbox-epsg-3857}"],
         "tile_size": 256, "min_zoom": 0, "max_zoom": 19, "opacity": 1.0, "attribution": "© GeoBasis-DE / HVBG",
         "origin": "https://geodienste.example.de"},
        {"id": "basemap", "name": "basemap.de", "kind": "tiles", "tiles": [TILES["url"]], "tile_size": 256,
         "min_zoom": 0, "max_zoom": 18, "opacity": 1.0, "attribution": "© basemap.de / BKG",
         "origin": "https://sgx.example.de"}]}
    # the page and the API: both origins in img-src and connect-src, every other directive as without them
    for path in ("/", "/api/v1/map/layers"):
        csp = _csp(client.get(path, headers=he.operator.headers))
        origins = "https://geodienste.example.de https://sgx.example.de"
        assert csp["img-src"] == f"'self' data: blob: {origins}"
        assert csp["connect-src"] == f"'self' {origins}"
        default = {d.split()[0]: d for d in CSP.split("; ")}
        assert {k: v for k, v in csp.items() if k not in ("img-src", "connect-src")} == {
            k: " ".join(v.split()[1:]) for k, v in default.items() if k not in ("img-src", "connect-src")}
    # removed again: the policy is exactly the default once more
    _configure(session, [])
    client.app.state.csp_base_layers.clear()
    assert client.get("/").headers["content-security-policy"] == CSP


def test_another_tenant_sees_only_its_own_layers(client, session, he, other_world, fresh_csp):
    _configure(session, [TILES])
    r = client.get("/api/v1/map/layers",
                   headers={"Authorization": f"Bearer {other_world.operator_member.token}"})
    assert r.status_code == 200 and r.json() == {"base_layers": []}


def test_needs_a_token(client):
    r = client.get("/api/v1/map/layers")
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("layer", "words"), [
    ({**TILES, "url": "http://tiles.example.de/{z}/{x}/{y}.png"}, "must be an https URL"),
    ({**TILES, "url": "https://user:pw@tiles.example.de/{z}/{x}/{y}.png"}, "without user name"),
    ({**TILES, "url": "https://tiles.example.de/{z}/{x}.png"}, "needs {z}, {x} and {y}"),
    ({**TILES, "url": "https://tiles.example.de/{z}/{x}/{y}.png?k={key}"}, "unknown placeholder {key}"),
    ({**WMS, "layers": None}, "a WMS needs 'layers'"),
    ({**WMS, "url": "https://wms.example.de/{z}"}, "without placeholders"),
    ({**TILES, "attribution": ""}, "attribution"),
    ({**TILES, "min_zoom": 12, "max_zoom": 10}, "min_zoom is above max_zoom"),
    ({**TILES, "id": "Base Map"}, "id"),
])
def test_bad_base_layers_are_refused_with_the_reason(session, he_data, layer, words):
    rules = dict(session.get(identity.Tenant, "he").rules)
    rules["map"] = {"base_layers": [layer]}
    with pytest.raises(UnprocessableEntity) as err:
        parse_rules(rules, "he")
    assert err.value.type == "invalid-rules"
    assert words in err.value.detail and "map.base_layers" in err.value.detail


def test_layer_ids_must_be_unique(session, he_data):
    rules = dict(session.get(identity.Tenant, "he").rules)
    rules["map"] = {"base_layers": [TILES, TILES]}
    with pytest.raises(UnprocessableEntity, match="base layer ids must be unique"):
        parse_rules(rules, "he")
