"""Representations of applications and cases for a given caller (what the API returns)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from breitband.dates import iso
from breitband.identity import Principal
from breitband.models import OPERATOR_ROLES, Organisation
from permits import core, deadlines, repository
from permits.cases import review
from permits.models import Application, ApplicationVersion, Attachment, AuditRecord, Case, CatalogueEntry

API = "/api/v1"


def _org(orgs: dict[uuid.UUID, Organisation], org_id: uuid.UUID) -> dict[str, Any]:
    org = orgs.get(org_id)
    return {"id": str(org_id), "name": org.name if org else "(deleted)"}


def _mine(principal: Principal, case: Case) -> bool:
    return repository.is_authority(principal) and case.authority_org_id == principal.organisation_id


def days_left(case: Case, now: datetime) -> int | None:
    if case.status not in core.OPEN or case.decision_due is None:
        return None
    return deadlines.days_left(case.decision_due, now)


def due_out(due: deadlines.Due | None) -> dict[str, Any] | None:
    return {**due.as_json(), "label": due.label()} if due is not None else None


def overdue(case: Case, now: datetime) -> bool:
    return case.status in core.OPEN and case.deadline_at is not None and case.deadline_at <= now


def case_summary(principal: Principal, case: Case, orgs: dict[uuid.UUID, Organisation]) -> dict[str, Any]:
    mine = _mine(principal, case)
    visible = mine or not repository.is_authority(principal)
    return {"id": str(case.id), "authority": _org(orgs, case.authority_org_id), "status": case.status,
            "mine": mine, "length_m": (case.part or {}).get("length_m"),
            "decision_due": iso(case.decision_due) if visible and case.decision_due else None,
            "effective_on": iso(case.effective_on) if case.effective_on else None}


def attachment_out(app_id: uuid.UUID, att: Attachment) -> dict[str, Any]:
    return {"id": str(att.id), "kind": att.kind, "file_name": att.file_name, "content_type": att.content_type,
            "size_bytes": att.size_bytes, "sha256": att.sha256, "created_at": iso(att.created_at),
            "url": f"{API}/applications/{app_id}/attachments/{att.id}"}


def visible_attachments(session: Session, principal: Principal, app: Application) -> list[Attachment]:
    atts = repository.attachments(session, app.id)
    if repository.is_authority(principal):
        submitted = repository.submitted_attachment_ids(session, app.id)
        atts = [a for a in atts if str(a.id) in submitted]
    return atts


def application_out(session: Session, principal: Principal, app: Application, now: datetime,
                    cases: list[Case] | None = None) -> dict[str, Any]:
    cases = cases if cases is not None else repository.cases_of(session, [app.id])[app.id]
    version = repository.version_row(session, app.id, app.current_version)
    orgs = repository.organisations(session, [app.applicant_org_id, *(c.authority_org_id for c in cases)])
    resolution = version.resolution or {}
    route = None
    if resolution:
        route = {"total_length_m": resolution.get("total_length_m"),
                 "outside_public_roads_m": (resolution.get("outside_public_roads") or {}).get("length_m"),
                 "private_roads_m": (resolution.get("private_roads") or {}).get("length_m"),
                 "warnings": resolution.get("warnings", []),
                 "by_authority": [case_summary(principal, c, orgs) for c in cases
                                  if c.status != "forwarded"]}
    own = principal.role in OPERATOR_ROLES and principal.organisation_id == app.applicant_org_id
    return {
        "id": str(app.id), "tenant_key": app.tenant_key, "reference": app.reference, "status": app.status,
        "applicant": _org(orgs, app.applicant_org_id), "version": app.current_version,
        "etag": core.etag(app.row_version), "content": version.content,
        "cases": [case_summary(principal, c, orgs) for c in cases], "route": route,
        "attachments": [attachment_out(app.id, a) for a in visible_attachments(session, principal, app)],
        "created_at": iso(app.created_at), "updated_at": iso(app.updated_at),
        "submitted_at": iso(app.submitted_at) if app.submitted_at else None,
        "withdrawn_at": iso(app.withdrawn_at) if app.withdrawn_at else None,
        "works": app.works or {},
        "allowed_commands": core.application_commands(app, cases) if own else [],
    }


def application_items(session: Session, principal: Principal, apps: list[Application]) -> list[dict[str, Any]]:
    cases = repository.cases_of(session, [a.id for a in apps])
    orgs = repository.organisations(session, [a.applicant_org_id for a in apps]
                                    + [c.authority_org_id for cs in cases.values() for c in cs])
    return [{"id": str(a.id), "reference": a.reference, "status": a.status, "project_name": a.project_name,
             "operator_reference": a.operator_reference, "applicant": _org(orgs, a.applicant_org_id),
             "created_at": iso(a.created_at),
             "submitted_at": iso(a.submitted_at) if a.submitted_at else None,
             "cases": [case_summary(principal, c, orgs) for c in cases[a.id]]} for a in apps]


def case_out(session: Session, principal: Principal, case: Case, now: datetime,
             app: Application | None = None) -> dict[str, Any]:
    app = app or session.get(Application, case.application_id)
    orgs = repository.organisations(session, [case.authority_org_id, app.applicant_org_id])
    mine = _mine(principal, case)

    return {
        "id": str(case.id), "tenant_key": case.tenant_key,
        "application": {"id": str(app.id), "reference": app.reference, "project_name": app.project_name,
                        "applicant": _org(orgs, app.applicant_org_id), "status": app.status,
                        "version": app.current_version},
        "authority": _org(orgs, case.authority_org_id), "status": case.status, "etag": core.etag(case.row_version),
        "application_version": case.application_version, "part": case.part or {},
        "received_at": iso(case.received_at), "completeness_due": iso(case.completeness_due),
        "completeness_confirmed_at": iso(case.completeness_confirmed_at), "complete_at": iso(case.complete_at),
        "clock_running": case.complete_at is not None, "decision_due": iso(case.decision_due),
        "completeness_due_statutory": iso(case.completeness_due_statutory),
        "decision_due_statutory": iso(case.decision_due_statutory),
        "deadlines": {"completeness": due_out(core.due_of(case, "completeness")),
                      "decision": due_out(core.due_of(case, "decision"))},
        "deadline_at": iso(case.deadline_at), "days_left": days_left(case, now), "overdue": overdue(case, now),
        "extension": case.extension, "information_requests": case.information_requests or [],
        "decision": case.decision, "decided_at": iso(case.decided_at), "effective_on": iso(case.effective_on),
        "forwarded_from_case_id": str(case.forwarded_from_case_id) if case.forwarded_from_case_id else None,
        "forwarded_to_case_id": str(case.forwarded_to_case_id) if case.forwarded_to_case_id else None,
        "forward": case.forward, "closed_reason": case.closed_reason,
        "allowed_commands": review.case_commands(case, now) if mine else [],
    }


def case_items(session: Session, rows: list[tuple[Case, Application]], now: datetime) -> list[dict[str, Any]]:
    orgs = repository.organisations(session, [c.authority_org_id for c, _ in rows]
                                    + [a.applicant_org_id for _, a in rows])
    def reason(c: Case, kind: str) -> str | None:
        due = core.due_of(c, kind)
        return due.reason() if due is not None else None

    return [{"id": str(c.id), "application_id": str(a.id), "reference": a.reference, "project_name": a.project_name,
             "applicant": _org(orgs, a.applicant_org_id), "authority": _org(orgs, c.authority_org_id),
             "status": c.status, "received_at": iso(c.received_at),
             "complete_at": iso(c.complete_at) if c.complete_at else None,
             "completeness_due": iso(c.completeness_due),
             "completeness_due_statutory": iso(c.completeness_due_statutory),
             "completeness_due_moved": reason(c, "completeness"),
             "decision_due": iso(c.decision_due) if c.decision_due else None,
             "decision_due_statutory": iso(c.decision_due_statutory),
             "decision_due_moved": reason(c, "decision"),
             "days_left": days_left(c, now), "overdue": overdue(c, now), "length_m": (c.part or {}).get("length_m")}
            for c, a in rows]


def version_out(v: ApplicationVersion) -> dict[str, Any]:
    return {"number": v.number, "kind": v.kind, "content": v.content, "resolution": v.resolution,
            "route_changed": v.route_changed, "note": v.note, "addressed_case_ids": v.addressed_case_ids or [],
            "created_at": iso(v.created_at),
            "submitted_at": iso(v.submitted_at) if v.submitted_at else None}


def audit_out(r: AuditRecord) -> dict[str, Any]:
    return {"id": r.id, "at": iso(r.at), "command": r.command,
            "case_id": str(r.case_id) if r.case_id else None,
            "actor": {"user_id": str(r.actor_user_id) if r.actor_user_id else None, "name": r.actor_name,
                      "role": r.actor_role, "organisation_id": str(r.actor_org_id) if r.actor_org_id else None},
            "on_behalf_of_org_id": str(r.on_behalf_of_org_id) if r.on_behalf_of_org_id else None,
            "version_before": r.version_before, "version_after": r.version_after,
            "status_before": r.status_before, "status_after": r.status_after, "detail": r.detail}


def visible_audit(session: Session, principal: Principal, app: Application, records: list[AuditRecord]
                  ) -> list[AuditRecord]:
    """The audit records the caller may see. An authority sees no upload of an attachment that no submitted version
    lists (a draft's file, or one uploaded after submission and not yet sent with a supplement): the operator's
    unsent work, with its file name, is not the authority's business until it is submitted."""
    if not repository.is_authority(principal):
        return records
    submitted = None
    out = []
    for r in records:
        if r.command == "attachment":
            if submitted is None:
                submitted = repository.submitted_attachment_ids(session, app.id)
            if str((r.detail or {}).get("attachment_id")) not in submitted:
                continue
        out.append(r)
    return out


def catalogue_out(e: CatalogueEntry) -> dict[str, Any]:
    return {"code": e.code, "title": e.title, "text": e.text, "category": e.category, "active": e.active}
