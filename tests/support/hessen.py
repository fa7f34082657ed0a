"""The real data of tenant "he" (Hessen): the VG250 boundaries and the OSM roads of the Frankfurter Kreuz and the
Darmstadt–Frankfurt corridor, the authorities found in them, and GeoJSON routes along real roads.

Routes are stretches of real roads (road_segments of the committed he_data), shifted a few metres sideways as a
trench in the verge runs, in EPSG:4326.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

import numpy as np
import pytest
import shapely
import shapely.ops
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from breitband import identity
from breitband.models import Organisation
from breitband.settings import PROJECT_ROOT
from geo.crs import transformer
from geo.importers import import_basemap, import_boundaries, import_roads, same_sources
from geo.models import Authority
from geo.rules import validate_rules

DATA = PROJECT_ROOT / "data"
HE_BOUNDARY_FILES = [DATA / "boundaries" / name for name in (
    "hessen_gemeinden_vg250_2018_sim200.geojson", "hessen_kreise_vg250_2018_sim200.geojson",
    "hessen_land_vg250_2018_sim20.geojson")]
HE_ROAD_FILES = [DATA / "roads" / "hessen" / name for name in (
    "frankfurter-kreuz.osm.pbf", "darmstadt-frankfurt-corridor_motis-test-case.osm.pbf")]

# keys (AGS) of authorities in the data
NEU_ISENBURG = "06438009"
FRANKFURT = "06412000"
KREIS_OFFENBACH = "06438"

# (where, offset m, start m, length m) of real roads; see lines()
STRETCHES = {
    "a5": ("ref = 'A 5' AND highway = 'motorway'", 12, 100, 300),
    "l3262": ("ref = 'L 3262' AND ST_Within(geom, (SELECT geom FROM admin_areas WHERE tenant_key = 'he' "
              "AND ags = '06438009'))", 8, 50, 300),
    "k163": ("ref = 'K 163'", 8, 20, 300),
    "k823": ("ref = 'K 823'", 8, 0, 250),
    "neu_isenburg": ("name = 'Admiral-Rosendahl-Straße'", 6, 0, 200),
    "neu_isenburg_2": ("name = 'Buchenring'", 6, 0, 150),
    "forest": ("ref = 'A 3' AND highway = 'motorway'", 150, 100, 150),
}


@pytest.fixture(scope="session")
def he_data(engine) -> str:
    """Tenant "he" (rules from data/tenants/he.toml) with the VG250 Gemeinden, Kreise and Land of Hessen and the
    OSM roads of the Frankfurter Kreuz and the Darmstadt–Frankfurt corridor, COMMITTED on a connection of its own
    (so every test's rolled-back transaction and any subprocess sees it). Idempotent: a layer already imported from
    the same files is kept. Returns the tenant key."""
    with open(DATA / "tenants" / "he.toml", "rb") as fh:
        raw = tomllib.load(fh)
    with engine.connect() as conn, Session(bind=conn) as session:
        if session.get(identity.Tenant, "he") is None:
            identity.create_tenant(session, "he", raw["name"], raw["crs"], validate_rules(raw, "he"))
        if not same_sources(session, "he", "boundaries", HE_BOUNDARY_FILES):
            import_boundaries(session, "he", HE_BOUNDARY_FILES)
        if not same_sources(session, "he", "roads", HE_ROAD_FILES):
            import_roads(session, "he", HE_ROAD_FILES)
        session.commit()
    return "he"


@pytest.fixture(scope="session")
def he_basemap(engine, he_data) -> str:
    """he_data plus the base map of the same OSM files (land use, water, buildings, railways, places, house numbers,
    road labels), COMMITTED like he_data; imported again only when the files changed."""
    with engine.connect() as conn, Session(bind=conn) as session:
        if not same_sources(session, "he", "basemap", HE_ROAD_FILES):
            import_basemap(session, "he", HE_ROAD_FILES)
        session.commit()
    return "he"


def road_line(conn, where: str):
    """The longest merged line (EPSG:25832) of the road segments of tenant he that match ``where``."""
    wkb = conn.execute(text("SELECT ST_AsBinary(ST_LineMerge(ST_Union(geom))) FROM road_segments "
                            f"WHERE tenant_key = 'he' AND {where}")).scalar()
    geom = shapely.from_wkb(bytes(wkb))
    if geom.geom_type == "MultiLineString":
        geom = max(geom.geoms, key=lambda g: g.length)
    return geom


def to_4326(geom) -> dict[str, Any]:
    """A geometry in EPSG:25832 as GeoJSON in EPSG:4326 (7 decimals)."""
    t = transformer(25832, 4326)
    geom = shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    return json.loads(shapely.to_geojson(shapely.set_precision(geom, 1e-7)))


def stretch(conn, name: str) -> dict[str, Any]:
    """The route ``name`` of STRETCHES as a GeoJSON LineString in EPSG:4326."""
    where, offset, start, length = STRETCHES[name]
    line = road_line(conn, where)
    piece = shapely.ops.substring(line, start, min(start + length, line.length))
    return to_4326(piece.offset_curve(offset))


@pytest.fixture(scope="session")
def lines(engine, he_data) -> dict[str, dict[str, Any]]:
    """GeoJSON LineStrings (EPSG:4326) along real roads of the Frankfurter Kreuz extract."""
    with engine.connect() as conn:
        return {name: stretch(conn, name) for name in STRETCHES}


def authority_org(session, *, key: str | None = None, name: str | None = None) -> Organisation:
    """The organisation of the authority of tenant he with this key (AGS) or name."""
    stmt = select(Organisation).join(Authority, Authority.organisation_id == Organisation.id).where(
        Authority.tenant_key == "he")
    stmt = stmt.where(Authority.key == key) if key else stmt.where(Organisation.name == name)
    return session.scalars(stmt).one()
