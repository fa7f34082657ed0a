"""The further decisions the works need, issued together with the consent (§ 127 (5) TKG): a traffic order
(verkehrsrechtliche Anordnung, § 45 Abs. 6 StVO) by the Straßenverkehrsbehörde, nature, water and monument permits
by their bodies.

Which are needed is derived by the pipeline's participation step from the application's data (declared traffic
restrictions, protected areas the route crosses) with the tenant's participation rules: a rule with
``procedure = "decision"`` makes its body *decide* instead of giving a statement (``permits.participation.service``).
Each decision is a case of its own (``cases.kind``: traffic_order, nature_permit, water_permit, monument_permit) in
the deciding body's inbox:

* bound to the consent's deadline: its ``decision_due`` is the earliest decision deadline of the application's open
  consent cases, kept in step by ``core.touch`` (an extension, a stopped clock or a restart moves it along); it has no
  ``deadline_at`` of its own, so no deemed approval ever arises for it (§ 127 (3) deems only the consent);
* its only command is ``decision``; a traffic order's grant needs its form data (``TrafficOrderIn``: period, times
  of day, the traffic signs plan as an attachment of kind traffic_plan, detour) and draws conditions and refusal
  reasons from its own catalogue (``order_condition``, ``order_reason``);
* the consent's authority sees their state on its case (``related_decisions``) and cannot issue its consent while
  one is open unless it says why (``related_missing_reason``, else 409 ``related-decisions-missing``);
* when the application's last case is decided the bundle goes out together: one event ``application.decided`` (the
  applicant's one e-mail; the single cases' decisions are not mailed to it separately) and one package of the signed
  documents (``GET /applications/{id}/documents.zip``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from breitband.dates import iso
from breitband.errors import Conflict, UnprocessableEntity
from breitband.models import Organisation
from permits import core, repository
from permits.models import (
    RELATED_KIND_BY_ROLE,
    Application,
    AttachmentKind,
    Case,
    CaseKind,
    CaseStatus,
    CatalogueKind,
)
from permits.schemas import DecisionIn, DecisionOutcome

KIND_DE = {CaseKind.consent.value: "Zustimmung nach § 127 TKG",
           CaseKind.traffic_order.value: "Verkehrsrechtliche Anordnung (§ 45 Abs. 6 StVO)",
           CaseKind.nature_permit.value: "Naturschutzrechtliche Genehmigung",
           CaseKind.water_permit.value: "Wasserrechtliche Genehmigung",
           CaseKind.monument_permit.value: "Denkmalschutzrechtliche Genehmigung"}

# The legal basis a further decision's document names (the consent's is permits.documents.render.legal_basis).
LEGAL_BASIS = {CaseKind.traffic_order.value: "§ 45 Abs. 6 StVO i. V. m. § 127 Abs. 5 TKG",
               CaseKind.nature_permit.value: "Naturschutzrecht (BNatSchG und Landesrecht) i. V. m. § 127 Abs. 5 TKG",
               CaseKind.water_permit.value: "Wasserrecht (WHG und Landesrecht) i. V. m. § 127 Abs. 5 TKG",
               CaseKind.monument_permit.value: "Denkmalschutzrecht des Landes i. V. m. § 127 Abs. 5 TKG"}

# The catalogue a case's decision draws its conditions and refusal reasons from.
CATALOGUES = {CaseKind.traffic_order.value: (CatalogueKind.order_condition, CatalogueKind.order_reason)}
DEFAULT_CATALOGUE = (CatalogueKind.condition, CatalogueKind.refusal_reason)


def is_related_kind(kind: str | None) -> bool:
    return kind not in (None, CaseKind.consent.value)


def is_related(case: Case) -> bool:
    return is_related_kind(case.kind)


def catalogue_kinds(kind: str) -> tuple[CatalogueKind, CatalogueKind]:
    return CATALOGUES.get(kind, DEFAULT_CATALOGUE)


def summary(cases: list[Case], orgs: dict[uuid.UUID, Organisation]) -> list[dict[str, Any]]:
    """The application's further decisions and their state (for the consent case and the application)."""
    return [{"case_id": str(c.id), "kind": c.kind, "title": KIND_DE[c.kind],
             "body": {"id": str(c.authority_org_id), "name": getattr(orgs.get(c.authority_org_id), "name", None)},
             "status": c.status, "decision_due": iso(c.decision_due) if c.decision_due else None,
             "decided_at": iso(c.decided_at) if c.decided_at else None,
             "effective_on": iso(c.effective_on) if c.effective_on else None,
             "triggers": [{"rule": t.get("rule"), "reason": t.get("reason")} for t in (c.part or {}).get("triggers")
                          or []]}
            for c in cases if is_related(c) and c.status != CaseStatus.forwarded.value]


def missing(session: Session, cases: list[Case]) -> list[dict[str, Any]]:
    open_related = [c for c in cases if is_related(c) and c.status in core.OPEN]
    return summary(open_related, repository.organisations(session, [c.authority_org_id for c in open_related]))


def check_consent(session: Session, cases: list[Case], data: DecisionIn) -> dict[str, Any]:
    """The consent may go out while a further decision is open only with a reason: → what the decision records."""
    open_ones = missing(session, cases)
    if open_ones and not data.related_missing_reason:
        names = "; ".join(f"{m['title']} – {m['body']['name']}" for m in open_ones)
        raise Conflict(f"{len(open_ones)} further decision(s) the works need are not issued yet: {names}. They are "
                       "issued together with the consent (§ 127 (5) TKG); wait for them, or give "
                       "related_missing_reason to decide now.", type="related-decisions-missing",
                       related_decisions=open_ones)
    if data.related_missing_reason and not open_ones:
        raise UnprocessableEntity("related_missing_reason: every further decision has been issued; leave it out",
                                  type="invalid-decision", field="related_missing_reason")
    return {"related_missing": open_ones, "related_missing_reason": data.related_missing_reason}


def check_traffic_order(session: Session, app: Application, case: Case, data: DecisionIn) -> dict[str, Any] | None:
    """A traffic order's form data: required to grant one, refused on any other case. → as stored."""
    if case.kind != CaseKind.traffic_order.value:
        if data.traffic_order is not None:
            raise UnprocessableEntity(f"traffic_order: belongs to a traffic_order case, this is a {case.kind}",
                                      type="invalid-decision", field="traffic_order")
        return None
    if data.outcome is DecisionOutcome.refused and order_given(data):
        raise UnprocessableEntity("traffic_order: a refusal orders nothing; leave the form data out",
                                  type="invalid-decision", field="traffic_order")
    order = data.traffic_order
    if order is None:
        if data.outcome is DecisionOutcome.refused:
            return None
        raise UnprocessableEntity("traffic_order: a traffic order needs its form data (period_start, period_end, "
                                  "times_of_day, signs_plan_attachment_id, detour)", type="invalid-decision",
                                  field="traffic_order")
    att = next((a for a in repository.attachments(session, app.id, [order.signs_plan_attachment_id])), None)
    if att is None or att.kind != AttachmentKind.traffic_plan.value:
        what = "is not an attachment of this application" if att is None else f"is a {att.kind}"
        raise UnprocessableEntity(f"traffic_order.signs_plan_attachment_id: {order.signs_plan_attachment_id} {what}; "
                                  "the traffic signs plan is an attachment of kind traffic_plan",
                                  type="invalid-decision", field="traffic_order.signs_plan_attachment_id")
    out = order.model_dump(mode="json")
    out["signs_plan"] = {"id": str(att.id), "file_name": att.file_name, "sha256": att.sha256}
    return out


def order_given(data: DecisionIn) -> bool:
    return data.traffic_order is not None


def proposed_order(content: dict[str, Any]) -> dict[str, Any]:
    """What the application says about the traffic restrictions: the form's starting values for a traffic order."""
    restrictions = content.get("traffic_restrictions") or []
    starts = [r["start"] for r in restrictions if r.get("start")] or [content.get("planned_start")]
    ends = [r["end"] for r in restrictions if r.get("end")] or [content.get("planned_end")]
    return {"period_start": min((s for s in starts if s), default=None),
            "period_end": max((e for e in ends if e), default=None),
            "restrictions": restrictions}


def announce_if_complete(session: Session, app: Application, cases: list[Case], now: datetime) -> bool:
    """The bundle goes out together: once the last case of an application with further decisions is decided, one
    event ``application.decided`` (the applicant's one e-mail) lists every decision and the package of signed
    documents. Once per application (the sweep writes the same set-based: ``repository.BUNDLE_SQL``)."""
    if not any(is_related(c) for c in cases) or any(c.status in core.OPEN for c in cases):
        return False
    if repository.has_event(session, app.id, "application.decided"):
        return False
    relevant = sorted((c for c in cases if c.status in core.DECIDED),
                      key=lambda c: (is_related(c), c.created_at, str(c.id)))
    orgs = repository.organisations(session, [c.authority_org_id for c in relevant])
    core.event(session, "application.decided", app, now, status=app.status,
               decisions=[{"case_id": str(c.id), "kind": c.kind, "title": KIND_DE[c.kind],
                           "authority": getattr(orgs.get(c.authority_org_id), "name", None), "status": c.status}
                          for c in relevant],
               package_url=f"/api/v1/applications/{app.id}/documents.zip")
    return True


def create_for_plan(session: Session, app: Application, cases: list[Case], decisions: list[dict[str, Any]],
                    version: int, route_changed: bool, now: datetime) -> dict[str, list[dict[str, Any]]]:
    """The pipeline's further decisions (``evaluate``'s ``decisions``, one per body and role) as cases: a new case
    for each not open yet, the triggers of an open one brought up to date; on a changed route an open one no longer
    needed is withdrawn with its reason. Nothing is created while no consent case is open. The caller holds the
    application's and its cases' locks."""
    created, kept, withdrawn = [], [], []
    consent_open = [c for c in cases if not is_related(c) and c.status in core.OPEN]
    wanted: set[tuple[uuid.UUID, str]] = set()
    for item in decisions if consent_open else []:
        body_id, kind = uuid.UUID(item["body_org_id"]), RELATED_KIND_BY_ROLE[item["role"]].value
        wanted.add((body_id, kind))
        current = next((c for c in cases if c.authority_org_id == body_id and c.kind == kind
                        and c.status in core.OPEN), None)
        part = {"id": str(body_id), "name": item["body_name"], "kind": kind, "role": item["role"],
                "triggers": item["triggers"], "pieces": [], "length_m": None}
        if current is not None:
            current.part = part
            current.application_version = version
            kept.append({"case_id": str(current.id), "kind": kind, "body_name": item["body_name"]})
            continue
        case = core.new_case(session, app, body_id, part, now, version)
        case.kind = kind
        case.deadline_at = None                 # no deemed approval of its own: § 127 (3) deems only the consent
        cases.append(case)
        core.bind_related(cases)
        session.flush()
        core.event(session, "case.received", app, now, case, kind=kind, decision_due=case.decision_due,
                   completeness_due=case.completeness_due,
                   triggers=[{"rule": t["rule"], "reason": t["reason"]} for t in item["triggers"]])
        core.audit(session, app=app, case=case, actor=core.SYSTEM_PIPELINE, command="related-decision-required",
                   at=now, version_after=case.row_version, status_after=case.status,
                   detail={"kind": kind, "body": item["body_name"], "rules": [t["rule"] for t in item["triggers"]]})
        created.append({"case_id": str(case.id), "kind": kind, "body_name": item["body_name"],
                        "decision_due": iso(case.decision_due) if case.decision_due else None})
    if route_changed:
        for c in cases:
            if is_related(c) and c.status in core.OPEN and (c.authority_org_id, c.kind) not in wanted:
                c.status, c.updated_at = CaseStatus.withdrawn.value, now
                c.closed_reason = "The changed route no longer needs this decision"
                core.event(session, "case.withdrawn", app, now, c, reason="route_changed")
                withdrawn.append({"case_id": str(c.id), "kind": c.kind})
    session.flush()
    return {"created": created, "kept": kept, "withdrawn": withdrawn}
