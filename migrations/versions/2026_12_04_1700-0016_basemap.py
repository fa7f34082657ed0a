"""Base map from the tenant's OpenStreetMap extracts (issue 16): areas, lines and points, and label points of the
administrative areas.

- basemap_areas: land use and land cover, water areas, buildings (``kind`` landuse | water | building, ``class``
  the OSM value that decides the colour: forest, residential, farmland, ...; ``area_m2`` decides from which zoom a
  polygon is drawn).
- basemap_lines: waterways, railways and the road labels (``kind`` water | railway | road_label); the road labels
  are the named or numbered roads of the tenant's road network merged into long lines, so that a street name or a
  road number has room along its line.
- basemap_points: place names (city, town, village, suburb, ...) and house numbers (``kind`` place | housenumber).
- admin_areas.label_point: a point inside every Land, Kreis and Gemeinde (ST_PointOnSurface, a generated column),
  where its name is written on the map.

Geometries in the tenant's metric CRS like the road network; a plain GiST index on ``geom`` (the tile queries filter
by ``&&`` and then by ``tenant_key``), as ``road_segments`` has.

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None

TABLES = ("basemap_areas", "basemap_lines", "basemap_points")


def _table(name: str, geometry: str, *extra: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_key", sa.String(16), sa.ForeignKey("tenants.key", ondelete="CASCADE"), nullable=False),
        sa.Column("osm_id", sa.BigInteger, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("class", sa.String(50), nullable=True),
        sa.Column("name", sa.String(300), nullable=True),
        *extra,
        sa.Column("geom", Geometry(geometry, srid=-1, spatial_index=False), nullable=False),
    )
    op.execute(f"CREATE INDEX ix_{name}_geom ON {name} USING gist (geom)")
    op.create_index(f"ix_{name}_tenant", name, ["tenant_key", "kind"])


def upgrade() -> None:
    _table("basemap_areas", "MULTIPOLYGON", sa.Column("area_m2", sa.Float, nullable=False))
    _table("basemap_lines", "LINESTRING", sa.Column("ref", sa.String(100), nullable=True),
           sa.Column("length_m", sa.Float, nullable=False))
    _table("basemap_points", "POINT", sa.Column("housenumber", sa.String(50), nullable=True),
           sa.Column("population", sa.Integer, nullable=True))
    op.execute("ALTER TABLE admin_areas ADD COLUMN label_point geometry(Point) "
               "GENERATED ALWAYS AS (ST_PointOnSurface(geom)) STORED")


def downgrade() -> None:
    op.execute("ALTER TABLE admin_areas DROP COLUMN label_point")
    for name in reversed(TABLES):
        op.drop_table(name)
