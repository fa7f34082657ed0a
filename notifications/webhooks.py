"""Webhooks: subscriptions per organisation, signed POSTs, retries (see ``notifications.delivery``).

A delivery is a POST of the event as JSON (``{"id", "seq", "type", "tenant", "created_at", "data"}``) with

* ``Breitband-Event-Id``, ``Breitband-Event-Type``, ``Breitband-Delivery-Id``, ``Breitband-Delivery-Attempt``;
* ``Breitband-Timestamp``: Unix seconds when this try was signed;
* ``Breitband-Signature``: ``v1=`` + hex HMAC-SHA256 with the subscription's secret over
  ``<timestamp>.<raw body>``.

A receiver recomputes the HMAC over the raw body (``verify_signature``), rejects timestamps older than a few minutes
(replays), answers 2xx quickly, and dedupes on the event id: a delivery that timed out is sent again. Anything but
2xx is retried with exponential backoff for up to 24 h; every try is in the delivery log.

URLs whose host is, or resolves to, an address webhooks may not reach are refused on subscription (422
``webhook-url-blocked`` naming the address and its class) and checked again before each try
(``notifications.addresses``: cloud metadata addresses and this host's own addresses always, the networks of
``BREITBAND_WEBHOOK_BLOCKED_NETWORKS`` (loopback, link-local, multicast), IPv4 addresses written as numbers or hidden
in IPv6 forms); redirects are not followed. Each try resolves the name once, checks every address, and connects to
those very addresses (the URL's host replaced by the address, the name kept in the Host header and in TLS SNI and
certificate checks): a name that changes its address between the check and the connection (DNS rebinding) cannot
lead a try into a blocked network.

The delivery log keeps of each try only the HTTP status, the timing and a generic error class (``ERROR_CLASSES`` in
``notifications.delivery``): no response body, no exception text, so that it cannot be used to read or map what
answers at an address.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import ssl
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from breitband import clock
from breitband.errors import NotFound, UnprocessableEntity
from breitband.identity import Principal
from breitband.settings import Settings, get_settings
from notifications import addresses
from notifications.jobs import Job, Outcome
from notifications.models import WebhookSubscription

SIGNATURE_HEADER = "Breitband-Signature"
TIMESTAMP_HEADER = "Breitband-Timestamp"


def body_of(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, header: str, *, tolerance_s: float = 300,
                     now: float | None = None) -> bool:
    """What a receiver does: constant-time compare, and refuse stale timestamps. ``now`` (Unix seconds) is the time
    of receipt; by default the service's clock, the one the signing side stamps with."""
    try:
        age = abs((now or clock.now().timestamp()) - int(timestamp))
    except (TypeError, ValueError):
        return False
    return age <= tolerance_s and hmac.compare_digest(signature(secret, timestamp, body), header or "")


def post_webhook(job: Job, settings: Settings) -> Outcome:
    body = body_of(job.event)
    ts = int(clock.now().timestamp())
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Breitband-Webhooks/1",
        "Breitband-Event-Id": job.event["id"],
        "Breitband-Event-Type": job.event["type"],
        "Breitband-Delivery-Id": str(job.delivery_id),
        "Breitband-Delivery-Attempt": str(job.attempt),
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: signature(job.secret or "", ts, body),
    }
    if job.request_id:
        headers["Breitband-Request-Id"] = job.request_id
    parts = urlsplit(job.url)
    host = parts.hostname or ""
    if addresses.blocked_name(host) is not None:
        return Outcome(ok=False, error="blocked-address")
    targets = resolve(host)
    if not targets:
        return Outcome(ok=False, error="dns-error")
    if addresses.first_blocked(targets, settings) is not None:   # again now: the name may point elsewhere now
        return Outcome(ok=False, error="blocked-address")
    userinfo, _, headers["Host"] = parts.netloc.rpartition("@")
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    failures: list[str] = []
    with httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False) as client:
        for target in targets:          # the checked addresses, in the resolver's order, as a connection would try
            literal = f"[{target}]" if target.version == 6 else str(target)
            netloc = (f"{userinfo}@" if userinfo else "") + literal + (f":{parts.port}" if parts.port else "")
            try:
                # Only the status is read: the body is closed unread (never stored, never shown).
                with client.stream("POST", parts._replace(netloc=netloc).geturl(), content=body, headers=headers,
                                   extensions=extensions) as response:
                    status = response.status_code
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failures.append(error_class(exc))
                continue
            except httpx.HTTPError as exc:
                return Outcome(ok=False, error=error_class(exc))
            if 200 <= status < 300:
                return Outcome(ok=True, response_status=status)
            return Outcome(ok=False, response_status=status, error="http-error")
    return Outcome(ok=False, error=failures[0] if len(set(failures)) == 1 else "connection-error")


def error_class(exc: BaseException) -> str:
    """The generic class of a failed connection or request (``notifications.delivery.ERROR_CLASSES``), from the
    exception and its causes; never its text."""
    chain, seen = [], exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return "tls-error"
    if isinstance(exc, httpx.TimeoutException) or any(isinstance(e, (TimeoutError, socket.timeout)) for e in chain):
        return "timeout"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection-refused"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "dns-error"
    if isinstance(exc, (httpx.ConnectError, httpx.NetworkError)):
        return "connection-error"
    if isinstance(exc, (httpx.ProtocolError, httpx.DecodingError, httpx.TooManyRedirects)):
        return "protocol-error"
    return "connection-error"


# --- subscriptions (service; never commits) ----------------------------------------------------------------------

def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def resolve(host: str) -> list[addresses.Address]:
    """The addresses of ``host`` (an IP literal in any notation, or a name resolved now), in the resolver's order,
    IPv4-mapped IPv6 addresses as IPv4, zone ids dropped; [] when the name does not resolve (yet)."""
    written = addresses.literal(host)
    if written is not None:
        return [written]
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    found: list[addresses.Address] = []
    for info in infos:
        address = addresses.plain(ipaddress.ip_address(info[4][0].split("%")[0]))
        if address not in found:
            found.append(address)
    return found


def blocked(host: str, settings: Settings) -> addresses.Blocked | None:
    """Why ``host`` may not be reached (its name, or the first blocked address it resolves to); None when nothing
    is blocked or the name does not resolve (yet)."""
    return addresses.blocked_name(host) or addresses.first_blocked(resolve(host), settings)


def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    try:
        _ = parts.port   # parsing the port raises for one that is not a number from 0 to 65535
    except ValueError:
        raise UnprocessableEntity("url: the port is not a number from 0 to 65535", type="invalid-webhook-url",
                                  field="url") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnprocessableEntity("url: an absolute http(s) URL is required, e.g. https://gis.example/hooks/breitband",
                                  type="invalid-webhook-url", field="url")
    if parts.username or parts.password:
        raise UnprocessableEntity("url: no credentials in the URL; verify the signature instead",
                                  type="invalid-webhook-url", field="url")
    reason = blocked(parts.hostname, get_settings())
    if reason is not None:
        raise UnprocessableEntity(f"url: {reason.describe(parts.hostname)}", type="webhook-url-blocked",
                                  field="url", **reason.problem_extra())
    return url


def check_types(types: list[str] | None, field: str = "event_types") -> list[str]:
    """Event types or patterns as given by a client (subscriptions, the feed's filter): letters, digits and ._*-,
    at most 64 characters each; anything else is a 422 naming the field and the value."""
    out = []
    for t in types or []:
        t = t.strip()
        if not t or len(t) > 64 or not all(ch.isascii() and (ch.isalnum() or ch in "._*-") for ch in t):
            raise UnprocessableEntity(f"{field}: {t!r} is not an event type or pattern such as case.* ",
                                      type="validation-error", field=field)
        out.append(t)
    return sorted(set(out))


def readable(principal: Principal):
    return select(WebhookSubscription).where(WebhookSubscription.organisation_id == principal.organisation_id,
                                             WebhookSubscription.deleted_at.is_(None))


def get(session: Session, principal: Principal, sub_id: uuid.UUID, *, for_update: bool = False) -> WebhookSubscription:
    stmt = readable(principal).where(WebhookSubscription.id == sub_id)
    if for_update:
        stmt = stmt.with_for_update()
    sub = session.scalars(stmt).first()
    if sub is None:
        raise NotFound(f"No webhook subscription {sub_id}", type="webhook-not-found")
    return sub


def create(session: Session, principal: Principal, url: str, event_types: list[str] | None,
           description: str | None, active: bool, now: datetime) -> WebhookSubscription:
    sub = WebhookSubscription(id=uuid.uuid4(), tenant_key=principal.tenant_key,
                              organisation_id=principal.organisation_id, url=check_url(url),
                              secret=new_secret(), event_types=check_types(event_types), description=description,
                              active=active, created_by=principal.user_id, created_at=now, updated_at=now)
    session.add(sub)
    session.flush()
    return sub


def update(session: Session, sub: WebhookSubscription, changes: dict[str, Any], now: datetime) -> WebhookSubscription:
    if "url" in changes:
        sub.url = check_url(changes["url"] or "")
    if "event_types" in changes:
        sub.event_types = check_types(changes["event_types"])
    if "description" in changes:
        sub.description = changes["description"]
    if "active" in changes and changes["active"] is not None:
        sub.active = bool(changes["active"])
    sub.updated_at = now
    session.flush()
    return sub


def rotate_secret(session: Session, sub: WebhookSubscription, now: datetime) -> WebhookSubscription:
    sub.secret = new_secret()
    sub.updated_at = now
    session.flush()
    return sub


def delete(session: Session, sub: WebhookSubscription, now: datetime) -> None:
    """Soft delete: nothing is sent any more; the deliveries stay in the database for the record."""
    sub.deleted_at = now
    sub.active = False
    sub.updated_at = now
    session.flush()
