"""Search over the map (issue 16, point 5): pg_trgm, the place index and trigram indexes on references.

- pg_trgm: similarity and word_similarity with GIN indexes (``gin_trgm_ops``), for typing errors and partial words.
- search_places: one row per Gemeinde, Kreis, street (name and Gemeinde) and road number of a tenant, with its
  extent in EPSG:4326 (what the map fits to). Rebuilt from admin_areas and road_segments after each import of
  boundaries or roads (geo/search.py ``rebuild_places``); a street is the group of a name's segments in one
  Gemeinde, so a query reads a few hundred rows instead of grouping a million segments.
  ``search`` is the lower-case text the indexes hold (a street with its Gemeinde, so "Frankfurter Straße
  Neu-Isenburg" finds it): a btree (text_pattern_ops) for what was typed as the start, the GIN trigram index for
  the rest; ``key`` the AGS or the road number without spaces ("L3262") for exact lookups.
- trigram indexes on applications.reference and operator_reference: a reference is found from any part of it
  ("000123", "2026-0001").

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

from geo.search import rebuild_places

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "search_places",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_key", sa.String(16), sa.ForeignKey("tenants.key", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),           # gemeinde | kreis | street | road
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("context", sa.String(300), nullable=True),        # street: its Gemeinde; Gemeinde: its Kreis
        sa.Column("key", sa.String(100), nullable=True),            # AGS, or the road number without spaces
        sa.Column("search", sa.Text, nullable=False),
        sa.Column("weight", sa.Integer, nullable=False, server_default="0"),  # population, or segment count
        sa.Column("west", sa.Float, nullable=False),
        sa.Column("south", sa.Float, nullable=False),
        sa.Column("east", sa.Float, nullable=False),
        sa.Column("north", sa.Float, nullable=False),
        sa.CheckConstraint("kind IN ('gemeinde', 'kreis', 'street', 'road')", name="search_place_kind"),
    )
    # fastupdate off on every trigram index: with it, new entries wait in a pending list that each search reads
    # through until VACUUM merges it (measured: 39 ms instead of 0.1 ms for a reference after 20,000 inserts)
    op.execute("CREATE INDEX ix_search_places_trgm ON search_places USING gin (search gin_trgm_ops) "
               "WITH (fastupdate = off)")
    op.create_index("ix_search_places_key", "search_places", ["tenant_key", "kind", "key"])
    # what was typed as the start of a name (or of a street with its Gemeinde): a btree range scan, before any
    # fuzzy matching
    op.execute("CREATE INDEX ix_search_places_prefix ON search_places (tenant_key, search text_pattern_ops)")
    op.execute("CREATE INDEX ix_applications_reference_trgm ON applications USING gin (reference gin_trgm_ops) "
               "WITH (fastupdate = off)")
    op.execute("CREATE INDEX ix_applications_operator_reference_trgm ON applications "
               "USING gin (operator_reference gin_trgm_ops) WITH (fastupdate = off)")
    # the places of the tenants whose layers are already imported (later imports rebuild them themselves)
    session = Session(bind=op.get_bind())
    for (key,) in session.execute(sa.text("SELECT key FROM tenants ORDER BY key")).all():
        rebuild_places(session, key)
    session.flush()


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_applications_operator_reference_trgm")
    op.execute("DROP INDEX IF EXISTS ix_applications_reference_trgm")
    op.drop_table("search_places")
    # pg_trgm stays: other objects may have come to depend on it
