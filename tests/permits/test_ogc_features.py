"""OGC API - Features for the applications: landing page, conformance, collection, items scoped to the caller,
bbox, datetime (the planned works period), paging, single items, and 400 for invalid or unknown parameters."""

from __future__ import annotations

import shapely
import shapely.geometry

from tests.support.api import PROBLEM, collection, trench

BASE = "/api/v1/ogc"
GEOJSON = "application/geo+json"


def get(api, who, path, **params):
    return api.c.get(BASE + path, headers=who.headers, params=params or None)


def bbox_of(line, pad=0.0005) -> str:
    xs = [c[0] for c in line["coordinates"]]
    ys = [c[1] for c in line["coordinates"]]
    return f"{min(xs) - pad},{min(ys) - pad},{max(xs) + pad},{max(ys) + pad}"


def test_landing_conformance_and_collection(api, he):
    landing = get(api, he.operator, "")
    assert landing.status_code == 200
    rels = {link["rel"]: link["href"] for link in landing.json()["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    assert rels["data"].endswith("/api/v1/ogc/collections")
    conf = get(api, he.operator, "/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conf
    assert not any(c.endswith("/conf/oas30") for c in conf)        # /openapi.json is OpenAPI 3.1: not claimed
    [coll] = get(api, he.operator, "/collections").json()["collections"]
    assert (coll["id"], coll["itemType"]) == ("applications", "feature")
    x0, y0, x1, y1 = coll["extent"]["spatial"]["bbox"][0]
    assert 7.7 < x0 < 8.0 and 49.3 < y0 < 49.5 and 10.2 < x1 < 10.3 and 51.6 < y1 < 51.7   # Hessen in CRS84
    assert any(link["rel"] == "items" and link["type"] == GEOJSON for link in coll["links"])
    assert get(api, he.operator, "/collections/applications").json()["id"] == "applications"
    missing = get(api, he.operator, "/collections/roads")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert api.c.get(BASE).status_code == 401


def test_items_are_what_the_caller_may_read_with_filters_and_paging(api, he, lines, clock):
    clock.set("2026-01-15T10:00:00+01:00")
    ni = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])), project_name="Gravenbruch",
                       planned_start="2026-06-01", planned_end="2026-06-30")
    clock.set("2026-01-15T11:00:00+01:00")
    ffm = api.submitted(he.operator, collection(trench(lines["k823"])), project_name="Frankfurt K 823",
                        planned_start="2026-09-01", planned_end="2026-10-15")
    clock.set("2026-01-15T12:00:00+01:00")
    other = api.submitted(he.other_operator, collection(trench(lines["neu_isenburg_2"])), project_name="Konkurrenz")

    page = get(api, he.operator, "/collections/applications/items")
    assert page.status_code == 200 and page.headers["content-type"] == GEOJSON
    body = page.json()
    assert body["type"] == "FeatureCollection" and body["numberReturned"] == 2 and body["numberMatched"] == 2
    assert [f["id"] for f in body["features"]] == [ffm["id"], ni["id"]]              # newest first
    first = body["features"][1]
    assert first["geometry"]["type"] in ("LineString", "MultiLineString")               # trenches only: no collection
    lon, lat = shapely.get_coordinates(shapely.geometry.shape(first["geometry"]))[0]
    assert 8.5 < lon < 8.9 and 49.9 < lat < 50.2                                       # CRS84: longitude first
    props = first["properties"]
    assert (props["reference"], props["project_name"], props["status"], props["planned_start"],
            props["planned_end"]) == (ni["reference"], "Gravenbruch", "submitted", "2026-06-01", "2026-06-30")
    assert props["applicant"] and props["url"].endswith(f"/#/application/{ni['id']}")

    # scope: the other operator sees only its own; the authority its case, with the case's state and date
    assert [f["id"] for f in get(api, he.other_operator, "/collections/applications/items").json()["features"]] \
        == [other["id"]]
    mine = get(api, he.neu_isenburg, "/collections/applications/items").json()["features"]
    assert {f["id"] for f in mine} == {ni["id"], other["id"]}
    case = next(f for f in mine if f["id"] == ni["id"])["properties"]
    assert (case["case_status"], case["decision_due"]) == ("received", "2026-04-15")
    assert case["url"].endswith(f"/#/case/{api.case_of(ni, 'Stadt Neu-Isenburg')}")
    assert len(get(api, he.admin, "/collections/applications/items").json()["features"]) == 3

    # bbox and datetime (planned works period)
    def ids(**params):
        return [f["id"] for f in get(api, he.operator, "/collections/applications/items", **params).json()["features"]]

    assert ids(bbox=bbox_of(lines["k823"])) == [ffm["id"]]
    assert ids(datetime="2026-06-15") == [ni["id"]]
    assert ids(datetime="2026-06-20/2026-09-05") == [ffm["id"], ni["id"]]
    assert ids(datetime="../2026-05-31") == []
    assert ids(datetime="2026-10-15T23:30:00+02:00/..") == [ffm["id"]]

    # paging: next links until the end
    one = get(api, he.operator, "/collections/applications/items", limit=1).json()
    assert (one["numberReturned"], one["numberMatched"]) == (1, 2)          # all that match, not the page
    nxt = next(link["href"] for link in one["links"] if link["rel"] == "next")
    two = api.c.get(nxt, headers=he.operator.headers).json()
    assert (two["numberReturned"], two["numberMatched"]) == (1, 2)
    beyond = get(api, he.operator, "/collections/applications/items", limit=1, offset=5).json()
    assert (beyond["numberReturned"], beyond["numberMatched"]) == (0, 2)
    assert [f["id"] for f in one["features"] + two["features"]] == [ffm["id"], ni["id"]]
    assert not any(link["rel"] == "next" for link in two["links"])
    assert any(link["rel"] == "prev" for link in two["links"])

    # one item; another operator's is not there
    single = get(api, he.operator, f"/collections/applications/items/{ni['id']}")
    assert single.status_code == 200 and single.headers["content-type"] == GEOJSON
    assert single.json()["properties"]["reference"] == ni["reference"]
    for fid in (other["id"], "not-a-uuid"):
        r = get(api, he.operator, f"/collections/applications/items/{fid}")
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


def test_invalid_and_unknown_parameters_are_400(api, he):
    for params, name in (({"bbox": "8.6,50.0,8.7"}, "bbox"), ({"bbox": "a,b,c,d"}, "bbox"),
                         ({"bbox": "8.7,50.0,8.6,50.1"}, "bbox"),
                         ({"bbox": "8.6,95,8.7,96"}, "bbox"), ({"datetime": "gestern"}, "datetime"),
                         ({"datetime": "2026-06-01T10:00:00"}, "datetime"),
                         ({"datetime": "2026-07-01/2026-06-01"}, "datetime"), ({"limit": "0"}, "limit"),
                         ({"limit": "viele"}, "limit"), ({"offset": "-1"}, "offset"), ({"sortby": "status"}, "sortby"),
                         ({"f": "html"}, "f")):
        r = get(api, he.operator, "/collections/applications/items", **params)
        assert r.status_code == 400 and r.headers["content-type"] == PROBLEM, (params, r.text)
        assert (r.json()["type"].rsplit("/", 1)[1], r.json()["parameter"]) == ("invalid-parameter", name), params
    assert get(api, he.operator, "/collections/applications/items", limit="5000").status_code == 200   # served as 1000
    assert get(api, he.operator, "/collections/applications/items", datetime="../..").status_code == 200  # no filter
    assert get(api, he.operator, "/conformance", bbox="1,2,3,4").status_code == 400
