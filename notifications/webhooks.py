"""Webhooks: subscriptions per organisation, signed POSTs, retries (see ``notifications.delivery``).

A delivery is a POST of the event as JSON (``{"id", "seq", "type", "tenant", "created_at", "data"}``) with

* ``Breitband-Event-Id``, ``Breitband-Event-Type``, ``Breitband-Delivery-Id``, ``Breitband-Delivery-Attempt``;
* ``Breitband-Timestamp``: Unix seconds when this try was signed;
* ``Breitband-Signature``: ``v1=`` + hex HMAC-SHA256 with the subscription's secret over
  ``<timestamp>.<raw body>``.

A receiver recomputes the HMAC over the raw body (``verify_signature``), rejects timestamps older than a few minutes
(replays), answers 2xx quickly, and dedupes on the event id: a delivery that timed out is sent again. Anything but
2xx is retried with exponential backoff for up to 24 h; every try is in the delivery log.

URLs whose host is, or resolves to, an address in ``BREITBAND_WEBHOOK_BLOCKED_NETWORKS`` (loopback, link-local with
the cloud metadata address, multicast) are refused on subscription and checked again before each try; redirects are
not followed. Each try resolves the name once, checks every address, and connects to those very addresses (the URL's
host replaced by the address, the name kept in the Host header and in TLS SNI and certificate checks): a name that
changes its address between the check and the connection (DNS rebinding) cannot lead a try into a blocked network.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from breitband.errors import NotFound, UnprocessableEntity
from breitband.identity import Principal
from breitband.settings import Settings, get_settings
from notifications.models import WebhookSubscription

if TYPE_CHECKING:
    from notifications.delivery import Job, Outcome

SIGNATURE_HEADER = "Breitband-Signature"
TIMESTAMP_HEADER = "Breitband-Timestamp"


def body_of(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, header: str, *, tolerance_s: float = 300,
                     now: float | None = None) -> bool:
    """What a receiver does: constant-time compare, and refuse stale timestamps."""
    try:
        age = abs((now or time.time()) - int(timestamp))
    except (TypeError, ValueError):
        return False
    return age <= tolerance_s and hmac.compare_digest(signature(secret, timestamp, body), header or "")


def post_webhook(job: "Job", settings: Settings) -> "Outcome":
    from notifications.delivery import Outcome

    body = body_of(job.event)
    ts = int(time.time())
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
    parts = urlsplit(job.url)
    host = parts.hostname or ""
    addresses = resolve(host)
    if not addresses:
        return Outcome(ok=False, error=f"not sent: the name {host} does not resolve")
    address = first_blocked(addresses, settings)  # again now: the name may point elsewhere than on subscription
    if address is not None:
        return Outcome(ok=False, error=f"not sent: {_blocked_message(host, address)}")
    userinfo, _, headers["Host"] = parts.netloc.rpartition("@")
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    failures = []
    with httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False) as client:
        for target in addresses:        # the checked addresses, in the resolver's order, as a connection would try
            literal = f"[{target}]" if target.version == 6 else str(target)
            netloc = (f"{userinfo}@" if userinfo else "") + literal + (f":{parts.port}" if parts.port else "")
            try:
                response = client.post(parts._replace(netloc=netloc).geturl(), content=body, headers=headers,
                                       extensions=extensions)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failures.append(f"{target}: {type(exc).__name__}: {exc}")
                continue
            except httpx.HTTPError as exc:
                return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:2000])
            excerpt = response.text[:500] if response.content else None
            if 200 <= response.status_code < 300:
                return Outcome(ok=True, response_status=response.status_code, response_excerpt=excerpt)
            return Outcome(ok=False, response_status=response.status_code, response_excerpt=excerpt,
                           error=f"HTTP {response.status_code}")
    return Outcome(ok=False, error=f"cannot connect to {host}: " + "; ".join(failures)[:1900])


# --- subscriptions (service; never commits) ----------------------------------------------------------------------

def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def resolve(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses of ``host`` (an IP literal, or a name resolved now), in the resolver's order, IPv4-mapped IPv6
    addresses as IPv4; [] when the name does not resolve (yet)."""
    try:
        found = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError):
            return []
        found = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    addresses = []
    for address in found:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if address not in addresses:
            addresses.append(address)
    return addresses


def first_blocked(addresses, settings: Settings) -> str | None:
    """The first of ``addresses`` that lies in one of ``settings.webhook_blocked_networks``, or None."""
    networks = [ipaddress.ip_network(n, strict=False) for n in settings.webhook_blocked_networks]
    for address in sorted(addresses, key=str):
        if any(address.version == net.version and address in net for net in networks):
            return str(address)
    return None


def blocked_address(host: str, settings: Settings) -> str | None:
    """The first address of ``host`` that lies in a blocked network; None when none does or the name does not
    resolve (yet)."""
    return first_blocked(resolve(host), settings)


def _blocked_message(host: str, address: str) -> str:
    where = host if host == address else f"{host} resolves to {address}, which"
    return (f"{where} is in a network webhooks may not reach (loopback, link-local or cloud metadata, "
            "multicast; setting BREITBAND_WEBHOOK_BLOCKED_NETWORKS)")


def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    try:
        parts.port
    except ValueError:
        raise UnprocessableEntity("url: the port is not a number from 0 to 65535", type="invalid-webhook-url",
                                  field="url") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnprocessableEntity("url: an absolute http(s) URL is required, e.g. https://gis.example/hooks/breitband",
                                  type="invalid-webhook-url", field="url")
    if parts.username or parts.password:
        raise UnprocessableEntity("url: no credentials in the URL; verify the signature instead",
                                  type="invalid-webhook-url", field="url")
    address = blocked_address(parts.hostname, get_settings())
    if address is not None:
        raise UnprocessableEntity(f"url: {_blocked_message(parts.hostname, address)}", type="webhook-url-blocked",
                                  field="url", address=address)
    return url


def check_types(types: list[str] | None) -> list[str]:
    out = []
    for t in types or []:
        t = t.strip()
        if not t or len(t) > 64 or not all(ch.isalnum() or ch in "._*-" for ch in t):
            raise UnprocessableEntity(f"event_types: {t!r} is not an event type or pattern such as case.* ",
                                      type="validation-error", field="event_types")
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
