"""Import of protected areas (water, nature, monument) per tenant: ``breitband import areas --tenant KEY --kind
water|nature|monument FILE [--body NAME]``.

Any GIS file GDAL reads, any CRS (a Shapefile of the state's Wasserschutzgebiete, a GeoPackage of
Naturschutzgebiete, OSM ``heritage`` polygons as GeoJSON). Polygons only. Optional attributes (case-insensitive):
``name`` (or ``bezeichnung``, ``gebietsname``, ``gen``), ``designation`` (or ``schutzzone``, ``zone``,
``kategorie``, ``heritage``, ``protect_class``), ``ref`` (or ``kennung``, ``wsg_id``, ``osm_id``), ``body`` (or
``behoerde``: the exact name of the participating body responsible). ``--body`` sets the body for every area without
one; an area without a body asks the body with the rule's role for the place (see ``permits.participation.service``).
An import replaces the tenant's areas of that kind in one transaction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from breitband import clock
from breitband.errors import UnprocessableEntity
from breitband.models import Organisation, OrgKind
from geo.importers.common import (
    Summary,
    bad_file,
    file_info,
    load_tenant,
    lock_layer,
    progress,
    read_vector,
    record_import,
    to_tenant_crs,
)
from permits.participation.models import ProtectedArea
from permits.participation.service import AREA_DE

_INSERT = text("""
    INSERT INTO protected_areas (tenant_key, kind, name, designation, ref, body_org_id, properties, geom, imported_at)
    VALUES (:tenant_key, :kind, :name, :designation, :ref, :body_org_id, CAST(:properties AS jsonb),
            ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_GeomFromEWKB(decode(:geom, 'hex'))), 3)), :imported_at)
""")
POLYGON_TYPES = (3, 6)


def _str(value: Any, limit: int) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    s = str(value).strip()
    return s[:limit] or None


def _body(session: Session, tenant_key: str, name: str) -> Organisation | None:
    return session.scalars(select(Organisation).where(
        Organisation.tenant_key == tenant_key, Organisation.kind == OrgKind.participating_body.value,
        Organisation.name == name)).first()


def import_areas(session: Session, tenant_key: str, kind: str, path: Path | str, *, body: str | None = None,
                 progress_bar: bool = False) -> dict[str, Any]:
    """Replace the tenant's protected areas of ``kind`` with the polygons of one file. Does not commit."""
    if kind not in AREA_DE:
        raise UnprocessableEntity(f"--kind {kind!r}: one of {', '.join(AREA_DE)}", field="kind")
    tenant, _rules = load_tenant(session, tenant_key)
    default_body = None
    if body:
        default_body = _body(session, tenant_key, body)
        if default_body is None:
            raise UnprocessableEntity(f"--body {body!r}: no participating body of that name in tenant "
                                      f"{tenant_key!r} (create it with `breitband org create --kind "
                                      "participating_body`)", type="unknown-body", field="body")
    path = Path(path)
    layer = f"areas:{kind}"
    summary = Summary(layer=layer, tenant=tenant_key)
    vector = read_vector(path)
    geoms = to_tenant_crs(vector, tenant.srid)
    types = shapely.get_type_id(geoms)
    name = vector.column("name", "bezeichnung", "gebietsname", "gen")
    designation = vector.column("designation", "schutzzone", "zone", "kategorie", "heritage", "protect_class")
    ref = vector.column("ref", "kennung", "wsg_id", "osm_id")
    body_col = vector.column("body", "behoerde")
    ewkb = shapely.to_wkb(shapely.set_srid(geoms, tenant.srid), hex=True, include_srid=True)
    now = clock.now()
    bodies: dict[str, Organisation | None] = {}
    rows = []
    for i in progress(range(len(vector)), desc=path.name, unit=" areas", enabled=progress_bar):
        if types[i] not in POLYGON_TYPES or shapely.is_empty(geoms[i]):
            summary.skip("not a polygon", file=path, feature=i)
            continue
        org = default_body
        body_name = _str(body_col[i], 300) if body_col is not None else None
        if body_name:
            if body_name not in bodies:
                bodies[body_name] = _body(session, tenant_key, body_name)
            if bodies[body_name] is None:
                summary.warnings.append(f"feature {i}: no participating body named {body_name!r}; the rule's role "
                                        "decides who is asked")
            org = bodies[body_name] or default_body
        label = (_str(name[i], 300) if name is not None else None) or f"{AREA_DE[kind]} {i + 1}"
        rows.append({"tenant_key": tenant_key, "kind": kind, "name": label,
                     "designation": _str(designation[i], 200) if designation is not None else None,
                     "ref": _str(ref[i], 100) if ref is not None else None,
                     "body_org_id": org.id if org else None, "properties": json.dumps({"source": path.name,
                                                                                       "feature": i}),
                     "geom": ewkb[i], "imported_at": now})
    if not rows:
        raise bad_file(path, "contains no polygons", "import-empty-file")
    lock_layer(session, tenant_key, layer)
    session.execute(delete(ProtectedArea).where(ProtectedArea.tenant_key == tenant_key, ProtectedArea.kind == kind))
    for start in range(0, len(rows), 500):
        session.execute(_INSERT, rows[start:start + 500])
    summary.counts = {"areas": len(rows), "with_body": sum(1 for r in rows if r["body_org_id"])}
    summary.files = [file_info(path)]
    result = summary.finish()
    record_import(session, tenant_key, layer, result)
    session.flush()
    return result
