"""Route files in every common GIS format through one reader (issue 14, item 1).

The example route is converted with GDAL (pyogrio) into each format; each must resolve through the API to the same
authorities and lengths (within 0.5 m) as the GeoJSON it came from. Bad files get 415/422 naming the problem.
"""

from __future__ import annotations

import json
import sqlite3
import zipfile

import numpy as np
import pyogrio.raw
import pytest
import shapely

from geo.route_files import detect_format, read_route_file
from tests.support.route_files import EXAMPLE, example_lines, made, resolve, summary, write, zipped_shapefile

PROBLEM = "application/problem+json"


@pytest.fixture
def he_user(session, he_data):
    from breitband import identity
    from breitband.models import OrgKind, Role
    org = identity.create_organisation(session, "he", OrgKind.operator, "Format-Glasfaser GmbH")
    user = identity.create_user(session, org, "formats@glasfaser.example", "F", Role.operator_member)
    _, secret = identity.create_token(session, user, "test")
    session.commit()
    return {"Authorization": f"Bearer {secret}"}


# Every format the reader takes, in EPSG:25832 where the format carries a CRS (KML, KMZ and GPX are EPSG:4326 by
# their standards); CSV and DXF name none, so the request does (crs=…).
FORMATS = ["shapefile-zip", "gpkg", "kml", "kmz", "gml", "gpx", "flatgeobuf", "dxf", "csv-wkt", "csv-wkt-25832",
           "geojson-25832"]


@pytest.fixture(scope="module")
def reference():
    return {}


@pytest.mark.parametrize("kind", FORMATS)
def test_every_format_resolves_like_the_geojson(client, he_user, tmp_path, kind, reference):
    if "geojson" not in reference:
        r = resolve(client, he_user, EXAMPLE.read_bytes())
        assert r.status_code == 200, r.text
        reference["geojson"] = summary(r.json())
    expected = reference["geojson"]
    assert expected
    body, params = made(tmp_path, kind)
    r = resolve(client, he_user, body, **params)
    assert r.status_code == 200, r.text
    got = summary(r.json())
    assert got.keys() == expected.keys()
    for name, length in expected.items():
        assert abs(got[name] - length) <= 0.5, (name, got[name], length)


def test_multipart_upload_with_crs_form_field(client, he_user, tmp_path):
    body, _ = made(tmp_path, "csv-wkt")
    r = client.post("/api/v1/resolve", headers=he_user, files={"file": ("plan.txt", body, "text/plain")},
                    data={"crs": "EPSG:4326"})
    assert r.status_code == 200, r.text
    assert r.json()["source"] == {"format": "CSV", "layer": "route", "crs": "EPSG:4326"}


def test_shapefile_crs_is_read_from_prj(tmp_path):
    route = read_route_file(zipped_shapefile(tmp_path))
    assert (route.format, route.crs) == ("Shapefile", "EPSG:25832")


def problem_of(r, status: int = 422) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    return r.json()


def test_random_bytes_are_415_naming_the_formats(client, he_user):
    p = problem_of(resolve(client, he_user, bytes(range(256)) * 4), 415)
    assert p["type"].endswith("/unsupported-format")
    assert "GeoPackage" in p["detail"] and "Shapefile" in p["detail"]
    assert "codec" not in p["detail"]


def test_zip_without_shapefile(client, he_user, tmp_path):
    out = tmp_path / "docs.zip"
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("readme.txt", "no route here")
    p = problem_of(resolve(client, he_user, out.read_bytes()))
    assert p["type"].endswith("/no-shapefile-in-zip")
    assert "readme.txt" in p["detail"]


def test_shapefile_without_prj_needs_crs(client, he_user, tmp_path):
    body = zipped_shapefile(tmp_path, prj=False)
    p = problem_of(resolve(client, he_user, body))
    assert p["type"].endswith("/crs-required") and p["field"] == "crs"
    assert resolve(client, he_user, body, crs="EPSG:25832").status_code == 200


def test_crs_parameter_contradicting_the_file(client, he_user, tmp_path):
    body, _ = made(tmp_path, "gpkg")
    p = problem_of(resolve(client, he_user, body, crs="EPSG:4326"))
    assert p["type"].endswith("/crs-conflict") and p["file_crs"] == "EPSG:25832"


def test_geopackage_with_two_line_layers_needs_the_layer(client, he_user, tmp_path):
    path = tmp_path / "two.gpkg"
    write(path, "GPKG", 25832, layer="trasse_a")
    write(path, "GPKG", 25832, layer="trasse_b", append=False)
    p = problem_of(resolve(client, he_user, path.read_bytes()))
    assert p["type"].endswith("/layer-required")
    assert p["layers"] == ["trasse_a", "trasse_b"] and "trasse_a" in p["detail"]
    r = resolve(client, he_user, path.read_bytes(), layer="trasse_b")
    assert r.status_code == 200, r.text
    assert r.json()["source"]["layer"] == "trasse_b"
    p = problem_of(resolve(client, he_user, path.read_bytes(), layer="nope"))
    assert p["type"].endswith("/unknown-layer") and p["layers"] == ["trasse_a", "trasse_b"]


def test_z_is_dropped_with_a_warning(tmp_path):
    geoms, names = example_lines(25832)
    geoms3d = [shapely.force_3d(g, 120.0) for g in geoms]
    path = tmp_path / "z.gpkg"
    pyogrio.raw.write(str(path), shapely.to_wkb(np.array(geoms3d, dtype=object), output_dimension=3),
                      [np.array(names, dtype=object)], ["name"], driver="GPKG", geometry_type="LineString Z",
                      crs="EPSG:25832")
    route = read_route_file(path.read_bytes())
    assert [w["type"] for w in route.warnings] == ["z-m-dropped"]
    assert all(len(f["geometry"]["coordinates"][0]) == 2 for f in route.data["features"])


def test_detection_is_by_content():
    assert detect_format(b'\xef\xbb\xbf  {"type": "Point"}') == "GeoJSON"
    assert detect_format(b'<?xml version="1.0"?>\n<gpx version="1.1"></gpx>') == "GPX"
    assert detect_format(b'<?xml version="1.0"?><kml xmlns="http://www.opengis.net/kml/2.2"/>') == "KML"
    assert detect_format(b"id;WKT\n1;LINESTRING (0 0, 1 1)\n") == "CSV"
    assert detect_format(b"  0\nSECTION\n  2\nHEADER\n") == "DXF"


def sections_25832(legacy_crs: bool = True) -> dict:
    geoms, _ = example_lines(25832)
    doc = {"type": "FeatureCollection",
           "features": [{"type": "Feature", "geometry": shapely.geometry.mapping(g),
                         "properties": {"laying_method": "open_trench", "depth_cm": 60, "width_cm": 40}}
                        for g in geoms]}
    if legacy_crs:
        doc["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::25832"}}
    return json.loads(json.dumps(doc))


def test_application_keeps_the_legacy_crs_of_its_sections(api, he, client, he_user):
    """The same EPSG:25832 GeoJSON means the same place in an application as in /resolve (it was stored as
    EPSG:4326 and refused at submit with outside-crs-area)."""
    from datetime import date, timedelta

    from tests.support.api import draft_body
    start = date.today() + timedelta(days=60)
    app = api.submitted(he.operator, sections_25832(), planned_start=start.isoformat(),
                        planned_end=(start + timedelta(days=30)).isoformat())
    expected = summary(resolve(client, he_user, json.dumps(sections_25832()).encode()).json())
    assert sorted(c["authority"]["name"] for c in app["cases"]) == sorted(expected)
    r = api.create(he.operator, draft_body(sections_25832(), crs="EPSG:4326"))
    p = problem_of(r)
    assert p["type"].endswith("/crs-conflict") and p["sections_crs"] == "EPSG:25832"
    r = api.create(he.operator, draft_body(sections_25832(), crs="EPSG:25832"))
    assert r.status_code == 201, r.text


def test_cli_resolves_a_geopackage_like_the_api(he_data, client, he_user, tmp_path):
    from tests.support.cli import breitband_cli
    body, _ = made(tmp_path, "gpkg")
    (tmp_path / "plan.bin").write_bytes(body)
    out = breitband_cli("resolve", str(tmp_path / "plan.bin"), "--tenant", "he", check=True)
    result = json.loads(out.stdout)
    assert result["source"] == {"format": "GPKG", "layer": "route", "crs": "EPSG:25832"}
    assert summary(result) == summary(resolve(client, he_user, body).json())
    bad = breitband_cli("resolve", str(EXAMPLE.parent / ".." / ".." / "README.md"), "--tenant", "he")
    assert bad.returncode != 0 and "Accepted: GeoJSON" in bad.stderr


ARC_GML = b"""<?xml version="1.0" encoding="utf-8"?>
<ogr:FeatureCollection xmlns:ogr="http://ogr.maptools.org/" xmlns:gml="http://www.opengis.net/gml/3.2">
<ogr:featureMember><ogr:r gml:id="r.1"><ogr:geometryProperty><gml:Curve srsName="urn:ogc:def:crs:EPSG::25832">
<gml:segments><gml:ArcString><gml:posList>476000 5540000 476050 5540050 476100 5540000</gml:posList></gml:ArcString>
</gml:segments></gml:Curve></ogr:geometryProperty></ogr:r></ogr:featureMember>
</ogr:FeatureCollection>
"""
LINE_DXF = (b"  0\nSECTION\n  2\nENTITIES\n  0\nLINE\n  8\n0\n 10\n476000.0\n 20\n5540000.0\n 11\n476100.0\n 21\n"
            b"5540050.0\n  0\nENDSEC\n  0\nEOF\n")


def test_curves_are_linearised():
    route = read_route_file(ARC_GML)
    [feature] = route.data["features"]
    assert (route.format, route.crs, feature["geometry"]["type"]) == ("GML", "EPSG:25832", "LineString")
    assert len(feature["geometry"]["coordinates"]) > 10


def test_dxf_needs_the_crs_parameter():
    with pytest.raises(Exception) as exc:
        read_route_file(LINE_DXF)
    assert getattr(exc.value, "type", None) == "crs-required"
    route = read_route_file(LINE_DXF, "EPSG:25832")
    assert (route.format, route.crs) == ("DXF", "EPSG:25832")
    assert route.data["features"][0]["geometry"]["coordinates"][0] == (476000.0, 5540000.0)


def test_kmz_is_read(tmp_path):
    body, _ = made(tmp_path, "kml")
    out = tmp_path / "route.kmz"
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("doc.kml", body)
    route = read_route_file(out.read_bytes())
    assert (route.format, route.crs, len(route.data["features"])) == ("KMZ", "EPSG:4326", len(example_lines()[0]))


def test_zip_with_a_path_outside_itself_is_refused(tmp_path):
    out = tmp_path / "evil.zip"
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("../../etc/route.shp", b"x")
    with pytest.raises(Exception) as exc:
        read_route_file(out.read_bytes())
    assert getattr(exc.value, "type", None) == "invalid-zip"


def test_curves_linearised_are_noted(tmp_path):
    """GDAL linearises arcs without saying so: the reader notes it (GML arcs, a GeoPackage layer of circular
    strings, a DXF ARC)."""
    assert [w["type"] for w in read_route_file(ARC_GML).warnings] == ["curves-linearised"]
    path = tmp_path / "arc.gpkg"
    arc = shapely.from_wkt("LINESTRING (476000 5540000, 476100 5540000)")
    pyogrio.raw.write(str(path), shapely.to_wkb(np.array([arc], dtype=object)), [], [], driver="GPKG",
                      geometry_type="LineString", crs="EPSG:25832")
    assert read_route_file(path.read_bytes()).warnings == []
    with sqlite3.connect(path) as db:
        db.execute("UPDATE gpkg_geometry_columns SET geometry_type_name = 'CIRCULARSTRING'")
    assert [w["type"] for w in read_route_file(path.read_bytes()).warnings] == ["curves-linearised"]
    dxf = (b"  0\nSECTION\n  2\nENTITIES\n  0\nARC\n  8\n0\n 10\n476000.0\n 20\n5540000.0\n 40\n50.0\n 50\n0.0\n"
           b" 51\n180.0\n  0\nENDSEC\n  0\nEOF\n")
    route = read_route_file(dxf, "EPSG:25832")
    assert [w["type"] for w in route.warnings] == ["curves-linearised"]
    assert read_route_file(LINE_DXF, "EPSG:25832").warnings == []
