"""The account page in the browser, signed in with a session: the profile, the user's open sessions (this one
marked, another one ended from here), API tokens (read-only or read-write, the secret shown once with a copy button,
revoked), changing the password (the other sessions end), the second factor (QR code from the server as an image,
confirmed with a code computed by pyotp; signing in then asks for a code), and "sign out everywhere"."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import update
from sqlalchemy.orm import Session

from accounts import passwords
from breitband.models import User
from breitband.settings import PROJECT_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.worker]

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "web"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
BERLIN = ZoneInfo("Europe/Berlin")
OTHER_DEVICE = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def shown(moment: str) -> str:
    """How the web app shows a time (de-DE, dateStyle short, timeStyle short) in Europe/Berlin."""
    d = datetime.fromisoformat(moment).astimezone(BERLIN)
    return f"{d:%d.%m.%y}, {d:%H:%M}"


def sign_in_elsewhere(server: str, person) -> httpx.Client:
    """A second device: its own cookie jar, signed in by the API."""
    other = httpx.Client(base_url=server, headers={"User-Agent": OTHER_DEVICE}, timeout=10)
    r = other.post("/api/v1/auth/login", json={"tenant": "he", "email": person.email, "password": person.password})
    assert r.status_code == 200, r.text
    return other


def sign_in_form(page, server: str, person, password: str) -> None:
    page.goto(f"{server}/#/login")
    page.get_by_label("E-Mail-Adresse").fill(person.email)
    page.get_by_label("Passwort", exact=True).fill(password)
    page.get_by_role("button", name="Anmelden").click()


@pytest.fixture
def restore_password(engine, people):
    """The test changes the reviewer's password and turns on the second factor: put both back afterwards, so the
    module's other tests sign in as before."""
    yield
    with Session(bind=engine) as session:
        session.execute(update(User).where(User.id == people.reviewer.user_id).values(
            password_hash=passwords.hash_password(people.reviewer.password), totp_secret=None, totp_enabled_at=None,
            totp_last_step=None, failed_sign_ins=0, locked_until=None))
        session.commit()


def test_account_sessions_tokens_password_and_second_factor(server, people, browser, restore_password):
    person = people.reviewer
    api = f"{server}/api/v1"
    errors: list[str] = []
    other = sign_in_elsewhere(server, person)
    ctx = browser.new_context(viewport=DESKTOP, locale="de-DE", timezone_id="Europe/Berlin")
    try:
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        sign_in_form(page, server, person, person.password)
        expect(page.locator("#who")).to_contain_text(person.name)
        assert page.evaluate("() => Object.keys(sessionStorage).length") == 0        # nothing kept by the script
        page.locator("#who a").click()
        expect(page.get_by_role("heading", name="Ihr Zugang")).to_be_visible()
        expect(page.locator("dl.me")).to_contain_text(person.email)

        # sessions: this one (marked) and the other device; end the other one from here
        sessions = page.locator("#sessions-table tbody tr")
        expect(sessions).to_have_count(2)
        expect(sessions.filter(has_text="diese Sitzung")).to_have_count(1)
        windows = sessions.filter(has_text="Firefox unter Windows")
        expect(windows).to_have_count(1)
        page.screenshot(path=str(ARTIFACTS / "account-1440.png"), full_page=True)
        windows.get_by_role("button", name="Sitzung auf Firefox unter Windows beenden").click()
        expect(page.locator("#status")).to_have_text("Die Sitzung ist beendet.")
        expect(sessions).to_have_count(1)
        refused = other.get("/api/v1/me")
        assert refused.status_code == 401 and refused.json()["type"].endswith("session-ended")

        # tokens: a read-only one for QGIS, the secret once with a copy button; it reads but may not write
        form = page.locator("#token-create")
        form.get_by_label("Bezeichnung").fill("QGIS Büro")
        form.get_by_label("Berechtigung").select_option("read")
        form.get_by_label("Gültigkeit (Tage)").fill("30")
        form.get_by_role("button", name="Erstellen").click()
        secret = page.locator("#new-token")
        expect(secret).to_contain_text("bb_")
        expect(page.locator("#copy-token")).to_be_visible()
        token = secret.inner_text()
        assert httpx.get(f"{api}/me", headers=bearer(token)).status_code == 200
        write = httpx.post(f"{api}/me/tokens", json={"name": "x"}, headers=bearer(token))
        assert write.status_code == 403 and write.json()["type"].endswith("token-read-only")
        row = page.locator("#tokens-table tbody tr", has_text="QGIS Büro")
        expect(row.locator("td").nth(2)).to_have_text("nur lesen")
        made = httpx.get(f"{api}/me", headers=bearer(token)).json()
        expect(row.locator("td").nth(4)).to_have_text(shown(made["token_expires_at"]))
        assert (datetime.fromisoformat(made["token_expires_at"]) - datetime.now(BERLIN)) > timedelta(days=29)
        row.get_by_role("button", name="Token „QGIS Büro“ widerrufen").click()
        expect(page.locator("#status")).to_have_text("Token „QGIS Büro“ ist widerrufen.")
        expect(row.locator("td").nth(6)).to_contain_text("widerrufen am")
        assert httpx.get(f"{api}/me", headers=bearer(token)).status_code == 401

        # password: a wrong current one is said in German; a new one ends the other sessions, not this one
        other = sign_in_elsewhere(server, person)
        pw = page.locator("#password-form")
        pw.get_by_label("Aktuelles Passwort").fill("falsch-falsch-falsch")
        pw.get_by_label("Neues Passwort", exact=True).fill("Wanderdüne über Sylt 2026")
        pw.get_by_label("Neues Passwort wiederholen").fill("Wanderdüne über Sylt 2026")
        pw.get_by_role("button", name="Passwort ändern").click()
        expect(pw.locator(".error")).to_contain_text("Das aktuelle Passwort ist falsch.")
        pw.get_by_label("Aktuelles Passwort").fill(person.password)
        pw.get_by_role("button", name="Passwort ändern").click()
        expect(page.locator("#status")).to_have_text("Passwort geändert. Ihre anderen Sitzungen wurden beendet.")
        assert other.get("/api/v1/me").status_code == 401
        expect(page.locator("#sessions-table tbody tr")).to_have_count(1)

        # second factor: QR code (an image from the server's SVG), secret, a code from the app
        expect(page.locator("#totp-state")).to_have_text("ausgeschaltet")
        page.locator("#totp-start").click()
        qr = page.locator("img.qr")
        expect(qr).to_be_visible()
        assert qr.get_attribute("src").startswith("data:image/svg+xml")
        page.wait_for_function("() => document.querySelector('img.qr').naturalWidth > 0")     # it rendered
        key = page.locator("#totp-secret").inner_text()
        page.screenshot(path=str(ARTIFACTS / "account-totp-setup.png"), full_page=True)
        page.locator("#totp-confirm").get_by_label("Bestätigungscode").fill("000000")
        page.locator("#totp-confirm").get_by_role("button", name="Bestätigen und einschalten").click()
        expect(page.locator("#totp-confirm .error")).to_contain_text("Der Code ist falsch oder abgelaufen.")
        page.locator("#totp-confirm").get_by_label("Bestätigungscode").fill(pyotp.TOTP(key).now())
        page.locator("#totp-confirm").get_by_role("button", name="Bestätigen und einschalten").click()
        expect(page.locator("#totp-state")).to_have_text("eingeschaltet")

        # sign out everywhere (asked first); then signing in needs the code
        page.locator("#end-all").click()
        page.get_by_role("button", name="Ja, überall abmelden").click()
        expect(page.get_by_role("heading", name="Anmeldung")).to_be_visible()
        expect(page.locator("#status")).to_have_text("Sie wurden auf allen Geräten abgemeldet.")
        sign_in_form(page, server, person, "Wanderdüne über Sylt 2026")
        expect(page.locator("#totp-step")).to_be_visible()
        expect(page.get_by_label("E-Mail-Adresse")).to_be_hidden()
        # the code of the next 30-second step: the one used to confirm may not be used twice (replay guard)
        page.get_by_label("Bestätigungscode").fill(pyotp.TOTP(key).at(time.time() + 30))
        page.get_by_role("button", name="Code bestätigen").click()
        expect(page.locator("#who")).to_contain_text(person.name)

        # the same page on a phone: nothing wider than the screen
        phone = ctx.new_page()
        phone.set_viewport_size(PHONE)
        phone.goto(f"{server}/#/me")
        expect(phone.get_by_role("heading", name="Ihr Zugang")).to_be_visible()
        expect(phone.locator("#sessions-table")).to_be_visible()
        assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        phone.screenshot(path=str(ARTIFACTS / "account-390.png"), full_page=True)
        assert errors == []
    finally:
        other.close()
        ctx.close()
