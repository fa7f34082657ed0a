"""Applications from route files (issue 14, item 1): a multipart create and ``PUT /applications/{id}/route`` read
any format through the reader of /resolve, store the sections in EPSG:4326 and say what was read; a Shapefile may
come as its separate parts (``file`` repeated) to /resolve, the preview and the route endpoints alike.

The route is the example route (data/examples), written with GDAL into each format in EPSG:25832 where the format
carries a CRS; what the application resolves to at submit is compared with the resolution of the GeoJSON.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pyogrio.raw
import pytest
import shapely

from tests.support.api import draft_body
from tests.support.route_files import EXAMPLE, example_lines, made, summary, write, zipped_shapefile

PROBLEM = "application/problem+json"
DEFAULTS = {"laying_method": "open_trench", "depth_cm": "60", "width_cm": "40"}


def fields() -> dict:
    body = draft_body(None)
    del body["sections"]
    return body


def shapefile_parts(tmp_path, prj: bool = True, fields_: dict | None = None) -> list[tuple[str, bytes]]:
    """The example route as the files of one Shapefile in EPSG:25832 (optionally with attribute columns)."""
    shp = tmp_path / "parts" / "Trasse_Nord.shp"
    shp.parent.mkdir()
    if fields_:
        geoms, _ = example_lines(25832)
        names = list(fields_)
        pyogrio.raw.write(str(shp), shapely.to_wkb(np.array(geoms, dtype=object)),
                          [np.array([fields_[n]] * len(geoms), dtype=object if isinstance(fields_[n], str) else None)
                           for n in names], names, driver="ESRI Shapefile", geometry_type="LineString",
                          crs="EPSG:25832")
    else:
        write(shp, "ESRI Shapefile", 25832)
    return [(p.name, p.read_bytes()) for p in sorted(shp.parent.iterdir()) if prj or p.suffix != ".prj"]


def multipart(parts: list[tuple[str, bytes]], **form) -> dict:
    return {"files": [("file", (name, data, "application/octet-stream")) for name, data in parts],
            "data": form}


def problem(r, status: int = 422) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    return r.json()


@pytest.fixture(scope="module")
def reference():
    return {}


def reference_summary(client, he, reference) -> dict:
    if "geojson" not in reference:
        r = client.post("/api/v1/resolve", headers=he.operator.headers, content=EXAMPLE.read_bytes())
        assert r.status_code == 200, r.text
        reference["geojson"] = summary(r.json())
    return reference["geojson"]


def submit(client, api, he, app: dict) -> dict:
    """Submit the draft (planned for June 2026: the clock stands in February)."""
    r = api.command(he.operator, f"/applications/{app['id']}/submit", etag=app["etag"])
    assert r.status_code == 200, r.text
    return r.json()


def assert_cases_like_geojson(app: dict, expected: dict) -> None:
    """One case per authority of the GeoJSON's resolution, each part as long (within 0.5 m)."""
    lengths = {c["authority"]["name"]: c["length_m"] for c in app["cases"]}
    assert sorted(lengths) == sorted(expected)
    for name, length in expected.items():
        assert abs(lengths[name] - length) <= 0.5, (name, lengths[name], length)


def test_multipart_create_from_a_shapefile_zip(client, api, he, tmp_path, reference, clock):
    """The application's fields as JSON beside the zipped Shapefile (EPSG:25832, from its .prj): stored as
    EPSG:4326 sections with the defaults for its lines; at submit the same authorities as the GeoJSON."""
    clock.set("2026-02-02T09:00:00+01:00")
    body = zipped_shapefile(tmp_path)
    r = client.post("/api/v1/applications", headers=he.operator.headers,
                    files={"file": ("plan.zip", body, "application/zip")},
                    data={"application": json.dumps(fields()), **DEFAULTS})
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["route_file"] == {"source": {"format": "Shapefile", "layer": "trasse", "crs": "EPSG:25832",
                                            "crs_name": "ETRS89 / UTM zone 32N"}, "warnings": []}
    content = app["content"]
    assert content["crs"] == "EPSG:4326" and content["project_name"] == fields()["project_name"]
    features = content["sections"]["features"]
    assert [f["properties"]["laying_method"] for f in features] == ["open_trench", "open_trench"]
    assert [(f["properties"]["depth_cm"], f["properties"]["width_cm"]) for f in features] == [(60, 40), (60, 40)]
    # the coordinates are the example's (EPSG:4326) again, to well under a millimetre
    original, _ = example_lines()
    for f, g in zip(features, original):
        assert np.abs(np.array(f["geometry"]["coordinates"]) - shapely.get_coordinates(g)).max() < 1e-8
    history = api.get(he.operator, f"/applications/{app['id']}/history").json()
    assert history[0]["detail"]["route_file"]["format"] == "Shapefile"
    assert_cases_like_geojson(submit(client, api, he, app), reference_summary(client, he, reference))


def test_multipart_create_refuses_sections_in_the_json_part(client, he, tmp_path):
    (tmp_path / "b").mkdir()
    p = problem(client.post("/api/v1/applications", headers=he.operator.headers,
                            files={"file": ("plan.zip", zipped_shapefile(tmp_path), "application/zip")},
                            data={"application": json.dumps(draft_body({"type": "FeatureCollection",
                                                                        "features": []}))}))
    assert p["field"] == "application.sections"
    p = problem(client.post("/api/v1/applications", headers=he.operator.headers,
                            files={"file": ("plan.zip", zipped_shapefile(tmp_path / "b"), "application/zip")},
                            data={"application": '{"project_name": 7}', **DEFAULTS}))
    assert p["errors"][0]["field"] == "body.application.project_name"


def test_put_route_replaces_the_drafts_route_with_a_geopackage(client, api, he, tmp_path, reference, clock):
    clock.set("2026-02-02T09:00:00+01:00")
    r = api.create(he.operator, fields())
    assert r.status_code == 201, r.text
    app_id, etag = r.json()["id"], r.headers["etag"]
    body, _ = made(tmp_path, "gpkg")
    url = f"/api/v1/applications/{app_id}/route"
    headers = {**he.operator.headers, "Content-Type": "application/geopackage+sqlite3"}
    problem(client.put(url, headers=headers, content=body), 428)
    # lines without a laying method and no default: the permit attributes are checked as for JSON sections
    p = problem(client.put(url, headers={**headers, "If-Match": etag}, content=body))
    assert p["type"].endswith("/invalid-sections")
    assert p["errors"][0]["field"] == "sections.features[0].properties.laying_method"
    r = client.put(url, headers={**headers, "If-Match": etag}, content=body,
                   params={**DEFAULTS, "depth_cm": 80})
    assert r.status_code == 200, r.text
    app = r.json()
    assert app["route_file"]["source"] == {"format": "GPKG", "layer": "route", "crs": "EPSG:25832",
                                           "crs_name": "ETRS89 / UTM zone 32N"}
    assert r.headers["etag"] == app["etag"] != etag
    assert app["content"]["crs"] == "EPSG:4326"
    assert {f["properties"]["depth_cm"] for f in app["content"]["sections"]["features"]} == {80}
    problem(client.put(url, headers={**headers, "If-Match": etag}, content=body, params=DEFAULTS), 412)
    submitted = submit(client, api, he, app)
    assert_cases_like_geojson(submitted, reference_summary(client, he, reference))
    # a submitted application's route changes by a supplement, not by replacing a draft's route
    p = problem(client.put(url, headers={**headers, "If-Match": submitted["etag"]}, content=body, params=DEFAULTS),
                409)
    assert p["type"].endswith("/illegal-transition")


def test_put_route_from_shapefile_parts_with_truncated_attribute_names(client, api, he, tmp_path):
    """A .dbf cuts "laying_method" to "laying_met": read as the laying method. The parts come in any order under
    any base name; only their extensions pair them."""
    parts = shapefile_parts(tmp_path, fields_={"laying_method": "ploughing", "depth_cm": 90, "width_cm": 20})
    assert b"laying_met" in dict(parts)["Trasse_Nord.dbf"]
    random.Random(4).shuffle(parts)
    r = api.create(he.operator, fields())
    r = client.put(f"/api/v1/applications/{r.json()['id']}/route",
                   headers={**he.operator.headers, "If-Match": r.headers["etag"]}, **multipart(parts))
    assert r.status_code == 200, r.text
    props = [f["properties"] for f in r.json()["content"]["sections"]["features"]]
    assert [(p["laying_method"], p["depth_cm"], p["width_cm"]) for p in props] == [("ploughing", 90, 20)] * 2
    assert r.json()["route_file"]["source"]["format"] == "Shapefile"


def test_shapefile_parts_missing_or_without_prj(client, he, tmp_path):
    parts = shapefile_parts(tmp_path)
    url = "/api/v1/resolve"
    for missing in (".shx", ".dbf", ".shp"):
        p = problem(client.post(url, headers=he.operator.headers,
                                **multipart([x for x in parts if not x[0].endswith(missing)])))
        assert p["type"].endswith("/shapefile-incomplete") and p["missing"] == [missing], p
    no_prj = [x for x in parts if not x[0].endswith(".prj")]
    p = problem(client.post(url, headers=he.operator.headers, **multipart(no_prj)))
    assert p["type"].endswith("/crs-required") and ".prj" in p["detail"]
    r = client.post(url, headers=he.operator.headers, **multipart(no_prj, crs="EPSG:25832"))
    assert r.status_code == 200, r.text
    assert r.json()["source"] == {"format": "Shapefile", "layer": "route", "crs": "EPSG:25832"}
    p = problem(client.post(url, headers=he.operator.headers, **multipart(parts + [("plan.pdf", b"%PDF-1.4")])))
    assert p["type"].endswith("/unexpected-file") and "plan.pdf" in p["detail"]
    swapped = [(n.replace(".shx", ".tmp").replace(".dbf", ".shx").replace(".tmp", ".dbf"), d) for n, d in parts]
    p = problem(client.post(url, headers=he.operator.headers, **multipart(swapped)))
    assert p["type"].endswith("/unexpected-file")


def test_the_preview_returns_the_route_in_4326_and_what_was_read(client, he, tmp_path):
    body, _ = made(tmp_path, "flatgeobuf")
    r = client.post("/api/v1/route-file", headers=he.operator.headers, files={"file": ("x.bin", body)})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["source"] == {"format": "FlatGeobuf", "layer": "route", "crs": "EPSG:25832",
                                "crs_name": "ETRS89 / UTM zone 32N"}
    original, names = example_lines()
    by_name = {f["properties"]["name"]: f for f in answer["route"]["features"]}     # FlatGeobuf sorts spatially
    assert sorted(by_name) == sorted(names)
    for name, g in zip(names, original):
        f = by_name[name]
        assert np.abs(np.array(f["geometry"]["coordinates"]) - shapely.get_coordinates(g)).max() < 1e-8
    # GeoJSON passes through with its own CRS rule (here the legacy crs member)
    body, _ = made(tmp_path, "geojson-25832")
    r = client.post("/api/v1/route-file", headers=he.operator.headers, content=body)
    assert r.status_code == 200, r.text
    assert r.json()["source"] == {"format": "GeoJSON", "crs": "EPSG:25832", "crs_name": "ETRS89 / UTM zone 32N"}
    path = tmp_path / "two.gpkg"
    write(path, "GPKG", 25832, layer="trasse_a")
    write(path, "GPKG", 25832, layer="trasse_b", append=False)
    p = problem(client.post("/api/v1/route-file", headers=he.operator.headers, content=path.read_bytes()))
    assert p["type"].endswith("/layer-required") and p["layers"] == ["trasse_a", "trasse_b"]


def test_heights_dropped_are_said_in_the_answer(client, api, he, tmp_path):
    geoms, names = example_lines(25832)
    path = tmp_path / "z.gpkg"
    pyogrio.raw.write(str(path), shapely.to_wkb(np.array([shapely.force_3d(g, 120.0) for g in geoms], dtype=object),
                                                output_dimension=3),
                      [np.array(names, dtype=object)], ["name"], driver="GPKG", geometry_type="LineString Z",
                      crs="EPSG:25832")
    r = api.create(he.operator, fields())
    r = client.put(f"/api/v1/applications/{r.json()['id']}/route", params=DEFAULTS, content=path.read_bytes(),
                   headers={**he.operator.headers, "If-Match": r.headers["etag"]})
    assert r.status_code == 200, r.text
    assert [w["type"] for w in r.json()["route_file"]["warnings"]] == ["z-m-dropped"]
    assert all(len(c) == 2 for f in r.json()["content"]["sections"]["features"] for c in f["geometry"]["coordinates"])


def test_idempotency_key_on_a_multipart_create(client, he, tmp_path):
    headers = {**he.operator.headers, "Idempotency-Key": "shape-upload-1"}
    body = zipped_shapefile(tmp_path)
    form = {"application": json.dumps(fields()), **DEFAULTS}
    first = client.post("/api/v1/applications", headers=headers, files={"file": ("a.zip", body)}, data=form)
    assert first.status_code == 201, first.text
    again = client.post("/api/v1/applications", headers=headers, files={"file": ("b.zip", body)}, data=form)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other, _ = made(tmp_path, "gpkg")
    p = problem(client.post("/api/v1/applications", headers=headers, files={"file": ("a.zip", other)}, data=form))
    assert p["type"].endswith("/idempotency-key-reused")


def test_unknown_content_is_415_naming_the_formats(client, api, he):
    r = api.create(he.operator, fields())
    p = problem(client.put(f"/api/v1/applications/{r.json()['id']}/route", content=b"%PDF-1.4 not a route",
                           headers={**he.operator.headers, "If-Match": r.headers["etag"]}), 415)
    assert "Shapefile" in p["detail"] and "GeoPackage" in p["detail"]
