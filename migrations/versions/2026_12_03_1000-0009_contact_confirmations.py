"""Contact confirmations: an application's contact e-mail (typed by the operator) gets notices only after its owner
confirmed it through a single-use, expiring link (notifications/contacts.py). One row per request to confirm an
address for an operator organisation; only the SHA-256 of the link's token is kept.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_confirmations",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_key", sa.String(16), sa.ForeignKey("tenants.key", ondelete="CASCADE"), nullable=False),
        sa.Column("organisation_id", UUID(as_uuid=True), sa.ForeignKey("organisations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("application_id", UUID(as_uuid=True), sa.ForeignKey("applications.id", ondelete="SET NULL")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("email = lower(email)", name="contact_confirmation_email_lower"),
    )
    op.create_index("ix_contact_confirmations_address", "contact_confirmations", ["organisation_id", "email"])


def downgrade() -> None:
    op.drop_table("contact_confirmations")
