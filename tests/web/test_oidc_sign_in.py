"""Signing in through the tenant's OpenID Provider, in the browser, against a real provider (tests/support/oidc.py:
panva/oidc-provider with its devInteractions login form): the button "Anmelden mit …" on our sign-in page, the
provider's login page, back in our app signed in where the person wanted to go; a refused sign-in (an organisation
the tenant does not map, an e-mail domain it does not allow) on our German page with the way back to sign-in; and
signing out through the provider's end_session endpoint (RP-initiated logout), which ends the provider's session too
and lands on our sign-in page.

The server is one of this module's own: it needs the client secret in its environment, and the provider, started
after it, its callback and post-logout URIs. Tenant "he" gets a ``[sign_in.oidc]`` section for the
time of the module (its rules are put back afterwards) that maps the provider's organisation "hessen-mobil" to the
Kreis Offenbach's road authority and allows the domains of the reviewer and the stranger. Screenshots at 1440×900
and 390×844 in test-artifacts/web/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from accounts.models import OidcLogin
from breitband.models import Tenant, User
from tests.support.hessen import KREIS_OFFENBACH, authority_org
from tests.support.oidc import SECRET, SECRET_ENV, OpenIdProvider, node_available, running_provider, use_oidc
from tests.support.web_server import ARTIFACTS, running_server

pytestmark = [pytest.mark.browser, pytest.mark.worker]

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
IDP_NAME = "Landesportal Hessen"
BUTTON = f"Anmelden mit {IDP_NAME}"
# the provider's accounts (tests/support/oidc/provider.mjs) whose sign-ins may provision a user here
PROVIDER_EMAILS = ("pruefer.oidc@hessen-mobil.example", "kollege.oidc@hessen-mobil.example")


@dataclass(frozen=True)
class Portal:
    base: str                 # our server
    provider: OpenIdProvider
    organisation: str         # the authority the provider's "hessen-mobil" maps to


def _clean_up(session: Session) -> None:
    """The users the provider's sign-ins provisioned, and the sign-ins begun and never finished (the last story
    leaves one on the provider's login page): other tests count them."""
    session.execute(delete(User).where(User.tenant_key == "he", User.email.in_(PROVIDER_EMAILS)))
    session.execute(delete(OidcLogin).where(OidcLogin.tenant_key == "he"))


@pytest.fixture(scope="module")
def portal(engine, he_data, settings) -> Iterator[Portal]:
    """This module's server (the provider's client secret in its environment), the provider for it, and tenant "he"
    configured for that provider (committed; the server reads the tenant's rules per request)."""
    if not node_available():
        # scripts/setup.sh installs Node (the web app needs it too): missing here is a broken set-up, not a skip
        pytest.fail("Node.js and npm are needed for the OpenID Provider (tests/support/oidc); scripts/setup.sh "
                    "installs them")
    with running_server(settings, "server-oidc.log", **{SECRET_ENV: SECRET}) as base, \
            running_provider([base], ["he"], log_dir=ARTIFACTS) as provider:
        with Session(bind=engine) as session:
            rules_before = session.get(Tenant, "he").rules
            org = authority_org(session, key=KREIS_OFFENBACH)
            organisation = org.name
            # the stranger's domain is allowed, so that its unmapped organisation is what refuses it
            use_oidc(session, "he", provider, name=IDP_NAME, organisations={"hessen-mobil": str(org.id)},
                     allowed_domains=["hessen-mobil.example", "strassenamt-fremd.example"])
            _clean_up(session)
            session.commit()
        try:
            yield Portal(base, provider, organisation)
        finally:
            with Session(bind=engine) as session:
                session.get(Tenant, "he").rules = rules_before
                _clean_up(session)
                session.commit()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def fits(page: Page) -> None:
    """Nothing wider than the screen (no sideways scrolling)."""
    assert page.evaluate("() => document.documentElement.scrollWidth") <= page.viewport_size["width"]


def sign_in_at_provider(page: Page, portal: Portal, account: str) -> None:
    """From our sign-in page: the provider's button, then its login form as ``account`` (any password)."""
    page.get_by_role("link", name=BUTTON).click()
    page.wait_for_url(f"{portal.provider.issuer}/**")
    page.locator("input[name=login]").fill(account)
    page.locator("input[name=password]").fill("beliebiges Passwort")
    page.get_by_role("button", name="Sign-in").click()


def test_sign_in_through_the_provider_and_sign_out_there_too(portal, browser, engine):
    base = portal.base
    ctx = browser.new_context(viewport=PHONE, locale="de-DE")
    try:
        page = ctx.new_page()
        page.goto(f"{base}/#/login")
        expect(page.get_by_role("link", name=BUTTON)).to_be_visible()
        fits(page)
        shot(page, "oidc-sign-in-390")
    finally:
        ctx.close()

    ctx = browser.new_context(viewport=DESKTOP, locale="de-DE")
    try:
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # a deep link while signed out: the sign-in page, and after the provider back to that very page
        page.goto(f"{base}/#/inbox?status=open")
        expect(page.get_by_role("heading", name="Anmeldung")).to_be_visible()
        button = page.get_by_role("link", name=BUTTON)
        expect(button).to_be_visible()
        expect(page.get_by_text("oder mit E-Mail-Adresse und Passwort")).to_be_visible()
        fits(page)
        shot(page, "oidc-sign-in-1440")

        sign_in_at_provider(page, portal, "reviewer")
        page.wait_for_url(f"{base}/#/inbox?status=open")
        expect(page.get_by_role("heading", name="Eingang")).to_be_visible()
        expect(page.locator("#who")).to_contain_text(f"Petra Prüfer · {portal.organisation}")
        # the inbox's map loads with the session cookie alone (the style and tiles know the caller by it)
        page.wait_for_function("() => window.breitbandMap && window.breitbandMap.loaded()")
        expect(page.locator("#status.error")).to_have_count(0)
        fits(page)
        shot(page, "oidc-signed-in-1440")
        session = page.request.get(f"{base}/api/v1/auth/session")
        assert session.status == 200, session.text()
        assert session.json()["user"]["name"] == "Petra Prüfer"
        with Session(bind=engine) as s:
            user = s.scalars(select(User).where(User.tenant_key == "he", User.email == PROVIDER_EMAILS[0])).one()
            assert (user.role, user.oidc_subject, str(user.organisation_id)) == (
                "authority_reviewer", "reviewer", str(authority_org(s, key=KREIS_OFFENBACH).id))

        # signing out ends the provider's session as well (it asks first), then our sign-in page
        page.locator("#logout").click()
        page.wait_for_url(re.compile(re.escape(portal.provider.issuer) + r"/session/end"))
        page.get_by_role("button", name="Yes, sign me out").click()
        page.wait_for_url(f"{base}/#/login")
        expect(page.get_by_role("heading", name="Anmeldung")).to_be_visible()
        assert page.request.get(f"{base}/api/v1/auth/session").status == 204      # signed out: no cookie
        shot(page, "oidc-signed-out-1440")
        # the provider forgot the person: signing in again asks for the login once more (no silent sign-in)
        page.get_by_role("link", name=BUTTON).click()
        page.wait_for_url(f"{portal.provider.issuer}/**")
        expect(page.locator("input[name=login]")).to_be_visible()
        assert errors == []
    finally:
        ctx.close()


@pytest.mark.parametrize(("account", "reason", "german", "viewport", "suffix"), [
    ("stranger", "organisation-not-mapped", "Ihre Organisation beim Identitätsanbieter ist keiner Organisation in "
                                            "Breitband zugeordnet.", DESKTOP, "1440"),
    ("foreign", "domain-not-allowed", "Die Domain Ihrer E-Mail-Adresse ist für die Anmeldung über diesen "
                                      "Identitätsanbieter nicht zugelassen.", PHONE, "390"),
], ids=["unmapped-organisation", "foreign-domain"])
def test_refused_sign_in_says_why_in_german_and_leads_back(portal, browser, engine, account, reason, german,
                                                          viewport, suffix):
    base = portal.base
    ctx = browser.new_context(viewport=viewport, locale="de-DE")
    try:
        page = ctx.new_page()
        page.goto(f"{base}/#/login")
        sign_in_at_provider(page, portal, account)
        page.wait_for_url(f"{base}/auth/oidc/he/callback?**")
        expect(page.locator(f"main[data-reason='{reason}']")).to_be_visible()
        expect(page.get_by_role("heading", name="Anmeldung nicht möglich")).to_be_visible()
        expect(page.get_by_text(german)).to_be_visible()
        expect(page.get_by_text("Wenden Sie sich an die Administration Ihrer Organisation")).to_be_visible()
        # the page looks like ours (its stylesheet, allowed by the CSP: the autouse fixture fails on a refusal)
        expect(page.locator("header.top")).to_have_text("Breitband")
        assert page.evaluate("() => getComputedStyle(document.querySelector('main')).borderTopStyle") == "solid"
        fits(page)
        shot(page, f"oidc-refused-{reason}-{suffix}")
        assert page.request.get(f"{base}/api/v1/auth/session").status == 204      # signed out: no cookie

        page.get_by_role("link", name="Zurück zur Anmeldung").click()
        page.wait_for_url(f"{base}/#/login")
        expect(page.get_by_role("heading", name="Anmeldung")).to_be_visible()
        expect(page.get_by_role("link", name=BUTTON)).to_be_visible()
    finally:
        ctx.close()
    with Session(bind=engine) as s:     # nobody provisioned
        refused = s.scalars(select(User).where(User.tenant_key == "he", User.oidc_subject == account)).all()
        assert refused == [], f"{account} was provisioned"
