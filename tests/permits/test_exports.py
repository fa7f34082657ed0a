"""Exports of cases and applications (GET /api/v1/exports/cases, /applications): every format opened again with GDAL
(pyogrio and the ogrinfo binary) — layer names, one geometry type per layer, the CRS, the attributes, feature counts
equal to the caller's scope — plus format and CRS negotiation, and the JSON lists that no longer answer JSON to a
caller who asked for CSV."""

from __future__ import annotations

import csv
import io
import subprocess
import zipfile

import numpy as np
import pyogrio
import pytest
import shapely
from pyogrio.raw import read as ogr_read

from tests.support.api import PROBLEM, collection, draft_body, trench

EXPORTS = "/api/v1/exports"
CASE_FIELDS = ["reference", "project_name", "operator_reference", "status", "application_status", "authority",
               "operator", "road_refs", "gemeinden", "length_m", "route_length_m", "received_on", "complete_on",
               "planned_start", "planned_end", "decision_due", "days_left", "overdue", "decided_on", "conditions",
               "condition_titles", "case_id", "application_id", "url"]
SHP_CASE_FIELDS = ["reference", "project", "op_ref", "status", "app_status", "authority", "operator", "road_refs",
                   "gemeinden", "length_m", "route_m", "received", "complete", "plan_start", "plan_end", "due",
                   "days_left", "overdue", "decided", "cond_codes", "cond_title", "case_id", "app_id", "url"]


def square(lon: float, lat: float, d: float = 0.0001) -> dict:
    return {"type": "Polygon", "coordinates": [[[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d],
                                                [lon - d, lat + d], [lon - d, lat - d]]]}


@pytest.fixture
def world(api, he, lines, clock):
    """Neu-Isenburg has two cases (one with a pit and a construction area, one granted with a condition);
    Frankfurt one; the operator also has a draft."""
    clock.set("2026-01-15T10:00:00+01:00")
    lon, lat = lines["neu_isenburg"]["coordinates"][0]
    mixed = api.submitted(he.operator, collection(
        trench(lines["neu_isenburg"]),
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
         "properties": {"kind": "pit", "label": "Startgrube"}},
        {"type": "Feature", "geometry": square(lon, lat), "properties": {"kind": "construction_area"}}),
        project_name="Gravenbruch Süd", planned_start="2026-06-01", planned_end="2026-06-30")
    clock.set("2026-01-15T11:00:00+01:00")
    other = api.submitted(he.other_operator, collection(trench(lines["neu_isenburg_2"])),
                          project_name="Buchenring")
    clock.set("2026-01-15T12:00:00+01:00")
    ffm = api.submitted(he.operator, collection(trench(lines["k823"])), project_name="Frankfurt K 823")
    draft = api.create(he.operator, draft_body(collection(trench(lines["neu_isenburg_2"])),
                                               project_name="Entwurf"))
    assert draft.status_code == 201, draft.text
    clock.set("2026-01-20T09:00:00+01:00")
    case = api.case_of(other, "Stadt Neu-Isenburg")
    r = api.command(he.neu_isenburg, f"/cases/{case}/decision", {"outcome": "granted", "conditions": ["HE-N01"]})
    assert r.status_code == 200, r.text
    clock.set("2026-01-25T09:00:00+01:00")
    return {"mixed": mixed, "other": other, "ffm": ffm, "draft": draft.json()}


def download(api, who, path, tmp_path, **params):
    r = api.c.get(EXPORTS + path, headers=who.headers, params=params or None)
    assert r.status_code == 200, r.text
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    name = disposition.split('filename="')[1].rstrip('"')
    out = tmp_path / name
    out.write_bytes(r.content)
    return r, out


def layers(path) -> dict[str, str]:
    return {str(n): str(t) for n, t in pyogrio.list_layers(path)}


def table(path, layer=None) -> tuple[dict, list[dict]]:
    meta, _, geometry, data = ogr_read(str(path), layer=layer)
    rows = [dict(zip(meta["fields"], values, strict=True)) for values in zip(*data, strict=True)] if data else []
    for row, geom in zip(rows, geometry if geometry is not None else [], strict=False):
        row["_geometry"] = shapely.from_wkb(geom) if geom is not None else None
    return meta, rows


def test_authority_exports_its_cases_as_geopackage_in_the_metric_crs(api, he, world, tmp_path, lines):
    r, path = download(api, he.neu_isenburg, "/cases", tmp_path, format="gpkg")
    assert r.headers["content-type"] == "application/geopackage+sqlite3"
    assert path.name == "cases-he-2026-01-25.gpkg"
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/25832>"
    assert layers(path) == {"trenches": "MultiLineString", "points": "MultiPoint", "areas": "MultiPolygon"}
    meta, rows = table(path, "trenches")
    assert meta["crs"] == "EPSG:25832" and list(meta["fields"]) == CASE_FIELDS
    # the inbox's scope and order: its two cases (open first), nothing of Frankfurt's
    assert [x["reference"] for x in rows] == [world["mixed"]["reference"], world["other"]["reference"]]
    mixed, other = rows
    case = api.get(he.neu_isenburg, f"/cases/{mixed['case_id']}").json()
    assert (mixed["status"], mixed["application_status"], mixed["authority"], mixed["operator"],
            mixed["project_name"]) == ("received", "submitted", "Stadt Neu-Isenburg", "Glasfaser Test GmbH",
                                       "Gravenbruch Süd")
    assert mixed["length_m"] == case["part"]["length_m"] and mixed["length_m"] > 150
    assert mixed["road_refs"] == "Flughafenstraße, Admiral-Rosendahl-Straße" and mixed["gemeinden"] == "Neu-Isenburg"
    assert (str(mixed["received_on"]), str(mixed["planned_start"]), str(mixed["planned_end"]),
            str(mixed["decision_due"])) == ("2026-01-15", "2026-06-01", "2026-06-30", "2026-04-15")
    assert (mixed["days_left"], mixed["overdue"], mixed["conditions"]) == (80, False, None)
    assert mixed["url"].endswith(f"/#/case/{mixed['case_id']}")
    assert (other["status"], str(other["decided_on"]), other["conditions"]) == ("granted", "2026-01-20", "HE-N01")
    assert other["condition_titles"] == "Wiederherstellung der Verkehrsfläche" and np.isnan(other["days_left"])
    # geometry in metres of UTM 32N, where the route is
    x, y = shapely.get_coordinates(mixed["_geometry"])[0]
    assert 470_000 < x < 490_000 and 5_540_000 < y < 5_550_000
    assert abs(mixed["_geometry"].length - mixed["length_m"]) < 0.05 * mixed["length_m"]
    # the pit and the construction area: only the case that has them
    _, points = table(path, "points")
    _, areas = table(path, "areas")
    assert [p["reference"] for p in points] == [world["mixed"]["reference"]]
    assert [a["reference"] for a in areas] == [world["mixed"]["reference"]]
    assert areas[0]["_geometry"].geom_type == "MultiPolygon" and 3 < areas[0]["_geometry"].area < 400


def test_shapefile_zip_one_per_geometry_type_with_short_names_cpg_and_prj(api, he, world, tmp_path):
    r, path = download(api, he.neu_isenburg, "/cases", tmp_path, format="shp", crs="EPSG:25833")
    assert r.headers["content-type"] == "application/zip" and path.suffix == ".zip"
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == sorted([f"{layer}.{ext}" for layer in ("trenches", "points", "areas")
                                                for ext in ("shp", "shx", "dbf", "prj", "cpg")] + ["fields.txt"])
        assert zf.read("trenches.cpg").decode().strip() == "UTF-8"
        assert zf.read("trenches.prj").decode().startswith('PROJCS["ETRS_1989_UTM_Zone_33N"')
        mapping = zf.read("fields.txt").decode()
    assert "cond_title\tcondition_titles\t" in mapping and "plan_start\tplanned_start\t" in mapping
    assert layers(f"/vsizip/{path}") == {"trenches": "LineString", "points": "MultiPoint", "areas": "Polygon"}
    for layer, gtype, count in (("trenches", "LineString", 2), ("points", "MultiPoint", 1), ("areas", "Polygon", 1)):
        info = pyogrio.read_info(f"/vsizip/{path}", layer=layer)
        assert (info["geometry_type"], info["features"], info["crs"]) == (gtype, count, "EPSG:25833"), layer
        assert list(info["fields"]) == SHP_CASE_FIELDS and all(len(f) <= 10 for f in info["fields"])
    _, rows = table(f"/vsizip/{path}", "trenches")
    assert rows[0]["operator"] == "Glasfaser Test GmbH" and rows[0]["project"] == "Gravenbruch Süd"   # UTF-8


def test_csv_and_geojson(api, he, world, tmp_path):
    r, path = download(api, he.neu_isenburg, "/cases", tmp_path, format="csv")
    assert r.headers["content-type"].startswith("text/csv") and r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [x["reference"] for x in rows] == [world["mixed"]["reference"], world["other"]["reference"]]
    assert list(rows[0]) == ["WKT", *CASE_FIELDS]
    assert (rows[0]["decision_due"], rows[0]["overdue"], rows[0]["days_left"]) == ("2026-04-15", "false", "80")
    whole = shapely.from_wkt(rows[0]["WKT"])          # one row per case: its whole route, in CRS84
    assert whole.geom_type == "GeometryCollection" and [g.geom_type for g in whole.geoms] == [
        "LineString", "Point", "Polygon"]
    lon, lat = shapely.get_coordinates(whole)[0]
    assert 8.6 < lon < 8.8 and 49.9 < lat < 50.1
    assert pyogrio.read_info(path)["features"] == 2

    r, path = download(api, he.neu_isenburg, "/cases", tmp_path, format="geojson")
    assert r.headers["content-type"] == "application/geo+json"
    body = r.json()
    assert "crs" not in body                                       # RFC 7946: CRS84, longitude first
    kinds = [(f["properties"]["layer"], f["geometry"]["type"]) for f in body["features"]]
    assert kinds == [("trenches", "MultiLineString"), ("trenches", "MultiLineString"), ("points", "MultiPoint"),
                     ("areas", "MultiPolygon")]
    assert body["features"][0]["properties"]["decision_due"] == "2026-04-15"
    assert pyogrio.read_info(path)["crs"] == "EPSG:4326"
    metric = api.c.get(EXPORTS + "/cases", headers=he.neu_isenburg.headers,
                       params={"format": "geojson", "crs": "EPSG:3857"}).json()
    assert metric["crs"]["properties"]["name"].endswith("3857")
    x, _ = shapely.get_coordinates(shapely.geometry.shape(metric["features"][0]["geometry"]))[0]
    assert 950_000 < x < 980_000


def test_operator_and_tenant_admin_export_applications_in_their_scope(api, he, world, tmp_path):
    _, path = download(api, he.operator, "/applications", tmp_path, format="gpkg", crs="CRS84")
    meta, rows = table(path, "trenches")
    assert meta["crs"] == "EPSG:4326"
    by_ref = {x["reference"]: x for x in rows}
    assert set(by_ref) == {world["mixed"]["reference"], world["ffm"]["reference"], world["draft"]["reference"]}
    ffm = by_ref[world["ffm"]["reference"]]
    assert (ffm["status"], ffm["authorities"], str(ffm["submitted_on"]), str(ffm["decision_due"]),
            ffm["days_left"]) == ("submitted", "Stadt Frankfurt am Main", "2026-01-15", "2026-04-15", 80)
    assert ffm["road_refs"] == "K 823" and ffm["gemeinden"] == "Frankfurt am Main"
    draft = by_ref[world["draft"]["reference"]]
    assert draft["status"] == "draft" and np.isnat(draft["submitted_on"]) and np.isnan(draft["length_m"])
    assert np.isclose(ffm["length_m"], world["ffm"]["route"]["total_length_m"])
    # filters as the list takes them
    _, path = download(api, he.operator, "/applications", tmp_path, format="gpkg", status="draft")
    assert [x["reference"] for x in table(path, "trenches")[1]] == [world["draft"]["reference"]]
    # the other operator: its one application; the tenant admin: all four
    _, path = download(api, he.other_operator, "/applications", tmp_path, format="csv")
    assert pyogrio.read_info(path)["features"] == 1
    _, path = download(api, he.admin, "/applications", tmp_path, format="gpkg")
    assert pyogrio.read_info(path, layer="trenches")["features"] == 4
    _, path = download(api, he.admin, "/cases", tmp_path, format="gpkg")
    assert pyogrio.read_info(path, layer="trenches")["features"] == 3
    # an authority's applications export shows its own cases' facts only
    _, path = download(api, he.neu_isenburg, "/applications", tmp_path, format="gpkg")
    rows = {x["reference"]: x for x in table(path, "trenches")[1]}
    assert set(rows) == {world["mixed"]["reference"], world["other"]["reference"]}
    assert rows[world["other"]["reference"]]["conditions"] == "HE-N01"


def test_case_filters_are_the_inbox_filters(api, he, world, tmp_path):
    def refs(**params):
        _, path = download(api, he.neu_isenburg, "/cases", tmp_path, format="gpkg", **params)
        return [x["reference"] for x in table(path, "trenches")[1]]

    assert refs(status="granted") == [world["other"]["reference"]]
    assert refs(status=["received", "granted"]) == [world["mixed"]["reference"], world["other"]["reference"]]
    assert refs(due_before="2026-04-14") == []
    assert refs(application_id=world["mixed"]["id"]) == [world["mixed"]["reference"]]
    _, path = download(api, he.neu_isenburg, "/cases", tmp_path, format="gpkg", status="withdrawn")
    assert layers(path) == {"trenches": "MultiLineString"} and pyogrio.read_info(path)["features"] == 0


def test_format_and_crs_negotiation(api, he, world):
    def get(headers=None, **params):
        return api.c.get(EXPORTS + "/cases", headers={**he.neu_isenburg.headers, **(headers or {})},
                         params=params or None)

    assert get({"Accept": "text/csv"}).headers["content-type"].startswith("text/csv")
    assert get({"Accept": "application/geo+json"}).headers["content-type"] == "application/geo+json"
    assert get({"Accept": "text/html;q=0.9, application/zip"}).headers["content-type"] == "application/zip"
    assert get({"Accept": "*/*"}).headers["content-type"] == "application/geopackage+sqlite3"
    assert get().headers["content-type"] == "application/geopackage+sqlite3"
    assert get({"Accept": "application/json"}, format="csv").headers["content-type"].startswith("text/csv")
    bad = get({"Accept": "application/json"})
    assert bad.status_code == 406 and bad.headers["content-type"] == PROBLEM
    assert "text/csv" in bad.json()["detail"] and "application/geopackage+sqlite3" in bad.json()["supported"]
    unknown = get(format="xlsx")
    assert unknown.status_code == 400 and unknown.headers["content-type"] == PROBLEM
    assert unknown.json()["supported"] == ["gpkg", "shp", "csv", "geojson"] and unknown.json()["parameter"] == "format"
    crs = get(format="gpkg", crs="EPSG:31467")
    assert crs.status_code == 400 and "EPSG:25832" in crs.json()["detail"] and crs.json()["parameter"] == "crs"
    assert get(status="nonsense").status_code == 422
    assert api.c.get(EXPORTS + "/cases").status_code == 401


def test_lists_no_longer_answer_json_to_a_csv_request(api, he, world):
    for path in ("/cases", "/applications"):
        r = api.c.get(f"/api/v1{path}", headers={**he.operator.headers, "Accept": "text/csv"})
        assert r.status_code == 406 and r.headers["content-type"] == PROBLEM, path
        assert r.json()["export"] == f"/api/v1/exports{path}"
        r = api.c.get(f"/api/v1{path}", headers=he.operator.headers, params={"format": "csv"})
        assert r.status_code == 400 and r.json()["parameter"] == "format", path
        ok = api.c.get(f"/api/v1{path}", headers={**he.operator.headers, "Accept": "application/json, text/csv"},
                       params={"format": "json"})
        assert ok.status_code == 200 and ok.json()["items"]


def test_gdal_ogrinfo_reads_every_format(api, he, world, tmp_path):
    for fmt, layer, gtype in (("gpkg", "trenches", "Multi Line String"), ("shp", "trenches", "Line String"),
                              ("geojson", None, None), ("csv", None, None)):
        _, path = download(api, he.neu_isenburg, "/cases", tmp_path, format=fmt)
        target = f"/vsizip/{path}" if fmt == "shp" else str(path)
        out = subprocess.run(["ogrinfo", "-ro", "-so", "-al", target], capture_output=True, text=True, check=True)
        assert "Feature Count: 2" in out.stdout or fmt == "geojson", (fmt, out.stdout)
        if gtype:
            assert f"Geometry: {gtype}" in out.stdout and f"Layer name: {layer}" in out.stdout, out.stdout
        if fmt in ("gpkg", "shp"):
            assert 'ID["EPSG",25832]' in out.stdout, out.stdout
