"""A decision document an authority signs (issue 15, part 3).

- organisations.website: the letterhead shows it beside the postal address (``address``), phone and e-mail.
- users.job_title: the function of the official who decided ("Sachbearbeiterin Straßenbetrieb"), printed under
  their name in the decision document.
- authority_signing_keys: one signing key per authority (organisation), imported from the PKCS#12 file the authority
  brings or created self-signed for tests; the key and certificate are files (0600) under the data directory, the
  row records where, and what identifies the certificate (SHA-256 fingerprint, subject, issuer, validity).
- decision_documents: which key signed (``key_source``: authority | authority_test | platform, and the
  organisation), and the official named in the document, so that /verify can say who signed without opening the file.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("organisations", sa.Column("website", sa.String(300), nullable=True))
    op.add_column("users", sa.Column("job_title", sa.String(200), nullable=True))
    op.create_table(
        "authority_signing_keys",
        sa.Column("organisation_id", UUID(as_uuid=True), sa.ForeignKey("organisations.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("tenant_key", sa.String(16), sa.ForeignKey("tenants.key", ondelete="CASCADE"), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("key_file", sa.String(500), nullable=False),
        sa.Column("cert_file", sa.String(500), nullable=False),
        sa.Column("chain_file", sa.String(500), nullable=True),
        sa.Column("cert_sha256", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source IN ('imported', 'self_signed')", name="authority_key_source"),
    )
    op.create_index("authority_signing_keys_cert", "authority_signing_keys", ["cert_sha256"])
    op.add_column("decision_documents", sa.Column("key_source", sa.String(16), nullable=True))
    op.add_column("decision_documents", sa.Column("signing_org_id", UUID(as_uuid=True), nullable=True))
    op.add_column("decision_documents", sa.Column("official_name", sa.String(200), nullable=True))
    op.add_column("decision_documents", sa.Column("official_function", sa.String(200), nullable=True))


def downgrade() -> None:
    for column in ("official_function", "official_name", "signing_org_id", "key_source"):
        op.drop_column("decision_documents", column)
    op.drop_index("authority_signing_keys_cert", table_name="authority_signing_keys")
    op.drop_table("authority_signing_keys")
    op.drop_column("users", "job_title")
    op.drop_column("organisations", "website")
