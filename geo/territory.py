"""The tenant's territory (its Land polygon, else the union of its Gemeinden), cached per process and reloaded
when the boundaries layer is re-imported."""

from __future__ import annotations

import threading
from typing import Any

import shapely
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from breitband.errors import Conflict
from breitband.models import Tenant

_cache: dict[str, tuple[Any, Any]] = {}
_lock = threading.Lock()


def territory(session: Session, tenant_key: str, stamp: Any = None):
    """Prepared shapely geometry of the tenant's territory in its metric CRS, kept per ``stamp``
    (``tenants.data_changed_at``, moved by every import; read here unless the caller has it already)."""
    if stamp is None:
        stamp = session.scalar(select(Tenant.data_changed_at).where(Tenant.key == tenant_key))
    cached = _cache.get(tenant_key)
    if cached is not None and cached[0] == stamp and stamp is not None:
        return cached[1]
    wkb = session.execute(text(
        "SELECT ST_AsBinary(COALESCE("
        " (SELECT ST_Union(geom) FROM admin_areas WHERE tenant_key = :t AND level = 'land'),"
        " (SELECT ST_Union(geom) FROM admin_areas WHERE tenant_key = :t AND level = 'gemeinde')))"),
        {"t": tenant_key}).scalar()
    if wkb is None:
        raise Conflict(f"Tenant {tenant_key!r} has no boundaries yet: run `breitband import boundaries`",
                       type="no-boundaries")
    geom = shapely.from_wkb(bytes(wkb))
    shapely.prepare(geom)
    with _lock:
        _cache[tenant_key] = (stamp, geom)
    return geom
