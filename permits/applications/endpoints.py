"""Application endpoints: the operator's commands (create, edit a draft, submit, supplements, withdraw, works
notices, attachments) and the reads of applications, their versions, audit trail and attachments.

Every command runs through ``permits.http.run`` (Idempotency-Key, a lost optimistic-lock race as 412); commands on
an existing application need If-Match (``expected_versions``). Both are declared on the endpoint for the OpenAPI.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy.orm import Session

from breitband import clock
from breitband.db import get_read_session, write_session
from breitband.errors import NotFound, UnprocessableEntity
from breitband.identity import Principal
from breitband.openapi import honours_idempotency_key, requires_if_match
from permits import repository, views
from permits.applications import attachments as files
from permits.applications import service
from permits.http import (
    ANYONE,
    JSON_LIST_RESPONSES,
    OPERATOR,
    attachment_response,
    etag_json,
    expected_versions,
    json_list,
    run,
)
from permits.models import Application, ApplicationStatus, AttachmentKind
from permits.schemas import (
    ApplicationCreate,
    ApplicationOut,
    ApplicationPage,
    ApplicationPatch,
    AuditOut,
    SupplementIn,
    VersionOut,
    WithdrawIn,
    WorksCompletionIn,
    WorksStartIn,
)

router = APIRouter(prefix="/api/v1", tags=["permits"])


def _answer(session: Session, principal: Principal, app: Application, now: datetime, status: int = 200):
    """A command's answer: the application as the caller sees it, with its ETag (and Location when created)."""
    body = views.application_out(session, principal, app, now)
    headers = {"ETag": body["etag"]}
    if status == 201:
        headers["Location"] = f"/api/v1/applications/{app.id}"
    return status, body, headers


# --- commands ----------------------------------------------------------------------------------------------------

@router.post("/applications", status_code=201, response_model=ApplicationOut,
             summary="Create a draft application (operator)")
@honours_idempotency_key
def create_application(request: Request, data: ApplicationCreate, principal: Principal = Depends(OPERATOR),
                       session: Session = write_session, now: datetime = Depends(clock.now)) -> JSONResponse:
    return run(request, session, principal, data, lambda: _answer(
        session, principal, service.create(session, principal, data, now), now, 201))


@router.patch("/applications/{application_id}", response_model=ApplicationOut,
              summary="Edit a draft (operator; JSON merge patch, If-Match)")
@requires_if_match
@honours_idempotency_key
def update_application(request: Request, application_id: uuid.UUID, data: ApplicationPatch,
                       principal: Principal = Depends(OPERATOR), session: Session = write_session,
                       now: datetime = Depends(clock.now)) -> JSONResponse:
    expected = expected_versions(request)
    return run(request, session, principal, data, lambda: _answer(
        session, principal, service.update_draft(session, principal, application_id, data, expected, now), now))


@router.post("/applications/{application_id}/submit", response_model=ApplicationOut,
             summary="Submit the draft: resolve the authorities, one case each (operator, If-Match)")
@requires_if_match
@honours_idempotency_key
def application_submit(request: Request, application_id: uuid.UUID, principal: Principal = Depends(OPERATOR),
                       session: Session = write_session, now: datetime = Depends(clock.now)) -> JSONResponse:
    expected = expected_versions(request)
    return run(request, session, principal, None, lambda: _answer(
        session, principal, service.submit(session, principal, application_id, expected, now), now))


@router.post("/applications/{application_id}/supplements", response_model=ApplicationOut,
             summary="Supplement or change the application; restarts the periods (operator, If-Match)")
@requires_if_match
@honours_idempotency_key
def application_supplements(request: Request, application_id: uuid.UUID, data: SupplementIn,
                            principal: Principal = Depends(OPERATOR), session: Session = write_session,
                            now: datetime = Depends(clock.now)) -> JSONResponse:
    expected = expected_versions(request)
    return run(request, session, principal, data, lambda: _answer(
        session, principal, service.supplement(session, principal, application_id, data, expected, now), now))


@router.post("/applications/{application_id}/withdraw", response_model=ApplicationOut,
             summary="Withdraw the application (operator, If-Match)")
@requires_if_match
@honours_idempotency_key
def application_withdraw(request: Request, application_id: uuid.UUID, data: WithdrawIn,
                         principal: Principal = Depends(OPERATOR), session: Session = write_session,
                         now: datetime = Depends(clock.now)) -> JSONResponse:
    expected = expected_versions(request)
    return run(request, session, principal, data, lambda: _answer(
        session, principal, service.withdraw(session, principal, application_id, data, expected, now), now))


@router.post("/applications/{application_id}/works-start", response_model=ApplicationOut,
             summary="Notify the start of works after a grant (operator, If-Match)")
@requires_if_match
@honours_idempotency_key
def application_works_start(request: Request, application_id: uuid.UUID, data: WorksStartIn,
                            principal: Principal = Depends(OPERATOR), session: Session = write_session,
                            now: datetime = Depends(clock.now)) -> JSONResponse:
    expected = expected_versions(request)
    return run(request, session, principal, data, lambda: _answer(
        session, principal, service.works_start(session, principal, application_id, data, expected, now), now))


@router.post("/applications/{application_id}/works-completion", response_model=ApplicationOut,
             summary="Notify completion, optionally with the as-built route (operator, If-Match)")
@requires_if_match
@honours_idempotency_key
def application_works_completion(request: Request, application_id: uuid.UUID, data: WorksCompletionIn,
                                 principal: Principal = Depends(OPERATOR), session: Session = write_session,
                                 now: datetime = Depends(clock.now)) -> JSONResponse:
    expected = expected_versions(request)
    return run(request, session, principal, data, lambda: _answer(
        session, principal, service.works_completion(session, principal, application_id, data, expected, now),
        now))


@router.post("/applications/{application_id}/attachments", status_code=201,
             summary="Upload an attachment: PDF, image, DXF, DWG, GeoPackage, Shapefile zip, KML/KMZ or GeoJSON, "
                     "checked by content (operator)",
             responses={415: {"description": "The content is none of the accepted formats (problem "
                                             "unsupported-media-type, the formats named)",
                              "content": {"application/problem+json": {}}}})
@honours_idempotency_key
def upload_attachment(request: Request, application_id: uuid.UUID, file: UploadFile = File(...),
                      kind: AttachmentKind = Form(AttachmentKind.other), principal: Principal = Depends(OPERATOR),
                      session: Session = write_session, now: datetime = Depends(clock.now)) -> JSONResponse:
    """The content decides the format and the stored media type; a name or declared type naming another format is
    422 `attachment-type-mismatch`; zips are checked for bombs and path tricks (422 `zip-too-large`, `invalid-zip`)
    and must hold a Shapefile (.shp, .shx, .dbf) or a KML (422 `zip-content-mismatch`). Nothing is stored on a
    refusal. Details: docs/api.md, "Attachments"."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: file.file.read(1 << 20), b""):
        digest.update(chunk)
    size = file.file.tell()
    file.file.seek(0)
    payload = {"kind": kind.value, "file_name": file.filename, "content_type": file.content_type,
               "sha256": digest.hexdigest()}
    settings = request.app.state.settings
    limits = files.upload_limits(settings)

    def action():
        repository.get_application(session, principal, application_id)        # scope first: 404, not a quota
        repository.lock_application(session, application_id)                  # parallel uploads queue here
        files.check_quota(repository.attachments(session, application_id), size,
                          settings.max_attachments_per_application,
                          int(settings.max_attachments_total_mb * (1 << 20)))
        att = service.add_attachment(session, principal, application_id, kind, file.filename, file.content_type,
                                     file.file, settings.data_dir, limits, now)
        body = views.attachment_out(application_id, att)
        return 201, body, {"Location": body["url"], "ETag": f'"{att.sha256}"'}

    return run(request, session, principal, payload, action)


# --- reads -------------------------------------------------------------------------------------------------------

@router.get("/applications", response_model=ApplicationPage,
            summary="Applications the caller may see, newest first, with each case's status",
            dependencies=[json_list("applications")], responses=JSON_LIST_RESPONSES)
def list_applications(status: list[str] | None = Query(None, description="Filter by application status"),
                      reference: str | None = Query(None, max_length=32),
                      limit: int = Query(50, ge=1, le=200), offset: int = Query(0, ge=0, le=1_000_000),
                      principal: Principal = Depends(ANYONE), session: Session = Depends(get_read_session)
                      ) -> dict[str, Any]:
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
                    session: Session = Depends(get_read_session),
                    now: datetime = Depends(clock.now)) -> JSONResponse:
    app = repository.get_application(session, principal, application_id)
    return etag_json(views.application_out(session, principal, app, now))


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
