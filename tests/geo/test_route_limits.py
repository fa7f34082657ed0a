"""Route limits on every route-taking endpoint, and the applications tile layer over routes at and above the limits
(issue 11, findings 1 and 2), on the real Hessen data (he_data).

Routes follow the real A 5 (OSM, Frankfurter Kreuz extract), 12 m beside it, densified where a test needs many
vertices. Tiles are decoded with mapbox-vector-tile and compared with the route clipped to the tile in tile units.
"""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
import shapely.ops
from sqlalchemy import func, select, text

from breitband import identity
from breitband.models import OrgKind, Role
from geo.crs import transformer
from permits.models import Application

PROBLEM = "application/problem+json"
TYPE = "https://breitband.dev/problems/"


def _operator(session, name: str, email: str) -> tuple[dict[str, str], object]:
    org = identity.create_organisation(session, "he", OrgKind.operator, name)
    user = identity.create_user(session, org, email, email.split("@")[0], Role.operator_member)
    _, secret = identity.create_token(session, user, "test")
    session.commit()
    return {"Authorization": f"Bearer {secret}"}, org.id


@pytest.fixture
def operator(session, he_data):
    return _operator(session, "Grenz-Glasfaser GmbH", "planer@grenz-glasfaser.example")


@pytest.fixture(scope="module")
def a5_25832(engine, he_data) -> shapely.LineString:
    """The longest merged carriageway of the A 5 in the data, 12 m beside it (EPSG:25832)."""
    with engine.connect() as conn:
        wkb = conn.execute(text("SELECT ST_AsBinary(ST_LineMerge(ST_Union(geom))) FROM road_segments "
                                "WHERE tenant_key = 'he' AND ref = 'A 5' AND highway = 'motorway'")).scalar()
    line = shapely.from_wkb(bytes(wkb))
    line = max(getattr(line, "geoms", [line]), key=lambda g: g.length)
    return line.offset_curve(12)


def to_4326(geom):
    t = transformer(25832, 4326)
    return shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def with_vertices(line: shapely.LineString, n: int) -> shapely.LineString:
    """The same line with exactly n vertices, evenly spaced along it."""
    return shapely.LineString([line.interpolate(d) for d in np.linspace(0, line.length, n)])


def trench(geom_4326, **props) -> dict:
    coords = np.round(shapely.get_coordinates(geom_4326), 7).tolist()
    return {"type": "Feature", "geometry": {"type": "LineString", "coordinates": coords},
            "properties": {"laying_method": "open_trench", "depth_cm": 60, "width_cm": 40, **props}}


def pit(lon: float, lat: float) -> dict:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": {"kind": "pit"}}


def draft_body(*features) -> dict:
    return {"project_name": "Grenzfall", "sections": {"type": "FeatureCollection", "features": list(features)},
            "planned_start": (date.today() + timedelta(days=60)).isoformat()}


def problem(resp) -> dict:
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM
    return resp.json()


def count_applications(session, org_id) -> int:
    return session.scalar(select(func.count()).select_from(Application).where(Application.applicant_org_id == org_id))


# --- limits ----------------------------------------------------------------------------------------------------

def test_draft_over_the_vertex_limit_is_422_naming_the_limit_and_stores_nothing(client, session, operator,
                                                                                 a5_25832):
    headers, org_id = operator
    short = trench(to_4326(shapely.ops.substring(a5_25832, 0, 300)))
    n_short = len(short["geometry"]["coordinates"])
    dense = trench(to_4326(with_vertices(a5_25832, 99_999)))
    p = problem(client.post("/api/v1/applications", json=draft_body(short, short, dense), headers=headers))
    total = 2 * n_short + 99_999
    assert p["type"] == TYPE + "too-many-vertices"
    assert (p["limit"], p["max_vertices"], p["vertices"]) == ("max_vertices", 100_000, total)
    assert (p["feature_index"], p["feature_vertices"], p["field"]) == (2, 99_999, "sections.features[2]")
    assert p["detail"].startswith(f"sections: The route has {total} vertices; the limit is 100000")
    assert count_applications(session, org_id) == 0

    # at the limit it is a draft like any other
    r = client.post("/api/v1/applications", json=draft_body(dense), headers=headers)
    assert r.status_code == 201, r.text
    assert count_applications(session, org_id) == 1


def test_editing_a_draft_over_the_length_limit_is_422_and_keeps_the_stored_route(client, operator, a5_25832):
    headers, _ = operator
    first = trench(to_4326(shapely.ops.substring(a5_25832, 0, 300)))
    created = client.post("/api/v1/applications", json=draft_body(first), headers=headers)
    assert created.status_code == 201, created.text
    # 201 km: across a 1 km stretch of the A 5 and back, 201 times (few vertices, long)
    stretch = shapely.get_coordinates(shapely.ops.substring(a5_25832, 0, 1000))[[0, -1]]
    back_and_forth = shapely.LineString(stretch[[0, 1] * 101][:202])
    patch = {"sections": {"type": "FeatureCollection",
                          "features": [first, first, trench(to_4326(back_and_forth))]}}
    r = client.patch(f"/api/v1/applications/{created.json()['id']}", json=patch,
                     headers={**headers, "If-Match": created.headers["etag"]})
    p = problem(r)
    assert p["type"] == TYPE + "route-too-long"
    assert (p["limit"], p["limit_km"], p["feature_index"], p["field"]) == (
        "max_length_km", 200, 2, "sections.features[2]")
    assert p["feature_length_km"] == pytest.approx(back_and_forth.length / 1000, abs=0.1)
    assert back_and_forth.length > 200_000
    assert p["length_km"] == pytest.approx((back_and_forth.length + 600) / 1000, abs=0.1)
    stored = client.get(f"/api/v1/applications/{created.json()['id']}", headers=headers)
    assert stored.headers["etag"] == created.headers["etag"]
    assert stored.json()["content"]["sections"]["features"] == created.json()["content"]["sections"]["features"]


def test_too_many_features_is_422_for_drafts_and_resolve_before_any_geometry_is_built(client, operator, a5_25832):
    headers, _ = operator
    lon, lat = shapely.get_coordinates(to_4326(a5_25832))[0].tolist()
    pits = [pit(lon, lat)] * 10_001
    p = problem(client.post("/api/v1/applications", json=draft_body(*pits), headers=headers))
    assert p["type"] == TYPE + "too-many-features"
    assert (p["limit"], p["max_features"], p["features"], p["field"]) == ("max_features", 10_000, 10_001,
                                                                          "sections")
    # /resolve: the same limit; a broken feature after the limit is not even looked at
    body = {"type": "FeatureCollection", "features": pits + [{"type": "Feature", "geometry": {"type": "Point",
                                                                                               "coordinates": []}}]}
    p = problem(client.post("/api/v1/resolve", content=json.dumps(body), headers=headers))
    assert p["type"] == TYPE + "too-many-features"
    assert (p["max_features"], p["features"]) == (10_000, 10_002)
    # at the limit the points are resolved, each to its road
    r = client.post("/api/v1/resolve", content=json.dumps({"type": "FeatureCollection", "features": pits[:10_000]}),
                    headers=headers)
    assert r.status_code == 200, r.text
    assert sum(len(a["pieces"]) for a in r.json()["authorities"]) == 10_000


# --- tiles over long routes --------------------------------------------------------------------------------------

def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 1 << z
    return z, int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def in_tile_units(geom_4326, z: int, x: int, y: int):
    """A geometry in a tile's 4096-unit grid (y down), clipped to the tile plus the MVT buffer (64)."""
    n = 1 << z

    def f(xy):
        fx = (xy[:, 0] + 180) / 360 * n
        fy = (1 - np.arcsinh(np.tan(np.radians(xy[:, 1]))) / math.pi) / 2 * n
        return np.column_stack([(fx - x) * 4096, (fy - y) * 4096])

    return shapely.clip_by_rect(shapely.transform(geom_4326, f), -64, -64, 4096 + 64, 4096 + 64)


def tile_lines(client, headers, zxy) -> list:
    z, x, y = zxy
    r = client.get(f"/tiles/applications/{z}/{x}/{y}.mvt", headers=headers)
    assert r.status_code == 200, r.text
    feats = mapbox_vector_tile.decode(r.content, default_options={"y_coord_down": True})["applications"]["features"]
    return feats


def test_tile_over_a_route_at_the_vertex_limit_holds_its_clipped_geometry(client, operator, a5_25832):
    headers, _ = operator
    route = to_4326(with_vertices(a5_25832, 100_000))
    r = client.post("/api/v1/applications", json=draft_body(trench(route)), headers=headers)
    assert r.status_code == 201, r.text
    mid = shapely.get_coordinates(route)[50_000]
    # z15: a piece of the route (simplified with 1 unit); z12: the whole route in one tile (over 2,000 vertices:
    # thinned to 8 units, one pixel)
    for z, tolerance in ((15, 1.5), (12, 9.0)):
        zxy = tile_of(*mid, z)
        feats = tile_lines(client, headers, zxy)
        assert [(f["properties"]["reference"], f["properties"]["part"]) for f in feats] == [
            (r.json()["reference"], "line")]
        got = shapely.geometry.shape(feats[0]["geometry"])
        want = in_tile_units(route, *zxy)
        assert got.geom_type in ("LineString", "MultiLineString")
        assert shapely.hausdorff_distance(got, want) <= tolerance, (z, shapely.hausdorff_distance(got, want))
        assert got.length == pytest.approx(want.length, rel=0.01)
        if z == 12:
            assert shapely.get_num_coordinates(got) < 2_000     # thinned, not 100,000 vertices in the tile


@pytest.mark.slow
def test_a_draft_stored_over_the_limits_before_them_stays_readable_and_on_the_map(client, session, operator,
                                                                                   a5_25832):
    headers, org_id = operator
    r = client.post("/api/v1/applications", json=draft_body(trench(to_4326(shapely.ops.substring(a5_25832, 0, 300)))),
                    headers=headers)
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    # as a draft was stored before drafts had limits: 150,000 vertices in a zigzag (±1 m) along the A 5
    base = with_vertices(a5_25832, 150_000)
    xy = shapely.get_coordinates(base)
    xy[::2, 0] += 1.0
    big = to_4326(shapely.LineString(xy))
    session.execute(text("UPDATE application_versions SET content = jsonb_set(content, '{sections}', "
                         "CAST(:s AS jsonb)) WHERE application_id = :id"),
                    {"s": json.dumps({"type": "FeatureCollection", "features": [trench(big)]}), "id": app_id})
    session.execute(text("UPDATE applications SET route_geom = ST_ForceCollection(ST_GeomFromWKB(:wkb, 4326)) "
                         "WHERE id = :id"), {"wkb": shapely.to_wkb(big), "id": app_id})
    session.commit()

    got = client.get(f"/api/v1/applications/{app_id}", headers=headers)
    assert got.status_code == 200
    assert len(got.json()["content"]["sections"]["features"][0]["geometry"]["coordinates"]) == 150_000
    assert client.get(f"/api/v1/applications/{app_id}/versions", headers=headers).status_code == 200
    # editing other fields works; the route is not judged again until it changes
    r = client.patch(f"/api/v1/applications/{app_id}", json={"project_name": "Grenzfall, umbenannt"},
                     headers={**headers, "If-Match": got.headers["etag"]})
    assert r.status_code == 200, r.text
    mid = shapely.get_coordinates(big)[75_000]
    for z in (16, 12):
        feats = tile_lines(client, headers, tile_of(*mid, z))
        assert [f["properties"]["id"] for f in feats] == [app_id]
        assert shapely.hausdorff_distance(shapely.geometry.shape(feats[0]["geometry"]),
                                          in_tile_units(big, *tile_of(*mid, z))) <= 9.0
    assert count_applications(session, org_id) == 1
