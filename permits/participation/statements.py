"""Statement requests seen from the outside: who may read which (scope), the body's answer, and what the deciding
authority can adopt into its decision. Business rules only; never commits.

Scope (the one place it is applied):
* a participating body reads the requests addressed to it — any other request is 404;
* a road authority reads every request of an application it has a case in (it decides with all statements);
* tenant admins read all of their tenant; operators read none (they receive the decision).

What a body is asked about comes with the request (``GET /statements/{id}``: ``application`` with the route in
EPSG:4326, sections, planned dates, traffic restrictions, the affected road authorities and the attachments, which
it downloads at ``GET /statements/{id}/attachments/{attachment_id}``). A body does not read the application itself
(``GET /applications/{id}`` stays 404 for it): it sees the version the request is about (an open request: the
newest submitted version, which has the same route, or the request would have been superseded), without the
applicant's contact person, representative or power of attorney, and without the authorities' cases.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Select, false, func, select
from sqlalchemy.orm import Session

from breitband.dates import iso
from breitband.errors import Conflict, Forbidden, NotFound, UnprocessableEntity
from breitband.identity import Principal
from breitband.models import OPERATOR_ROLES, Organisation, OrgKind, Role
from permits import core, deadlines, repository
from permits.cases import catalogue
from permits.models import Application, ApplicationVersion, Attachment, AttachmentKind, Case, CatalogueKind
from permits.participation.models import Answer, CloseReason, StatementRequest, StatementStatus


class ProposedCondition(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str | None = Field(None, max_length=32, description="A condition code of the tenant's catalogue")
    text: str | None = Field(None, max_length=5000, description="A condition in words")

    @model_validator(mode="after")
    def _one(self) -> "ProposedCondition":
        if not self.code and not self.text:
            raise ValueError("give a catalogue code or a text")
        return self


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    answer: Answer
    conditions: list[ProposedCondition] = Field(default_factory=list, description="Proposed conditions "
                                                                                  "(agree_with_conditions)")
    reasons: str | None = Field(None, max_length=20000, description="Reasons (required to object)")


def readable_statements(principal: Principal) -> Select[tuple[StatementRequest]]:
    stmt = select(StatementRequest).where(StatementRequest.tenant_key == principal.tenant_key)
    if principal.is_tenant_admin:
        return stmt
    if principal.role in OPERATOR_ROLES:
        return stmt.where(false())
    if principal.organisation_kind is OrgKind.participating_body:
        return stmt.where(StatementRequest.body_org_id == principal.organisation_id)
    return stmt.where(StatementRequest.application_id.in_(
        select(Case.application_id).where(Case.authority_org_id == principal.organisation_id)))


def get_statement(session: Session, principal: Principal, statement_id: uuid.UUID) -> StatementRequest:
    found = session.scalars(readable_statements(principal).where(StatementRequest.id == statement_id)).first()
    if found is None:
        raise NotFound(f"No statement request {statement_id}", type="statement-not-found")
    return found


def allowed_commands(principal: Principal, s: StatementRequest) -> list[str]:
    mine = principal.organisation_id == s.body_org_id and principal.role in (Role.authority_reviewer,
                                                                            Role.authority_admin)
    return ["answer"] if mine and s.status == StatementStatus.requested.value else []


# Attachments a body gets with a request: not the power of attorney (it is about the applicant's representative).
BODY_ATTACHMENT_KINDS = {k.value for k in AttachmentKind} - {AttachmentKind.power_of_attorney.value}
API = "/api/v1"


def subject_version(session: Session, s: StatementRequest) -> ApplicationVersion:
    """The version a request is about: an open request the newest submitted version (a supplement that did not
    change the route leaves the request open, and its new attachments or restrictions belong to what is asked);
    an answered, superseded or withdrawn one the version it was made for."""
    number = s.version
    if s.status == StatementStatus.requested.value:
        latest = session.scalar(select(func.max(ApplicationVersion.number)).where(
            ApplicationVersion.application_id == s.application_id, ApplicationVersion.submitted_at.is_not(None)))
        number = max(number, latest or number)
    return repository.version_row(session, s.application_id, number)


def subject_attachments(session: Session, s: StatementRequest, version: ApplicationVersion) -> list[Attachment]:
    ids = []
    for i in (version.content or {}).get("attachment_ids") or []:
        try:
            ids.append(uuid.UUID(str(i)))
        except ValueError:
            continue
    if not ids:
        return []
    return [a for a in repository.attachments(session, s.application_id, ids) if a.kind in BODY_ATTACHMENT_KINDS]


def get_subject_attachment(session: Session, principal: Principal, statement_id: uuid.UUID,
                           attachment_id: uuid.UUID) -> Attachment:
    s = get_statement(session, principal, statement_id)
    att = next((a for a in subject_attachments(session, s, subject_version(session, s)) if a.id == attachment_id),
               None)
    if att is None:
        raise NotFound(f"No attachment {attachment_id} with statement request {statement_id}",
                       type="attachment-not-found")
    return att


def subject_out(session: Session, s: StatementRequest, app: Application) -> dict[str, Any]:
    """What the body is asked about (see the module's docstring for what is left out)."""
    version = subject_version(session, s)
    content = version.content or {}
    resolution = version.resolution or {}
    applicant = session.get(Organisation, app.applicant_org_id)
    return {
        "id": str(app.id), "reference": app.reference, "project_name": content.get("project_name"),
        "status": app.status, "version": version.number,
        "submitted_at": iso(version.submitted_at) if version.submitted_at else None,
        "applicant": {"id": str(app.applicant_org_id), "name": applicant.name if applicant else "(deleted)"},
        "description": content.get("description"),
        "planned_start": content.get("planned_start"), "planned_end": content.get("planned_end"),
        "traffic_restrictions": content.get("traffic_restrictions") or [],
        "sections": core.sections_4326(content),
        "route": {"total_length_m": resolution.get("total_length_m"),
                  "authorities": [{"id": a.get("id"), "name": a.get("name"), "kind": a.get("kind"),
                                   "length_m": a.get("length_m")} for a in resolution.get("authorities") or []],
                  "outside_public_roads_m": (resolution.get("outside_public_roads") or {}).get("length_m"),
                  "private_roads_m": (resolution.get("private_roads") or {}).get("length_m")} if resolution
        else None,
        "attachments": [{"id": str(a.id), "kind": a.kind, "file_name": a.file_name, "content_type": a.content_type,
                         "size_bytes": a.size_bytes, "sha256": a.sha256, "created_at": iso(a.created_at),
                         "url": f"{API}/statements/{s.id}/attachments/{a.id}"}
                        for a in subject_attachments(session, s, version)],
    }


def statement_out(session: Session, principal: Principal, s: StatementRequest, now: datetime,
                  apps: dict[uuid.UUID, Application] | None = None,
                  orgs: dict[uuid.UUID, Organisation] | None = None, *, detail: bool = False) -> dict[str, Any]:
    """One request; ``detail``: with what the body is asked about (``subject_out``) as ``application``."""
    app = (apps or {}).get(s.application_id) or session.get(Application, s.application_id)
    org = (orgs or {}).get(s.body_org_id) or session.get(Organisation, s.body_org_id)
    return {
        "id": str(s.id), "etag": core.etag(s.row_version),
        "application": subject_out(session, s, app) if detail else
        {"id": str(app.id), "reference": app.reference, "project_name": app.project_name},
        "version": s.version, "body": {"id": str(org.id), "name": org.name}, "role": s.role, "status": s.status,
        "triggers": s.triggers, "requested_at": iso(s.requested_at), "due_on": iso(s.due_on),
        "overdue": s.status == StatementStatus.requested.value and deadlines.local_date(now) > s.due_on,
        "answer": s.answer, "conditions": s.conditions or [], "reasons": s.reasons,
        "answered_at": iso(s.answered_at) if s.answered_at else None, "answered_by": s.answered_by_name,
        "superseded_by": str(s.superseded_by) if s.superseded_by else None,
        "closed_reason": s.closed_reason, "closed_at": iso(s.closed_at) if s.closed_at else None,
        "allowed_commands": allowed_commands(principal, s),
    }


def list_statements(session: Session, principal: Principal, *, statuses: list[str] | None,
                    application_id: uuid.UUID | None, limit: int, offset: int) -> tuple[list[StatementRequest], bool]:
    stmt = readable_statements(principal)
    if statuses:
        stmt = stmt.where(StatementRequest.status.in_(statuses))
    if application_id:
        stmt = stmt.where(StatementRequest.application_id == application_id)
    rows = list(session.scalars(stmt.order_by(StatementRequest.due_on, StatementRequest.requested_at,
                                              StatementRequest.id).limit(limit + 1).offset(offset)))
    return rows[:limit], len(rows) > limit


def answer(session: Session, principal: Principal, statement_id: uuid.UUID, data: AnswerIn,
           expected: set[int] | None, now: datetime) -> StatementRequest:
    s = get_statement(session, principal, statement_id)
    if s.body_org_id != principal.organisation_id or principal.role not in (Role.authority_reviewer,
                                                                           Role.authority_admin):
        raise Forbidden("Only the body the request is addressed to can answer it", type="not-your-statement")
    s = session.scalars(select(StatementRequest).where(StatementRequest.id == statement_id).with_for_update()
                        .execution_options(populate_existing=True)).one()
    core.check_version(s, expected)
    if s.status != StatementStatus.requested.value:
        detail = {"answered": "The request was answered already", "superseded":
                  "The route changed; answer the newer request about the new route",
                  "withdrawn": "The request was withdrawn: the application was withdrawn",
                  "closed": "The request was closed: the application has been decided"}.get(s.status, s.status)
        raise Conflict(detail, type="illegal-transition", command="answer", state=s.status, allowed=[])
    errors = []
    if data.answer is Answer.agree_with_conditions and not data.conditions:
        errors.append({"field": "conditions", "message": "agree_with_conditions needs at least one condition"})
    if data.answer is not Answer.agree_with_conditions and data.conditions:
        errors.append({"field": "conditions", "message": "conditions belong to agree_with_conditions"})
    if data.answer is Answer.object and not (data.reasons or "").strip():
        errors.append({"field": "reasons", "message": "an objection needs reasons"})
    if errors:
        raise UnprocessableEntity("; ".join(f"{e['field']}: {e['message']}" for e in errors),
                                  type="invalid-statement", errors=errors)
    codes = [c.code for c in data.conditions if c.code]
    resolved = {c["code"]: c for c in catalogue.resolve_codes(session, principal.tenant_key,
                                                              CatalogueKind.condition, codes, "conditions")}
    conditions = []
    for c in data.conditions:
        if c.code:
            entry = resolved[c.code]
            conditions.append({"code": entry["code"], "title": entry.get("title"), "text": c.text or entry["text"]})
        else:
            conditions.append({"code": None, "title": None, "text": c.text})
    s.answer, s.conditions, s.reasons = data.answer.value, conditions, data.reasons
    s.status, s.answered_at, s.updated_at = StatementStatus.answered.value, now, now
    s.answered_by, s.answered_by_name = principal.user_id, principal.name
    session.flush()
    app = session.get(Application, s.application_id)
    core.event(session, "statement.answered", app, now, statement_id=str(s.id), body_org_id=str(s.body_org_id),
               answer=s.answer, conditions=len(conditions), late=deadlines.local_date(now) > s.due_on)
    core.audit(session, app=app, actor=core.Actor.of(principal), command="statement-answer", at=now,
               on_behalf_of=s.body_org_id, detail={"statement_id": str(s.id), "answer": s.answer,
                                                   "conditions": [c["code"] or c["text"][:80] for c in conditions]})
    return s


def adoptable(statements: list[StatementRequest], orgs: dict[uuid.UUID, Organisation]) -> dict[str, Any]:
    """The conditions the bodies proposed, ready for ``POST /cases/{id}/decision``: catalogue codes go into
    ``conditions``, texts into ``additional_conditions``; ``sources`` says which body proposed which."""
    codes: list[str] = []
    texts: list[str] = []
    sources = []
    for s in statements:
        if s.status != StatementStatus.answered.value or s.answer != Answer.agree_with_conditions.value:
            continue
        for c in s.conditions or []:
            body = orgs[s.body_org_id].name if s.body_org_id in orgs else None
            if c.get("code") and c["code"] not in codes:
                codes.append(c["code"])
            elif not c.get("code") and c.get("text") not in texts:
                texts.append(c["text"])
            sources.append({"statement_id": str(s.id), "body": body, "code": c.get("code"), "text": c.get("text")})
    return {"conditions": codes, "additional_conditions": texts, "sources": sources}


def condition_sources(session: Session, application_id: uuid.UUID) -> dict[str, str]:
    """code or text of a proposed condition → the body that proposed it (for the decision document)."""
    rows = session.execute(select(StatementRequest, Organisation.name).join(
        Organisation, Organisation.id == StatementRequest.body_org_id).where(
        StatementRequest.application_id == application_id,
        StatementRequest.status == StatementStatus.answered.value)).all()
    out: dict[str, str] = {}
    for s, name in rows:
        for c in s.conditions or []:
            key = c.get("code") or c.get("text")
            if key:
                out.setdefault(key, name)
    return out


def for_case(session: Session, principal: Principal, case_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    case = repository.get_case(session, principal, case_id)
    if not (principal.is_tenant_admin or (repository.is_authority(principal)
                                          and case.authority_org_id == principal.organisation_id)):
        raise NotFound(f"No case {case_id}", type="case-not-found")
    rows = list(session.scalars(readable_statements(principal).where(
        StatementRequest.application_id == case.application_id).order_by(StatementRequest.requested_at,
                                                                         StatementRequest.id)))
    orgs = repository.organisations(session, [s.body_org_id for s in rows])
    app = session.get(Application, case.application_id)
    return {"case_id": str(case.id), "statements": [statement_out(session, principal, s, now, {app.id: app}, orgs)
                                                    for s in rows],
            "adoptable": adoptable([s for s in rows if s.status != StatementStatus.superseded.value], orgs),
            "pending": pending(session, case.application_id)}


# --- requests no longer needed, and deciding while some are pending ----------------------------------------------

CLOSE_REASON_DE = {
    CloseReason.application_decided.value: "Über den Antrag ist entschieden; die Stellungnahme wird nicht mehr "
                                           "benötigt.",
    CloseReason.application_withdrawn.value: "Der Antrag wurde zurückgenommen; die Stellungnahme wird nicht mehr "
                                             "benötigt.",
    CloseReason.route_changed.value: "Die Trasse wurde geändert; eine neue Anfrage zur neuen Trasse ersetzt diese.",
}


def close_unneeded(session: Session, app: Application, cases: list[Case], now: datetime) -> list[str]:
    """Close the application's open requests once no case is open any more (every case decided, or the application
    withdrawn): status ``closed`` (reason ``application_decided``) or ``withdrawn`` (``application_withdrawn``),
    each with the event ``statement.closed`` that tells the body (e-mail). Called by every command that can close
    the last open case (decision, deemed approval, withdrawal); the sweep does the same set-based
    (``repository.deem_due``). → the ids closed."""
    if any(c.status in core.OPEN for c in cases):
        return []
    withdrawn = app.withdrawn_at is not None
    reason = CloseReason.application_withdrawn if withdrawn else CloseReason.application_decided
    status = StatementStatus.withdrawn if withdrawn else StatementStatus.closed
    rows = list(session.scalars(select(StatementRequest).where(
        StatementRequest.application_id == app.id, StatementRequest.status == StatementStatus.requested.value)
        .order_by(StatementRequest.requested_at, StatementRequest.id).with_for_update()))
    for s in rows:
        s.status, s.closed_reason, s.closed_at, s.updated_at = status.value, reason.value, now, now
    session.flush()
    for s in rows:
        core.event(session, "statement.closed", app, now, statement_id=str(s.id), body_org_id=str(s.body_org_id),
                   role=s.role, status=s.status, reason=reason.value, reason_text=CLOSE_REASON_DE[reason.value],
                   due_on=s.due_on)
    return [str(s.id) for s in rows]


def pending(session: Session, application_id: uuid.UUID) -> list[dict[str, Any]]:
    """The application's requests still waiting for an answer, with their bodies, by due date."""
    rows = session.execute(select(StatementRequest, Organisation.name).join(
        Organisation, Organisation.id == StatementRequest.body_org_id).where(
        StatementRequest.application_id == application_id,
        StatementRequest.status == StatementStatus.requested.value)
        .order_by(StatementRequest.due_on, StatementRequest.requested_at, StatementRequest.id)).all()
    return [{"id": str(s.id), "body": {"id": str(s.body_org_id), "name": name}, "role": s.role,
             "requested_at": iso(s.requested_at), "due_on": iso(s.due_on)} for s, name in rows]


def require_confirmed(session: Session, application_id: uuid.UUID, confirmed: bool) -> list[dict[str, Any]]:
    """Deciding while statements are pending needs the decider's confirmation: without it 409
    ``statements-pending`` naming them (``pending_statements``). → the pending requests (recorded with the
    decision)."""
    waiting = pending(session, application_id)
    if waiting and not confirmed:
        names = "; ".join(f"{p['body']['name']} (Frist {p['due_on']})" for p in waiting)
        raise Conflict(f"{len(waiting)} statement request(s) are still unanswered: {names}. Wait for them, or "
                       "decide anyway by sending confirm_pending_statements: true (they are then closed unanswered "
                       "once the application is decided).", type="statements-pending",
                       pending_statements=waiting)
    return waiting
