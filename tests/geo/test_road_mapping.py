"""Road files of road databases through a column mapping (geo/importers/road_mapping.py, `breitband import roads
--mapping/--map/--class-map/--skip`): the ATKIS Basis-DLM layer ver01_l (BEZ, WDM, ZUS, NAM) and a state's road
information system (KLASSE, STRNR, ZUSATZ, NAME).

The files are written in the test with pyogrio in EPSG:25832, from the real OSM ways of the Frankfurter Kreuz
(data/roads/hessen/frankfurter-kreuz_highways.geojson): the way's ref becomes BEZ ("A 5" → "A5") and WDM by its
prefix (A 1301, B 1303, L 1305, K 1306, none 1307), as the Basis-DLM holds them; ramps take the BEZ and WDM of the
road they join, as the Basis-DLM gives "Auf- und Abfahrten" the WDM of the higher road (here: the road the OSM import
found for the link, road_segments.class_ref of the committed he data); ways OSM tags highway=proposed get ZUS 4000
(im Bau). Footways, paths, tracks and the like are not in ver01_l and are left out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import shapely
from sqlalchemy import text

from breitband.errors import UnprocessableEntity
from breitband.settings import PROJECT_ROOT
from geo import service
from geo.crs import transformer
from geo.importers import import_roads, load_mapping
from geo.rules import validate_rules

DATA = PROJECT_ROOT / "data"
KREUZ = DATA / "roads" / "hessen" / "frankfurter-kreuz_highways.geojson"
ATKIS_MAPPING = DATA / "road_mappings" / "atkis-basis-dlm-ver01_l.toml"
SIS_MAPPING = DATA / "road_mappings" / "strassen-informationssystem-beispiel.toml"
ROUTE = DATA / "examples" / "route-neu-isenburg.geojson"
NOT_IN_VER01 = {"track", "footway", "path", "steps", "bridleway", "cycleway", "platform"}
WDM = {"A": 1301, "B": 1303, "L": 1305, "K": 1306}
CLASS_OF_WDM = {1301: "autobahn", 1303: "bund", 1305: "land", 1306: "kreis", 1307: "gemeinde"}


def kreuz_ways() -> list[dict]:
    with open(KREUZ) as fh:
        features = json.load(fh)["features"]
    return [f for f in features if f["properties"]["highway"] not in NOT_IN_VER01]


def to_25832(features: list[dict]) -> np.ndarray:
    geoms = shapely.from_geojson([json.dumps(f["geometry"]) for f in features])
    t = transformer(4326, 25832)
    return shapely.transform(geoms, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def write(path: Path, geoms: np.ndarray, columns: dict[str, list], types: dict[str, str] | None = None) -> Path:
    fields = list(columns)
    values = [np.array(columns[c], dtype=(types or {}).get(c, object)) for c in fields]
    driver = "ESRI Shapefile" if path.suffix == ".shp" else "GPKG"
    pyogrio.raw.write(path, shapely.to_wkb(geoms), field_data=values, fields=fields, driver=driver,
                      geometry_type="LineString", crs="EPSG:25832", encoding="UTF-8")
    return path


def prefix(ref: str | None) -> str | None:
    return ref.split()[0] if ref else None


@pytest.fixture(scope="module")
def atkis(tmp_path_factory, engine, he_data) -> tuple[Path, list[dict]]:
    """ver01_l.shp: OBJID, OBJART, BEZ, WDM, ZUS, NAM, FSZ in EPSG:25832."""
    ways = kreuz_ways()
    with engine.connect() as conn:
        ramps = dict(conn.execute(text("SELECT DISTINCT osm_id, class_ref FROM road_segments WHERE tenant_key = 'he' "
                                       "AND class_source = 'link' AND class_ref IS NOT NULL")).all())
    for f in ways:
        if not f["properties"]["ref"] and f["properties"]["osm_id"] in ramps:
            f["properties"]["ref"] = ramps[f["properties"]["osm_id"]]
    bez, wdm, zus = [], [], []
    for f in ways:
        ref = f["properties"]["ref"]
        bez.append(ref.replace(" ", "") if ref else None)
        wdm.append(WDM.get(prefix(ref), 1307))
        zus.append(4000 if f["properties"]["highway"] == "proposed" else None)
    path = tmp_path_factory.mktemp("atkis") / "ver01_l.shp"
    write(path, to_25832(ways), {
        "OBJID": [f"DEHE{f['properties']['osm_id']:012d}" for f in ways],
        "OBJART": ["42003"] * len(ways),
        "BEZ": bez, "WDM": wdm, "ZUS": zus,
        "NAM": [f["properties"]["name"] for f in ways],
        "FSZ": [int(f["properties"]["lanes"]) if (f["properties"]["lanes"] or "").isdigit() else None for f in ways],
    }, types={"WDM": np.int32})
    return path, ways


@pytest.fixture(scope="module")
def sis(tmp_path_factory) -> tuple[Path, list[dict]]:
    """strassennetz.gpkg: the classified roads only, KLASSE + STRNR (+ ZUSATZ), NAME, in EPSG:25832."""
    ways = [f for f in kreuz_ways() if prefix(f["properties"]["ref"]) in WDM]
    klasse = [prefix(f["properties"]["ref"]) for f in ways]
    number = [f["properties"]["ref"].split()[1] for f in ways]
    path = tmp_path_factory.mktemp("sis") / "strassennetz.gpkg"
    write(path, to_25832(ways), {
        "KLASSE": klasse,
        "STRNR": [int("".join(c for c in n if c.isdigit())) for n in number],
        "ZUSATZ": ["".join(c for c in n if not c.isdigit()) or None for n in number],
        "NAME": [f["properties"]["name"] for f in ways],
    }, types={"STRNR": np.int32})
    return path, ways


def segments(session) -> dict:
    return {row[0]: row[1:] for row in session.execute(text(
        "SELECT road_class, count(*), count(DISTINCT ref), bool_and(class_source = 'attribute'), "
        "bool_or(highway IS NOT NULL OR is_private OR is_path) FROM road_segments WHERE tenant_key = 'he' "
        "GROUP BY 1")).all()}


def route_answer(session) -> dict:
    body = service.resolve(session, "he", ROUTE.read_text())
    return {a["name"]: round(a["length_m"], 1) for a in body["authorities"]}


# --- ATKIS Basis-DLM -------------------------------------------------------------------------------------------

def test_atkis_ver01_l_imports_with_the_shipped_mapping(he_data, session, atkis):
    path, ways = atkis
    osm_answer = route_answer(session)
    summary = import_roads(session, "he", [path], mapping=load_mapping(ATKIS_MAPPING))

    in_use = [f for f in ways if f["properties"]["highway"] != "proposed"]
    assert summary["counts"]["ways"] == len(in_use)
    assert summary["skipped"]["by_reason"] == {"ZUS=4000: skipped by the mapping": 3}
    assert summary["counts"]["segments_by_class_source"] == {"attribute": summary["counts"]["segments"]}
    assert summary["counts"]["mapping"] == {"ref": "BEZ", "class": "WDM", "name": "NAM",
                                            "classes": "1301=autobahn, 1303=bund, 1305=land, 1306=kreis, "
                                                       "1307=gemeinde, 9997=gemeinde, 9999=gemeinde",
                                            "skip ZUS": "2100, 4000"}
    # every WDM went to its class; the refs are the file's BEZ; no OSM tags were invented
    expected = Counter(CLASS_OF_WDM[WDM.get(prefix(f["properties"]["ref"]), 1307)] for f in in_use)
    ways_by_class = dict(session.execute(text(
        "SELECT road_class, count(*) FROM (SELECT DISTINCT road_class, ref, name, ST_StartPoint(geom) FROM "
        "road_segments WHERE tenant_key = 'he') s GROUP BY 1")).all())
    assert set(ways_by_class) == set(expected) == {"autobahn", "bund", "land", "kreis", "gemeinde"}
    found = segments(session)
    assert all(row[2] is True and row[3] is False for row in found.values())
    # BEZ "L3262" is stored as OSM and the Ortsdurchfahrten write it: "L 3262"
    assert session.execute(text("SELECT array_agg(DISTINCT ref ORDER BY ref) FROM road_segments WHERE tenant_key = "
                                "'he' AND road_class = 'land'")).scalar() == sorted(
        {f["properties"]["ref"] for f in in_use if prefix(f["properties"]["ref"]) == "L"})
    assert session.execute(text("SELECT count(*) FROM road_segments WHERE tenant_key = 'he' AND road_class = "
                                "'gemeinde' AND ref IS NOT NULL")).scalar() == 0
    # the lengths add up to the file's, in the tenant's CRS (the file is already EPSG:25832)
    total = session.execute(text("SELECT sum(ST_Length(geom)) FROM road_segments WHERE tenant_key = 'he'")).scalar()
    assert total == pytest.approx(float(shapely.length(to_25832(in_use)).sum()), abs=0.5)

    # the example route beside the L 3262 and the K 163 goes to the same authorities over the same lengths
    assert route_answer(session) == osm_answer == {"Hessen Mobil": 400.1, "Landkreis Offenbach": 260.3}


def test_atkis_without_wdm_mapping_stops_and_lists_the_values(he_data, session, atkis):
    path, _ways = atkis
    before = session.execute(text("SELECT count(*) FROM road_segments WHERE tenant_key = 'he'")).scalar()
    with pytest.raises(UnprocessableEntity) as exc:
        import_roads(session, "he", [path], mapping=load_mapping(map_option="ref=BEZ,class=WDM,name=NAM"))
    detail = exc.value.detail
    assert exc.value.type == "import-unmapped-classes"
    assert detail.startswith(f"{path}: values of the class column WDM that no road class is mapped to: '1307' (")
    assert all(f"'{code}' (" in detail for code in (1301, 1303, 1305, 1306, 1307)), detail
    assert "--class-map VALUE=CLASS (classes: autobahn, bund, land, kreis, gemeinde)" in detail
    assert "the road layer is left as it is" in detail
    assert session.execute(text("SELECT count(*) FROM road_segments WHERE tenant_key = 'he'")).scalar() == before


# --- a state's road information system ---------------------------------------------------------------------------

def test_road_information_system_with_a_ref_template_and_the_tenants_prefixes(he_data, session, sis):
    path, ways = sis
    mapping = load_mapping(map_option="ref={KLASSE} {STRNR}{ZUSATZ},class=KLASSE,name=NAME")
    summary = import_roads(session, "he", [path], mapping=mapping)
    assert summary["counts"]["ways"] == len(ways)
    assert summary["skipped"]["total"] == 0
    refs = dict(session.execute(text(
        "SELECT ref, string_agg(DISTINCT road_class || '/' || class_source || '/' || class_ref, ',') "
        "FROM road_segments WHERE tenant_key = 'he' GROUP BY 1")).all())
    # the refs are written as OSM writes them, the class comes from KLASSE by the tenant's prefixes
    assert refs == {f["properties"]["ref"]: f"{CLASS_OF_WDM[WDM[prefix(f['properties']['ref'])]]}/attribute/"
                                            f"{f['properties']['ref']}" for f in ways}
    assert {"A 5", "A 3", "L 3262", "K 163"} <= set(refs)
    # the shipped example mapping says the same
    again = import_roads(session, "he", [path], mapping=load_mapping(SIS_MAPPING))
    assert again["counts"]["segments"] == summary["counts"]["segments"]


def test_class_codes_need_a_class_map_or_a_default(he_data, session, sis, tmp_path):
    path, ways = sis
    meta, _fids, wkb, values = pyogrio.raw.read(path)
    klasse = ["BAB" if k == "A" else k for k in values[0]]
    coded = write(tmp_path / "coded.gpkg", shapely.from_wkb(wkb), {"KLASSE": klasse, "STRNR": list(values[1]),
                                                                   "NAME": list(values[3])})
    n_a = sum(1 for k in klasse if k == "BAB")
    with pytest.raises(UnprocessableEntity) as exc:
        import_roads(session, "he", [coded], mapping=load_mapping(map_option="ref=STRNR,class=KLASSE"))
    assert f"that no road class is mapped to: 'BAB' ({n_a} features);" in exc.value.detail
    done = import_roads(session, "he", [coded], mapping=load_mapping(map_option="ref=STRNR,class=KLASSE",
                                                                      class_map="BAB=motorway"))
    assert done["counts"]["ways"] == len(ways)
    assert session.execute(text("SELECT count(DISTINCT ref) FROM road_segments WHERE tenant_key = 'he' AND "
                                "road_class = 'autobahn'")).scalar() == len(
        {f["properties"]["ref"] for f in ways if prefix(f["properties"]["ref"]) == "A"})
    # '*' gives every value nothing else maps a class
    fallback = import_roads(session, "he", [coded], mapping=load_mapping(map_option="class=KLASSE",
                                                                         class_map="*=gemeinde"))
    assert fallback["counts"]["segments_by_class"]["gemeinde"] == sum(
        n for c, n in done["counts"]["segments_by_class"].items() if c == "autobahn")


def test_without_a_class_column_the_ref_decides_by_the_rules(he_data, session, atkis):
    path, ways = atkis
    summary = import_roads(session, "he", [path], mapping=load_mapping(map_option="ref=BEZ,name=NAM",
                                                                        skip=["ZUS=4000"]))
    by_source = summary["counts"]["segments_by_class_source"]
    assert set(by_source) == {"ref", "default"}
    assert session.execute(text("SELECT count(*) FROM road_segments WHERE tenant_key = 'he' AND class_source = 'ref' "
                                "AND road_class = 'land' AND ref LIKE 'L%'")).scalar() > 0


# --- bad mappings and the command line ---------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"map_option": "ref=STRNR,klasse=KLASSE"}, "road mapping: --map: unknown target 'klasse'; targets: ref, class, "
                                                "name"),
    ({"map_option": "ref"}, "road mapping: --map 'ref': write KEY=VALUE pairs separated by commas, e.g. "
                            "ref=STRNR,class=KLASSE,name=NAME"),
    ({"map_option": "class=KLASSE", "class_map": "A=autobahn,B=federal_road"},
     "unknown road class 'federal_road'; classes: autobahn, bund, land, kreis, gemeinde (or motorway, federal, "
     "state, district, municipal)"),
    ({"map_option": "ref=STRNR", "class_map": "A=autobahn"}, "a class map needs the column it maps: "
                                                             "--map class=COLUMN"),
    ({"skip": ["ZUS"]}, "--skip 'ZUS': write COLUMN=VALUE[,VALUE...], e.g. ZUS=2100,4000"),
    ({"map_option": "name={A} {B}"}, "must name a column (a template {A} {B} only for ref)"),
])
def test_bad_mappings_are_refused_with_what_to_write(kwargs, message):
    with pytest.raises(UnprocessableEntity) as exc:
        load_mapping(**kwargs)
    assert message in exc.value.detail, exc.value.detail
    assert exc.value.status == 422


def test_the_shipped_mappings_are_valid():
    for path in (ATKIS_MAPPING, SIS_MAPPING):
        with open(path, "rb") as fh:
            tomllib.load(fh)
        assert load_mapping(path).columns


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "breitband.cli", *map(str, args)], capture_output=True, text=True,
                          env=os.environ.copy(), cwd=PROJECT_ROOT, timeout=300)


@pytest.fixture(scope="module")
def hm_tenant(engine):
    """Tenant hm (Hessen's rules under another key), committed by the CLI and removed afterwards."""
    with open(DATA / "tenants" / "he.toml", "rb") as fh:
        raw = tomllib.load(fh)
    raw["key"] = "hm"
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tenants WHERE key = 'hm'"))
        conn.execute(text("INSERT INTO tenants (key, name, srid, rules) VALUES ('hm', 'Hessen (Mapping)', 25832, "
                          "CAST(:rules AS jsonb))"), {"rules": json.dumps(validate_rules(raw, "hm"))})
    yield "hm"
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tenants WHERE key = 'hm'"))


def test_cli_imports_with_map_and_refuses_unknown_columns_keeping_the_layer(hm_tenant, engine, sis, atkis):
    path, ways = sis
    ok = cli("import", "roads", "--tenant", "hm", "--json", "--map",
             "ref={KLASSE} {STRNR}{ZUSATZ},class=KLASSE,name=NAME", path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["counts"]["ways"] == len(ways)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM road_segments WHERE tenant_key = 'hm'")).scalar()
    assert before > 0

    cases = [
        (["--map", "ref=STRNUMMER,class=KLASSE", path],
         f"error: {path}: no column 'STRNUMMER' (named by the mapping for ref); the file has: KLASSE, STRNR, "
         "ZUSATZ, NAME"),
        (["--map", "ref=BEZ,class=WDM", "--skip", "ZUSTAND=4000", atkis[0]],
         f"error: {atkis[0]}: no column 'ZUSTAND' (named by the mapping's skip); the file has: OBJID, OBJART, BEZ, "
         "WDM, ZUS, NAM, FSZ"),
        (["--map", "ref=BEZ,class=WDM", atkis[0]], "values of the class column WDM that no road class is mapped to"),
        (["--map", "ref=BEZ,klasse=WDM", atkis[0]], "error: road mapping: --map: unknown target 'klasse'"),
        (["--mapping", PROJECT_ROOT / "nope.toml", atkis[0]], "error: road mapping: "),
    ]
    for args, expected in cases:
        proc = cli("import", "roads", "--tenant", "hm", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and expected in errors[0], (args, proc.stderr)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM road_segments WHERE tenant_key = 'hm'")).scalar() == before

    atkis_ok = cli("import", "roads", "--tenant", "hm", "--mapping", ATKIS_MAPPING, atkis[0])
    assert atkis_ok.returncode == 0, atkis_ok.stderr
    assert "Imported roads for tenant 'hm' from 1 file(s)" in atkis_ok.stdout
    assert "3 × ZUS=4000: skipped by the mapping" in atkis_ok.stdout
    assert "mapping: ref BEZ, class WDM, name NAM" in atkis_ok.stdout
    assert "--map" in cli("import", "roads", "--help").stdout
