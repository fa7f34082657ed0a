"""Deadline reminders: an authority is reminded 14 and 3 days before its decision deadline, once each, by e-mail."""

from __future__ import annotations

from sqlalchemy import select

from breitband import dates
from notifications import delivery, outbox
from notifications.models import Delivery, Event
from permits.pipeline.audience import send_reminders
from tests.support.api import collection, trench


def reminders(session, app_id):
    return [(e.payload["days_before"], e.payload["days_left"], e.payload["decision_due"]) for e in session.scalars(
        select(Event).where(Event.application_id == app_id, Event.type == "case.deadline_reminder")
        .order_by(Event.seq))]


def test_reminders_14_and_3_days_before_once_each(api, he, lines, clock, db, session, smtp):
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))     # decision due 2026-04-15
    assert send_reminders(db, dates.parse_instant("2026-03-31T12:00:00+02:00"))["reminders"] == 0  # 15 days
    assert send_reminders(db, dates.parse_instant("2026-04-01T08:00:00+02:00"))["reminders"] >= 1  # 14 days
    assert send_reminders(db, dates.parse_instant("2026-04-05T08:00:00+02:00"))["reminders"] == 0  # sent already
    send_reminders(db, dates.parse_instant("2026-04-13T08:00:00+02:00"))                           # 2 days left
    send_reminders(db, dates.parse_instant("2026-04-14T08:00:00+02:00"))
    assert reminders(session, app["id"]) == [(14, 14, "2026-04-15"), (3, 2, "2026-04-15")]

    outbox.relay(db)
    rows = session.scalars(select(Delivery).join(Event, Event.id == Delivery.event_id).where(
        Event.application_id == app["id"], Delivery.event_type == "case.deadline_reminder")).all()
    assert sorted(d.target for d in rows) == ["tiefbau@neu-isenburg.example"] * 2     # the authority, not applicant
    for d in rows:
        assert delivery.deliver(db, d.id)["status"] == "delivered"
    subjects = sorted(m.subject for m in smtp.to("tiefbau@neu-isenburg.example"))
    assert subjects == [f"Erinnerung: {app['reference']} – Frist endet in {n} Tagen / deadline in {n} days"
                        for n in (14, 3)]


def test_after_downtime_only_the_nearest_reminder_and_none_after_a_decision(api, he, lines, clock, db, session):
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    send_reminders(db, dates.parse_instant("2026-04-14T08:00:00+02:00"))     # first run 1 day before
    assert reminders(session, app["id"]) == [(3, 1, "2026-04-15")]
    other = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    case = api.case_of(other, "Stadt Neu-Isenburg")
    assert api.command(he.neu_isenburg, f"/cases/{case}/decision", {"outcome": "granted"}).status_code == 200
    send_reminders(db, dates.parse_instant("2026-04-14T09:00:00+02:00"))
    assert reminders(session, other["id"]) == []
