"""The wizard takes route files in every format (issue 14, item 1): the file goes to the server's reader
(POST /api/v1/route-file), and the wizard shows what it read ("Gelesen: Shapefile, EPSG:25832 (ETRS89 / UTM zone
32N)"), the route on the map and the authorities of the preview. A GeoPackage with two layers offers them to choose
from; a DXF, which names no CRS, asks for the EPSG code. Screenshots: test-artifacts/web/2x-*.png.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.route_files import EXAMPLE, made, write
from tests.web.test_web_app import ARTIFACTS, VIEWPORT, login, rendered, shot, watch

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def shot_of_route_step(page, name: str) -> None:
    """A screenshot with the wizard's route step (what was read, the preview) in view."""
    page.locator("#preview").scroll_into_view_if_needed()
    shot(page, name)


def authorities_of_example(server: str, token: str) -> list[str]:
    r = httpx.post(f"{server}/api/v1/resolve", content=EXAMPLE.read_bytes(), timeout=30,
                   headers={"Authorization": f"Bearer {token}", "Content-Type": "application/geo+json"})
    assert r.status_code == 200, r.text
    return [a["name"] for a in r.json()["authorities"]]


def test_wizard_reads_shapefile_geopackage_and_dxf(server, people, browser, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expected = authorities_of_example(server, people.operator.token)
    assert expected
    made(tmp_path, "shapefile-zip")                  # → tmp_path/trasse.zip, the example route in EPSG:25832
    gpkg = tmp_path / "trasse.gpkg"
    write(gpkg, "GPKG", 25832, layer="trasse_nord")
    write(gpkg, "GPKG", 25832, layer="trasse_sued", append=False)
    dxf, _ = made(tmp_path, "dxf")
    (tmp_path / "plan.dxf").write_bytes(dxf)
    errors: list[str] = []
    ctx = browser.new_context(viewport=VIEWPORT, locale="de-DE")
    try:
        page = watch(ctx.new_page(), errors)
        login(page, server, people.operator)
        page.goto(f"{server}/#/new")
        expect(page.get_by_role("heading", name="Neuer Antrag")).to_be_visible()
        upload = page.get_by_label("Trassendatei hochladen")
        for ext in (".zip", ".shp", ".gpkg", ".kml", ".kmz", ".gml", ".gpx", ".fgb", ".dxf", ".csv", ".geojson"):
            assert ext in upload.get_attribute("accept").split(",")
        page.wait_for_function("() => window.breitbandMap && window.breitbandMap.loaded()")

        # a zipped Shapefile in EPSG:25832 (from its .prj)
        upload.set_input_files(str(tmp_path / "trasse.zip"))
        expect(page.locator("#route-read")).to_have_text("Gelesen: Shapefile, EPSG:25832 (ETRS89 / UTM zone 32N)",
                                                         timeout=30_000)
        preview = page.locator("#preview-authorities")
        for name in expected:
            expect(preview).to_contain_text(name, timeout=30_000)
        assert rendered(page, "preview-line")
        shot_of_route_step(page, "20-wizard-shapefile-read")

        # a GeoPackage with two line layers: the wizard lists them, the second is read
        upload.set_input_files(str(gpkg))
        expect(page.locator("#choose-layer")).to_contain_text("mehrere Ebenen", timeout=30_000)
        layer = page.get_by_label("Ebene", exact=True)
        assert layer.locator("option").all_inner_texts() == ["trasse_nord", "trasse_sued"]
        shot_of_route_step(page, "21-wizard-geopackage-layers")
        layer.select_option("trasse_sued")
        page.get_by_role("button", name="Diese Ebene lesen").click()
        expect(page.locator("#route-read")).to_have_text(
            "Gelesen: GeoPackage, EPSG:25832 (ETRS89 / UTM zone 32N), Ebene „trasse_sued“", timeout=30_000)
        for name in expected:
            expect(preview).to_contain_text(name, timeout=30_000)
        assert rendered(page, "preview-line")
        shot_of_route_step(page, "22-wizard-geopackage-read")

        # a DXF names no CRS: the wizard asks for the EPSG code
        upload.set_input_files(str(tmp_path / "plan.dxf"))
        expect(page.locator("#crs-needed")).to_contain_text("EPSG-Code", timeout=30_000)
        page.get_by_role("textbox", name="EPSG-Code").fill("25832")
        shot_of_route_step(page, "23-wizard-dxf-asks-crs")
        page.get_by_role("button", name="Mit diesem Koordinatensystem lesen").click()
        expect(page.locator("#route-read")).to_have_text("Gelesen: DXF, EPSG:25832 (ETRS89 / UTM zone 32N), "
                                                         "Ebene „entities“", timeout=30_000)
        for name in expected:
            expect(preview).to_contain_text(name, timeout=30_000)

        # a file in no route format: said in German, with the server's detail
        (tmp_path / "notiz.txt").write_text("Trasse folgt per Post")
        upload.set_input_files(str(tmp_path / "notiz.txt"))
        expect(page.locator("#route-source .error")).to_contain_text("Dieses Dateiformat wird nicht unterstützt",
                                                                     timeout=30_000)
        shot_of_route_step(page, "24-wizard-unsupported-file")
        errors[:] = [e for e in errors if "status of 4" not in e]     # the browser logs the 415/422 it got
    finally:
        ctx.close()
    assert not errors, "browser errors:\n" + "\n".join(errors)
