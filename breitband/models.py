"""Identity and tenancy: tenants (federal states), organisations, users and API tokens; the responses kept per
user and Idempotency-Key (breitband/idempotency.py)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
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
    authority_reviewer = "authority_reviewer"
    authority_admin = "authority_admin"
    tenant_admin = "tenant_admin"


# Which organisation kinds a role may belong to.
ROLE_ORG_KINDS: dict[Role, set[OrgKind]] = {
    Role.operator_member: {OrgKind.operator},
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
    address: Mapped[str | None] = mapped_column(String(500))
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
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    organisation: Mapped[Organisation] = relationship(lazy="raise")

    __table_args__ = (
        UniqueConstraint("tenant_key", "email", name="user_email_per_tenant"),
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

    user: Mapped[User] = relationship(lazy="raise")

    __table_args__ = (Index("ix_api_tokens_prefix", "prefix"),)


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
