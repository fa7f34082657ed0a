"""OpenID Connect sign-in per tenant (accounts/oidc.py) against a real OpenID Provider (panva/oidc-provider run by
tests/support/oidc.py): the whole Authorization Code flow with PKCE driven over HTTP, provisioning and linking, and
every way it must fail — with a page that says so and nobody provisioned."""

from __future__ import annotations

import base64
import json
import tomllib
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import func, select, update

from accounts import oidc
from accounts.models import OidcLogin, SecurityEvent
from breitband import clock, identity, sessions
from breitband.app import create_app
from breitband.headers import CSP
from breitband.models import Role, User, WebSession
from breitband.settings import PROJECT_ROOT
from geo.rules import parse_rules
from tests.conftest import TEST_LIMITS_REDIS_URL
from tests.support.oidc import INTRUDER, callback_uri, use_oidc
from tests.support.waiting import free_port

ORG = "Straßenbauamt Testland A"          # the road authority of tenant xa (tests/conftest.py world)
REVIEWER = "pruefer.oidc@hessen-mobil.example"
DOMAINS = ["hessen-mobil.example", "strassenamt-fremd.example"]


@pytest.fixture
def idp(session, world, oidc_provider):
    """Tenant xa signs in through the test provider; its org "hessen-mobil" is the tenant's road authority (the
    domain of the unmapped organisation's account is allowed, so that its organisation is what fails)."""
    use_oidc(session, "xa", oidc_provider, organisations={"hessen-mobil": ORG}, allowed_domains=DOMAINS)
    session.commit()
    return oidc_provider


def start(client, tenant="xa", **params):
    response = client.get(f"/auth/oidc/{tenant}/start", params=params, follow_redirects=False)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def callback(client, url):
    """Our callback for the URL the provider sent the browser to (any host: the test client is the browser)."""
    parts = urlsplit(url)
    return client.get(f"{parts.path}?{parts.query}", follow_redirects=False)


def sign_in(client, provider, account="reviewer", **params):
    return callback(client, provider.sign_in(start(client, **params), account))


def reason(response) -> str:
    assert response.headers["content-type"].startswith("text/html")
    return response.text.split('data-reason="', 1)[1].split('"', 1)[0]


def users_with(session, email) -> int:
    return session.scalar(select(func.count()).select_from(User).where(User.email == email))


def events(session, kind):
    return list(session.scalars(select(SecurityEvent).where(SecurityEvent.tenant_key == "xa",
                                                            SecurityEvent.kind == kind).order_by(SecurityEvent.id)))


# --- the flow -------------------------------------------------------------------------------------------------------

def test_start_sends_the_browser_to_the_idp_with_pkce_state_and_nonce(client, session, idp):
    url = urlsplit(start(client, return_to="/#/case/42"))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}" == idp.issuer
    assert query["client_id"] == idp.client_id and query["response_type"] == "code"
    assert query["redirect_uri"] == callback_uri(client.app.state.settings.public_base_url, "xa")
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert set(query["scope"].split()) == {"openid", "email", "profile", "org", "role"}
    login = session.get(OidcLogin, query["state"])
    assert login.nonce == query["nonce"] and login.tenant_key == "xa" and login.return_to == "/#/case/42"
    assert len(login.code_verifier) >= 43 and login.code_verifier not in url.query   # only its hash travels
    assert client.cookies.get(oidc.STATE_COOKIE) == query["state"]


def test_first_sign_in_provisions_the_user_and_the_cookie_works(client, session, idp):
    response = sign_in(client, idp)
    assert response.status_code == 302, response.text
    assert response.headers["location"] == "/#/"
    assert sessions.cookie_name() in response.cookies
    me = client.get("/api/v1/me")
    assert me.status_code == 200, me.text
    assert me.json()["email"] == REVIEWER and me.json()["role"] == "authority_reviewer"
    assert me.json()["organisation"]["name"] == ORG
    user = session.scalar(select(User).where(User.email == REVIEWER))
    assert (user.oidc_issuer, user.oidc_subject, user.name) == (idp.issuer, "reviewer", "Petra Prüfer")
    assert user.password_hash is None and user.last_sign_in_at is not None
    web = session.scalar(select(WebSession).where(WebSession.user_id == user.id))
    assert web.method == "oidc" and web.mfa is False and web.oidc_id_token.count(".") == 2
    assert session.scalar(select(func.count()).select_from(OidcLogin)) == 0       # the state is used up
    assert [e.user_id for e in events(session, "user-provisioned")] == [user.id]
    assert events(session, "oidc-sign-in")[0].detail["provisioned"] is True


def test_second_sign_in_reuses_the_user_with_a_new_session_and_lands_on_return_to(client, session, idp):
    assert sign_in(client, idp).status_code == 302
    first = client.cookies.get(sessions.cookie_name())
    response = sign_in(client, idp, return_to="/#/case/7")
    assert response.status_code == 302 and response.headers["location"] == "/#/case/7"
    assert client.cookies.get(sessions.cookie_name()) != first
    assert users_with(session, REVIEWER) == 1
    assert session.scalar(select(func.count()).select_from(WebSession).join(User).where(User.email == REVIEWER)) == 2
    assert len(events(session, "user-provisioned")) == 1 and len(events(session, "oidc-sign-in")) == 2


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x",
                                    "/#/" + "x" * 600])
def test_return_to_elsewhere_lands_on_the_start_page(client, idp, target):
    response = sign_in(client, idp, return_to=target)
    assert response.status_code == 302 and response.headers["location"] == "/#/"


def test_an_existing_user_with_the_address_is_linked_not_duplicated(client, session, world, idp):
    org = identity.find_organisation(session, "xa", ORG)
    local = identity.create_user(session, org, REVIEWER, "Petra (lokal)", Role.authority_admin)
    session.commit()
    response = sign_in(client, idp)
    assert response.status_code == 302, response.text
    session.refresh(local)
    assert (local.oidc_issuer, local.oidc_subject) == (idp.issuer, "reviewer")
    assert local.role == "authority_reviewer"                       # the IdP's role is taken over
    assert users_with(session, REVIEWER) == 1
    changed = events(session, "role-changed")
    assert changed[0].detail == {"before": "authority_admin", "after": "authority_reviewer", "source": "oidc"}
    assert events(session, "oidc-sign-in")[0].detail["linked"] is True


def test_rp_initiated_logout_url_ends_the_session_at_the_idp(client, session, idp):
    sign_in(client, idp)
    web = session.scalar(select(WebSession).join(User).where(User.email == REVIEWER))
    url = httpx.URL(oidc.logout_url(session, "xa", web.oidc_id_token))
    base = client.app.state.settings.public_base_url
    assert str(url).startswith(idp.issuer + "/session/end?")
    assert url.params["id_token_hint"] == web.oidc_id_token and url.params["client_id"] == idp.client_id
    assert url.params["post_logout_redirect_uri"] == f"{base}/auth/oidc/xa/signed-out"
    # the provider accepts it: its confirmation form, then back to our signed-out address
    page = idp.browser.get(str(url))
    assert page.status_code == 200, page.text
    xsrf = page.text.split('name="xsrf" value="', 1)[1].split('"', 1)[0]
    back = idp.browser.post(f"{idp.issuer}/session/end/confirm", data={"xsrf": xsrf, "logout": "yes"})
    assert back.status_code in (302, 303) and back.headers["location"] == f"{base}/auth/oidc/xa/signed-out"
    landed = client.get("/auth/oidc/xa/signed-out", follow_redirects=False)
    assert landed.status_code == 302 and landed.headers["location"] == "/#/login"
    assert oidc.logout_url(session, "xa", None) is None


def test_public_options_name_the_idp(session, world, idp):
    tenant = identity.get_tenant(session, "xa")
    assert oidc.public_options(tenant) == {"name": "Test-IdP", "start_url": "/auth/oidc/xa/start"}
    tenant.rules = {}
    assert oidc.public_options(tenant) is None


# --- failures: a page, and nobody provisioned ------------------------------------------------------------------------

def assert_refused(response, session, expected: str, status: int):
    assert response.status_code == status, response.text
    assert reason(response) == expected
    assert "Anmeldung nicht möglich" in response.text and "Sign-in failed" in response.text
    assert 'href="/#/login"' in response.text
    assert response.headers["content-security-policy"] == CSP and response.headers["cache-control"] == "no-store"
    assert sessions.cookie_name() not in response.cookies
    assert users_with(session, REVIEWER) == 0
    assert session.scalar(select(func.count()).select_from(WebSession)) == 0


def test_state_from_another_browser_is_refused(client, session, idp):
    back = idp.sign_in(start(client), "reviewer")
    client.cookies.clear()                      # the callback arrives in a browser that did not start it
    response = callback(client, back)
    assert_refused(response, session, "state-mismatch", 400)
    assert events(session, "oidc-failed")[0].detail["reason"] == "state-mismatch"


def test_a_replayed_callback_is_refused(client, session, idp):
    back = idp.sign_in(start(client), "reviewer")
    state = client.cookies.get(oidc.STATE_COOKIE)
    assert callback(client, back).status_code == 302
    client.cookies.set(oidc.STATE_COOKIE, state, path="/auth/oidc/xa/")
    response = callback(client, back)
    assert response.status_code == 400 and reason(response) == "state-unknown"
    assert users_with(session, REVIEWER) == 1


def test_an_unknown_state_is_refused(client, session, idp):
    response = client.get("/auth/oidc/xa/callback", params={"state": "made-up", "code": "x"})
    assert_refused(response, session, "state-unknown", 400)
    assert_refused(client.get("/auth/oidc/xa/callback"), session, "state-unknown", 400)


def test_an_expired_state_is_refused(client, session, idp):
    back = idp.sign_in(start(client), "reviewer")
    session.execute(update(OidcLogin).values(created_at=clock.now() - timedelta(minutes=11)))
    session.commit()
    assert_refused(callback(client, back), session, "state-expired", 400)
    assert session.scalar(select(func.count()).select_from(OidcLogin)) == 0


def test_a_nonce_that_is_not_this_logins_is_refused(client, session, idp):
    back = idp.sign_in(start(client), "reviewer")
    session.execute(update(OidcLogin).values(nonce="another-login"))
    session.commit()
    assert_refused(callback(client, back), session, "nonce", 400)


def test_a_code_issued_to_another_client_is_not_redeemed(client, session, idp):
    authorize = httpx.URL(start(client))
    back = idp.sign_in(str(authorize.copy_set_param("client_id", INTRUDER[0])), "reviewer")
    assert_refused(callback(client, back), session, "token-exchange-failed", 400)


def test_an_answer_naming_another_issuer_is_refused(client, session, idp):
    back = httpx.URL(idp.sign_in(start(client), "reviewer")).copy_set_param("iss", "https://evil.example")
    assert_refused(callback(client, str(back)), session, "issuer-mismatch", 400)


def test_the_idp_refusing_is_shown(client, session, idp):
    start(client)
    state = client.cookies.get(oidc.STATE_COOKIE)
    response = client.get("/auth/oidc/xa/callback", params={"state": state, "error": "access_denied",
                                                            "error_description": "user cancelled"})
    assert_refused(response, session, "idp-error", 400)
    assert "access_denied" in response.text


@pytest.mark.parametrize(("account", "expected", "email"), [
    ("stranger", "organisation-not-mapped", "jemand@strassenamt-fremd.example"),
    ("foreign", "domain-not-allowed", "pruefer@gmail.example"),
    ("unverified", "email-unverified", "neu.oidc@hessen-mobil.example"),
    ("chief", "role-not-mapped", "chefin.oidc@hessen-mobil.example"),
])
def test_claims_the_tenant_does_not_allow_are_refused(client, session, idp, account, expected, email):
    response = sign_in(client, idp, account)
    assert_refused(response, session, expected, 403)
    assert users_with(session, email) == 0
    failed = events(session, "oidc-failed")
    assert [(e.detail["reason"], e.email) for e in failed] == [(expected, email)]


def test_a_mapped_organisation_the_tenant_lacks_is_refused(client, session, world, oidc_provider):
    use_oidc(session, "xa", oidc_provider, organisations={"hessen-mobil": "Gibt es nicht"})
    session.commit()
    assert_refused(sign_in(client, oidc_provider), session, "organisation-not-mapped", 403)


def test_a_role_that_does_not_fit_the_organisation_is_refused(client, session, world, oidc_provider):
    use_oidc(session, "xa", oidc_provider, organisations={"hessen-mobil": ORG}, roles={"pruefer": "tenant_admin"})
    session.commit()
    assert_refused(sign_in(client, oidc_provider), session, "role-not-mapped", 403)


def test_a_deactivated_user_is_refused(client, session, idp):
    assert sign_in(client, idp).status_code == 302
    user = session.scalar(select(User).where(User.email == REVIEWER))
    identity.set_user_active(session, user, False)
    session.commit()
    client.cookies.clear()
    response = sign_in(client, idp)
    assert response.status_code == 403 and reason(response) == "user-deactivated"
    assert session.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == user.id)) == 1


def test_unknown_people_are_not_provisioned_when_the_tenant_says_so(client, session, world, oidc_provider):
    use_oidc(session, "xa", oidc_provider, organisations={"hessen-mobil": ORG}, provision=False)
    session.commit()
    assert_refused(sign_in(client, oidc_provider), session, "user-unknown", 403)


def test_a_user_linked_to_another_identity_is_refused(client, session, world, idp):
    org = identity.find_organisation(session, "xa", ORG)
    user = identity.create_user(session, org, REVIEWER, "Petra", Role.authority_reviewer)
    user.oidc_issuer, user.oidc_subject = idp.issuer, "somebody-else"
    session.commit()
    response = sign_in(client, idp)
    assert response.status_code == 403 and reason(response) == "account-linked-elsewhere"


def test_a_user_of_another_organisation_is_refused(client, session, world, idp):
    identity.create_user(session, world.operating_office, REVIEWER, "Petra", Role.tenant_admin)
    session.commit()
    response = sign_in(client, idp)
    assert response.status_code == 403 and reason(response) == "organisation-mismatch"


def test_a_tenant_without_oidc_has_none(client, session, world, other_world):
    for tenant in ("xb", "nope", "NO/../x"):
        response = client.get(f"/auth/oidc/{tenant}/start", follow_redirects=False)
        assert response.status_code == 404 and reason(response) == "not-configured"
    response = client.get("/auth/oidc/xb/callback", params={"state": "x", "code": "y"})
    assert response.status_code == 404 and reason(response) == "not-configured"


def test_an_unreachable_idp_is_a_page_not_a_500(client, session, world, oidc_provider):
    use_oidc(session, "xa", oidc_provider, issuer=f"http://127.0.0.1:{free_port()}")
    session.commit()
    response = client.get("/auth/oidc/xa/start", follow_redirects=False)
    assert response.status_code == 502 and reason(response) == "idp-unavailable"


# --- the ID token's checks, on real tokens of the provider ------------------------------------------------------------

@pytest.fixture
def config(idp):
    return parse_rules({**_he_rules(), "sign_in": {"oidc": idp.rules()}}).sign_in.oidc


def _he_rules():
    return tomllib.loads((PROJECT_ROOT / "data" / "tenants" / "he.toml").read_text())


def tokens(idp, client_pair, base_url, nonce="n-1"):
    return idp.tokens_for(client_pair, "reviewer", callback_uri(base_url, "xa"), nonce=nonce)


def test_a_valid_id_token_passes(idp, config, settings):
    raw = tokens(idp, (idp.client_id, idp.client_secret), settings.public_base_url)["id_token"]
    claims = oidc.validate_id_token(raw, config, oidc.metadata(idp.issuer), "n-1")
    assert claims["sub"] == "reviewer" and claims["aud"] == idp.client_id and claims["org"] == "hessen-mobil"


def test_an_id_token_for_another_audience_is_refused(idp, config, settings):
    raw = tokens(idp, INTRUDER, settings.public_base_url)["id_token"]
    with pytest.raises(oidc.OidcFailure) as failure:
        oidc.validate_id_token(raw, config, oidc.metadata(idp.issuer), "n-1")
    assert failure.value.reason == "audience"


def test_a_tampered_id_token_is_refused(idp, config, settings):
    raw = tokens(idp, (idp.client_id, idp.client_secret), settings.public_base_url)["id_token"]
    header, payload, signature = raw.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "role": "chef"}).encode()).rstrip(b"=").decode()
    with pytest.raises(oidc.OidcFailure) as failure:
        oidc.validate_id_token(f"{header}.{forged}.{signature}", config, oidc.metadata(idp.issuer), "n-1")
    assert failure.value.reason == "signature"
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    with pytest.raises(oidc.OidcFailure) as failure:
        oidc.validate_id_token(f"{unsigned}.{payload}.", config, oidc.metadata(idp.issuer), "n-1")
    assert failure.value.reason == "signature"


def test_an_id_token_signed_with_a_key_the_idp_does_not_publish_is_refused(idp, config, settings):
    """Same claims, signed by a key of our own with a key id the IdP's JWKS lacks (fetched again, still lacking)."""
    raw = tokens(idp, (idp.client_id, idp.client_secret), settings.public_base_url)["id_token"]
    claims = jwt.decode(raw, oidc.keys(oidc.metadata(idp.issuer))).claims
    forged = jwt.encode({"alg": "RS256", "kid": "not-the-idps"}, claims,
                        RSAKey.generate_key(2048, parameters={"kid": "not-the-idps"}))
    with pytest.raises(oidc.OidcFailure) as failure:
        oidc.validate_id_token(forged, config, oidc.metadata(idp.issuer), "n-1")
    assert failure.value.reason == "signature" and "not-the-idps" in failure.value.detail


def test_an_expired_id_token_and_a_wrong_nonce_are_refused(idp, config, settings):
    raw = tokens(idp, (idp.client_id, idp.client_secret), settings.public_base_url)["id_token"]
    meta = oidc.metadata(idp.issuer)
    later = clock.now() + timedelta(hours=1)
    with pytest.raises(oidc.OidcFailure) as failure:
        oidc.validate_id_token(raw, config, meta, "n-1", now=later)
    assert failure.value.reason == "token-expired"
    with pytest.raises(oidc.OidcFailure) as failure:
        oidc.validate_id_token(raw, config, meta, "n-2")
    assert failure.value.reason == "nonce"


# --- the rules ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "message"), [
    ({"issuer": "http://idp.example/realms/he"}, "must be an https URL"),
    ({"roles": {"pruefer": "koenig"}}, "sign_in.oidc.roles.pruefer"),
    ({"client_secret_env": "not a name"}, "must name an environment variable"),
    ({"client_secret": "s3cret"}, "exactly one of client_secret_env"),
    ({"allowed_domains": ["nicht eine domain"]}, "is not a domain"),
    ({"scopes": ["email"]}, "must contain 'openid'"),
    ({"surprise": 1}, "Extra inputs are not permitted"),
])
def test_rules_refuse_a_bad_oidc_section(change, message):
    section = {"name": "IdP", "issuer": "https://idp.example/realms/he", "client_id": "breitband",
               "client_secret_env": "BREITBAND_OIDC_HE_CLIENT_SECRET", "organisations": {"a": "A"},
               "roles": {"pruefer": "authority_reviewer"}, "allowed_domains": ["hessen-mobil.example"]}
    parse_rules({**_he_rules(), "sign_in": {"oidc": section}})          # the section as such is valid
    with pytest.raises(Exception, match="Invalid rules") as refused:
        parse_rules({**_he_rules(), "sign_in": {"oidc": {**section, **change}}})
    assert message in refused.value.detail
    for local in ("http://localhost:8080/realms/he", "http://127.0.0.1:4711"):
        parse_rules({**_he_rules(), "sign_in": {"oidc": {**section, "issuer": local}}})


def test_failed_callbacks_count_against_the_address(settings, db, session, world, oidc_provider):
    """Guessing states or replaying callbacks counts as failed authentication of the client address
    (rate_limit_auth_failures): over the limit, start and callback answer 429 with a page and Retry-After."""
    use_oidc(session, "xa", oidc_provider, organisations={"hessen-mobil": ORG}, allowed_domains=DOMAINS)
    session.commit()
    counters = redis.Redis.from_url(TEST_LIMITS_REDIS_URL)
    counters.flushdb()
    app = create_app(settings.model_copy(update={"rate_limit_auth_failures": "2/60"}), db=db)
    try:
        with TestClient(app) as client:
            for _ in range(2):
                assert reason(client.get("/auth/oidc/xa/callback", params={"state": "guess"})) == "state-unknown"
            for path in ("/auth/oidc/xa/callback", "/auth/oidc/xa/start"):
                response = client.get(path, params={"state": "guess"}, follow_redirects=False)
                assert response.status_code == 429 and reason(response) == "too-many-attempts"
                assert int(response.headers["retry-after"]) > 0
    finally:
        counters.flushdb()
        counters.close()
