"""Permits: applications with versions and attachments, cases per authority with § 127 TKG deadlines, conditions
catalogue, events (outbox), append-only audit trail, idempotency keys.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql as pg

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

APPLICATION_STATUSES = ("draft", "submitted", "information_requested", "granted", "partially_granted", "refused",
                        "withdrawn")
CASE_STATUSES = ("received", "incomplete", "in_review", "granted", "partially_granted", "refused", "deemed_granted",
                 "forwarded", "withdrawn")
ATTACHMENT_KINDS = ("route_plan", "cross_section", "power_of_attorney", "traffic_plan", "statement", "photo",
                    "other")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _tenant():
    return sa.Column("tenant_key", sa.String(16), sa.ForeignKey("tenants.key", ondelete="CASCADE"), nullable=False)


def _ts(name: str, nullable: bool = False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "permit_reference_counters",
        sa.Column("tenant_key", sa.String(16), sa.ForeignKey("tenants.key", ondelete="CASCADE"), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("last_value", sa.Integer, nullable=False),
    )

    op.create_table(
        "applications",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        _tenant(),
        sa.Column("reference", sa.String(32), nullable=False),
        sa.Column("applicant_org_id", pg.UUID(as_uuid=True), sa.ForeignKey("organisations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("created_by", pg.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("current_version", sa.Integer, nullable=False),
        sa.Column("project_name", sa.String(300)),
        sa.Column("operator_reference", sa.String(100)),
        sa.Column("route_geom", Geometry("GEOMETRY", srid=4326, spatial_index=False)),
        _ts("submitted_at", True),
        _ts("withdrawn_at", True),
        sa.Column("works_started_on", sa.Date),
        sa.Column("works_completed_on", sa.Date),
        sa.Column("works", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("row_version", sa.Integer, nullable=False),
        sa.UniqueConstraint("tenant_key", "reference", name="application_reference"),
        sa.CheckConstraint(_in("status", APPLICATION_STATUSES), name="application_status"),
    )
    op.create_index("ix_applications_applicant", "applications", ["tenant_key", "applicant_org_id", "created_at"])
    op.create_index("ix_applications_tenant_created", "applications", ["tenant_key", "created_at"])
    op.execute("CREATE INDEX ix_applications_route ON applications USING gist (route_geom)")

    op.create_table(
        "application_versions",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("application_id", pg.UUID(as_uuid=True), sa.ForeignKey("applications.id", ondelete="CASCADE"),
                  nullable=False),
        _tenant(),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("content", pg.JSONB, nullable=False),
        sa.Column("resolution", pg.JSONB),
        sa.Column("route_changed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("note", sa.Text),
        sa.Column("addressed_case_ids", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("created_by", pg.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="SET NULL")),
        _ts("created_at"),
        _ts("submitted_at", True),
        sa.UniqueConstraint("application_id", "number", name="application_version_number"),
        sa.CheckConstraint("kind IN ('draft', 'submission', 'supplement')", name="application_version_kind"),
    )

    op.create_table(
        "application_attachments",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        _tenant(),
        sa.Column("application_id", pg.UUID(as_uuid=True), sa.ForeignKey("applications.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("file_name", sa.String(200), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uploaded_by", pg.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("uploaded_by_org", pg.UUID(as_uuid=True), sa.ForeignKey("organisations.id", ondelete="SET NULL")),
        _ts("created_at"),
        sa.CheckConstraint(_in("kind", ATTACHMENT_KINDS), name="attachment_kind"),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="attachment_sha256"),
    )
    op.create_index("ix_application_attachments_application", "application_attachments", ["application_id"])

    op.create_table(
        "cases",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        _tenant(),
        sa.Column("application_id", pg.UUID(as_uuid=True), sa.ForeignKey("applications.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("authority_org_id", pg.UUID(as_uuid=True), sa.ForeignKey("organisations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("application_version", sa.Integer, nullable=False),
        sa.Column("part", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        _ts("received_at"),
        sa.Column("completeness_due", sa.Date, nullable=False),
        _ts("complete_at", True),
        _ts("completeness_confirmed_at", True),
        sa.Column("decision_due", sa.Date),
        _ts("deadline_at", True),
        sa.Column("extension", pg.JSONB),
        sa.Column("information_requests", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("decision", pg.JSONB),
        _ts("decided_at", True),
        sa.Column("effective_on", sa.Date),
        sa.Column("forwarded_from_case_id", pg.UUID(as_uuid=True), sa.ForeignKey("cases.id", ondelete="SET NULL")),
        sa.Column("forwarded_to_case_id", pg.UUID(as_uuid=True), sa.ForeignKey("cases.id", ondelete="SET NULL")),
        sa.Column("forward", pg.JSONB),
        sa.Column("closed_reason", sa.Text),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("row_version", sa.Integer, nullable=False),
        sa.CheckConstraint(_in("status", CASE_STATUSES), name="case_status"),
        # An open case with a running clock has both deadline columns, a stopped clock neither.
        sa.CheckConstraint("(complete_at IS NULL) = (decision_due IS NULL) AND (decision_due IS NULL) = "
                           "(deadline_at IS NULL)", name="case_clock_consistent"),
    )
    op.create_index("ix_cases_application", "cases", ["application_id"])
    # The authority inbox in legal order (§ 147 (2)): by complete receipt.
    op.create_index("ix_cases_inbox", "cases", ["tenant_key", "authority_org_id", "complete_at", "received_at"])
    # ... and its usual first page: the open cases of one authority, in that order, straight from the index.
    op.create_index("ix_cases_open_queue", "cases", ["authority_org_id", "complete_at", "received_at", "id"],
                    postgresql_where=sa.text("status IN ('received', 'incomplete', 'in_review')"))
    # The deadline sweep: open cases with a running clock, by the instant their decision period expires.
    op.create_index("ix_cases_due", "cases", ["deadline_at"],
                    postgresql_where=sa.text("status IN ('received', 'incomplete', 'in_review') "
                                             "AND deadline_at IS NOT NULL"))

    op.create_table(
        "permit_catalogue",
        sa.Column("tenant_key", sa.String(16), sa.ForeignKey("tenants.key", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("category", sa.String(64)),
        sa.Column("position", sa.Integer, nullable=False, server_default="0"),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("kind IN ('condition', 'refusal_reason')", name="catalogue_kind"),
    )

    op.create_table(
        "permit_events",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
        _tenant(),
        sa.Column("application_id", pg.UUID(as_uuid=True)),
        sa.Column("case_id", pg.UUID(as_uuid=True)),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("payload", pg.JSONB, nullable=False),
        _ts("created_at"),
        _ts("published_at", True),
    )
    op.create_index("ix_permit_events_unpublished", "permit_events", ["seq"],
                    postgresql_where=sa.text("published_at IS NULL"))
    op.create_index("ix_permit_events_application", "permit_events", ["application_id", "seq"])

    op.create_table(
        "permit_audit",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_key", sa.String(16), nullable=False),
        sa.Column("application_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("case_id", pg.UUID(as_uuid=True)),
        sa.Column("command", sa.String(64), nullable=False),
        sa.Column("actor_user_id", pg.UUID(as_uuid=True)),
        sa.Column("actor_name", sa.String(200), nullable=False),
        sa.Column("actor_role", sa.String(32), nullable=False),
        sa.Column("actor_org_id", pg.UUID(as_uuid=True)),
        sa.Column("on_behalf_of_org_id", pg.UUID(as_uuid=True)),
        _ts("at"),
        sa.Column("version_before", sa.Integer),
        sa.Column("version_after", sa.Integer),
        sa.Column("status_before", sa.String(32)),
        sa.Column("status_after", sa.String(32)),
        sa.Column("detail", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.create_index("ix_permit_audit_application", "permit_audit", ["application_id", "id"])
    op.execute("""
        CREATE FUNCTION permit_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'permit_audit is append-only: % is not allowed', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$
    """)
    op.execute("CREATE TRIGGER permit_audit_no_update_delete BEFORE UPDATE OR DELETE ON permit_audit "
               "FOR EACH ROW EXECUTE FUNCTION permit_audit_append_only()")
    op.execute("CREATE TRIGGER permit_audit_no_truncate BEFORE TRUNCATE ON permit_audit "
               "FOR EACH STATEMENT EXECUTE FUNCTION permit_audit_append_only()")

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("user_id", pg.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("response_status", sa.Integer),
        sa.Column("response_body", pg.JSONB),
        sa.Column("response_headers", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("user_id", "key", name="idempotency_key_per_user"),
    )
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.execute("DROP TABLE permit_audit")
    op.execute("DROP FUNCTION permit_audit_append_only()")
    for table in ("permit_events", "permit_catalogue", "cases", "application_attachments", "application_versions",
                  "applications", "permit_reference_counters"):
        op.drop_table(table)
