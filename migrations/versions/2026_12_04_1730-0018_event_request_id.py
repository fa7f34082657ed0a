"""The request id that wrote an event (issue 18, part 5): carried from the HTTP request into the e-mails'
X-Request-ID header and the webhooks' Breitband-Request-Id, so that a notice can be traced back to the request in the
logs. Null for events written by the sweeps and commands (no request) and for every event before this revision.

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("permit_events", sa.Column("request_id", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("permit_events", "request_id")
