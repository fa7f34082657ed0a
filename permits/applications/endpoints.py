"""Application endpoints: the operator's commands (create, edit a draft, submit, supplements, withdraw, works
notices, attachments) and the reads of applications, their versions, audit trail and attachments.

Every command runs through ``permits.http.run`` (Idempotency-Key, a lost optimistic-lock race as 412); commands on
an existing application need If-Match (``expected_versions``). Both are declared on the endpoint for the OpenAPI.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile as FormFile

from breitband import clock
from breitband.db import get_read_session, write_session
from breitband.errors import NotFound, UnprocessableEntity
from breitband.identity import Principal
from breitband.openapi import honours_idempotency_key, requires_if_match
from geo.api import (
    CRS_QUERY,
    LAYER_QUERY,
    MAX_FILE_PARTS,
    UNSUPPORTED_FORMAT,
    RouteUpload,
    form_text,
    route_upload,
)
from geo.route_files import ACCEPTED, MEDIA_TYPES
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
from permits.models import Application, ApplicationStatus, AttachmentKind, LayingMethod
from permits.schemas import (
    ApplicationCreate,
    ApplicationOut,
    ApplicationPage,
    ApplicationPatch,
    ApplicationRouteOut,
    AuditOut,
    SectionDefaults,
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

# --- route files (issue 14): the body of a create or route upload, read before the endpoint runs ---------------

def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "multipart/form-data"


def _validated(model, raw: bytes, loc: tuple[str, ...]):
    """A request body part → the model, or the 422 that FastAPI gives for a JSON body that does not fit."""
    if not raw.strip():
        raise RequestValidationError([{"type": "missing", "loc": loc, "msg": "Field required", "input": None}])
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": (*loc, *e["loc"])} for e in exc.errors(include_url=False)]
                                     ) from None


@dataclass
class CreateBody:
    """A create request: the application's fields, and the route file of a multipart create."""

    data: ApplicationCreate
    upload: RouteUpload | None


async def create_body(request: Request, crs: str | None = CRS_QUERY, layer: str | None = LAYER_QUERY
                      ) -> CreateBody:
    """JSON (``ApplicationCreate``), or multipart/form-data: the fields as JSON in the part ``application`` and
    the route file in ``file`` (the parts of a Shapefile: ``file`` repeated)."""
    if not _is_multipart(request):
        return CreateBody(_validated(ApplicationCreate, await request.body(), ("body",)), None)
    upload = await route_upload(request, crs, layer)
    part = upload.form.get("application") if upload.form is not None else None
    raw = await part.read() if isinstance(part, FormFile) else (part or "{}").encode()
    data = _validated(ApplicationCreate, raw, ("body", "application"))
    clash = sorted(data.model_fields_set & {"sections", "crs"})
    if clash:
        raise UnprocessableEntity(f"application: {', '.join(clash)} come from the route file in a multipart create "
                                  "(its CRS as the form field crs); leave them out of the JSON part",
                                  type="validation-error", field="application." + clash[0],
                                  errors=[{"field": f"application.{c}", "message": "comes from the file"}
                                          for c in clash])
    return CreateBody(data, upload)


async def route_file_upload(request: Request, crs: str | None = CRS_QUERY, layer: str | None = LAYER_QUERY
                            ) -> RouteUpload:
    return await route_upload(request, crs, layer)


async def section_defaults(
        request: Request,
        laying_method: LayingMethod | None = Query(None, description="Route files: the laying method of every "
                                                   "line without its own (attribute laying_method or laying_met)"),
        depth_cm: int | None = Query(None, ge=1, le=1000, description="Route files: depth of lines without one"),
        width_cm: int | None = Query(None, ge=1, le=500, description="Route files: width of lines without one"),
        reduced_depth: bool | None = Query(None, description="Route files: § 127 (7) TKG statement of lines "
                                                             "without one")) -> SectionDefaults:
    """The defaults for a route file's lines, as query parameters or as fields of the multipart form."""
    values: dict[str, Any] = {k: v for k, v in (("laying_method", laying_method), ("depth_cm", depth_cm),
                                                 ("width_cm", width_cm), ("reduced_depth", reduced_depth))
                              if v is not None}
    if _is_multipart(request):
        form = await request.form(max_files=MAX_FILE_PARTS, max_fields=20)   # parsed once, cached by the request
        for name in SectionDefaults.model_fields:
            text = form_text(form.get(name))
            if text is not None:
                values.setdefault(name, text)
    try:
        return SectionDefaults.model_validate(values)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
                                     ) from None


def _upload_payload(upload: RouteUpload, defaults: SectionDefaults) -> dict[str, Any]:
    """What makes two uploads the same request (Idempotency-Key): the file's digest and the parameters."""
    return {"file_sha256": hashlib.sha256(upload.body).hexdigest(), "crs": upload.crs, "layer": upload.layer,
            "defaults": defaults.model_dump(mode="json", exclude_none=True)}


_FILE_MEDIA = {m: {"schema": {"type": "string", "format": "binary"}} for m in MEDIA_TYPES if "json" not in m}
_FILE_PARTS = {
    "file": {"type": "array", "items": {"type": "string", "format": "binary"},
             "description": "The route file (any of: " + ", ".join(ACCEPTED) + "; recognised by content), or the "
                            "parts of one Shapefile (.shp, .shx, .dbf, .prj, .cpg), one `file` each"},
    "crs": {"type": "string", "description": "CRS of a file that names none (DXF, CSV, a Shapefile without .prj)"},
    "layer": {"type": "string", "description": "The layer of a multi-layer file"},
    "laying_method": {"type": "string", "enum": [m.value for m in LayingMethod]},
    "depth_cm": {"type": "integer", "minimum": 1, "maximum": 1000},
    "width_cm": {"type": "integer", "minimum": 1, "maximum": 500},
    "reduced_depth": {"type": "boolean"},
}
_ROUTE_FILE_BODY = {"requestBody": {"required": True, "content": {
    "application/geo+json": {"schema": {"type": "object"}}, "application/json": {"schema": {"type": "object"}},
    **_FILE_MEDIA,
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": _FILE_PARTS}}},
    "description": "The route as a file, the raw body (any of: " + ", ".join(ACCEPTED) + ") or multipart/form-data "
                   "with `file` (a Shapefile also as its parts, `file` repeated), `crs`, `layer`, and defaults for "
                   "the lines (`laying_method`, `depth_cm`, `width_cm`, `reduced_depth`) where the file has none."}}


def _create_openapi() -> dict[str, Any]:
    """The create's two bodies: JSON, or multipart with the fields as JSON beside the route file. (The JSON schema
    is written out because the endpoint reads the body itself; its nested models are the components that the
    PATCH of a draft declares.)"""
    schema = ApplicationCreate.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": schema},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "application": {"type": "string", "description": "The application's fields as JSON (as the JSON "
                            "body, without sections and crs)", "contentMediaType": "application/json"},
            **_FILE_PARTS}}}},
        "description": "The application as JSON; or multipart/form-data with its fields as JSON in the part "
                       "`application` and the route read from the file in `file` (any format /resolve reads), "
                       "stored as sections in EPSG:4326; the answer then also says what was read (`route_file`)."}}


def _route_answer(session: Session, principal: Principal, app: Application, read: dict[str, Any], now: datetime,
                  status: int = 200):
    status, body, headers = _answer(session, principal, app, now, status)
    return status, {**body, "route_file": read}, headers


# --- commands ----------------------------------------------------------------------------------------------------

@router.post("/applications", status_code=201, response_model=ApplicationOut,
             summary="Create a draft application (operator; JSON, or multipart with a route file)",
             openapi_extra=_create_openapi(), responses=UNSUPPORTED_FORMAT)
@honours_idempotency_key
def create_application(request: Request, principal: Principal = Depends(OPERATOR),
                       body: CreateBody = Depends(create_body), defaults: SectionDefaults = Depends(section_defaults),
                       session: Session = write_session, now: datetime = Depends(clock.now)) -> JSONResponse:
    data, upload = body.data, body.upload
    if upload is None:
        return run(request, session, principal, data, lambda: _answer(
            session, principal, service.create(session, principal, data, now), now, 201))
    payload = {"application": data.model_dump(mode="json", exclude_unset=True), **_upload_payload(upload, defaults)}

    def action():
        app, read = service.create_from_file(session, principal, data, upload.body, upload.crs, upload.layer,
                                             defaults, now)
        return _route_answer(session, principal, app, read, now, 201)

    return run(request, session, principal, payload, action)


@router.put("/applications/{application_id}/route", response_model=ApplicationRouteOut,
            summary="Replace a draft's route with a route file in any format (operator, If-Match)",
            openapi_extra=_ROUTE_FILE_BODY, responses=UNSUPPORTED_FORMAT)
@requires_if_match
@honours_idempotency_key
def replace_route(request: Request, application_id: uuid.UUID, principal: Principal = Depends(OPERATOR),
                  upload: RouteUpload = Depends(route_file_upload),
                  defaults: SectionDefaults = Depends(section_defaults), session: Session = write_session,
                  now: datetime = Depends(clock.now)) -> JSONResponse:
    expected = expected_versions(request)

    def action():
        app, read = service.replace_route(session, principal, application_id, upload.body, upload.crs,
                                          upload.layer, defaults, expected, now)
        return _route_answer(session, principal, app, read, now)

    return run(request, session, principal, _upload_payload(upload, defaults), action)


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
