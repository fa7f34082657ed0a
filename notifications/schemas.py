"""Pydantic schemas of the notification API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EventOut(BaseModel):
    id: uuid.UUID
    seq: int
    type: str
    tenant: str
    created_at: datetime
    published_at: datetime
    cursor: str = Field(description="Position in the caller's feed; pass the last one as ?after=")
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str
    has_more: bool


class WebhookCreate(Strict):
    url: str = Field(min_length=1, max_length=2000)
    event_types: list[str] = Field(default_factory=list, description="Event types or patterns such as case.*; "
                                                                     "empty: every event the organisation may see")
    description: str | None = Field(None, max_length=500)
    active: bool = True


class WebhookPatch(Strict):
    url: str | None = Field(None, max_length=2000)
    event_types: list[str] | None = None
    description: str | None = Field(None, max_length=500)
    active: bool | None = None


class WebhookOut(BaseModel):
    id: uuid.UUID
    organisation_id: uuid.UUID
    url: str
    event_types: list[str]
    description: str | None
    active: bool
    created_at: datetime
    updated_at: datetime
    deliveries: dict[str, int] = Field(description="Number of deliveries per status")


class WebhookCreated(WebhookOut):
    secret: str = Field(description="The HMAC-SHA256 signing secret; shown only now")


ERROR_CLASS_DOC = ("Generic error class, one of: http-error, timeout, connection-refused, connection-error, "
                   "tls-error, protocol-error, dns-error, blocked-address, subscription-deleted, internal-error")


class AttemptOut(BaseModel):
    """One try: the receiver's HTTP status and how long the try took. The response body and error texts are not
    kept (the log must not tell what answers at an address)."""

    number: int
    started_at: datetime
    finished_at: datetime
    duration_ms: int = Field(description="How long the try took (connecting, sending, the status line)")
    ok: bool
    response_status: int | None = Field(description="HTTP status of the receiver's answer; null if there was none")
    error: str | None = Field(description=ERROR_CLASS_DOC)


class DeliveryOut(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None = Field(description="The error class of the last failed try. " + ERROR_CLASS_DOC)
    log: list[AttemptOut]


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    limit: int
    offset: int
    has_more: bool
