"""Issue 11, finding 8: the contact e-mail an operator types into an application gets notices only after its owner
confirmed it (notifications/contacts.py). Until then the operator organisation's own addresses get them and the contact
one request to confirm, with a single-use, expiring link; over the real SMTP server (aiosmtpd) of these tests."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from notifications import contacts, delivery, outbox
from notifications.contacts import ContactConfirmation
from notifications.models import Delivery, Event
from tests.support.api import PROBLEM, collection, trench

CONTACT = "olaf.planer@glasfaser-test.example"
OPERATOR_MEMBERS = ["kollegin@glasfaser-test.example", "planer@glasfaser-test.example"]
TYPE = "https://breitband.dev/problems/"


def _deliver_all(db, session, app_id) -> None:
    outbox.relay(db)
    ids = session.scalars(select(Delivery.id).join(Event, Event.id == Delivery.event_id).where(
        Event.application_id == app_id, Delivery.channel == "email", Delivery.status == "pending")).all()
    for d in ids:
        assert delivery.deliver(db, d)["status"] == "delivered"


def _token(mail) -> str:
    [token] = set(re.findall(r"https?://\S+/contact-confirmations\?token=(\S+)", mail.body))   # in both languages
    return token


def test_unconfirmed_contact_gets_only_the_request_then_notices_once_confirmed(api, he, lines, clock, db, session,
                                                                               smtp, client, settings):
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    _deliver_all(db, session, app["id"])

    # the contact: one e-mail, the request to confirm, not the notice
    [request] = smtp.to(CONTACT)
    assert request.subject == "Bitte bestätigen Sie Ihre E-Mail-Adresse / Please confirm your e-mail address"
    assert f"Glasfaser Test GmbH hat diese Adresse als Kontakt für den Antrag {app['reference']}" in request.body
    token = _token(request)
    assert token.startswith("bbc_") and len(token) > 40
    assert f"{settings.public_base_url}/contact-confirmations?token={token}" in request.body
    # the notice went to the operator organisation's own addresses instead
    for member in OPERATOR_MEMBERS:
        [notice] = smtp.to(member)
        assert notice.subject == f"Antrag {app['reference']} eingegangen / Application {app['reference']} received"
    # only the token's hash is kept
    row = session.scalars(select(ContactConfirmation).where(ContactConfirmation.email == CONTACT)).one()
    assert row.token_sha256 != token and len(row.token_sha256) == 64 and row.confirmed_at is None
    assert row.expires_at - row.created_at == timedelta(hours=168)

    # opening the link shows what is confirmed and confirms nothing (mail scanners open links)
    page = client.get("/contact-confirmations", params={"token": token}, headers={"Accept": "text/html"})
    assert page.status_code == 200 and 'method="post"' in page.text and CONTACT in page.text
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert client.get("/contact-confirmations", params={"token": token}).json() == {
        "email": CONTACT, "organisation": "Glasfaser Test GmbH", "confirmed": False,
        "expires_at": row.expires_at.isoformat().replace("+00:00", "Z")}
    assert not contacts.is_confirmed(session, he.orgs["operator"], CONTACT)

    # a further notice before the confirmation: again to the organisation, and no second request
    case = api.case_of(app, "Stadt Neu-Isenburg")
    assert api.command(he.neu_isenburg, f"/cases/{case}/request-information",
                       {"message": "Querschnitt fehlt"}).status_code == 200
    _deliver_all(db, session, app["id"])
    assert len(smtp.to(CONTACT)) == 1
    assert len(smtp.to(OPERATOR_MEMBERS[1])) == 2

    # the button: confirmed, once
    done = client.post("/contact-confirmations", data={"token": token})
    assert done.status_code == 200 and done.json()["confirmed"] is True
    again = client.post("/contact-confirmations", data={"token": token})
    assert (again.status_code, again.headers["content-type"], again.json()["type"]) == (
        410, PROBLEM, TYPE + "contact-confirmation-used")
    assert contacts.is_confirmed(session, he.orgs["operator"], CONTACT.upper())

    # from now on the contact gets the notices, the organisation's members no longer
    r = api.command(he.operator, f"/applications/{app['id']}/supplements", {"message": "Querschnitt anbei"})
    assert r.status_code == 200, r.text
    assert api.command(he.neu_isenburg, f"/cases/{case}/confirm-complete", {}).status_code == 200
    _deliver_all(db, session, app["id"])
    mails = smtp.to(CONTACT)
    assert [m.subject for m in mails[1:]] == [f"Antrag {app['reference']} vollständig / Application complete"]
    assert len(smtp.to(OPERATOR_MEMBERS[1])) == 2


def test_links_expire_are_unknown_or_missing(api, he, lines, clock, db, session, smtp, client):
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    _deliver_all(db, session, app["id"])
    token = _token(smtp.to(CONTACT)[0])
    row = session.scalars(select(ContactConfirmation).where(ContactConfirmation.email == CONTACT)).one()
    row.expires_at = row.created_at - timedelta(seconds=1)
    session.commit()
    expired = client.post("/contact-confirmations", data={"token": token})
    assert (expired.status_code, expired.headers["content-type"], expired.json()["type"]) == (
        410, PROBLEM, TYPE + "contact-confirmation-expired")
    assert client.get("/contact-confirmations", params={"token": token}).status_code == 410
    assert not contacts.is_confirmed(session, he.orgs["operator"], CONTACT)
    unknown = client.post("/contact-confirmations", data={"token": "bbc_" + "x" * 43})
    assert (unknown.status_code, unknown.json()["type"]) == (404, TYPE + "contact-confirmation-not-found")
    missing = client.post("/contact-confirmations", data={})
    assert missing.status_code == 422 and missing.headers["content-type"] == PROBLEM
    assert client.get("/contact-confirmations", params={"token": "y" * 101}).status_code == 422

    # the expired request is followed by a new one with the next notice
    case = api.case_of(app, "Stadt Neu-Isenburg")
    api.command(he.neu_isenburg, f"/cases/{case}/request-information", {"message": "Querschnitt fehlt"})
    _deliver_all(db, session, app["id"])
    requests = smtp.to(CONTACT)
    assert len(requests) == 2 and _token(requests[1]) != token
    assert client.post("/contact-confirmations", data={"token": _token(requests[1])}).status_code == 200


def test_an_address_of_the_organisation_itself_needs_no_confirmation(api, he, lines, clock, db, session, smtp):
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])),
                        contact={"name": "Kollegin", "email": "Kollegin@glasfaser-test.example"})
    _deliver_all(db, session, app["id"])
    [notice] = smtp.to("kollegin@glasfaser-test.example")
    assert notice.subject.startswith(f"Antrag {app['reference']} eingegangen")
    assert smtp.to("planer@glasfaser-test.example") == []
    assert session.scalars(select(ContactConfirmation)).all() == []
