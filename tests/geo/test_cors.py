"""CORS for a tenant's own GIS portal (geo/cors.py, rules section [gis] cors_origins): off by default, the preflight,
the answers of tiles, TileJSON, the style and the OGC API, other origins and other tenants, caching, bad rules.

Requests are real HTTP requests through the app (TestClient) with the headers a browser sends cross-origin: Origin,
and for the preflight Access-Control-Request-Method/-Headers.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tomllib

import httpx
import pytest
from sqlalchemy.orm import Session

from breitband import identity
from breitband.errors import UnprocessableEntity
from breitband.models import OrgKind, Role
from breitband.settings import PROJECT_ROOT
from geo.rules import parse_rules, validate_rules
from tests.support.web_server import running_server

PORTAL = "https://geoportal.hessen.de"
DEV = "http://localhost:5173"
EVIL = "https://karte.example"
PROBLEM = "application/problem+json"
FRANKFURT = (8.6821, 50.1109)


def he_rules(**gis) -> dict:
    with open(PROJECT_ROOT / "data" / "tenants" / "he.toml", "rb") as fh:
        raw = tomllib.load(fh)
    if gis:
        raw["gis"] = gis
    return raw


def tile_path(z: int = 10) -> str:
    lon, lat = FRANKFURT
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return f"/tiles/roads/{z}/{x}/{y}.mvt"


@pytest.fixture
def portal(session, he_data):
    """Tenant he allows its GIS portal and a developer's local server."""
    identity.update_tenant(session, "he", rules=validate_rules(he_rules(cors_origins=[PORTAL, DEV]), "he"))
    session.commit()
    return PORTAL


def preflight(client, path: str, origin: str, method: str = "GET", headers: str | None = "authorization"):
    sent = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        sent["Access-Control-Request-Headers"] = headers
    return client.options(path, headers=sent)


def cors_headers(resp) -> dict[str, str]:
    return {k: v for k, v in resp.headers.items() if k.startswith("access-control-")}


# --- off by default ---------------------------------------------------------------------------------------------

def test_without_configured_origins_there_are_no_cors_headers(client, he_data):
    resp = client.get(tile_path(), params={"tenant": "he"}, headers={"Origin": PORTAL})
    assert resp.status_code == 200
    assert cors_headers(resp) == {}
    # the answer still says it depends on the origin, so that no shared cache hands it to a portal that is allowed
    assert resp.headers["vary"] == "Origin"
    pre = preflight(client, tile_path() + "?tenant=he", PORTAL)
    assert pre.status_code == 403 and pre.headers["content-type"] == PROBLEM
    assert cors_headers(pre) == {}
    assert pre.json()["type"].endswith("/cors-origin-not-allowed")
    assert pre.json()["detail"] == (f"Scripts of {PORTAL} may not read this service's GIS endpoints: the rules of "
                                    "tenant 'he' do not list that origin ([gis] cors_origins).")
    # the security headers are on the refused preflight as on every answer
    assert pre.headers["x-content-type-options"] == "nosniff"


# --- a configured portal ------------------------------------------------------------------------------------------

def test_preflight_of_the_portal_is_answered(client, portal):
    pre = preflight(client, tile_path() + "?tenant=he", PORTAL, headers="authorization, if-none-match")
    assert pre.status_code == 204, pre.text
    assert pre.content == b""
    assert cors_headers(pre) == {
        "access-control-allow-origin": PORTAL,
        "access-control-allow-methods": "GET, HEAD",
        "access-control-allow-headers": "Authorization, Accept, If-None-Match",
        "access-control-max-age": "3600",
    }
    assert pre.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in pre.headers
    # the OGC API names no tenant: the preflight is answered for an origin some tenant lists
    assert preflight(client, "/api/v1/ogc/collections", PORTAL).status_code == 204
    assert preflight(client, "/styles/breitband.json", DEV, headers=None).status_code == 204
    # the exports are GIS read endpoints too (GIS_READ_PATHS)
    assert preflight(client, "/api/v1/exports/cases?format=gpkg", PORTAL).status_code == 204


def test_preflight_refuses_other_origins_methods_headers_and_tenants(client, portal, world):
    other = preflight(client, tile_path() + "?tenant=he", EVIL)
    assert other.status_code == 403 and cors_headers(other) == {}
    # an origin differing only in scheme or port is another origin
    assert preflight(client, "/api/v1/ogc", "http://geoportal.hessen.de").status_code == 403
    assert preflight(client, "/api/v1/ogc", "https://geoportal.hessen.de:8443").status_code == 403
    # the tenant the URL names must list the origin itself
    xa = preflight(client, tile_path() + "?tenant=xa", PORTAL)
    assert xa.status_code == 403 and "tenant 'xa'" in xa.json()["detail"]

    post = preflight(client, "/api/v1/ogc/collections", PORTAL, method="POST")
    assert post.status_code == 403 and post.headers["content-type"] == PROBLEM
    assert post.json()["detail"] == ("The GIS endpoints are read-only: cross-origin requests may use the methods "
                                     "GET, HEAD and the headers Authorization, Accept, If-None-Match, not the "
                                     "method POST.")
    custom = preflight(client, "/api/v1/ogc/collections", PORTAL, headers="authorization, x-requested-with")
    assert custom.status_code == 403
    assert custom.json()["detail"].endswith("not the header(s) x-requested-with.")


def test_public_tiles_tilejson_and_style_are_readable_by_the_portal(client, portal):
    for path in (tile_path(), "/tiles/roads.json", "/tiles/boundaries.json", "/styles/breitband.json"):
        resp = client.get(path, params={"tenant": "he"}, headers={"Origin": PORTAL})
        assert resp.status_code == 200, (path, resp.text)
        assert cors_headers(resp) == {"access-control-allow-origin": PORTAL,
                                      "access-control-expose-headers": "ETag, Content-Crs, Link"}, path
        assert resp.headers["vary"] == "Origin", path

    # revalidation: the 304 carries the same CORS headers and Vary
    first = client.get(tile_path(), params={"tenant": "he"}, headers={"Origin": DEV})
    again = client.get(tile_path(), params={"tenant": "he"},
                       headers={"Origin": DEV, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["access-control-allow-origin"] == DEV and again.headers["vary"] == "Origin"
    # HEAD as GET
    head = client.head("/tiles/roads.json", params={"tenant": "he"}, headers={"Origin": PORTAL})
    assert head.status_code == 200 and head.headers["access-control-allow-origin"] == PORTAL


def test_other_origins_and_our_own_get_no_cors_headers(client, settings, portal):
    for origin in (EVIL, "null", settings.public_base_url):
        resp = client.get("/tiles/roads.json", params={"tenant": "he"}, headers={"Origin": origin})
        assert resp.status_code == 200
        assert cors_headers(resp) == {}, origin
        assert resp.headers["vary"] == "Origin"


def test_answers_with_a_token_follow_the_callers_tenant(client, portal, he, world):
    """The OGC API and the per-caller tiles name no tenant: the token's tenant decides. A token of tenant xa (which
    lists no origin) used from Hessen's portal gets answers the browser keeps from the script."""
    ogc = client.get("/api/v1/ogc/collections", headers={"Origin": PORTAL, **he.autobahn.headers})
    assert ogc.status_code == 200
    assert ogc.headers["access-control-allow-origin"] == PORTAL
    assert ogc.headers["access-control-expose-headers"] == "ETag, Content-Crs, Link"
    assert ogc.headers["cache-control"] == "no-store" and ogc.headers["vary"] == "Origin"

    foreign = client.get("/api/v1/ogc/collections", headers={"Origin": PORTAL, **world.reviewer.headers})
    assert foreign.status_code == 200 and cors_headers(foreign) == {}
    # ?tenant= does not lend another tenant's permission to a token
    caller_tile = client.get("/tiles/applications.json", params={"tenant": "he"},
                             headers={"Origin": PORTAL, **world.operator_member.headers})
    assert caller_tile.status_code == 200 and cors_headers(caller_tile) == {}
    own = client.get("/tiles/applications.json", headers={"Origin": PORTAL, **he.operator.headers})
    assert own.status_code == 200 and own.headers["access-control-allow-origin"] == PORTAL
    assert own.headers["vary"] == "Authorization, Cookie, Origin"
    # HTTP Basic with the token as the password (GIS clients) is the same caller
    basic = client.get("/api/v1/ogc", auth=("qgis", he.autobahn.token), headers={"Origin": PORTAL})
    assert basic.status_code == 200 and basic.headers["access-control-allow-origin"] == PORTAL


def test_errors_are_readable_by_the_portal_and_never_with_credentials(client, portal):
    """A 401 (no token) and a 400 (no tenant) hold no tenant's data: the portal's script may read them, to tell its
    user what to do."""
    missing = client.get("/api/v1/ogc/collections", headers={"Origin": PORTAL})
    assert missing.status_code == 401
    assert missing.headers["access-control-allow-origin"] == PORTAL
    no_tenant = client.get("/tiles/roads.json", headers={"Origin": PORTAL})
    assert no_tenant.status_code == 400
    assert no_tenant.headers["access-control-allow-origin"] == PORTAL
    refused = client.get("/api/v1/ogc/collections", headers={"Origin": EVIL})
    assert refused.status_code == 401 and cors_headers(refused) == {}
    assert "access-control-allow-credentials" not in missing.headers


def test_only_the_gis_read_endpoints_take_part(client, portal, he):
    me = client.get("/api/v1/me", headers={"Origin": PORTAL, **he.operator.headers})
    assert me.status_code == 200
    assert cors_headers(me) == {} and "origin" not in me.headers.get("vary", "").lower()
    pre = preflight(client, "/api/v1/applications", PORTAL, method="POST")
    assert pre.status_code == 405 and cors_headers(pre) == {}


# --- the rules ------------------------------------------------------------------------------------------------------

def test_origins_are_stored_as_browsers_send_them():
    rules = parse_rules(he_rules(cors_origins=["https://GeoPortal.Hessen.de:443", PORTAL, "http://127.0.0.1:8080",
                                               "http://[::1]:3000"]))
    assert rules.gis.cors_origins == [PORTAL, "http://127.0.0.1:8080", "http://[::1]:3000"]
    assert parse_rules(he_rules()).gis.cors_origins == []


@pytest.mark.parametrize(("origin", "message"), [
    ("*", "'*' is not allowed: name each origin of a GIS portal, such as 'https://geoportal.hessen.de' "
          "(no wildcards)"),
    ("https://*.hessen.de", "is not allowed: name each origin"),
    ("null", "'null' is not allowed"),
    ("https://geoportal.hessen.de/", "'https://geoportal.hessen.de/' is not an origin: an origin has no path (not "
                                     "even '/'), query, fragment or user name; write 'https://geoportal.hessen.de'"),
    ("https://geoportal.hessen.de/karte", "has no path"),
    ("https://geoportal.hessen.de?x=1", "has no path"),
    ("https://user@geoportal.hessen.de", "has no path"),
    ("http://geoportal.hessen.de", "only https origins are allowed (plain http only for localhost or 127.0.0.1)"),
    ("geoportal.hessen.de", "is not an origin: write scheme://host[:port]"),
    ("ftp://geoportal.hessen.de", "is not an origin"),
    ("https://geoportal.hessen.de:99999", "is not an origin"),
    ("https://straßen.hessen.de", "in its xn-- form"),
])
def test_bad_origins_are_refused_when_the_rules_are_loaded(origin, message):
    with pytest.raises(UnprocessableEntity) as exc:
        validate_rules(he_rules(cors_origins=[origin]), "he")
    assert exc.value.type == "invalid-rules"
    assert "gis.cors_origins" in exc.value.detail and message in exc.value.detail, exc.value.detail


def test_the_cli_refuses_a_rules_file_with_a_bad_origin(tmp_path, engine):
    rules = tmp_path / "cz.toml"
    text = (PROJECT_ROOT / "data" / "tenants" / "he.toml").read_text().replace('key = "he"', 'key = "cz"')
    rules.write_text(text + '\n[gis]\ncors_origins = ["https://geoportal.hessen.de/karte"]\n')
    proc = subprocess.run([sys.executable, "-m", "breitband.cli", "tenant", "create", "cz", "--rules", str(rules)],
                          capture_output=True, text=True, env=os.environ.copy(), cwd=PROJECT_ROOT, timeout=120)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: Invalid rules: gis.cors_origins: Value error, 'https://geoportal.hessen.de/karte' is not "
                      "an origin: an origin has no path (not even '/'), query, fragment or user name; write "
                      "'https://geoportal.hessen.de'"], proc.stderr
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM tenants WHERE key = 'cz'").scalar() == 0


# --- a real server ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cq_tenant(engine):
    """Tenant cq (Hessen's rules under another key, listing the portal) with an operator and a token, committed so
    that a server of its own sees them; removed afterwards (organisations, users and tokens go with the tenant)."""
    raw = he_rules(cors_origins=[PORTAL])
    raw["key"] = "cq"
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM tenants WHERE key = 'cq'")
    with Session(engine) as session:
        identity.create_tenant(session, "cq", "CORS-Land", "EPSG:25832", validate_rules(raw, "cq"))
        org = identity.create_organisation(session, "cq", OrgKind.operator, "Portal-Netz GmbH")
        user = identity.create_user(session, org, "portal@cors-land.example", "Portal", Role.operator_member)
        _, secret = identity.create_token(session, user, "portal")
        session.commit()
    yield secret
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM tenants WHERE key = 'cq'")


def test_a_real_server_answers_the_portal_and_keeps_out_others(settings, cq_tenant):
    """uvicorn, real HTTP: the caller's tenant reaches the CORS decision through the request's state there too."""
    with running_server(settings, "cors-server.log") as base:
        pre = httpx.options(f"{base}/api/v1/ogc/collections", headers={
            "Origin": PORTAL, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == PORTAL
        token = {"Authorization": f"Bearer {cq_tenant}"}
        ogc = httpx.get(f"{base}/api/v1/ogc/collections", headers={"Origin": PORTAL, **token})
        assert ogc.status_code == 200, ogc.text
        assert ogc.headers["access-control-allow-origin"] == PORTAL
        assert ogc.headers["vary"] == "Origin"
        style = httpx.get(f"{base}/styles/breitband.json", params={"tenant": "cq"}, headers={"Origin": PORTAL})
        assert style.status_code == 200 and style.headers["access-control-allow-origin"] == PORTAL
        other = httpx.get(f"{base}/api/v1/ogc/collections", headers={"Origin": EVIL, **token})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
        assert "access-control-allow-credentials" not in ogc.headers
