"""Pydantic schemas of the shell's API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class OrganisationOut(BaseModel):
    id: uuid.UUID
    tenant_key: str
    kind: str
    name: str
    email: str | None = None
    phone: str | None = None
    address: str | None = None


class TenantOut(BaseModel):
    key: str
    name: str
    crs: str


class MeOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    role: str
    tenant: TenantOut
    organisation: OrganisationOut
    token_id: uuid.UUID | None


class ReadinessOut(BaseModel):
    ready: bool
    checks: dict[str, dict]


class TokenOut(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
