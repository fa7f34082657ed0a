"""OGC API - Features for the applications and cases: landing page, conformance, collections with one geometry type
each (trenches, points, areas of the applications; the pieces of the cases), items scoped to the caller (participating
bodies: what they are asked about), bbox, datetime (the planned works period), paging, single items, CRS by reference
(Part 2: crs, bbox-crs, Content-Crs), and 400 for invalid or unknown parameters."""

from __future__ import annotations

import pytest
import shapely
import shapely.geometry

from geo.crs import transformer
from tests.support.api import PROBLEM, collection, trench

BASE = "/api/v1/ogc"
GEOJSON = "application/geo+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"


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
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conf
    assert not any(c.endswith("/conf/oas30") for c in conf)        # /openapi.json is OpenAPI 3.1: not claimed
    colls = get(api, he.operator, "/collections").json()["collections"]
    assert [(c["id"], c["geometryType"]) for c in colls] == [
        ("applications", "MultiLineString"), ("application-points", "MultiPoint"),
        ("application-areas", "MultiPolygon"), ("case-parts", "MultiLineString"),
        ("case-part-points", "MultiPoint"), ("case-part-areas", "MultiPolygon")]
    coll = colls[0]
    assert coll["itemType"] == "feature"
    assert coll["crs"] == [CRS84] + [EPSG + str(code) for code in (4326, 25832, 25833, 3857)]
    assert coll["storageCrs"] == EPSG + "25832"                     # Hessen's metric CRS
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
    assert first["geometry"]["type"] == "MultiLineString"                              # always, one type a layer
    assert page.headers["content-crs"] == f"<{CRS84}>"
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
                         ({"limit": "viele"}, "limit"), ({"offset": "-1"}, "offset"), ({"sortby": "nope"}, "sortby"),
                         ({"f": "html"}, "f")):
        r = get(api, he.operator, "/collections/applications/items", **params)
        assert r.status_code == 400 and r.headers["content-type"] == PROBLEM, (params, r.text)
        assert (r.json()["type"].rsplit("/", 1)[1], r.json()["parameter"]) == ("invalid-parameter", name), params
    assert get(api, he.operator, "/collections/applications/items", limit="5000").status_code == 200   # served as 1000
    assert get(api, he.operator, "/collections/applications/items", datetime="../..").status_code == 200  # no filter
    assert get(api, he.operator, "/conformance", bbox="1,2,3,4").status_code == 400


def square(lon: float, lat: float, half: float = 0.00008) -> dict:
    return {"type": "Polygon", "coordinates": [[[lon - half, lat - half], [lon + half, lat - half],
                                                [lon + half, lat + half], [lon - half, lat + half],
                                                [lon - half, lat - half]]]}


def items_of(api, who, collection_id, **params) -> dict:
    r = get(api, who, f"/collections/{collection_id}/items", **params)
    assert r.status_code == 200 and r.headers["content-type"] == GEOJSON, r.text
    return r.json()


def test_one_geometry_type_per_collection_and_case_pieces_as_stored(api, he, lines, clock):
    """Trenches, pits and areas of one application go to three collections, each with one geometry type (GDAL and
    QGIS type a layer by it); the case collections give each authority its pieces as the submission stored them."""
    clock.set("2026-01-15T10:00:00+01:00")
    k823 = lines["k823"]["coordinates"]
    mixed = api.submitted(he.operator, collection(
        trench(lines["l3262"]), trench(lines["k163"], "mini_trenching"), trench(lines["k823"], "micro_trenching"),
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": k823[0]},
         "properties": {"kind": "cabinet", "label": "NVt 12"}},
        {"type": "Feature", "geometry": square(*k823[len(k823) // 2]), "properties": {"kind": "construction_area"}}))
    clock.set("2026-01-15T11:00:00+01:00")
    plain = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))

    trenches = items_of(api, he.operator, "applications")
    assert [(f["id"], f["geometry"]["type"], len(f["geometry"]["coordinates"])) for f in trenches["features"]] == [
        (plain["id"], "MultiLineString", 1), (mixed["id"], "MultiLineString", 3)]
    points = items_of(api, he.operator, "application-points")
    assert [(f["id"], f["geometry"]["type"]) for f in points["features"]] == [(mixed["id"], "MultiPoint")]
    assert points["features"][0]["geometry"]["coordinates"] == [pytest.approx(k823[0])]
    areas = items_of(api, he.operator, "application-areas")
    assert [(f["id"], f["geometry"]["type"]) for f in areas["features"]] == [(mixed["id"], "MultiPolygon")]
    assert (points["numberMatched"], areas["numberMatched"]) == (1, 1)

    # an authority: its own pieces, as stored with its case, with road, class, length, rule, Gemeinde, days left
    case_id = api.case_of(mixed, "Hessen Mobil")
    stored = api.get(he.hessen_mobil, f"/cases/{case_id}").json()["part"]
    parts = items_of(api, he.hessen_mobil, "case-parts")
    assert parts["numberMatched"] == len(stored["pieces"]) >= 1
    for n, (f, piece) in enumerate(zip(parts["features"], stored["pieces"], strict=True)):
        p = f["properties"]
        assert f["id"] == f"{case_id}.{n}" and f["geometry"]["type"] == "MultiLineString"
        assert (p["case_id"], p["piece_index"], p["reference"], p["authority"], p["case_status"]) == (
            case_id, n, mixed["reference"], "Hessen Mobil", "received")
        assert (p["road_ref"], p["road_class"], p["length_m"], p["rule"], p["gemeinde"], p["gemeinde_ags"]) == (
            piece["road_ref"], piece["road_class"], piece["length_m"], piece["rule"], piece["gemeinde"]["name"],
            piece["gemeinde"]["ags"])
        assert (p["decision_due"], p["days_left"], p["section"]) == ("2026-04-15", 90, piece["section"])
        assert f["geometry"]["coordinates"][0] == [pytest.approx(c) for c in piece["geometry"]["coordinates"]]
        assert p["url"].endswith(f"/#/case/{case_id}")
    assert {p["properties"]["road_ref"] for p in parts["features"]} == {"L 3262", "B 44"}     # it crosses the B 44
    assert sum(f["properties"]["length_m"] for f in parts["features"]) == pytest.approx(stored["length_m"], abs=0.1)
    one = get(api, he.hessen_mobil, f"/collections/case-parts/items/{case_id}.0")
    assert one.status_code == 200 and one.json()["properties"]["rule"] == stored["pieces"][0]["rule"]
    # the cabinet by the K 823 is Frankfurt's, a point piece; the construction area too, with its area
    [cabinet] = items_of(api, he.frankfurt, "case-part-points")["features"]
    assert (cabinet["geometry"]["type"], cabinet["properties"]["authority"]) == ("MultiPoint",
                                                                                  "Stadt Frankfurt am Main")
    [area] = items_of(api, he.frankfurt, "case-part-areas")["features"]
    assert area["geometry"]["type"] == "MultiPolygon" and 10 < area["properties"]["area_m2"] < 500
    assert items_of(api, he.hessen_mobil, "case-part-points")["features"] == []
    # the operator sees the pieces of its applications' cases (who decides what); another operator nothing
    mine = items_of(api, he.operator, "case-parts", limit=1000)["features"]
    assert {f["properties"]["authority"] for f in mine} >= {"Hessen Mobil", "Landkreis Offenbach",
                                                            "Stadt Frankfurt am Main", "Stadt Neu-Isenburg"}
    assert items_of(api, he.other_operator, "case-parts")["numberMatched"] == 0
    for fid in (f"{case_id}.0", f"{case_id}.99", "x.0", case_id):
        who = he.other_operator if fid.endswith(".0") else he.hessen_mobil
        r = get(api, who, f"/collections/case-parts/items/{fid}")
        assert (r.status_code, r.headers["content-type"]) == (404, PROBLEM), fid


def test_crs_by_reference(api, he, lines, clock):
    """Part 2: crs for the answer (EPSG:4326 latitude first, EPSG:25832/25833/3857 in metres), bbox-crs for the box,
    Content-Crs naming the CRS; a CRS not offered is 400 naming the offered ones."""
    clock.set("2026-01-15T10:00:00+01:00")
    ni = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    ffm = api.submitted(he.operator, collection(trench(lines["k823"])))
    plain = {f["id"]: f for f in items_of(api, he.operator, "applications")["features"]}
    lonlat = shapely.get_coordinates(shapely.geometry.shape(plain[ffm["id"]]["geometry"]))

    r = get(api, he.operator, "/collections/applications/items", crs=EPSG + "25832")
    assert r.status_code == 200 and r.headers["content-crs"] == f"<{EPSG}25832>"
    utm = shapely.get_coordinates(shapely.geometry.shape(next(f for f in r.json()["features"]
                                                              if f["id"] == ffm["id"])["geometry"]))
    x, y = transformer(4326, 25832).transform(lonlat[:, 0], lonlat[:, 1])
    assert abs(utm[:, 0] - x).max() < 0.01 and abs(utm[:, 1] - y).max() < 0.01
    assert 470_000 < utm[0, 0] < 480_000 and 5_540_000 < utm[0, 1] < 5_560_000          # metres, easting first
    r = get(api, he.operator, f"/collections/applications/items/{ffm['id']}", crs="EPSG:4326")
    assert r.headers["content-crs"] == f"<{EPSG}4326>"
    latlon = shapely.get_coordinates(shapely.geometry.shape(r.json()["geometry"]))
    assert latlon[:, ::-1] == pytest.approx(lonlat, abs=1e-7)                             # latitude first
    for code in (25833, 3857):
        assert get(api, he.operator, "/collections/case-parts/items", crs=EPSG + str(code)).status_code == 200

    # the box in EPSG:25832 (easting, northing) and EPSG:4326 (latitude first) selects the same as in CRS84
    box = shapely.box(*shapely.bounds(shapely.geometry.LineString(utm))).buffer(5).bounds
    assert [f["id"] for f in items_of(api, he.operator, "applications", bbox=",".join(map(str, box)),
                                      **{"bbox-crs": EPSG + "25832"})["features"]] == [ffm["id"]]
    x0, y0, x1, y1 = shapely.bounds(shapely.geometry.LineString(lonlat))
    assert [f["id"] for f in items_of(api, he.operator, "applications",
                                      bbox=f"{y0 - 1e-4},{x0 - 1e-4},{y1 + 1e-4},{x1 + 1e-4}",
                                      **{"bbox-crs": EPSG + "4326"})["features"]] == [ffm["id"]]
    assert ni["id"] in plain

    for params in ({"crs": "EPSG:31467"}, {"crs": "urn:x"}, {"bbox-crs": EPSG + "2056", "bbox": "1,2,3,4"}):
        r = get(api, he.operator, "/collections/applications/items", **params)
        assert (r.status_code, r.headers["content-type"]) == (400, PROBLEM), params
        assert r.json()["parameter"] == next(iter(params)) and EPSG + "25833" in r.json()["detail"]
        assert r.json()["supported"][0] == CRS84
    r = get(api, he.operator, "/collections/applications/items", bbox="5000000,400000,5100000,500000",
            **{"bbox-crs": EPSG + "4326"})
    assert (r.status_code, r.json()["parameter"]) == (400, "bbox")


def test_participating_body_sees_what_it_is_asked_about(api, he, lines, clock, session, task_db):
    """A Straßenverkehrsbehörde asked about an application sees it (and only it), with its request's state; the
    same scope as its map tiles (permits.gis.scope)."""
    from test_participation import Bodies, cli, run_pipeline

    bodies = Bodies(session)
    cli("participation", "rules", "load", "--tenant", "he", "data/tenants/he_participation.toml")
    clock.set("2026-01-15T10:00:00+01:00")
    asked = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])), traffic_restrictions=[
        {"kind": "lane_closure", "description": "Fahrstreifen gesperrt", "road": "Admiral-Rosendahl-Straße",
         "start": "2026-06-01", "end": "2026-06-20"}])
    assert run_pipeline(task_db, session, asked["id"]) == ["SUCCESS"] * 4
    api.submitted(he.other_operator, collection(trench(lines["k823"])), traffic_restrictions=[])

    [f] = items_of(api, bodies.traffic_ni, "applications")["features"]
    assert (f["id"], f["properties"]["reference"], f["properties"]["statement_status"]) == (
        asked["id"], asked["reference"], "requested")
    assert f["properties"]["statement_due"] and "/#/statement/" in f["properties"]["url"]
    assert get(api, bodies.traffic_ni, f"/collections/applications/items/{asked['id']}").status_code == 200
    assert items_of(api, bodies.traffic_ni, "case-parts")["numberMatched"] == 0        # bodies read no cases
    for other in (bodies.water, bodies.traffic_kreis):
        assert items_of(api, other, "applications")["numberMatched"] == 0


def test_filters_sort_keys_and_queryables(api, he, lines, clock):
    """Part 3 and sorting: an authority asks for its open cases (the URL of docs/api.md), by CQL2 text or JSON, by
    queryables as query parameters, sorted; what it may ask is in /queryables and /sortables; bad filters are 400."""
    clock.set("2026-01-15T10:00:00+01:00")
    early = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])), project_name="Früh")
    clock.set("2026-02-20T10:00:00+01:00")
    late = api.submitted(he.operator, collection(trench(lines["neu_isenburg_2"])), project_name="Spät")
    clock.set("2026-02-21T10:00:00+01:00")
    gone = api.submitted(he.other_operator, collection(trench(lines["neu_isenburg_2"])), project_name="Zurück")
    r = api.command(he.other_operator, f"/applications/{gone['id']}/withdraw", {"reason": "Trasse entfällt"})
    assert r.status_code == 200, r.text
    clock.set("2026-03-01T10:00:00+01:00")

    def refs(collection_id, **params):
        body = items_of(api, he.neu_isenburg, collection_id, **params)
        return [f["properties"]["reference"] for f in body["features"]], body["numberMatched"]

    my_open = {"filter": "case_status IN ('received','incomplete','in_review')", "sortby": "decision_due"}
    assert refs("applications", **my_open) == ([early["reference"], late["reference"]], 2)
    assert refs("applications") == ([gone["reference"], late["reference"], early["reference"]], 3)
    pieces, n = refs("case-parts", **my_open)
    assert set(pieces) == {early["reference"], late["reference"]} and pieces[0] == early["reference"]
    assert refs("case-parts", filter="case_status = 'withdrawn'")[1] >= 1
    assert refs("applications", sortby="-decision_due,reference")[0][:2] == [gone["reference"], late["reference"]]
    assert refs("applications", filter="days_left < 60 AND project_name LIKE 'Fr%'") == ([early["reference"]], 1)
    assert refs("applications", filter='{"op": "=", "args": [{"property": "case_status"}, "withdrawn"]}',
                **{"filter-lang": "cql2-json"}) == ([gone["reference"]], 1)
    assert refs("applications", case_status="withdrawn") == ([gone["reference"]], 1)        # queryable parameters
    assert refs("case-parts", gemeinde="Neu-Isenburg", case_status="received")[1] == n
    assert refs("applications", planned_start="2026-06-01")[1] == 3
    box = bbox_of(lines["neu_isenburg"]).split(",")
    assert refs("applications", filter=f"S_INTERSECTS(geometry, BBOX({','.join(box)}))") == ([early["reference"]], 1)
    lat_first = ",".join([box[1], box[0], box[3], box[2]])
    assert refs("applications", filter=f"S_INTERSECTS(geometry, BBOX({lat_first}))",
                **{"filter-crs": EPSG + "4326"}) == ([early["reference"]], 1)

    q = get(api, he.neu_isenburg, "/collections/case-parts/queryables")
    assert q.status_code == 200 and q.headers["content-type"] == "application/schema+json"
    props = q.json()["properties"]
    assert {"case_status", "decision_due", "days_left", "gemeinde", "road_ref", "authority", "reference",
            "applicant", "planned_start", "geometry"} <= set(props)
    assert props["decision_due"] == {"type": "string", "format": "date", "title": "Entscheidung fällig am / "
                                                                                  "decision due"}
    assert props["geometry"]["format"] == "geometry-multilinestring"
    s = get(api, he.neu_isenburg, "/collections/applications/sortables").json()
    assert "geometry" not in s["properties"] and "days_left" in s["properties"]
    assert s["$id"].endswith("/collections/applications/sortables")
    assert "statement_status" not in get(api, he.operator, "/collections/applications/queryables").json()[
        "properties"]

    for params, name in (({"filter": "case_status = "}, "filter"), ({"filter": "nonsense = 1"}, "filter"),
                         ({"filter": "days_left = 'viele'"}, "filter"), ({"filter-lang": "cql2-text"}, "filter-lang"),
                         ({"filter": "status = 'x'", "filter-lang": "ecql"}, "filter-lang"),
                         ({"sortby": "geometry"}, "sortby"), ({"sortby": "unknown"}, "sortby"),
                         ({"days_left": "viele"}, "days_left"), ({"decision_due": "morgen"}, "decision_due"),
                         ({"case_status": "x'; DROP TABLE cases; --"}, None)):
        r = get(api, he.neu_isenburg, "/collections/applications/items", **params)
        if name is None:                                        # a string stays a string
            assert (r.status_code, r.json()["numberMatched"]) == (200, 0)
            continue
        assert (r.status_code, r.headers["content-type"], r.json()["parameter"]) == (400, PROBLEM, name), params
    # a queryable of another role's view is unknown to this caller
    r = get(api, he.operator, "/collections/applications/items", case_status="received")
    assert (r.status_code, r.json()["parameter"]) == (400, "case_status")
