"""Identity and tenancy: tenants (federal states), organisations, users, API tokens and browser sessions; the
responses kept per user and Idempotency-Key (breitband/idempotency.py)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from breitband.db import Base


class OrgKind(str, enum.Enum):
    operator = "operator"                      # network operator (TKU) or its planning contractor
    road_authority = "road_authority"          # Träger der Straßenbaulast / Straßenbaubehörde
    participating_body = "participating_body"  # other bodies to be heard (traffic, nature, water, monuments)
    operating_office = "operating_office"      # the tenant's office running the service


class Role(str, enum.Enum):
    operator_member = "operator_member"
    operator_admin = "operator_admin"          # an operator member who also administers its organisation
    authority_reviewer = "authority_reviewer"
    authority_admin = "authority_admin"
    tenant_admin = "tenant_admin"


# The roles of an operator's people: whatever an operator member may do, an operator admin may too.
OPERATOR_ROLES = (Role.operator_member, Role.operator_admin)
# Roles that administer their own organisation (invite, change roles, deactivate); tenant admins administer all.
ORG_ADMIN_ROLES = (Role.operator_admin, Role.authority_admin)

# Which organisation kinds a role may belong to.
ROLE_ORG_KINDS: dict[Role, set[OrgKind]] = {
    Role.operator_member: {OrgKind.operator},
    Role.operator_admin: {OrgKind.operator},
    Role.authority_reviewer: {OrgKind.road_authority, OrgKind.participating_body},
    Role.authority_admin: {OrgKind.road_authority, OrgKind.participating_body},
    Role.tenant_admin: {OrgKind.operating_office},
}


def _enum_check(column: str, enum_cls: type[enum.Enum]) -> str:
    values = ", ".join(f"'{m.value}'" for m in enum_cls)
    return f"{column} IN ({values})"


class Tenant(Base):
    __tablename__ = "tenants"

    key: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    srid: Mapped[int] = mapped_column(Integer)
    rules: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())
    # When the tenant's reference data last changed: an authority, an organisation's name, a layer import (triggers
    # of migration 0006). The key of the in-memory caches of territory, areas and authority directory.
    data_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("key ~ '^[a-z][a-z0-9-]{1,15}$'", name="tenant_key_format"),)


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(500))    # postal address, one line per line of the letter
    website: Mapped[str | None] = mapped_column(String(300))    # shown in an authority's letterhead
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    tenant: Mapped[Tenant] = relationship(lazy="raise")

    __table_args__ = (CheckConstraint(_enum_check("kind", OrgKind), name="organisation_kind"),)


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"), index=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"),
                                                       index=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    # Function in the organisation ("Sachgebietsleiterin Straßenbetrieb"): the decision document names the deciding
    # official with it.
    job_title: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Local sign-in (accounts/): Argon2id hash (NULL: no password yet — invited, or signs in only by OIDC).
    password_hash: Mapped[str | None] = mapped_column(Text)
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Second factor: the TOTP secret (pending until totp_enabled_at is set) and the last time step used (no replay).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # Lockout: consecutive failed sign-ins and until when the account refuses passwords (back-off).
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The identity at the tenant's OpenID Provider, once the user signed in there.
    oidc_issuer: Mapped[str | None] = mapped_column(String(500))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))

    organisation: Mapped[Organisation] = relationship(lazy="raise")

    __table_args__ = (
        UniqueConstraint("tenant_key", "email", name="user_email_per_tenant"),
        UniqueConstraint("tenant_key", "oidc_issuer", "oidc_subject", name="user_oidc_identity"),
        CheckConstraint(_enum_check("role", Role), name="user_role"),
    )


class ApiToken(Base):
    """A Bearer token. Only its SHA-256 hash is stored; the secret is shown once on creation."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # "write" (any method) or "read" (refused on every unsafe method: 403 token-read-only).
    scope: Mapped[str] = mapped_column(String(8), default="write", server_default="write")

    user: Mapped[User] = relationship(lazy="raise")

    __table_args__ = (Index("ix_api_tokens_prefix", "prefix"),
                      CheckConstraint("scope IN ('read', 'write')", name="api_token_scope"))


class TokenScope(str, enum.Enum):
    read = "read"
    write = "write"


class WebSession(Base):
    """A browser session (breitband/sessions.py). The cookie holds a random secret; only its SHA-256 is stored. Ends
    when revoked (sign-out, sign out everywhere, role change, deactivation), after session_idle_minutes without a
    request, or at expires_at (session_absolute_hours after sign-in), whichever comes first."""

    __tablename__ = "web_sessions"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))             # password | oidc | link
    mfa: Mapped[bool] = mapped_column(Boolean, default=False)
    restricted: Mapped[str | None] = mapped_column(String(32))  # "totp-enrolment": only the 2FA set-up is open
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    oidc_id_token: Mapped[str | None] = mapped_column(Text)      # id_token_hint for RP-initiated logout

    __table_args__ = (CheckConstraint("method IN ('password', 'oidc', 'link')", name="web_session_method"),)


class IdempotencyKey(Base):
    """A stored response per (user, Idempotency-Key). Inserted in the transaction of the command itself, so a
    failed command leaves no key behind and a concurrent retry waits on the unique index until the first commits."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[Any] = mapped_column(JSONB, nullable=True)
    response_headers: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
