"""All SQL of the permits domain. The caller's scope is applied here and only here:

* operators (operator_member) read their own organisation's applications and those applications' cases;
* authorities (authority_reviewer, authority_admin) read the cases addressed to their organisation and the
  applications that have such a case;
* tenant admins read everything in their tenant;
* anything else does not exist for the caller (404, never 403, so that existence does not leak).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, literal, or_, select, union_all
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from breitband.errors import NotFound
from breitband.identity import Principal
from breitband.models import Organisation, Role
from permits.models import (OPEN_CASE_STATUSES, Application, ApplicationCounter, ApplicationVersion, Attachment,
                            AuditRecord, Case, IdempotencyKey, PermitEvent)

OPEN = [s.value for s in OPEN_CASE_STATUSES]


# --- scope -----------------------------------------------------------------------------------------------------

def is_authority(principal: Principal) -> bool:
    return principal.role in (Role.authority_reviewer, Role.authority_admin)


def readable_applications(principal: Principal) -> Select[tuple[Application]]:
    stmt = select(Application).where(Application.tenant_key == principal.tenant_key)
    if principal.is_tenant_admin:
        return stmt
    if principal.role is Role.operator_member:
        return stmt.where(Application.applicant_org_id == principal.organisation_id)
    return stmt.where(exists().where(Case.application_id == Application.id,
                                     Case.authority_org_id == principal.organisation_id))


def readable_cases(principal: Principal) -> Select[tuple[Case]]:
    stmt = select(Case).where(Case.tenant_key == principal.tenant_key)
    if principal.is_tenant_admin:
        return stmt
    if principal.role is Role.operator_member:
        return stmt.where(Case.application_id.in_(
            select(Application.id).where(Application.tenant_key == principal.tenant_key,
                                         Application.applicant_org_id == principal.organisation_id)))
    return stmt.where(Case.authority_org_id == principal.organisation_id)


def get_application(session: Session, principal: Principal, application_id: uuid.UUID, *,
                    for_update: bool = False) -> Application:
    stmt = readable_applications(principal).where(Application.id == application_id)
    if for_update:
        stmt = stmt.with_for_update(of=Application)
    app = session.scalars(stmt).first()
    if app is None:
        raise NotFound(f"No application {application_id}", type="application-not-found")
    return app


def get_case(session: Session, principal: Principal, case_id: uuid.UUID) -> Case:
    case_ = session.scalars(readable_cases(principal).where(Case.id == case_id)).first()
    if case_ is None:
        raise NotFound(f"No case {case_id}", type="case-not-found")
    return case_


def lock_application(session: Session, application_id: uuid.UUID) -> Application:
    """Lock order of every command: the application row first, then its cases."""
    return session.scalars(select(Application).where(Application.id == application_id)
                           .with_for_update().execution_options(populate_existing=True)).one()


def lock_cases(session: Session, application_id: uuid.UUID) -> list[Case]:
    return list(session.scalars(select(Case).where(Case.application_id == application_id)
                                .order_by(Case.created_at, Case.id).with_for_update()
                                .execution_options(populate_existing=True)))


# --- applications ----------------------------------------------------------------------------------------------

def next_reference_number(session: Session, tenant_key: str, year: int) -> int:
    """Concurrency-safe counter per tenant and year: one atomic upsert, the row lock serialises callers."""
    stmt = insert(ApplicationCounter).values(tenant_key=tenant_key, year=year, last_value=1)
    stmt = stmt.on_conflict_do_update(index_elements=[ApplicationCounter.tenant_key, ApplicationCounter.year],
                                      set_={"last_value": ApplicationCounter.last_value + 1})
    return session.execute(stmt.returning(ApplicationCounter.last_value)).scalar_one()


def version_row(session: Session, application_id: uuid.UUID, number: int) -> ApplicationVersion:
    row = session.scalars(select(ApplicationVersion).where(ApplicationVersion.application_id == application_id,
                                                           ApplicationVersion.number == number)).first()
    if row is None:
        raise NotFound(f"Application {application_id} has no version {number}", type="version-not-found")
    return row


def versions(session: Session, application_id: uuid.UUID) -> list[ApplicationVersion]:
    return list(session.scalars(select(ApplicationVersion).where(ApplicationVersion.application_id == application_id)
                                .order_by(ApplicationVersion.number)))


def cases_of(session: Session, application_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[Case]]:
    ids = list(application_ids)
    out: dict[uuid.UUID, list[Case]] = {i: [] for i in ids}
    if ids:
        for c in session.scalars(select(Case).where(Case.application_id.in_(ids)).order_by(Case.created_at, Case.id)):
            out[c.application_id].append(c)
    return out


def organisations(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Organisation]:
    ids = set(ids)
    if not ids:
        return {}
    return {o.id: o for o in session.scalars(select(Organisation).where(Organisation.id.in_(ids)))}


def list_applications(session: Session, principal: Principal, *, statuses: list[str] | None, limit: int,
                      offset: int, reference: str | None = None) -> tuple[list[Application], bool]:
    stmt = readable_applications(principal)
    if statuses:
        stmt = stmt.where(Application.status.in_(statuses))
    if reference:
        stmt = stmt.where(Application.reference == reference)
    rows = list(session.scalars(stmt.order_by(Application.created_at.desc(), Application.id)
                                .limit(limit + 1).offset(offset)))
    return rows[:limit], len(rows) > limit


def attachments(session: Session, application_id: uuid.UUID, ids: Iterable[uuid.UUID] | None = None
                ) -> list[Attachment]:
    stmt = select(Attachment).where(Attachment.application_id == application_id)
    if ids is not None:
        stmt = stmt.where(Attachment.id.in_(list(ids)))
    return list(session.scalars(stmt.order_by(Attachment.created_at, Attachment.id)))


def submitted_attachment_ids(session: Session, application_id: uuid.UUID) -> set[str]:
    """Attachments referenced by a submitted version (what authorities may see)."""
    rows = session.scalars(select(ApplicationVersion.content["attachment_ids"])
                           .where(ApplicationVersion.application_id == application_id,
                                  ApplicationVersion.submitted_at.is_not(None)))
    return {str(i) for ids in rows if ids for i in ids}


# --- cases -----------------------------------------------------------------------------------------------------

def inbox(session: Session, principal: Principal, *, statuses: list[str] | None, due_before: date | None,
          overdue_at: datetime | None, bbox: tuple[float, float, float, float] | None,
          application_id: uuid.UUID | None, limit: int, offset: int) -> tuple[list[tuple[Case, Application]], bool]:
    """Cases in legal order (§ 147 (2) TKG): open cases first, by complete receipt (first in, first out), cases
    with a stopped clock after them; then closed cases in the same order.

    Open and closed cases are paged by two index-ordered queries (each reads at most offset + limit + 1 rows)
    merged by a rank, instead of sorting all of an authority's cases on every page."""
    base = readable_cases(principal).join(Application, Application.id == Case.application_id)
    if statuses:
        base = base.where(Case.status.in_(statuses))
    if due_before is not None:
        base = base.where(Case.decision_due <= due_before)
    if overdue_at is not None:
        base = base.where(Case.status.in_(OPEN), Case.deadline_at <= overdue_at)
    if bbox is not None:
        base = base.where(func.ST_Intersects(Application.route_geom,
                                             func.ST_MakeEnvelope(bbox[0], bbox[1], bbox[2], bbox[3], 4326)))
    if application_id is not None:
        base = base.where(Case.application_id == application_id)
    order = (Case.complete_at.asc().nulls_last(), Case.received_at, Case.id)
    window = offset + limit + 1
    branches = []
    for rank, condition in ((0, Case.status.in_(OPEN)), (1, Case.status.not_in(OPEN))):
        if statuses and not {s for s in statuses if (s in OPEN) == (rank == 0)}:
            continue
        if overdue_at is not None and rank == 1:
            continue
        branches.append(base.where(condition).with_only_columns(
            Case.id, Case.complete_at, Case.received_at, literal(rank).label("rank"))
            .order_by(*order).limit(window).subquery().select())
    if not branches:
        return [], False
    merged = union_all(*branches).subquery()
    stmt = (select(merged.c.id)
            .order_by(merged.c.rank, merged.c.complete_at.asc().nulls_last(), merged.c.received_at, merged.c.id)
            .limit(limit + 1).offset(offset))
    ids = list(session.scalars(stmt))
    rows = {r[0].id: (r[0], r[1]) for r in session.execute(
        select(Case, Application).join(Application, Application.id == Case.application_id)
        .where(Case.id.in_(ids[:limit])))} if ids else {}
    return [rows[i] for i in ids[:limit]], len(ids) > limit


def due_application_ids(session: Session, now: datetime, limit: int, tenant_key: str | None = None
                        ) -> list[uuid.UUID]:
    """Applications with an open case whose decision period has expired, locked; rows another sweep (or a command)
    holds are skipped, so concurrent sweeps never wait for or double-process each other."""
    due = select(Case.application_id).where(Case.status.in_(OPEN), Case.deadline_at <= now)
    if tenant_key:
        due = due.where(Case.tenant_key == tenant_key)
    stmt = (select(Application.id).where(Application.id.in_(due))
            .order_by(Application.id).limit(limit).with_for_update(skip_locked=True))
    return list(session.scalars(stmt))


# --- events, audit, idempotency ----------------------------------------------------------------------------------

def add_event(session: Session, *, tenant_key: str, type: str, payload: dict[str, Any], created_at: datetime,
              application_id: uuid.UUID | None = None, case_id: uuid.UUID | None = None) -> PermitEvent:
    event = PermitEvent(id=uuid.uuid4(), tenant_key=tenant_key, type=type, payload=payload, created_at=created_at,
                        application_id=application_id, case_id=case_id)
    session.add(event)
    return event


def add_audit(session: Session, record: AuditRecord) -> None:
    session.add(record)


def audit_trail(session: Session, application_id: uuid.UUID, *, case_ids: list[uuid.UUID] | None = None
                ) -> list[AuditRecord]:
    """The application's records; with ``case_ids``, only application-level records and those of these cases."""
    stmt = select(AuditRecord).where(AuditRecord.application_id == application_id)
    if case_ids is not None:
        stmt = stmt.where(or_(AuditRecord.case_id.is_(None), AuditRecord.case_id.in_(case_ids)))
    return list(session.scalars(stmt.order_by(AuditRecord.id)))


def events_of(session: Session, application_id: uuid.UUID) -> list[PermitEvent]:
    return list(session.scalars(select(PermitEvent).where(PermitEvent.application_id == application_id)
                                .order_by(PermitEvent.seq)))


def claim_idempotency_key(session: Session, user_id: uuid.UUID, key: str, fingerprint: str, method: str,
                          path: str) -> IdempotencyKey | None:
    """Insert the key in the current transaction. → None when this request owns it now, else the stored row.
    A concurrent request with the same key blocks on the unique index until the owner commits or rolls back."""
    stmt = (insert(IdempotencyKey).values(user_id=user_id, key=key, fingerprint=fingerprint, method=method,
                                          path=path, response_headers={})
            .on_conflict_do_nothing(constraint="idempotency_key_per_user").returning(IdempotencyKey.id))
    if session.execute(stmt).scalar() is not None:
        return None
    return session.scalars(select(IdempotencyKey).where(and_(IdempotencyKey.user_id == user_id,
                                                             IdempotencyKey.key == key))).one()


def store_idempotent_response(session: Session, user_id: uuid.UUID, key: str, status: int, body: Any,
                              headers: dict[str, str]) -> None:
    row = session.scalars(select(IdempotencyKey).where(IdempotencyKey.user_id == user_id,
                                                       IdempotencyKey.key == key)).one()
    row.response_status, row.response_body, row.response_headers = status, body, headers
    session.flush()
