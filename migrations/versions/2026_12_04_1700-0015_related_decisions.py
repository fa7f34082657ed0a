"""One application, every permit, one deadline (issue 15, part 2; § 127 (5) TKG).

- statement_requests: a request that is no longer needed is closed with a reason (``closed_reason``:
  application_decided | application_withdrawn | route_changed, ``closed_at``); the new status ``closed`` is the one
  for a decided application (``withdrawn`` and ``superseded`` existed already).
- cases.kind: ``consent`` (every case so far) or a further decision issued together with it by a body:
  ``traffic_order`` (§ 45 StVO), ``nature_permit``, ``water_permit``, ``monument_permit``. Such a case carries the
  consent's ``decision_due`` but never a ``deadline_at`` of its own (case_clock_consistent): no deemed approval.
- permit_catalogue.kind: + ``order_condition`` and ``order_reason``, the conditions catalogue and refusal reasons of
  traffic orders.

Revision ID: 0015
Revises: 0018
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0018"
branch_labels = None
depends_on = None

STATEMENT_BEFORE = ("requested", "answered", "superseded", "withdrawn")
STATEMENT_AFTER = (*STATEMENT_BEFORE, "closed")
CLOSE_REASONS = ("application_decided", "application_withdrawn", "route_changed")
CASE_KINDS = ("consent", "traffic_order", "nature_permit", "water_permit", "monument_permit")
CLOCK_BEFORE = ("(complete_at IS NULL) = (decision_due IS NULL) AND (decision_due IS NULL) = (deadline_at IS NULL)")
# a further decision has the consent's decision_due but never a deadline of its own (no deemed approval)
CLOCK_AFTER = f"(kind <> 'consent' AND deadline_at IS NULL) OR ({CLOCK_BEFORE})"
CATALOGUE_BEFORE = ("condition", "refusal_reason")
CATALOGUE_AFTER = (*CATALOGUE_BEFORE, "order_condition", "order_reason")


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
    op.add_column("cases", sa.Column("kind", sa.String(24), nullable=False, server_default="consent"))
    op.create_check_constraint("case_kind", "cases", _in("kind", CASE_KINDS))
    op.drop_constraint("case_clock_consistent", "cases", type_="check")
    op.create_check_constraint("case_clock_consistent", "cases", CLOCK_AFTER)
    op.drop_constraint("catalogue_kind", "permit_catalogue", type_="check")
    op.create_check_constraint("catalogue_kind", "permit_catalogue", _in("kind", CATALOGUE_AFTER))


def downgrade() -> None:
    op.execute("DELETE FROM permit_catalogue WHERE kind IN ('order_condition', 'order_reason')")
    op.drop_constraint("catalogue_kind", "permit_catalogue", type_="check")
    op.create_check_constraint("catalogue_kind", "permit_catalogue", _in("kind", CATALOGUE_BEFORE))
    op.execute("DELETE FROM cases WHERE kind <> 'consent'")
    op.drop_constraint("case_clock_consistent", "cases", type_="check")
    op.create_check_constraint("case_clock_consistent", "cases", CLOCK_BEFORE)
    op.drop_constraint("case_kind", "cases", type_="check")
    op.drop_column("cases", "kind")
    op.execute("UPDATE statement_requests SET status = 'withdrawn' WHERE status = 'closed'")
    op.drop_constraint("statement_closed_reason", "statement_requests", type_="check")
    op.drop_column("statement_requests", "closed_at")
    op.drop_column("statement_requests", "closed_reason")
    op.drop_constraint("statement_status", "statement_requests", type_="check")
    op.create_check_constraint("statement_status", "statement_requests", _in("status", STATEMENT_BEFORE))
