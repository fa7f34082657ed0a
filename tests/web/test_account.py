"""The account page in the browser: the user's API tokens with their expiry, creating one for a program and revoking
one, and signing out, which revokes the session's token at the server (a copy of it gets 401 afterwards)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import expect

from breitband.settings import PROJECT_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.worker]

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "web"
VIEWPORT = {"width": 1366, "height": 768}
BERLIN = ZoneInfo("Europe/Berlin")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def shown(moment: str) -> str:
    """How the web app shows a time (de-DE, dateStyle short, timeStyle short) in Europe/Berlin."""
    d = datetime.fromisoformat(moment).astimezone(BERLIN)
    return f"{d:%d.%m.%y}, {d:%H:%M}"


def test_account_lists_creates_revokes_tokens_and_logout_revokes(server, people, browser):
    api = f"{server}/api/v1"
    made = {}
    for name, days in (("Browser-Sitzung", None), ("QGIS Büro", 30)):
        r = httpx.post(f"{api}/me/tokens", json={"name": name, **({"expires_in_days": days} if days else {})},
                       headers=bearer(people.operator.token))
        assert r.status_code == 201, r.text
        made[name] = r.json()
    session_token = made["Browser-Sitzung"]["token"]
    qgis = made["QGIS Büro"]
    assert datetime.fromisoformat(qgis["expires_at"]) - datetime.fromisoformat(qgis["created_at"]) == timedelta(days=30)

    errors: list[str] = []
    ctx = browser.new_context(viewport=VIEWPORT, locale="de-DE", timezone_id="Europe/Berlin")
    try:
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.goto(f"{server}/#/login")
        page.get_by_label("API-Token").fill(session_token)
        page.get_by_role("button", name="Anmelden").click()
        expect(page.locator("#who")).to_contain_text(people.operator.name)
        page.locator("#who a").click()
        expect(page.get_by_role("heading", name="Ihr Zugang")).to_be_visible()
        expect(page.locator("#session-expires")).to_have_text(shown(made["Browser-Sitzung"]["expires_at"]))

        # the list: the session's token (marked), the QGIS token, the people fixture's token; each with its expiry
        table = page.locator("#tokens-table")
        expect(table.locator("tbody tr")).to_have_count(3)
        session_row = table.locator(f"tr[data-token-id='{made['Browser-Sitzung']['id']}']")
        expect(session_row).to_contain_text("Browser-Sitzungdiese Sitzung")
        expect(session_row.get_by_role("button", name="Sitzung beenden")).to_be_visible()
        qgis_row = table.locator(f"tr[data-token-id='{qgis['id']}']")
        expect(qgis_row.locator("td").nth(1)).to_have_text(f"{qgis['prefix']}…")
        expect(qgis_row.locator("td").nth(3)).to_have_text(shown(qgis["expires_at"]))
        expect(qgis_row.locator("td").nth(5)).to_have_text("gültig")

        # a new token for a program: the secret is shown once, and it works
        form = page.locator("#token-create")
        form.get_by_label("Bezeichnung").fill("Skript Nachtlauf")
        form.get_by_label("Gültigkeit (Tage)").fill("7")
        form.get_by_role("button", name="Erstellen").click()
        secret = page.locator("#new-token")
        expect(secret).to_contain_text("bb_")
        expect(table.locator("tbody tr")).to_have_count(4)
        me = httpx.get(f"{api}/me", headers=bearer(secret.inner_text()))
        assert me.status_code == 200
        new_row = table.locator("tbody tr", has_text="Skript Nachtlauf")
        expect(new_row.locator("td").nth(3)).to_have_text(shown(me.json()["token_expires_at"]))
        page.screenshot(path=str(ARTIFACTS / "account-tokens.png"), full_page=True)

        # revoke the QGIS token: it is refused from then on, the row says when it was revoked
        qgis_row.get_by_role("button", name="Token „QGIS Büro“ widerrufen").click()
        expect(page.locator("#status")).to_have_text("Token „QGIS Büro“ ist widerrufen.")
        expect(qgis_row.locator("td").nth(5)).to_contain_text("widerrufen am")
        expect(qgis_row.get_by_role("button")).to_have_count(0)
        r = httpx.get(f"{api}/me", headers=bearer(qgis["token"]))
        assert r.status_code == 401 and r.json()["detail"].startswith("The token was revoked at ")
        page.screenshot(path=str(ARTIFACTS / "account-tokens-revoked.png"), full_page=True)

        # sign out: the session's token is revoked at the server, not only forgotten in the browser
        page.locator("#logout").click()
        expect(page.get_by_role("heading", name="Anmeldung")).to_be_visible()
        assert page.evaluate("() => sessionStorage.getItem('breitband.token')") is None
        r = httpx.get(f"{api}/me", headers=bearer(session_token))
        assert r.status_code == 401
        assert r.json()["detail"].startswith("The token was revoked at ")
        # the user's other tokens stay valid, and the list tells what happened
        listed = {t["name"]: t for t in httpx.get(f"{api}/me/tokens", headers=bearer(people.operator.token)).json()}
        assert listed["Browser-Sitzung"]["revoked_at"] is not None
        assert listed["Browser-Sitzung"]["last_used_at"] is not None       # the session used it
        assert listed["Skript Nachtlauf"]["revoked_at"] is None
        assert listed["browser test"]["revoked_at"] is None
        assert errors == []
    finally:
        ctx.close()
