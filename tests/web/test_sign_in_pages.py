"""Signing in, in the browser: the sign-in page's messages (wrong password, the wait after too many failures),
"forgot password", an invitation link (set the password → signed in → home; the link used up afterwards), an admin
deactivating a user whose open page then lands on the sign-in page saying why, signing out, and the idle timeout
(a server of its own with a six-second idle limit). Screenshots at 1440×900 and 390×844."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import delete
from sqlalchemy.orm import Session

from accounts import links
from accounts.models import LinkPurpose
from breitband import clock, identity
from breitband.models import Organisation, Role, User
from breitband.settings import PROJECT_ROOT
from tests.support.web_server import running_server

pytestmark = [pytest.mark.browser, pytest.mark.worker]

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "web"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def fits(page: Page) -> None:
    """Nothing wider than the screen (no sideways scrolling)."""
    assert page.evaluate("() => document.documentElement.scrollWidth") <= page.viewport_size["width"]


def fill_sign_in(page: Page, email: str, password: str) -> None:
    page.get_by_label("E-Mail-Adresse").fill(email)
    page.get_by_label("Passwort", exact=True).fill(password)
    page.get_by_role("button", name="Anmelden").click()


def test_sign_in_page_messages_and_forgot_password(server, people, browser):
    person = people.operator
    for viewport, suffix in ((DESKTOP, "1440"), (PHONE, "390")):
        ctx = browser.new_context(viewport=viewport, locale="de-DE")
        try:
            page = ctx.new_page()
            page.goto(f"{server}/#/applications")                     # not signed in: to the sign-in page
            expect(page.get_by_role("heading", name="Anmeldung")).to_be_visible()
            assert page.get_by_label("API-Token").count() == 0          # no token pasting any more
            assert page.get_by_label("E-Mail-Adresse").get_attribute("autocomplete") == "username"
            assert page.get_by_label("Passwort", exact=True).get_attribute("autocomplete") == "current-password"
            fits(page)
            shot(page, f"sign-in-{suffix}")
            fill_sign_in(page, person.email, "nicht-das-richtige-Passwort")
            expect(page.locator("#signin-error")).to_have_text("E-Mail-Adresse oder Passwort ist falsch.")
            fill_sign_in(page, f"niemand-{uuid.uuid4().hex[:6]}@example.org", "nicht-das-richtige-Passwort")
            expect(page.locator("#signin-error")).to_have_text("E-Mail-Adresse oder Passwort ist falsch.")
            shot(page, f"sign-in-failed-{suffix}")
            if suffix == "1440":
                page.get_by_role("link", name="Passwort vergessen?").click()
                expect(page.get_by_role("heading", name="Passwort vergessen")).to_be_visible()
                page.get_by_label("E-Mail-Adresse").fill(f"unbekannt-{uuid.uuid4().hex[:6]}@example.org")
                page.get_by_role("button", name="Link anfordern").click()
                expect(page.locator("#forgot-answer")).to_contain_text("Wenn die Adresse bei uns bekannt ist")
                shot(page, "forgot-password-1440")
            # the right password: back to where the person wanted to go
            page.goto(f"{server}/#/login")
            fill_sign_in(page, person.email, person.password)
            expect(page.get_by_role("heading", name="Meine Anträge")).to_be_visible()
            expect(page.locator("#who")).to_contain_text(person.name)
            fits(page)
            shot(page, f"signed-in-{suffix}")
        finally:
            ctx.close()


def test_too_many_failures_say_how_long_to_wait(server, browser, engine, people):
    email = f"sperre-{uuid.uuid4().hex[:6]}@glasfaser.example"
    ctx = browser.new_context(viewport=DESKTOP, locale="de-DE")
    try:
        page = ctx.new_page()
        page.goto(f"{server}/#/login")
        for _ in range(6):
            fill_sign_in(page, email, "falsches-Passwort-123")
            expect(page.locator("#signin-error")).not_to_be_empty()
        error = page.locator("#signin-error")
        expect(error).to_contain_text("Zu viele fehlgeschlagene Anmeldeversuche. Bitte warten Sie")
        # the wait from Retry-After, in words: "1 Minute", or "58 Sekunden" when the window began a moment earlier
        expect(error).to_contain_text(re.compile(r"\d+ (Minute|Minuten|Sekunden)\b"))
        shot(page, "sign-in-locked-1440")
    finally:
        ctx.close()


@dataclass(frozen=True)
class Invitee:
    id: uuid.UUID
    email: str


@pytest.fixture
def invited(engine, people) -> Iterator[tuple[Invitee, str]]:
    """A new member of the operator organisation without a password, and the secret of an invitation link
    made for them (as the admin's invitation would; the e-mail itself is the admin helper's tests')."""
    with Session(bind=engine) as session:
        org = session.get(Organisation, people.operator_org_id)
        user = identity.create_user(session, org, f"neu-{uuid.uuid4().hex[:6]}@glasfaser.example", "Nina Neu",
                                    Role.operator_member)
        issued = links.issue(session, user, LinkPurpose.invitation, created_by=None, now=clock.now())
        session.commit()
        invitee = Invitee(user.id, user.email)
    yield invitee, issued.secret
    with Session(bind=engine) as session:
        session.execute(delete(User).where(User.id == invitee.id))
        session.commit()


def test_invitation_link_sets_the_password_and_signs_in(server, browser, invited):
    user, secret = invited
    suffix = "390"
    ctx = browser.new_context(viewport=PHONE, locale="de-DE")
    try:
        page = ctx.new_page()
        page.goto(f"{server}/#/link/{secret}")
        welcome = "Willkommen, Nina Neu — legen Sie Ihr Passwort fest"
        expect(page.get_by_role("heading", name=welcome)).to_be_visible()
        expect(page.locator("#link-email")).to_have_text(user.email)
        fits(page)
        shot(page, f"invitation-{suffix}")
        page.get_by_label("Neues Passwort", exact=True).fill("kurz")
        page.get_by_label("Neues Passwort wiederholen").fill("kurz")
        page.get_by_role("button", name="Passwort festlegen und anmelden").click()
        expect(page.locator("#link-error")).to_have_text("Das Passwort ist zu kurz: mindestens 12 Zeichen.")
        page.get_by_label("Neues Passwort", exact=True).fill("passwort1234")
        page.get_by_label("Neues Passwort wiederholen").fill("passwort1234")
        page.get_by_role("button", name="Passwort festlegen und anmelden").click()
        expect(page.locator("#link-error")).to_contain_text("zu verbreitet")
        good = "Leuchtturm am Deich 1987"
        page.get_by_label("Neues Passwort", exact=True).fill(good)
        page.get_by_label("Neues Passwort wiederholen").fill(good)
        page.get_by_role("button", name="Passwort festlegen und anmelden").click()
        expect(page.get_by_role("heading", name="Meine Anträge")).to_be_visible()
        expect(page.locator("#who")).to_contain_text("Nina Neu")
        expect(page.locator("#status")).to_have_text("Ihr Passwort ist festgelegt. Sie sind angemeldet.")
        # the link is used up: said in German, with what to do
        page.goto(f"{server}/#/link/{secret}")
        expect(page.get_by_role("heading", name="Dieser Link wurde bereits benutzt")).to_be_visible()
        expect(page.locator("#dead-link")).to_contain_text("Bitten Sie die Administration Ihrer Organisation")
        shot(page, f"link-used-{suffix}")
        page.goto(f"{server}/#/link/bb_gibt-es-nicht")
        expect(page.get_by_role("heading", name="Dieser Link ist nicht gültig")).to_be_visible()
        expect(page.locator("#request-new-link")).to_be_visible()
        # and the new password signs in
        r = httpx.post(f"{server}/api/v1/auth/login", json={"tenant": "he", "email": user.email, "password": good})
        assert r.status_code == 200, r.text
    finally:
        ctx.close()


def test_admin_deactivates_a_user_whose_open_page_lands_on_sign_in(server, people, browser):
    errors: list[str] = []
    op_ctx = browser.new_context(viewport=DESKTOP, locale="de-DE")
    ad_ctx = browser.new_context(viewport=DESKTOP, locale="de-DE")
    try:
        op = op_ctx.new_page()
        op.on("pageerror", lambda e: errors.append(str(e)))
        op.request.post(f"{server}/api/v1/auth/login",
                        data={"tenant": "he", "email": people.body.email, "password": people.body.password})
        op.goto(f"{server}/#/statements")
        expect(op.locator("#who")).to_contain_text(people.body.name)

        ad = ad_ctx.new_page()
        ad.request.post(f"{server}/api/v1/auth/login",
                        data={"tenant": "he", "email": people.admin.email, "password": people.admin.password})
        ad.goto(f"{server}/#/")
        ad.get_by_role("link", name="Benutzer").click()
        expect(ad.get_by_role("heading", name="Benutzer")).to_be_visible()
        ad.get_by_label("Suche (Name oder E-Mail)").fill(people.body.email)
        ad.get_by_role("button", name="Filtern").click()
        row = ad.locator(f"#users-table tr[data-email='{people.body.email}']")
        expect(ad.locator("#users-table tbody tr")).to_have_count(1)
        expect(row).to_contain_text("aktiv")
        shot(ad, "admin-users-1440")
        row.get_by_role("button", name="Deaktivieren …").click()
        expect(row).to_contain_text(f"{people.body.name} deaktivieren?")
        row.get_by_role("button", name="Ja, deaktivieren").click()
        expect(ad.locator("#status")).to_have_text(f"{people.body.name} ist deaktiviert.")
        expect(row).to_contain_text("deaktiviert")

        # the deactivated person's next click: the sign-in page says why
        op.locator("#who a").click()
        expect(op.get_by_role("heading", name="Anmeldung")).to_be_visible()
        # the server says why: deactivated (breitband/sessions.py checks that before "ended")
        expect(op.locator("#signin-reason")).to_contain_text("deaktiviert")
        shot(op, "deactivated-lands-on-sign-in-1440")
        fill_sign_in(op, people.body.email, people.body.password)
        expect(op.locator("#signin-error")).to_contain_text("Ihr Benutzerkonto ist deaktiviert.")

        row.get_by_role("button", name="Reaktivieren").click()
        expect(ad.locator("#status")).to_have_text(f"{people.body.name} ist wieder aktiv.")
        assert errors == []
    finally:
        op_ctx.close()
        ad_ctx.close()


@pytest.fixture
def short_idle_server(people, settings, worker) -> Iterator[str]:
    """A second server whose sessions end after six seconds without a request."""
    with running_server(settings, "server-idle.log", BREITBAND_SESSION_IDLE_MINUTES="0.1") as base:
        yield base


def test_sign_out_and_idle_timeout(short_idle_server, people, browser):
    base = short_idle_server
    ctx = browser.new_context(viewport=DESKTOP, locale="de-DE")
    try:
        page = ctx.new_page()
        page.goto(f"{base}/#/login")
        fill_sign_in(page, people.reviewer.email, people.reviewer.password)
        expect(page.get_by_role("heading", name="Eingang")).to_be_visible()
        page.locator("#logout").click()
        expect(page.get_by_role("heading", name="Anmeldung")).to_be_visible()
        expect(page.locator("#status")).to_have_text("Sie sind abgemeldet.")
        assert page.request.get(f"{base}/api/v1/auth/session").status == 204     # the cookie is gone: nobody

        # idle: the open page goes to the sign-in page by itself and says why; after signing in, back to the case
        page.goto(f"{base}/#/inbox?status=open")
        fill_sign_in(page, people.reviewer.email, people.reviewer.password)
        expect(page).to_have_url(f"{base}/#/inbox?status=open")
        expect(page.get_by_role("heading", name="Anmeldung")).to_be_visible(timeout=20_000)
        expect(page.locator("#signin-reason")).to_contain_text("Ihre Sitzung ist abgelaufen")
        shot(page, "idle-timeout-1440")
        fill_sign_in(page, people.reviewer.email, people.reviewer.password)
        expect(page).to_have_url(f"{base}/#/inbox?status=open")
    finally:
        ctx.close()
