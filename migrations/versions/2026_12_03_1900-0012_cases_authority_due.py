"""An authority's cases by decision date: index on cases (authority_org_id, decision_due, status).

The OGC API items filtered by CQL2 (permits/gis/cql.py), e.g. an authority's open cases due before a day,
``status IN ('received','in_review') AND decision_due < DATE('2027-03-01')`` sorted by ``decision_due``, and their
numberMatched: with this index the page is an ordered range scan of the authority's cases by decision date that
stops after the page, and the count reads only index entries (status is the third column, so the filter needs no
table rows). It is not partial on the open statuses: a filter's statuses are bound parameters, and a prepared
statement's generic plan cannot prove a partial index's predicate from them. Figures: docs/benchmarks.md
(bench/ogc_filter.py).

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


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS ix_cases_authority_due ON cases (authority_org_id, decision_due, status)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_cases_authority_due")
