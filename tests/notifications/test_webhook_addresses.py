"""Webhooks may not reach the service's own host or the cloud metadata services, in whatever notation the URL writes
the address, and the delivery log is no port scanner: it keeps the HTTP status, the timing and an error class,
never the receiver's answer or an exception's text.

Receivers are real HTTP servers (tests/notifications/conftest.py), on 127.0.0.1 or on an address of this machine's
own interfaces.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from breitband import clock as service_clock
from notifications import addresses, delivery, outbox
from notifications.models import Delivery, DeliveryAttempt, WebhookSubscription
from notifications.schemas import ERROR_CLASS_DOC
from tests.support.api import PROBLEM, collection, trench
from tests.support.webhooks import WebhookReceiver


@pytest.fixture
def moving_clock(clock):
    """The service's clock (``breitband.clock``: delivery, back-off, the log) tells the test's time, so a test moves
    ``clock.now`` past a back-off instead of sleeping through it."""
    with service_clock.frozen(clock):
        yield clock


@dataclass
class RunningClock:
    """The test's time, running on at the real pace from where the test's clock stood: a try takes the time it
    really takes (the log's durations), and a test moves past a back-off by adding to ``offset``."""

    start: datetime
    offset: timedelta = field(default_factory=timedelta)
    started: float = field(default_factory=time.monotonic)

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.started) + self.offset


@pytest.fixture
def running_clock(clock):
    """Set after ``clock`` (the one clock, which it starts from), so that this one is in force."""
    c = RunningClock(start=clock.now)
    with service_clock.frozen(c):
        yield c


def default_blocking(settings, monkeypatch) -> None:
    """The production defaults (the test suite takes loopback off the list for its receivers)."""
    from breitband.settings import Settings

    monkeypatch.setattr(settings, "webhook_blocked_networks",
                        Settings.model_fields["webhook_blocked_networks"].default_factory())
    monkeypatch.setattr(settings, "webhook_block_own_addresses", True)


def refused(client, who, url: str) -> dict:
    r = client.post("/api/v1/webhooks", headers=who.headers, json={"url": url})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (url, r.status_code, r.text)
    body = r.json()
    assert (body["type"].rsplit("/", 1)[1], body["field"]) == ("webhook-url-blocked", "url"), body
    assert body["detail"].startswith("url: ") and "webhooks may not reach it" in body["detail"], body["detail"]
    return body


# (URL, address named, address class, embedded IPv4 address that is the reason)
BLOCKED = [
    # IPv4 host numbers in the notations inet_aton and browsers accept
    ("http://2130706433/hooks", "127.0.0.1", "loopback", None),
    ("http://0x7f.1/hooks", "127.0.0.1", "loopback", None),
    ("http://017700000001/hooks", "127.0.0.1", "loopback", None),
    ("http://127.1:8080/hooks", "127.0.0.1", "loopback", None),
    ("http://0x7f000001/hooks", "127.0.0.1", "loopback", None),
    ("http://127.0.0.1./hooks", "127.0.0.1", "loopback", None),
    ("http://2852039166/latest/meta-data/", "169.254.169.254", "cloud-metadata", None),
    ("http://0xa9.0xfe.0xa9.0xfe/latest/meta-data/", "169.254.169.254", "cloud-metadata", None),
    ("http://0x64.0x64.0x64.0xc8/latest/meta-data/", "100.100.100.200", "cloud-metadata", None),
    # IPv4 inside IPv6
    ("http://[::ffff:127.0.0.1]/hooks", "127.0.0.1", "loopback", None),                     # IPv4-mapped
    ("http://[::ffff:7f00:1]/hooks", "127.0.0.1", "loopback", None),
    ("http://[::127.0.0.1]/hooks", "::7f00:1", "loopback", "127.0.0.1"),                    # IPv4-compatible
    ("http://[::ffff:0:127.0.0.1]/hooks", "::ffff:0:7f00:1", "loopback", "127.0.0.1"),      # IPv4-translated
    ("http://[64:ff9b::127.0.0.1]/hooks", "64:ff9b::7f00:1", "loopback", "127.0.0.1"),      # NAT64
    ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe", "cloud-metadata", "169.254.169.254"),
    ("http://[64:ff9b:1::a9fe:a9fe]/", "64:ff9b:1::a9fe:a9fe", "cloud-metadata", "169.254.169.254"),
    ("http://[2002:7f00:1::1]/hooks", "2002:7f00:1::1", "loopback", "127.0.0.1"),           # 6to4
    ("http://[2002:a9fe:a9fe::1]/", "2002:a9fe:a9fe::1", "cloud-metadata", "169.254.169.254"),
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback",
     "127.0.0.1"),                                                                           # Teredo client
    ("http://[2001:db8::200:5efe:7f00:1]/", "2001:db8::200:5efe:7f00:1", "loopback", "127.0.0.1"),   # ISATAP
    # metadata and platform services, by address and by name
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "cloud-metadata", None),
    ("http://[fd00:ec2::254]/latest/meta-data/", "fd00:ec2::254", "cloud-metadata", None),
    ("http://100.100.100.200/latest/meta-data/", "100.100.100.200", "cloud-metadata", None),
    ("http://169.254.170.2/v2/credentials", "169.254.170.2", "cloud-metadata", None),
    ("http://168.63.129.16/machine?comp=goalstate", "168.63.129.16", "cloud-metadata", None),
    ("http://[fd20:ce::254]/computeMetadata/v1/", "fd20:ce::254", "cloud-metadata", None),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal", "cloud-metadata", None),
    ("http://METADATA.google.internal./computeMetadata/v1/", "metadata.google.internal", "cloud-metadata", None),
    # this host, link-local, multicast
    ("http://[::]/", "::", "unspecified", None),
    ("http://0.0.0.0:8080/", "0.0.0.0", "unspecified", None),
    ("http://[fe80::1%25eth0]/", "fe80::1", "link-local", None),
    ("http://[ff02::1]/", "ff02::1", "multicast", None),
]


def test_every_blocked_form_is_refused_at_subscription_naming_the_address_class(client, he, settings, monkeypatch):
    default_blocking(settings, monkeypatch)
    for url, address, cls, embedded in BLOCKED:
        body = refused(client, he.operator, url)
        assert (body["address"], body["address_class"], body.get("embedded_address")) == (address, cls, embedded), \
            (url, body)
        assert addresses.CLASSES[cls] in body["detail"], body["detail"]

    # metadata addresses and the unspecified address are refused whatever the settings say
    monkeypatch.setattr(settings, "webhook_blocked_networks", [])
    monkeypatch.setattr(settings, "webhook_block_own_addresses", False)
    for url, _address, cls, _embedded in BLOCKED:
        r = client.post("/api/v1/webhooks", headers=he.operator.headers, json={"url": url})
        if cls in ("cloud-metadata", "unspecified"):
            assert (r.status_code, r.json()["address_class"]) == (422, cls), (url, r.text)
        else:
            assert r.status_code == 201, (url, r.text)
    default_blocking(settings, monkeypatch)

    # a change of URL is checked the same way
    hook = client.post("/api/v1/webhooks", headers=he.operator.headers,
                       json={"url": "https://10.20.30.40/hooks/breitband"}).json()
    r = client.patch(f"/api/v1/webhooks/{hook['id']}", headers=he.operator.headers,
                     json={"url": "http://[64:ff9b::169.254.169.254]/"})
    assert (r.status_code, r.json()["address_class"], r.json()["embedded_address"]) == (
        422, "cloud-metadata", "169.254.169.254")

    # what is not blocked stays allowed: private networks in any notation, NAT64 and 6to4 of private addresses
    for url in ("https://10.20.30.40/hooks", "http://0xa.20.30.40/hooks", "http://167772161/hooks",
                "http://[64:ff9b::10.20.30.40]/hooks", "http://[2002:a14:1e28::1]/hooks",
                "https://192.168.10.20:8443/hooks"):
        r = client.post("/api/v1/webhooks", headers=he.operator.headers, json={"url": url})
        assert r.status_code == 201, (url, r.text)


def interface_addresses() -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """This machine's interface addresses as iproute2 lists them (an oracle independent of the product's reading
    of /proc); where `ip` is not installed, the kernel tables the product reads."""
    if shutil.which("ip"):
        out = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, check=True).stdout
        return [ipaddress.ip_address(a["local"]) for link in json.loads(out) for a in link.get("addr_info", [])]
    found = addresses._fib_trie_local() | addresses._if_inet6()
    return [n.network_address for n in found if n.prefixlen == n.max_prefixlen]


def test_the_hosts_own_addresses_are_refused_on_subscription(client, he, settings, monkeypatch):
    default_blocking(settings, monkeypatch)
    found = interface_addresses()
    assert any(a.is_loopback for a in found), found
    own = [a for a in found if not a.is_loopback]
    for address in found:                # loopback is blocked by the list, every other address as the host's own
        host = f"[{address}]" if address.version == 6 else str(address)
        body = refused(client, he.operator, f"http://{host}:8000/hooks")
        assert (body["address"], body["address_class"]) == (
            str(address), "loopback" if address.is_loopback else "own-host"), body
    for address in own:                  # also when hidden in another notation
        if address.version == 4:
            for url in (f"http://{int(address)}/", f"http://[::ffff:{address}]/", f"http://[64:ff9b::{address}]/"):
                body = refused(client, he.operator, url)
                assert (body["address_class"], body.get("embedded_address", body["address"])) == (
                    "own-host", str(address)), (url, body)
    reachable = [a for a in own if not a.is_link_local]
    if reachable:                        # the setting turns the class off (link-local stays blocked by the list)
        monkeypatch.setattr(settings, "webhook_block_own_addresses", False)
        host = f"[{reachable[0]}]" if reachable[0].version == 6 else str(reachable[0])
        r = client.post("/api/v1/webhooks", headers=he.operator.headers, json={"url": f"http://{host}:8000/"})
        assert r.status_code == 201, r.text


def own_receiver() -> tuple[WebhookReceiver, str]:
    """A receiver on one of this machine's own non-loopback addresses (IPv4 if it has one), or on 127.0.0.1 if it
    has only loopback. → (receiver, class the address is blocked as)."""
    own = [a for a in interface_addresses() if not a.is_loopback and not a.is_link_local]
    address = str(min(own, key=lambda a: a.version)) if own else "127.0.0.1"
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((address, 0))
        port = s.getsockname()[1]
    receiver = WebhookReceiver(port=port, host=address)
    receiver.start()
    return receiver, "own-host" if own else "loopback"


def test_a_try_to_the_hosts_own_address_is_not_sent(api, he, lines, moving_clock, client, db, settings, monkeypatch):
    """The subscription's host now points at this machine (as after a DNS change; the URL is written straight into
    the table): the check before the try refuses it and nothing reaches the receiver listening there; once the
    class is allowed, the same try goes out, so the receiver was reachable all along."""
    receiver, cls = own_receiver()
    try:
        default_blocking(settings, monkeypatch)
        monkeypatch.setattr(settings, "notify_retry_base_s", 0.1)
        hook = client.post("/api/v1/webhooks", headers=he.operator.headers,
                           json={"url": "https://10.20.30.40/hooks", "event_types": ["application.submitted"]})
        assert hook.status_code == 201, hook.text
        hook = hook.json()
        with db.sessionmaker() as s:
            s.execute(update(WebhookSubscription).where(WebhookSubscription.id == hook["id"])
                      .values(url=receiver.url))
            s.commit()
        api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
        outbox.relay(db)
        [d] = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=he.operator.headers).json()["items"]
        result = delivery.deliver(db, d["id"])
        assert result["status"] == "retrying" and receiver.requests == []
        [d] = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=he.operator.headers).json()["items"]
        assert d["last_error"] == "blocked-address"
        assert [(a["ok"], a["response_status"], a["error"]) for a in d["log"]] == [(False, None, "blocked-address")]

        if cls == "own-host":
            monkeypatch.setattr(settings, "webhook_block_own_addresses", False)
        else:
            monkeypatch.setattr(settings, "webhook_blocked_networks", ["169.254.0.0/16"])
        moving_clock.now += timedelta(seconds=result["retry_in_s"])
        assert delivery.deliver(db, d["id"])["status"] == "delivered"
        assert len(receiver.requests) == 1
    finally:
        receiver.stop()


def delivery_log(client, who, hook_id: str):
    r = client.get(f"/api/v1/webhooks/{hook_id}/deliveries", headers=who.headers)
    assert r.status_code == 200, r.text
    return r


def test_the_delivery_log_keeps_status_timing_and_error_class_only(api, he, lines, running_clock, client, db, session,
                                                                 receiver, settings, monkeypatch):
    monkeypatch.setattr(settings, "notify_retry_base_s", 0.05)
    receiver.failures, receiver.fail_with, receiver.fail_body = 10, 500, b"secret-internal-page: db=10.0.0.5"
    receiver.delay_s = 0.05
    answering = client.post("/api/v1/webhooks", headers=he.operator.headers,
                            json={"url": receiver.url, "event_types": ["application.submitted"]}).json()
    closed_port = socket.socket()
    closed_port.bind(("127.0.0.1", 0))               # bound, never listening: connections are refused
    closed = client.post("/api/v1/webhooks", headers=he.operator.headers,
                         json={"url": f"http://127.0.0.1:{closed_port.getsockname()[1]}/admin",
                               "event_types": ["application.submitted"]}).json()
    try:
        api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
        outbox.relay(db)
        ids = {}
        for hook in (answering, closed):
            [d] = delivery_log(client, he.operator, hook["id"]).json()["items"]
            ids[hook["id"]] = d["id"]
            assert delivery.deliver(db, d["id"])["status"] == "retrying"
    finally:
        closed_port.close()
    assert [r.status for r in receiver.requests] == [500]

    r = delivery_log(client, he.operator, answering["id"])
    assert "secret-internal-page" not in r.text and "10.0.0.5" not in r.text
    [d] = r.json()["items"]
    assert d["last_error"] == "http-error"
    [attempt] = d["log"]
    assert set(attempt) == {"number", "started_at", "finished_at", "duration_ms", "ok", "response_status", "error"}
    assert (attempt["number"], attempt["ok"], attempt["response_status"], attempt["error"]) == (
        1, False, 500, "http-error")
    assert 50 <= attempt["duration_ms"] < 10_000      # the receiver took 50 ms to answer

    r = delivery_log(client, he.operator, closed["id"])
    [d] = r.json()["items"]
    assert d["last_error"] == "connection-refused"
    [attempt] = d["log"]
    assert (attempt["ok"], attempt["response_status"], attempt["error"]) == (False, None, "connection-refused")
    assert 0 <= attempt["duration_ms"] < 10_000
    for text in ("Errno", "ConnectError", "Connection refused", "cannot connect", "127.0.0.1"):
        assert text not in r.text, text

    # nothing more is stored either
    rows = session.execute(select(DeliveryAttempt.response_status, DeliveryAttempt.response_excerpt,
                                  DeliveryAttempt.error, Delivery.last_error)
                           .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
                           .where(Delivery.id.in_(list(ids.values())))
                           .order_by(DeliveryAttempt.response_status.nulls_last())).all()
    assert [tuple(r) for r in rows] == [(500, None, "http-error", "http-error"),
                                        (None, None, "connection-refused", "connection-refused")]

    # a receiver that answers too slowly: "timeout"
    monkeypatch.setattr(settings, "webhook_timeout_s", 0.2)
    receiver.delay_s = 1.0
    running_clock.offset += timedelta(seconds=0.1)              # the retry is due
    assert delivery.deliver(db, ids[answering["id"]])["status"] == "retrying"
    [d] = delivery_log(client, he.operator, answering["id"]).json()["items"]
    assert [(a["response_status"], a["error"]) for a in d["log"]] == [(500, "http-error"), (None, "timeout")]


def test_rows_written_before_keep_their_text_in_the_table_but_the_log_shows_classes(
        api, he, lines, clock, client, db, session, receiver):
    hook = client.post("/api/v1/webhooks", headers=he.operator.headers,
                       json={"url": receiver.url, "event_types": ["application.submitted"]}).json()
    api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    outbox.relay(db)
    [d] = delivery_log(client, he.operator, hook["id"]).json()["items"]
    old = [("HTTP 500", 500, "secret-internal-page"),
           ("cannot connect to intranet.example: 10.1.2.3: ConnectError: [Errno 111] Connection refused", None, None),
           ("ReadTimeout: timed out", None, None),
           ("ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", None, None),
           ("not sent: the name intranet.example does not resolve", None, None),
           ("not sent: 127.0.0.1 is in a network webhooks may not reach (loopback, ...)", None, None),
           ("RemoteProtocolError: Server disconnected without sending a response.", None, None),
           ("the webhook subscription was deleted", None, None),
           ("KeyError: 'secret-internal-page'", None, None)]
    row = session.get(Delivery, d["id"])
    row.last_error = old[1][0]
    for n, (error, status, excerpt) in enumerate(old, start=1):
        session.add(DeliveryAttempt(delivery_id=row.id, number=n, started_at=row.created_at,
                                    finished_at=row.created_at, ok=False, response_status=status,
                                    response_excerpt=excerpt, error=error))
    session.flush()
    r = delivery_log(client, he.operator, hook["id"])
    for text in ("secret-internal-page", "10.1.2.3", "Errno", "intranet.example", "CERTIFICATE", "KeyError"):
        assert text not in r.text, text
    [d] = r.json()["items"]
    assert d["last_error"] == "connection-refused"
    assert [a["error"] for a in d["log"]] == [
        "http-error", "connection-refused", "timeout", "tls-error", "dns-error", "blocked-address", "protocol-error",
        "subscription-deleted", "internal-error"]
    for cls in delivery.ERROR_CLASSES:               # the API documents every class there is
        assert cls in ERROR_CLASS_DOC
