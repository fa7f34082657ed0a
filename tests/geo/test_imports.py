"""Geo imports on the real data in data/: BKG boundaries (VG250 Hessen, VG5000 Germany), destatis population, OSM.

Expected values come from the files themselves (e.g. EWZ of Frankfurt am Main 753,056 in VG250 2018; Neuss 153,796
in the destatis table of 31.12.2018; the refs of the OSM ways).

Gemeindefreie Gebiete (4 in Hessen: Michelbuch, Gutsbezirk Spessart, Gutsbezirk Reinhardswald, Gutsbezirk
Kaufunger Wald) are imported as Gemeinde-level admin areas without population and get no authority.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import func, select, text

from breitband import identity
from breitband.errors import UnprocessableEntity
from breitband.models import Organisation, OrgKind, Role, User
from breitband.settings import PROJECT_ROOT
from geo.importers import (
    Classifier,
    Summary,
    WayArrays,
    import_boundaries,
    import_ortsdurchfahrten,
    import_roads,
    load_road_segments,
    parse_number,
    read_osm,
    split_ways,
)
from geo.models import AdminArea, Authority, LayerImport, Ortsdurchfahrt, RoadSegment
from geo.rules import parse_rules, validate_rules

DATA = PROJECT_ROOT / "data"
B = DATA / "boundaries"
VG5000 = B / "vg5000_2021_original"
HE_FILES = [B / "hessen_gemeinden_vg250_2018_sim200.geojson", B / "hessen_kreise_vg250_2018_sim200.geojson",
            B / "hessen_land_vg250_2018_sim20.geojson"]
HE_ROADS = [DATA / "roads" / "hessen" / "frankfurter-kreuz.osm.pbf",
            DATA / "roads" / "hessen" / "darmstadt-frankfurt-corridor_motis-test-case.osm.pbf"]
DESTATIS = B / "destatis_gemeindeverzeichnis_2018-12-31.json"
NEUSS = DATA / "roads" / "other_de" / "neuss-s11.osm.pbf"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "breitband.cli", *map(str, args)], capture_output=True, text=True,
                          env=os.environ.copy(), cwd=PROJECT_ROOT, timeout=300)


def rules_for(key: str, base: str = "he") -> dict:
    """A state's rules file under another tenant key (for tenants made inside a rolled-back test)."""
    with open(DATA / "tenants" / f"{base}.toml", "rb") as fh:
        raw = tomllib.load(fh)
    raw["key"] = key
    return validate_rules(raw, key)


def scalar(session, sql: str, **params):
    return session.execute(text(sql), params).scalar()


# --- Hessen (fixture he_data: VG250 + Frankfurter Kreuz + Darmstadt–Frankfurt corridor) ------------------------

def test_hessen_admin_areas(he_data, session):
    levels = dict(session.execute(select(AdminArea.level, func.count()).where(AdminArea.tenant_key == "he")
                                  .group_by(AdminArea.level)).all())
    assert levels == {"land": 1, "kreis": 26, "gemeinde": 427}
    kreisfrei = session.scalars(select(AdminArea.ags).where(AdminArea.tenant_key == "he", AdminArea.level == "kreis",
                                                            AdminArea.kreisfrei).order_by(AdminArea.ags)).all()
    assert kreisfrei == ["06411", "06412", "06413", "06414", "06611"]
    ffm = session.scalar(select(AdminArea).where(AdminArea.tenant_key == "he", AdminArea.ags == "06412000"))
    assert (ffm.level, ffm.name, ffm.bez, ffm.population, ffm.kreisfrei, ffm.ars) == (
        "gemeinde", "Frankfurt am Main", "Stadt", 753056, True, "064120000000")
    ni = session.scalar(select(AdminArea).where(AdminArea.tenant_key == "he", AdminArea.ags == "06438009"))
    assert (ni.name, ni.population, ni.kreisfrei) == ("Neu-Isenburg", 37668, False)
    gemeindefrei = session.execute(select(AdminArea.ags, AdminArea.population).where(
        AdminArea.tenant_key == "he", AdminArea.bez == "Gemeindefreies Gebiet").order_by(AdminArea.ags)).all()
    assert gemeindefrei == [("06431200", None), ("06435200", None), ("06633200", None), ("06636200", None)]
    # geometry: MULTIPOLYGON in EPSG:25832, valid; areas as in the destatis table (Frankfurt 248.31 km²)
    row = session.execute(text(
        "SELECT count(*), count(*) FILTER (WHERE ST_IsValid(geom)), array_agg(DISTINCT ST_SRID(geom)), "
        "array_agg(DISTINCT GeometryType(geom)) FROM admin_areas WHERE tenant_key = 'he'")).one()
    assert row == (454, 454, [25832], ["MULTIPOLYGON"])
    km2 = scalar(session, "SELECT ST_Area(geom) / 1e6 FROM admin_areas WHERE tenant_key = 'he' AND ags = '06412000'")
    assert abs(km2 - 248.31) < 0.02 * 248.31
    land_km2 = scalar(session, "SELECT ST_Area(geom) / 1e6 FROM admin_areas WHERE tenant_key = 'he' AND level = 'land'")
    assert abs(land_km2 - 21115) < 0.01 * 21115


def test_hessen_authorities(he_data, session):
    rows = session.execute(select(Authority.kind, Authority.key, Organisation.name, Organisation.kind)
                           .join(Organisation, Organisation.id == Authority.organisation_id)
                           .where(Authority.tenant_key == "he")).all()
    kinds: dict[str, int] = {}
    for kind, *_ in rows:
        kinds[kind] = kinds.get(kind, 0) + 1
    assert kinds == {"gemeinde": 423, "kreis": 21, "land": 1, "autobahn": 1}
    assert {r[3] for r in rows} == {OrgKind.road_authority.value}
    by_key = {(kind, key): name for kind, key, name, _ in rows}
    assert by_key[("kreis", "06438")] == "Landkreis Offenbach"
    assert by_key[("kreis", "06434")] == "Hochtaunuskreis"
    assert by_key[("gemeinde", "06438009")] == "Stadt Neu-Isenburg"
    assert by_key[("gemeinde", "06412000")] == "Stadt Frankfurt am Main"
    assert by_key[("land", "06")] == "Hessen Mobil"
    assert by_key[("autobahn", None)] == "Die Autobahn GmbH des Bundes"
    # a kreisfreie Stadt is one authority (the Gemeinde): no Kreis authority for it, none for gemeindefreie Gebiete
    for kreis in ("06411", "06412", "06413", "06414", "06611"):
        assert ("kreis", kreis) not in by_key
    for gfg in ("06431200", "06435200", "06633200", "06636200"):
        assert ("gemeinde", gfg) not in by_key
    ffm = session.scalar(select(Authority.jurisdiction).where(Authority.tenant_key == "he",
                                                              Authority.key == "06412000"))
    assert ffm == "Gemeindestraßen, Kreisstraßen und Ortsdurchfahrten in Frankfurt am Main (kreisfreie Stadt)"
    ni = session.scalar(select(Authority.jurisdiction).where(Authority.tenant_key == "he", Authority.key == "06438009"))
    assert ni == "Gemeindestraßen und Ortsdurchfahrten in Neu-Isenburg"


def classes_of(session, osm_id: int) -> set[tuple]:
    return set(session.execute(select(RoadSegment.highway, RoadSegment.ref, RoadSegment.road_class,
                                      RoadSegment.class_source, RoadSegment.class_ref)
                               .where(RoadSegment.tenant_key == "he", RoadSegment.osm_id == osm_id)).all())


def test_hessen_road_classes(he_data, session):
    assert classes_of(session, 23286645) == {("motorway", "A 5", "autobahn", "ref", "A 5")}
    assert classes_of(session, 4492861) == {("secondary", "L 3262", "land", "ref", "L 3262")}
    assert classes_of(session, 4746476) == {("tertiary", "K 823", "kreis", "ref", "K 823")}
    assert classes_of(session, 4940712) == {("tertiary", "K 163", "kreis", "ref", "K 163")}
    assert classes_of(session, 133021922) == {("trunk", "B 43", "bund", "ref", "B 43")}
    # motorway links without a ref that join the A 5 take its class
    for link in (4488554, 4492270):
        assert classes_of(session, link) == {("motorway_link", None, "autobahn", "link", "A 5")}
        joins = scalar(session, """
            SELECT count(*) FROM road_segments l JOIN road_segments a ON a.tenant_key = 'he' AND a.ref = 'A 5'
             AND a.highway = 'motorway'
             AND ST_DWithin(a.geom, ST_Collect(ST_StartPoint(l.geom), ST_EndPoint(l.geom)), 0.5)
            WHERE l.tenant_key = 'he' AND l.osm_id = :id""", id=link)
        assert joins >= 1
    # every link without an applicable ref found a classified road to join in these extracts
    sources = dict(session.execute(text(
        "SELECT class_source, count(*) FROM road_segments WHERE tenant_key = 'he' AND right(highway, 5) = '_link' "
        "GROUP BY 1")).all())
    assert set(sources) == {"ref", "link"}
    counts = dict(session.execute(text(
        "SELECT road_class, count(DISTINCT osm_id) FROM road_segments WHERE tenant_key = 'he' AND class_source = 'ref' "
        "GROUP BY 1")).all())
    assert counts == {"autobahn": 104, "bund": 91, "land": 37, "kreis": 99}
    # private access and separately mapped paths are flagged, not dropped
    assert session.execute(select(RoadSegment.access, RoadSegment.is_private, RoadSegment.is_path).where(
        RoadSegment.tenant_key == "he", RoadSegment.osm_id == 23341015)).all() == [("private", True, False)]
    flags = session.execute(text(
        "SELECT count(*) FILTER (WHERE is_private <> (access IN ('private', 'no'))), "
        "count(*) FILTER (WHERE is_path <> (highway IN ('footway', 'cycleway', 'path', 'steps', 'bridleway'))), "
        "count(*) FILTER (WHERE is_private) FROM road_segments WHERE tenant_key = 'he'")).one()
    assert flags[:2] == (0, 0) and flags[2] > 800
    # excluded highway values are not imported
    assert scalar(session, "SELECT count(*) FROM road_segments WHERE tenant_key = 'he' AND highway IN "
                           "('construction', 'proposed', 'platform')") == 0


def test_hessen_roads_are_cut_into_pieces_of_at_most_200_m(he_data, session):
    row = session.execute(text(
        "SELECT max(ST_Length(geom)), array_agg(DISTINCT ST_SRID(geom)), count(*) FILTER (WHERE NOT ST_IsValid(geom)) "
        "FROM road_segments WHERE tenant_key = 'he'")).one()
    assert row[0] <= 200.0 + 1e-6 and row[1] == [25832] and row[2] == 0
    # the A 5 way 23286645, measured independently from the OSM file, is 7 pieces with the same total length and
    # every original node among their vertices
    ways = read_osm(HE_ROADS[0])
    i = ways.osm_id.index(23286645)
    lonlat = ways.coords[ways.offsets[i]:ways.offsets[i + 1]]
    x, y = Transformer.from_crs(4326, 25832, always_xy=True).transform(lonlat[:, 0], lonlat[:, 1])
    original = shapely.LineString(np.column_stack([x, y]))
    pieces = [shapely.from_wkb(bytes(g)) for (g,) in session.execute(text(
        "SELECT ST_AsBinary(geom) FROM road_segments WHERE tenant_key = 'he' AND osm_id = 23286645 ORDER BY id"))]
    assert len(pieces) == int(np.ceil(original.length / 200))
    assert abs(sum(p.length for p in pieces) - original.length) < 1e-6
    assert max(p.length for p in pieces) - min(p.length for p in pieces) < 1e-6  # equal pieces
    vertices = np.concatenate([shapely.get_coordinates(p) for p in pieces])
    for node in shapely.get_coordinates(original):
        assert np.min(np.hypot(*(vertices - node).T)) < 1e-6
    for a, b in zip(pieces, pieces[1:]):  # consecutive pieces join
        assert shapely.get_coordinates(a)[-1].tolist() == shapely.get_coordinates(b)[0].tolist()


def test_split_ways_keeps_vertices_and_cuts_long_edges():
    # a real way (the A 5 above) and a single 450 m edge, in one call
    ways = read_osm(HE_ROADS[0])
    i = ways.osm_id.index(23286645)
    lonlat = ways.coords[ways.offsets[i]:ways.offsets[i + 1]]
    x, y = Transformer.from_crs(4326, 25832, always_xy=True).transform(lonlat[:, 0], lonlat[:, 1])
    a5 = np.column_stack([x, y])
    edge = a5[:1] + np.array([[0.0, 0.0], [450.0, 0.0]])
    coords = np.concatenate([a5, edge])
    offsets = np.array([0, len(a5), len(a5) + 2])
    out, piece, piece_way, way_len = split_ways(coords, offsets)
    lines = shapely.linestrings(out, indices=piece)
    assert piece_way.tolist() == [0] * 7 + [1] * 3
    assert np.allclose(shapely.length(lines[7:]), 150.0)
    assert abs(way_len[1] - 450.0) < 1e-9
    assert len(out) == len(coords) + 2 * (6 + 2)


def test_classifier_reads_refs_by_the_rules():
    he = Classifier(parse_rules(rules_for("he")))
    assert he("trunk", "B 43;B 44") == ("bund", "ref", "B 43")
    assert he("primary", "B 44;A 5") == ("autobahn", "ref", "A 5")  # the highest class of several refs
    assert he("secondary", "L3262") == ("land", "ref", "L3262")     # no space between prefix and number
    assert he("secondary", "l 3262") == ("land", "ref", "l 3262")   # case-insensitive after exact
    assert he("tertiary", "E 451") == ("gemeinde", "default", None)  # a prefix the rules do not know
    assert he("platform", "3") == ("gemeinde", "default", None)
    assert he("motorway", None) == ("autobahn", "highway", None)
    assert he("residential", None) == ("gemeinde", "default", None)
    by = Classifier(parse_rules(rules_for("by", "by")))
    assert by("secondary", "St 2183") == ("land", "ref", "St 2183")
    assert by("tertiary", "KU 18") == ("kreis", "ref", "KU 18")
    assert by("tertiary", "BT 14") == ("kreis", "ref", "BT 14")
    assert by("primary", "B 85") == ("bund", "ref", "B 85")
    assert he("tertiary", "KU 18") == ("gemeinde", "default", None)  # Hessen does not know Bavarian prefixes


def test_parse_number_understands_german_formats():
    assert [parse_number(v) for v in (37668, 37668.0, "37668", "37.668", "37668,0", "1.234.567", "1.234,6",
                                      " 12 345 ", "", None, "n/a")] == [
        37668, 37668, 37668, 37668, 37668, 1234567, 1235, 12345, None, None, None]


def test_layer_import_log(he_data, session):
    boundaries = session.get(LayerImport, ("he", "boundaries"))
    assert [Path(p).name for p in boundaries.sources] == [p.name for p in HE_FILES]
    assert boundaries.summary["counts"]["gemeinde"] == 427
    assert boundaries.summary["counts"]["authorities"]["gemeinde"] == 423
    assert boundaries.summary["skipped"]["total"] == 0
    roads = session.get(LayerImport, ("he", "roads"))
    assert [Path(p).name for p in roads.sources] == [p.name for p in HE_ROADS]
    assert roads.summary["counts"]["segments"] == scalar(
        session, "SELECT count(*) FROM road_segments WHERE tenant_key = 'he'")
    assert roads.summary["skipped"]["by_reason"]["highway=construction is excluded by the rules"] == 68


def test_reimport_replaces_the_layers_and_keeps_the_organisations(he_data, session):
    def state():
        orgs = dict(session.execute(select(Organisation.name, Organisation.id).where(
            Organisation.tenant_key == "he", Organisation.kind == "road_authority")).all())
        auths = set(session.execute(select(Authority.organisation_id, Authority.kind, Authority.key,
                                           Authority.jurisdiction).where(Authority.tenant_key == "he")).all())
        areas = session.execute(text("SELECT level, count(*), sum(population) FROM admin_areas "
                                     "WHERE tenant_key = 'he' GROUP BY 1 ORDER BY 1")).all()
        roads = session.execute(text("SELECT road_class, class_source, count(*), round(sum(ST_Length(geom))) "
                                     "FROM road_segments WHERE tenant_key = 'he' GROUP BY 1, 2 ORDER BY 1, 2")).all()
        return orgs, auths, areas, roads

    before = state()
    # a user hangs on an authority's organisation: the re-import must keep it
    ni = session.scalar(select(Organisation).where(Organisation.tenant_key == "he",
                                                   Organisation.name == "Stadt Neu-Isenburg"))
    identity.create_user(session, ni, "tiefbau@neu-isenburg.example", "Tiefbau", Role.authority_reviewer)
    summary = import_boundaries(session, "he", HE_FILES)
    assert summary["counts"]["authorities"] == {"gemeinde": 423, "kreis": 21, "agency": 2, "created": 0,
                                                "updated": 0, "unchanged": 446}
    roads = import_roads(session, "he", HE_ROADS)
    assert roads["counts"]["segments"] == sum(r[2] for r in before[3])
    after = state()
    assert after == before
    assert session.scalar(select(User.organisation_id).where(User.email == "tiefbau@neu-isenburg.example")) == ni.id


def test_existing_agency_organisation_becomes_the_authority(session):
    """The demo creates "Hessen Mobil" (with users) before any import: the import adopts it instead of making a
    second one; a re-import keeps it."""
    identity.create_tenant(session, "hm", "Hessen (Test)", "EPSG:25832", rules_for("hm"))
    mobil = identity.create_organisation(session, "hm", OrgKind.road_authority, "Hessen Mobil",
                                         email="genehmigungen@hessen-mobil.example")
    identity.create_user(session, mobil, "pruefer@mobil.example", "P", Role.authority_reviewer)
    import_boundaries(session, "hm", HE_FILES[1:])  # Kreise and Land only
    assert session.execute(select(Authority.kind, Authority.key).where(
        Authority.organisation_id == mobil.id)).one() == ("land", "06")
    assert session.scalar(select(func.count()).select_from(Organisation).where(
        Organisation.tenant_key == "hm", Organisation.name == "Hessen Mobil")) == 1
    assert session.scalar(select(func.count()).select_from(AdminArea).where(AdminArea.tenant_key == "hm")) == 27
    summary = import_boundaries(session, "hm", HE_FILES[1:])
    assert summary["counts"]["authorities"]["created"] == 0
    assert "no Kreis layer" not in " ".join(summary["warnings"])
    only_gemeinden = import_boundaries(session, "hm", HE_FILES[:1])
    assert any("kreisfreie Städte cannot be recognised" in w for w in only_gemeinden["warnings"])


def test_geojson_twin_gives_the_same_network_as_the_pbf(he_data, session):
    identity.create_tenant(session, "hg", "Hessen (GeoJSON)", "EPSG:25832", rules_for("hg"))
    summary = import_roads(session, "hg", [DATA / "roads" / "hessen" / "frankfurter-kreuz_highways.geojson"])
    assert summary["counts"]["ways"] == 2756
    diff = session.execute(text("""
        WITH g AS (SELECT osm_id, highway, road_class, class_source, class_ref, is_private, is_path, count(*) AS n,
                          round(sum(ST_Length(geom))::numeric, 1) AS len
                   FROM road_segments WHERE tenant_key = 'hg' GROUP BY 1, 2, 3, 4, 5, 6, 7),
             p AS (SELECT osm_id, highway, road_class, class_source, class_ref, is_private, is_path, count(*) AS n,
                          round(sum(ST_Length(geom))::numeric, 1) AS len
                   FROM road_segments WHERE tenant_key = 'he' GROUP BY 1, 2, 3, 4, 5, 6, 7)
        SELECT count(*) FROM g LEFT JOIN p ON p.osm_id = g.osm_id AND p.class_ref IS NOT DISTINCT FROM g.class_ref
        WHERE p.osm_id IS NULL OR (g.highway, g.road_class, g.class_source, g.is_private, g.is_path, g.n)
              IS DISTINCT FROM (p.highway, p.road_class, p.class_source, p.is_private, p.is_path, p.n)
              OR abs(g.len - p.len) > 0.2"""))
    assert diff.scalar() == 0


def test_bavarian_prefixes_from_an_osm_gz(session):
    identity.create_tenant(session, "bx", "Bayern (Test)", "EPSG:25832", rules_for("bx", "by"))
    summary = import_roads(session, "bx", [DATA / "roads" / "other_de" / "north-bayreuth.osm.gz"])
    assert summary["counts"]["ways"] == 2056
    refs = dict(session.execute(text(
        "SELECT ref, string_agg(DISTINCT road_class, ',') FROM road_segments WHERE tenant_key = 'bx' "
        "AND class_source = 'ref' GROUP BY 1")).all())
    assert refs == {"A 70": "autobahn", "A 9": "autobahn", "B 85": "bund", "St 2183": "land", "St 2189": "land",
                    "KU 11": "kreis", "KU 14": "kreis", "KU 18": "kreis", "KU 29": "kreis", "BT 14": "kreis",
                    "BT 46": "kreis"}


def test_load_road_segments_accepts_parsed_ways(he_data, session):
    """The fast loader behind the import, as the benchmark calls it: ways already parsed, appended to a tenant."""
    identity.create_tenant(session, "hl", "Hessen (Loader)", "EPSG:25832", rules_for("hl"))
    ways = read_osm(HE_ROADS[0])
    a5 = [i for i, r in enumerate(ways.ref) if r == "A 5"]
    link = ways.osm_id.index(4488554)
    parsed = [(ways.osm_id[i], {"highway": ways.highway[i], "ref": ways.ref[i]},
               ways.coords[ways.offsets[i]:ways.offsets[i + 1]].tolist()) for i in a5 + [link]]
    # a degenerate way (both nodes at one place, as OSM sometimes has) in the middle is skipped, not loaded
    node = parsed[0][2][0]
    parsed.insert(3, (1, {"highway": "service"}, [node, node]))
    summary = Summary(layer="roads", tenant="hl")
    result = load_road_segments(session, "hl", parsed, summary=summary)
    assert summary.skipped_by_reason == {"zero length (all nodes at one place)": 1}
    assert result["ways"] == len(a5) + 1 and result["links_classified"] == 1
    assert set(session.execute(select(RoadSegment.osm_id, RoadSegment.ref).where(
        RoadSegment.tenant_key == "hl")).all()) == {(ways.osm_id[i], "A 5") for i in a5} | {(4488554, None)}
    parsed.pop(3)
    assert result["segments"] == scalar(session, "SELECT count(*) FROM road_segments WHERE tenant_key = 'hl'")
    assert session.execute(select(RoadSegment.road_class, RoadSegment.class_source, RoadSegment.class_ref).where(
        RoadSegment.tenant_key == "hl", RoadSegment.osm_id == 4488554)).all() == [("autobahn", "link", "A 5")]
    # the same as WayArrays (columns), appended
    arrays = WayArrays.from_ways(parsed)
    again = load_road_segments(session, "hl", arrays, propagate_links=False, analyze=False)
    assert again["segments"] == result["segments"]
    assert scalar(session, "SELECT count(*) FROM road_segments WHERE tenant_key = 'hl'") == 2 * result["segments"]


def test_ortsdurchfahrten_lines_and_polygons_in_another_crs(he_data, session, tmp_path):
    """An OD layer derived from the real data (not an official OD): the L 3262 inside Neu-Isenburg as lines and
    the Neu-Isenburg area as a polygon, written as a GeoPackage in Gauß-Krüger (EPSG:31467), plus one point."""
    to_gk = Transformer.from_crs(25832, 31467, always_xy=True)

    def gk(wkb):
        return shapely.transform(shapely.from_wkb(bytes(wkb)),
                                 lambda xy: np.column_stack(to_gk.transform(xy[:, 0], xy[:, 1])))

    line = gk(scalar(session, """
        SELECT ST_AsBinary(ST_LineMerge(ST_Union(r.geom)))
        FROM road_segments r JOIN admin_areas a ON a.tenant_key = 'he' AND a.ags = '06438009'
        WHERE r.tenant_key = 'he' AND r.ref = 'L 3262' AND ST_Within(r.geom, a.geom)"""))
    area = gk(scalar(session, "SELECT ST_AsBinary(geom) FROM admin_areas WHERE tenant_key = 'he' AND ags = '06438009'"))
    point = shapely.get_point(shapely.get_geometry(line, 0) if line.geom_type.startswith("Multi") else line, 0)
    geoms = np.array([line, area, point], dtype=object)
    path = tmp_path / "od.gpkg"
    pyogrio.raw.write(path, shapely.to_wkb(geoms),
                      field_data=[np.array(["L 3262", None, "L 3262"], dtype=object),
                                  np.array(["06438009", "06438009", "06438009"], dtype=object),
                                  np.array(["OD Neu-Isenburg", "Neu-Isenburg", "Punkt"], dtype=object)],
                      fields=["ref", "ags", "name"], geometry_type="Unknown", crs="EPSG:31467", driver="GPKG")
    summary = import_ortsdurchfahrten(session, "he", path)
    assert summary["counts"] == {"ortsdurchfahrten": 2, "lines": 1, "polygons": 1}
    assert summary["skipped"]["by_reason"] == {"neither a polygon nor a line (Point)": 1}
    rows = session.execute(select(Ortsdurchfahrt.road_ref, Ortsdurchfahrt.gemeinde_ags, Ortsdurchfahrt.name,
                                  Ortsdurchfahrt.is_line).where(Ortsdurchfahrt.tenant_key == "he")
                           .order_by(Ortsdurchfahrt.is_line)).all()
    assert rows == [(None, "06438009", "Neu-Isenburg", False), ("L 3262", "06438009", "OD Neu-Isenburg", True)]
    # back in EPSG:25832 the line lies on the road it came from (to the millimetre)
    dist = scalar(session, """
        SELECT ST_HausdorffDistance(o.geom, (SELECT ST_LineMerge(ST_Union(r.geom)) FROM road_segments r
            JOIN admin_areas a ON a.tenant_key = 'he' AND a.ags = '06438009'
            WHERE r.tenant_key = 'he' AND r.ref = 'L 3262' AND ST_Within(r.geom, a.geom)))
        FROM ortsdurchfahrten o WHERE o.tenant_key = 'he' AND o.is_line""")
    assert dist < 0.01
    import_ortsdurchfahrten(session, "he", path)  # replaces, does not add
    assert scalar(session, "SELECT count(*) FROM ortsdurchfahrten WHERE tenant_key = 'he'") == 2


def test_bad_files_raise_a_clear_error_naming_the_file(he_data, session, tmp_path):
    not_gis = tmp_path / "gemeinden.geojson"
    not_gis.write_text("this is not a GIS file")
    cases = [
        (tmp_path / "missing.geojson", "missing.geojson: file does not exist"),
        (not_gis, "gemeinden.geojson: not a GIS file"),
        (DATA / "roads" / "hessen" / "frankfurter-kreuz_highways.geojson",
         "frankfurter-kreuz_highways.geojson: missing required attribute(s) AGS, GEN"),
    ]
    for path, message in cases:
        with pytest.raises(UnprocessableEntity) as exc:
            import_boundaries(session, "he", [HE_FILES[0], path])
        assert message in exc.value.detail, exc.value.detail
        assert exc.value.status == 422
    assert scalar(session, "SELECT count(*) FROM admin_areas WHERE tenant_key = 'he'") == 454


# --- a second state through the CLI alone: Nordrhein-Westfalen from VG5000 + destatis + OSM Neuss ----------------

@pytest.fixture(scope="module")
def nw_cli(engine):
    """Tenant nw onboarded with CLI commands only (committed; removed afterwards)."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tenants WHERE key = 'nw'"))
    out = {"tenant": cli("tenant", "create", "nw", "--rules", DATA / "tenants" / "nw.toml"),
           "boundaries": cli("import", "boundaries", "--tenant", "nw", "--population", DESTATIS,
                             VG5000 / "VG5000_GEM.shp", VG5000 / "VG5000_KRS.shp", VG5000 / "VG5000_LAN.shp"),
           "roads": cli("import", "roads", "--tenant", "nw", "--json", NEUSS)}
    yield out
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tenants WHERE key = 'nw'"))


@pytest.mark.slow
def test_second_state_boundaries_from_vg5000_and_destatis(nw_cli, session):
    for step in ("tenant", "boundaries", "roads"):
        assert nw_cli[step].returncode == 0, nw_cli[step].stderr
    printed = nw_cli["boundaries"].stdout
    assert "Imported boundaries for tenant 'nw' from 4 file(s)" in printed
    assert "  gemeinde: 396" in printed and "  kreis: 53" in printed and "  kreisfrei: 22" in printed
    assert "10964 × outside the state (AGS does not start with 05)" in printed
    assert "9 × GF=8: water area, not land" in printed
    neuss = session.scalar(select(AdminArea).where(AdminArea.tenant_key == "nw", AdminArea.ags == "05162024"))
    assert (neuss.name, neuss.bez, neuss.population, neuss.kreisfrei) == ("Neuss", "Stadt", 153796, False)
    ddorf = session.scalar(select(AdminArea).where(AdminArea.tenant_key == "nw", AdminArea.ags == "05111000"))
    assert (ddorf.population, ddorf.kreisfrei) == (619294, True)
    assert scalar(session, "SELECT population FROM admin_areas WHERE tenant_key = 'nw' AND ags = '05162'") == 451007
    assert scalar(session, "SELECT count(*) FROM admin_areas WHERE tenant_key = 'nw' AND level = 'gemeinde' "
                           "AND population IS NULL") == 0
    assert scalar(session, "SELECT array_agg(DISTINCT ST_SRID(geom)) FROM admin_areas WHERE tenant_key = 'nw'") \
        == [25832]
    # the Neuss Rathaus (Markt 2, 6.6914 E 51.1985 N) lies in the Gemeinde Neuss after 31467 → 25832
    assert scalar(session, "SELECT ags FROM admin_areas WHERE tenant_key = 'nw' AND level = 'gemeinde' AND "
                           "ST_Contains(geom, ST_Transform(ST_SetSRID(ST_MakePoint(6.6914, 51.1985), 4326), 25832))"
                  ) == "05162024"
    auths = dict(session.execute(select(Authority.key, Organisation.name).join(
        Organisation, Organisation.id == Authority.organisation_id).where(
        Authority.tenant_key == "nw", Authority.kind.in_(["kreis", "land"]))).all())
    assert auths["05162"] == "Rhein-Kreis Neuss"
    assert auths["05"] == "Straßen.NRW"
    assert "05111" not in auths  # Düsseldorf is kreisfrei


@pytest.mark.slow
def test_second_state_roads_of_neuss(nw_cli, session):
    summary = json.loads(nw_cli["roads"].stdout)
    assert summary["counts"]["ways"] == 1261
    refs = dict(session.execute(text(
        "SELECT ref, string_agg(DISTINCT road_class, ',') FROM road_segments WHERE tenant_key = 'nw' "
        "AND class_source = 'ref' GROUP BY 1")).all())
    assert refs == {"L 380": "land", "L 381": "land", "L 44": "land", "L 137": "land", "K 8": "kreis"}
    assert session.execute(select(RoadSegment.name, RoadSegment.road_class).where(
        RoadSegment.tenant_key == "nw", RoadSegment.ref == "K 8").distinct()).all() == [("Grefrather Weg", "kreis")]


@pytest.mark.slow
def test_cli_bad_files_exit_non_zero_with_one_error_line(nw_cli, session, tmp_path):
    not_osm = tmp_path / "roads.osm.pbf"
    not_osm.write_bytes(b"definitely not protobuf")
    not_gis = tmp_path / "kreise.geojson"
    not_gis.write_text('{"type": "Feature", "properties": {')
    no_prj = tmp_path / "VG5000_KRS.shp"
    for suffix in (".shp", ".shx", ".dbf", ".cpg"):
        shutil.copy(VG5000 / f"VG5000_KRS{suffix}", no_prj.with_suffix(suffix))
    cases = [
        (["import", "boundaries", "--tenant", "nw", tmp_path / "nope.shp"],
         f"error: {tmp_path / 'nope.shp'}: file does not exist"),
        (["import", "boundaries", "--tenant", "nw", not_gis], f"error: {not_gis}: not a GIS file"),
        (["import", "boundaries", "--tenant", "nw", no_prj], f"error: {no_prj}: unknown CRS"),
        (["import", "boundaries", "--tenant", "nw", DATA / "roads" / "hessen" / "frankfurter-kreuz_highways.geojson"],
         "frankfurter-kreuz_highways.geojson: missing required attribute(s) AGS, GEN"),
        (["import", "boundaries", "--tenant", "nw", "--population", not_gis, VG5000 / "VG5000_LAN.shp"],
         f"error: {not_gis}: not a JSON file"),
        (["import", "roads", "--tenant", "nw", not_osm], f"error: {not_osm}: not an OpenStreetMap file"),
        (["import", "roads", "--tenant", "nw", B / "hessen_land_vg250_2018_sim20.geojson"],
         "hessen_land_vg250_2018_sim20.geojson: missing required attribute(s) highway"),
        (["import", "ortsdurchfahrten", "--tenant", "nw", not_gis], f"error: {not_gis}: not a GIS file"),
    ]
    for args, expected in cases:
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and expected in errors[0], (args, proc.stderr)
    # nothing was replaced
    assert scalar(session, "SELECT count(*) FROM admin_areas WHERE tenant_key = 'nw'") == 450
    assert scalar(session, "SELECT count(*) FROM road_segments WHERE tenant_key = 'nw'") == 1380
    assert "Usage:" in cli("import", "roads", "--help").stdout


@pytest.mark.slow
def test_second_state_resolves_through_the_cli(nw_cli, engine, tmp_path):
    """Nordrhein-Westfalen, onboarded by CLI only, resolves a route along the K 8 in Neuss to the Rhein-Kreis
    Neuss, with its own threshold (Neuss has 153,796 inhabitants, more than NRW's 80,000)."""
    with engine.connect() as conn:
        wkb = conn.execute(text(
            "SELECT ST_AsBinary(ST_Transform(ST_OffsetCurve(ST_LineMerge(ST_Union(geom)), 6), 4326)) "
            "FROM road_segments WHERE tenant_key = 'nw' AND ref = 'K 8'")).scalar()
    route = shapely.from_wkb(bytes(wkb))
    if route.geom_type == "MultiLineString":
        route = max(route.geoms, key=lambda g: g.length)
    path = tmp_path / "k8.geojson"
    path.write_text(shapely.to_geojson(route))
    proc = cli("resolve", "--tenant", "nw", path)
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    first = body["authorities"][0]
    assert (first["name"], first["kind"], first["key"]) == ("Rhein-Kreis Neuss", "kreis", "05162")
    assert first["length_m"] >= 0.8 * body["total_length_m"]
    od = [w for w in body["warnings"] if w["road_ref"] == "K 8"]
    assert od and od[0]["gemeinde"] == {"ags": "05162024", "name": "Neuss", "population": 153796}
    assert "mehr als 80.000" in od[0]["message"]


def test_a_geopackage_with_one_layer_per_level_imports_every_layer(he_data, session, tmp_path):
    """VG250 as one GeoPackage with the layers Land, Kreise and Gemeinden: all three are read (not only the first),
    giving what the three GeoJSON files give."""
    files = [PROJECT_ROOT / "data" / "boundaries" / name for name in (
        "hessen_land_vg250_2018_sim20.geojson", "hessen_kreise_vg250_2018_sim200.geojson",
        "hessen_gemeinden_vg250_2018_sim200.geojson")]
    expected = import_boundaries(session, "he", files)["counts"]
    gpkg = tmp_path / "vg250_hessen.gpkg"
    for layer, source in zip(("Land", "Kreise", "Gemeinden"), files):
        meta, _fids, wkb, values = pyogrio.raw.read(source)
        pyogrio.raw.write(gpkg, wkb, field_data=values, fields=meta["fields"], layer=layer, driver="GPKG",
                          geometry_type=meta["geometry_type"], crs=meta["crs"], append=gpkg.exists())
    assert [str(name) for name, _ in pyogrio.list_layers(gpkg)] == ["Land", "Kreise", "Gemeinden"]
    counts = import_boundaries(session, "he", [gpkg])["counts"]
    assert (counts["land"], counts["kreis"], counts["gemeinde"]) == \
        (expected["land"], expected["kreis"], expected["gemeinde"]) == (1, 26, expected["gemeinde"])
    assert expected["gemeinde"] > 400
