"""What one try of a delivery needs (``Job``) and what it came to (``Outcome``).

A module of its own so that the delivery loop (``notifications.delivery``) and the channels that do the sending
(``notifications.email``, ``notifications.webhooks``) share these types without importing each other: the channels
know nothing of claims, leases and back-off, and the delivery loop calls them through its table of senders.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any


@dataclass
class Job:
    """Everything a try needs, read in the claim transaction."""

    delivery_id: uuid.UUID
    channel: str
    attempt: int
    tenant_key: str
    target: str
    event: dict[str, Any]
    context: dict[str, Any]
    url: str | None = None
    secret: str | None = None
    request_id: str | None = None       # of the HTTP request that wrote the event (X-Request-ID)


@dataclass
class Outcome:
    ok: bool
    response_status: int | None = None
    response_excerpt: str | None = None     # e-mail only (the SMTP server's reply); a webhook's answer is not kept
    error: str | None = None                # for a webhook one of notifications.delivery.ERROR_CLASSES
    permanent: bool = False         # retrying cannot help (e.g. the subscription was deleted)
