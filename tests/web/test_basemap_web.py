"""The map orients (issue 16), in Chromium on a real server with the real Hessen data and its base map: at the
Neu-Isenburg view of the demo (the K 163 and L 3262) MapLibre renders street names, road numbers and the Gemeinde
names (queryRenderedFeatures), with our own glyphs; a click on a case line opens its popup (reference, state, due
date with days left, applicant, link) and a click on a road the road's popup with the responsible authority by the
resolution rules. The legend and the scale are on the map. Buildings: the extracts that cover Neu-Isenburg (the
Frankfurter Kreuz) hold highways only, no buildings, land use or water; the buildings are checked where the
Darmstadt–Frankfurt corridor has them. Screenshots at 1440×900 and 390×844 under test-artifacts/web/.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import text

from breitband.settings import PROJECT_ROOT
from tests.web.test_web_app import k163_route, login, rendered, watch

pytestmark = [pytest.mark.browser, pytest.mark.worker]

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "web"
WIDE = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


def submit_application(base: str, person, route: dict) -> str:
    body = {"project_name": "FTTH Neu-Isenburg, Karte", "operator_reference": "BM-1",
            "contact": {"name": "Olaf Planer", "email": "olaf.planer@glasfaser-test.example", "phone": "+49 69 1"},
            "sections": {"type": "FeatureCollection", "features": [
                {"type": "Feature", "geometry": route["features"][0]["geometry"],
                 "properties": {"laying_method": "open_trench", "depth_cm": 60, "width_cm": 40}}]},
            "planned_start": (date.today() + timedelta(days=60)).isoformat(),
            "planned_end": (date.today() + timedelta(days=120)).isoformat()}
    auth = {"Authorization": f"Bearer {person.token}"}
    r = httpx.post(f"{base}/api/v1/applications", json=body, headers=auth, timeout=60)
    assert r.status_code == 201, r.text
    s = httpx.post(f"{base}/api/v1/applications/{r.json()['id']}/submit", json={},
                   headers={**auth, "If-Match": r.headers["etag"]}, timeout=60)
    assert s.status_code == 200, s.text
    return r.json()["reference"]


def jump(page: Page, lon: float, lat: float, zoom: float) -> None:
    page.evaluate(f"() => window.breitbandMap.jumpTo({{center: [{lon}, {lat}], zoom: {zoom}}})")
    page.wait_for_function("() => window.breitbandMap.loaded() && window.breitbandMap.areTilesLoaded()",
                           timeout=30_000)


def labels(page: Page, layer: str) -> list[str]:
    return page.evaluate(f"""() => window.breitbandMap.queryRenderedFeatures({{layers: [{json.dumps(layer)}]}})
                               .map(f => f.properties.name || f.properties.ref || f.properties.kind)""")


def point_4326(engine, sql: str) -> tuple[float, float]:
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT ST_X(g), ST_Y(g) FROM (SELECT ST_Transform(({sql}), 4326) AS g) q")).one()
    return float(row[0]), float(row[1])


def click_on_feature(page: Page, layer: str, predicate: str = "true") -> None:
    """Click the map where a rendered feature of the layer is (its middle vertex, projected to the screen); on a
    phone the map is below the list, so it is scrolled into view first."""
    page.locator("#map").scroll_into_view_if_needed()
    xy = page.evaluate(f"""() => {{ const m = window.breitbandMap;
        const f = m.queryRenderedFeatures({{layers: [{json.dumps(layer)}]}}).find(f => {predicate});
        const c = f.geometry.type === 'LineString' ? f.geometry.coordinates : f.geometry.coordinates[0];
        const p = m.project(c[Math.floor(c.length / 2)]);
        const r = m.getCanvas().getBoundingClientRect();
        return [r.left + p.x, r.top + p.y]; }}""")
    page.mouse.click(xy[0], xy[1])


@pytest.mark.parametrize("viewport,tag", [(WIDE, "1440x900"), (PHONE, "390x844")])
def test_the_map_at_neu_isenburg_has_names_legend_and_popups(server, people, browser, engine, he_basemap,
                                                            viewport, tag):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    reference = submit_application(server, people.operator, k163_route(engine))
    errors: list[str] = []
    ctx = browser.new_context(viewport=viewport, locale="de-DE")
    try:
        page = watch(ctx.new_page(), errors)
        glyph_requests: list[str] = []
        page.on("request", lambda r: glyph_requests.append(r.url) if "/fonts/" in r.url else None)
        login(page, server, people.reviewer)
        expect(page.get_by_role("heading", name="Eingang – Landkreis Offenbach")).to_be_visible()
        rendered(page, "inbox-line", f"f.properties.reference === {json.dumps(reference)}")
        # the demo's Neu-Isenburg view: the K 163 and the L 3262
        lon, lat = point_4326(engine, "SELECT ST_LineInterpolatePoint(geom, 0.5) FROM basemap_lines WHERE "
                                      "tenant_key = 'he' AND kind = 'road_label' AND ref = 'K 163' "
                                      "ORDER BY length_m DESC LIMIT 1")
        jump(page, lon, lat, 15)
        streets = rendered(page, "street-name")
        assert len({f["properties"]["name"] for f in streets}) >= 3, streets
        refs = {f["properties"]["ref"] for f in rendered(page, "road-ref")}
        assert "K 163" in refs, refs
        places = {f["properties"]["name"] for f in rendered(page, "gemeinde-name-area")}
        assert "Neu-Isenburg" in places, places
        # the glyphs came from this server
        assert glyph_requests and all(u.startswith(f"{server}/fonts/") for u in glyph_requests), glyph_requests
        # legend (a <details>, open on a wide map, closed on a narrow one: the map pane beside the inbox, a phone)
        # and scale
        legend = page.locator("#map-legend")
        expect(legend).to_be_visible()
        assert legend.evaluate("e => e.open") is False
        legend.locator("summary").click()
        expect(legend).to_contain_text("Landesstraße")
        expect(legend).to_contain_text("Ihr Anteil")
        expect(page.locator(".maplibregl-ctrl-scale")).to_be_visible()
        shot(page, f"10-basemap-neu-isenburg-legend-{tag}")
        legend.locator("summary").click()    # close it again: it covers part of the map

        # a popup on the case line: reference, state, due date with days left, applicant, link to the case
        click_on_feature(page, "inbox-line", f"f.properties.reference === {json.dumps(reference)}")
        popup = page.locator(".breitband-popup")
        expect(popup).to_contain_text(reference)
        expect(popup).to_contain_text("eingegangen")
        expect(popup).to_contain_text("Tage übrig")
        expect(popup).to_contain_text(org_name(engine, people.operator_org_id))
        expect(popup.get_by_role("link", name="Öffnen")).to_have_attribute("href", "#/case/" + case_id_of(
            server, people.reviewer, reference))
        shot(page, f"11-basemap-case-popup-{tag}")
        page.locator(".breitband-popup .maplibregl-popup-close-button").click()

        # a popup on a road: class and the responsible authority by the rules (the L 3262: Hessen Mobil)
        l3262 = point_4326(engine, "SELECT ST_LineInterpolatePoint(geom, 0.5) FROM road_segments WHERE "
                                   "tenant_key = 'he' AND ref = 'L 3262' AND ST_Within(geom, (SELECT geom FROM "
                                   "admin_areas WHERE tenant_key = 'he' AND ags = '06438009')) ORDER BY id LIMIT 1")
        jump(page, *l3262, 17)
        rendered(page, "roads-public", "f.properties.ref === 'L 3262'")
        click_on_feature(page, "roads-public", "f.properties.ref === 'L 3262'")
        expect(popup).to_contain_text("L 3262")
        expect(popup).to_contain_text("Landesstraße")
        expect(popup).to_contain_text("Hessen Mobil", timeout=30_000)
        shot(page, f"12-basemap-road-popup-{tag}")
        page.locator(".breitband-popup .maplibregl-popup-close-button").click()

        # buildings where the extracts have them (the Darmstadt–Frankfurt corridor), from z14
        building = point_4326(engine, "SELECT ST_PointOnSurface(geom) FROM basemap_areas WHERE tenant_key = 'he' "
                                      "AND kind = 'building' ORDER BY area_m2 DESC LIMIT 1")
        jump(page, *building, 16)
        assert rendered(page, "building")
        shot(page, f"13-basemap-buildings-{tag}")
    finally:
        ctx.close()
    assert errors == [], errors


def case_id_of(base: str, person, reference: str) -> str:
    r = httpx.get(f"{base}/api/v1/cases", headers={"Authorization": f"Bearer {person.token}"}, timeout=30)
    assert r.status_code == 200, r.text
    return next(c["id"] for c in r.json()["items"] if c["reference"] == reference)


def org_name(engine, org_id) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT name FROM organisations WHERE id = :id"), {"id": org_id}).scalar()
