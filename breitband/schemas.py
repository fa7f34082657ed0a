"""Pydantic schemas of the shell's API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


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
    token_expires_at: datetime | None = Field(description="When the token of this call expires (null: never, "
                                                          "only tokens made before expiry became the default)")
    totp_enabled: bool | None = Field(default=None, description="Whether the second factor (TOTP) is on; given in "
                                      "the answers about a browser session (sign-in, GET /api/v1/auth/session)")
    totp_required: bool | None = Field(default=None, description="Whether the tenant requires the second factor for "
                                       "the user's role (then it cannot be turned off); as totp_enabled")


class ReadinessOut(BaseModel):
    ready: bool
    checks: dict[str, dict]


class TokenOut(BaseModel):
    """An API token as its owner or a tenant admin sees it: never its hash or secret."""

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The first characters of the secret, to recognise it")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute")
    revoked_at: datetime | None
    scope: Literal["read", "write"] = Field(description="'read': GET and HEAD only (e.g. for QGIS); 'write': "
                                        "everything the user's role may do")
    current: bool = Field(description="Whether this is the token the request was made with")


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="What the token is for, e.g. 'QGIS'")
    expires_in_days: int | None = Field(default=None, description="Days until it expires; default: the setting "
                                        "token_default_expiry_days (90), at most token_max_expiry_days (365)")
    scope: Literal["read", "write"] = Field(default="write", description="'read' for tools that only read (GIS "
                                            "desktops, dashboards): refused on every POST, PUT, PATCH and DELETE")


class TokenCreated(TokenOut):
    token: str = Field(description="The secret (Authorization: Bearer <token>). Shown once; it is not stored")
