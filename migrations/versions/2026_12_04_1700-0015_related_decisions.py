"""One application, every permit, one deadline (issue 15, part 2; § 127 (5) TKG).

- statement_requests: a request that is no longer needed is closed with a reason (``closed_reason``:
  application_decided | application_withdrawn | route_changed, ``closed_at``); the new status ``closed`` is the one
  for a decided application (``withdrawn`` and ``superseded`` existed already).

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None

STATEMENT_BEFORE = ("requested", "answered", "superseded", "withdrawn")
STATEMENT_AFTER = (*STATEMENT_BEFORE, "closed")
CLOSE_REASONS = ("application_decided", "application_withdrawn", "route_changed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.drop_constraint("statement_status", "statement_requests", type_="check")
    op.create_check_constraint("statement_status", "statement_requests", _in("status", STATEMENT_AFTER))
    op.add_column("statement_requests", sa.Column("closed_reason", sa.String(32), nullable=True))
    op.add_column("statement_requests", sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint("statement_closed_reason", "statement_requests",
                               "closed_reason IS NULL OR " + _in("closed_reason", CLOSE_REASONS))
    # requests superseded before this revision: their reason was always the changed route
    op.execute("UPDATE statement_requests SET closed_reason = 'route_changed', closed_at = updated_at "
               "WHERE status = 'superseded'")


def downgrade() -> None:
    op.execute("UPDATE statement_requests SET status = 'withdrawn' WHERE status = 'closed'")
    op.drop_constraint("statement_closed_reason", "statement_requests", type_="check")
    op.drop_column("statement_requests", "closed_at")
    op.drop_column("statement_requests", "closed_reason")
    op.drop_constraint("statement_status", "statement_requests", type_="check")
    op.create_check_constraint("statement_status", "statement_requests", _in("status", STATEMENT_BEFORE))
