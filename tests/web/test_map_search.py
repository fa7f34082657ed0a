"""The map's search box and the optional external base layer toggle in the browser (issue 16, points 5 and 6), on
the real Hessen data and a real server: the Landkreis Offenbach's reviewer searches "Neu-Isenburg" and "L 3262" on
the inbox map and the map moves there (its centre and zoom, and the L 3262 rendered, asked from MapLibre); a bad
coordinate pair is answered in German; a base layer the tenant's rules configure (served here by a tile server on
another local port, a different origin) is offered as a toggle, off by default, and drawn when chosen — allowed by
the Content-Security-Policy (the autouse fixture fails the test on any violation). Screenshots:
test-artifacts/web/30-… to 33-….
"""

from __future__ import annotations

import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from breitband import identity
from geo.rules import parse_rules
from tests.support.web_server import running_server
from tests.web.test_web_app import VIEWPORT, login, rendered, shot, watch

pytestmark = [pytest.mark.browser]

NEU_ISENBURG_BBOX = [8.590944, 50.01625, 8.76232, 50.062505]
L3262_BBOX = [8.592601, 50.029824, 8.624487, 50.035331]


def png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A plain-coloured PNG tile (written by hand: no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class TileServer:
    """Serves one light-violet tile for every /{z}/{x}/{y}.png, with CORS (as a public tile service does), and
    counts the requests."""

    def __init__(self) -> None:
        tile, requests = png((214, 196, 240)), []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Content-Length", str(len(tile)))
                self.end_headers()
                self.wfile.write(tile)

            def log_message(self, *args):
                pass

        self.requests = requests
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://localhost:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def tiles(engine, he_data):
    """The tile server, configured as the tenant's base layer "testkarte" (restored afterwards)."""
    srv = TileServer()
    with Session(bind=engine) as session:
        before = dict(session.get(identity.Tenant, "he").rules)
        rules = {**before, "map": {"base_layers": [{
            "id": "testkarte", "name": "Testkarte (lokal)", "name_en": "Test map (local)", "kind": "tiles",
            "url": srv.origin + "/{z}/{x}/{y}.png", "attribution": "© Testkarte"}]}}
        identity.update_tenant(session, "he", rules=parse_rules(rules, "he").model_dump(mode="json"))
        session.commit()
    yield srv
    with Session(bind=engine) as session:
        identity.update_tenant(session, "he", rules=before)
        session.commit()
    srv.close()


@pytest.fixture(scope="module")
def map_server(engine, people, settings, tiles):
    """The app with the base layer configured before it starts (the CSP reads the origins when it starts and then
    every ``csp_refresh_s``)."""
    with running_server(settings, "server-map-search.log") as base:
        yield base


def centre_and_zoom(page: Page) -> tuple[float, float, float]:
    return tuple(page.evaluate("() => { const m = window.breitbandMap, c = m.getCenter(); "
                               "return [c.lng, c.lat, m.getZoom()]; }"))


def search(page: Page, q: str) -> None:
    box = page.get_by_role("combobox", name="Karte durchsuchen")
    box.fill(q)
    box.press("Enter")


def test_search_moves_the_map_and_the_base_layer_toggle(map_server, people, browser, tiles):
    server = map_server
    ctx = browser.new_context(viewport=VIEWPORT, locale="de-DE")
    errors: list[str] = []
    try:
        page = watch(ctx.new_page(), errors)
        login(page, server, people.reviewer)
        page.goto(f"{server}/#/inbox")
        page.wait_for_function("() => window.breitbandMap && window.breitbandMap.loaded()")
        box = page.get_by_role("combobox", name="Karte durchsuchen")
        expect(box).to_be_visible()
        expect(box).to_have_attribute("placeholder", "Ort, Straße, L 3262, Aktenzeichen oder Koordinaten")

        # suggestions while typing, then Enter takes the best: the Gemeinde Neu-Isenburg
        box.fill("Neu-Isenb")
        first = page.get_by_role("listbox", name="Suchergebnisse").get_by_role("option").first
        expect(first).to_contain_text("Neu-Isenburg")
        expect(first).to_contain_text("Gemeinde · Landkreis Offenbach")
        shot(page, "30-map-search-suggestions")
        search(page, "Neu-Isenburg")
        expect(page.get_by_role("status").filter(has_text="Neu-Isenburg")).to_contain_text(
            "Neu-Isenburg · Gemeinde · Landkreis Offenbach")
        page.wait_for_function("() => window.breitbandMap.loaded()")
        lon, lat, zoom = centre_and_zoom(page)
        w, s, e, n = NEU_ISENBURG_BBOX
        assert (w + e) / 2 == pytest.approx(lon, abs=0.002) and (s + n) / 2 == pytest.approx(lat, abs=0.002)
        assert 11 <= zoom <= 13.5, zoom
        shot(page, "31-map-search-neu-isenburg")

        # the road number: the map fits the L 3262, which is then drawn in the view
        search(page, "L 3262")
        expect(page.get_by_role("status").filter(has_text="L 3262")).to_contain_text("L 3262 · Landesstraße")
        lon, lat, zoom = centre_and_zoom(page)
        w, s, e, n = L3262_BBOX
        assert (w + e) / 2 == pytest.approx(lon, abs=0.001) and (s + n) / 2 == pytest.approx(lat, abs=0.001)
        assert zoom >= 13, zoom
        roads = rendered(page, "roads-public", "f.properties.ref === 'L 3262'")
        assert any(f["properties"].get("ref") == "L 3262" for f in roads)
        shot(page, "32-map-search-l3262")

        # numbers that are no coordinate pair: the German message, the map stays
        search(page, "8.6 50.0 3")
        expect(page.get_by_role("status").filter(has_text="Koordinaten")).to_contain_text(
            "Das sind keine gültigen Koordinaten")
        assert centre_and_zoom(page)[:2] == pytest.approx([lon, lat], abs=1e-9)

        # the tenant's base layer: offered, off until chosen, then its tiles are loaded from the other origin
        toggle = page.get_by_role("group", name="Hintergrundkarten")
        expect(toggle.get_by_label("Eigene Karte")).to_be_checked()
        assert page.evaluate("() => window.breitbandMap.getLayoutProperty('base-testkarte', 'visibility')") == "none"
        assert tiles.requests == []
        toggle.get_by_label("Testkarte (lokal)").check()
        page.wait_for_function("() => window.breitbandMap.getLayoutProperty('base-testkarte', 'visibility') "
                               "=== 'visible' && window.breitbandMap.isSourceLoaded('base-testkarte')")
        assert tiles.requests and all(p.endswith(".png") for p in tiles.requests)
        expect(page.locator(".maplibregl-ctrl-attrib")).to_contain_text("© Testkarte")
        shot(page, "33-map-base-layer-on")
        # the one 422 is the bad coordinate pair's answer (Chromium logs every 4xx); nothing else went wrong
        assert errors == ["console: Failed to load resource: the server responded with a status of 422 "
                          "(Unprocessable Entity)"], errors
    finally:
        ctx.close()
