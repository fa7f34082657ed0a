"""Import of administrative boundaries (BKG VG250 / VG5000) and the authority directory derived from them.

Attributes read (names as in the BKG products, case-insensitive):
- ``ADE`` decides the level: 2 Land, 4 Kreis, 6 Gemeinde (other ADE values are skipped). Without ADE the length of
  the AGS decides (2/5/8 digits).
- ``GF`` (Geofaktor) keeps land areas only: VG250 codes 3/4 ("Land ohne/mit Struktur"), VG5000 code 9 (land; its
  code 8 marks the coastal waters and the Bodensee). Water parts are skipped with their reason.
- ``AGS`` (required), ``ARS`` or ``RS`` (12-digit regional key), ``GEN`` (name, required), ``BEZ`` (type),
  ``EWZ`` (population).
Features whose AGS does not start with the tenant's ``state_key`` are skipped.

Population: EWZ where present and positive; otherwise the destatis table given as ``population`` (a JSON object
keyed by the 12-digit RS, each value an object with ``population`` or a bare number; German number formats such
as "37.668" or "1.234,5" are understood). A Kreis or Land without EWZ gets the sum of its Gemeinden in that table.

Kreisfreie Städte are recognised from the Kreis layer's BEZ ("Kreisfreie Stadt"; "Stadtkreis" in
Baden-Württemberg): the Kreis row and its Gemeinde row get ``kreisfrei = true``.

Gemeindefreie Gebiete (BEZ "Gemeindefreies Gebiet", e.g. the Gutsbezirk Reinhardswald in Hessen) are imported as
Gemeinde-level admin areas without population, so that every point of the state lies in an area; they get no
authority (nobody is a Gemeinde there: the roads in them belong to their owner, usually the state forest).

Authorities (organisations of kind road_authority plus their Authority row), created or updated, never deleted:
- one per Gemeinde: kind "gemeinde", key = 8-digit AGS, named "{BEZ} {GEN}" ("Stadt Neu-Isenburg"); a kreisfreie
  Stadt is named "Stadt {GEN}" and is the one authority for its Gemeinde and its Kreis roads;
- one per Kreis that is not kreisfrei: kind "kreis", key = 5-digit AGS, named "{BEZ} {GEN}" ("Landkreis
  Offenbach"), or just "{GEN}" where the name already says Kreis ("Hochtaunuskreis", "Rhein-Kreis Neuss");
- one per distinct agency name in the rules' ``[agencies]``: its kind is the lowest class it serves in the order
  autobahn, bund, land, kreis, gemeinde (Hessen Mobil serving bund and land → "land"), key = the state key (none
  for the Autobahn GmbH, a federal company); plus the ``[kreis_agency]`` name if it is not one of them (kind "other").
Existing ones are found by (tenant, kind, key); agencies, and authorities met for the first time, by the exact
organisation name in the tenant, so that organisations created before the import (with users) are reused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from geo import search
from geo.importers.authorities import sync_authorities
from geo.importers.common import (
    Area,
    Summary,
    bad_file,
    check_exists,
    file_info,
    load_tenant,
    lock_layer,
    progress,
    read_vector,
    record_import,
    to_tenant_crs,
)
from geo.models import AdminArea
from geo.rules import TenantRules

LAYER = "boundaries"
ADE_LEVEL = {2: "land", 4: "kreis", 6: "gemeinde"}
ADE_NAMES = {1: "Staat", 3: "Regierungsbezirk", 5: "Verwaltungsgemeinschaft"}
AGS_LEVEL = {2: "land", 5: "kreis", 8: "gemeinde"}
LAND_GF = {3, 4, 9}
KREISFREI_BEZ = {"kreisfreie stadt", "stadtkreis"}


def import_boundaries(session: Session, tenant_key: str, paths: Iterable[Path | str],
                      population: Path | str | None = None, *, progress_bar: bool = False) -> dict[str, Any]:
    """Replace the tenant's boundaries layer with the given VG250/VG5000 files (read together) and create or
    update the authorities. Does not commit. Returns the summary (also stored as the LayerImport row)."""
    tenant, rules = load_tenant(session, tenant_key)
    paths = [Path(p) for p in paths]
    if not paths:
        raise bad_file("boundaries", "no files given")
    summary = Summary(layer=LAYER, tenant=tenant_key)
    table = load_population(Path(population)) if population is not None else None

    areas: dict[tuple[str, str], Area] = {}
    for path in paths:
        layer = read_vector(path, required=(("AGS",), ("GEN",)))
        geoms = to_tenant_crs(layer, tenant.srid)
        _collect(layer, geoms, rules, areas, summary, progress_bar)
    if not areas:
        raise bad_file(", ".join(str(p) for p in paths),
                       f"no feature of the state {rules.state_key} ({tenant.name}) in the file(s)",
                       "import-nothing-to-import")
    _mark_kreisfrei(areas, summary)
    _fill_population(areas, table, summary)

    lock_layer(session, tenant_key, LAYER)
    session.execute(delete(AdminArea).where(AdminArea.tenant_key == tenant_key))
    _insert_areas(session, tenant_key, tenant.srid, list(areas.values()), progress_bar)
    authorities = sync_authorities(session, tenant_key, tenant.name, rules, list(areas.values()), summary)

    levels = [a.level for a in areas.values()]
    summary.counts = {
        "land": levels.count("land"),
        "kreis": levels.count("kreis"),
        "gemeinde": levels.count("gemeinde"),
        "kreisfrei": sum(1 for a in areas.values() if a.kreisfrei and a.level == "kreis"),
        "gemeindefrei": sum(1 for a in areas.values() if a.level == "gemeinde" and a.gemeindefrei),
        "population_from": _population_sources(areas.values()),
        "authorities": authorities,
    }
    summary.files = [file_info(p) for p in paths] + ([file_info(Path(population))] if population else [])
    result = summary.finish()
    record_import(session, tenant_key, LAYER, result)
    session.flush()
    # Fresh statistics: without them the planner walks all areas instead of the spatial index (50x slower).
    session.execute(text("ANALYZE admin_areas"))
    search.rebuild_places(session, tenant_key)     # Gemeinden, Kreise (and the streets' Gemeinden) of the search
    return result


# --- reading --------------------------------------------------------------------------------------------------

def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    s = str(value).strip()
    return s or None


def _int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_number(value)
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else int(round(f))


def _collect(layer, geoms, rules: TenantRules, areas: dict, summary: Summary, progress_bar: bool) -> None:
    n = len(layer)
    ade = layer.column("ADE")
    gf = layer.column("GF")
    ags_col = layer.column("AGS")
    ars_col = layer.column("ARS", "RS")
    gen = layer.column("GEN")
    bez = layer.column("BEZ")
    ewz = layer.column("EWZ")
    poly = np.isin(shapely.get_type_id(geoms), (3, 6))  # Polygon, MultiPolygon
    for i in progress(range(n), desc=layer.path.name, unit="features", enabled=progress_bar):
        ags = _text(ags_col[i])
        name = _text(gen[i])
        ident = " ".join(x for x in (ags, name) if x)
        gf_i = _int(gf[i]) if gf is not None else None
        if gf is not None and gf_i not in LAND_GF:
            summary.skip(f"GF={gf_i}: water area, not land", file=layer.path, feature=i, ident=ident)
            continue
        if not ags or not ags.isdigit():
            summary.skip("AGS missing or not numeric", file=layer.path, feature=i, ident=ident)
            continue
        ade_i = _int(ade[i]) if ade is not None else None
        if ade_i is not None:
            level = ADE_LEVEL.get(ade_i)
            if level is None:
                what = ADE_NAMES.get(ade_i, "unknown level")
                summary.skip(f"ADE={ade_i} ({what}) is not a level that is imported", file=layer.path, feature=i,
                             ident=ident)
                continue
        else:
            level = AGS_LEVEL.get(len(ags))
            if level is None:
                summary.skip("no ADE, and the AGS has neither 2, 5 nor 8 digits", file=layer.path, feature=i,
                             ident=ident)
                continue
        ags = ags[: {"land": 2, "kreis": 5, "gemeinde": 8}[level]]
        if not ags.startswith(rules.state_key):
            summary.skip(f"outside the state (AGS does not start with {rules.state_key})", file=layer.path,
                         feature=i, ident=ident)
            continue
        if not name:
            summary.skip("no name (GEN)", file=layer.path, feature=i, ident=ident)
            continue
        if not poly[i]:
            kind = "no geometry" if geoms[i] is None else shapely.get_type_id(geoms[i])
            summary.skip(f"not a polygon ({_geom_type_name(kind)})", file=layer.path, feature=i, ident=ident)
            continue
        ars = _text(ars_col[i]) if ars_col is not None else None
        area = Area(level=level, ags=ags, ars=ars if ars and len(ars) == 12 else None, name=name,
                    bez=_text(bez[i]) if bez is not None else None,
                    ewz=_int(ewz[i]) if ewz is not None else None, geom=geoms[i], file=layer.path.name, feature=i)
        key = (level, ags)
        if key in areas:  # several parts of one area (e.g. exclaves as separate features): one row
            prev = areas[key]
            prev.geom = shapely.union_all([prev.geom, area.geom])
            summary.counts["merged_parts"] = summary.counts.get("merged_parts", 0) + 1
        else:
            areas[key] = area


def _geom_type_name(type_id: Any) -> str:
    names = {0: "Point", 1: "LineString", 2: "LinearRing", 3: "Polygon", 4: "MultiPoint", 5: "MultiLineString",
             6: "MultiPolygon", 7: "GeometryCollection"}
    return names.get(type_id, str(type_id))


def _mark_kreisfrei(areas: dict[tuple[str, str], Area], summary: Summary) -> None:
    kreise = [a for a in areas.values() if a.level == "kreis"]
    if not kreise:
        if any(a.level == "gemeinde" for a in areas.values()):
            summary.warnings.append("no Kreis layer in this import: kreisfreie Städte cannot be recognised "
                                    "(import the Kreise together with the Gemeinden)")
        return
    kreisfrei = {a.ags for a in kreise if (a.bez or "").strip().lower() in KREISFREI_BEZ}
    for a in areas.values():
        if a.level == "kreis" and a.ags in kreisfrei:
            a.kreisfrei = True
        elif a.level == "gemeinde" and a.ags[:5] in kreisfrei:
            a.kreisfrei = True


# --- population -----------------------------------------------------------------------------------------------

_GERMAN_THOUSANDS = re.compile(r"^\d{1,3}(\.\d{3})+(,\d+)?$")


def parse_number(value: Any) -> int | None:
    """Population as an int from 37668, 37668.0, "37668", "37.668" (German thousands), "37668,0" or "1.234,5"."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else int(round(value))
    s = str(value).strip().replace("\u00a0", "").replace(" ", "")
    if not s:
        return None
    if _GERMAN_THOUSANDS.match(s):
        s = s.replace(".", "").replace(",", ".")
    elif "," in s:
        s = s.replace(".", "").replace(",", ".")
    try:
        return int(round(float(s)))
    except ValueError:
        return None


def load_population(path: Path) -> dict[str, int]:
    """The destatis Gemeindeverzeichnis as {12-digit RS: population}."""
    check_exists(path)
    try:
        with open(path, "rb") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_file(path, f"not a JSON file: {exc}", "import-bad-population") from None
    if not isinstance(data, dict):
        raise bad_file(path, "must be a JSON object keyed by the 12-digit regional key (RS)",
                       "import-bad-population")
    table: dict[str, int] = {}
    for key, value in data.items():
        rs = str(key).strip()
        if isinstance(value, dict):
            value = next((value[k] for k in ("population", "EWZ", "ewz", "einwohner") if k in value), None)
        pop = parse_number(value)
        if len(rs) == 12 and rs.isdigit() and pop is not None:
            table[rs] = pop
    if not table:
        raise bad_file(path, "has no entries of the form {\"<12-digit RS>\": {\"population\": <number>}}",
                       "import-bad-population")
    return table


def _fill_population(areas: dict[tuple[str, str], Area], table: dict[str, int] | None, summary: Summary) -> None:
    by_ags = {rs[:5] + rs[9:]: pop for rs, pop in table.items()} if table else {}
    missing = []
    for a in areas.values():
        if a.level == "gemeinde" and a.gemeindefrei:
            continue  # no inhabitants to speak of and no municipality: no population
        if a.ewz is not None and a.ewz > 0:
            a.population, a.population_source = a.ewz, "EWZ"
        elif table:
            if a.level == "gemeinde":
                pop = table.get(a.ars) if a.ars else None
                pop = pop if pop is not None else by_ags.get(a.ags)
            else:
                n = len(a.ags)
                parts = [p for rs, p in table.items() if rs[:n] == a.ags]
                pop = sum(parts) if parts else None
            if pop is not None:
                a.population, a.population_source = pop, "destatis"
        if a.population is None and a.level == "gemeinde":
            missing.append(f"{a.ags} {a.name}")
    if missing:
        hint = "" if table else " (give the destatis table with --population)"
        summary.warnings.append(f"{len(missing)} Gemeinde(n) without population{hint}: "
                                + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))


def _population_sources(areas: Iterable[Area]) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in areas:
        k = a.population_source or "none"
        out[k] = out.get(k, 0) + 1
    return out


# --- writing --------------------------------------------------------------------------------------------------

_INSERT_AREA = text("""
    INSERT INTO admin_areas (tenant_key, level, ags, ars, name, bez, population, kreisfrei, geom)
    VALUES (:tenant_key, :level, :ags, :ars, :name, :bez, :population, :kreisfrei,
            ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_GeomFromEWKB(decode(:geom, 'hex'))), 3)))
""")


def _insert_areas(session: Session, tenant_key: str, srid: int, areas: list[Area], progress_bar: bool) -> None:
    geoms = shapely.set_srid(np.array([a.geom for a in areas], dtype=object), srid)
    wkb = shapely.to_wkb(geoms, hex=True, include_srid=True)
    rows = [{"tenant_key": tenant_key, "level": a.level, "ags": a.ags, "ars": a.ars, "name": a.name[:200],
             "bez": a.bez[:100] if a.bez else None, "population": a.population, "kreisfrei": a.kreisfrei,
             "geom": g} for a, g in zip(areas, wkb)]
    for start in progress(range(0, len(rows), 200), desc="admin areas", unit="batches", enabled=progress_bar):
        session.execute(_INSERT_AREA, rows[start:start + 200])
