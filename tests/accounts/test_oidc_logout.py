"""Signing out of a session that began at the tenant's OpenID Provider: POST /api/v1/auth/logout ends ours and
answers the provider's logout URL (accounts.oidc.logout_url); the options name the provider."""

from __future__ import annotations

import httpx

from breitband import sessions
from tests.accounts.test_oidc import idp, sign_in  # noqa: F401  (the fixture, used by name)


def test_logout_of_an_oidc_session_answers_the_idp_logout_url(client, session, idp):  # noqa: F811
    assert sign_in(client, idp).status_code == 302
    csrf = client.get("/api/v1/auth/session").json()["csrf_token"]
    r = client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    url = httpx.URL(r.json()["logout_url"])
    assert str(url).startswith(idp.issuer + "/session/end?") and url.params["id_token_hint"]
    assert sessions.cookie_name() in r.headers["set-cookie"]
    assert client.get("/api/v1/auth/session").status_code == 204        # signed out: the cookie is gone


def test_options_offer_the_idp(client, idp):  # noqa: F811
    tenants = {t["key"]: t for t in client.get("/api/v1/auth/options").json()["tenants"]}
    assert tenants["xa"]["oidc"] == {"name": "Test-IdP", "start_url": "/auth/oidc/xa/start"}
    assert tenants["xa"]["local"] is True
