"""E-mail over a real SMTP server (aiosmtpd in the test process): rendered from the tenant's German+English
templates, one message per recipient and event, retried with backoff while the server is down, never twice."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from breitband import clock as service_clock
from notifications import contacts, delivery, outbox
from notifications.models import Delivery, DeliveryAttempt, Event
from tests.support.api import collection, trench


def _deliveries(session, app_id, event_type=None):
    stmt = select(Delivery).join(Event, Event.id == Delivery.event_id).where(
        Event.application_id == app_id, Delivery.channel == "email")
    if event_type:
        stmt = stmt.where(Delivery.event_type == event_type)
    return list(session.scalars(stmt.order_by(Delivery.target)))


def test_new_case_mail_in_german_and_english_sent_once(api, he, lines, clock, db, session, smtp, settings):
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    outbox.relay(db)
    [to_authority] = _deliveries(session, app["id"], "case.received")
    assert to_authority.target == "tiefbau@neu-isenburg.example"

    first = delivery.deliver(db, to_authority.id)
    assert first["status"] == "delivered" and first["attempt"] == 1
    assert delivery.deliver(db, to_authority.id)["status"] == "skipped"       # a redelivered task sends nothing

    [mail] = smtp.to("tiefbau@neu-isenburg.example")
    assert mail.subject == f"Neuer Antrag {app['reference']} – Entscheidung bis 15.04.2026 / New application"
    assert mail.message["From"] == settings.smtp_sender
    assert mail.message["Message-ID"] == f"<{to_authority.id}@breitband.localhost>"
    event = session.get(Event, to_authority.event_id)
    assert mail.message["X-Breitband-Event-Id"] == str(event.id)
    # the request that submitted the application wrote the event; its id is in the mail (and in the API's logs)
    assert event.request_id and mail.message["X-Request-ID"] == event.request_id
    body = mail.body
    assert "für Stadt Neu-Isenburg ist ein neuer Antrag" in body
    # 15.02.2026 is a Sunday: the completeness month ends on Monday
    assert "Entscheidung bis:          15.04.2026" in body and "Vollständigkeit rügen bis: 16.02.2026" in body
    assert body.index("Guten Tag") < body.index("Hello,")                    # German first, English second
    assert f"/#/case/{api.case_of(app, 'Stadt Neu-Isenburg')}" in body
    assert "Breitband-Servicestelle Hessen" in body                          # the tenant's own footer template

    session.expire_all()
    d = session.get(Delivery, to_authority.id)
    assert (d.status, d.attempts, d.last_error) == ("delivered", 1, None)
    log = session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == d.id)).all()
    assert [(a.number, a.ok, a.response_status) for a in log] == [(1, True, 250)]


def test_applicant_mail_goes_to_the_contact_person(api, he, lines, clock, db, session, smtp):
    # once the contact confirmed the address (before that: test_contact_confirmation.py)
    contacts.mark_confirmed(session, tenant_key="he", org_id=he.orgs["operator"],
                            email="olaf.planer@glasfaser-test.example", now=service_clock.now())
    session.commit()
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    outbox.relay(db)
    [d] = _deliveries(session, app["id"], "application.submitted")
    delivery.deliver(db, d.id)
    [mail] = smtp.to("olaf.planer@glasfaser-test.example")
    assert mail.subject == f"Antrag {app['reference']} eingegangen / Application {app['reference']} received"
    assert "„FTTH Neu-Isenburg Gravenbruch, Bauabschnitt 3“ ist am 15.01.2026, 10:00 Uhr" in mail.body


def test_smtp_down_the_mail_is_retried_with_backoff_and_delivered_once(api, he, lines, clock, db, session, smtp,
                                                                      settings, monkeypatch):
    monkeypatch.setattr(settings, "notify_retry_base_s", 60.0)
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    outbox.relay(db)
    [d] = _deliveries(session, app["id"], "case.received")
    smtp.stop()

    failed = delivery.deliver(db, d.id)
    assert (failed["status"], failed["attempt"], failed["retry_in_s"]) == ("retrying", 1, 60.0)
    session.expire_all()
    row = session.get(Delivery, d.id)
    assert "not reachable" in row.last_error and "Connection refused" in row.last_error
    assert row.next_attempt_at - row.updated_at == timedelta(seconds=60)
    assert delivery.deliver(db, d.id)["status"] == "skipped"                 # not due yet

    # the second try is due after the backoff; it fails again and waits twice as long
    row.next_attempt_at = row.next_attempt_at - timedelta(seconds=61)
    session.commit()
    assert delivery.deliver(db, d.id)["retry_in_s"] == 120.0

    smtp.start()                                                             # the server is back
    row = session.get(Delivery, d.id)
    session.refresh(row)
    row.next_attempt_at = row.next_attempt_at - timedelta(seconds=121)
    row.enqueued_at = row.enqueued_at - timedelta(seconds=121)              # and its retry message was lost
    session.commit()
    due = delivery.dispatch_due(db)                                          # what beat does
    assert due["due"] >= 1
    assert delivery.deliver(db, d.id)["status"] == "delivered"
    assert delivery.deliver(db, d.id)["status"] == "skipped"
    assert len(smtp.to("tiefbau@neu-isenburg.example")) == 1
    log = session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == d.id)
                          .order_by(DeliveryAttempt.number)).all()
    assert [(a.number, a.ok) for a in log] == [(1, False), (2, False), (3, True)]


def test_retries_stop_after_the_window_and_manual_redelivery_works(api, he, lines, clock, db, session, smtp,
                                                                   settings, monkeypatch):
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    outbox.relay(db)
    [d] = _deliveries(session, app["id"], "case.received")
    smtp.stop()
    row = session.get(Delivery, d.id)
    row.created_at = row.created_at - timedelta(hours=24) + timedelta(seconds=10)   # almost a day old
    session.commit()
    assert delivery.deliver(db, d.id)["status"] == "failed"                 # the next wait would pass 24 h
    smtp.start()
    assert delivery.deliver(db, d.id)["status"] == "skipped"                # failed stays failed ...
    session.expire_all()
    delivery.redeliver(session, session.get(Delivery, d.id), service_clock.now())   # ... until redelivered by hand
    session.commit()
    assert delivery.deliver(db, d.id)["status"] == "delivered"
    assert len(smtp.to("tiefbau@neu-isenburg.example")) == 1
