"""Webhooks: subscriptions per organisation (CRUD over HTTP, scoped), HMAC-SHA256 signed deliveries to a real HTTP
receiver, exponential backoff through failures, the delivery log and manual redelivery."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from breitband import clock as service_clock
from notifications import delivery, jobs, outbox, webhooks
from tests.support.api import PROBLEM, collection, trench


@pytest.fixture
def moving_clock(clock):
    """The service's clock (``breitband.clock``: delivery, back-off, the log) tells the test's time, so a test moves
    ``clock.now`` past a back-off instead of sleeping through it."""
    with service_clock.frozen(clock):
        yield clock


def subscribe(client, who, url, **body):
    r = client.post("/api/v1/webhooks", headers=who.headers, json={"url": url, **body})
    assert r.status_code == 201, r.text
    return r.json()


def test_subscription_crud_is_scoped_to_the_organisation(client, he):
    created = subscribe(client, he.operator, "https://gis.glasfaser-test.example/hooks", event_types=["case.*"],
                        description="GIS-Anbindung")
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert (created["event_types"], created["active"], created["organisation_id"]) == (
        ["case.*"], True, str(he.orgs["operator"]))
    sub = f"/api/v1/webhooks/{created['id']}"
    listed = client.get("/api/v1/webhooks", headers=he.colleague.headers).json()      # same organisation
    assert [s["id"] for s in listed] == [created["id"]] and "secret" not in listed[0]

    for stranger in (he.other_operator, he.hessen_mobil, he.admin):
        r = client.get(sub, headers=stranger.headers)
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
        assert client.patch(sub, headers=stranger.headers, json={"active": False}).status_code == 404
    assert client.get("/api/v1/webhooks", headers=he.neu_isenburg.headers).status_code == 403   # reviewer

    r = client.patch(sub, headers=he.operator.headers, json={"event_types": ["case.decided", "document.*"],
                                                             "active": False})
    assert (r.status_code, r.json()["event_types"], r.json()["active"]) == (
        200, ["case.decided", "document.*"], False)
    bad = client.patch(sub, headers=he.operator.headers, json={"url": "ftp://x.example/"})
    assert bad.status_code == 422 and bad.json()["type"].endswith("/invalid-webhook-url")
    rotated = client.post(f"{sub}/rotate-secret", headers=he.operator.headers).json()
    assert rotated["secret"] != created["secret"]
    assert client.delete(sub, headers=he.operator.headers).status_code == 204
    assert client.get(sub, headers=he.operator.headers).status_code == 404
    assert client.get("/api/v1/webhooks", headers=he.operator.headers).json() == []


def test_signed_delivery_retried_with_backoff_until_the_receiver_recovers(api, he, lines, moving_clock, client, db,
                                                                         receiver, settings, monkeypatch):
    monkeypatch.setattr(settings, "notify_retry_base_s", 0.2)
    receiver.failures = 3                              # answers 500 three times, then 204
    operator_hook = subscribe(client, he.operator, receiver.url, event_types=["application.submitted"])
    authority_hook = subscribe(client, he.hessen_mobil, receiver.url + "?who=mobil")   # every event it may see
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))        # Hessen Mobil not involved
    outbox.relay(db)

    log = client.get(f"/api/v1/webhooks/{operator_hook['id']}/deliveries", headers=he.operator.headers).json()
    [d] = log["items"]
    assert (d["event_type"], d["status"], d["attempts"]) == ("application.submitted", "pending", 0)
    mobil = client.get(f"/api/v1/webhooks/{authority_hook['id']}/deliveries", headers=he.hessen_mobil.headers)
    assert mobil.json()["items"] == []                 # not in the audience of this application's events

    results = []
    for _ in range(6):
        result = delivery.deliver(db, d["id"])
        results.append(result)
        if result["status"] != "retrying":
            break
        moving_clock.now += timedelta(seconds=result["retry_in_s"]) - timedelta(microseconds=1)
        assert delivery.deliver(db, d["id"])["status"] == "skipped"          # not a moment before the back-off
        moving_clock.now += timedelta(microseconds=1)
    assert [(r["status"], r.get("retry_in_s")) for r in results] == [
        ("retrying", 0.2), ("retrying", 0.4), ("retrying", 0.8), ("delivered", None)]
    assert delivery.deliver(db, d["id"])["status"] == "skipped"

    assert [r.status for r in receiver.requests] == [500, 500, 500, 204]
    bodies = {r.body for r in receiver.requests}
    assert len(bodies) == 1                            # the same event every time
    event = json.loads(bodies.pop())
    assert (event["type"], event["data"]["application_id"], event["id"]) == (
        "application.submitted", app["id"], receiver.requests[0].headers["Breitband-Event-Id"])
    for n, r in enumerate(receiver.requests, start=1):
        assert r.headers["Breitband-Event-Id"] == event["id"]
        assert r.headers["Breitband-Delivery-Attempt"] == str(n)
        assert webhooks.verify_signature(operator_hook["secret"], r.headers["Breitband-Timestamp"], r.body,
                                         r.headers["Breitband-Signature"])
        assert not webhooks.verify_signature("whsec_wrong", r.headers["Breitband-Timestamp"], r.body,
                                             r.headers["Breitband-Signature"])

    log = client.get(f"/api/v1/webhooks/{operator_hook['id']}/deliveries", headers=he.operator.headers).json()
    [d] = log["items"]
    assert (d["status"], d["attempts"], d["last_error"]) == ("delivered", 4, None)
    assert [(a["number"], a["ok"], a["response_status"]) for a in d["log"]] == [
        (1, False, 500), (2, False, 500), (3, False, 500), (4, True, 204)]
    started = [datetime.fromisoformat(a["started_at"].replace("Z", "+00:00")) for a in d["log"]]
    gaps = [(b - a).total_seconds() for a, b in zip(started, started[1:])]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8                 # the tries' times, on the clock
    assert [int(r.headers["Breitband-Timestamp"]) for r in receiver.requests] == [int(t.timestamp()) for t in started]

    # manual redelivery sends the same event once more, with a fresh signature
    r = client.post(f"/api/v1/webhooks/{operator_hook['id']}/deliveries/{d['id']}/redeliver",
                    headers=he.operator.headers)
    assert (r.status_code, r.json()["status"]) == (202, "pending")
    assert delivery.deliver(db, d["id"])["status"] == "delivered"
    assert len(receiver.requests) == 5 and receiver.requests[-1].headers["Breitband-Event-Id"] == event["id"]
    assert client.post(f"/api/v1/webhooks/{operator_hook['id']}/deliveries/{d['id']}/redeliver",
                       headers=he.other_operator.headers).status_code == 404


def test_authority_webhook_gets_its_new_case_and_the_tenant_office_gets_everything(api, he, lines, clock, client,
                                                                                   db, receiver, session):
    mobil_hook = subscribe(client, he.hessen_mobil, receiver.url)             # an authority admin
    office_hook = subscribe(client, he.admin, receiver.url + "?office", event_types=["case.received"])
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"]), trench(lines["l3262"])))
    outbox.relay(db)
    own = client.get(f"/api/v1/webhooks/{mobil_hook['id']}/deliveries", headers=he.hessen_mobil.headers).json()
    assert [d["event_type"] for d in own["items"]] == ["case.received"]
    office = client.get(f"/api/v1/webhooks/{office_hook['id']}/deliveries", headers=he.admin.headers).json()
    assert sorted(d["event_type"] for d in office["items"]) == ["case.received", "case.received"]
    for d in own["items"] + office["items"]:
        assert delivery.deliver(db, d["id"])["status"] == "delivered"
    cases = {json.loads(r.body)["data"]["case_id"] for r in receiver.requests}
    assert cases == {api.case_of(app, "Hessen Mobil"), api.case_of(app, "Stadt Neu-Isenburg")}


def test_urls_into_loopback_link_local_or_metadata_are_refused_private_networks_allowed(
        api, he, lines, moving_clock, client, db, receiver, settings, monkeypatch):
    """The default block list (the test suite itself allows loopback for its receivers): refused on subscription
    with the address named, and checked again before each try, so a subscription whose host now points into a
    blocked network sends nothing."""
    from breitband.settings import Settings

    default = Settings.model_fields["webhook_blocked_networks"].default_factory()
    assert "127.0.0.0/8" in default and "169.254.0.0/16" in default
    allowed_in_tests = list(settings.webhook_blocked_networks)
    hook = subscribe(client, he.operator, receiver.url, event_types=["application.submitted"])  # loopback allowed
    monkeypatch.setattr(settings, "webhook_blocked_networks", default)
    monkeypatch.setattr(settings, "notify_retry_base_s", 0.1)

    for url, address, cls in (("http://127.0.0.1:8000/hooks", "127.0.0.1", "loopback"),
                              ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "cloud-metadata"),
                              ("http://localhost:9000/hooks", "127.0.0.1", "loopback"),
                              ("http://[::1]/hooks", "::1", "loopback"),
                              ("http://[::ffff:127.0.0.1]/hooks", "127.0.0.1", "loopback"),
                              ("http://0.0.0.0:8080/", "0.0.0.0", "unspecified")):
        r = client.post("/api/v1/webhooks", headers=he.operator.headers, json={"url": url})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (url, r.text)
        body = r.json()
        assert (body["type"].rsplit("/", 1)[1], body["field"], body["address"], body["address_class"]) == (
            "webhook-url-blocked", "url", address, cls), url
        assert ("BREITBAND_WEBHOOK_BLOCKED_NETWORKS" in body["detail"]) == (cls == "loopback"), body["detail"]
    r = client.patch(f"/api/v1/webhooks/{hook['id']}", headers=he.operator.headers,
                     json={"url": "http://169.254.169.254/"})
    assert r.status_code == 422 and r.json()["type"].endswith("/webhook-url-blocked")
    bad_port = client.post("/api/v1/webhooks", headers=he.operator.headers, json={"url": "http://gis.example:99999/"})
    assert bad_port.status_code == 422 and bad_port.json()["type"].endswith("/invalid-webhook-url")
    # a receiver in a private network (a closed government network) is fine
    private = subscribe(client, he.operator, "https://10.20.30.40/hooks/breitband")
    assert private["url"] == "https://10.20.30.40/hooks/breitband"

    # the existing loopback subscription: checked again when sending → not sent, the reason in the log
    api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    outbox.relay(db)
    [d] = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=he.operator.headers).json()["items"]
    result = delivery.deliver(db, d["id"])
    assert result["status"] == "retrying" and receiver.requests == []
    [d] = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=he.operator.headers).json()["items"]
    assert d["last_error"] == "blocked-address"
    assert [(a["ok"], a["response_status"], a["error"]) for a in d["log"]] == [(False, None, "blocked-address")]

    monkeypatch.setattr(settings, "webhook_blocked_networks", allowed_in_tests)     # unblocked: the retry goes out
    moving_clock.now += timedelta(seconds=result["retry_in_s"])
    assert delivery.deliver(db, d["id"])["status"] == "delivered"
    assert len(receiver.requests) == 1


def test_a_try_connects_to_the_addresses_it_checked_so_dns_rebinding_leads_nowhere(receiver, settings, monkeypatch):
    """The name answers an allowed address for the check and the receiver's (blocked) one to anybody who asks
    again: the try resolves once and connects to what it checked, so nothing reaches the receiver. A name that
    answers the receiver's address while it is allowed is delivered there, with its name in the Host header."""
    import socket
    import uuid

    real = socket.getaddrinfo
    asked: list[str] = []

    def resolver(host, *args, **kwargs):
        if host in ("rebind.example", "hooks.example"):
            asked.append(host)
            address = "127.0.0.2" if host == "rebind.example" and len(asked) == 1 else "127.0.0.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, 0))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)

    def job(host):
        return jobs.Job(delivery_id=uuid.uuid4(), channel="webhook", attempt=1, tenant_key="he", target="t",
                            event={"id": str(uuid.uuid4()), "type": "application.submitted", "data": {}},
                            context={}, url=f"http://{host}:{receiver.port}/hooks/breitband", secret="whsec_test")

    monkeypatch.setattr(settings, "webhook_blocked_networks", ["127.0.0.1/32"])   # the receiver's address
    out = webhooks.post_webhook(job("rebind.example"), settings)
    assert (out.ok, out.error) == (False, "connection-refused")          # 127.0.0.2: nobody listens there
    assert asked == ["rebind.example"] and receiver.requests == []                # asked once, sent nowhere

    monkeypatch.setattr(settings, "webhook_blocked_networks", [])
    out = webhooks.post_webhook(job("hooks.example"), settings)
    assert out.ok, out.error
    [hook] = receiver.requests
    assert hook.headers["Host"] == f"hooks.example:{receiver.port}"
