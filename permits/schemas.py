"""Pydantic schemas of the permits API (input validation and the documented output shapes)."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from permits.models import AttachmentKind, CaseStatus, LayingMethod

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- input -----------------------------------------------------------------------------------------------------

class Contact(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(None, max_length=320, pattern=EMAIL_PATTERN)
    phone: str | None = Field(None, max_length=64)

    @model_validator(mode="after")
    def _reachable(self) -> "Contact":
        if not self.email and not self.phone:
            raise ValueError("give an e-mail address or a phone number of the contact person")
        return self


class Representative(Strict):
    """An authorised representative (e.g. a planning office) acting with a power of attorney."""

    name: str = Field(min_length=1, max_length=200)
    organisation: str | None = Field(None, max_length=300)
    email: str | None = Field(None, max_length=320, pattern=EMAIL_PATTERN)
    phone: str | None = Field(None, max_length=64)
    power_of_attorney_attachment_id: uuid.UUID | None = None


class TrafficRestrictionKind(str, enum.Enum):
    lane_narrowing = "lane_narrowing"
    lane_closure = "lane_closure"
    full_closure = "full_closure"
    sidewalk_closure = "sidewalk_closure"
    cycleway_closure = "cycleway_closure"
    parking_ban = "parking_ban"
    traffic_lights = "traffic_lights"
    detour = "detour"
    other = "other"


# German names of the restriction kinds, for texts the service writes (participation reasons, documents).
TRAFFIC_RESTRICTION_DE = {
    "lane_narrowing": "Fahrstreifeneinengung", "lane_closure": "Fahrstreifensperrung", "full_closure": "Vollsperrung",
    "sidewalk_closure": "Gehwegsperrung", "cycleway_closure": "Radwegsperrung", "parking_ban": "Halteverbot",
    "traffic_lights": "Baustellenampel", "detour": "Umleitung", "other": "sonstige Verkehrsbeschränkung",
}


class TrafficRestriction(Strict):
    kind: TrafficRestrictionKind
    description: str | None = Field(None, max_length=2000)
    road: str | None = Field(None, max_length=300)
    start: date | None = None
    end: date | None = None


class ApplicationFields(Strict):
    """The content of an application. Every field is optional in a draft; submit checks completeness."""

    project_name: str | None = Field(None, max_length=300)
    operator_reference: str | None = Field(None, max_length=100)
    description: str | None = Field(None, max_length=5000)
    contact: Contact | None = None
    representative: Representative | None = None
    sections: dict[str, Any] | None = Field(
        None, description="GeoJSON FeatureCollection (or one Feature): trench lines with laying_method, depth_cm, "
                          "width_cm, reduced_depth; points and areas with kind pit | cabinet | manhole | "
                          "house_connection | construction_area")
    crs: str | None = Field(None, max_length=64, description="CRS of the sections' coordinates; default EPSG:4326")
    planned_start: date | None = None
    planned_end: date | None = None
    traffic_restrictions: list[TrafficRestriction] | None = None
    attachment_ids: list[uuid.UUID] | None = None


class ApplicationCreate(ApplicationFields):
    pass


class ApplicationPatch(ApplicationFields):
    """JSON merge patch of a draft: the fields present replace the stored ones; ``null`` clears a field."""


class SectionDefaults(Strict):
    """What a route file's lines get where the file has no such attribute (form fields or query parameters of
    an upload; a Shapefile cannot even name ``laying_method`` in full)."""

    laying_method: LayingMethod | None = None
    depth_cm: int | None = Field(None, ge=1, le=1000)
    width_cm: int | None = Field(None, ge=1, le=500)
    reduced_depth: bool | None = None


class SupplementIn(Strict):
    message: str = Field(min_length=1, max_length=10000, description="The answer to the authority")
    case_ids: list[uuid.UUID] | None = Field(
        None, description="Cases the supplement answers. Default: the cases waiting for information, or all open "
                          "cases when none waits. A changed route always restarts every open case.")
    attachment_ids: list[uuid.UUID] = Field(default_factory=list, description="Attachments added with it")
    sections: dict[str, Any] | None = Field(None, description="A changed route (GeoJSON), if any")
    crs: str | None = Field(None, max_length=64)
    planned_start: date | None = None
    planned_end: date | None = None
    traffic_restrictions: list[TrafficRestriction] | None = None


class WithdrawIn(Strict):
    reason: str | None = Field(None, max_length=5000)


class WorksStartIn(Strict):
    started_on: date
    note: str | None = Field(None, max_length=5000)


class WorksCompletionIn(Strict):
    completed_on: date
    as_built: dict[str, Any] | None = Field(None, description="The as-built route (GeoJSON), optional")
    crs: str | None = Field(None, max_length=64)
    note: str | None = Field(None, max_length=5000)


class RequestInformationIn(Strict):
    message: str = Field(min_length=1, max_length=10000)
    items: list[str] = Field(default_factory=list, description="What is missing, one item each")

    @field_validator("items")
    @classmethod
    def _items(cls, v: list[str]) -> list[str]:
        if any(not i.strip() for i in v):
            raise ValueError("items must not be empty")
        return [i.strip() for i in v]


class ConfirmCompleteIn(Strict):
    note: str | None = Field(None, max_length=5000)


class DecisionOutcome(str, enum.Enum):
    granted = "granted"
    partially_granted = "partially_granted"
    refused = "refused"


class DecisionIn(Strict):
    outcome: DecisionOutcome
    conditions: list[str] = Field(default_factory=list, description="Condition codes from GET /conditions")
    additional_conditions: list[str] = Field(default_factory=list, description="Free-text conditions")
    reasons: list[str] = Field(default_factory=list, description="Refusal reason codes from GET /refusal-reasons")
    explanation: str | None = Field(None, max_length=20000, description="Reasons in words (required for a "
                                                                        "refusal or partial grant)")
    note: str | None = Field(None, max_length=5000)


class ForwardIn(Strict):
    to_organisation_id: uuid.UUID
    reason: str = Field(min_length=1, max_length=5000)
    piece_indexes: list[int] | None = Field(
        None, description="Indexes into the case's part.pieces to hand on; default all (the whole case)")


class ExtendDeadlineIn(Strict):
    reason: str = Field(min_length=1, max_length=5000)


# --- output ----------------------------------------------------------------------------------------------------

class OrgRef(BaseModel):
    id: uuid.UUID
    name: str


class AttachmentOut(BaseModel):
    id: uuid.UUID
    kind: AttachmentKind
    file_name: str
    content_type: str
    size_bytes: int
    sha256: str
    created_at: datetime
    url: str


class CaseSummary(BaseModel):
    id: uuid.UUID
    authority: OrgRef
    status: CaseStatus
    mine: bool = Field(description="The case belongs to the caller's organisation (authorities)")
    length_m: float | None = None
    decision_due: date | None = None
    effective_on: date | None = None


class ApplicationOut(BaseModel):
    id: uuid.UUID
    tenant_key: str
    reference: str
    status: str
    applicant: OrgRef
    version: int = Field(description="Number of the current content version")
    etag: str
    content: dict[str, Any]
    cases: list[CaseSummary]
    route: dict[str, Any] | None = Field(None, description="The route split by authority (from the resolution)")
    attachments: list[AttachmentOut]
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    withdrawn_at: datetime | None
    works: dict[str, Any]
    allowed_commands: list[str]


class RouteSource(BaseModel):
    format: str = Field(description="The format recognised by content: GeoJSON, Shapefile, GPKG, KML, KMZ, GML, "
                                    "GPX, FlatGeobuf, DXF, CSV")
    layer: str | None = Field(None, description="The layer read (multi-layer formats)")
    crs: str = Field(description="The CRS the file's coordinates were in, e.g. EPSG:25832")
    crs_name: str = Field(description="That CRS's name, e.g. ETRS89 / UTM zone 32N")


class RouteFileOut(BaseModel):
    source: RouteSource
    warnings: list[dict[str, Any]] = Field(description="What the reading changed: z-m-dropped (heights and "
                                                       "measures), curves-linearised")


class ApplicationRouteOut(ApplicationOut):
    """An application whose route was just read from a file: what was read beside it. The sections are stored
    in EPSG:4326 (``content.crs``), transformed at full precision from the CRS named in ``route_file.source``."""

    route_file: RouteFileOut


class ApplicationListItem(BaseModel):
    id: uuid.UUID
    reference: str
    status: str
    project_name: str | None
    operator_reference: str | None
    applicant: OrgRef
    created_at: datetime
    submitted_at: datetime | None
    cases: list[CaseSummary]


class Page(BaseModel):
    items: list[Any]
    limit: int
    offset: int
    has_more: bool


class ApplicationPage(Page):
    items: list[ApplicationListItem]


class SkippedDay(BaseModel):
    date: date
    why: list[str] = Field(description="Why it is no working day, in German: 'Samstag', 'Sonntag', holiday names")


class DueOut(BaseModel):
    """The end of a statutory period (§§ 187, 188, 193 BGB; permits/deadlines.py)."""
    statutory: date = Field(description="The last day by §§ 187, 188 BGB alone")
    end: date = Field(description="The day the period ends on: the next working day where the statutory one is a "
                                  "Saturday, Sunday or public holiday at the authority's seat (§ 193 BGB)")
    moved_days: int
    reason: str | None = Field(description="Why it was moved, German ('der 27.05.2027 ist Fronleichnam'); null if not")
    label: str | None = Field(None, description="'Freitag, 28.05.2027 — der 27.05.2027 ist Fronleichnam'")
    skipped: list[SkippedDay]


class CalculatedDue(DueOut):
    expires_at: datetime = Field(description="24:00 Europe/Berlin on the end, as a UTC instant")


class CalendarOut(BaseModel):
    state: str | None = Field(description="The state's code (null: the nationwide holidays only)")
    subdivision: str | None = Field(description="The holidays package's subdivision used (a state, or a place "
                                                "like Augsburg)")
    categories: list[str]
    place: str | None = Field(description="The AGS prefix of the tenant's place entry that applied, if any")
    local_days: int = Field(description="Days off the tenant's rules add")


class DeadlinesOut(BaseModel):
    """GET /api/v1/deadlines: the period ends for a receipt on the tenant's working calendar."""
    tenant: str
    calendar: CalendarOut
    received_on: date
    complete_on: date
    completeness: CalculatedDue
    decision: CalculatedDue
    extended: CalculatedDue = Field(description="The decision period after the one extension of § 150 TKG")
    applies_extension: bool
    deemed_approval_at: datetime = Field(description="When the consent is deemed granted if nobody decides: the end "
                                                     "of the decision period (extended, where asked for)")


class CaseDeadlines(BaseModel):
    completeness: DueOut | None
    decision: DueOut | None = Field(description="Null while the clock is stopped")


class CaseOut(BaseModel):
    id: uuid.UUID
    tenant_key: str
    application: dict[str, Any]
    authority: OrgRef
    status: CaseStatus
    etag: str
    application_version: int
    part: dict[str, Any]
    received_at: datetime
    completeness_due: date
    completeness_confirmed_at: datetime | None
    complete_at: datetime | None = Field(description="Complete receipt; null while the clock is stopped")
    clock_running: bool
    decision_due: date | None = Field(description="The day the decision period ends on (moved off weekends and "
                                                  "holidays, § 193 BGB)")
    completeness_due_statutory: date = Field(description="Statutory last day of the completeness month, unmoved")
    decision_due_statutory: date | None = Field(description="Statutory last day of the decision period, unmoved")
    deadlines: CaseDeadlines = Field(description="Both periods' ends with the reason for every move")
    deadline_at: datetime | None = Field(description="The instant the decision period expires (24:00 Berlin)")
    days_left: int | None
    overdue: bool
    extension: dict[str, Any] | None
    information_requests: list[dict[str, Any]]
    decision: dict[str, Any] | None
    decided_at: datetime | None
    effective_on: date | None
    forwarded_from_case_id: uuid.UUID | None
    forwarded_to_case_id: uuid.UUID | None
    forward: dict[str, Any] | None
    closed_reason: str | None
    allowed_commands: list[str]


class CaseListItem(BaseModel):
    id: uuid.UUID
    application_id: uuid.UUID
    reference: str
    project_name: str | None
    applicant: OrgRef
    authority: OrgRef
    status: CaseStatus
    received_at: datetime
    complete_at: datetime | None
    completeness_due: date
    completeness_due_statutory: date
    completeness_due_moved: str | None = Field(description="Why the completeness month ends later than its statutory "
                                                           "last day (German); null if it does not")
    decision_due: date | None
    decision_due_statutory: date | None
    decision_due_moved: str | None = Field(description="Why the decision period ends later than its statutory last "
                                                       "day (German): 'der 27.05.2027 ist Fronleichnam'")
    days_left: int | None
    overdue: bool
    length_m: float | None


class CasePage(Page):
    items: list[CaseListItem]
    next: str | None = Field(None, description="Cursor of the following page (send it as `after`); null on the last")


class VersionOut(BaseModel):
    number: int
    kind: Literal["draft", "submission", "supplement"]
    content: dict[str, Any]
    resolution: dict[str, Any] | None
    route_changed: bool
    note: str | None
    addressed_case_ids: list[str]
    created_at: datetime
    submitted_at: datetime | None


class AuditOut(BaseModel):
    id: int
    at: datetime
    command: str
    case_id: uuid.UUID | None
    actor: dict[str, Any]
    on_behalf_of_org_id: uuid.UUID | None
    version_before: int | None
    version_after: int | None
    status_before: str | None
    status_after: str | None
    detail: dict[str, Any]


class CatalogueEntryOut(BaseModel):
    code: str
    title: str
    text: str
    category: str | None
    active: bool
