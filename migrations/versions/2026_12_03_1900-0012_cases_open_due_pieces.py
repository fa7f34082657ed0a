"""An authority's open cases by decision date: partial index on cases (authority_org_id, decision_due, id), and
each case's number of pieces per kind.

For the OGC API items filtered by CQL2 (permits/gis/cql.py), e.g. an authority's open cases due before a day,
``status IN ('received','in_review') AND decision_due < DATE('2027-03-01')`` sorted by ``decision_due``, and their
numberMatched. Without it the first page walked the authority's cases by decision date through the table, most of
them closed long ago (55,000 rows read for 101 at 200,000 applications), and the count read every open case's row.
With it the page is an ordered index-only range scan that stops after the page, and the count of the cases reads
index entries only: status, tenant_key and application_id are carried in the index (INCLUDE), so the filter and the
scope need no table row. The index is partial on the open statuses, like the inbox's (0005, 0007); the translator
writes a status compared with the queryable's enum values into the SQL, so that the planner can prove the predicate
(a bound parameter of a generic plan could not). Figures: docs/benchmarks.md (bench/ogc_filter.py).

The count of the matching features (numberMatched) of the ``case-parts`` collections is a count of pieces, which
lie inside ``cases.part`` (JSON with each piece's geometry): counting them meant reading and unpacking the part of
every matching case (0.5–1 s for a large authority's open cases at 200,000 applications). Three stored generated
columns keep each case's number of pieces per kind (``line_pieces``, ``point_pieces``, ``area_pieces``: a piece with
a geometry whose ``feature_type`` is that kind, lines when it has none, as ``permits/gis/features.py`` reads them);
PostgreSQL keeps them true whenever ``part`` changes, and the index carries them, so that a filter on the cases
alone is counted from index entries.

On a large table create the index CONCURRENTLY by hand after adding the columns (the name matches; IF NOT EXISTS
skips it). Adding the columns rewrites the table.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

OPEN = "status IN ('received', 'incomplete', 'in_review')"


# The pieces of one kind with a geometry (IMMUTABLE jsonpath functions only, as generated columns need)
PIECES = ("jsonb_array_length(jsonb_path_query_array(part, '$.pieces[*] ? (exists(@.geometry) && ({kind}))'))")
KINDS = {
    "line_pieces": '!exists(@.feature_type) || @.feature_type == null || @.feature_type == "line"',
    "point_pieces": '@.feature_type == "point"',
    "area_pieces": '@.feature_type == "area"',
}


def upgrade() -> None:
    # one statement: one rewrite of the table
    op.execute("ALTER TABLE cases " + ", ".join(f"ADD COLUMN {name} integer GENERATED ALWAYS AS "
                                                f"({PIECES.format(kind=kind)}) STORED" for name, kind in KINDS.items()))
    op.execute("CREATE INDEX IF NOT EXISTS ix_cases_open_due ON cases (authority_org_id, decision_due, id) "
               f"INCLUDE (status, tenant_key, application_id, {', '.join(KINDS)}) WHERE {OPEN}")


def downgrade() -> None:
    op.execute("DROP INDEX ix_cases_open_due")
    op.execute("ALTER TABLE cases " + ", ".join(f"DROP COLUMN {name}" for name in KINDS))
