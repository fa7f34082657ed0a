"""Permit applications, their versions and attachments, the cases per authority, the conditions catalogue, the
append-only audit trail. (The events that permit commands write are the outbox of ``notifications``:
``notifications.models.Event``, written through ``notifications.outbox.record_event``; stored idempotent responses
belong to the shell, ``breitband.idempotency``.)

Every row carries ``tenant_key``; reads go through ``permits.repository`` which applies the caller's scope.
Optimistic locking: ``applications.row_version`` and ``cases.row_version`` are SQLAlchemy ``version_id_col``s; the
API exposes them as ETags and checks ``If-Match`` against them.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from breitband.db import Base


class LayingMethod(str, enum.Enum):
    open_trench = "open_trench"                  # offene Bauweise
    micro_trenching = "micro_trenching"          # DIN 18220, reduced depth
    mini_trenching = "mini_trenching"            # DIN 18220, reduced depth
    directional_drilling = "directional_drilling"  # Spülbohrung (HDD)
    press_drilling = "press_drilling"            # Pressbohrung / Erdrakete
    ploughing = "ploughing"                      # Pflugverfahren
    milling = "milling"                          # Fräsverfahren
    aerial = "aerial"                            # oberirdisch
    existing_duct = "existing_duct"              # Mitnutzung vorhandener Leerrohre


# § 127 (7) TKG: reduced laying depth must be stated expressly for these methods (true or false, never left out).
REDUCED_DEPTH_METHODS = frozenset({LayingMethod.micro_trenching, LayingMethod.mini_trenching, LayingMethod.milling})
# Methods without a trench of their own: depth and width are not asked for.
NO_TRENCH_METHODS = frozenset({LayingMethod.aerial, LayingMethod.existing_duct})


class FeatureKind(str, enum.Enum):
    trench = "trench"                    # a line section
    pit = "pit"                          # Baugrube / Start- und Zielgrube
    cabinet = "cabinet"                  # Verteiler / Kabelverzweiger
    manhole = "manhole"                  # Schacht
    house_connection = "house_connection"  # Hausanschluss
    construction_area = "construction_area"  # Baustelleneinrichtung / Baufeld


class ApplicationStatus(str, enum.Enum):
    draft = "draft"
    submitted = "submitted"                      # cases open, none waiting for the applicant
    information_requested = "information_requested"  # at least one case waits for a supplement
    granted = "granted"                          # every case decided, all granted (or deemed granted)
    partially_granted = "partially_granted"
    refused = "refused"
    withdrawn = "withdrawn"


class CaseStatus(str, enum.Enum):
    received = "received"
    incomplete = "incomplete"            # information requested
    in_review = "in_review"              # confirmed complete
    granted = "granted"
    partially_granted = "partially_granted"
    refused = "refused"
    deemed_granted = "deemed_granted"    # Zustimmungsfiktion, § 127 (3) TKG
    forwarded = "forwarded"              # handed on to another authority (a new case exists there)
    withdrawn = "withdrawn"


OPEN_CASE_STATUSES = (CaseStatus.received, CaseStatus.incomplete, CaseStatus.in_review)
DECIDED_CASE_STATUSES = (CaseStatus.granted, CaseStatus.partially_granted, CaseStatus.refused,
                         CaseStatus.deemed_granted)
GRANTED_CASE_STATUSES = (CaseStatus.granted, CaseStatus.partially_granted, CaseStatus.deemed_granted)


class AttachmentKind(str, enum.Enum):
    route_plan = "route_plan"
    cross_section = "cross_section"
    power_of_attorney = "power_of_attorney"
    traffic_plan = "traffic_plan"
    statement = "statement"
    photo = "photo"
    other = "other"


class CatalogueKind(str, enum.Enum):
    condition = "condition"              # Nebenbestimmung
    refusal_reason = "refusal_reason"


class ApplicationCounter(Base):
    """The last reference number issued per tenant and year (HE-2026-000123); incremented with an upsert."""

    __tablename__ = "permit_reference_counters"

    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer)


class Application(Base):
    __tablename__ = "applications"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    reference: Mapped[str] = mapped_column(String(32))
    applicant_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(32), default=ApplicationStatus.draft.value)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    project_name: Mapped[str | None] = mapped_column(String(300))
    operator_reference: Mapped[str | None] = mapped_column(String(100))
    route_geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    works_started_on: Mapped[date | None] = mapped_column(Date)
    works_completed_on: Mapped[date | None] = mapped_column(Date)
    works: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    row_version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": row_version}


class ApplicationVersion(Base):
    """The content of an application as submitted (1), and after every supplement (2, 3, ...). While the
    application is a draft, version 1 is edited in place; afterwards versions are never changed."""

    __tablename__ = "application_versions"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))        # draft | submission | supplement
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)
    resolution: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    route_changed: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    addressed_case_ids: Mapped[list[str]] = mapped_column(JSONB, default=list)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Attachment(Base):
    """Metadata of an uploaded file. The bytes live under ``settings.data_dir/attachments`` named by SHA-256."""

    __tablename__ = "application_attachments"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    file_name: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    uploaded_by_org: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organisations.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# A case's pieces of one kind that have a geometry (lines: no feature_type), as jsonpath (IMMUTABLE, which a
# generated column needs); the same expressions as migration 0012
_PIECES = "jsonb_array_length(jsonb_path_query_array(part, '$.pieces[*] ? (exists(@.geometry) && ({kind}))'))"
_PIECE_KINDS = {"line": '!exists(@.feature_type) || @.feature_type == null || @.feature_type == "line"',
                "point": '@.feature_type == "point"', "area": '@.feature_type == "area"'}


class Case(Base):
    """The part of an application that one road authority decides, with its own clock.

    ``received_at`` is the receipt of the application (or of the last supplement, which restarts the periods).
    ``complete_at`` is the complete receipt from which the decision period runs; it equals ``received_at`` unless
    the authority requested information within the completeness month, which stops the clock (NULL) until the
    supplement arrives. ``decision_due`` is the last day of the decision period and ``deadline_at`` the instant it
    expires (24:00 Europe/Berlin on that day); the deadline sweep turns open cases past ``deadline_at`` into
    ``deemed_granted``. ``completeness_due`` and ``decision_due`` are the days the periods end on, moved off
    Saturdays, Sundays and public holidays (§ 193 BGB, permits/deadlines.py); ``*_due_statutory`` keep the last days
    by §§ 187, 188 BGB alone and ``due_moves`` the explanation of each move ({"completeness": Due, "decision": Due}
    as ``deadlines.Due.as_json``). Cases closed before migration 0014 keep their unmoved deadlines.
    """

    __tablename__ = "cases"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"))
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    authority_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    # The application's applicant, copied (it never changes): an operator's inbox reads its cases in index order.
    applicant_org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(32), default=CaseStatus.received.value)
    application_version: Mapped[int] = mapped_column(Integer)
    part: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # The number of the part's pieces per kind with a geometry, kept by PostgreSQL (migration 0012): what the OGC
    # API's case-parts collections count for numberMatched without reading the part
    line_pieces: Mapped[int] = mapped_column(Integer, Computed(_PIECES.format(kind=_PIECE_KINDS["line"])))
    point_pieces: Mapped[int] = mapped_column(Integer, Computed(_PIECES.format(kind=_PIECE_KINDS["point"])))
    area_pieces: Mapped[int] = mapped_column(Integer, Computed(_PIECES.format(kind=_PIECE_KINDS["area"])))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completeness_due: Mapped[date] = mapped_column(Date)
    completeness_due_statutory: Mapped[date] = mapped_column(Date)
    complete_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completeness_confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_due: Mapped[date | None] = mapped_column(Date)
    decision_due_statutory: Mapped[date | None] = mapped_column(Date)
    due_moves: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    extension: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    information_requests: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    effective_on: Mapped[date | None] = mapped_column(Date)
    forwarded_from_case_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("cases.id", ondelete="SET NULL"))
    forwarded_to_case_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("cases.id", ondelete="SET NULL"))
    forward: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    closed_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    row_version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": row_version}


class CatalogueEntry(Base):
    """A standard condition (Nebenbestimmung) or refusal reason of a tenant. Entries are deactivated, never
    deleted, so old decisions keep pointing at something; decisions also store a copy of code, title and text."""

    __tablename__ = "permit_catalogue"

    tenant_key: Mapped[str] = mapped_column(ForeignKey("tenants.key", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuditRecord(Base):
    """Append-only record of every command. The database refuses UPDATE, DELETE and TRUNCATE (trigger), and the
    table has no foreign keys, so removing a tenant or an application never removes its audit trail."""

    __tablename__ = "permit_audit"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_key: Mapped[str] = mapped_column(String(16))
    application_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    case_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    command: Mapped[str] = mapped_column(String(64))
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    actor_name: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(32))
    actor_org_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    on_behalf_of_org_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    version_before: Mapped[int | None] = mapped_column(Integer)
    version_after: Mapped[int | None] = mapped_column(Integer)
    status_before: Mapped[str | None] = mapped_column(String(32))
    status_after: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
