"""Signed decision documents: one PDF per decision (deemed approvals included), generated asynchronously, signed
with the tenant's key, verifiable by anyone.

Lifecycle of a document row (``decision_documents``):

* created ``pending`` (generation 1) for every decided case — by the task ``permits.documents_for_event``, which
  the outbox relay sends for ``case.decided`` / ``case.deemed_granted``, and by the beat task
  ``permits.documents_sweep``, which finds decided cases without a document (nothing is lost if a message is);
* ``generator.generate`` claims it (``generating`` with a lease; a second worker or a redelivered message backs
  off), reads what the document needs in one short transaction, renders and signs outside any transaction, writes
  the file atomically to ``<data_dir>/documents/<tenant>/<id>.pdf``, and in a last transaction marks it ``ready``
  with its SHA-256, signer and time, supersedes the earlier generation of the same case and writes
  ``document.issued``.
  A failure marks it ``failed`` with the error; the task retries with backoff, the sweep picks up what is left.
* ``validity``: ``valid``; ``superseded`` once a newer generation of the case is ready (``regenerate``);
  ``revoked`` with a reason (``revoke``).

``verify`` answers for an uploaded file: its SHA-256 is that of a document we issued (genuine and unchanged, with
the document's status), or it is not — then the embedded signature says whether the content was changed after
signing or the file was never signed by this service.

Where the parts are: ``models.py`` the table; this module the rules on the rows, inside the caller's transaction
and never committing; ``generator.py`` generates a document and finds what is to generate, and owns the
transactions for it (the rendering and signing must not hold one); ``tasks.py`` the Celery tasks; ``render.py``
the data and the PDF, ``keys.py`` the signing keys and signatures.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from breitband import clock
from breitband.dates import iso
from breitband.errors import Conflict, NotFound
from breitband.models import Organisation, Tenant, User
from breitband.settings import get_settings
from geo.crs import parse_crs
from geo.rules import parse_rules
from permits import core, repository
from permits.documents import keys, letter, render
from permits.documents.models import AuthorityKey, DecisionDocument, DocumentStatus, KeySource, Validity
from permits.labels import label
from permits.models import DECIDED_CASE_STATUSES, Application, Case
from permits.participation import statements
from permits.participation.models import StatementRequest, StatementStatus

LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 5
DECIDED = [s.value for s in DECIDED_CASE_STATUSES]


def verify_url(document_id: uuid.UUID | str) -> str:
    return f"{get_settings().public_base_url.rstrip('/')}/verify/{document_id}"


def file_path(doc: DecisionDocument) -> Path:
    return Path(get_settings().data_dir) / "documents" / doc.tenant_key / f"{doc.id}.pdf"


# --- creating rows ---------------------------------------------------------------------------------------------------

def ensure_for_case(session: Session, case: Case, now: datetime) -> uuid.UUID | None:
    """The first document of a decided case (created once; concurrent callers meet on the unique key)."""
    if case.status not in DECIDED:
        return None
    kind = "deemed_approval" if case.status == "deemed_granted" else "decision"
    stmt = insert(DecisionDocument).values(
        id=uuid.uuid4(), tenant_key=case.tenant_key, application_id=case.application_id, case_id=case.id,
        generation=1, kind=kind, outcome=case.status, decided_at=case.decided_at, status=DocumentStatus.pending.value,
        validity=Validity.valid.value, attempts=0, created_at=now, updated_at=now,
    ).on_conflict_do_nothing(constraint="decision_document_generation").returning(DecisionDocument.id)
    created = session.execute(stmt).scalar()
    if created is not None:
        return created
    return session.scalar(select(DecisionDocument.id).where(DecisionDocument.case_id == case.id,
                                                            DecisionDocument.generation == 1))


def documents_to_generate(session: Session, *, limit: int, now: datetime) -> list[uuid.UUID]:
    """Creates the missing documents of decided cases and returns every pending one, and every failed or stuck one
    that has attempts left."""
    missing = session.scalars(select(Case).where(Case.status.in_(DECIDED), ~select(DecisionDocument.id).where(
        DecisionDocument.case_id == Case.id).exists()).order_by(Case.decided_at).limit(limit)).all()
    for case in missing:
        ensure_for_case(session, case, now)
    return list(session.scalars(select(DecisionDocument.id).where(
        (DecisionDocument.status == DocumentStatus.pending.value)
        | ((DecisionDocument.status == DocumentStatus.failed.value) & (DecisionDocument.attempts < MAX_ATTEMPTS))
        | ((DecisionDocument.status == DocumentStatus.generating.value) & (DecisionDocument.lease_until < now)))
        .order_by(DecisionDocument.created_at).limit(limit)))


# --- generating ------------------------------------------------------------------------------------------------------

def claim(session: Session, document_id: uuid.UUID, now: datetime) -> bool:
    """Take the document for generating it (``generating`` with a lease). → False when it is missing, ready, or
    another worker's lease has not run out."""
    doc = session.scalars(select(DecisionDocument).where(DecisionDocument.id == document_id)
                          .with_for_update()).first()
    if doc is None or doc.status == DocumentStatus.ready.value:
        return False
    if doc.status == DocumentStatus.generating.value and doc.lease_until and doc.lease_until > now:
        return False
    doc.status, doc.attempts, doc.lease_until, doc.updated_at = (DocumentStatus.generating.value,
                                                                 doc.attempts + 1, now + LEASE, now)
    session.flush()
    return True


def gather(session: Session, doc: DecisionDocument, key_source: str = KeySource.platform.value) -> dict[str, Any]:
    """Everything the template needs, as plain data (read in one transaction). ``key_source``: whose key will sign
    (the document says so when it is the platform's, not the authority's)."""
    case = session.get(Case, doc.case_id)
    app = session.get(Application, doc.application_id)
    tenant = session.get(Tenant, doc.tenant_key)
    version = repository.version_row(session, app.id, case.application_version)
    content = version.content
    authority = session.get(Organisation, case.authority_org_id)
    applicant = session.get(Organisation, app.applicant_org_id)
    decision = case.decision or {}
    sources = statements.condition_sources(session, app.id)
    conditions = [{**c, "source": sources.get(c["code"])} for c in decision.get("conditions") or []]
    additional = [{"text": t, "source": sources.get(t)} for t in decision.get("additional_conditions") or []]
    heard = session.execute(select(StatementRequest, Organisation.name).join(
        Organisation, Organisation.id == StatementRequest.body_org_id).where(
        StatementRequest.application_id == app.id, StatementRequest.status != StatementStatus.superseded.value)
        .order_by(StatementRequest.requested_at, Organisation.name)).all()
    pieces_crs = parse_crs((version.resolution or {}).get("crs") or content.get("crs"))
    previous = session.scalars(select(DecisionDocument).where(
        DecisionDocument.case_id == case.id, DecisionDocument.generation < doc.generation)
        .order_by(DecisionDocument.generation.desc()).limit(1)).first()
    part = case.part or {}
    rules = parse_rules(tenant.rules)
    decided_by = decision.get("decided_by") or {}
    user = session.get(User, uuid.UUID(decided_by["user_id"])) if decided_by.get("user_id") else None
    representative = content.get("representative")
    pieces = part.get("pieces") or []
    return {
        "document": {"id": str(doc.id), "generation": doc.generation, "kind": doc.kind,
                     "replaces": str(previous.id) if previous else None, "verify_url": verify_url(doc.id)},
        "tenant": {"key": tenant.key, "name": tenant.name},
        "authority": {**letter.authority_block(authority.name, authority.address, authority.phone, authority.email,
                                               authority.website),
                      "address": authority.address},
        "addressee": letter.addressee(applicant.name, applicant.address, (content.get("contact") or {}).get("name"),
                                      representative),
        "official": letter.official(decided_by, user.name if user else None, user.job_title if user else None),
        "applicant": {"name": applicant.name, "address": applicant.address,
                      "contact": (content.get("contact") or {}).get("name"), "representative": representative},
        "application": {"reference": app.reference, "project_name": app.project_name,
                        "operator_reference": app.operator_reference, "version": case.application_version,
                        "received_at": render.local(case.received_at),
                        "received_on": case.received_at,
                        "planned_start": content.get("planned_start"), "planned_end": content.get("planned_end"),
                        "traffic_restrictions": content.get("traffic_restrictions") or [],
                        "sections": [letter.section_row(s) for s in _sections(content)]},
        "case": {"id": str(case.id), "status": case.status, "decided_at": render.local(case.decided_at),
                 "decided_on": case.decided_at,
                 "effective_on": case.effective_on.isoformat() if case.effective_on else None,
                 "decision_due": case.decision_due.isoformat() if case.decision_due else None,
                 "decision_deadline": _deadline(case),
                 "length_m": part.get("length_m"),
                 "pieces": [{"road_ref": p.get("road_ref"), "road_name": p.get("road_name"),
                             "road_class": p.get("road_class"), "length_m": p.get("length_m"),
                             "gemeinde": (p.get("gemeinde") or {}).get("name"), "rule": p.get("rule")}
                            for p in pieces],
                 "rows": [letter.piece_row({**p, "gemeinde": (p.get("gemeinde") or {}).get("name")})
                          for p in pieces]},
        "decision": {"outcome": decision.get("outcome") or case.status, "legal_basis": render.legal_basis(doc.kind),
                     "conditions": conditions, "additional_conditions": additional,
                     "reasons": decision.get("reasons") or [], "explanation": decision.get("explanation"),
                     "decided_by": decided_by.get("name")},
        "validity": letter.validity(decision.get("outcome") or case.status, case.effective_on,
                                    rules.documents.validity_months),
        "fees": letter.fee_statement(rules.fees, decision.get("outcome") or case.status, part.get("length_m"),
                                     case.effective_on),
        "statements": [{"body": name, "answer": s.answer, "answer_label": label("statement_answer", s.answer)
                        if s.answer else "keine Stellungnahme", "status": s.status} for s, name in heard],
        "signature": {"key_source": key_source, "platform": key_source == KeySource.platform.value,
                      "test_key": key_source == KeySource.authority_test.value},
        "map_svg": render.map_for(session, tenant.key, tenant.srid, content, part, pieces_crs),
        "qr_svg": render.qr_svg(verify_url(doc.id)),
        "attribution": render.ATTRIBUTION,
        "generated_at": render.local(clock.now()),
    }


def _deadline(case: Case) -> dict[str, Any] | None:
    """The end of the decision period as the document states it: the statutory last day, the day it ended on, and
    why it was moved (§ 31 (3) VwVfG, § 193 BGB)."""
    due = core.due_of(case, "decision")
    if due is None:
        return None
    return {"statutory": due.statutory.isoformat(), "end": due.end.isoformat(), "reason": due.reason(),
            "moved": due.moved_days > 0, "extended": case.extension is not None}


def _sections(content: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i, f in enumerate((content.get("sections") or {}).get("features") or []):
        p = f.get("properties") or {}
        out.append({"n": i + 1, "kind": p.get("kind"), "label": p.get("label"), "method": p.get("laying_method"),
                    "depth_cm": p.get("depth_cm"), "width_cm": p.get("width_cm"),
                    "reduced_depth": p.get("reduced_depth")})
    return out


def issue(session: Session, document_id: uuid.UUID, *, sha256: str, size_bytes: int, file_name: str, signer: str,
          signer_cert_sha256: str, done: datetime, key_source: str = KeySource.platform.value,
          signing_org_id: uuid.UUID | None = None, official: dict[str, Any] | None = None) -> bool:
    """Mark the generated document ``ready`` with what identifies its file, supersede the earlier generations of
    its case and write ``document.issued``. → False when another worker finished it first (its lease had run
    out)."""
    doc = session.scalars(select(DecisionDocument).where(DecisionDocument.id == document_id)
                          .with_for_update()).one()
    if doc.status == DocumentStatus.ready.value:
        return False
    doc.status, doc.error, doc.lease_until, doc.updated_at = DocumentStatus.ready.value, None, None, done
    doc.sha256, doc.size_bytes, doc.file_name = sha256, size_bytes, file_name
    doc.signer, doc.signer_cert_sha256, doc.signed_at = signer, signer_cert_sha256, done
    doc.key_source, doc.signing_org_id = key_source, signing_org_id
    doc.official_name = (official or {}).get("name")
    doc.official_function = (official or {}).get("function")
    older = session.scalars(select(DecisionDocument).where(
        DecisionDocument.case_id == doc.case_id, DecisionDocument.generation < doc.generation,
        DecisionDocument.validity == Validity.valid.value).with_for_update()).all()
    for o in older:
        o.validity, o.superseded_by, o.updated_at = Validity.superseded.value, doc.id, done
    case = session.get(Case, doc.case_id)
    app = session.get(Application, doc.application_id)
    core.event(session, "document.issued", app, done, case, document_id=str(doc.id), kind=doc.kind,
               generation=doc.generation, sha256=sha256, verify_url=verify_url(doc.id),
               supersedes=[str(o.id) for o in older])
    session.flush()
    return True


def mark_failed(session: Session, document_id: uuid.UUID, error: str, now: datetime) -> None:
    """A generation that failed: ``failed`` with the error (the task retries, the sweep picks up what is left)."""
    doc = session.get(DecisionDocument, document_id)
    if doc is not None and doc.status == DocumentStatus.generating.value:
        doc.status, doc.lease_until, doc.updated_at = DocumentStatus.failed.value, None, now
        doc.error = error[:4000]
        session.flush()


# --- commands ---------------------------------------------------------------------------------------------------------

def regenerate(session: Session, doc: DecisionDocument, now: datetime) -> DecisionDocument:
    """A new generation of the case's document (e.g. after a template correction); the current one stays valid
    until the new one is ready, then it is superseded. A failed document is simply tried again."""
    if doc.status == DocumentStatus.failed.value:
        doc.status, doc.attempts, doc.updated_at = DocumentStatus.pending.value, 0, now
        session.flush()
        return doc
    latest = session.scalar(select(func.max(DecisionDocument.generation)).where(
        DecisionDocument.case_id == doc.case_id))
    pending = session.scalars(select(DecisionDocument).where(
        DecisionDocument.case_id == doc.case_id, DecisionDocument.status != DocumentStatus.ready.value)).first()
    if pending is not None:
        raise Conflict(f"Document {pending.id} of this case is being generated", type="document-in-progress",
                       document_id=str(pending.id))
    new = DecisionDocument(id=uuid.uuid4(), tenant_key=doc.tenant_key, application_id=doc.application_id,
                           case_id=doc.case_id, generation=latest + 1, kind=doc.kind, outcome=doc.outcome,
                           decided_at=doc.decided_at, status=DocumentStatus.pending.value,
                           validity=Validity.valid.value, attempts=0, created_at=now, updated_at=now)
    session.add(new)
    session.flush()
    return new


def revoke(session: Session, doc: DecisionDocument, reason: str, user_id: uuid.UUID | None, now: datetime
           ) -> DecisionDocument:
    if doc.validity == Validity.revoked.value:
        raise Conflict("The document is revoked already", type="document-revoked")
    doc.validity, doc.revoked_at, doc.revoked_reason, doc.revoked_by, doc.updated_at = (
        Validity.revoked.value, now, reason, user_id, now)
    session.flush()
    case = session.get(Case, doc.case_id)
    app = session.get(Application, doc.application_id)
    core.event(session, "document.revoked", app, now, case, document_id=str(doc.id), reason=reason)
    return doc


# --- letterheads ---------------------------------------------------------------------------------------------------

LETTERHEAD_FIELDS = ("address", "phone", "email", "website")


def load_letterheads(session: Session, tenant_key: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Set the letterhead data (postal address, phone, e-mail, website) of the tenant's road authorities by their
    exact name; a value the file leaves out stays as it is. → what was updated and which names were not found."""
    updated, unknown = [], []
    for entry in entries:
        org = session.scalars(select(Organisation).where(Organisation.tenant_key == tenant_key,
                                                         Organisation.kind == "road_authority",
                                                         Organisation.name == entry.get("name"))).first()
        if org is None:
            unknown.append(entry.get("name"))
            continue
        for field in LETTERHEAD_FIELDS:
            if entry.get(field):
                setattr(org, field, str(entry[field]).strip())
        updated.append(org.name)
    session.flush()
    return {"updated": updated, "not_found": unknown}


def letterhead_gaps(session: Session, tenant_key: str) -> list[dict[str, Any]]:
    """The tenant's road authorities whose letters lack an address, phone or e-mail (laid out without it)."""
    out = []
    for org in session.scalars(select(Organisation).where(Organisation.tenant_key == tenant_key,
                                                          Organisation.kind == "road_authority")
                               .order_by(Organisation.name)):
        missing = [f for f in ("address", "phone", "email") if not getattr(org, f)]
        if missing:
            out.append({"authority": org.name, "organisation_id": str(org.id), "missing": missing})
    return out


# --- verification ----------------------------------------------------------------------------------------------------

def public_view(session: Session, doc: DecisionDocument) -> dict[str, Any]:
    """What anyone may learn from a document id: nothing beyond what the document itself shows (the deciding
    authority and its official who signed, not the applicant)."""
    case = session.get(Case, doc.case_id)
    app = session.get(Application, doc.application_id)
    authority = session.get(Organisation, case.authority_org_id)
    official = ({"name": doc.official_name, "function": doc.official_function} if doc.official_name else None)
    return {"document_id": str(doc.id), "status": doc.validity, "sha256": doc.sha256, "signer": doc.signer,
            "signed_at": iso(doc.signed_at), "issuer": authority.name, "official": official,
            "key_source": doc.key_source, "reference": app.reference,
            "kind": doc.kind, "outcome": doc.outcome,
            "effective_on": case.effective_on.isoformat() if case.effective_on else None,
            "generation": doc.generation,
            "superseded_by": str(doc.superseded_by) if doc.superseded_by else None,
            "revoked_at": iso(doc.revoked_at), "verify_url": verify_url(doc.id)}


def tenant_of(session: Session, document_id: str | None) -> str | None:
    """The tenant of an issued document (for the trust of its signature); None when unknown."""
    if not document_id:
        return None
    doc = session.get(DecisionDocument, uuid.UUID(document_id))
    return doc.tenant_key if doc is not None else None


def get_public(session: Session, document_id: uuid.UUID) -> DecisionDocument:
    doc = session.get(DecisionDocument, document_id)
    if doc is None or doc.status != DocumentStatus.ready.value:
        raise NotFound(f"No issued document {document_id}", type="document-not-found")
    return doc


def verify(session: Session, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    doc = session.scalars(select(DecisionDocument).where(DecisionDocument.sha256 == digest,
                                                         DecisionDocument.status == DocumentStatus.ready.value)).first()
    if doc is not None:
        return {"genuine": True, "unchanged": True, "sha256": digest, **public_view(session, doc),
                "reason": "Die Datei ist ein von diesem Dienst ausgestellter Bescheid und unverändert. / The file is a "
                          "document issued by this service, unchanged."}
    check = keys.check_signature(data, keys.trusted_certificates(
        list(session.scalars(select(Tenant.key))), authority_cert_files=list(session.scalars(
            select(AuthorityKey.cert_file)))))
    claimed = None
    if check.keywords and "document_id=" in check.keywords:
        claimed = check.keywords.split("document_id=", 1)[1].split()[0].strip(",;")
    if not check.signed:
        reason = ("Die Datei trägt keine Signatur dieses Dienstes. / The file carries no signature of this service"
                  f" ({check.problem}).")
    elif not check.intact:
        reason = ("Der Inhalt wurde nach der Signatur verändert; die Signatur passt nicht mehr. / The content was "
                  "changed after signing; the signature does not match.")
    elif not check.trusted:
        reason = "Die Signatur stammt nicht von diesem Dienst. / The signature is not one of this service."
    elif not check.whole_file:
        reason = ("Nach der Signatur wurde etwas an die Datei angehängt. / Something was added to the file after "
                  "signing.")
    else:
        reason = ("Die Signatur ist gültig, aber diese Datei wurde von diesem Dienst nicht ausgestellt. / The "
                  "signature is valid, but this service did not issue this file.")
    return {"genuine": False, "unchanged": False, "sha256": digest, "claimed_document_id": claimed,
            "signature": {"present": check.signed, "intact": check.intact, "trusted": check.trusted,
                          "covers_whole_file": check.whole_file, "signer": check.signer},
            "reason": reason}
