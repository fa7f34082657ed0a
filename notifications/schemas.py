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


class AttemptOut(BaseModel):
    number: int
    started_at: datetime
    finished_at: datetime
    ok: bool
    response_status: int | None
    response_excerpt: str | None
    error: str | None


class DeliveryOut(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    log: list[AttemptOut]


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    limit: int
    offset: int
    has_more: bool
