"""Geo: administrative areas, road segments, Ortsdurchfahrten, authorities, layer imports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql as pg

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _tenant():
    return sa.Column("tenant_key", sa.String(16), sa.ForeignKey("tenants.key", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "admin_areas",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        _tenant(),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("ags", sa.String(8), nullable=False),
        sa.Column("ars", sa.String(12)),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("bez", sa.String(100)),
        sa.Column("population", sa.Integer),
        sa.Column("kreisfrei", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=-1, spatial_index=False), nullable=False),
        sa.UniqueConstraint("tenant_key", "level", "ags", name="admin_area_key"),
        sa.CheckConstraint("level IN ('land', 'kreis', 'gemeinde')", name="admin_area_level"),
    )
    op.execute("CREATE INDEX ix_admin_areas_geom ON admin_areas USING gist (tenant_key, level, geom)")

    op.create_table(
        "road_segments",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _tenant(),
        sa.Column("osm_id", sa.BigInteger),
        sa.Column("ref", sa.String(100)),
        sa.Column("name", sa.String(300)),
        sa.Column("highway", sa.String(50)),
        sa.Column("access", sa.String(50)),
        sa.Column("road_class", sa.String(16), nullable=False),
        sa.Column("class_source", sa.String(16), nullable=False),
        sa.Column("class_ref", sa.String(100)),
        sa.Column("is_private", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("is_path", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("geom", Geometry("LINESTRING", srid=-1, spatial_index=False), nullable=False),
        sa.CheckConstraint("road_class IN ('autobahn', 'bund', 'land', 'kreis', 'gemeinde')", name="road_class"),
    )
    # A plain geometry GiST is ~3x faster per lookup than (tenant_key, geom) with btree_gist at 1M rows; the
    # resolution only uses the bounding-box operator && on it (which ignores SRIDs) and filters tenant_key on the row.
    op.execute("CREATE INDEX ix_road_segments_geom ON road_segments USING gist (geom)")
    op.create_index("ix_road_segments_tenant", "road_segments", ["tenant_key"])
    op.create_index("ix_road_segments_osm_id", "road_segments", ["tenant_key", "osm_id"])

    op.create_table(
        "ortsdurchfahrten",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        _tenant(),
        sa.Column("road_ref", sa.String(100)),
        sa.Column("gemeinde_ags", sa.String(8)),
        sa.Column("name", sa.String(300)),
        sa.Column("is_line", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("geom", Geometry("GEOMETRY", srid=-1, spatial_index=False), nullable=False),
    )
    op.execute("CREATE INDEX ix_ortsdurchfahrten_geom ON ortsdurchfahrten USING gist (tenant_key, geom)")

    op.create_table(
        "authorities",
        sa.Column("organisation_id", pg.UUID(as_uuid=True), sa.ForeignKey("organisations.id", ondelete="CASCADE"),
                  primary_key=True),
        _tenant(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(8)),
        sa.Column("jurisdiction", sa.String(500), nullable=False),
        sa.CheckConstraint("kind IN ('autobahn', 'bund', 'land', 'kreis', 'gemeinde', 'other')",
                           name="authority_kind"),
    )
    op.create_index("ux_authorities_kind_key", "authorities", ["tenant_key", "kind", "key"], unique=True,
                    postgresql_where=sa.text("key IS NOT NULL"))

    op.create_table(
        "layer_imports",
        sa.Column("tenant_key", sa.String(16), sa.ForeignKey("tenants.key", ondelete="CASCADE"), primary_key=True),
        sa.Column("layer", sa.String(32), primary_key=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("sources", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("summary", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )


def downgrade() -> None:
    for table in ("layer_imports", "authorities", "ortsdurchfahrten", "road_segments", "admin_areas"):
        op.drop_table(table)
