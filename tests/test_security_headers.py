"""Issue 11, finding 8: security headers on every response (breitband/headers.py), /docs from our own assets,
absolute links from public_base_url instead of the Host header, /readyz without details for anonymous callers."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from breitband.app import create_app
from breitband.settings import PROJECT_ROOT

PUBLIC = "https://breitband.example"


@pytest.fixture
def https_client(settings, db):
    app = create_app(settings.model_copy(update={"public_base_url": PUBLIC}), db=db)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _csp(response) -> dict[str, str]:
    return {d.split()[0]: " ".join(d.split()[1:]) for d in response.headers["content-security-policy"].split("; ")}


def test_web_app_page_has_a_csp_without_inline_script_and_the_frame_headers(client):
    r = client.get("/")
    assert r.status_code == 200
    csp = _csp(r)
    assert csp["script-src"] == "'self'"                                   # no 'unsafe-inline', no 'unsafe-eval'
    assert "unsafe" not in r.headers["content-security-policy"]
    assert csp["frame-ancestors"] == "'none'"
    assert csp["worker-src"] == "'self' blob:" and csp["img-src"] == "'self' data: blob:"
    assert csp["connect-src"] == "'self'" and csp["object-src"] == "'none'" and csp["base-uri"] == "'none'"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in r.headers                     # http://localhost: no HSTS
    # the built page itself has no inline script or style the CSP would block
    html = (PROJECT_ROOT / "web" / "dist" / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html and " style=" not in html


def test_hsts_only_for_an_https_public_base_url(https_client):
    r = https_client.get("/healthz")
    assert r.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def test_personal_data_is_no_store_public_tiles_and_assets_keep_their_caching(client, world):
    me = client.get("/api/v1/me", headers=world.operator_member.headers)
    assert me.status_code == 200 and me.headers["cache-control"] == "no-store"
    # also an answer that set its own caching (an ETag read), and errors
    missing = client.get("/api/v1/applications/00000000-0000-0000-0000-000000000000",
                         headers=world.operator_member.headers)
    assert missing.status_code == 404 and missing.headers["cache-control"] == "no-store"
    assert missing.headers["content-security-policy"].startswith("default-src 'self'")
    assert client.get("/api/v1/me").headers["cache-control"] == "no-store"              # 401
    page = client.get("/verify/00000000-0000-0000-0000-000000000000")
    assert page.status_code == 404 and page.headers["cache-control"] == "no-store"
    # the web app's hashed assets stay cacheable for a year
    asset = next((PROJECT_ROOT / "web" / "dist" / "assets").glob("*.css")).name
    r = client.get(f"/assets/{asset}")
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert client.get("/").headers["cache-control"] == "no-cache"


def test_docs_are_served_from_our_own_assets(client):
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for word in ("cdn", "jsdelivr", "unpkg", "http://", "https://"):
        assert word not in r.text.lower()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", r.text) == []            # no inline script
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', r.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for path in assets:
        assert client.get(path).status_code == 200, path
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/redoc").status_code == 404
    assert _csp(r)["script-src"] == "'self'"


def test_ogc_links_come_from_public_base_url_not_the_host_header(https_client, world):
    h = {**world.operator_member.headers, "Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    bodies = [https_client.get(path, headers=h).json() for path in (
        "/api/v1/ogc", "/api/v1/ogc/collections", "/api/v1/ogc/collections/applications",
        "/api/v1/ogc/collections/applications/items?limit=5&offset=5")]
    hrefs = [link["href"] for body in bodies for link in body["links"]]
    hrefs += [link["href"] for c in bodies[1]["collections"] for link in c["links"]]
    assert len(hrefs) >= 10
    assert "evil" not in str(bodies)
    assert all(href.startswith(PUBLIC + "/") for href in hrefs), hrefs
    items = {link["rel"]: link["href"] for link in bodies[3]["links"]}
    assert items["self"] == f"{PUBLIC}/api/v1/ogc/collections/applications/items?limit=5&offset=5"
    assert items["prev"] == f"{PUBLIC}/api/v1/ogc/collections/applications/items?limit=5&offset=0"


def test_readyz_anonymous_has_no_versions_hosts_or_workers(client, world):
    r = client.get("/readyz")
    body = r.json()
    assert set(body) == {"ready", "checks"}
    assert set(body["checks"]) == {"database", "postgis", "migrations", "broker", "worker"}
    assert all(set(c) == {"ok"} and isinstance(c["ok"], bool) for c in body["checks"].values())
    assert body["checks"]["database"]["ok"] is True and body["checks"]["postgis"]["ok"] is True
    assert "PostgreSQL" not in r.text and "PostGIS" not in r.text and "redis" not in r.text
    # a non-admin token changes nothing; a tenant admin sees the details; a bad token is 401
    assert client.get("/readyz", headers=world.reviewer.headers).json()["checks"]["database"] == {"ok": True}
    admin = client.get("/readyz", headers=world.admin.headers).json()
    assert admin["checks"]["database"]["detail"].startswith("PostgreSQL ")
    assert admin["checks"]["postgis"]["detail"].startswith("PostGIS 3.")
    bad = client.get("/readyz", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.headers["content-type"] == "application/problem+json"
