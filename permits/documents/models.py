"""The table of decision documents (see ``permits.documents.service``): one row per generation of a case's
document, with its lifecycle (``status``), its validity and what identifies the signed file."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from breitband.db import Base


class DocumentStatus(str, enum.Enum):
    pending = "pending"
    generating = "generating"
    ready = "ready"
    failed = "failed"


class Validity(str, enum.Enum):
    valid = "valid"
    superseded = "superseded"
    revoked = "revoked"


class KeySource(str, enum.Enum):
    """Whose key signed a document: the deciding authority's imported certificate, the authority's self-signed test
    key, or (no key of the authority on file) the tenant's platform key."""
    authority = "authority"
    authority_test = "authority_test"
    platform = "platform"


class AuthorityKey(Base):
    """An authority's signing key (``permits.documents.keys``): the files and what identifies the certificate."""
    __tablename__ = "authority_signing_keys"

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"),
                                                       primary_key=True)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16))                 # imported | self_signed
    key_file: Mapped[str] = mapped_column(String(500))
    cert_file: Mapped[str] = mapped_column(String(500))
    chain_file: Mapped[str | None] = mapped_column(String(500))
    cert_sha256: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(500))
    issuer: Mapped[str] = mapped_column(String(500))
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DecisionDocument(Base):
    __tablename__ = "decision_documents"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    generation: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    validity: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    file_name: Mapped[str | None] = mapped_column(String(300))
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    signer: Mapped[str | None] = mapped_column(String(500))
    signer_cert_sha256: Mapped[str | None] = mapped_column(String(64))
    signed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    key_source: Mapped[str | None] = mapped_column(String(16))      # KeySource
    signing_org_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    official_name: Mapped[str | None] = mapped_column(String(200))
    official_function: Mapped[str | None] = mapped_column(String(200))
    superseded_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(Text)
    revoked_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
