"""Base map (issue 16): import from the OSM extracts, its tile layers, the glyphs, through the public surface."""

from __future__ import annotations

import json

from sqlalchemy import text

from geo.importers import import_basemap
from tests.support.hessen import HE_ROAD_FILES


def test_explore(he_basemap, session):
    s = session.execute(text("SELECT summary FROM layer_imports WHERE tenant_key='he' AND layer='basemap'")).scalar()
    print(json.dumps(s["counts"], indent=1), s["skipped"]["by_reason"], s["warnings"], s["seconds"])
