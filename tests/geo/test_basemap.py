"""Base map (issue 16) on the real OSM extracts in data/roads/hessen/: the import (`breitband import basemap`), its
tile layers with their zoom bands, the Gemeinde labels from the boundaries, and the SDF glyphs we serve.

Expected values come from the files: darmstadt-luisenplatz.osm.pbf has the place nodes Darmstadt (city, population
159,631), Darmstadt-Mitte (suburb) and Stadtzentrum (quarter), 95 buildings, 22 land-use areas, 26 railway (tram)
lines and 102 house numbers; the B 26 runs through it as Bleichstraße, Citytunnel, Mathildenplatz, Rheinstraße and
Zeughausstraße. The Frankfurter Kreuz extract holds highways only (no land use, buildings or places), the
Darmstadt–Frankfurt corridor 319 buildings.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
from mapbox_vector_tile import decode
from sqlalchemy import text
from sqlalchemy.orm import Session

from breitband import identity
from breitband.errors import UnprocessableEntity
from breitband.settings import PROJECT_ROOT
from geo.importers import import_basemap, import_roads
from tests.geo.test_imports import rules_for
from tests.support.hessen import DATA, HE_ROAD_FILES

LUISENPLATZ = DATA / "roads" / "hessen" / "darmstadt-luisenplatz.osm.pbf"
MVT = "application/vnd.mapbox-vector-tile"
PROBLEM = "application/problem+json"


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 1 << z
    return z, int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def layer_features(client, layer: str, zxy) -> list[dict]:
    z, x, y = zxy
    resp = client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt", params={"tenant": "he"})
    if resp.status_code == 204:
        return []
    assert resp.status_code == 200 and resp.headers["content-type"] == MVT, resp.text
    return decode(resp.content)[layer]["features"]


def point_4326(session, sql: str) -> tuple[float, float]:
    row = session.execute(text(f"SELECT ST_X(g), ST_Y(g) FROM (SELECT ST_Transform(({sql}), 4326) AS g) q")).one()
    return float(row[0]), float(row[1])


def counts(session, tenant: str) -> dict:
    out = {}
    for table in ("basemap_areas", "basemap_lines", "basemap_points"):
        out[table] = dict(session.execute(text(f"SELECT kind, count(*) FROM {table} WHERE tenant_key = :t "
                                               "GROUP BY kind"), {"t": tenant}).all())
    return out


# --- the import ---------------------------------------------------------------------------------------------------

def test_basemap_of_the_luisenplatz_extract_and_its_reimport(session):
    identity.create_tenant(session, "hx", "Hessen X", "EPSG:25832", rules_for("hx"))
    import_roads(session, "hx", [LUISENPLATZ])
    summary = import_basemap(session, "hx", [LUISENPLATZ])
    assert summary["counts"]["areas"] == {"building": 95, "landuse": 22}
    assert summary["counts"]["lines"] == {"railway": 26, "road_label": 49}
    assert summary["counts"]["points"] == {"housenumber": 102, "place": 3}
    assert summary["skipped"]["total"] == 0 and summary["warnings"] == []
    places = session.execute(text("SELECT class, name, population FROM basemap_points WHERE tenant_key = 'hx' "
                                  "AND kind = 'place' ORDER BY name")).all()
    assert [tuple(r) for r in places] == [("city", "Darmstadt", 159631), ("suburb", "Darmstadt-Mitte", None),
                                          ("quarter", "Stadtzentrum", None)]
    # road labels: the roads merged per class, name and ref (the B 26 under its two street names)
    b26 = session.execute(text("SELECT name, round(sum(length_m)) FROM basemap_lines WHERE tenant_key = 'hx' "
                               "AND kind = 'road_label' AND ref = 'B 26' GROUP BY name ORDER BY name")).all()
    assert [r[0] for r in b26] == ["Bleichstraße", "Citytunnel", "Mathildenplatz", "Rheinstraße", "Zeughausstraße"]
    assert session.execute(text("SELECT DISTINCT class FROM basemap_lines WHERE tenant_key = 'hx' AND ref = 'B 26'")
                           ).scalars().all() == ["bund"]
    # geometries in the tenant's CRS, areas measured there
    assert session.execute(text("SELECT count(*) FROM basemap_areas WHERE tenant_key = 'hx' AND ("
                                "NOT ST_IsValid(geom) OR ST_SRID(geom) <> 25832 OR area_m2 <= 0)")).scalar() == 0
    before = counts(session, "hx")
    # the same files again: the same base map, nothing doubled
    again = import_basemap(session, "hx", [LUISENPLATZ])
    assert counts(session, "hx") == before
    assert again["counts"] == summary["counts"]
    log = session.execute(text("SELECT sources, summary FROM layer_imports WHERE tenant_key = 'hx' "
                               "AND layer = 'basemap'")).one()
    assert [p.rsplit("/", 1)[-1] for p in log.sources] == ["darmstadt-luisenplatz.osm.pbf"]
    assert log.summary["counts"]["points"] == {"housenumber": 102, "place": 3}


def test_hessen_basemap_from_the_test_extracts(he_basemap, session):
    log = session.execute(text("SELECT summary FROM layer_imports WHERE tenant_key = 'he' AND layer = 'basemap'")
                          ).scalar()
    assert log["counts"]["areas"] == {"building": 319, "landuse": 23}
    assert log["counts"]["lines"] == {"railway": 403, "road_label": 404}
    assert log["counts"]["points"] == {"housenumber": 339}
    # the Frankfurter Kreuz extract has highways only: said, not silently ignored
    assert log["warnings"] == ["frankfurter-kreuz.osm.pbf: no base map objects (land use, water, buildings, "
                               "railways, places, house numbers)"]
    # Gemeinde label points from the boundaries: one inside each area
    assert session.execute(text("SELECT count(*) FROM admin_areas WHERE tenant_key = 'he' AND (label_point IS NULL "
                                "OR NOT ST_Intersects(label_point, geom))")).scalar() == 0


def test_a_file_that_is_not_osm_is_refused_and_the_basemap_stays(he_basemap, session, tmp_path):
    before = counts(session, "he")
    geojson = DATA / "roads" / "hessen" / "frankfurter-kreuz_highways.geojson"
    with pytest.raises(UnprocessableEntity) as exc:
        import_basemap(session, "he", [geojson])
    assert exc.value.detail == (f"{geojson}: the base map is read from OpenStreetMap files (.osm.pbf, .osm, "
                                ".osm.gz, .osm.bz2)")
    broken = tmp_path / "broken.osm.pbf"
    broken.write_bytes(b"not a pbf")
    with pytest.raises(UnprocessableEntity) as exc:
        import_basemap(session, "he", [HE_ROAD_FILES[1], broken])
    assert exc.value.detail.startswith(f"{broken}: not an OpenStreetMap file that can be read")
    assert counts(session, "he") == before


@pytest.fixture
def committed_tenant(engine):
    key = "hy"
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tenants WHERE key = :k"), {"k": key})
    with engine.connect() as conn, Session(bind=conn) as session:
        identity.create_tenant(session, key, "Hessen Y", "EPSG:25832", rules_for(key))
        session.commit()
    yield key
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tenants WHERE key = :k"), {"k": key})


def cli_run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "breitband.cli", *map(str, args)], capture_output=True, text=True,
                          env=os.environ.copy(), cwd=PROJECT_ROOT, timeout=300)


def test_cli_imports_the_basemap_and_says_what_it_did(committed_tenant):
    proc = cli_run("import", "basemap", "--tenant", committed_tenant, "--quiet", LUISENPLATZ)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith(f"Imported basemap for tenant '{committed_tenant}' from 1 file(s)")
    assert "  areas: building 95, landuse 22" in out
    assert "  points: housenumber 102, place 3" in out
    # no roads in this tenant yet: no road labels, and the summary says why
    assert "  lines: railway 26" in out
    assert "warning: no road labels: the tenant has no named or numbered roads yet (import the roads first, then " \
           "the base map)" in out
    bad = cli_run("import", "basemap", "--tenant", committed_tenant, "--quiet", DATA / "README.md")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (f"error: {DATA / 'README.md'}: the base map is read from "
                                                    "OpenStreetMap files (.osm.pbf, .osm, .osm.gz, .osm.bz2)")


# --- tiles --------------------------------------------------------------------------------------------------------

def test_basemap_tiles_follow_their_zoom_bands(client, he_basemap, session):
    building = point_4326(session, "SELECT ST_PointOnSurface(geom) FROM basemap_areas WHERE tenant_key = 'he' "
                                   "AND kind = 'building' ORDER BY area_m2 DESC LIMIT 1")
    at14 = layer_features(client, "basemap_areas", tile_of(*building, 14))
    assert "building" in {f["properties"]["kind"] for f in at14}
    assert "building" not in {f["properties"]["kind"] for f in layer_features(client, "basemap_areas",
                                                                                 tile_of(*building, 13))}
    # road numbers and street names along the roads: the L 3262 in Neu-Isenburg
    l3262 = point_4326(session, "SELECT ST_LineInterpolatePoint(geom, 0.5) FROM basemap_lines WHERE tenant_key = "
                                "'he' AND kind = 'road_label' AND ref = 'L 3262' ORDER BY length_m DESC LIMIT 1")
    labels = layer_features(client, "basemap_lines", tile_of(*l3262, 14))
    assert "L 3262" in {f["properties"].get("ref") for f in labels if f["properties"]["kind"] == "road_label"}
    # a Gemeindestraße's label only from z12 (z10: classified roads only)
    street = point_4326(session, "SELECT ST_LineInterpolatePoint(geom, 0.5) FROM basemap_lines WHERE tenant_key = "
                                 "'he' AND kind = 'road_label' AND name = 'Buchenring' LIMIT 1")
    assert "Buchenring" in {f["properties"].get("name") for f in layer_features(client, "basemap_lines",
                                                                                  tile_of(*street, 13))}
    assert "Buchenring" not in {f["properties"].get("name") for f in layer_features(client, "basemap_lines",
                                                                                      tile_of(*street, 11))}
    # house numbers are in the z16 tiles (drawn from z17), not before
    number = point_4326(session, "SELECT geom FROM basemap_points WHERE tenant_key = 'he' AND kind = 'housenumber' "
                                 "ORDER BY id LIMIT 1")
    assert "housenumber" in {f["properties"]["kind"] for f in layer_features(client, "basemap_points",
                                                                               tile_of(*number, 16))}
    assert layer_features(client, "basemap_points", tile_of(*number, 15)) == []


def test_gemeinde_names_everywhere_from_the_boundaries(client, he_data, session):
    where = point_4326(session, "SELECT label_point FROM admin_areas WHERE tenant_key = 'he' AND ags = '06438009'")
    at10 = layer_features(client, "admin_labels", tile_of(*where, 10))
    assert {"level": "gemeinde", "name": "Neu-Isenburg", "bez": "Stadt", "population": 37668} in \
        [f["properties"] for f in at10]
    at8 = layer_features(client, "admin_labels", tile_of(*where, 8))
    assert {f["properties"]["level"] for f in at8} <= {"land", "kreis"}
    # every Gemeinde of Hessen has its label in some z9 tile: 423 Gemeinden + 4 gemeindefreie Gebiete
    points = session.execute(text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(label_point, 4326) AS p "
                                  "FROM admin_areas WHERE tenant_key = 'he' AND level = 'gemeinde') q")).all()
    tiles = {tile_of(x, y, 9) for x, y in points}
    names = set()
    for t in tiles:
        names |= {f["properties"]["name"] for f in layer_features(client, "admin_labels", t)
                  if f["properties"]["level"] == "gemeinde"}
    assert len(points) == 427 and len(names) == len({r for r in session.execute(text(
        "SELECT name FROM admin_areas WHERE tenant_key = 'he' AND level = 'gemeinde'")).scalars()})


# --- glyphs -------------------------------------------------------------------------------------------------------

def _fields(data: bytes):
    """A protobuf message's fields as (number, wire type, value) — enough for the glyph format."""
    i = 0

    def varint():
        nonlocal i
        shift = n = 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n
    while i < len(data):
        key = varint()
        num, wt = key >> 3, key & 7
        if wt == 0:
            yield num, wt, varint()
        elif wt == 2:
            n = varint()
            yield num, wt, data[i:i + n]
            i += n
        else:
            raise AssertionError(f"wire type {wt}")


def glyphs_of(pbf: bytes) -> tuple[str, str, dict[int, dict]]:
    (num, _, stack), = list(_fields(pbf))
    assert num == 1
    name = rng = None
    glyphs = {}
    for n, _, v in _fields(stack):
        if n == 1:
            name = v.decode()
        elif n == 2:
            rng = v.decode()
        elif n == 3:
            g = {}
            for gn, _, gv in _fields(v):
                key = {1: "id", 2: "bitmap", 3: "width", 4: "height", 5: "left", 6: "top", 7: "advance"}[gn]
                g[key] = (gv >> 1) ^ -(gv & 1) if gn in (5, 6) else gv
            glyphs[g["id"]] = g
    return name, rng, glyphs


def test_glyphs_are_signed_distance_fields_of_dejavu(client):
    resp = client.get("/fonts/DejaVu Sans/0-255.pbf")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-protobuf"
    assert resp.headers["cache-control"] == "public, max-age=86400"
    name, rng, glyphs = glyphs_of(resp.content)
    assert (name, rng) == ("DejaVu Sans", "0-255")
    # printable Latin-1 is complete: the German letters are there
    assert all(ord(c) in glyphs for c in "AZaz09äöüÄÖÜß-.,()/")
    a = glyphs[ord("A")]
    # DejaVu Sans 'A' at 24 px: 1401/2048 em advance → 16 px; the bitmap has a 3-pixel border
    assert a["advance"] == 16
    assert len(a["bitmap"]) == (a["width"] + 6) * (a["height"] + 6)
    w = a["width"] + 6
    px = a["bitmap"]
    # the corner (outside the letter, ≥ 3 px from it) is far below the edge value 192; the middle of the
    # crossbar is inside (above it)
    assert px[0] < 140
    bar_row = 3 + round(a["height"] * 0.72)
    assert max(px[bar_row * w + 3: (bar_row + 1) * w - 3]) > 192
    space = glyphs[32]
    assert space["width"] == 0 and "bitmap" not in space and space["advance"] == 8
    # the bold face is another font, the € sign in its own range
    bold = glyphs_of(client.get("/fonts/DejaVu Sans Bold/0-255.pbf").content)[2][ord("A")]
    assert bold["advance"] > a["advance"] or bold["bitmap"] != a["bitmap"]
    euro = glyphs_of(client.get("/fonts/DejaVu Sans,DejaVu Sans Bold/8192-8447.pbf").content)
    assert euro[0] == "DejaVu Sans,DejaVu Sans Bold" and 0x20AC in euro[2]
    # cached: 304 on the ETag
    assert client.get("/fonts/DejaVu Sans/0-255.pbf",
                      headers={"If-None-Match": resp.headers["etag"]}).status_code == 304


@pytest.mark.parametrize("path,status,kind", [
    ("/fonts/DejaVu Sans/0-256.pbf", 422, "invalid-glyph-range"),
    ("/fonts/DejaVu Sans/1-256.pbf", 422, "invalid-glyph-range"),
    ("/fonts/DejaVu Sans/65536-65791.pbf", 422, "invalid-glyph-range"),
    ("/fonts/DejaVu Sans/abc.pbf", 422, "invalid-glyph-range"),
    ("/fonts/Comic Sans/0-255.pbf", 404, "unknown-font"),
    ("/fonts/DejaVu Sans,Arial/0-255.pbf", 404, "unknown-font"),
])
def test_bad_glyph_requests_are_problems(client, path, status, kind):
    resp = client.get(path)
    assert resp.status_code == status and resp.headers["content-type"] == PROBLEM
    assert resp.json()["type"].endswith("/" + kind)
