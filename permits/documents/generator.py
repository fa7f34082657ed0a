"""Generating decision documents (see ``permits.documents.service`` for the lifecycle): claim, render and sign,
store, issue; and the sweep that finds what is to generate. Called by the tasks (``permits.documents.tasks``) and
by ``breitband documents generate``.

The generator, not the service, owns the transactions, and opens several on purpose: the claim commits at once
(the lease tells other workers and the sweep that this document is taken); the data is read in a short transaction
that ends before rendering and signing, which take seconds and must not hold one; the document is issued in a last
transaction; a failure is recorded in a transaction of its own after the work was rolled back.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from breitband import clock
from breitband.db import Database
from breitband.models import Tenant
from breitband.settings import get_settings
from permits.documents import keys, render
from permits.documents import service as documents
from permits.documents.models import DecisionDocument, KeySource
from permits.models import Case

log = logging.getLogger("permits.documents")


def sweep(db: Database, *, limit: int = 100, now: datetime | None = None) -> list[uuid.UUID]:
    """Documents to generate now: creates the missing ones for decided cases and returns every pending one, and
    every failed or stuck one that has attempts left."""
    now = now or clock.now()
    with db.transaction() as session:
        return documents.documents_to_generate(session, limit=limit, now=now)


def generate(db: Database, document_id: uuid.UUID, now: datetime | None = None) -> dict[str, Any]:
    """Render, sign, store and register one document. → {"status": ready | skipped}; raises on failure after
    recording it (``failed``), so the task can retry."""
    now = now or clock.now()
    with db.transaction() as session:
        claimed = documents.claim(session, document_id, now)
    if not claimed:
        return {"document_id": str(document_id), "status": "skipped"}
    try:
        with db.transaction() as session:               # read only; ends before the slow part
            doc = session.get(DecisionDocument, document_id)
            authority_org = session.get(Case, doc.case_id).authority_org_id
            key = keys.signing_key_for(session, doc.tenant_key, authority_org)     # None: the platform key
            context = documents.gather(session, doc, key.source if key else KeySource.platform.value)
            tenant = session.get(Tenant, doc.tenant_key)
            tenant_key, tenant_name = tenant.key, tenant.name
        pdf = render.render_pdf(tenant_key, context)
        key = key or keys.ensure_key(tenant_key, tenant_name)
        reason = f"Bescheid {context['application']['reference']} – {context['authority']['name']}"
        signed = keys.sign_pdf(pdf, key, field_name="Bescheid", location=tenant_name, reason=reason)
        digest = hashlib.sha256(signed).hexdigest()
        target = Path(get_settings().data_dir) / "documents" / tenant_key / f"{document_id}.pdf"
        _store(target, signed)
        signer, cert_sha = keys.subject(key), keys.cert_sha256(key)
    except Exception as exc:
        _failed(db, document_id, exc)
        raise
    with db.transaction() as session:
        issued = documents.issue(session, document_id, sha256=digest, size_bytes=len(signed), file_name=target.name,
                                 signer=signer, signer_cert_sha256=cert_sha, done=clock.now(), key_source=key.source,
                                 signing_org_id=key.organisation_id, official=context["official"])
    if not issued:                                      # another worker finished first (lease expired)
        return {"document_id": str(document_id), "status": "skipped"}
    log.info("decision document issued", extra={"document_id": str(document_id), "sha256": digest})
    return {"document_id": str(document_id), "status": "ready", "sha256": digest}


def _store(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def _failed(db: Database, document_id: uuid.UUID, exc: BaseException) -> None:
    with db.transaction() as session:
        documents.mark_failed(session, document_id, f"{type(exc).__name__}: {exc}", clock.now())
    log.warning("decision document failed", extra={"document_id": str(document_id), "error": str(exc)})
