"""All SQL of the permits domain. The caller's scope is applied here and only here:

* operators (operator_member, operator_admin) read their own organisation's applications and those applications' cases;
* authorities (authority_reviewer, authority_admin) read the cases addressed to their organisation and the
  applications that have such a case;
* tenant admins read everything in their tenant;
* anything else does not exist for the caller (404, never 403, so that existence does not leak).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, exists, func, literal, literal_column, or_, select, text, tuple_, union_all
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from breitband.errors import NotFound
from breitband.identity import Principal
from breitband.models import OPERATOR_ROLES, Organisation, Role
from permits import deadlines
from permits.models import (
    OPEN_CASE_STATUSES,
    Application,
    ApplicationCounter,
    ApplicationVersion,
    Attachment,
    AuditRecord,
    Case,
)

OPEN = [s.value for s in OPEN_CASE_STATUSES]


def _open(negate: bool = False):
    """status IN ('received', 'incomplete', 'in_review') with the values written into the SQL rather than bound:
    psycopg prepares a statement after a few executions, and a generic plan cannot prove the predicate of a partial
    index (ix_cases_due, ix_cases_inbox_open/closed) from parameters; it would scan the whole table instead."""
    values = bindparam("open_statuses", OPEN, expanding=True, literal_execute=True, unique=True)
    return Case.status.not_in(values) if negate else Case.status.in_(values)


# --- scope -----------------------------------------------------------------------------------------------------

def is_authority(principal: Principal) -> bool:
    return principal.role in (Role.authority_reviewer, Role.authority_admin)


def readable_applications(principal: Principal) -> Select[tuple[Application]]:
    stmt = select(Application).where(Application.tenant_key == principal.tenant_key)
    if principal.is_tenant_admin:
        return stmt
    if principal.role in OPERATOR_ROLES:
        return stmt.where(Application.applicant_org_id == principal.organisation_id)
    return stmt.where(exists().where(Case.application_id == Application.id,
                                     Case.authority_org_id == principal.organisation_id))


def own_case(principal: Principal):
    """LATERAL (id, status, decision_due) of the caller's own case on ``Application`` (an authority's: an open one
    first, then the newest), for lists and maps of applications that show the state of the caller's case."""
    return (select(Case.id, Case.status, Case.decision_due)
            .where(Case.application_id == Application.id, Case.authority_org_id == principal.organisation_id)
            .order_by(Case.status.in_(OPEN).desc(), Case.created_at.desc(), Case.id)
            .limit(1).lateral("my_case"))


def readable_cases(principal: Principal) -> Select[tuple[Case]]:
    stmt = select(Case).where(Case.tenant_key == principal.tenant_key)
    if principal.is_tenant_admin:
        return stmt
    if principal.role in OPERATOR_ROLES:
        return stmt.where(Case.applicant_org_id == principal.organisation_id)
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

# The inbox order (§ 147 (2) TKG): open cases before closed ones; within each, first in first out by complete
# receipt, cases with a stopped clock (complete_at NULL) last, then by receipt and id. complete_at NULL sorts as
# +infinity, which is what the partial indexes ix_cases_inbox_open / ix_cases_inbox_closed store (migration 0005),
# so that a page is an index range scan: from the start, or from a cursor (keyset), never over skipped rows.
INFINITY = literal_column("'infinity'::timestamptz")


def _fifo():
    return func.coalesce(Case.complete_at, INFINITY)


def _received_before(last_due: date) -> datetime:
    """An instant before which every case whose decision is due on or before ``last_due`` was completely received:
    decision_due is complete receipt + 3 months (later when extended), so complete receipt lies on or before the
    last day d with add_months(d, 3) <= last_due."""
    day = deadlines.add_months(last_due, -deadlines.DECISION_MONTHS)
    while deadlines.add_months(day + timedelta(days=1), deadlines.DECISION_MONTHS) <= last_due:
        day += timedelta(days=1)
    return deadlines.period_end(day)


@dataclass(frozen=True)
class InboxCursor:
    """The position after a case in the inbox order: (rank 0 open | 1 closed, complete_at or None, received_at, id)."""

    rank: int
    complete_at: datetime | None
    received_at: datetime
    id: uuid.UUID

    @classmethod
    def after(cls, case: Case) -> "InboxCursor":
        return cls(0 if case.status in OPEN else 1, case.complete_at, case.received_at, case.id)

    def encode(self) -> str:
        raw = json.dumps([self.rank, self.complete_at.isoformat() if self.complete_at else None,
                          self.received_at.isoformat(), str(self.id)], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "InboxCursor":
        """→ the cursor; ValueError when ``text`` is not one we issued."""
        try:
            rank, complete_at, received_at, id_ = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            cursor = cls(int(rank), datetime.fromisoformat(complete_at) if complete_at is not None else None,
                         datetime.fromisoformat(received_at), uuid.UUID(id_))
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"not an inbox cursor: {exc}") from None
        if cursor.rank not in (0, 1) or any(t is not None and t.tzinfo is None
                                            for t in (cursor.complete_at, cursor.received_at)):
            raise ValueError("not an inbox cursor")
        return cursor

    def key(self):
        return tuple_(self.complete_at if self.complete_at is not None else INFINITY, self.received_at, self.id)


def inbox_query(principal: Principal, *, statuses: list[str] | None, due_before: date | None,
                overdue_at: datetime | None, bbox: tuple[float, float, float, float] | None,
                application_id: uuid.UUID | None, limit: int, offset: int = 0,
                after: InboxCursor | None = None) -> Select | None:
    """The ids of one inbox page (limit + 1 rows, to tell whether more follow), or None when nothing can match.

    Open and closed cases are two index-ordered branches merged by their rank. With a cursor each branch starts
    after it (keyset: a page costs the same wherever it lies); with an offset each branch reads offset + limit + 1
    rows, which grows with the offset (kept for callers that page by number)."""
    base = readable_cases(principal)
    if statuses:
        base = base.where(Case.status.in_(statuses))
    if due_before is not None:
        base = base.where(Case.decision_due <= due_before)
    if overdue_at is not None:
        base = base.where(_open(), Case.deadline_at <= overdue_at)
    if bbox is not None:
        base = base.where(exists().where(
            Application.id == Case.application_id,
            func.ST_Intersects(Application.route_geom, func.ST_MakeEnvelope(bbox[0], bbox[1], bbox[2], bbox[3], 4326))))
    if application_id is not None:
        base = base.where(Case.application_id == application_id)
    fifo = _fifo()
    order = (fifo, Case.received_at, Case.id)
    last_due = min([d for d in (due_before, deadlines.local_date(overdue_at) if overdue_at else None) if d],
                   default=None)
    if last_due is not None:      # implied by the filter; lets the index scan stop instead of reading every case
        base = base.where(fifo < _received_before(last_due))
    window = (offset if after is None else 0) + limit + 1
    branches = []
    for rank, condition in ((0, _open()), (1, _open(negate=True))):
        if statuses and not {s for s in statuses if (s in OPEN) == (rank == 0)}:
            continue
        if overdue_at is not None and rank == 1:
            continue
        if after is not None and rank < after.rank:
            continue
        branch = base.where(condition)
        if after is not None and rank == after.rank:
            branch = branch.where(tuple_(*order) > after.key())
        branches.append(branch.with_only_columns(Case.id, fifo.label("fifo"), Case.received_at,
                                                 literal(rank).label("rank"))
                        .order_by(*order).limit(window).subquery().select())
    if not branches:
        return None
    merged = union_all(*branches).subquery()
    stmt = (select(merged.c.id).order_by(merged.c.rank, merged.c.fifo, merged.c.received_at, merged.c.id)
            .limit(limit + 1))
    return stmt if after is not None else stmt.offset(offset)


def inbox_rows_query(ids: list[uuid.UUID]) -> Select:
    return (select(Case, Application).join(Application, Application.id == Case.application_id)
            .where(Case.id.in_(ids)))


def inbox(session: Session, principal: Principal, *, statuses: list[str] | None, due_before: date | None,
          overdue_at: datetime | None, bbox: tuple[float, float, float, float] | None,
          application_id: uuid.UUID | None, limit: int, offset: int = 0, after: InboxCursor | None = None
          ) -> tuple[list[tuple[Case, Application]], bool]:
    """Cases in legal order (§ 147 (2) TKG): open cases first, by complete receipt (first in, first out), cases
    with a stopped clock after them; then closed cases in the same order. → (rows, more follow)."""
    stmt = inbox_query(principal, statuses=statuses, due_before=due_before, overdue_at=overdue_at, bbox=bbox,
                       application_id=application_id, limit=limit, offset=offset, after=after)
    if stmt is None:
        return [], False
    ids = list(session.scalars(stmt))
    rows = {r[0].id: (r[0], r[1]) for r in session.execute(inbox_rows_query(ids[:limit]))} if ids else {}
    return [rows[i] for i in ids[:limit]], len(ids) > limit


def due_applications(session: Session, now: datetime, limit: int, tenant_key: str | None = None,
                     window: int | None = None) -> list[tuple[uuid.UUID, str]]:
    """Applications with an open case whose decision period has expired, locked, → (id, reference); rows another
    sweep (or a command) holds are skipped, so concurrent sweeps never wait for or double-process each other.

    The candidates are the ``window`` (default 2 x limit) open cases expired longest ago, read in the order of
    ix_cases_due (so a batch costs the same however many cases are due; an IN over all due cases made the planner
    merge-join every case of the table). Should all candidates be locked by other sweeps, this one ends and they
    carry on."""
    due = select(Case.application_id).where(_open(), Case.deadline_at <= now)
    if tenant_key:
        due = due.where(Case.tenant_key == tenant_key)
    due = due.order_by(Case.deadline_at).limit(window or 2 * limit).cte("due").prefix_with("MATERIALIZED")
    # No ORDER BY: sorting would fetch every candidate before locking; unsorted, the scan stops at ``limit`` locked
    # rows. Lock order does not matter here: SKIP LOCKED never waits, and commands lock an application first.
    stmt = (select(Application.id, Application.reference).where(Application.id.in_(select(due.c.application_id)))
            .limit(limit).with_for_update(skip_locked=True))
    return sorted((r.id, r.reference) for r in session.execute(stmt))


# The deemed approvals of a sweep batch, set-based: the same rows permits.cases.deemed.issue and core.touch write for
# one case at a time (decision, audit record, events, derived status), in three statements per batch.
# Formats: breitband.dates.iso (UTC, "Z") inside the decision; str() of dates and datetimes (the session's offset) where
# the ORM path serialises with json.dumps(default=str), i.e. in audit details and event payloads.
_ISO = ("(to_char({t} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN extract(microseconds FROM {t})"
        "::bigint % 1000000 <> 0 THEN '.' || to_char({t} AT TIME ZONE 'UTC', 'US') ELSE '' END || 'Z')")
_STR = ("(to_char({t}, 'YYYY-MM-DD HH24:MI:SS') || CASE WHEN extract(microseconds FROM {t})::bigint % 1000000 <> 0 "
        "THEN '.' || to_char({t}, 'US') ELSE '' END || to_char({t}, 'TZH:TZM'))")
_OPEN_SQL = "('received', 'incomplete', 'in_review')"
# ``case.extension is not None``: start_clock stores None as JSON null, not as SQL NULL
_EXTENDED = "(coalesce(jsonb_typeof(c.extension), 'null') <> 'null')"

DEEM_DUE_SQL = text(f"""
WITH due AS (
    SELECT c.id, c.status, c.row_version FROM cases c
    WHERE c.application_id = ANY(:ids) AND c.status IN {_OPEN_SQL} AND c.deadline_at <= :now
), upd AS (
    UPDATE cases c SET status = 'deemed_granted', decided_at = c.deadline_at, effective_on = c.decision_due,
        decision = jsonb_build_object(
            'outcome', 'deemed_granted', 'legal_basis', CAST(:legal_basis AS text),
            'effective_on', to_char(c.decision_due, 'YYYY-MM-DD'), 'effective_at', {_ISO.format(t="c.deadline_at")},
            'decision_due_statutory', to_char(coalesce(c.decision_due_statutory, c.decision_due), 'YYYY-MM-DD'),
            'moved', c.due_moves #>> '{{decision,reason}}',
            'complete_at', {_ISO.format(t="c.complete_at")}, 'extended', {_EXTENDED},
            'issued_at', CAST(:issued_at AS text), 'conditions', '[]'::jsonb, 'additional_conditions', '[]'::jsonb,
            'reasons', '[]'::jsonb, 'explanation', NULL),
        updated_at = :now, row_version = c.row_version + 1
    FROM due WHERE c.id = due.id
    RETURNING c.id, c.application_id, c.tenant_key, c.authority_org_id, c.decision_due, c.deadline_at,
              c.complete_at, {_EXTENDED} AS extended, c.created_at, due.status AS status_before,
              due.row_version AS version_before, c.row_version AS version_after
), issued AS (
    SELECT upd.*, a.reference FROM upd
    JOIN unnest(CAST(:ids AS uuid[]), CAST(:refs AS text[])) AS a(id, reference) ON a.id = upd.application_id
), audit AS (
    INSERT INTO permit_audit (tenant_key, application_id, case_id, command, actor_user_id, actor_name, actor_role,
                              actor_org_id, on_behalf_of_org_id, at, version_before, version_after, status_before,
                              status_after, detail)
    SELECT tenant_key, application_id, id, 'deemed-approval', NULL, CAST(:actor_name AS text), 'system', NULL, NULL,
           :now, version_before, version_after, status_before, 'deemed_granted',
           jsonb_build_object('effective_on', to_char(decision_due, 'YYYY-MM-DD'),
                              'decision_due', to_char(decision_due, 'YYYY-MM-DD'),
                              'complete_at', {_STR.format(t="complete_at")}, 'extended', extended)
    FROM issued ORDER BY application_id, created_at, id
    RETURNING 1
), events AS (
    INSERT INTO permit_events (id, tenant_key, application_id, case_id, type, payload, created_at)
    SELECT gen_random_uuid(), tenant_key, application_id, id, 'case.deemed_granted',
           jsonb_build_object('application_id', application_id::text, 'reference', reference,
                              'tenant_key', tenant_key, 'case_id', id::text,
                              'authority_org_id', authority_org_id::text, 'status', 'deemed_granted',
                              'effective_on', to_char(decision_due, 'YYYY-MM-DD'),
                              'effective_at', {_STR.format(t="deadline_at")}), :now
    FROM issued ORDER BY application_id, created_at, id
    RETURNING 1
)
SELECT id, application_id, reference, authority_org_id, decision_due FROM issued
ORDER BY application_id, created_at, id
""")

SETTLE_STATUS_SQL = text(f"""
WITH derived AS (
    SELECT a.id, a.status AS status_before,
           CASE WHEN a.submitted_at IS NULL THEN CASE WHEN a.withdrawn_at IS NOT NULL THEN 'withdrawn' ELSE 'draft' END
                WHEN bool_or(c.status = 'incomplete') THEN 'information_requested'
                WHEN bool_or(c.status IN {_OPEN_SQL}) THEN 'submitted'
                WHEN count(c.id) FILTER (WHERE c.status IN ('granted', 'partially_granted', 'refused',
                                                            'deemed_granted')) = 0 THEN 'withdrawn'
                WHEN bool_and(c.status IN ('granted', 'deemed_granted'))
                     FILTER (WHERE c.status IN ('granted', 'partially_granted', 'refused', 'deemed_granted'))
                     THEN 'granted'
                WHEN bool_and(c.status = 'refused')
                     FILTER (WHERE c.status IN ('granted', 'partially_granted', 'refused', 'deemed_granted'))
                     THEN 'refused'
                ELSE 'partially_granted' END AS status_after
    FROM applications a LEFT JOIN cases c ON c.application_id = a.id AND c.status <> 'forwarded'
    WHERE a.id = ANY(:ids)
    GROUP BY a.id
), upd AS (
    UPDATE applications a SET status = d.status_after, updated_at = :now, row_version = a.row_version + 1
    FROM derived d WHERE a.id = d.id
    RETURNING a.id, a.tenant_key, a.reference, d.status_before, d.status_after
)
INSERT INTO permit_events (id, tenant_key, application_id, case_id, type, payload, created_at)
SELECT gen_random_uuid(), tenant_key, id, NULL, 'application.status_changed',
       jsonb_build_object('application_id', id::text, 'reference', reference, 'tenant_key', tenant_key,
                          'status_before', status_before, 'status', status_after), :now
FROM upd WHERE status_before IS DISTINCT FROM status_after ORDER BY id
""")


def deem_due(session: Session, apps: list[tuple[uuid.UUID, str]], now: datetime, *, issued_at: str,
             legal_basis: str, actor_name: str) -> list[dict[str, Any]]:
    """Turn every open case of these (locked) applications, given as (id, reference), whose deadline lies at or
    before ``now`` into ``deemed_granted``, with audit records and events, and settle the applications' derived
    status. → the issued approvals, by application and case (the lock order of the commands)."""
    if not apps:
        return []
    issued = session.execute(DEEM_DUE_SQL, {"ids": [a[0] for a in apps], "refs": [a[1] for a in apps], "now": now,
                                            "issued_at": issued_at, "legal_basis": legal_basis,
                                            "actor_name": actor_name}).all()
    touched = list(dict.fromkeys(r.application_id for r in issued))
    if touched:
        session.execute(SETTLE_STATUS_SQL, {"ids": touched, "now": now})
    return [{"case_id": str(r.id), "application_id": str(r.application_id), "reference": r.reference,
             "authority_org_id": str(r.authority_org_id), "effective_on": r.decision_due.isoformat()}
            for r in issued]


# --- audit ---------------------------------------------------------------------------------------------------------

def add_audit(session: Session, record: AuditRecord) -> None:
    session.add(record)


def audit_trail(session: Session, application_id: uuid.UUID, *, case_ids: list[uuid.UUID] | None = None
                ) -> list[AuditRecord]:
    """The application's records; with ``case_ids``, only application-level records and those of these cases."""
    stmt = select(AuditRecord).where(AuditRecord.application_id == application_id)
    if case_ids is not None:
        stmt = stmt.where(or_(AuditRecord.case_id.is_(None), AuditRecord.case_id.in_(case_ids)))
    return list(session.scalars(stmt.order_by(AuditRecord.id)))


