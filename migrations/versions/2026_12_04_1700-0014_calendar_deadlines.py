"""Deadlines end on a working day (issue 15, part 1: § 31 (3) VwVfG, § 193 BGB).

- cases.completeness_due_statutory, cases.decision_due_statutory: the last days by §§ 187, 188 BGB alone;
  completeness_due and decision_due are from now on the days the periods end on, moved off Saturdays, Sundays and
  public holidays of the authority's seat (permits/deadlines.py, permits/workdays.py).
- cases.due_moves: why each period was moved ({"completeness": Due, "decision": Due}).
- Open cases (received, incomplete, in_review) are recomputed with the tenant's calendar from their receipt, complete
  receipt and extension; the migration prints and logs how many moved. Closed cases keep the deadlines they were
  decided or deemed under (their statutory columns get the same days, nothing moves).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""
import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from permits import deadlines, workdays

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
OPEN = ("received", "incomplete", "in_review")


def recompute_open_cases(conn: sa.Connection) -> dict[str, int]:
    """Recompute the deadlines of every open case on its authority's working calendar; → counts (open cases, moved
    completeness ends, moved decision ends, cases with either moved)."""
    rules = {r.key: workdays.holidays_of(r.rules)
             for r in conn.execute(sa.text("SELECT key, rules FROM tenants"))}
    rows = conn.execute(sa.text(
        "SELECT c.id, c.tenant_key, c.received_at, c.complete_at, c.completeness_due, c.decision_due, c.extension, "
        "a.key AS ags FROM cases c LEFT JOIN authorities a ON a.organisation_id = c.authority_org_id "
        "WHERE c.status IN :open ORDER BY c.id").bindparams(sa.bindparam("open", expanding=True)),
        {"open": list(OPEN)}).all()
    counts = {"open": len(rows), "completeness_moved": 0, "decision_moved": 0, "cases_moved": 0}
    for row in rows:
        cal = workdays.calendar_for(rules[row.tenant_key], row.ags)
        comp = deadlines.completeness(row.received_at, cal)
        moves = {"completeness": comp.as_json()}
        decision, extension = None, row.extension
        if row.complete_at is not None:
            decision = deadlines.decision(row.complete_at, cal)
            if extension:
                decision = deadlines.extension(decision.end, cal)
                extension = {**extension, "decision_due": decision.end.isoformat(),
                             "decision_due_statutory": decision.statutory.isoformat(), "moved": decision.reason()}
            moves["decision"] = decision.as_json()
        moved_c = comp.end != row.completeness_due
        moved_d = decision is not None and decision.end != row.decision_due
        counts["completeness_moved"] += moved_c
        counts["decision_moved"] += moved_d
        counts["cases_moved"] += moved_c or moved_d
        conn.execute(sa.text(
            "UPDATE cases SET completeness_due = :cdue, completeness_due_statutory = :cstat, decision_due = :ddue, "
            "decision_due_statutory = :dstat, deadline_at = :deadline, due_moves = :moves, extension = :ext "
            "WHERE id = :id").bindparams(sa.bindparam("moves", type_=JSONB), sa.bindparam("ext", type_=JSONB)),
            {"id": row.id, "cdue": comp.end, "cstat": comp.statutory,
             "ddue": decision.end if decision else None, "dstat": decision.statutory if decision else None,
             "deadline": deadlines.period_end(decision.end) if decision else None, "moves": moves,
             "ext": extension})
    return counts


def upgrade() -> None:
    op.add_column("cases", sa.Column("completeness_due_statutory", sa.Date(), nullable=True))
    op.add_column("cases", sa.Column("decision_due_statutory", sa.Date(), nullable=True))
    op.add_column("cases", sa.Column("due_moves", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")))
    op.execute("UPDATE cases SET completeness_due_statutory = completeness_due, "
               "decision_due_statutory = decision_due")
    counts = recompute_open_cases(op.get_bind())
    op.alter_column("cases", "completeness_due_statutory", nullable=False)
    message = (f"0014: recomputed {counts['open']} open cases on working days (§ 193 BGB): {counts['cases_moved']} "
               f"moved ({counts['completeness_moved']} completeness ends, {counts['decision_moved']} decision ends)")
    log.info(message)
    print(message)


def downgrade() -> None:
    # Back to the unmoved statutory days (what the code before 0014 computes and shows).
    op.execute("UPDATE cases SET completeness_due = completeness_due_statutory WHERE status IN "
               "('received', 'incomplete', 'in_review')")
    op.execute("UPDATE cases SET decision_due = decision_due_statutory, deadline_at = "
               "((decision_due_statutory + 1)::timestamp AT TIME ZONE 'Europe/Berlin') "
               "WHERE status IN ('received', 'incomplete', 'in_review') AND decision_due_statutory IS NOT NULL")
    op.drop_column("cases", "due_moves")
    op.drop_column("cases", "decision_due_statutory")
    op.drop_column("cases", "completeness_due_statutory")
