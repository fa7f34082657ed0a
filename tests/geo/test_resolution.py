"""Resolution of affected authorities on the real Hessen data (VG250 boundaries, OSM Frankfurter Kreuz).

Routes are derived from real OSM road geometry: a stretch of a road, shifted sideways by a few metres as a
trench in the verge would run, transformed into the request CRS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import shapely
import shapely.ops
from sqlalchemy import text

from breitband import identity
from breitband.models import OrgKind, Role
from breitband.settings import PROJECT_ROOT
from geo.crs import transformer

PROBLEM = "application/problem+json"


def road_line(engine, where: str, **params):
    with engine.connect() as conn:
        wkb = conn.execute(text(
            f"SELECT ST_AsBinary(ST_LineMerge(ST_Union(geom))) FROM road_segments WHERE tenant_key = 'he' AND {where}"),
            params).scalar()
    geom = shapely.from_wkb(bytes(wkb))
    if geom.geom_type == "MultiLineString":
        geom = max(geom.geoms, key=lambda g: g.length)
    return geom


def along(engine, where: str, offset_m: float, start_m: float = 0.0, length_m: float = 1e9, **params):
    """A stretch of a road (metric, EPSG:25832), shifted sideways by offset_m."""
    line = road_line(engine, where, **params)
    piece = shapely.ops.substring(line, start_m, min(start_m + length_m, line.length))
    return piece.offset_curve(offset_m) if offset_m else piece


def geojson(geom, crs: int = 4326) -> dict:
    if crs != 25832:
        t = transformer(25832, crs)
        geom = shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    return json.loads(shapely.to_geojson(geom))


@pytest.fixture
def he_user(session, he_data):
    """An operator member in tenant he (inside the rolled-back test transaction)."""
    org = identity.create_organisation(session, "he", OrgKind.operator, "Test-Glasfaser GmbH")
    user = identity.create_user(session, org, "resolve-test@glasfaser.example", "R", Role.operator_member)
    _, secret = identity.create_token(session, user, "test")
    session.commit()
    return {"Authorization": f"Bearer {secret}"}


def resolve(client, headers, body, crs=None):
    params = {"crs": crs} if crs else None
    return client.post("/api/v1/resolve", headers=headers, params=params,
                       content=json.dumps(body) if not isinstance(body, (str, bytes)) else body)


def by_name(result) -> dict:
    return {a["name"]: a for a in result["authorities"]}


def assert_adds_up(result):
    parts = (sum(a["length_m"] for a in result["authorities"]) + result["outside_public_roads"]["length_m"]
             + result["private_roads"]["length_m"])
    assert abs(parts - result["total_length_m"]) <= 0.005 * result["total_length_m"] + 0.2


def test_a5_goes_to_autobahn_gmbh(client, he_user, engine):
    route = along(engine, "ref = 'A 5' AND highway = 'motorway'", 12, 100, 1000)
    r = resolve(client, he_user, geojson(route))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(a["name"], a["kind"], a["key"], a["length_m"]) for a in body["authorities"]] == [
        ("Die Autobahn GmbH des Bundes", "autobahn", None, 1000.0)]
    piece = body["authorities"][0]["pieces"][0]
    assert piece["road_ref"] == "A 5"
    assert piece["road_class"] == "autobahn"
    assert piece["rule"].startswith("A 5: Bundesautobahn → Die Autobahn GmbH des Bundes")
    assert piece["geometry"]["type"] == "LineString"
    assert body["total_length_m"] == 1000.0
    assert body["warnings"] == []
    assert body["outside_public_roads"] == {"length_m": 0.0, "pieces": []}


def test_a_renamed_authority_is_named_in_the_next_answer(client, he_user, engine, session):
    """The directory is cached in memory per tenants.data_changed_at, which triggers move on every change of an
    authority or an organisation's name, however it is made."""
    route = geojson(along(engine, "name = 'Admiral-Rosendahl-Straße'", 6))
    assert [a["name"] for a in resolve(client, he_user, route).json()["authorities"]] == ["Stadt Neu-Isenburg"]
    before = session.execute(text("SELECT data_changed_at FROM tenants WHERE key = 'he'")).scalar()
    session.execute(text("UPDATE organisations SET name = 'Magistrat der Stadt Neu-Isenburg' "
                         "WHERE name = 'Stadt Neu-Isenburg' AND tenant_key = 'he'"))
    session.commit()
    assert session.execute(text("SELECT data_changed_at FROM tenants WHERE key = 'he'")).scalar() > before
    body = resolve(client, he_user, route).json()
    assert [(a["name"], a["key"]) for a in body["authorities"]] == [("Magistrat der Stadt Neu-Isenburg", "06438009")]


def test_l3262_goes_to_hessen_mobil_with_od_warning_for_neu_isenburg(client, he_user, engine, session):
    # the stretch of the L 3262 that lies in Neu-Isenburg
    route = along(engine, "ref = 'L 3262' AND ST_Within(geom, (SELECT geom FROM admin_areas WHERE tenant_key = 'he' "
                  "AND ags = '06438009'))", 8)
    body = resolve(client, he_user, geojson(route)).json()
    names = by_name(body)
    assert "Hessen Mobil" in names
    mobil = names["Hessen Mobil"]
    assert mobil["kind"] == "land"
    assert mobil["length_m"] >= 0.9 * body["total_length_m"]
    assert {p["road_ref"] for p in mobil["pieces"] if p["road_class"] == "land"} == {"L 3262"}
    od = [w for w in body["warnings"] if w["code"] == "ortsdurchfahrt-unknown" and w["road_ref"] == "L 3262"]
    assert len(od) == 1
    assert od[0]["gemeinde"] == {"ags": "06438009", "name": "Neu-Isenburg", "population": 37668}
    assert "Neu-Isenburg hat 37.668 Einwohner (mehr als 30.000)" in od[0]["message"]
    assert od[0]["authority"] == "Hessen Mobil"
    assert_adds_up(body)


def test_k163_in_neu_isenburg_goes_to_kreis_offenbach(client, he_user, engine):
    route = along(engine, "ref = 'K 163'", 8)
    body = resolve(client, he_user, geojson(route)).json()
    kreis = by_name(body)["Landkreis Offenbach"]
    assert (kreis["kind"], kreis["key"]) == ("kreis", "06438")
    assert kreis["length_m"] >= 0.9 * body["total_length_m"]
    assert all(p["road_ref"] == "K 163" for p in kreis["pieces"])
    assert kreis["pieces"][0]["rule"].startswith("K 163")
    assert any(w["code"] == "ortsdurchfahrt-unknown" and w["road_ref"] == "K 163" for w in body["warnings"])
    assert_adds_up(body)


def test_k823_in_frankfurt_goes_to_the_kreisfreie_stadt(client, he_user, engine):
    route = along(engine, "ref = 'K 823'", 8)
    body = resolve(client, he_user, geojson(route)).json()
    # the trench crosses a few ramps of the B 43 (classified through link propagation): those go to Hessen Mobil
    assert body["authorities"][0]["name"] == "Stadt Frankfurt am Main"
    assert {a["name"] for a in body["authorities"]} <= {"Stadt Frankfurt am Main", "Hessen Mobil"}
    ffm = body["authorities"][0]
    assert (ffm["kind"], ffm["key"]) == ("gemeinde", "06412000")
    k823 = [p for p in ffm["pieces"] if p["road_ref"] == "K 823"]
    assert sum(p["length_m"] for p in k823) >= 0.8 * body["total_length_m"]
    assert "kreisfreien Stadt Frankfurt am Main" in k823[0]["rule"]
    # no OD question for the K 823: a kreisfreie Stadt carries its Kreisstraßen anyway
    assert not [w for w in body["warnings"] if w["road_ref"] == "K 823"]


def test_residential_street_in_neu_isenburg(client, he_user, engine):
    route = along(engine, "name = 'Admiral-Rosendahl-Straße'", 6)
    body = resolve(client, he_user, geojson(route)).json()
    assert [(a["name"], a["kind"], a["key"]) for a in body["authorities"]] == [
        ("Stadt Neu-Isenburg", "gemeinde", "06438009")]
    assert body["authorities"][0]["length_m"] == body["total_length_m"]
    assert body["warnings"] == []


def test_route_crossing_frankfurt_neu_isenburg_boundary(client, he_user, engine):
    route = along(engine, "name = 'Am Luftbrückendenkmal'", 6)
    body = resolve(client, he_user, geojson(route)).json()
    names = by_name(body)
    assert {"Stadt Frankfurt am Main", "Stadt Neu-Isenburg"} <= set(names)
    # besides both towns only short crossings of classified roads (ramps) may appear
    assert all(a["length_m"] < 60 for n, a in names.items() if not n.startswith("Stadt "))
    # lengths follow the (200 m simplified) VG250 boundary, split in pieces of at most 10 m
    with engine.connect() as conn:
        in_ffm = conn.execute(text(
            "SELECT ST_Length(ST_Intersection(ST_GeomFromWKB(:g, 25832), geom)) FROM admin_areas "
            "WHERE tenant_key = 'he' AND ags = '06412000'"), {"g": shapely.to_wkb(route)}).scalar()
    pieces = [p for a in body["authorities"] for p in a["pieces"]] + body["private_roads"]["pieces"] \
        + body["outside_public_roads"]["pieces"]
    ffm = sum(p["length_m"] for p in pieces if p["gemeinde"]["ags"] == "06412000")
    assert abs(ffm - in_ffm) <= 10.0
    assert names["Stadt Neu-Isenburg"]["length_m"] > 100
    assert_adds_up(body)


def test_route_8m_beside_road_matches_200m_into_forest_does_not(client, he_user, engine):
    beside = along(engine, "name = 'Admiral-Rosendahl-Straße'", 8)
    body = resolve(client, he_user, geojson(beside)).json()
    assert body["outside_public_roads"]["length_m"] == 0.0
    # 200 m off the A 3 motorway into the Frankfurter Stadtwald: no road within the tolerance
    far = along(engine, "ref = 'A 3' AND highway = 'motorway'", 200, 500, 300)
    with engine.connect() as conn:
        nearest = conn.execute(text("SELECT min(ST_Distance(geom, ST_GeomFromWKB(:g, 25832))) FROM road_segments "
                                    "WHERE tenant_key = 'he' AND ST_DWithin(geom, ST_GeomFromWKB(:g, 25832), 20)"),
                               {"g": shapely.to_wkb(far)}).scalar()
    assert nearest is None, "precondition: no road within 20 m of the forest route"
    body = resolve(client, he_user, geojson(far)).json()
    assert body["authorities"] == []
    assert body["outside_public_roads"]["length_m"] == body["total_length_m"] == round(far.length, 1)
    assert body["outside_public_roads"]["pieces"][0]["reason"] == "no_public_road_within_tolerance"


def test_same_answer_in_4326_25832_31467(client, he_user, engine):
    route = along(engine, "name = 'Am Luftbrückendenkmal'", 6)
    answers = []
    for crs in (4326, 25832, 31467):
        body = resolve(client, he_user, geojson(route, crs), crs=f"EPSG:{crs}").json()
        assert body["crs"] == f"EPSG:{crs}"
        answers.append(sorted((a["name"], a["length_m"]) for a in body["authorities"]))
    for other in answers[1:]:
        assert [n for n, _ in other] == [n for n, _ in answers[0]]
        for (_, a), (_, b) in zip(answers[0], other):
            assert abs(a - b) <= 0.2


def test_points_and_areas(client, he_user, engine):
    line = along(engine, "name = 'Admiral-Rosendahl-Straße'", 6)
    pit = line.interpolate(50)
    area = line.interpolate(120).buffer(3)
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"kind": "trench"}, "geometry": geojson(line)},
        {"type": "Feature", "properties": {"kind": "pit"}, "geometry": geojson(pit)},
        {"type": "Feature", "properties": {"kind": "construction_area"}, "geometry": geojson(area)},
    ]}
    body = resolve(client, he_user, fc).json()
    ni = by_name(body)["Stadt Neu-Isenburg"]
    kinds = sorted((p["section"], p.get("feature_type", "line")) for p in ni["pieces"])
    assert kinds[-2:] == [(1, "point"), (2, "area")]
    area_piece = [p for p in ni["pieces"] if p.get("feature_type") == "area"][0]
    assert area_piece["length_m"] == 0.0
    assert 27.0 < area_piece["area_m2"] < 28.5
    assert body["total_length_m"] == round(line.length, 1)


def test_cli_prints_the_same_json(he_data, engine, tmp_path):
    route = along(engine, "ref = 'A 5' AND highway = 'motorway'", 12, 100, 1000)
    path = tmp_path / "route.geojson"
    path.write_text(json.dumps(geojson(route)))
    proc = subprocess.run([sys.executable, "-m", "breitband.cli", "resolve", "--tenant", "he", str(path)],
                          capture_output=True, text=True, env=os.environ.copy(), cwd=PROJECT_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert [(a["name"], a["length_m"]) for a in body["authorities"]] == [("Die Autobahn GmbH des Bundes", 1000.0)]
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "LineString", "coordinates": [[8.6, 50.0], [8.6, 50.0]]}')
    proc = subprocess.run([sys.executable, "-m", "breitband.cli", "resolve", "--tenant", "he", str(bad)],
                          capture_output=True, text=True, env=os.environ.copy(), cwd=PROJECT_ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == "error: Feature 0: line 0 has zero length (all its points are the same)"


# --- bad input -----------------------------------------------------------------------------------------------

def problem_of(r, status=422):
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    return r.json()


def test_not_geojson(client, he_user):
    assert problem_of(resolve(client, he_user, b"<kml/>"))["type"].endswith("/unreadable-file")   # a KML, but empty
    assert problem_of(resolve(client, he_user, {"hello": 1}))["type"].endswith("/not-geojson")


def test_unsupported_geometry_type(client, he_user):
    body = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": [[8.68, 50.05],
                                                                                                 [8.69, 50.05]]}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Curve", "coordinates": []}}]}
    p = problem_of(resolve(client, he_user, body))
    assert p["type"].endswith("/unsupported-geometry")
    assert p["feature_index"] == 1


def test_self_intersecting_polygon_with_location(client, he_user):
    bow = {"type": "Polygon", "coordinates": [[[8.68, 50.05], [8.69, 50.06], [8.69, 50.05], [8.68, 50.06],
                                               [8.68, 50.05]]]}
    p = problem_of(resolve(client, he_user, bow))
    assert p["type"].endswith("/invalid-geometry")
    assert p["reason"] == "Self-intersection"
    assert p["location"] == pytest.approx([8.685, 50.055], abs=1e-6)


def test_empty_and_zero_length(client, he_user):
    assert problem_of(resolve(client, he_user, {"type": "LineString", "coordinates": []}))["type"].endswith(
        "/empty-geometry")
    p = problem_of(resolve(client, he_user, {"type": "LineString", "coordinates": [[8.68, 50.05], [8.68, 50.05]]}))
    assert p["type"].endswith("/zero-length")
    assert p["coordinate"] == [8.68, 50.05]


def test_nan_and_infinite(client, he_user):
    p = problem_of(resolve(client, he_user, b'{"type": "LineString", "coordinates": [[8.68, NaN], [8.69, 50.0]]}'))
    assert p["type"].endswith("/non-finite-coordinate")
    p = problem_of(resolve(client, he_user, b'{"type": "LineString", "coordinates": [[8.68, 50.0], [Infinity, 50]]}'))
    assert p["type"].endswith("/non-finite-coordinate")


def test_outside_area_of_use_and_unknown_crs(client, he_user):
    gk = {"type": "LineString", "coordinates": [[3477000, 5550000], [3478000, 5551000]]}
    p = problem_of(resolve(client, he_user, gk, crs="EPSG:25832"))
    assert p["type"].endswith("/outside-crs-area")
    assert p["coordinate"] == [3477000.0, 5550000.0]
    p = problem_of(resolve(client, he_user, gk))
    assert p["type"].endswith("/outside-crs-area")
    assert "projected metres" in p["detail"]
    p = problem_of(resolve(client, he_user, gk, crs="EPSG:999999"))
    assert p["type"].endswith("/unknown-crs")


def test_swapped_lat_lon_is_suggested(client, he_user, engine):
    route = geojson(along(engine, "name = 'Admiral-Rosendahl-Straße'", 6))
    route["coordinates"] = [[y, x] for x, y in route["coordinates"]]
    p = problem_of(resolve(client, he_user, route))
    assert p["type"].endswith("/swapped-coordinates")
    assert p["suggestion"] == [p["coordinate"][1], p["coordinate"][0]]


def test_wholly_and_partly_outside_territory(client, he_user, engine):
    # Würzburg (Bavaria), well outside Hessen
    p = problem_of(resolve(client, he_user, {"type": "LineString", "coordinates": [[9.93, 49.79], [9.94, 49.80]]}))
    assert p["type"].endswith("/outside-territory")
    # from the Hessian side of the state border at 9.50 E, 50.40 N ... use a real border point instead:
    with engine.connect() as conn:
        x, y = conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_PointN(ST_ExteriorRing(ST_GeometryN(geom, 1)), 1), "
            "4326) AS p FROM admin_areas WHERE tenant_key = 'he' AND level = 'land') s")).one()
    crossing = {"type": "LineString", "coordinates": [[x - 0.01, y], [x + 0.01, y]]}
    body = resolve(client, he_user, crossing).json()
    assert any(w["code"] == "partly-outside-territory" for w in body["warnings"])
    outside = [p for p in body["outside_public_roads"]["pieces"] if p["reason"] == "outside_territory"]
    assert outside
    assert_adds_up(body)


def test_limits(client, he_user, session):
    coords = [[8.68 + i * 1e-6, 50.05] for i in range(100_001)]
    p = problem_of(resolve(client, he_user, {"type": "LineString", "coordinates": coords}))
    assert p["type"].endswith("/too-many-vertices")
    assert p["vertices"] == 100_001
    long = {"type": "LineString", "coordinates": [[8.0, 50.0], [8.0, 51.0], [9.5, 51.0], [9.5, 50.0]]}
    p = problem_of(resolve(client, he_user, long))
    assert p["type"].endswith("/route-too-long")
    assert p["limit_km"] == 200


def test_resolve_needs_a_token(client):
    r = client.post("/api/v1/resolve", content=b"{}")
    assert r.status_code == 401


def test_private_road_is_reported_not_assigned(client, he_user, engine):
    route = along(engine, "name = 'Ellis Road' AND is_private", 0)
    body = resolve(client, he_user, geojson(route)).json()
    private = body["private_roads"]
    assert private["length_m"] >= 0.9 * body["total_length_m"]
    assert "nicht öffentlich (access=private/no)" in private["pieces"][0]["rule"]
    assert private["pieces"][0]["road_name"] == "Ellis Road"
    assert sum(a["length_m"] for a in body["authorities"]) <= 0.1 * body["total_length_m"]
    assert_adds_up(body)


def test_ortsdurchfahrt_on_file_gives_the_l3262_to_neu_isenburg(client, he_user, engine, session, tmp_path):
    """With an OD on file (here derived from the real data: the L 3262 inside Neu-Isenburg), the town with more
    than 30,000 inhabitants is responsible inside it (HStrG § 41), and the warning disappears."""
    from geo.importers import import_ortsdurchfahrten

    inside = "ref = 'L 3262' AND ST_Within(geom, (SELECT geom FROM admin_areas WHERE tenant_key = 'he' " \
             "AND ags = '06438009'))"
    od = road_line(engine, inside)
    path = tmp_path / "od.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"ref": "L 3262", "ags": "06438009", "name": "OD Neu-Isenburg"},
         "geometry": geojson(od)}]}))
    import_ortsdurchfahrten(session, "he", path)
    session.commit()
    body = resolve(client, he_user, geojson(along(engine, inside, 8))).json()
    ni = by_name(body)["Stadt Neu-Isenburg"]
    l3262 = [p for p in ni["pieces"] if p["road_ref"] == "L 3262"]
    assert sum(p["length_m"] for p in l3262) >= 0.8 * body["total_length_m"]  # the rest: crossings
    assert l3262[0]["ortsdurchfahrt_on_file"] is True
    assert l3262[0]["rule"].startswith("L 3262")
    assert "in der Ortsdurchfahrt Neu-Isenburg (37.668 Einw. > 30.000) → Gemeinde Neu-Isenburg" in l3262[0]["rule"]
    assert not [w for w in body["warnings"] if w["road_ref"] == "L 3262"]
