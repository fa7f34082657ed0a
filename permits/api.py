"""Permit endpoints: applications (operators), cases (authorities), catalogue, history.

Commands are POSTs (state changes are never PATCHes of a status). Each command on an existing resource needs
``If-Match`` with the ETag last read (428 without, 412 when stale). Every POST honours ``Idempotency-Key``: the
same key with the same request returns the stored response (header ``Idempotent-Replayed: true``); the same key
with another request is 422. Keys are scoped per user. An illegal transition is 409 with the allowed commands.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from breitband.db import get_read_session, write_session
from breitband.errors import NotFound, UnprocessableEntity
from breitband.identity import Principal
from permits.applications import attachments as files
from permits import repository, views
from permits.cases import catalogue
from permits.cases import review
from permits.applications import service
from permits.http import (ANYONE, AUTHORITY, OPERATOR, attachment_response, clock, expected_versions,
                           run)
from permits.models import AttachmentKind, CaseStatus, CatalogueKind
from permits.schemas import (ApplicationCreate, ApplicationOut, ApplicationPage, ApplicationPatch, AuditOut,
                             CaseOut, CasePage, CatalogueEntryOut, ConfirmCompleteIn, DecisionIn, ExtendDeadlineIn,
                             ForwardIn, RequestInformationIn, SupplementIn, VersionOut, WithdrawIn, WorksCompletionIn,
                             WorksStartIn)

router = APIRouter(prefix="/api/v1", tags=["permits"])

def _app_response(session: Session, principal: Principal, app, now: datetime, status: int = 200):
    body = views.application_out(session, principal, app, now)
    headers = {"ETag": body["etag"]}
    if status == 201:
        headers["Location"] = f"/api/v1/applications/{app.id}"
    return status, body, headers


def _case_response(session: Session, principal: Principal, case, now: datetime):
    body = views.case_out(session, principal, case, now)
    return 200, body, {"ETag": body["etag"]}


def _json(body: dict[str, Any], etag: str | None = None) -> JSONResponse:
    return JSONResponse(body, headers={"ETag": etag} if etag else None)


# --- applications: commands ----------------------------------------------------------------------------------------

@router.post("/applications", status_code=201, response_model=ApplicationOut,
             summary="Create a draft application (operator)")
def create_application(request: Request, data: ApplicationCreate, principal: Principal = Depends(OPERATOR),
                       session: Session = write_session, now: datetime = Depends(clock)) -> JSONResponse:
    return run(request, session, principal, data, lambda: _app_response(
        session, principal, service.create(session, principal, data, now), now, 201))


@router.patch("/applications/{application_id}", response_model=ApplicationOut,
              summary="Edit a draft (operator; JSON merge patch, If-Match)")
def update_application(request: Request, application_id: uuid.UUID, data: ApplicationPatch,
                       principal: Principal = Depends(OPERATOR), session: Session = write_session,
                       now: datetime = Depends(clock)) -> JSONResponse:
    expected = expected_versions(request)
    return run(request, session, principal, data, lambda: _app_response(
        session, principal, service.update_draft(session, principal, application_id, data, expected, now), now))


def _app_command(name: str, summary: str, schema: type[BaseModel] | None, fn: Callable) -> None:
    if schema is None:
        def endpoint(request: Request, application_id: uuid.UUID, principal: Principal = Depends(OPERATOR),
                     session: Session = write_session, now: datetime = Depends(clock)) -> JSONResponse:
            expected = expected_versions(request)
            return run(request, session, principal, None, lambda: _app_response(
                session, principal, fn(session, principal, application_id, expected, now), now))
    else:
        def endpoint(request: Request, application_id: uuid.UUID, data: schema,  # type: ignore[valid-type]
                     principal: Principal = Depends(OPERATOR), session: Session = write_session,
                     now: datetime = Depends(clock)) -> JSONResponse:
            expected = expected_versions(request)
            return run(request, session, principal, data, lambda: _app_response(
                session, principal, fn(session, principal, application_id, data, expected, now), now))
    if schema is not None:
        endpoint.__annotations__["data"] = schema   # a local name: resolve it now, not from module globals
    endpoint.__name__ = f"application_{name.replace('-', '_')}"
    router.add_api_route(f"/applications/{{application_id}}/{name}", endpoint, methods=["POST"],
                         response_model=ApplicationOut, summary=summary)


_app_command("submit", "Submit the draft: resolve the authorities, one case each (operator, If-Match)", None,
             service.submit)
_app_command("supplements", "Supplement or change the application; restarts the periods (operator, If-Match)",
             SupplementIn, service.supplement)
_app_command("withdraw", "Withdraw the application (operator, If-Match)", WithdrawIn, service.withdraw)
_app_command("works-start", "Notify the start of works after a grant (operator, If-Match)", WorksStartIn,
             service.works_start)
_app_command("works-completion", "Notify completion, optionally with the as-built route (operator, If-Match)",
             WorksCompletionIn, service.works_completion)


@router.post("/applications/{application_id}/attachments", status_code=201,
             summary="Upload an attachment: PDF or image, sniffed by content (operator)")
def upload_attachment(request: Request, application_id: uuid.UUID, file: UploadFile = File(...),
                      kind: AttachmentKind = Form(AttachmentKind.other), principal: Principal = Depends(OPERATOR),
                      session: Session = write_session, now: datetime = Depends(clock)) -> JSONResponse:
    digest = hashlib.sha256()
    for chunk in iter(lambda: file.file.read(1 << 20), b""):
        digest.update(chunk)
    size = file.file.tell()
    file.file.seek(0)
    payload = {"kind": kind.value, "file_name": file.filename, "sha256": digest.hexdigest()}
    settings = request.app.state.settings
    max_bytes = int(settings.max_attachment_mb * (1 << 20))

    def action():
        repository.get_application(session, principal, application_id)        # scope first: 404, not a quota
        repository.lock_application(session, application_id)                  # parallel uploads queue here
        files.check_quota(repository.attachments(session, application_id), size,
                          settings.max_attachments_per_application,
                          int(settings.max_attachments_total_mb * (1 << 20)))
        att = service.add_attachment(session, principal, application_id, kind, file.filename, file.file,
                                     settings.data_dir, max_bytes, now)
        body = views.attachment_out(application_id, att)
        return 201, body, {"Location": body["url"], "ETag": f'"{att.sha256}"'}

    return run(request, session, principal, payload, action)


# --- applications: reads -------------------------------------------------------------------------------------------

@router.get("/applications", response_model=ApplicationPage,
            summary="Applications the caller may see, newest first, with each case's status")
def list_applications(status: list[str] | None = Query(None, description="Filter by application status"),
                      reference: str | None = Query(None, max_length=32),
                      limit: int = Query(50, ge=1, le=200), offset: int = Query(0, ge=0, le=1_000_000),
                      principal: Principal = Depends(ANYONE), session: Session = Depends(get_read_session)
                      ) -> dict[str, Any]:
    from permits.models import ApplicationStatus

    bad = [s for s in status or [] if s not in {v.value for v in ApplicationStatus}]
    if bad:
        raise UnprocessableEntity(f"status: unknown {', '.join(bad)}; one of "
                                  + ", ".join(v.value for v in ApplicationStatus), field="status")
    apps, more = repository.list_applications(session, principal, statuses=status, limit=limit, offset=offset,
                                              reference=reference)
    return {"items": views.application_items(session, principal, apps), "limit": limit, "offset": offset,
            "has_more": more}


@router.get("/applications/{application_id}", response_model=ApplicationOut, summary="One application")
def get_application(application_id: uuid.UUID, principal: Principal = Depends(ANYONE),
                    session: Session = Depends(get_read_session), now: datetime = Depends(clock)) -> JSONResponse:
    app = repository.get_application(session, principal, application_id)
    body = views.application_out(session, principal, app, now)
    return _json(body, body["etag"])


@router.get("/applications/{application_id}/versions", response_model=list[VersionOut],
            summary="All versions of the application's content (submission, supplements)")
def list_versions(application_id: uuid.UUID, principal: Principal = Depends(ANYONE),
                  session: Session = Depends(get_read_session)) -> JSONResponse:
    app = repository.get_application(session, principal, application_id)
    rows = repository.versions(session, app.id)
    if repository.is_authority(principal):
        rows = [v for v in rows if v.submitted_at is not None]
    # Rendered as stored (JSON-ready), not re-validated: content stored before the depth limit stays readable.
    return JSONResponse([views.version_out(v) for v in rows])


@router.get("/applications/{application_id}/versions/{number}", response_model=VersionOut,
            summary="One version of the application's content")
def get_version(application_id: uuid.UUID,
                number: int = Path(ge=1, le=2**31 - 1, description="Version number, 1 = the submission"),
                principal: Principal = Depends(ANYONE),
                session: Session = Depends(get_read_session)) -> JSONResponse:
    app = repository.get_application(session, principal, application_id)
    v = repository.version_row(session, app.id, number)
    if repository.is_authority(principal) and v.submitted_at is None:
        raise NotFound(f"Application {application_id} has no version {number}", type="version-not-found")
    return JSONResponse(views.version_out(v))


@router.get("/applications/{application_id}/history", response_model=list[AuditOut],
            summary="The audit trail: every command, who, on behalf of whom, when, versions before and after")
def application_history(application_id: uuid.UUID, principal: Principal = Depends(ANYONE),
                        session: Session = Depends(get_read_session)) -> list[dict[str, Any]]:
    app = repository.get_application(session, principal, application_id)
    case_ids = None
    if repository.is_authority(principal):
        case_ids = [c.id for c in repository.cases_of(session, [app.id])[app.id]
                    if c.authority_org_id == principal.organisation_id]
    records = views.visible_audit(session, principal, app, repository.audit_trail(session, app.id, case_ids=case_ids))
    return [views.audit_out(r) for r in records]


@router.get("/applications/{application_id}/attachments/{attachment_id}",
            summary="Download an attachment", response_class=FileResponse)
def download_attachment(request: Request, application_id: uuid.UUID, attachment_id: uuid.UUID,
                        principal: Principal = Depends(ANYONE), session: Session = Depends(get_read_session)):
    app = repository.get_application(session, principal, application_id)
    att = next((a for a in views.visible_attachments(session, principal, app) if a.id == attachment_id), None)
    if att is None:
        raise NotFound(f"No attachment {attachment_id}", type="attachment-not-found")
    return attachment_response(request, att)


# --- cases -----------------------------------------------------------------------------------------------------

def _case_command(name: str, summary: str, schema: type[BaseModel], fn: Callable) -> None:
    def endpoint(request: Request, case_id: uuid.UUID, data: schema,  # type: ignore[valid-type]
                 principal: Principal = Depends(AUTHORITY), session: Session = write_session,
                 now: datetime = Depends(clock)) -> JSONResponse:
        expected = expected_versions(request)
        return run(request, session, principal, data, lambda: _case_response(
            session, principal, fn(session, principal, case_id, data, expected, now), now))
    endpoint.__annotations__["data"] = schema
    endpoint.__name__ = f"case_{name.replace('-', '_')}"
    router.add_api_route(f"/cases/{{case_id}}/{name}", endpoint, methods=["POST"], response_model=CaseOut,
                         summary=summary)


_case_command("request-information", "Report the application incomplete / ask for information (authority)",
              RequestInformationIn, review.request_information)
_case_command("confirm-complete", "Confirm the application complete (authority)", ConfirmCompleteIn,
              review.confirm_complete)
_case_command("decision", "Decide: granted | partially_granted | refused, with conditions and reasons (authority)",
              DecisionIn, review.decide)
_case_command("forward", "Hand the case (or some pieces) on to another road authority, with a reason (authority)",
              ForwardIn, review.forward)
_case_command("extend-deadline", "Extend the decision deadline once by one month, with reasons (authority)",
              ExtendDeadlineIn, review.extend_deadline)


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
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


def _day(text: str | None, field: str) -> date | None:
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


@router.get("/cases", response_model=CasePage,
            summary="Inbox: cases in legal order (§ 147 (2) TKG: first in, first out by complete receipt)")
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
               now: datetime = Depends(clock)) -> dict[str, Any]:
    due = _day(due_before, "due_before")
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
                                  due_before=due, overdue_at=now if overdue else None, bbox=_bbox(bbox),
                                  application_id=application_id, limit=limit, offset=offset, after=cursor)
    following = repository.InboxCursor.after(rows[-1][0]).encode() if more and rows else None
    return {"items": views.case_items(session, rows, now), "limit": limit, "offset": offset, "has_more": more,
            "next": following}


@router.get("/cases/{case_id}", response_model=CaseOut, summary="One case")
def get_case(case_id: uuid.UUID, principal: Principal = Depends(ANYONE), session: Session = Depends(get_read_session),
             now: datetime = Depends(clock)) -> JSONResponse:
    case = repository.get_case(session, principal, case_id)
    body = views.case_out(session, principal, case, now)
    return _json(body, body["etag"])


@router.get("/cases/{case_id}/history", response_model=list[AuditOut], summary="The case's audit trail")
def case_history(case_id: uuid.UUID, principal: Principal = Depends(ANYONE),
                 session: Session = Depends(get_read_session)) -> list[dict[str, Any]]:
    case = repository.get_case(session, principal, case_id)
    return [views.audit_out(r) for r in repository.audit_trail(session, case.application_id, case_ids=[case.id])
            if r.case_id == case.id]


# --- catalogue -------------------------------------------------------------------------------------------------

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


# --- pipeline, participation and documents (their own modules) ---------------------------------------------------

from permits.documents import endpoints as documents_api  # noqa: E402
from permits.participation import endpoints as participation_api
from permits.pipeline import endpoints as pipeline_api

router.include_router(pipeline_api.router)
router.include_router(participation_api.router)
router.include_router(documents_api.router)
router.routes.extend(documents_api.public_router.routes)     # /verify: public, outside /api/v1
