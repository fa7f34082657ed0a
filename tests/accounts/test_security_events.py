"""Security events (accounts/events.py): recorded with sign-ins, failures, tokens; listed for tenant admins with
filters and keyset paging; published as security.<kind> to the operating office's feed (the audience registered
in accounts/events.py)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from accounts.models import SecurityEvent
from breitband import dates
from notifications import outbox
from notifications.models import Event
from tests.accounts.conftest import login

EVENTS = "/api/v1/admin/security-events"


def listed(client, admin, **params) -> dict:
    r = client.get(EVENTS, headers=admin.headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_sign_ins_failures_and_tokens_are_recorded_and_listed(client, with_passwords, clock):
    w = with_passwords
    assert login(client, "planer@xa.example", "wrong password 123").status_code == 401
    assert client.post("/api/v1/auth/login", json={"tenant": "xa", "email": "Ghost@xa.example",
                                                   "password": "whatever 12345"},
                       headers={"User-Agent": "curl/8"}).status_code == 401
    clock.now += timedelta(minutes=1)
    csrf = {"X-CSRF-Token": login(client, "planer@xa.example").json()["csrf_token"]}
    token = client.post("/api/v1/me/tokens", json={"name": "QGIS", "scope": "read"}, headers=csrf).json()
    assert client.delete(f"/api/v1/me/tokens/{token['id']}", headers=csrf).status_code == 204
    assert client.delete(f"/api/v1/me/tokens/{token['id']}", headers=csrf).status_code == 204   # no 2nd event

    page = listed(client, w.admin)
    kinds = [e["kind"] for e in page["items"]]
    assert kinds == ["token-revoked", "token-created", "sign-in", "sign-in-failed", "sign-in-failed"]
    revoked, created, signed_in, ghost, wrong = page["items"]
    assert created["detail"]["scope"] == "read" and created["detail"]["token_id"] == token["id"]
    assert signed_in["user_id"] == str(w.operator_member.user_id) == signed_in["actor_id"]
    assert signed_in["detail"]["method"] == "password" and signed_in["detail"]["mfa"] is False
    assert signed_in["client_ip"] == "testclient"
    assert ghost == {**ghost, "user_id": None, "email": "ghost@xa.example", "user_agent": "curl/8",
                     "detail": {"reason": "unknown-address"}}
    assert wrong["user_id"] == str(w.operator_member.user_id) and wrong["detail"] == {"reason": "password"}
    assert page["next_before_id"] is None

    # filters
    assert [e["kind"] for e in listed(client, w.admin, kind="sign-in-failed")["items"]] == ["sign-in-failed"] * 2
    both = listed(client, w.admin, kind=["sign-in", "token-created"])["items"]
    assert [e["kind"] for e in both] == ["token-created", "sign-in"]
    mine = listed(client, w.admin, user_id=str(w.operator_member.user_id))["items"]
    assert len(mine) == 4
    later = listed(client, w.admin, since=dates.iso(clock.now))["items"]
    assert [e["kind"] for e in later] == ["token-revoked", "token-created", "sign-in"]
    earlier = listed(client, w.admin, until=dates.iso(clock.now))["items"]
    assert [e["kind"] for e in earlier] == ["sign-in-failed", "sign-in-failed"]

    # pages of two, newest first
    first = listed(client, w.admin, limit=2)
    second = listed(client, w.admin, limit=2, before_id=first["next_before_id"])
    third = listed(client, w.admin, limit=2, before_id=second["next_before_id"])
    assert [e["id"] for e in first["items"] + second["items"] + third["items"]] == [e["id"] for e in page["items"]]
    assert third["next_before_id"] is None


def test_only_tenant_admins_of_the_tenant_and_bad_filters(client, with_passwords, other_world):
    w = with_passwords
    assert login(client, "planer@xa.example").status_code == 200
    r = client.get(EVENTS, headers=w.operator_member.headers)
    assert r.status_code == 403 and r.json()["type"].endswith("/role-not-allowed")
    assert listed(client, other_world.admin)["items"] == []          # another tenant's admin sees none of them
    for params, field in (({"kind": "nonsense"}, "kind"), ({"since": "2026-01-01T00:00:00"}, "since"),
                          ({"limit": 0}, "limit"), ({"limit": 501}, "limit"),
                          ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since")):
        r = client.get(EVENTS, headers=w.admin.headers, params=params)
        assert r.status_code == 422 and r.json()["field"] == field, (params, r.text)
    assert client.get(EVENTS, headers=w.admin.headers, params={"before_id": "x"}).status_code == 422


def test_security_events_reach_the_operating_office_feed_only(client, with_passwords, db, session):
    w = with_passwords
    assert login(client, "planer@xa.example").status_code == 200
    row = session.scalars(select(SecurityEvent).where(SecurityEvent.tenant_key == "xa")).one()
    event = session.scalars(select(Event).where(Event.type == "security.sign-in")).one()
    assert event.payload["security_event_id"] == row.id and event.payload["user_id"] == str(w.operator_member.user_id)
    outbox.relay(db)

    def feed(who):
        r = client.get("/api/v1/events", headers=who.headers, params={"limit": 100})
        assert r.status_code == 200, r.text
        return [e["type"] for e in r.json()["items"]]

    assert "security.sign-in" in feed(w.admin)
    assert "security.sign-in" not in feed(w.operator_member)
    assert "security.sign-in" not in feed(w.reviewer)
