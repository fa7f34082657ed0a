"""Tables of participation (see ``permits.participation.service``): the bodies to be heard per role and place, the
rules per tenant, the protected areas, and the statement requests with their answers."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import Date, DateTime, ForeignKey, Identity, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from breitband.db import Base


class StatementStatus(str, enum.Enum):
    requested = "requested"
    answered = "answered"
    superseded = "superseded"     # the route changed; a new request about the new route replaced it
    withdrawn = "withdrawn"       # the application was withdrawn before the body answered
    closed = "closed"             # no longer needed: every case of the application was decided


class CloseReason(str, enum.Enum):
    """Why a request was closed unanswered (``statement_requests.closed_reason``; the body is told)."""
    application_decided = "application_decided"
    application_withdrawn = "application_withdrawn"
    route_changed = "route_changed"


class Answer(str, enum.Enum):
    agree = "agree"
    agree_with_conditions = "agree_with_conditions"
    object = "object"


class ParticipationBody(Base):
    __tablename__ = "participation_bodies"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    ags: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ParticipationRuleSet(Base):
    __tablename__ = "participation_rules"

    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"), primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSONB)
    source: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProtectedArea(Base):
    __tablename__ = "protected_areas"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(300))
    designation: Mapped[str | None] = mapped_column(String(200))
    ref: Mapped[str | None] = mapped_column(String(100))
    body_org_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organisations.id", ondelete="SET NULL"))
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=-1, spatial_index=False))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StatementRequest(Base):
    __tablename__ = "statement_requests"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="SET NULL"))
    body_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    triggers: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_on: Mapped[date] = mapped_column(Date)
    answer: Mapped[str | None] = mapped_column(String(32))
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    reasons: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    answered_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    answered_by_name: Mapped[str | None] = mapped_column(String(200))
    superseded_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    closed_reason: Mapped[str | None] = mapped_column(String(32))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    row_version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": row_version}
