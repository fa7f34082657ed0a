"""An authority's cases regardless of their status: index on cases (authority_org_id, application_id).

The partial inbox indexes (migration 0005) serve an authority's open and closed cases in inbox order, but a query
that asks for all of its cases without naming the statuses cannot use them (their predicates are not implied).
"The applications with a case of this authority" (an authority's application list, its OGC API - Features items,
its applications tile layer) then probed each candidate application through ix_cases_application and filtered the
cases there; this index answers the probe from the index alone, and lets the planner start from the authority's
cases where that is cheaper. OGC items of an authority with 1,530 cases among 200,000 applications, p50: first
page 90 → 66 ms, with a bbox 123 → 18 ms, with a datetime 150 → 50 ms.

On a large table create it CONCURRENTLY by hand before running this (the name matches; IF NOT EXISTS skips it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS ix_cases_authority ON cases (authority_org_id, application_id)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_cases_authority")
