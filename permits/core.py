"""Shared rules of the permits domain: versions and transitions, audit and events, the derived application status,
application content, the route and the case clock. Used by ``service`` (applicant commands), ``review`` (authority
commands) and ``deemed`` (deemed approvals). Never commits.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy.orm import Session

from breitband.errors import Conflict, PreconditionFailed, UnprocessableEntity
from breitband.identity import Principal
from breitband.models import Tenant
from geo.crs import parse_crs, transform_geometry
from geo.models import Authority
from geo.rules import Holidays
from geo.service import check_route_limits, resolve, tenant_context
from notifications import outbox
from permits import deadlines, repository, workdays
from permits.applications.sections import normalise_sections
from permits.models import (
    DECIDED_CASE_STATUSES,
    GRANTED_CASE_STATUSES,
    OPEN_CASE_STATUSES,
    Application,
    ApplicationStatus,
    AttachmentKind,
    AuditRecord,
    Case,
    CaseStatus,
)
from permits.schemas import ApplicationFields, SupplementIn

OPEN = {s.value for s in OPEN_CASE_STATUSES}
DECIDED = {s.value for s in DECIDED_CASE_STATUSES}
GRANTED = {s.value for s in GRANTED_CASE_STATUSES}
CONTENT_FIELDS = tuple(ApplicationFields.model_fields)


@dataclass(frozen=True)
class Actor:
    user_id: uuid.UUID | None
    name: str
    role: str
    org_id: uuid.UUID | None

    @classmethod
    def of(cls, principal: Principal) -> "Actor":
        return cls(principal.user_id, principal.name, principal.role.value, principal.organisation_id)


SYSTEM = Actor(None, "Breitband (Fristablauf)", "system", None)


# --- shared helpers ----------------------------------------------------------------------------------------------

def etag(row_version: int) -> str:
    return f'"{row_version}"'


def check_version(obj: Application | Case, expected: set[int] | None) -> None:
    if expected is not None and obj.row_version not in expected:
        raise PreconditionFailed(f"The resource has changed: it is at version {etag(obj.row_version)}, you sent "
                                 f"If-Match for {', '.join(etag(v) for v in sorted(expected))}. Read it again.",
                                 type="stale-version", current_etag=etag(obj.row_version))


def illegal(command: str, state: str, allowed: list[str], detail: str | None = None) -> Conflict:
    return Conflict(detail or f"'{command}' is not possible in state '{state}'; possible now: "
                    + (", ".join(allowed) or "nothing"), type="illegal-transition", command=command, state=state,
                    allowed=allowed)


def audit(session: Session, *, app: Application, actor: Actor, command: str, at: datetime,
          case: Case | None = None, version_before: int | None = None, version_after: int | None = None,
          status_before: str | None = None, status_after: str | None = None,
          on_behalf_of: uuid.UUID | None = None, detail: dict[str, Any] | None = None) -> None:
    repository.add_audit(session, AuditRecord(
        tenant_key=app.tenant_key, application_id=app.id, case_id=case.id if case else None, command=command,
        actor_user_id=actor.user_id, actor_name=actor.name, actor_role=actor.role, actor_org_id=actor.org_id,
        on_behalf_of_org_id=on_behalf_of, at=at, version_before=version_before, version_after=version_after,
        status_before=status_before, status_after=status_after,
        detail=json.loads(json.dumps(detail or {}, default=str))))


def event(session: Session, type: str, app: Application, at: datetime, case: Case | None = None,
          **payload: Any) -> None:
    body = {"application_id": str(app.id), "reference": app.reference, "tenant_key": app.tenant_key}
    if case is not None:
        body.update(case_id=str(case.id), authority_org_id=str(case.authority_org_id), status=case.status)
    body.update(payload)
    outbox.record_event(session, tenant_key=app.tenant_key, type=type, created_at=at, application_id=app.id,
                        case_id=case.id if case else None, payload=json.loads(json.dumps(body, default=str)))


def derive_status(app: Application, cases: list[Case]) -> str:
    """The application's overall status from its cases (forwarded cases are replaced by their successors)."""
    if app.submitted_at is None:
        return ApplicationStatus.withdrawn.value if app.withdrawn_at else ApplicationStatus.draft.value
    relevant = [c for c in cases if c.status != CaseStatus.forwarded.value]
    if any(c.status == CaseStatus.incomplete.value for c in relevant):
        return ApplicationStatus.information_requested.value
    if any(c.status in OPEN for c in relevant):
        return ApplicationStatus.submitted.value
    decided = [c for c in relevant if c.status in DECIDED]
    if not decided:
        return ApplicationStatus.withdrawn.value
    if all(c.status in (CaseStatus.granted.value, CaseStatus.deemed_granted.value) for c in decided):
        return ApplicationStatus.granted.value
    if all(c.status == CaseStatus.refused.value for c in decided):
        return ApplicationStatus.refused.value
    return ApplicationStatus.partially_granted.value


def touch(session: Session, app: Application, cases: list[Case], now: datetime) -> None:
    """Recompute the derived status and bump the application's version (its representation includes the cases)."""
    before = app.status
    app.status = derive_status(app, cases)
    app.updated_at = now
    if app.status != before:
        event(session, "application.status_changed", app, now, status_before=before, status=app.status)


def application_commands(app: Application, cases: list[Case]) -> list[str]:
    if app.status == ApplicationStatus.draft.value:
        return ["update", "attachments", "submit", "withdraw"]
    allowed: list[str] = []
    if any(c.status in OPEN for c in cases):
        allowed += ["attachments", "supplements", "withdraw"]
    if any(c.status in GRANTED for c in cases):
        if app.works_started_on is None:
            allowed.append("works-start")
        elif app.works_completed_on is None:
            allowed.append("works-completion")
    return allowed


def require_command(app: Application, cases: list[Case], command: str) -> None:
    allowed = application_commands(app, cases)
    if command not in allowed:
        raise illegal(command, app.status, allowed)


# --- content -----------------------------------------------------------------------------------------------------

def empty_content() -> dict[str, Any]:
    content: dict[str, Any] = {name: None for name in CONTENT_FIELDS}
    content.update(crs="EPSG:4326", traffic_restrictions=[], attachment_ids=[])
    return content


def _dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, (uuid.UUID,)):
        return str(value)
    return json.loads(json.dumps(value, default=str)) if value is not None else None


def merge_content(session: Session, app: Application, base: dict[str, Any], fields: ApplicationFields | SupplementIn,
                  names: set[str]) -> dict[str, Any]:
    """Apply the given fields (merge-patch semantics) and check what can be checked on a draft."""
    content = dict(base)
    for name in names:
        if name not in content and name not in CONTENT_FIELDS:
            continue
        value = getattr(fields, name)
        if name == "sections" and value is not None:
            value = normalise_sections(value)
        elif name == "crs" and value is not None:
            value = f"EPSG:{parse_crs(value)}"
        content[name] = _dump(value)
    if "sections" in names and getattr(fields, "sections", None) is not None:
        legacy = sections_crs(fields.sections, getattr(fields, "crs", None) if "crs" in names else None)
        if legacy is not None:
            content["crs"] = legacy
    if content.get("crs") is None:
        content["crs"] = "EPSG:4326"
    if names & {"sections", "crs"} and content.get("sections"):
        # The route limits hold for drafts too (issue 11): a route over them is refused before anything is
        # stored; a draft stored before (over them) stays readable and editable in its other fields.
        check_route_limits(session, app.tenant_key, content["sections"], content["crs"])
    content["traffic_restrictions"] = content.get("traffic_restrictions") or []
    content["attachment_ids"] = list(dict.fromkeys(content.get("attachment_ids") or []))
    errors: list[dict[str, str]] = []
    if content.get("planned_start") and content.get("planned_end") and \
            content["planned_end"] < content["planned_start"]:
        errors.append({"field": "planned_end", "message": "lies before planned_start"})
    for i, tr in enumerate(content["traffic_restrictions"]):
        if tr.get("start") and tr.get("end") and tr["end"] < tr["start"]:
            errors.append({"field": f"traffic_restrictions[{i}].end", "message": "lies before start"})
    known = {str(a.id): a for a in repository.attachments(session, app.id)}
    for i, att_id in enumerate(content["attachment_ids"]):
        if att_id not in known:
            errors.append({"field": f"attachment_ids[{i}]", "message": f"no attachment {att_id} on this "
                                                                       "application; upload it first"})
    rep = content.get("representative")
    poa = rep.get("power_of_attorney_attachment_id") if rep else None
    if poa:
        if poa not in known:
            errors.append({"field": "representative.power_of_attorney_attachment_id",
                           "message": f"no attachment {poa} on this application"})
        elif known[poa].kind != AttachmentKind.power_of_attorney.value:
            errors.append({"field": "representative.power_of_attorney_attachment_id",
                           "message": f"attachment {poa} is a {known[poa].kind}, not a power_of_attorney"})
        elif poa not in content["attachment_ids"]:
            content["attachment_ids"].append(poa)
    if errors:
        raise UnprocessableEntity("; ".join(f"{e['field']}: {e['message']}" for e in errors),
                                  type="validation-error", errors=errors)
    return content


def sections_crs(sections: Any, crs: str | None) -> str | None:
    """The CRS named by the legacy ``crs`` member of a GeoJSON route (as /resolve honours it), so that the same
    file means the same place everywhere: kept as the application's ``crs`` instead of being dropped with the
    member (which stored EPSG:4326 for EPSG:25832 metres). A ``crs`` field that says otherwise → 422."""
    member = sections.get("crs") if isinstance(sections, dict) else None
    name = (member.get("properties") or {}).get("name") if isinstance(member, dict) else None
    if not name:
        return None
    legacy = f"EPSG:{parse_crs(name, field='sections.crs')}"
    if crs is not None and f"EPSG:{parse_crs(crs)}" != legacy:
        raise UnprocessableEntity(f"sections names {legacy} in its crs member but the field crs says {crs}; "
                                  "drop one of them", type="crs-conflict", field="crs", sections_crs=legacy)
    return legacy


def completeness_errors(content: dict[str, Any], now: datetime) -> list[dict[str, str]]:
    """What a submission needs beyond a draft, all reported at once."""
    errors = []
    for name, message in (("project_name", "a project name is required"),
                          ("contact", "a contact person is required"),
                          ("sections", "the route (sections) is required"),
                          ("planned_start", "the planned start is required"),
                          ("planned_end", "the planned end is required")):
        if not content.get(name):
            errors.append({"field": name, "message": message})
    rep = content.get("representative")
    if rep and not rep.get("power_of_attorney_attachment_id"):
        errors.append({"field": "representative.power_of_attorney_attachment_id",
                       "message": "an authorised representative needs a power of attorney (upload it as an "
                                  "attachment of kind power_of_attorney)"})
    if content.get("planned_start") and content["planned_start"] < deadlines.local_date(now).isoformat():
        errors.append({"field": "planned_start", "message": "lies in the past"})
    return errors


# --- resolution --------------------------------------------------------------------------------------------------

def resolve_route(session: Session, tenant_key: str, content: dict[str, Any]) -> dict[str, Any]:
    result = resolve(session, tenant_key, content["sections"], content.get("crs") or "EPSG:4326")
    if not result.get("authorities"):
        outside = result.get("outside_public_roads", {}).get("length_m", 0)
        private = result.get("private_roads", {}).get("length_m", 0)
        raise UnprocessableEntity(
            f"No part of the route lies in a public road of tenant {tenant_key!r} ({outside} m outside public "
            f"roads, {private} m in private roads), so no road authority has to consent. Check the route and its "
            "CRS.", type="no-public-road", field="sections", outside_public_roads_m=outside, private_roads_m=private,
            warnings=result.get("warnings", []))
    missing = [a for a in result["authorities"] if a.get("id") is None]
    if missing:
        names = ", ".join(f"{a['name']} ({a['length_m']} m)" for a in missing)
        raise UnprocessableEntity(
            f"The route runs through roads whose authority is not in tenant {tenant_key!r}'s directory: {names}. "
            "No case can be opened for them; the tenant's operating office must import the missing boundaries or "
            "agencies (breitband import boundaries) before this application can be submitted. The draft is kept.",
            type="authority-missing", field="sections",
            authorities=[{"name": a["name"], "kind": a["kind"], "key": a["key"], "length_m": a["length_m"]}
                         for a in missing])
    return result


def _route_4326(content: dict[str, Any]) -> Any:
    geoms = [shapely.geometry.shape(f["geometry"]) for f in content["sections"]["features"]]
    return transform_geometry(shapely.GeometryCollection(geoms), parse_crs(content.get("crs")), 4326)


def sections_4326(content: dict[str, Any]) -> dict[str, Any] | None:
    """The sections as a GeoJSON FeatureCollection in EPSG:4326 with their properties (laying method, depth, width,
    kind), for maps of readers who do not get the application's content as stored (participating bodies)."""
    fc = content.get("sections")
    if not fc or not fc.get("features"):
        return None
    src = parse_crs(content.get("crs"))
    features = []
    for f in fc["features"]:
        geometry = f.get("geometry")
        if src != 4326 and geometry:
            geometry = json.loads(shapely.to_geojson(transform_geometry(shapely.geometry.shape(geometry), src, 4326)))
        features.append({"type": "Feature", "geometry": geometry, "properties": dict(f.get("properties") or {})})
    return {"type": "FeatureCollection", "features": features}


def route_geometry(content: dict[str, Any]) -> Any:
    """The route in EPSG:4326 (for the area filter of the inboxes and the map), after the resolution accepted it."""
    return from_shape(_route_4326(content), srid=4326)


def draft_route_geometry(content: dict[str, Any]) -> Any:
    """The route of a draft for maps, or None while its geometry is not usable yet (a draft may hold anything that
    passes the attribute checks; the resolution judges the geometry at submit and explains what is wrong)."""
    if not content.get("sections"):
        return None
    try:
        coll = _route_4326(content)
        xy = shapely.get_coordinates(coll)
    except Exception:  # noqa: BLE001 - best effort for the map only; submit reports the problem with its place
        return None
    if not len(xy) or not np.isfinite(xy).all() or (np.abs(xy[:, 0]) > 180).any() or (np.abs(xy[:, 1]) > 90).any():
        return None
    return from_shape(coll, srid=4326)


def part_of(authority: dict[str, Any]) -> dict[str, Any]:
    return {k: authority.get(k) for k in ("id", "name", "kind", "key", "length_m", "pieces")}


def working_calendar(session: Session, tenant_key: str, authority_org_id: uuid.UUID | None
                     ) -> workdays.WorkingCalendar:
    """The calendar of the authority's seat under the tenant's ``[holidays]`` (the state's; a place's where the
    state differs inside, found by the authority's AGS)."""
    authority = session.get(Authority, authority_org_id) if authority_org_id is not None else None
    return workdays.calendar_for(tenant_holidays(session, tenant_key),
                                 authority.key if authority is not None else None)


def tenant_holidays(session: Session, tenant_key: str) -> Holidays:
    """The tenant's ``[holidays]`` rules; rules that do not validate get their state_key's calendar
    (``workdays.holidays_of``): periods end on working days all the same."""
    try:
        return tenant_context(session, tenant_key)[0].holidays
    except UnprocessableEntity:
        return workdays.holidays_of(session.get(Tenant, tenant_key).rules)


def set_completeness(case: Case, due: deadlines.Due) -> None:
    case.completeness_due_statutory, case.completeness_due = due.statutory, due.end
    case.due_moves = {**(case.due_moves or {}), "completeness": due.as_json()}


def set_decision(case: Case, due: deadlines.Due | None) -> None:
    """The decision period ends with ``due`` (None: the clock is stopped); ``deadline_at`` is 24:00 of its end."""
    moves = {k: v for k, v in (case.due_moves or {}).items() if k != "decision"}
    if due is None:
        case.decision_due = case.decision_due_statutory = case.deadline_at = None
    else:
        case.decision_due_statutory, case.decision_due = due.statutory, due.end
        case.deadline_at = deadlines.period_end(due.end)
        moves["decision"] = due.as_json()
    case.due_moves = moves


def due_of(case: Case, kind: str) -> deadlines.Due | None:
    """The end of the case's completeness (``kind`` "completeness") or decision period with why it was moved; cases
    closed before the periods were moved (migration 0014) have no explanation: statutory day = end."""
    end = case.completeness_due if kind == "completeness" else case.decision_due
    if end is None:
        return None
    stored = (case.due_moves or {}).get(kind)
    if stored and stored.get("end") == end.isoformat():
        return deadlines.Due.from_json(stored)
    statutory = case.completeness_due_statutory if kind == "completeness" else case.decision_due_statutory
    return deadlines.Due(statutory or end, end)


def start_clock(session: Session, case: Case, at: datetime) -> None:
    """Receipt at ``at``: completeness month and decision period start (the application counts as complete as of
    its receipt unless the authority reports it incomplete within the month). Both end on a working day of the
    authority's seat (§ 193 BGB)."""
    cal = working_calendar(session, case.tenant_key, case.authority_org_id)
    case.received_at = at
    set_completeness(case, deadlines.completeness(at, cal))
    case.completeness_confirmed_at = None
    case.complete_at = at
    set_decision(case, deadlines.decision(at, cal))
    case.extension = None


def new_case(session: Session, app: Application, authority_org_id: uuid.UUID, part: dict[str, Any], at: datetime,
             version: int, forwarded_from: uuid.UUID | None = None) -> Case:
    case = Case(id=uuid.uuid4(), tenant_key=app.tenant_key, application_id=app.id, authority_org_id=authority_org_id,
                applicant_org_id=app.applicant_org_id, status=CaseStatus.received.value, application_version=version,
                part=part, information_requests=[],
                forwarded_from_case_id=forwarded_from, created_at=at, updated_at=at)
    start_clock(session, case, at)
    session.add(case)
    return case
