"""HTTP Basic with an API token as the password, for GIS desktops (QGIS 3.22 offers Basic, not an API header): taken
on the read-only GIS endpoints (OGC API - Features, tiles, TileJSON, the style), for GET only, and refused with a
problem that says where it is accepted everywhere else."""

from __future__ import annotations

import base64

from tests.support.api import collection, trench

PROBLEMS = "https://breitband.dev/problems/"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_with_the_token_as_password_reads_what_bearer_reads(api, he, lines, clock, client):
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    items = "/api/v1/ogc/collections/applications/items"
    with_bearer = client.get(items, headers=he.operator.headers)
    with_basic = client.get(items, headers=basic("qgis", he.operator.token))
    assert with_basic.status_code == 200, with_basic.text
    assert [f["id"] for f in with_basic.json()["features"]] == [f["id"] for f in with_bearer.json()["features"]]
    assert app["id"] in [f["id"] for f in with_basic.json()["features"]]
    # the user name is ignored, a password with a colon in it is the token's own business
    assert client.get("/api/v1/ogc/conformance", headers=basic("", he.operator.token)).status_code == 200
    for path in ("/api/v1/ogc", "/api/v1/ogc/collections", "/tiles/applications.json", "/styles/breitband.json",
                 "/tiles/applications/14/8585/5548.mvt"):
        r = client.get(path, headers=basic("Anna Planer", he.hessen_mobil.token))
        assert r.status_code in (200, 204), (path, r.status_code, r.text)


def test_basic_is_refused_outside_the_gis_endpoints_and_on_writes(api, he, lines, client):
    for method, path in (("GET", "/api/v1/applications"), ("GET", "/api/v1/me"), ("GET", "/api/v1/cases"),
                         ("POST", "/api/v1/applications"), ("POST", "/api/v1/ogc/collections/applications/items")):
        r = client.request(method, path, headers=basic("qgis", he.operator.token), json={})
        if r.status_code == 405:       # no such method on a GIS path: nothing is written either way
            continue
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        body = r.json()
        assert body["type"] == PROBLEMS + "basic-not-accepted", (method, path, body)
        assert "only on the read-only GIS endpoints" in body["detail"]
        assert r.headers["www-authenticate"] == 'Bearer realm="breitband"'


def test_bad_basic_credentials_are_clear_401s_that_offer_basic(he, client):
    items = "/api/v1/ogc/collections/applications/items"
    cases = [({"Authorization": "Basic %%%not-base64"}, "token-malformed"),
             (basic("qgis", ""), "token-malformed"),
             ({"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}, "token-malformed"),
             (basic("qgis", "bb_not-a-token"), "token-invalid"),
             ({}, "token-missing")]
    for headers, kind in cases:
        r = client.get(items, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["type"] == PROBLEMS + kind, (headers, r.json())
        assert r.headers["www-authenticate"] == 'Bearer realm="breitband", Basic realm="breitband", charset="UTF-8"'
    r = client.get("/tiles/applications/14/8585/5548.mvt")
    assert (r.status_code, r.json()["type"]) == (401, PROBLEMS + "token-missing")
    assert "Basic" in r.headers["www-authenticate"]
