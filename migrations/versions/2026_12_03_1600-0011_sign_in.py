"""Sign-in (issue 13): local accounts, browser sessions, invitation and reset links, OpenID Connect logins,
security events, read-only API tokens and the role operator_admin.

- users: password hash (Argon2id), second factor (TOTP secret, when enabled, last used time step against replay),
  lockout state (consecutive failures, locked until), last sign-in, and the OpenID Connect identity (issuer, subject;
  one user per identity and tenant).
- user_role: + operator_admin (administers its operator organisation, may do all an operator member may).
- api_tokens.scope: 'write' (every token so far) or 'read' (refused on every unsafe method).
- web_sessions: server-side browser sessions; only the SHA-256 of the cookie's secret is stored.
- account_links: single-use invitation and password-reset links (hash only), 24 h.
- oidc_logins: state, nonce and PKCE verifier of a sign-in under way at an identity provider (minutes).
- security_events: sign-ins, failures, lockouts, second-factor and role changes, tokens, administration — the audit
  trail of who did what from where.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ROLES_BEFORE = ("operator_member", "authority_reviewer", "authority_admin", "tenant_admin")
ROLES_AFTER = ("operator_member", "operator_admin", "authority_reviewer", "authority_admin", "tenant_admin")


def _role_check(roles: tuple[str, ...]) -> None:
    op.drop_constraint("user_role", "users", type_="check")
    op.create_check_constraint("user_role", "users", "role IN (" + ", ".join(f"'{r}'" for r in roles) + ")")


def _tz(name: str, nullable: bool = True, **kw) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, **kw)


def upgrade() -> None:
    op.add_column("users", sa.Column("password_hash", sa.Text(), nullable=True))
    op.add_column("users", _tz("password_changed_at"))
    op.add_column("users", sa.Column("totp_secret", sa.String(64), nullable=True))
    op.add_column("users", _tz("totp_enabled_at"))
    op.add_column("users", sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    op.add_column("users", sa.Column("failed_sign_ins", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("users", _tz("locked_until"))
    op.add_column("users", _tz("last_sign_in_at"))
    op.add_column("users", sa.Column("oidc_issuer", sa.String(500), nullable=True))
    op.add_column("users", sa.Column("oidc_subject", sa.String(255), nullable=True))
    op.create_unique_constraint("user_oidc_identity", "users", ["tenant_key", "oidc_issuer", "oidc_subject"])
    _role_check(ROLES_AFTER)

    op.add_column("api_tokens", sa.Column("scope", sa.String(8), nullable=False, server_default="write"))
    op.create_check_constraint("api_token_scope", "api_tokens", "scope IN ('read', 'write')")

    op.create_table(
        "web_sessions",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("mfa", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("restricted", sa.String(32), nullable=True),
        _tz("created_at", nullable=False, server_default=sa.func.now()),
        _tz("last_seen_at", nullable=False, server_default=sa.func.now()),
        _tz("expires_at", nullable=False),
        _tz("revoked_at"),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(300), nullable=True),
        sa.Column("oidc_id_token", sa.Text(), nullable=True),
        sa.CheckConstraint("method IN ('password', 'oidc', 'link')", name="web_session_method"),
    )

    op.create_table(
        "account_links",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        _tz("created_at", nullable=False, server_default=sa.func.now()),
        _tz("expires_at", nullable=False),
        _tz("used_at"),
        sa.Column("created_by", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.CheckConstraint("purpose IN ('invitation', 'reset')", name="account_link_purpose"),
    )

    op.create_table(
        "oidc_logins",
        sa.Column("state", sa.String(64), primary_key=True),
        sa.Column("tenant_key", sa.String(16), sa.ForeignKey("tenants.key", ondelete="CASCADE"), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("return_to", sa.String(500), nullable=True),
        _tz("created_at", nullable=False, server_default=sa.func.now()),
    )

    op.create_table(
        "security_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("tenant_key", sa.String(16), sa.ForeignKey("tenants.key", ondelete="CASCADE"), nullable=False),
        _tz("at", nullable=False, server_default=sa.func.now()),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("actor_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(300), nullable=True),
        sa.Column("detail", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.create_index("ix_security_events_tenant_at", "security_events", ["tenant_key", sa.text("at DESC")])
    op.create_index("ix_security_events_tenant_kind_at", "security_events",
                    ["tenant_key", "kind", sa.text("at DESC")])


def downgrade() -> None:
    op.drop_table("security_events")
    op.drop_table("oidc_logins")
    op.drop_table("account_links")
    op.drop_table("web_sessions")
    op.drop_constraint("api_token_scope", "api_tokens", type_="check")
    op.drop_column("api_tokens", "scope")
    op.execute("UPDATE users SET role = 'operator_member' WHERE role = 'operator_admin'")
    _role_check(ROLES_BEFORE)
    op.drop_constraint("user_oidc_identity", "users", type_="unique")
    for column in ("oidc_subject", "oidc_issuer", "last_sign_in_at", "locked_until", "failed_sign_ins",
                   "totp_last_step", "totp_enabled_at", "totp_secret", "password_changed_at", "password_hash"):
        op.drop_column("users", column)
