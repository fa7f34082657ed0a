"""Import of Ortsdurchfahrt (OD) stretches: the part of a classified road through a built-up area, as fixed by the
authorities (it is not in OSM). Polygons (the OD area) or lines (the OD stretch of the road), any GIS file GDAL
reads, any CRS. Optional attributes: ``road_ref`` or ``ref`` (e.g. "L 3262"), ``gemeinde_ags`` or ``ags``
(8-digit AGS of the municipality), ``name``. An import replaces the tenant's OD layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from geo.importers.common import (
    Summary,
    file_info,
    load_tenant,
    lock_layer,
    progress,
    read_vector,
    record_import,
    to_tenant_crs,
)
from geo.models import Ortsdurchfahrt

LAYER = "ortsdurchfahrten"
POLYGON_TYPES = (3, 6)
LINE_TYPES = (1, 5)

_INSERT = text("""
    INSERT INTO ortsdurchfahrten (tenant_key, road_ref, gemeinde_ags, name, is_line, geom)
    VALUES (:tenant_key, :road_ref, :gemeinde_ags, :name, :is_line,
            CASE WHEN :is_line THEN ST_GeomFromEWKB(decode(:geom, 'hex'))
                 ELSE ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_GeomFromEWKB(decode(:geom, 'hex'))), 3)) END)
""")


def _str(value: Any, limit: int) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    s = str(value).strip()
    return s[:limit] or None


def import_ortsdurchfahrten(session: Session, tenant_key: str, path: Path | str, *,
                            progress_bar: bool = False) -> dict[str, Any]:
    """Replace the tenant's Ortsdurchfahrt layer with the features of one file. Does not commit."""
    tenant, _rules = load_tenant(session, tenant_key)
    path = Path(path)
    summary = Summary(layer=LAYER, tenant=tenant_key)
    layer = read_vector(path)
    geoms = to_tenant_crs(layer, tenant.srid)
    types = shapely.get_type_id(geoms)
    ref = layer.column("road_ref", "ref")
    ags = layer.column("gemeinde_ags", "ags")
    name = layer.column("name")
    rows = []
    ewkb = shapely.to_wkb(shapely.set_srid(geoms, tenant.srid), hex=True, include_srid=True)
    for i in progress(range(len(layer)), desc=path.name, unit=" features", enabled=progress_bar):
        if types[i] not in POLYGON_TYPES + LINE_TYPES:
            what = {-1: "no geometry", 0: "Point", 4: "MultiPoint", 7: "GeometryCollection"}.get(int(types[i]))
            summary.skip(f"neither a polygon nor a line ({what})", file=path, feature=i)
            continue
        if shapely.is_empty(geoms[i]):
            summary.skip("empty geometry", file=path, feature=i)
            continue
        code = _str(ags[i], 8) if ags is not None else None
        rows.append({"tenant_key": tenant_key, "road_ref": _str(ref[i], 100) if ref is not None else None,
                     "gemeinde_ags": code, "name": _str(name[i], 300) if name is not None else None,
                     "is_line": bool(types[i] in LINE_TYPES), "geom": ewkb[i]})
    lock_layer(session, tenant_key, LAYER)
    session.execute(delete(Ortsdurchfahrt).where(Ortsdurchfahrt.tenant_key == tenant_key))
    for start in range(0, len(rows), 500):
        session.execute(_INSERT, rows[start:start + 500])
    lines = sum(1 for r in rows if r["is_line"])
    summary.counts = {"ortsdurchfahrten": len(rows), "lines": lines, "polygons": len(rows) - lines}
    summary.files = [file_info(path)]
    result = summary.finish()
    record_import(session, tenant_key, LAYER, result)
    session.flush()
    return result
