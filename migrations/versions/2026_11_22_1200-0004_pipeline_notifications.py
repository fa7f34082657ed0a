"""Notifications (outbox feed, deliveries with their attempts, webhook subscriptions), the review pipeline (runs and
steps), participation (bodies, rules, protected areas, statement requests), deadline reminders and signed decision
documents.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql as pg

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _tenant():
    return sa.Column("tenant_key", sa.String(16), sa.ForeignKey("tenants.key", ondelete="CASCADE"), nullable=False)


def _ts(name: str, nullable: bool = False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _uuid(name: str, fk: str | None = None, ondelete: str = "CASCADE", nullable: bool = False):
    if fk:
        return sa.Column(name, pg.UUID(as_uuid=True), sa.ForeignKey(fk, ondelete=ondelete), nullable=nullable)
    return sa.Column(name, pg.UUID(as_uuid=True), nullable=nullable)


def upgrade() -> None:
    # --- notifications ------------------------------------------------------------------------------------------
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        _tenant(),
        _uuid("organisation_id", "organisations.id"),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("event_types", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("description", sa.String(500)),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        _uuid("created_by", "users.id", "SET NULL", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("deleted_at", True),
        sa.Column("row_version", sa.Integer, nullable=False),
    )
    op.create_index("ix_webhook_subscriptions_org", "webhook_subscriptions", ["organisation_id"],
                    postgresql_where=sa.text("deleted_at IS NULL"))

    op.create_table(
        "notification_deliveries",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        _tenant(),
        _uuid("event_id", "permit_events.id"),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.String(500), nullable=False),
        _uuid("subscription_id", "webhook_subscriptions.id", nullable=True),
        _uuid("organisation_id", "organisations.id", nullable=True),
        sa.Column("context", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        _ts("next_attempt_at"),
        _ts("enqueued_at", True),
        _ts("lease_until", True),
        sa.Column("last_error", sa.Text),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("delivered_at", True),
        sa.UniqueConstraint("event_id", "channel", "target", name="delivery_once_per_event_and_target"),
        sa.CheckConstraint(_in("channel", ("email", "webhook")), name="delivery_channel"),
        sa.CheckConstraint(_in("status", ("pending", "sending", "delivered", "retrying", "failed")),
                           name="delivery_status"),
    )
    op.create_index("ix_notification_deliveries_due", "notification_deliveries", ["next_attempt_at"],
                    postgresql_where=sa.text("status IN ('pending', 'retrying', 'sending')"))
    op.create_index("ix_notification_deliveries_subscription", "notification_deliveries",
                    ["subscription_id", "created_at"])

    op.create_table(
        "notification_attempts",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _uuid("delivery_id", "notification_deliveries.id"),
        sa.Column("number", sa.Integer, nullable=False),
        _ts("started_at"),
        _ts("finished_at"),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("response_status", sa.Integer),
        sa.Column("response_excerpt", sa.Text),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_notification_attempts_delivery", "notification_attempts", ["delivery_id", "number"])

    # The event feed: one row per (event, organisation that may see it), plus one with organisation_id NULL for the
    # tenant admins. ``position`` is assigned by the relay in commit order and is the feed's cursor.
    op.create_table(
        "notification_feed",
        sa.Column("position", sa.BigInteger, sa.Identity(), primary_key=True),
        _uuid("event_id", "permit_events.id"),
        _tenant(),
        _uuid("organisation_id", "organisations.id", nullable=True),
        _ts("published_at"),
    )
    op.execute("CREATE UNIQUE INDEX ux_notification_feed_event_org ON notification_feed (event_id, organisation_id) "
               "NULLS NOT DISTINCT")
    op.create_index("ix_notification_feed_org", "notification_feed", ["organisation_id", "position"])
    op.create_index("ix_notification_feed_tenant", "notification_feed", ["tenant_key", "position"],
                    postgresql_where=sa.text("organisation_id IS NULL"))

    # --- pipeline -----------------------------------------------------------------------------------------------
    op.create_table(
        "pipeline_runs",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        _tenant(),
        _uuid("application_id", "applications.id"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("enqueued_at", True),
        _ts("started_at", True),
        _ts("finished_at", True),
        sa.UniqueConstraint("application_id", "version", name="pipeline_run_per_version"),
        sa.CheckConstraint(_in("status", ("pending", "running", "succeeded", "failed")), name="pipeline_run_status"),
    )
    op.create_index("ix_pipeline_runs_open", "pipeline_runs", ["created_at"],
                    postgresql_where=sa.text("status IN ('pending', 'running')"))

    op.create_table(
        "pipeline_steps",
        _uuid("run_id", "pipeline_runs.id"),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        _ts("started_at", True),
        _ts("finished_at", True),
        _ts("updated_at"),
        sa.Column("error", sa.Text),
        sa.Column("result", pg.JSONB),
        sa.PrimaryKeyConstraint("run_id", "name"),
        sa.CheckConstraint(_in("status", ("pending", "running", "retrying", "succeeded", "failed")),
                           name="pipeline_step_status"),
    )

    # --- participation ------------------------------------------------------------------------------------------
    op.create_table(
        "participation_bodies",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        _tenant(),
        _uuid("organisation_id", "organisations.id"),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("ags", sa.String(8)),
        _ts("created_at"),
        sa.CheckConstraint(_in("role", ("traffic", "water", "nature", "monument")), name="participation_body_role"),
    )
    op.execute("CREATE UNIQUE INDEX ux_participation_bodies_place ON participation_bodies (tenant_key, role, ags) "
               "NULLS NOT DISTINCT")

    op.create_table(
        "participation_rules",
        sa.Column("tenant_key", sa.String(16), sa.ForeignKey("tenants.key", ondelete="CASCADE"), primary_key=True),
        sa.Column("rules", pg.JSONB, nullable=False),
        sa.Column("source", sa.String(500)),
        _ts("updated_at"),
    )

    op.create_table(
        "protected_areas",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        _tenant(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("designation", sa.String(200)),
        sa.Column("ref", sa.String(100)),
        _uuid("body_org_id", "organisations.id", "SET NULL", nullable=True),
        sa.Column("properties", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=-1, spatial_index=False), nullable=False),
        _ts("imported_at"),
        sa.CheckConstraint(_in("kind", ("water", "nature", "monument")), name="protected_area_kind"),
    )
    op.execute("CREATE INDEX ix_protected_areas_geom ON protected_areas USING gist (tenant_key, kind, geom)")

    op.create_table(
        "statement_requests",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        _tenant(),
        _uuid("application_id", "applications.id"),
        sa.Column("version", sa.Integer, nullable=False),
        _uuid("run_id", "pipeline_runs.id", "SET NULL", nullable=True),
        _uuid("body_org_id", "organisations.id"),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("triggers", pg.JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("requested_at"),
        sa.Column("due_on", sa.Date, nullable=False),
        sa.Column("answer", sa.String(32)),
        sa.Column("conditions", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("reasons", sa.Text),
        _ts("answered_at", True),
        _uuid("answered_by", "users.id", "SET NULL", nullable=True),
        sa.Column("answered_by_name", sa.String(200)),
        _uuid("superseded_by", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("row_version", sa.Integer, nullable=False),
        sa.UniqueConstraint("application_id", "version", "body_org_id", name="statement_request_per_version"),
        sa.CheckConstraint(_in("status", ("requested", "answered", "superseded", "withdrawn")),
                           name="statement_status"),
        sa.CheckConstraint("answer IS NULL OR " + _in("answer", ("agree", "agree_with_conditions", "object")),
                           name="statement_answer"),
    )
    op.create_index("ix_statement_requests_body", "statement_requests", ["body_org_id", "status", "due_on"])
    op.create_index("ix_statement_requests_application", "statement_requests", ["application_id", "version"])

    # --- deadline reminders and decision documents ----------------------------------------------------------------
    op.create_table(
        "case_reminders",
        _uuid("case_id", "cases.id"),
        sa.Column("decision_due", sa.Date, nullable=False),
        sa.Column("days_before", sa.Integer, nullable=False),
        _uuid("event_id", nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("case_id", "decision_due", "days_before"),
    )

    op.create_table(
        "decision_documents",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        _tenant(),
        _uuid("application_id", "applications.id"),
        _uuid("case_id", "cases.id"),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        _ts("decided_at", True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("validity", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        _ts("lease_until", True),
        sa.Column("file_name", sa.String(300)),
        sa.Column("sha256", sa.String(64)),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("signer", sa.String(500)),
        sa.Column("signer_cert_sha256", sa.String(64)),
        _ts("signed_at", True),
        _uuid("superseded_by", nullable=True),
        _ts("revoked_at", True),
        sa.Column("revoked_reason", sa.Text),
        _uuid("revoked_by", "users.id", "SET NULL", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("case_id", "generation", name="decision_document_generation"),
        sa.CheckConstraint(_in("kind", ("decision", "deemed_approval")), name="decision_document_kind"),
        sa.CheckConstraint(_in("status", ("pending", "generating", "ready", "failed")),
                           name="decision_document_status"),
        sa.CheckConstraint(_in("validity", ("valid", "superseded", "revoked")), name="decision_document_validity"),
    )
    op.create_index("ix_decision_documents_sha256", "decision_documents", ["sha256"])
    op.create_index("ix_decision_documents_open", "decision_documents", ["created_at"],
                    postgresql_where=sa.text("status IN ('pending', 'generating', 'failed')"))


def downgrade() -> None:
    for table in ("decision_documents", "case_reminders", "statement_requests", "protected_areas",
                  "participation_rules", "participation_bodies", "pipeline_steps", "pipeline_runs",
                  "notification_feed", "notification_attempts", "notification_deliveries", "webhook_subscriptions"):
        op.drop_table(table)
