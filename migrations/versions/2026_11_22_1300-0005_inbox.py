"""Inbox indexes for keyset paging: open and closed cases of an authority in the inbox order.

The inbox orders by complete receipt with a stopped clock (complete_at NULL) last, then receipt and id; the query
sorts by coalesce(complete_at, 'infinity'), so that one row comparison on (coalesce(...), received_at, id) continues
a page after a cursor. The two partial indexes hold that order for the open and for the closed cases of each
authority; they replace ix_cases_open_queue (same order for open cases, but NULLs as such) and ix_cases_inbox
(tenant_key, authority_org_id, complete_at, received_at: no id, no status split).

On a large table create them CONCURRENTLY by hand before running this (the names match; IF NOT EXISTS skips them).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OPEN = "status IN ('received', 'incomplete', 'in_review')"
KEY = "authority_org_id, coalesce(complete_at, 'infinity'::timestamptz), received_at, id"


def upgrade() -> None:
    op.execute(f"CREATE INDEX IF NOT EXISTS ix_cases_inbox_open ON cases ({KEY}) WHERE {OPEN}")
    op.execute(f"CREATE INDEX IF NOT EXISTS ix_cases_inbox_closed ON cases ({KEY}) WHERE NOT ({OPEN})")
    op.drop_index("ix_cases_open_queue", table_name="cases")
    op.drop_index("ix_cases_inbox", table_name="cases")


def downgrade() -> None:
    op.create_index("ix_cases_inbox", "cases", ["tenant_key", "authority_org_id", "complete_at", "received_at"])
    op.execute("CREATE INDEX ix_cases_open_queue ON cases (authority_org_id, complete_at, received_at, id) "
               f"WHERE {OPEN}")
    op.execute("DROP INDEX ix_cases_inbox_closed")
    op.execute("DROP INDEX ix_cases_inbox_open")
