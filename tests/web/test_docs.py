"""/docs in Chromium: Swagger UI from our own assets renders the operations of /openapi.json under the service's
Content-Security-Policy (no CSP violation: conftest's no_csp_violation), and nothing is loaded from another origin."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from breitband.settings import PROJECT_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.worker]

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "web"


def test_swagger_ui_renders_the_operations_from_our_own_assets(server, browser):
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    requests: list[str] = []
    try:
        page = ctx.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"{server}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("Breitband")
        submit = page.locator(".opblock-summary-path[data-path='/api/v1/applications/{application_id}/submit']")
        expect(submit.first).to_be_visible(timeout=30_000)
        assert page.locator(".opblock").count() > 50                 # every operation of the API is listed
        page.screenshot(path=str(ARTIFACTS / "docs.png"))
    finally:
        ctx.close()
    origins = {urlsplit(u)[:2] for u in requests if not u.startswith(("data:", "blob:"))}
    assert origins == {urlsplit(server)[:2]}, requests
