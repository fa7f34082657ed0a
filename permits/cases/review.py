"""The authority's side of a case: request information, confirm completeness, decide, forward, extend the deadline.

State machine of a case (the allowed commands per state are computed by ``case_commands``)::

    received ──request-information──▶ incomplete ──(supplement)──▶ received
    received ──confirm-complete──▶ in_review ──request-information──▶ incomplete
    received | incomplete | in_review ──decision──▶ granted | partially_granted | refused
    received | incomplete | in_review ──forward──▶ forwarded   (a new case is received by the other authority)
    received | incomplete | in_review ──(deadline expired)──▶ deemed_granted
    received | incomplete | in_review ──(applicant withdraws)──▶ withdrawn

A request for information stops the clock only when it is made within the completeness month and before the
authority confirmed completeness; a later request is recorded and sent but the decision period keeps running
(§ 127 (3) TKG). The decision deadline can be extended once by one month, with reasons, before it expires (§ 150).
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime
from typing import Any, Callable

from sqlalchemy.orm import Session

from breitband.dates import iso
from breitband.errors import Forbidden, UnprocessableEntity
from breitband.identity import Principal
from breitband.models import Organisation, OrgKind
from geo.models import Authority
from permits import core, deadlines, repository
from permits.cases import catalogue, deemed
from permits.models import Application, Case, CaseStatus, CatalogueKind
from permits.schemas import (
    ConfirmCompleteIn,
    DecisionIn,
    DecisionOutcome,
    ExtendDeadlineIn,
    ForwardIn,
    RequestInformationIn,
)


def case_commands(case: Case, now: datetime) -> list[str]:
    if case.status not in core.OPEN:
        return []
    allowed = []
    if case.status in (CaseStatus.received.value, CaseStatus.in_review.value):
        allowed.append("request-information")
    if case.status == CaseStatus.received.value:
        allowed.append("confirm-complete")
    allowed += ["decision", "forward"]
    if case.deadline_at is not None and case.extension is None and now < case.deadline_at:
        allowed.append("extend-deadline")
    return allowed


def _command(session: Session, principal: Principal, case_id: uuid.UUID, expected: set[int] | None,
             now: datetime, command: str, change: Callable[[Application, Case, list[Case]], dict[str, Any]]
             ) -> Case:
    """Lock, check the version, settle a deemed approval that fell due, check the transition, change, record."""
    case = repository.get_case(session, principal, case_id)
    if case.authority_org_id != principal.organisation_id or not repository.is_authority(principal):
        # Readable (e.g. by the applicant or a tenant admin) but not this caller's to decide.
        raise Forbidden("Only the authority the case is addressed to can do this", type="not-your-case")
    app = repository.lock_application(session, case.application_id)
    cases = repository.lock_cases(session, app.id)
    case = next(c for c in cases if c.id == case_id)
    core.check_version(case, expected)
    deemed.apply_due(session, app, cases, now)
    allowed = case_commands(case, now)
    if command not in allowed:
        detail = None
        if command == "extend-deadline" and case.status in core.OPEN:
            detail = ("The decision deadline was extended already (once only, § 150 TKG)" if case.extension else
                      "The clock is stopped (information requested); there is no deadline to extend"
                      if case.deadline_at is None else
                      f"The decision deadline {case.decision_due} has passed; it cannot be extended any more")
        elif case.status == CaseStatus.deemed_granted.value:
            detail = (f"The consent is deemed granted since {case.effective_on} (the decision period expired); "
                      f"'{command}' is not possible any more")
        raise core.illegal(command, case.status, allowed, detail)
    before_status, before_version = case.status, case.row_version
    detail = change(app, case, cases)
    case.updated_at = now
    core.touch(session, app, cases, now)
    session.flush()
    core.audit(session, app=app, case=case, actor=core.Actor.of(principal), command=command, at=now,
               version_before=before_version, version_after=case.row_version, status_before=before_status,
               status_after=case.status, on_behalf_of=case.authority_org_id, detail=detail)
    return case


def request_information(session: Session, principal: Principal, case_id: uuid.UUID, data: RequestInformationIn,
                        expected: set[int] | None, now: datetime) -> Case:
    def change(app: Application, case: Case, cases: list[Case]) -> dict[str, Any]:
        within = not deadlines.has_expired(case.completeness_due, now) and case.completeness_confirmed_at is None
        request = {"id": str(uuid.uuid4()), "requested_at": iso(now),
                   "requested_on": deadlines.local_date(now).isoformat(), "message": data.message,
                   "items": data.items, "stops_clock": within, "by": principal.name,
                   "answered_at": None, "answered_in_version": None}
        case.information_requests = [*copy.deepcopy(case.information_requests), request]
        case.status = CaseStatus.incomplete.value
        if within:   # reported incomplete in time: the decision period has not started
            case.complete_at = None
            core.set_decision(case, None)
            case.extension = None
        core.event(session, "case.information_requested", app, now, case, request_id=request["id"],
                   stops_clock=within, message=data.message, items=data.items)
        return {"request_id": request["id"], "stops_clock": within, "completeness_due": case.completeness_due,
                "message": data.message, "items": data.items}

    return _command(session, principal, case_id, expected, now, "request-information", change)


def confirm_complete(session: Session, principal: Principal, case_id: uuid.UUID, data: ConfirmCompleteIn,
                     expected: set[int] | None, now: datetime) -> Case:
    def change(app: Application, case: Case, cases: list[Case]) -> dict[str, Any]:
        case.status = CaseStatus.in_review.value
        case.completeness_confirmed_at = now
        core.event(session, "case.completeness_confirmed", app, now, case, complete_at=case.complete_at,
                   decision_due=case.decision_due)
        return {"complete_at": case.complete_at, "decision_due": case.decision_due, "note": data.note}

    return _command(session, principal, case_id, expected, now, "confirm-complete", change)


def _check_decision(session: Session, tenant_key: str, data: DecisionIn) -> tuple[list, list]:
    errors = []
    refusing = data.outcome in (DecisionOutcome.refused, DecisionOutcome.partially_granted)
    if refusing and not data.reasons:
        errors.append({"field": "reasons", "message": f"a {data.outcome.value} decision needs at least one refusal "
                                                      "reason code (GET /api/v1/refusal-reasons)"})
    if refusing and not (data.explanation or "").strip():
        errors.append({"field": "explanation", "message": f"a {data.outcome.value} decision needs an explanation"})
    if data.outcome is DecisionOutcome.granted and data.reasons:
        errors.append({"field": "reasons", "message": "refusal reasons belong to a refusal or partial grant"})
    if data.outcome is DecisionOutcome.refused and (data.conditions or data.additional_conditions):
        errors.append({"field": "conditions", "message": "a refusal carries no conditions"})
    if any(not c.strip() for c in data.additional_conditions):
        errors.append({"field": "additional_conditions", "message": "free-text conditions must not be empty"})
    if errors:
        raise UnprocessableEntity("; ".join(f"{e['field']}: {e['message']}" for e in errors),
                                  type="invalid-decision", errors=errors)
    conditions = catalogue.resolve_codes(session, tenant_key, CatalogueKind.condition, data.conditions, "conditions")
    reasons = catalogue.resolve_codes(session, tenant_key, CatalogueKind.refusal_reason, data.reasons, "reasons")
    return conditions, reasons


def decide(session: Session, principal: Principal, case_id: uuid.UUID, data: DecisionIn,
           expected: set[int] | None, now: datetime) -> Case:
    conditions, reasons = _check_decision(session, principal.tenant_key, data)

    def change(app: Application, case: Case, cases: list[Case]) -> dict[str, Any]:
        case.status = data.outcome.value
        case.decided_at = now
        case.effective_on = deadlines.local_date(now)
        case.decision = {
            "outcome": data.outcome.value, "effective_on": iso(case.effective_on),
            "decided_at": iso(now), "conditions": conditions,
            "additional_conditions": [c.strip() for c in data.additional_conditions], "reasons": reasons,
            "explanation": data.explanation, "note": data.note,
            "decided_by": {"user_id": str(principal.user_id), "name": principal.name,
                           "organisation": principal.organisation_name},
        }
        core.event(session, "case.decided", app, now, case, outcome=data.outcome.value,
                   effective_on=case.effective_on)
        return {"outcome": data.outcome.value, "conditions": [c["code"] for c in conditions],
                "additional_conditions": len(data.additional_conditions), "reasons": [r["code"] for r in reasons],
                "effective_on": case.effective_on}

    return _command(session, principal, case_id, expected, now, "decision", change)


def forward(session: Session, principal: Principal, case_id: uuid.UUID, data: ForwardIn,
            expected: set[int] | None, now: datetime) -> Case:
    """Hand the case (or some of its pieces) to another road authority. The other authority receives a new case
    with its own clock; the handing-over is recorded on both."""
    def change(app: Application, case: Case, cases: list[Case]) -> dict[str, Any]:
        # checked only now, after the caller's scope was applied: a stranger learns nothing about organisations
        target = session.get(Organisation, data.to_organisation_id)
        if target is None or target.tenant_key != principal.tenant_key or \
                target.kind != OrgKind.road_authority.value:
            raise UnprocessableEntity(f"No road authority {data.to_organisation_id} in this tenant",
                                      type="unknown-authority", field="to_organisation_id")
        if target.id == case.authority_org_id:
            raise UnprocessableEntity("A case cannot be forwarded to its own authority", type="forward-to-self",
                                      field="to_organisation_id")
        pieces = list((case.part or {}).get("pieces") or [])
        indexes = sorted(set(data.piece_indexes)) if data.piece_indexes is not None else list(range(len(pieces)))
        bad = [i for i in indexes if not 0 <= i < len(pieces)]
        if bad or (data.piece_indexes is not None and not indexes):
            raise UnprocessableEntity(f"piece_indexes: the case has {len(pieces)} pieces (0-{len(pieces) - 1}); "
                                      f"invalid: {bad or 'empty list'}", type="validation-error",
                                      field="piece_indexes")
        whole = len(indexes) == len(pieces)
        handed = [pieces[i] for i in indexes]
        authority = session.get(Authority, target.id)
        part = {"id": str(target.id), "name": target.name, "kind": authority.kind if authority else None,
                "key": authority.key if authority else None,
                "length_m": round(sum(p.get("length_m") or 0 for p in handed), 1), "pieces": handed,
                "forwarded_from": {"case_id": str(case.id), "organisation_id": str(case.authority_org_id),
                                   "name": (case.part or {}).get("name"), "reason": data.reason}}
        new = core.new_case(session, app, target.id, part, now, app.current_version, forwarded_from=case.id)
        cases.append(new)
        session.flush()                     # insert the new case before anything points at it
        record = {"to_case_id": str(new.id), "to_organisation_id": str(target.id), "to_name": target.name,
                  "reason": data.reason, "at": iso(now), "whole": whole, "piece_indexes": indexes}
        if whole:
            case.status = CaseStatus.forwarded.value
            case.forwarded_to_case_id = new.id
            case.forward = record
        else:
            keep = [p for i, p in enumerate(pieces) if i not in set(indexes)]
            case.part = {**case.part, "pieces": keep,
                         "length_m": round(sum(p.get("length_m") or 0 for p in keep), 1),
                         "handed_on": [*(case.part.get("handed_on") or []), record]}
        session.flush()
        core.event(session, "case.forwarded", app, now, case, to_case_id=new.id, to_organisation_id=target.id,
                   reason=data.reason, whole=whole)
        core.event(session, "case.received", app, now, new, forwarded_from_case_id=case.id,
                   decision_due=new.decision_due)
        core.audit(session, app=app, case=new, actor=core.Actor.of(principal), command="receive-forwarded", at=now,
                   version_after=new.row_version, status_after=new.status, on_behalf_of=case.authority_org_id,
                   detail={"from_case_id": case.id, "reason": data.reason})
        return record

    return _command(session, principal, case_id, expected, now, "forward", change)


def extend_deadline(session: Session, principal: Principal, case_id: uuid.UUID, data: ExtendDeadlineIn,
                    expected: set[int] | None, now: datetime) -> Case:
    def change(app: Application, case: Case, cases: list[Case]) -> dict[str, Any]:
        previous = case.decision_due
        due = deadlines.extension(previous, core.working_calendar(session, case.tenant_key, case.authority_org_id))
        core.set_decision(case, due)
        case.extension = {"reason": data.reason, "at": iso(now), "by": principal.name,
                          "previous_due": iso(previous), "decision_due": iso(case.decision_due),
                          "decision_due_statutory": iso(due.statutory), "moved": due.reason()}
        core.event(session, "case.deadline_extended", app, now, case, previous_due=previous,
                   decision_due=case.decision_due, reason=data.reason)
        return {"previous_due": previous, "decision_due": case.decision_due, "reason": data.reason}

    return _command(session, principal, case_id, expected, now, "extend-deadline", change)
