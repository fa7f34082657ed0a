"""An authority's open cases by decision date: partial index on cases (authority_org_id, decision_due, id).

For the OGC API items filtered by CQL2 (permits/gis/cql.py), e.g. an authority's open cases due before a day,
``status IN ('received','in_review') AND decision_due < DATE('2027-03-01')`` sorted by ``decision_due``, and their
numberMatched. Without it the first page walked the authority's cases by decision date through the table, most of
them closed long ago (55,000 rows read for 101 at 200,000 applications), and the count read every open case's row.
With it the page is an ordered index-only range scan that stops after the page, and the count of the cases reads
index entries only: status, tenant_key and application_id are carried in the index (INCLUDE), so the filter and the
scope need no table row. The index is partial on the open statuses, like the inbox's (0005, 0007); the translator
writes a status compared with the queryable's enum values into the SQL, so that the planner can prove the predicate
(a bound parameter of a generic plan could not). Figures: docs/benchmarks.md (bench/ogc_filter.py).

On a large table create it CONCURRENTLY by hand before running this (the name matches; IF NOT EXISTS skips it).

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


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS ix_cases_open_due ON cases (authority_org_id, decision_due, id) "
               f"INCLUDE (status, tenant_key, application_id) WHERE {OPEN}")


def downgrade() -> None:
    op.execute("DROP INDEX ix_cases_open_due")
