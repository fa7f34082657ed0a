"""The applicant's side: drafts, attachments, submission, supplements, withdrawal, works notices.
Business rules only; never commits (the request's session dependency does).

Every command locks the application row first (then its cases), checks the caller's expected version (If-Match),
settles deemed approvals that fell due before it, checks the transition, changes state, and writes the audit
record and the events in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from breitband.dates import iso
from breitband.errors import Conflict, UnprocessableEntity
from breitband.identity import Principal
from geo.service import prepare, read_route
from permits import core, deadlines, repository
from permits.applications import attachments as files
from permits.applications.sections import from_file, normalise_sections
from permits.cases import deemed
from permits.models import (
    Application,
    ApplicationStatus,
    ApplicationVersion,
    Attachment,
    AttachmentKind,
    Case,
    CaseStatus,
)
from permits.pipeline import service as pipeline
from permits.schemas import (
    ApplicationCreate,
    ApplicationPatch,
    SectionDefaults,
    SupplementIn,
    WithdrawIn,
    WorksCompletionIn,
    WorksStartIn,
)


def _locked(session: Session, principal: Principal, application_id: uuid.UUID, expected: set[int] | None,
            now: datetime) -> tuple[Application, list[Case]]:
    repository.get_application(session, principal, application_id)        # scope: 404 if not readable
    app = repository.lock_application(session, application_id)
    cases = repository.lock_cases(session, application_id)
    core.check_version(app, expected)
    deemed.apply_due(session, app, cases, now)
    return app, cases


def _finish(session: Session, app: Application, cases: list[Case], principal: Principal, command: str,
            now: datetime, before: tuple[int, str], detail: dict[str, Any]) -> Application:
    core.touch(session, app, cases, now)
    session.flush()
    core.audit(session, app=app, actor=core.Actor.of(principal), command=command, at=now,
               version_before=before[0], version_after=app.row_version, status_before=before[1],
               status_after=app.status, on_behalf_of=app.applicant_org_id, detail=detail)
    return app


def create(session: Session, principal: Principal, data: ApplicationCreate, now: datetime,
           route_file: dict[str, Any] | None = None) -> Application:
    number = repository.next_reference_number(session, principal.tenant_key, deadlines.local_date(now).year)
    app = Application(id=uuid.uuid4(), tenant_key=principal.tenant_key,
                      reference=f"{principal.tenant_key.upper()}-{deadlines.local_date(now).year}-{number:06d}",
                      applicant_org_id=principal.organisation_id, created_by=principal.user_id,
                      status=ApplicationStatus.draft.value, current_version=1, created_at=now, updated_at=now,
                      works={})
    content = core.merge_content(session, app, core.empty_content(), data, data.model_fields_set)
    app.project_name, app.operator_reference = content.get("project_name"), content.get("operator_reference")
    app.route_geom = core.draft_route_geometry(content)
    session.add(app)
    session.flush()
    session.add(ApplicationVersion(application_id=app.id, tenant_key=app.tenant_key, number=1, kind="draft",
                                   content=content, created_by=principal.user_id, created_at=now,
                                   addressed_case_ids=[]))
    session.flush()
    core.audit(session, app=app, actor=core.Actor.of(principal), command="create", at=now,
               version_after=app.row_version, status_after=app.status, on_behalf_of=app.applicant_org_id,
               detail={"fields": sorted(data.model_fields_set)} | ({"route_file": route_file} if route_file else {}))
    core.event(session, "application.created", app, now, status=app.status)
    return app


def update_draft(session: Session, principal: Principal, application_id: uuid.UUID, data: ApplicationPatch,
                 expected: set[int] | None, now: datetime) -> Application:
    app, cases = _locked(session, principal, application_id, expected, now)
    core.require_command(app, cases, "update")
    before = (app.row_version, app.status)
    version = repository.version_row(session, app.id, app.current_version)
    version.content = core.merge_content(session, app, version.content, data, data.model_fields_set)
    app.project_name = version.content.get("project_name")
    app.operator_reference = version.content.get("operator_reference")
    if "sections" in data.model_fields_set or "crs" in data.model_fields_set:
        app.route_geom = core.draft_route_geometry(version.content)
    return _finish(session, app, cases, principal, "update", now, before, {"fields": sorted(data.model_fields_set)})


def route_from_file(session: Session, tenant_key: str, body: bytes, crs: str | None, layer: str | None,
                    defaults: SectionDefaults) -> tuple[dict[str, Any], dict[str, Any]]:
    """A route file → (sections in EPSG:4326 with the file's attributes and the upload's defaults, what was read:
    ``{"source", "warnings"}``). The file is read and its geometry checked like a route to resolve
    (``geo.service.read_route``); the permit attributes are checked when the sections are merged."""
    read = read_route(session, tenant_key, body, crs, layer)
    sections = from_file(read["route"], defaults.model_dump(exclude_none=True, mode="json"))
    return sections, {"source": read["source"], "warnings": read["warnings"]}


def create_from_file(session: Session, principal: Principal, data: ApplicationCreate, body: bytes,
                     crs: str | None, layer: str | None, defaults: SectionDefaults, now: datetime
                     ) -> tuple[Application, dict[str, Any]]:
    """``create`` with the route read from a file (multipart create): the sections and their CRS (EPSG:4326)
    come from the file, the other fields from ``data``."""
    sections, read = route_from_file(session, principal.tenant_key, body, crs, layer, defaults)
    fields = {**data.model_dump(exclude_unset=True), "sections": sections, "crs": "EPSG:4326"}
    return create(session, principal, ApplicationCreate.model_validate(fields), now, read["source"]), read


def replace_route(session: Session, principal: Principal, application_id: uuid.UUID, body: bytes, crs: str | None,
                  layer: str | None, defaults: SectionDefaults, expected: set[int] | None, now: datetime
                  ) -> tuple[Application, dict[str, Any]]:
    """Replace a draft's route with the route of a file (``PUT …/route``): an update of ``sections`` and ``crs``
    (EPSG:4326), audited as ``update`` with what was read."""
    app, cases = _locked(session, principal, application_id, expected, now)
    core.require_command(app, cases, "update")
    before = (app.row_version, app.status)
    sections, read = route_from_file(session, app.tenant_key, body, crs, layer, defaults)
    patch = ApplicationPatch.model_validate({"sections": sections, "crs": "EPSG:4326"})
    version = repository.version_row(session, app.id, app.current_version)
    version.content = core.merge_content(session, app, version.content, patch, patch.model_fields_set)
    app.route_geom = core.draft_route_geometry(version.content)
    _finish(session, app, cases, principal, "update", now, before,
            {"fields": sorted(patch.model_fields_set), "route_file": read["source"]})
    return app, read


def add_attachment(session: Session, principal: Principal, application_id: uuid.UUID, kind: AttachmentKind,
                   file_name: str | None, declared_type: str | None, stream: BinaryIO, data_dir: Path,
                   limits: files.UploadLimits, now: datetime) -> Attachment:
    """Store the file durably (content-addressed), then record it. An attachment becomes part of the application
    when a draft update or a supplement lists it in ``attachment_ids``."""
    app, cases = _locked(session, principal, application_id, None, now)
    core.require_command(app, cases, "attachments")
    stored = files.store(data_dir, stream, limits, file_name, declared_type)
    att = Attachment(id=uuid.uuid4(), tenant_key=app.tenant_key, application_id=app.id, kind=kind.value,
                     file_name=files.sanitise_file_name(file_name, stored.content_type),
                     content_type=stored.content_type, size_bytes=stored.size_bytes, sha256=stored.sha256,
                     uploaded_by=principal.user_id, uploaded_by_org=principal.organisation_id, created_at=now)
    session.add(att)
    session.flush()
    core.audit(session, app=app, actor=core.Actor.of(principal), command="attachment", at=now,
               version_before=app.row_version, version_after=app.row_version, status_before=app.status,
               status_after=app.status, on_behalf_of=app.applicant_org_id,
               detail={"attachment_id": att.id, "kind": att.kind, "file_name": att.file_name, "sha256": att.sha256,
                       "size_bytes": att.size_bytes})
    return att


def submit(session: Session, principal: Principal, application_id: uuid.UUID, expected: set[int] | None,
           now: datetime) -> Application:
    app, cases = _locked(session, principal, application_id, expected, now)
    core.require_command(app, cases, "submit")
    before = (app.row_version, app.status)
    version = repository.version_row(session, app.id, app.current_version)
    errors = core.completeness_errors(version.content, now)
    if errors:
        raise UnprocessableEntity("The application is not ready to submit: "
                                  + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                                  type="application-incomplete", errors=errors)
    resolution = core.resolve_route(session, app.tenant_key, version.content)
    version.kind, version.resolution, version.submitted_at = "submission", resolution, now
    app.submitted_at = now
    app.route_geom = core.route_geometry(version.content)
    core.event(session, "application.submitted", app, now, version=version.number)
    for authority in resolution["authorities"]:
        case = core.new_case(session, app, uuid.UUID(authority["id"]), core.part_of(authority), now, version.number)
        cases.append(case)
        session.flush()
        core.event(session, "case.received", app, now, case, decision_due=case.decision_due,
                   completeness_due=case.completeness_due)
    version.addressed_case_ids = [str(c.id) for c in cases]
    pipeline.start(session, app, version.number, "submission", now)     # rows only; the relay starts it
    return _finish(session, app, cases, principal, "submit", now, before, {
        "version": version.number, "case_ids": [str(c.id) for c in cases],
        "authorities": [a["name"] for a in resolution["authorities"]],
        "total_length_m": resolution.get("total_length_m")})


def _restart(session: Session, app: Application, case: Case, now: datetime, version: int, reason: str) -> None:
    """A supplement or changed route restarts both periods (§ 127 (3) TKG): received again, clocks from now."""
    before = case.status
    requests = []
    for r in case.information_requests or []:
        r = dict(r)
        if r.get("answered_at") is None:
            r["answered_at"], r["answered_in_version"] = iso(now), version
        requests.append(r)
    case.information_requests = requests
    case.status = CaseStatus.received.value
    case.application_version = version
    core.start_clock(session, case, now)
    case.updated_at = now
    core.event(session, "case.restarted", app, now, case, reason=reason, status_before=before, version=version,
               completeness_due=case.completeness_due, decision_due=case.decision_due)


def _follow(cases: list[Case], authority_id: uuid.UUID) -> Case | None:
    """The open case now responsible for an authority's part: its own, or where it forwarded the part to."""
    by_id = {c.id: c for c in cases}
    for c in cases:
        if c.authority_org_id == authority_id and c.forwarded_from_case_id is None:
            seen = set()
            while c.status == CaseStatus.forwarded.value and c.forwarded_to_case_id in by_id and c.id not in seen:
                seen.add(c.id)
                c = by_id[c.forwarded_to_case_id]
            if c.status in core.OPEN:
                return c
    return None


def supplement(session: Session, principal: Principal, application_id: uuid.UUID, data: SupplementIn,
               expected: set[int] | None, now: datetime) -> Application:
    app, cases = _locked(session, principal, application_id, expected, now)
    core.require_command(app, cases, "supplements")
    before = (app.row_version, app.status)
    previous = repository.version_row(session, app.id, app.current_version)
    names = data.model_fields_set - {"message", "case_ids", "attachment_ids"}
    content = core.merge_content(session, app, previous.content, data, names)
    content["attachment_ids"] = list(dict.fromkeys([*previous.content.get("attachment_ids", []),
                                                    *[str(a) for a in data.attachment_ids]]))
    content = core.merge_content(session, app, content, data, set())       # checks the attachment ids
    route_changed = ("sections" in names or "crs" in names) and (
        content.get("sections") != previous.content.get("sections") or content.get("crs") != previous.content.get(
            "crs"))
    open_cases = [c for c in cases if c.status in core.OPEN]
    number = previous.number + 1
    version = ApplicationVersion(application_id=app.id, tenant_key=app.tenant_key, number=number, kind="supplement",
                                 content=content, created_by=principal.user_id, created_at=now, submitted_at=now,
                                 note=data.message, route_changed=route_changed, resolution=previous.resolution)
    if route_changed:
        if not content.get("sections"):
            raise UnprocessableEntity("sections: a supplement cannot remove the route", type="validation-error",
                                      field="sections")
        decided = [c for c in cases if c.status in core.DECIDED]
        if decided:
            raise Conflict("The route cannot change after an authority has decided (the decision is for the route "
                           "it saw); withdraw the open part and submit a new application for the new route",
                           type="route-change-after-decision", decided_case_ids=[str(c.id) for c in decided])
        resolution = core.resolve_route(session, app.tenant_key, content)
        version.resolution = resolution
        app.route_geom = core.route_geometry(content)
        addressed: list[Case] = []
        for authority in resolution["authorities"]:
            case = _follow(cases, uuid.UUID(authority["id"]))
            if case is None:
                case = core.new_case(session, app, uuid.UUID(authority["id"]), core.part_of(authority), now, number)
                cases.append(case)
                session.flush()
                core.event(session, "case.received", app, now, case, decision_due=case.decision_due)
            else:
                case.part = core.part_of(authority) | {k: v for k, v in case.part.items() if k == "forwarded_from"}
                _restart(session, app, case, now, number, "route_changed")
            addressed.append(case)
        for case in open_cases:
            if case not in addressed:
                case.status = CaseStatus.withdrawn.value
                case.closed_reason = "The changed route no longer touches this authority's roads"
                case.updated_at = now
                core.event(session, "case.withdrawn", app, now, case, reason="route_changed")
    else:
        if data.case_ids is not None:
            by_id = {c.id: c for c in cases}
            bad = [str(i) for i in data.case_ids if i not in by_id or by_id[i].status not in core.OPEN]
            if bad or not data.case_ids:
                raise UnprocessableEntity(f"case_ids: not open cases of this application: {', '.join(bad) or '[]'}",
                                          type="validation-error", field="case_ids")
            addressed = [by_id[i] for i in dict.fromkeys(data.case_ids)]
        else:
            addressed = [c for c in open_cases if c.status == CaseStatus.incomplete.value] or open_cases
        for case in addressed:
            _restart(session, app, case, now, number, "supplement")
    version.addressed_case_ids = [str(c.id) for c in addressed]
    session.add(version)
    app.current_version = number
    pipeline.start(session, app, number, "supplement", now)             # rows only; the relay starts it
    core.event(session, "application.supplemented", app, now, version=number, route_changed=route_changed,
               case_ids=version.addressed_case_ids)
    return _finish(session, app, cases, principal, "supplement", now, before, {
        "version": number, "route_changed": route_changed, "case_ids": version.addressed_case_ids,
        "message": data.message, "attachment_ids": [str(a) for a in data.attachment_ids]})


def withdraw(session: Session, principal: Principal, application_id: uuid.UUID, data: WithdrawIn,
             expected: set[int] | None, now: datetime) -> Application:
    """Withdraw the application: a draft is closed, open cases are closed. Decisions already issued stay."""
    app, cases = _locked(session, principal, application_id, expected, now)
    core.require_command(app, cases, "withdraw")
    before = (app.row_version, app.status)
    app.withdrawn_at = now
    closed = []
    for case in cases:
        if case.status in core.OPEN:
            case.status = CaseStatus.withdrawn.value
            case.closed_reason = data.reason or "Withdrawn by the applicant"
            case.updated_at = now
            closed.append(str(case.id))
            core.event(session, "case.withdrawn", app, now, case, reason="applicant")
    core.event(session, "application.withdrawn", app, now, reason=data.reason, case_ids=closed)
    return _finish(session, app, cases, principal, "withdraw", now, before,
                   {"reason": data.reason, "case_ids": closed})


def works_start(session: Session, principal: Principal, application_id: uuid.UUID, data: WorksStartIn,
                expected: set[int] | None, now: datetime) -> Application:
    app, cases = _locked(session, principal, application_id, expected, now)
    core.require_command(app, cases, "works-start")
    before = (app.row_version, app.status)
    app.works_started_on = data.started_on
    app.works = {**(app.works or {}), "started_on": iso(data.started_on), "start_note": data.note,
                 "start_notified_at": iso(now)}
    core.event(session, "application.works_started", app, now, started_on=data.started_on)
    return _finish(session, app, cases, principal, "works-start", now, before, {"started_on": data.started_on})


def works_completion(session: Session, principal: Principal, application_id: uuid.UUID, data: WorksCompletionIn,
                     expected: set[int] | None, now: datetime) -> Application:
    app, cases = _locked(session, principal, application_id, expected, now)
    core.require_command(app, cases, "works-completion")
    if data.completed_on < app.works_started_on:
        raise UnprocessableEntity(f"completed_on: lies before the start of works ({app.works_started_on})",
                                  type="validation-error", field="completed_on")
    before = (app.row_version, app.status)
    as_built = None
    if data.as_built is not None:
        as_built = normalise_sections(data.as_built, "as_built")
        crs = data.crs or "EPSG:4326"
        prepare(session, app.tenant_key, as_built, crs)          # geometry, CRS and territory checks
    app.works_completed_on = data.completed_on
    app.works = {**(app.works or {}), "completed_on": iso(data.completed_on), "completion_note": data.note,
                 "completion_notified_at": iso(now), "as_built": as_built,
                 "as_built_crs": (data.crs or "EPSG:4326") if as_built else None}
    core.event(session, "application.works_completed", app, now, completed_on=data.completed_on,
               as_built=as_built is not None)
    return _finish(session, app, cases, principal, "works-completion", now, before,
                   {"completed_on": data.completed_on, "as_built": as_built is not None})
