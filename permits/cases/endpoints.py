"""Case endpoints: the authority's commands on a case (request information, confirm complete, decision, forward,
extend the deadline), the inbox and the reads of a case, and the tenant's catalogue (standard conditions, refusal
reasons) that decisions draw from.

Every command runs through ``permits.http.run`` (Idempotency-Key, a lost optimistic-lock race as 412) and needs
If-Match (``expected_versions``); both are declared on the endpoint for the OpenAPI.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from breitband import clock
from breitband.db import get_read_session, write_session
from breitband.errors import UnprocessableEntity
from breitband.identity import Principal
from breitband.openapi import honours_idempotency_key, requires_if_match
from geo.models import Authority
from permits import repository, views
from permits.cases import calculator, catalogue, review
from permits.http import ANYONE, AUTHORITY, JSON_LIST_RESPONSES, etag_json, expected_versions, json_list, run
from permits.models import Case, CaseStatus, CatalogueKind
from permits.schemas import (
    AuditOut,
    CaseOut,
    CasePage,
    CatalogueEntryOut,
    ConfirmCompleteIn,
    DeadlinesOut,
    DecisionIn,
    ExtendDeadlineIn,
    ForwardIn,
    RequestInformationIn,
)

router = APIRouter(prefix="/api/v1", tags=["permits"])


def _answer(session: Session, principal: Principal, case: Case, now: datetime):
    """A command's answer: the case as the caller sees it, with its ETag."""
    body = views.case_out(session, principal, case, now)
    return 200, body, {"ETag": body["etag"]}


# --- commands ----------------------------------------------------------------------------------------------------

@router.post("/cases/{case_id}/request-information", response_model=CaseOut,
             summary="Report the application incomplete / ask for information (authority)")
@requires_if_match
@honours_idempotency_key
def case_request_information(request: Request, case_id: uuid.UUID, data: RequestInformationIn,
                             principal: Principal = Depends(AUTHORITY), session: Session = write_session,
                             now: datetime = Depends(clock.now)) -> JSONResponse:
    expected = expected_versions(request)
    return run(request, session, principal, data, lambda: _answer(
        session, principal, review.request_information(session, principal, case_id, data, expected, now), now))


@router.post("/cases/{case_id}/confirm-complete", response_model=CaseOut,
             summary="Confirm the application complete (authority)")
@requires_if_match
@honours_idempotency_key
def case_confirm_complete(request: Request, case_id: uuid.UUID, data: ConfirmCompleteIn,
                          principal: Principal = Depends(AUTHORITY), session: Session = write_session,
                          now: datetime = Depends(clock.now)) -> JSONResponse:
    expected = expected_versions(request)
    return run(request, session, principal, data, lambda: _answer(
        session, principal, review.confirm_complete(session, principal, case_id, data, expected, now), now))


@router.post("/cases/{case_id}/decision", response_model=CaseOut,
             summary="Decide: granted | partially_granted | refused, with conditions and reasons (authority)")
@requires_if_match
@honours_idempotency_key
def case_decision(request: Request, case_id: uuid.UUID, data: DecisionIn, principal: Principal = Depends(AUTHORITY),
                  session: Session = write_session, now: datetime = Depends(clock.now)) -> JSONResponse:
    expected = expected_versions(request)
    return run(request, session, principal, data, lambda: _answer(
        session, principal, review.decide(session, principal, case_id, data, expected, now), now))


@router.post("/cases/{case_id}/forward", response_model=CaseOut,
             summary="Hand the case (or some pieces) on to another road authority, with a reason (authority)")
@requires_if_match
@honours_idempotency_key
def case_forward(request: Request, case_id: uuid.UUID, data: ForwardIn, principal: Principal = Depends(AUTHORITY),
                 session: Session = write_session, now: datetime = Depends(clock.now)) -> JSONResponse:
    expected = expected_versions(request)
    return run(request, session, principal, data, lambda: _answer(
        session, principal, review.forward(session, principal, case_id, data, expected, now), now))


@router.post("/cases/{case_id}/extend-deadline", response_model=CaseOut,
             summary="Extend the decision deadline once by one month, with reasons (authority)")
@requires_if_match
@honours_idempotency_key
def case_extend_deadline(request: Request, case_id: uuid.UUID, data: ExtendDeadlineIn,
                         principal: Principal = Depends(AUTHORITY), session: Session = write_session,
                         now: datetime = Depends(clock.now)) -> JSONResponse:
    expected = expected_versions(request)
    return run(request, session, principal, data, lambda: _answer(
        session, principal, review.extend_deadline(session, principal, case_id, data, expected, now), now))


# --- inbox and reads ---------------------------------------------------------------------------------------------

def bbox_filter(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not (values[0] < values[2] and values[1] < values[3]) or \
            not all(-180 <= v <= 180 for v in values[::2]) or not all(-90 <= v <= 90 for v in values[1::2]):
        raise UnprocessableEntity("bbox: give minLon,minLat,maxLon,maxLat in EPSG:4326, e.g. 8.6,50.0,8.8,50.1",
                                  type="validation-error", field="bbox")
    return values  # type: ignore[return-value]


def day_filter(text: str | None, field: str) -> date | None:
    """A calendar day of a query filter, within the years a permit can concern (no date arithmetic overflows)."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is None or not date(2000, 1, 1) <= day <= date(2999, 12, 31):
        raise UnprocessableEntity(f"{field}: {text!r} is not a day between 2000-01-01 and 2999-12-31 (YYYY-MM-DD)",
                                  type="validation-error", field=field)
    return day


@router.get("/deadlines", response_model=DeadlinesOut,
            summary="Deadline calculator: completeness, decision and extended due for a receipt (any role)")
def deadlines_calculator(
        received: str = Query(..., description="Receipt of the application: YYYY-MM-DD (that day in Europe/Berlin) "
                              "or an ISO 8601 date-time", examples=["2027-02-27"]),
        complete: str | None = Query(None, description="Complete receipt (after a supplement), same format; "
                                     "default: the receipt"),
        extended: bool = Query(False, description="Count the deemed approval from the extended decision period"),
        place: str | None = Query(None, description="AGS of the authority's seat where the tenant's calendar "
                                  "differs inside the state (e.g. 09761000 Augsburg); default: the caller's own "
                                  "authority, else the state"),
        principal: Principal = Depends(ANYONE), session: Session = Depends(get_read_session)) -> dict[str, Any]:
    """The tenant is the caller's. Every end is moved off Saturdays, Sundays and public holidays (§ 193 BGB,
    § 31 (3) VwVfG) with the reason; bad dates → 422 problem+json naming the parameter."""
    if place is None and repository.is_authority(principal) and principal.organisation_id is not None:
        own = session.get(Authority, principal.organisation_id)
        place = own.key if own is not None and own.key else None
    return calculator.compute(session, principal.tenant_key, received, complete, extended, place)


@router.get("/cases", response_model=CasePage,
            summary="Inbox: cases in legal order (§ 147 (2) TKG: first in, first out by complete receipt)",
            dependencies=[json_list("cases")], responses=JSON_LIST_RESPONSES)
def list_cases(status: list[CaseStatus] | None = Query(None),
               due_before: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$", json_schema_extra={
                   "format": "date"}, description="Only cases whose decision is due on or before this day "
                   "(YYYY-MM-DD, 2000-01-01 to 2999-12-31)"),
               overdue: bool | None = Query(None, description="Only open cases whose decision period expired"),
               bbox: str | None = Query(None, description="minLon,minLat,maxLon,maxLat (EPSG:4326)"),
               application_id: uuid.UUID | None = Query(None),
               limit: int = Query(50, ge=1, le=200),
               after: str | None = Query(None, max_length=300, description="Continue after this position: the "
                                         "`next` of the previous page (keyset paging, the same cost on every page)"),
               offset: int = Query(0, ge=0, le=1_000_000, description="Skip this many cases (costs grow with it; "
                                   "prefer `after`)"),
               principal: Principal = Depends(ANYONE), session: Session = Depends(get_read_session),
               now: datetime = Depends(clock.now)) -> dict[str, Any]:
    due = day_filter(due_before, "due_before")
    cursor = None
    if after is not None:
        if offset:
            raise UnprocessableEntity("after and offset exclude each other: page with the `next` cursor alone",
                                      type="validation-error", field="after")
        try:
            cursor = repository.InboxCursor.decode(after)
        except ValueError:
            raise UnprocessableEntity("after: not a position in the inbox; send the `next` of the previous page",
                                      type="validation-error", field="after") from None
    rows, more = repository.inbox(session, principal, statuses=[s.value for s in status] if status else None,
                                  due_before=due, overdue_at=now if overdue else None, bbox=bbox_filter(bbox),
                                  application_id=application_id, limit=limit, offset=offset, after=cursor)
    following = repository.InboxCursor.after(rows[-1][0]).encode() if more and rows else None
    return {"items": views.case_items(session, rows, now), "limit": limit, "offset": offset, "has_more": more,
            "next": following}


@router.get("/cases/{case_id}", response_model=CaseOut, summary="One case")
def get_case(case_id: uuid.UUID, principal: Principal = Depends(ANYONE), session: Session = Depends(get_read_session),
             now: datetime = Depends(clock.now)) -> JSONResponse:
    case = repository.get_case(session, principal, case_id)
    return etag_json(views.case_out(session, principal, case, now))


@router.get("/cases/{case_id}/history", response_model=list[AuditOut], summary="The case's audit trail")
def case_history(case_id: uuid.UUID, principal: Principal = Depends(ANYONE),
                 session: Session = Depends(get_read_session)) -> list[dict[str, Any]]:
    case = repository.get_case(session, principal, case_id)
    return [views.audit_out(r) for r in repository.audit_trail(session, case.application_id, case_ids=[case.id])
            if r.case_id == case.id]


# --- catalogue ---------------------------------------------------------------------------------------------------

@router.get("/conditions", response_model=list[CatalogueEntryOut],
            summary="Standard conditions (Nebenbestimmungen) of the caller's tenant")
def list_conditions(include_inactive: bool = False, principal: Principal = Depends(ANYONE),
                    session: Session = Depends(get_read_session)) -> list[dict[str, Any]]:
    return [views.catalogue_out(e) for e in catalogue.entries(session, principal.tenant_key, CatalogueKind.condition,
                                                              include_inactive=include_inactive)]


@router.get("/refusal-reasons", response_model=list[CatalogueEntryOut],
            summary="Refusal reason codes of the caller's tenant")
def list_refusal_reasons(include_inactive: bool = False, principal: Principal = Depends(ANYONE),
                         session: Session = Depends(get_read_session)) -> list[dict[str, Any]]:
    return [views.catalogue_out(e) for e in catalogue.entries(
        session, principal.tenant_key, CatalogueKind.refusal_reason, include_inactive=include_inactive)]
