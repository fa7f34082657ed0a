"""The bundle (§ 127 (5) TKG): the signed documents of an application's decided cases — the consent cases and the
further decisions issued with them — as one zip with a ``manifest.json`` (``GET /applications/{id}/documents.zip``).
Reads only; the documents themselves are produced by ``service`` and ``generator``."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from breitband.errors import Conflict
from breitband.identity import Principal
from permits import core, repository
from permits.cases import related
from permits.documents.models import DecisionDocument, DocumentStatus
from permits.documents.service import file_path, verify_url
from permits.models import Application, Case


def package(session: Session, principal: Principal, app: Application) -> tuple[bytes, list[dict[str, Any]]]:
    """The current signed document of every decided case of the application the caller may read (the consent
    cases and the further decisions issued with them), as one zip with a ``manifest.json``. 409
    ``application-not-decided`` while a case is open (the bundle goes out together), 409 ``documents-not-ready``
    naming the cases whose document is still being produced. → (zip bytes, manifest)."""
    cases = list(session.scalars(repository.readable_cases(principal).where(Case.application_id == app.id)
                                 .order_by(Case.kind != "consent", Case.created_at, Case.id)))
    open_ones = [c for c in cases if c.status in core.OPEN]
    if open_ones:
        raise Conflict(f"{len(open_ones)} case(s) of {app.reference} are not decided yet; the documents go out "
                       "together once every case is decided", type="application-not-decided",
                       open_case_ids=[str(c.id) for c in open_ones])
    decided = [c for c in cases if c.status in core.DECIDED]
    docs = {d.case_id: d for d in session.scalars(select(DecisionDocument).where(
        DecisionDocument.case_id.in_([c.id for c in decided]), DecisionDocument.superseded_by.is_(None),
        DecisionDocument.revoked_at.is_(None)).order_by(DecisionDocument.generation))}
    missing = [c for c in decided if c.id not in docs or docs[c.id].status != DocumentStatus.ready.value
               or not file_path(docs[c.id]).is_file()]
    if missing or not decided:
        raise Conflict("The signed documents are not ready yet for case(s) "
                       + (", ".join(str(c.id) for c in missing) or "(none decided)"), type="documents-not-ready",
                       case_ids=[str(c.id) for c in missing])
    orgs = repository.organisations(session, [c.authority_org_id for c in decided])
    manifest, buffer = [], io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:      # PDFs are compressed already
        for n, c in enumerate(decided, 1):
            doc = docs[c.id]
            name = f"{n:02d}-{c.kind}-{app.reference}.pdf"
            zf.write(file_path(doc), name)
            manifest.append({"file": name, "document_id": str(doc.id), "case_id": str(c.id), "kind": c.kind,
                             "title": related.KIND_DE[c.kind], "authority": getattr(orgs.get(c.authority_org_id),
                                                                                    "name", None),
                             "outcome": doc.outcome, "sha256": doc.sha256, "verify_url": verify_url(doc.id)})
        zf.writestr("manifest.json", json.dumps({"application": app.reference, "documents": manifest},
                                                ensure_ascii=False, indent=2))
    return buffer.getvalue(), manifest
