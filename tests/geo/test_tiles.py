"""Vector tiles, TileJSON and the MapLibre style, through HTTP, on the real Hessen data (he_data: VG250 boundaries,
OSM roads of the Frankfurter Kreuz and the Darmstadt–Frankfurt corridor).

Places come from the data: the Frankfurter Kreuz is where the A 3 crosses the A 5, Neu-Isenburg is the Gemeinde
06438009. Tiles are decoded with mapbox-vector-tile (y axis down, as in the tile).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import date, timedelta

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
import shapely.ops
from sqlalchemy import select, text, update

from accounts import passwords
from breitband import identity
from breitband.models import Organisation, OrgKind, Role, User
from geo import tiles
from geo.crs import transformer
from geo.models import Authority, LayerImport
from permits.gis import tiles as applications_tiles

PROBLEM = "application/problem+json"
MVT = "application/vnd.mapbox-vector-tile"
NEU_ISENBURG = "06438009"
ATTRIBUTION = "© OpenStreetMap contributors (ODbL) · © GeoBasis-DE / BKG (dl-de/by-2-0)"
# town streets and paths; a service road can carry a Kreisstraße's ref (K 823) and then is classified
TOWN_STREETS_AND_PATHS = {"residential", "living_street", "track", "footway", "cycleway", "path", "steps", "pedestrian",
                          "bridleway"}


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def to_tile_units(lon: float, lat: float, z: int, x: int, y: int) -> tuple[float, float]:
    """Position of a point in a tile's 4096-unit grid (y down)."""
    n = 1 << z
    fx = (lon + 180) / 360 * n
    fy = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return (fx - x) * 4096, (fy - y) * 4096


def decode(content: bytes) -> dict:
    return mapbox_vector_tile.decode(content, default_options={"y_coord_down": True})


def features(resp, layer: str) -> list[dict]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == MVT
    data = decode(resp.content)
    assert set(data) == {layer}
    return data[layer]["features"]


def tile(client, layer: str, zxy, tenant: str | None = "he", **kw):
    z, x, y = zxy
    params = {"tenant": tenant} if tenant else None
    return client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt", params=params, **kw)


def sql_point_4326(engine, sql: str) -> tuple[float, float]:
    with engine.connect() as conn:
        wkb = conn.execute(text(f"SELECT ST_AsBinary(ST_Transform(({sql}), 4326))")).scalar()
    p = shapely.from_wkb(bytes(wkb))
    return p.x, p.y


@pytest.fixture(scope="module")
def kreuz(engine, he_data) -> tuple[float, float]:
    """lon/lat of a point where a carriageway of the A 3 crosses one of the A 5 in the OSM data (the Frankfurter
    Kreuz)."""
    return sql_point_4326(engine, """
        SELECT ST_GeometryN(ST_Multi(ST_Intersection(
            (SELECT ST_Union(geom) FROM road_segments WHERE tenant_key = 'he' AND ref = 'A 5' AND highway = 'motorway'),
            (SELECT ST_Union(geom) FROM road_segments WHERE tenant_key = 'he' AND ref = 'A 3'
                                                                               AND highway = 'motorway'))),
            1)
    """)


@pytest.fixture(scope="module")
def neu_isenburg(engine, he_data) -> tuple[float, float]:
    return sql_point_4326(engine, "SELECT ST_PointOnSurface(geom) FROM admin_areas "
                                  f"WHERE tenant_key = 'he' AND level = 'gemeinde' AND ags = '{NEU_ISENBURG}'")


# --- roads -----------------------------------------------------------------------------------------------------

def test_z14_tile_over_the_frankfurter_kreuz_has_the_a5_as_autobahn_where_it_is(client, kreuz):
    zxy = tile_of(*kreuz, 14)
    resp = tile(client, "roads", zxy)
    feats = features(resp, "roads")
    assert int(resp.headers["x-tile-features"]) == len(feats)
    assert "x-tile-truncated" not in resp.headers

    a5 = [f for f in feats if f["properties"].get("ref") == "A 5"]
    a3 = [f for f in feats if f["properties"].get("ref") == "A 3"]
    assert len(a5) >= 5 and len(a3) >= 5
    assert {f["properties"]["road_class"] for f in a5} == {"autobahn"}
    assert {f["properties"]["highway"] for f in a5} <= {"motorway", "motorway_link"}
    assert all(f["properties"]["is_private"] is False for f in a5)
    # every feature carries the published properties and nothing else
    for f in feats:
        assert set(f["properties"]) <= {"road_class", "ref", "name", "highway", "is_private"}
        assert f["properties"]["road_class"] in {"autobahn", "bund", "land", "kreis", "gemeinde"}
        assert f["geometry"]["type"] in ("LineString", "MultiLineString")
    # z14 shows everything: town roads and paths too
    assert {"gemeinde", "autobahn"} <= {f["properties"]["road_class"] for f in feats}

    # The geometry is where the road is: the crossing point, projected into the tile, lies on the decoded A 5
    # (within the simplification tolerance of one tile unit plus rounding to the grid).
    px, py = to_tile_units(*kreuz, *zxy)
    assert 0 <= px < 4096 and 0 <= py < 4096
    a5_lines = shapely.union_all([shapely.geometry.shape(f["geometry"]) for f in a5])
    assert a5_lines.distance(shapely.Point(px, py)) < 3.0
    # and clipped to the tile plus its 64-unit buffer
    xs, ys = np.array(shapely.get_coordinates(a5_lines)).T
    assert xs.min() >= -64 and ys.min() >= -64 and xs.max() <= 4160 and ys.max() <= 4160


def test_z10_tile_has_only_classified_roads(client, kreuz, engine):
    zxy = tile_of(*kreuz, 10)
    feats = features(tile(client, "roads", zxy), "roads")
    classes = Counter(f["properties"]["road_class"] for f in feats)
    highways = {f["properties"].get("highway") for f in feats}
    assert set(classes) <= {"autobahn", "bund", "land", "kreis"}
    assert {"autobahn", "bund", "land", "kreis"} <= set(classes)
    assert "gemeinde" not in classes
    assert not highways & TOWN_STREETS_AND_PATHS, highways & TOWN_STREETS_AND_PATHS
    assert "A 5" in {f["properties"].get("ref") for f in feats}

    # the omission is a choice, not missing data: the tile's area has residential streets, and z14 shows them
    with engine.connect() as conn:
        residential = conn.execute(text(
            "SELECT count(*) FROM road_segments WHERE tenant_key = 'he' AND highway = 'residential' "
            "AND geom && ST_Transform(ST_TileEnvelope(:z, :x, :y), 25832)"),
            dict(zip("zxy", zxy))).scalar()
    assert residential > 20
    z14 = features(tile(client, "roads", tile_of(*kreuz, 14)), "roads")
    assert any(f["properties"].get("highway") in TOWN_STREETS_AND_PATHS for f in z14)


def test_feature_limit_keeps_the_most_important_roads_and_says_so(client, kreuz, monkeypatch):
    monkeypatch.setenv("BREITBAND_TILE_FEATURE_LIMIT", "40")
    monkeypatch.setattr(tiles, "_settings", None)        # read the settings again
    resp = tile(client, "roads", tile_of(*kreuz, 14))
    feats = features(resp, "roads")
    assert resp.headers["x-tile-truncated"] == "true"
    assert resp.headers["x-tile-feature-limit"] == "40"
    assert int(resp.headers["x-tile-features"]) == len(feats)
    assert 30 <= len(feats) <= 40
    # the Kreuz has more than 40 motorway segments: only autobahn survives the cut
    assert {f["properties"]["road_class"] for f in feats} == {"autobahn"}


# --- boundaries ------------------------------------------------------------------------------------------------

def test_boundaries_tile_contains_neu_isenburg(client, neu_isenburg, engine):
    feats = features(tile(client, "boundaries", tile_of(*neu_isenburg, 12)), "boundaries")
    by_ags = {f["properties"]["ags"]: f for f in feats}
    with engine.connect() as conn:
        population = conn.execute(text(
            "SELECT population FROM admin_areas WHERE tenant_key = 'he' AND ags = :a"), {"a": NEU_ISENBURG}).scalar()
    ni = by_ags[NEU_ISENBURG]
    assert ni["properties"] == {"level": "gemeinde", "ags": NEU_ISENBURG, "name": "Neu-Isenburg", "bez": "Stadt",
                                "population": population}
    assert ni["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert by_ags["06438"]["properties"]["level"] == "kreis"       # Kreis Offenbach
    assert by_ags["06"]["properties"]["level"] == "land"           # Hessen
    # the point on Neu-Isenburg's surface lies inside the decoded polygon
    px, py = to_tile_units(*neu_isenburg, *tile_of(*neu_isenburg, 12))
    assert shapely.geometry.shape(ni["geometry"]).buffer(2).contains(shapely.Point(px, py))


def test_boundaries_show_gemeinden_from_z8_only(client, neu_isenburg):
    levels7 = {f["properties"]["level"] for f in features(tile(client, "boundaries", tile_of(*neu_isenburg, 7)),
                                                           "boundaries")}
    levels8 = {f["properties"]["level"] for f in features(tile(client, "boundaries", tile_of(*neu_isenburg, 8)),
                                                           "boundaries")}
    assert levels7 == {"land", "kreis"}
    assert levels8 == {"land", "kreis", "gemeinde"}


# --- caching ---------------------------------------------------------------------------------------------------

def test_etag_304_round_trip_and_a_new_import_changes_the_etag(client, kreuz, session):
    zxy = tile_of(*kreuz, 14)
    first = tile(client, "roads", zxy)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')

    again = tile(client, "roads", zxy, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == "public, max-age=3600"

    assert tile(client, "roads", zxy, headers={"If-None-Match": '"something-else"'}).status_code == 200
    z, x, y = zxy                   # HEAD: the GET's headers (ETag, caching), no body
    head = client.head(f"/tiles/roads/{z}/{x}/{y}.mvt", params={"tenant": "he"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == etag and head.headers["cache-control"] == "public, max-age=3600"
    assert tile(client, "roads", zxy, headers={"If-None-Match": f'"x", W/{etag}'}).status_code == 304
    # another tile, another layer: other ETags
    z, x, y = zxy
    assert tile(client, "roads", (z, x + 1, y)).headers["etag"] != etag
    assert tile(client, "boundaries", zxy).headers["etag"] != etag

    # a re-import of the roads (new imported_at) invalidates the ETag; the boundaries stay as they are
    b_etag = tile(client, "boundaries", zxy).headers["etag"]
    session.execute(update(LayerImport).where(LayerImport.tenant_key == "he", LayerImport.layer == "roads")
                    .values(imported_at=LayerImport.imported_at + text("interval '1 second'")))
    session.commit()
    changed = tile(client, "roads", zxy, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert tile(client, "boundaries", zxy, headers={"If-None-Match": b_etag}).status_code == 304


def test_cache_control_public_for_roads_and_vary_when_the_tenant_comes_from_the_token(client, kreuz, session,
                                                                                       he_data):
    zxy = tile_of(*kreuz, 14)
    resp = tile(client, "roads", zxy)
    assert resp.headers["cache-control"] == "public, max-age=3600"
    assert resp.headers["vary"] == "Origin"          # CORS per tenant (geo/cors.py): the answer varies by origin

    he_user = _user(session, "he", OrgKind.operator, "Kachel GmbH", "kachel@he.example", Role.operator_member)
    by_token = tile(client, "roads", zxy, tenant=None, headers=he_user)
    assert by_token.status_code == 200
    assert by_token.content == resp.content
    assert by_token.headers["etag"] == resp.headers["etag"]
    assert by_token.headers["cache-control"] == "public, max-age=3600"
    assert by_token.headers["vary"] == "Authorization, Cookie, Origin"


def test_empty_tile_is_204_with_cache_headers(client):
    resp = tile(client, "roads", (14, 0, 0))          # the Pacific off Alaska
    assert resp.status_code == 204
    assert resp.content == b""
    assert resp.headers["cache-control"] == "public, max-age=3600"
    assert resp.headers["x-tile-features"] == "0"
    assert tile(client, "roads", (14, 0, 0), headers={"If-None-Match": resp.headers["etag"]}).status_code == 304


# --- tenancy ---------------------------------------------------------------------------------------------------

def _user(session, tenant: str, kind: OrgKind, org_name: str, email: str, role: Role) -> dict[str, str]:
    org = identity.create_organisation(session, tenant, kind, org_name)
    user = identity.create_user(session, org, email, email.split("@")[0], role)
    _, secret = identity.create_token(session, user, "test")
    session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_another_tenant_gets_its_own_data_only(client, kreuz, world):
    zxy = tile_of(*kreuz, 14)
    assert tile(client, "roads", zxy).status_code == 200
    # tenant xa has no roads at the Frankfurter Kreuz
    assert tile(client, "roads", zxy, tenant="xa").status_code == 204
    assert tile(client, "roads", zxy, tenant=None, headers=world.operator_member.headers).status_code == 204
    assert tile(client, "boundaries", zxy, tenant=None, headers=world.reviewer.headers).status_code == 204


def test_which_tenant_errors(client, kreuz):
    zxy = tile_of(*kreuz, 14)
    missing = tile(client, "roads", zxy, tenant=None)
    assert missing.status_code == 400
    assert missing.headers["content-type"] == PROBLEM
    assert missing.json()["type"].endswith("/tenant-required")

    unknown = tile(client, "roads", zxy, tenant="zz")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM
    assert unknown.json()["type"].endswith("/tenant-not-found")

    bad_token = tile(client, "roads", zxy, tenant=None, headers={"Authorization": "Bearer bb_nonsense"})
    assert bad_token.status_code == 401
    assert bad_token.headers["content-type"] == PROBLEM


# --- errors ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, field", [
    ("/tiles/roads/23/0/0.mvt", "z"),
    ("/tiles/roads/14/16384/5552.mvt", "x"),
    ("/tiles/roads/14/8583/16384.mvt", "y"),
    ("/tiles/roads/0/0/1.mvt", "y"),
    ("/tiles/roads/14/-1/5552.mvt", "x"),
])
def test_tile_coordinates_out_of_range_are_422_problem_json(client, he_data, path, field):
    resp = client.get(path, params={"tenant": "he"})
    assert resp.status_code == 422
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["type"].endswith("/invalid-tile")
    assert f"{field}" in body["detail"]
    assert body["status"] == 422


def test_non_numeric_tile_coordinates_are_422_problem_json(client):
    resp = client.get("/tiles/roads/14/abc/5552.mvt", params={"tenant": "he"})
    assert resp.status_code == 422
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["errors"][0]["field"] == "path.x"


@pytest.mark.parametrize("layer", ["rivers", "areas"])
def test_unknown_layer_is_404_problem_json(client, he_data, layer):
    for path in (f"/tiles/{layer}/14/8583/5552.mvt", f"/tiles/{layer}.json"):
        resp = client.get(path, params={"tenant": "he"})
        assert resp.status_code == 404
        assert resp.headers["content-type"] == PROBLEM
        body = resp.json()
        assert body["type"].endswith("/unknown-layer")
        assert "roads" in body["layers"] and "boundaries" in body["layers"]


def test_layer_registry_keeps_one_entry_per_layer_in_the_order_of_registration(client):
    """geo registers its public layers, the app factory permits' applications layer; the factory runs once per
    app (several times in the tests), and registering a registered layer again changes nothing."""
    before = list(tiles.LAYERS.items())
    assert [name for name, _ in before] == ["roads", "boundaries", "admin_labels", "basemap_areas", "basemap_lines",
                                            "basemap_points", "applications"]
    tiles.register_layer(applications_tiles.LAYER)
    tiles.register_layer(tiles.ROADS)
    assert list(tiles.LAYERS.items()) == before
    assert tiles.caller_layers() == [applications_tiles.LAYER]


# --- TileJSON and style ----------------------------------------------------------------------------------------

def test_tilejson_of_roads(client, settings, he_data):
    resp = client.get("/tiles/roads.json", params={"tenant": "he"})
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "public, max-age=300"
    tj = resp.json()
    assert tj["tilejson"] == "3.0.0"
    assert tj["tiles"] == [f"{settings.public_base_url}/tiles/roads/{{z}}/{{x}}/{{y}}.mvt?tenant=he"]
    assert tj["attribution"] == ATTRIBUTION
    assert (tj["minzoom"], tj["maxzoom"]) == (5, 16)
    # Hessen's extent (VG250): 7.77°–10.24° E, 49.39°–51.66° N
    west, south, east, north = tj["bounds"]
    assert west == pytest.approx(7.7725, abs=0.01) and east == pytest.approx(10.236, abs=0.01)
    assert south == pytest.approx(49.395, abs=0.01) and north == pytest.approx(51.6575, abs=0.01)
    assert tj["vector_layers"][0]["id"] == "roads"
    # TileJSON 3.0.0: version is semver; fields map names to descriptions (strings), the types are our extension
    assert tj["version"] == "2.0.0"
    assert tj["breitband:field_types"] == {"road_class": "String", "ref": "String", "name": "String",
                                           "highway": "String", "is_private": "Boolean"}
    fields = tj["vector_layers"][0]["fields"]
    assert set(fields) == set(tj["breitband:field_types"]) and all(isinstance(v, str) and v for v in fields.values())
    assert fields["is_private"].endswith("(Boolean)")
    boundaries = client.get("/tiles/boundaries.json", params={"tenant": "he"}).json()
    assert boundaries["breitband:field_types"] == {"level": "String", "ags": "String", "name": "String",
                                                   "bez": "String", "population": "Number"}
    # HEAD: the headers of the GET, no body
    head = client.head("/tiles/roads.json", params={"tenant": "he"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == resp.headers["etag"]
    assert head.headers["cache-control"] == resp.headers["cache-control"]
    assert client.head("/styles/breitband.json", params={"tenant": "he"}).status_code == 200
    etag = resp.headers["etag"]
    assert client.get("/tiles/roads.json", params={"tenant": "he"},
                      headers={"If-None-Match": etag}).status_code == 304


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_style_uses_only_our_own_urls_and_they_serve_tiles(client, settings, kreuz, he_basemap):
    resp = client.get("/styles/breitband.json", params={"tenant": "he"})
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "public, max-age=300"
    style = resp.json()
    assert style["version"] == 8
    assert "sprite" not in style
    # labels: glyphs from this service, in fonts it has
    assert style["glyphs"] == f"{settings.public_base_url}/fonts/{{fontstack}}/{{range}}.pbf"
    symbols = [layer for layer in style["layers"] if layer["type"] == "symbol"]
    assert {layer["id"] for layer in symbols} >= {"street-name", "road-ref", "place-major", "gemeinde-name",
                                                   "gemeinde-name-area", "housenumber"}
    fonts = {f for layer in symbols for f in layer["layout"]["text-font"]}
    assert fonts == {"DejaVu Sans", "DejaVu Sans Bold", "DejaVu Sans Oblique"}
    for font in fonts:
        glyphs = client.get(style["glyphs"].removeprefix(settings.public_base_url)
                            .replace("{fontstack}", font).replace("{range}", "0-255"))
        assert glyphs.status_code == 200 and glyphs.headers["content-type"] == "application/x-protobuf", font
    urls = [s for s in _strings(style) if "://" in s or s.startswith("//")]
    assert urls and all(u.startswith(settings.public_base_url + "/") for u in urls), urls
    assert set(style["sources"]) == {"roads", "boundaries", "admin_labels", "basemap_areas", "basemap_lines",
                                     "basemap_points"}
    assert {layer.get("source") for layer in style["layers"]} == {None, *style["sources"]}

    # the classes are coloured as documented, private roads dashed
    roads = next(layer for layer in style["layers"] if layer["id"] == "roads-public")
    match = roads["paint"]["line-color"]
    colours = dict(zip(match[2:-1:2], match[3:-1:2]))
    assert colours == {"autobahn": "#1f5fbf", "bund": "#d7301f", "land": "#f39c12", "kreis": "#2e9d3a",
                       "gemeinde": "#8c8c8c"}
    assert style["metadata"]["breitband:road_colours"] == colours
    private = next(layer for layer in style["layers"] if layer["id"] == "roads-private")
    assert private["paint"]["line-dasharray"] and private["filter"] == ["==", ["get", "is_private"], True]

    # follow the style: source → TileJSON → a tile (the Frankfurter Kreuz extract has roads, boundaries and road
    # labels; no land use or buildings, so those tiles are empty there)
    for name, source in style["sources"].items():
        tj = client.get(source["url"].removeprefix(settings.public_base_url))
        assert tj.status_code == 200 and tj.json()["vector_layers"][0]["id"] == name
        z, x, y = tile_of(*kreuz, 12)
        template = tj.json()["tiles"][0].removeprefix(settings.public_base_url)
        t = client.get(template.replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y)))
        if name in ("roads", "boundaries", "basemap_lines"):
            assert t.status_code == 200 and features(t, name), name
        else:
            assert t.status_code in (200, 204), name


# --- applications (per caller) ---------------------------------------------------------------------------------

def _a5_route(engine) -> dict:
    """300 m of trench 12 m beside the real A 5 (EPSG:4326)."""
    with engine.connect() as conn:
        wkb = conn.execute(text("SELECT ST_AsBinary(ST_LineMerge(ST_Union(geom))) FROM road_segments "
                                "WHERE tenant_key = 'he' AND ref = 'A 5' AND highway = 'motorway'")).scalar()
    line = shapely.from_wkb(bytes(wkb))
    if line.geom_type == "MultiLineString":
        line = max(line.geoms, key=lambda g: g.length)
    piece = shapely.ops.substring(line, 100, 400).offset_curve(12)
    t = transformer(25832, 4326)
    piece = shapely.transform(piece, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    return json.loads(shapely.to_geojson(shapely.set_precision(piece, 1e-7)))


def _authority(session, name: str, email: str) -> dict[str, str]:
    org = session.scalars(select(Organisation).join(Authority, Authority.organisation_id == Organisation.id)
                          .where(Authority.tenant_key == "he", Organisation.name == name)).one()
    user = identity.create_user(session, org, email, email.split("@")[0], Role.authority_reviewer)
    _, secret = identity.create_token(session, user, "test")
    session.commit()
    return {"Authorization": f"Bearer {secret}"}


def _application(client, who: dict[str, str], route: dict, project: str, *, submit: bool) -> dict:
    body = {"project_name": project, "operator_reference": "T-1",
            "contact": {"name": "Olaf Planer", "email": "olaf.planer@glasfaser-test.example", "phone": "+49 69 1"},
            "sections": {"type": "FeatureCollection", "features": [
                {"type": "Feature", "geometry": route,
                 "properties": {"laying_method": "open_trench", "depth_cm": 60, "width_cm": 40}}]},
            "planned_start": (date.today() + timedelta(days=60)).isoformat(),
            "planned_end": (date.today() + timedelta(days=120)).isoformat()}
    r = client.post("/api/v1/applications", json=body, headers=who)
    assert r.status_code == 201, r.text
    if submit:
        r = client.post(f"/api/v1/applications/{r.json()['id']}/submit", json={},
                        headers={**who, "If-Match": r.headers["etag"]})
        assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def applications_scene(client, session, engine, he_data, world):
    route = _a5_route(engine)
    operator = _user(session, "he", OrgKind.operator, "Kachel Glasfaser GmbH", "planer@kachel.example",
                     Role.operator_member)
    other_operator = _user(session, "he", OrgKind.operator, "Andere Faser AG", "planer@andere.example",
                           Role.operator_member)
    autobahn = _authority(session, "Die Autobahn GmbH des Bundes", "pruefer@autobahn-kachel.example")
    frankfurt = session.scalars(select(Organisation).join(Authority, Authority.organisation_id == Organisation.id)
                                .where(Authority.tenant_key == "he", Authority.key == "06412000")).one()
    ffm_user = identity.create_user(session, frankfurt, "asv@frankfurt-kachel.example", "asv",
                                    Role.authority_reviewer)
    _, ffm_secret = identity.create_token(session, ffm_user, "test")
    session.commit()
    submitted = _application(client, operator, route, "FTTH Zeppelinheim, BA 1", submit=True)
    draft = _application(client, operator, route, "FTTH Zeppelinheim, BA 2 (Entwurf)", submit=False)
    competitor = _application(client, other_operator, route, "Backbone A 5 Süd", submit=True)
    lon, lat = route["coordinates"][len(route["coordinates"]) // 2]
    return {"zxy": tile_of(lon, lat, 15), "operator": operator, "other_operator": other_operator,
            "autobahn": autobahn, "frankfurt": {"Authorization": f"Bearer {ffm_secret}"},
            "submitted": submitted, "draft": draft, "competitor": competitor, "xa": world.admin.headers}


def test_applications_need_a_token(client, applications_scene):
    resp = tile(client, "applications", applications_scene["zxy"], tenant=None)
    assert resp.status_code == 401
    assert resp.headers["content-type"] == PROBLEM
    assert client.get("/tiles/applications.json").status_code == 401


def test_operator_sees_its_own_submitted_applications(client, applications_scene):
    s = applications_scene
    resp = tile(client, "applications", s["zxy"], tenant=None, headers=s["operator"])
    assert resp.headers["cache-control"] == "private, no-cache"
    assert resp.headers["vary"] == "Authorization, Cookie, Origin"
    feats = features(resp, "applications")
    # its submitted application and its draft, not the competitor's application on the same route
    by_ref = {f["properties"]["reference"]: f["properties"] for f in feats}
    assert len(feats) == 2
    assert by_ref[s["submitted"]["reference"]] == {
        "own": True, "status": "submitted", "id": s["submitted"]["id"], "reference": s["submitted"]["reference"],
        "project_name": "FTTH Zeppelinheim, BA 1", "operator": "Kachel Glasfaser GmbH", "part": "line"}
    assert by_ref[s["draft"]["reference"]] == {
        "own": True, "status": "draft", "id": s["draft"]["id"], "reference": s["draft"]["reference"],
        "project_name": "FTTH Zeppelinheim, BA 2 (Entwurf)", "operator": "Kachel Glasfaser GmbH", "part": "line"}
    assert {f["geometry"]["type"] for f in feats} == {"LineString"}
    # the ETag is per content and caller: 304 on the same tile
    assert tile(client, "applications", s["zxy"], tenant=None,
                headers={**s["operator"], "If-None-Match": resp.headers["etag"]}).status_code == 304

    theirs = features(tile(client, "applications", s["zxy"], tenant=None, headers=s["other_operator"]),
                      "applications")
    assert [f["properties"]["reference"] for f in theirs] == [s["competitor"]["reference"]]


def test_other_tenant_sees_nothing(client, applications_scene):
    s = applications_scene
    assert tile(client, "applications", s["zxy"], tenant=None, headers=s["xa"]).status_code == 204
    # ?tenant= does not open another tenant's applications
    assert tile(client, "applications", s["zxy"], tenant="he", headers=s["xa"]).status_code == 204


def test_authority_sees_its_cases_and_others_greyed_without_personal_data(client, applications_scene):
    s = applications_scene

    def case_of(app):
        return next(c for c in app["cases"] if c["authority"]["name"] == "Die Autobahn GmbH des Bundes")

    mine = features(tile(client, "applications", s["zxy"], tenant=None, headers=s["autobahn"]), "applications")
    by_ref = {f["properties"]["reference"]: f["properties"] for f in mine}
    assert set(by_ref) == {s["submitted"]["reference"], s["competitor"]["reference"]}   # never the draft
    for app, project, operator in ((s["submitted"], "FTTH Zeppelinheim, BA 1", "Kachel Glasfaser GmbH"),
                                   (s["competitor"], "Backbone A 5 Süd", "Andere Faser AG")):
        props = by_ref[app["reference"]]
        assert props == {"own": True, "status": "submitted", "id": app["id"], "reference": app["reference"],
                         "project_name": project, "operator": operator, "case_id": case_of(app)["id"],
                         "case_status": "received", "decision_due": case_of(app)["decision_due"], "part": "line"}

    # Frankfurt has no case in these applications: it sees the routes greyed, with the status only
    other = features(tile(client, "applications", s["zxy"], tenant=None, headers=s["frankfurt"]), "applications")
    assert [f["properties"] for f in other] == [{"own": False, "status": "submitted", "part": "line"}] * 2
    assert other[0]["geometry"] == mine[0]["geometry"]


def test_style_with_a_token_adds_the_callers_applications(client, settings, applications_scene):
    s = applications_scene
    style = client.get("/styles/breitband.json", headers=s["autobahn"])
    assert style.status_code == 200
    assert style.headers["cache-control"] == "private, no-cache"
    body = style.json()
    assert set(body["sources"]) == {"roads", "boundaries", "admin_labels", "basemap_areas", "basemap_lines",
                                    "basemap_points", "applications"}
    assert body["sources"]["applications"]["url"] == f"{settings.public_base_url}/tiles/applications.json"
    tj = client.get("/tiles/applications.json", headers=s["autobahn"]).json()
    assert tj["tiles"] == [f"{settings.public_base_url}/tiles/applications/{{z}}/{{x}}/{{y}}.mvt"]
    assert tj["breitband:field_types"]["case_status"] == "String"


def test_the_web_apps_session_cookie_is_a_caller_like_a_token(client, session, applications_scene):
    """The web app's maps send the session cookie and no header: the style needs no ?tenant= then and carries the
    caller's applications, whose tiles answer as they do to the token."""
    s = applications_scene
    password = "Kachel-Sitzung-2026!"
    user = session.scalars(select(User).where(User.email == "planer@kachel.example")).one()
    user.password_hash = passwords.hash_password(password)
    session.commit()
    signed_in = client.post("/api/v1/auth/login", json={"tenant": "he", "email": user.email, "password": password})
    assert signed_in.status_code == 200, signed_in.text
    style = client.get("/styles/breitband.json")
    assert style.status_code == 200, style.text
    assert (style.headers["cache-control"], style.headers["vary"]) == ("private, no-cache",
                                                                       "Authorization, Cookie, Origin")
    assert set(style.json()["sources"]) == {"roads", "boundaries", "admin_labels", "basemap_areas", "basemap_lines",
                                            "basemap_points", "applications"}
    by_cookie = features(tile(client, "applications", s["zxy"], tenant=None), "applications")
    client.cookies.clear()
    by_token = features(tile(client, "applications", s["zxy"], tenant=None, headers=s["operator"]), "applications")
    assert by_cookie == by_token and len(by_cookie) == 2
    assert tile(client, "applications", s["zxy"], tenant=None).status_code == 401
