"""Decision document endpoints.

For the parties (``/api/v1``; scoped like cases: the applicant, the case's authority, tenant admins):
``GET /cases/{id}/documents``, ``GET /documents/{id}``, ``GET /documents/{id}/pdf`` (download),
``POST /documents/{id}/regenerate`` and ``POST /documents/{id}/revoke`` (the authority's admins, tenant admins).

Public, no authentication (``public_router``, mounted at the root): ``GET /verify/{document_id}`` — hash, signer,
date and status (valid | superseded | revoked), no personal data; JSON, or a small HTML page for browsers that
followed the QR code — and ``POST /verify`` with the PDF (multipart ``file``): genuine and unchanged, or not, and why.
"""

from __future__ import annotations

import hashlib
import html
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from breitband import clock
from breitband.auth import require
from breitband.dates import iso
from breitband.db import get_read_session, write_session
from breitband.errors import Conflict, Forbidden, NotFound, ProblemError, UnprocessableEntity
from breitband.identity import Principal
from breitband.limits import PayloadTooLarge
from breitband.models import Role
from breitband.openapi import PROBLEM
from notifications.outbox import send_after_commit
from notifications.templates import de_datetime
from permits import repository
from permits.documents import bundle
from permits.documents import keys as documents_keys
from permits.documents import service as documents
from permits.documents.models import DecisionDocument, DocumentStatus
from permits.models import Application

router = APIRouter(tags=["documents"])
public_router = APIRouter(tags=["verification"])


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reason: str = Field(min_length=1, max_length=5000)


def document_out(doc: DecisionDocument, admin: bool = False) -> dict[str, Any]:
    out = {"id": str(doc.id), "case_id": str(doc.case_id), "application_id": str(doc.application_id),
           "generation": doc.generation, "kind": doc.kind, "outcome": doc.outcome, "status": doc.status,
           "validity": doc.validity, "sha256": doc.sha256, "size_bytes": doc.size_bytes, "signer": doc.signer,
           "signed_at": iso(doc.signed_at), "superseded_by": str(doc.superseded_by) if doc.superseded_by else None,
           "revoked_at": iso(doc.revoked_at), "revoked_reason": doc.revoked_reason, "created_at": iso(doc.created_at),
           "verify_url": documents.verify_url(doc.id),
           "pdf_url": f"/api/v1/documents/{doc.id}/pdf" if doc.status == DocumentStatus.ready.value else None}
    if admin:
        out.update(attempts=doc.attempts, error=doc.error)
    return out


def _readable(session: Session, principal: Principal, document_id: uuid.UUID) -> DecisionDocument:
    doc = session.get(DecisionDocument, document_id)
    if doc is None or doc.tenant_key != principal.tenant_key:
        raise NotFound(f"No document {document_id}", type="document-not-found")
    try:
        repository.get_case(session, principal, doc.case_id)          # the case's scope decides
    except NotFound:
        raise NotFound(f"No document {document_id}", type="document-not-found") from None
    return doc


def _may_manage(session: Session, principal: Principal, doc: DecisionDocument) -> None:
    if principal.is_tenant_admin:
        return
    case = repository.get_case(session, principal, doc.case_id)
    if principal.role is not Role.authority_admin or case.authority_org_id != principal.organisation_id:
        raise Forbidden("Only the deciding authority's admins and tenant admins can do this",
                        type="not-your-document")


@router.get("/cases/{case_id}/documents", summary="The decision documents of a case, newest first")
def case_documents(case_id: uuid.UUID, principal: Principal = Depends(require()),
                   session: Session = Depends(get_read_session)) -> list[dict[str, Any]]:
    case = repository.get_case(session, principal, case_id)
    rows = session.scalars(select(DecisionDocument).where(DecisionDocument.case_id == case.id)
                           .order_by(DecisionDocument.generation.desc()))
    return [document_out(d, principal.is_tenant_admin) for d in rows]


@router.get("/applications/{application_id}/documents.zip", response_class=Response,
            responses={200: {"content": {"application/zip": {}}},
                       409: {"description": "A case is still open (application-not-decided), or a document is still "
                                            "being produced (documents-not-ready)", "content": PROBLEM}},
            summary="The bundle: the signed documents of every decided case of the application (consent and the "
                    "further decisions of § 127 (5) TKG) as one zip with manifest.json")
def application_documents_package(application_id: uuid.UUID, principal: Principal = Depends(require()),
                                  session: Session = Depends(get_read_session)) -> Response:
    app = repository.get_application(session, principal, application_id)
    body, manifest = bundle.package(session, principal, app)
    digest = hashlib.sha256("".join(m["sha256"] for m in manifest).encode()).hexdigest()
    return Response(body, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="Bescheide-{app.reference}.zip"', "ETag": f'"{digest}"',
        "X-Content-Type-Options": "nosniff"})


@router.get("/documents/{document_id}", summary="One decision document's metadata")
def get_document(document_id: uuid.UUID, principal: Principal = Depends(require()),
                 session: Session = Depends(get_read_session)) -> dict[str, Any]:
    return document_out(_readable(session, principal, document_id), principal.is_tenant_admin)


@router.get("/documents/{document_id}/pdf", summary="Download the signed PDF", response_class=FileResponse)
def download_document(document_id: uuid.UUID, principal: Principal = Depends(require()),
                      session: Session = Depends(get_read_session)):
    doc = _readable(session, principal, document_id)
    if doc.status != DocumentStatus.ready.value:
        raise Conflict(f"The document is not ready yet ({doc.status})", type="document-not-ready",
                       document_status=doc.status)
    path = documents.file_path(doc)
    if not path.is_file():
        raise ProblemError(f"The stored file of document {document_id} is missing", status=500,
                           type="document-file-missing")
    app = session.get(Application, doc.application_id)
    return FileResponse(path, media_type="application/pdf", filename=f"Bescheid-{app.reference}-{doc.generation}.pdf",
                        headers={"ETag": f'"{doc.sha256}"', "X-Content-Type-Options": "nosniff"})


@router.post("/documents/{document_id}/regenerate", status_code=202,
             summary="Produce the document again (new generation; the current one is superseded when it is ready)")
def regenerate_document(document_id: uuid.UUID, principal: Principal = Depends(require(Role.authority_admin,
                                                                                      Role.tenant_admin)),
                        session: Session = write_session, now: datetime = Depends(clock.now)) -> dict[str, Any]:
    doc = _readable(session, principal, document_id)
    _may_manage(session, principal, doc)
    new = documents.regenerate(session, doc, now)
    send_after_commit(session, "permits.document_generate", [str(new.id)])
    return document_out(new, principal.is_tenant_admin)


@router.post("/documents/{document_id}/revoke", summary="Revoke a document (it verifies as revoked from now on)")
def revoke_document(document_id: uuid.UUID, data: RevokeIn,
                    principal: Principal = Depends(require(Role.authority_admin, Role.tenant_admin)),
                    session: Session = write_session, now: datetime = Depends(clock.now)) -> dict[str, Any]:
    doc = _readable(session, principal, document_id)
    _may_manage(session, principal, doc)
    if doc.status != DocumentStatus.ready.value:
        raise Conflict("Only an issued document can be revoked", type="document-not-ready")
    return document_out(documents.revoke(session, doc, data.reason, principal.user_id, now),
                        principal.is_tenant_admin)


# --- public verification -----------------------------------------------------------------------------------------

def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


KEY_DE = {"authority": "Zertifikat der Behörde / the authority's certificate",
          "authority_test": "Testschlüssel der Behörde (selbstsigniert) / the authority's test key (self-signed)",
          "platform": "Plattformschlüssel des Landes / the state's platform key"}


def _local(instant: str | None) -> str:
    return de_datetime(instant) if instant else ""


STATUS_DE = {"valid": "gültig", "superseded": "ersetzt durch eine neuere Fassung", "revoked": "widerrufen"}


@public_router.get("/verify/{document_id}", summary="Verify a decision document by its id (public)")
def verify_by_id(document_id: uuid.UUID, request: Request, session: Session = Depends(get_read_session)):
    doc = documents.get_public(session, document_id)
    view = {**documents.public_view(session, doc), "trust": _trust_of_file(session, doc)}
    if not _wants_html(request):
        return JSONResponse(view, headers={"Cache-Control": "no-store"})
    e = {k: html.escape(str(v)) if v is not None else "" for k, v in view.items()}
    trust = view["trust"]
    trust_line = (f"<p><strong>{html.escape(trust['statement'])}</strong></p>" if trust else "")
    who = view.get("official") or {}
    official = (f"<dt>Entschieden und signiert von / official</dt><dd>{html.escape(who['name'])}"
                f"{', ' + html.escape(who['function']) if who.get('function') else ''}</dd>" if who else "")
    key = KEY_DE.get(view.get("key_source") or "platform", "")
    # No inline style or script: the page is under the service's Content-Security-Policy (breitband/headers.py).
    page = f"""<!DOCTYPE html><html lang="de"><head><meta charset="utf-8"><title>Bescheid prüfen</title>
<meta name="viewport" content="width=device-width,initial-scale=1"></head><body><h1>Bescheid {e['reference']}</h1>
<p>Status: <strong>{html.escape(STATUS_DE.get(view['status'], view['status']))}</strong> ({e['status']})</p>
{trust_line}
<dl><dt>Ausgestellt von / issuer</dt><dd>{e['issuer']}</dd>{official}
<dt>Signiert am / signed at</dt><dd>{html.escape(_local(view['signed_at']))}</dd>
<dt>Signaturzertifikat / signer</dt><dd>{e['signer']}</dd>
<dt>Schlüssel / key</dt><dd>{html.escape(key)}</dd><dt>SHA-256</dt><dd><code>{e['sha256']}</code></dd></dl>
<p>Stimmt die SHA-256-Prüfsumme Ihrer Datei überein, ist sie unverändert. / If the SHA-256 of your file matches,
it is unchanged. Oder laden Sie die Datei hoch (POST /verify).</p></body></html>"""
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


def _trust_of_file(session: Session, doc: DecisionDocument) -> dict[str, Any] | None:
    """Whether the key the issued file was signed with is trusted for the document's tenant: the authority's
    imported certificate yes, its self-signed test key and development platform keys no."""
    path = documents.file_path(doc)
    trust = documents_keys.trust_of_pdf(path.read_bytes(), session, doc.tenant_key) if path.is_file() else None
    return trust.as_dict() if trust else None


@public_router.post("/verify", summary="Upload a PDF: is it a genuine, unchanged document of this service? (public)")
def verify_upload(request: Request, file: UploadFile = File(...),
                  session: Session = Depends(get_read_session)) -> dict[str, Any]:
    # The request body is bounded while it streams in (breitband/limits.py, body_limit_verify_mb); the file, spooled
    # to disk by the multipart parser, is measured there and read into memory only when within that bound.
    max_bytes = int(request.app.state.settings.body_limit_verify_mb * (1 << 20))
    size = file.file.seek(0, 2)
    if size > max_bytes:
        raise PayloadTooLarge(f"The file has {size} bytes, more than any document this service issues (limit "
                              f"{max_bytes} bytes)", limit_bytes=max_bytes, field="file")
    file.file.seek(0)
    data = file.file.read()
    if not data:
        raise UnprocessableEntity("The file is empty", type="validation-error", field="file")
    return with_trust(documents.verify(session, data), data, session)


def with_trust(result: dict[str, Any], data: bytes, session: Session | None = None) -> dict[str, Any]:
    """The verification result with what the signature is worth: a file signed with a development (self-signed)
    key is "not trusted", however genuine and intact, and its ``reason`` says so first."""
    signature = result.get("signature") or {}
    tenant = documents.tenant_of(session, result.get("document_id")) if session is not None else None
    trust = (documents_keys.trust_of_pdf(data, session, tenant) if result.get("genuine") or signature.get("intact")
             else None)
    result["trust"] = trust.as_dict() if trust else None
    if trust is not None and not trust.trusted:
        result["reason"] = f"{trust.statement} {result['reason']}"
    return result
