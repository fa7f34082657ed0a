"""The outbox relay and the event feed: events written by permit commands are published once, fanned out to the
organisations that may see them, and read back through GET /api/v1/events with a cursor."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from notifications import outbox
from notifications.models import Delivery, Event, FeedEntry
from tests.support.api import PROBLEM, collection, trench

SUBMIT_EVENTS = ["application.created", "application.submitted", "case.received", "case.received",
                 "application.status_changed"]


def submit_two_authorities(api, he, lines) -> dict:
    """A real route along the Admiral-Rosendahl-Straße (Neu-Isenburg) and the L 3262 (Hessen Mobil)."""
    return api.submitted(he.operator, collection(trench(lines["neu_isenburg"]), trench(lines["l3262"])))


def feed(client, who, **params):
    r = client.get("/api/v1/events", headers=who.headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_events_are_published_once_to_the_organisations_that_may_see_them(api, he, lines, clock, client, db,
                                                                           session):
    app = submit_two_authorities(api, he, lines)
    unpublished = session.scalar(select(func.count()).select_from(Event).where(
        Event.application_id == app["id"], Event.published_at.is_(None)))
    assert unpublished == 5
    assert feed(client, he.operator)["items"] == []           # nothing before the relay published it

    result = outbox.relay(db)
    assert result["published"] >= 5
    again = outbox.relay(db)
    assert again["published"] == 0                              # published_at set in the same transaction

    mine = feed(client, he.operator)
    assert [e["type"] for e in mine["items"]] == SUBMIT_EVENTS
    assert all(e["data"]["application_id"] == app["id"] for e in mine["items"])
    assert mine["has_more"] is False and mine["next_cursor"] == mine["items"][-1]["cursor"]

    ni_case = api.case_of(app, "Stadt Neu-Isenburg")
    ni = feed(client, he.neu_isenburg)["items"]
    assert [(e["type"], e["data"]["case_id"]) for e in ni] == [("case.received", ni_case)]
    mobil = feed(client, he.hessen_mobil)["items"]
    assert [(e["type"], e["data"]["case_id"]) for e in mobil] == [
        ("case.received", api.case_of(app, "Hessen Mobil"))]
    assert feed(client, he.other_operator)["items"] == []
    assert feed(client, he.frankfurt)["items"] == []
    admin = [e for e in feed(client, he.admin, limit=1000)["items"] if e["data"].get("application_id") == app["id"]]
    assert [e["type"] for e in admin] == SUBMIT_EVENTS

    # each event has one feed row per organisation, however often the relay runs
    rows = session.execute(select(FeedEntry.event_id, func.count()).join(
        Event, Event.id == FeedEntry.event_id).where(Event.application_id == app["id"])
        .group_by(FeedEntry.event_id)).all()
    counts = {str(e): n for e, n in rows}
    by_id = {e["id"]: e["type"] for e in mine["items"]}
    # applicant + tenant admins for application events; + the authority for its case.received
    assert sorted((by_id[e], n) for e, n in counts.items()) == [
        ("application.created", 2), ("application.status_changed", 2), ("application.submitted", 2),
        ("case.received", 3), ("case.received", 3)]


def test_feed_pages_with_the_cursor_and_continues_after_new_events(api, he, lines, clock, client, db):
    app = submit_two_authorities(api, he, lines)
    outbox.relay(db)
    first = feed(client, he.operator, limit=2)
    assert [e["type"] for e in first["items"]] == SUBMIT_EVENTS[:2] and first["has_more"] is True
    second = feed(client, he.operator, after=first["next_cursor"], limit=2)
    third = feed(client, he.operator, after=second["next_cursor"], limit=2)
    assert [e["type"] for e in second["items"] + third["items"]] == SUBMIT_EVENTS[2:]
    assert third["has_more"] is False
    empty = feed(client, he.operator, after=third["next_cursor"])
    assert empty == {"items": [], "next_cursor": third["next_cursor"], "has_more": False}

    clock.set("2026-01-20T09:00:00+01:00")
    case = api.case_of(app, "Stadt Neu-Isenburg")
    r = api.command(he.neu_isenburg, f"/cases/{case}/request-information", {"message": "Bitte Querschnitt."})
    assert r.status_code == 200, r.text
    assert feed(client, he.operator, after=third["next_cursor"])["items"] == []   # not yet published
    outbox.relay(db)
    new = feed(client, he.operator, after=third["next_cursor"])["items"]
    assert [e["type"] for e in new] == ["case.information_requested", "application.status_changed"]
    assert int(new[0]["cursor"]) > int(third["next_cursor"])
    only = feed(client, he.operator, type="case.information_requested")["items"]
    assert [e["data"]["message"] for e in only] == ["Bitte Querschnitt."]


def test_feed_cursor_must_be_one_of_ours(client, he):
    for bad in ("abc", "-3"):
        r = client.get("/api/v1/events", headers=he.operator.headers, params={"after": bad})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
        assert r.json()["type"].endswith("/invalid-cursor")
    assert client.get("/api/v1/events").status_code == 401


def test_relay_creates_one_email_delivery_per_recipient_and_event(api, he, lines, clock, db, session):
    app = submit_two_authorities(api, he, lines)
    outbox.relay(db)
    outbox.relay(db)
    rows = session.execute(select(Delivery.event_type, Delivery.target).join(
        Event, Event.id == Delivery.event_id).where(Event.application_id == app["id"],
                                                                Delivery.channel == "email")).all()
    got = sorted((t, a) for t, a in rows)
    assert ("application.submitted", "olaf.planer@glasfaser-test.example") in got     # the contact person
    assert ("case.received", "tiefbau@neu-isenburg.example") in got                    # the authority's member
    assert ("case.received", "pruefer@hessen-mobil.example") in got
    assert len(got) == len(set(got))
    assert not [a for t, a in got if t in ("application.created", "application.status_changed")]


def test_without_an_audience_provider_the_relay_fails_and_publishes_nothing(api, he, lines, clock, client, db,
                                                                            session, monkeypatch):
    """A process whose entry point did not import the module that registers the audience: the relay says so and
    leaves every event unpublished, rather than publishing it to nobody."""
    app = submit_two_authorities(api, he, lines)
    monkeypatch.setattr(outbox, "_providers", [])
    with pytest.raises(outbox.NoAudienceProvider, match="no audience provider is registered.*register_audience"):
        outbox.relay(db)
    unpublished = session.scalar(select(func.count()).select_from(Event).where(
        Event.application_id == app["id"], Event.published_at.is_(None)))
    assert unpublished == 5
    assert session.scalar(select(func.count()).select_from(FeedEntry).join(Event, Event.id == FeedEntry.event_id)
                          .where(Event.application_id == app["id"])) == 0
    monkeypatch.undo()                                          # registered again: published as usual
    assert outbox.relay(db)["published"] >= 5
    assert [e["type"] for e in feed(client, he.operator)["items"]] == SUBMIT_EVENTS


def test_feed_type_filter_rejects_what_is_no_event_type(client, he):
    """A NUL byte or a 300-character type used to reach PostgreSQL and come back as a 500."""
    for bad in ("a\x00b", "x" * 300, "case information"):
        r = client.get("/api/v1/events", headers=he.operator.headers, params={"type": bad})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
        assert r.json().get("field") == "type" or "type" in r.json()["detail"], r.json()
    assert client.get("/api/v1/events", headers=he.operator.headers,
                      params={"type": "case.decided"}).status_code == 200
