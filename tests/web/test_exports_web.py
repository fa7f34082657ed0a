"""The "Exportieren" control in the browser: the Landkreis Offenbach's reviewer downloads the open cases of the inbox
as a GeoPackage in EPSG:25832, the operator its applications as a zipped Shapefile; both files arrive as downloads
(Playwright's download event) and GDAL reads the cases and applications the lists show. Screenshots under
test-artifacts/web/."""

from __future__ import annotations

import zipfile

import pyogrio
import pytest
from playwright.sync_api import expect
from pyogrio.raw import read as ogr_read

from tests.web.test_web_app import ARTIFACTS, VIEWPORT, k163_route, login, shot, submitted_by_api, watch

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_inbox_and_application_list_export_files(server, people, browser, engine, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    route = k163_route(engine)
    refs = [submitted_by_api(server, people.operator.token, route, f"Export K 163, Los {n}")["reference"]
            for n in (1, 2)]
    errors: list[str] = []
    ctx = browser.new_context(viewport=VIEWPORT, locale="de-DE", accept_downloads=True)
    try:
        au = watch(ctx.new_page(), errors)
        login(au, server, people.reviewer)
        au.goto(f"{server}/#/inbox")
        rows = au.locator("#inbox-table tbody tr")
        expect(rows).to_have_count(2)
        form = au.get_by_role("form", name="Exportieren")
        form.get_by_label("Format").select_option(label="GeoPackage")
        form.get_by_label("Koordinatensystem").select_option(label="ETRS89 / UTM 32N (EPSG:25832)")
        with au.expect_download() as download:
            form.get_by_role("button", name="Exportieren").click()
        gpkg = tmp_path / download.value.suggested_filename
        download.value.save_as(gpkg)
        assert gpkg.name.startswith("cases-he-") and gpkg.suffix == ".gpkg"
        expect(au.locator("#status")).to_contain_text("Heruntergeladen")
        shot(au, "20-inbox-export")
        info = pyogrio.read_info(gpkg, layer="trenches")
        assert (info["features"], info["crs"], info["geometry_type"]) == (2, "EPSG:25832", "MultiLineString")
        meta, _, _, data = ogr_read(str(gpkg), layer="trenches", columns=["reference", "authority", "status"])
        column = dict(zip(meta["fields"], data, strict=True))
        assert sorted(column["reference"]) == sorted(refs) and set(column["authority"]) == {"Landkreis Offenbach"}
        assert set(column["status"]) == {"received"}

        op = watch(ctx.new_page(), errors)
        ctx.clear_cookies()
        login(op, server, people.operator)
        op.goto(f"{server}/#/applications")
        expect(op.locator("#applications-table tbody tr")).to_have_count(2)
        form = op.get_by_role("form", name="Exportieren")
        form.get_by_label("Format").select_option(label="Shapefile (ZIP)")
        with op.expect_download() as download:
            form.get_by_role("button", name="Exportieren").click()
        shp = tmp_path / download.value.suggested_filename
        download.value.save_as(shp)
        assert shp.name.startswith("applications-he-") and shp.suffix == ".zip"
        shot(op, "21-applications-export")
        with zipfile.ZipFile(shp) as zf:
            assert {"trenches.shp", "trenches.dbf", "trenches.prj", "trenches.cpg", "fields.txt"} <= set(zf.namelist())
        info = pyogrio.read_info(f"/vsizip/{shp}", layer="trenches")
        assert (info["features"], info["crs"]) == (2, "EPSG:25832")
    finally:
        ctx.close()
    assert not errors, "browser errors:\n" + "\n".join(errors)
