"""The OGC API - Features as GDAL (``ogrinfo``, ``ogr2ogr``: the OAPIF driver of gdal-bin, which scripts/setup.sh
installs) and owslib see it, against a real server: every collection is a layer with one geometry type, each layer
converts into a Shapefile, the token works as the password of HTTP Basic, a page in EPSG:25832 (``crs``) is what
GDAL's own transformation of the CRS84 layer gives, and CQL2 filters and sort keys work from both.

The people and applications are COMMITTED (the server has its own connections) and removed afterwards, like the
browser tests' (tests/web/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import quote

import httpx
import pyogrio
import pyogrio.raw
import pytest
import shapely
from owslib.ogcapi.features import Features
from owslib.util import Authentication
from sqlalchemy import delete
from sqlalchemy.orm import Session

from breitband import identity
from breitband.models import Organisation, OrgKind, Role, User
from tests.support.api import collection, draft_body, trench
from tests.support.committed import delete_applications_of, kept_reference_counters
from tests.support.hessen import authority_org
from tests.support.web_server import running_server

EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
LAYERS = {"applications": "Multi Line String", "application-points": "Multi Point",
          "application-areas": "Multi Polygon", "case-parts": "Multi Line String",
          "case-part-points": "Multi Point", "case-part-areas": "Multi Polygon"}

# what a Shapefile reads back as (its polyline and polygon types hold single and multi parts alike)
SHAPE_TYPES = {"Multi Line String": "LineString", "Multi Point": "MultiPoint", "Multi Polygon": "Polygon"}


@dataclass
class Gis:
    base: str
    operator: str             # tokens
    mobil: str
    applications: list[dict]


def square(lon: float, lat: float, half: float = 0.00008) -> dict:
    return {"type": "Polygon", "coordinates": [[[lon - half, lat - half], [lon + half, lat - half],
                                                [lon + half, lat + half], [lon - half, lat + half],
                                                [lon - half, lat - half]]]}


@pytest.fixture(scope="module")
def gis(engine, he_data, lines, settings) -> Iterator[Gis]:
    run = uuid.uuid4().hex[:8]
    with Session(bind=engine) as session:
        op_org = identity.create_organisation(session, "he", OrgKind.operator, f"Glasfaser GDAL {run} GmbH")
        planner = identity.create_user(session, op_org, f"gdal-{run}@glasfaser.example", "GDAL", Role.operator_member)
        reviewer = identity.create_user(session, authority_org(session, name="Hessen Mobil"),
                                        f"gdal-{run}@hessen-mobil.example", "GDAL Prüfer", Role.authority_reviewer)
        _, op_token = identity.create_token(session, planner, "gdal test")
        _, mobil_token = identity.create_token(session, reviewer, "gdal test")
        session.commit()
        op_org_id, user_ids = op_org.id, [planner.id, reviewer.id]
    start = date.today() + timedelta(days=30)
    k823 = lines["k823"]["coordinates"]
    routes = [collection(trench(lines["l3262"]), trench(lines["k163"], "mini_trenching"),
                         {"type": "Feature", "geometry": {"type": "Point", "coordinates": k823[0]},
                          "properties": {"kind": "cabinet"}},
                         {"type": "Feature", "geometry": square(*k823[len(k823) // 2]),
                          "properties": {"kind": "construction_area"}},
                         trench(lines["k823"], "micro_trenching")),
              collection(trench(lines["neu_isenburg"]))]
    try:
        with kept_reference_counters(engine), running_server(settings, "ogc-gdal.log") as base:
            made = []
            headers = {"Authorization": f"Bearer {op_token}"}
            for sections in routes:
                body = draft_body(sections, planned_start=start.isoformat(),
                                  planned_end=(start + timedelta(days=30)).isoformat())
                r = httpx.post(f"{base}/api/v1/applications", json=body, headers=headers, timeout=60)
                assert r.status_code == 201, r.text
                r = httpx.post(f"{base}/api/v1/applications/{r.json()['id']}/submit", json={}, timeout=60,
                               headers={**headers, "If-Match": r.headers["etag"]})
                assert r.status_code == 200, r.text
                made.append(r.json())
            yield Gis(base, op_token, mobil_token, made)
    finally:
        delete_applications_of(engine, [op_org_id])
        with Session(bind=engine) as session:
            session.execute(delete(User).where(User.id.in_(user_ids)))
            session.execute(delete(Organisation).where(Organisation.id == op_org_id))
            session.commit()


def gdal(tool: str, *args: str, token: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GDAL_HTTP_AUTH": "BASIC", "GDAL_HTTP_USERPWD": f"qgis:{token}"}
    return subprocess.run([tool, *args], env=env, capture_output=True, text=True, timeout=120)


def test_every_layer_has_one_geometry_type_and_converts_to_a_shapefile(gis, tmp_path):
    listed = gdal("ogrinfo", "-ro", "-q", f"OAPIF:{gis.base}/api/v1/ogc", token=gis.operator)
    assert listed.returncode == 0, listed.stderr
    # "1: applications (title: Anträge: Trassen / …) (Multi Line String)"
    layers = [line.split(": ", 1)[1] for line in listed.stdout.splitlines() if line[:1].isdigit()]
    assert {(entry.split(" ", 1)[0], entry.rsplit(" (", 1)[1].rstrip(")")) for entry in layers} == set(LAYERS.items())
    expected = {"applications": 2, "application-points": 1, "application-areas": 1}
    for layer, kind in LAYERS.items():
        summary = gdal("ogrinfo", "-ro", "-so", f"OAPIF:{gis.base}/api/v1/ogc", layer, token=gis.operator)
        assert summary.returncode == 0, summary.stderr
        assert f"Geometry: {kind}" in summary.stdout, summary.stdout
        out = tmp_path / layer
        converted = gdal("ogr2ogr", "-f", "ESRI Shapefile", str(out), f"OAPIF:{gis.base}/api/v1/ogc", layer,
                         token=gis.operator)
        assert converted.returncode == 0, (layer, converted.stderr)
        [shp] = list(out.glob("*.shp"))
        info = pyogrio.read_info(shp)
        assert info["geometry_type"] == SHAPE_TYPES[kind], (layer, info)
        if layer in expected:
            assert info["features"] == expected[layer], layer
        assert "reference" in list(info["fields"]), layer
    # Hessen Mobil reads only its own pieces (along the L 3262, across the B 44)
    mine = tmp_path / "mobil"
    converted = gdal("ogr2ogr", "-f", "ESRI Shapefile", str(mine), f"OAPIF:{gis.base}/api/v1/ogc", "case-parts",
                     token=gis.mobil)
    assert converted.returncode == 0, converted.stderr
    meta, _, _, values = pyogrio.raw.read(next(mine.glob("*.shp")))
    table = dict(zip(meta["fields"], (set(v) for v in values), strict=True))
    assert (table["road_ref"], table["authority"], table["case_statu"]) == (   # Shapefile names: 10 characters
        {"L 3262", "B 44"}, {"Hessen Mobil"}, {"received"})
    # a wrong token is GDAL's HTTP error, no layers
    refused = gdal("ogrinfo", "-ro", "-q", f"OAPIF:{gis.base}/api/v1/ogc", token="bb_wrong")
    assert refused.returncode != 0 and "401" in refused.stderr


def test_a_page_in_epsg_25832_is_what_gdal_makes_of_crs84(gis, tmp_path):
    """GDAL 3.6's OAPIF driver reads CRS84 (Part 2 came with GDAL 3.7): its own transformation of the layer into
    EPSG:25832 and the service's answer to crs=EPSG:25832 (read by GDAL's GeoJSON driver) agree within 1 cm."""
    converted = gdal("ogr2ogr", "-f", "GeoJSON", "-t_srs", "EPSG:25832", str(tmp_path / "gdal.geojson"),
                     f"OAPIF:{gis.base}/api/v1/ogc", "applications", token=gis.operator)
    assert converted.returncode == 0, converted.stderr
    by_gdal = {f["properties"]["reference"]: f for f in json.loads((tmp_path / "gdal.geojson").read_text())["features"]}
    url = f"{gis.base}/api/v1/ogc/collections/applications/items?crs={EPSG}25832&limit=1000"
    converted = gdal("ogr2ogr", "-f", "GeoJSON", "-a_srs", "EPSG:25832", str(tmp_path / "ours.geojson"), url,
                     token=gis.operator)
    assert converted.returncode == 0, converted.stderr
    ours = json.loads((tmp_path / "ours.geojson").read_text())["features"]
    assert len(ours) == len(by_gdal) == 2
    for f in ours:
        a = shapely.get_coordinates(shapely.geometry.shape(f["geometry"]))
        b = shapely.get_coordinates(shapely.geometry.shape(by_gdal[f["properties"]["reference"]]["geometry"]))
        assert a.shape == b.shape and abs(a - b).max() < 0.01
        assert 400_000 < a[:, 0].min() and a[:, 1].max() < 5_600_000


def test_filters_with_gdal_and_owslib(gis, tmp_path):
    """A CQL2 filter read by GDAL (the items URL with filter and crs, GeoJSON driver; -where on the OAPIF layer)
    and by owslib's OGC API client (conformance, collections, queryables, items with filter and sortby)."""
    url = (f"{gis.base}/api/v1/ogc/collections/case-parts/items?limit=1000&crs={EPSG}25832&filter="
           + quote("road_ref = 'L 3262' AND case_status IN ('received','incomplete','in_review')"))
    out = tmp_path / "l3262.geojson"
    converted = gdal("ogr2ogr", "-f", "GeoJSON", "-a_srs", "EPSG:25832", str(out), url, token=gis.mobil)
    assert converted.returncode == 0, converted.stderr
    pieces = json.loads(out.read_text())["features"]
    assert pieces and {f["properties"]["road_ref"] for f in pieces} == {"L 3262"}
    assert 470_000 < shapely.get_coordinates(shapely.geometry.shape(pieces[0]["geometry"]))[0, 0] < 490_000
    where = tmp_path / "where"
    converted = gdal("ogr2ogr", "-f", "ESRI Shapefile", "-where", "road_ref = 'B 44'", str(where),
                     f"OAPIF:{gis.base}/api/v1/ogc", "case-parts", token=gis.mobil)
    assert converted.returncode == 0, converted.stderr
    meta, _, _, values = pyogrio.raw.read(next(where.glob("*.shp")))
    assert set(dict(zip(meta["fields"], values, strict=True))["road_ref"]) == {"B 44"}

    features = Features(f"{gis.base}/api/v1/ogc", auth=Authentication("owslib", gis.mobil))
    assert "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text" in features.conformance()["conformsTo"]
    assert features.feature_collections() == list(LAYERS)
    assert {"road_ref", "case_status", "days_left", "geometry"} <= set(
        features.collection_queryables("case-parts")["properties"])
    found = features.collection_items("case-parts", filter="road_ref = 'L 3262'", sortby=("length_m", "desc"))
    lengths = [f["properties"]["length_m"] for f in found["features"]]
    assert lengths == sorted(lengths, reverse=True) and len(lengths) == found["numberMatched"] == len(pieces)
