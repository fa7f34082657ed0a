"""Pydantic schemas of the accounts API: administration of users and organisations, invitation and reset links."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RoleName = Literal["operator_member", "operator_admin", "authority_reviewer", "authority_admin", "tenant_admin"]
KindName = Literal["operator", "road_authority", "participating_body", "operating_office"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- users --------------------------------------------------------------------------------------------------------

class OrganisationRef(BaseModel):
    id: uuid.UUID
    name: str
    kind: str


class AdminUserOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    job_title: str | None = Field(default=None, description="Function, printed with the name in decision documents")
    role: str
    active: bool
    organisation: OrganisationRef
    created_at: datetime
    last_sign_in_at: datetime | None
    password_set: bool = Field(description="Whether the user has set a password (an invited user has not yet)")
    totp_enabled: bool = Field(description="Whether the user signs in with a second factor")
    oidc_linked: bool = Field(description="Whether the user has signed in through the tenant's identity provider")
    invitation_expires_at: datetime | None = Field(description="Until when the open invitation link works; null: "
                                                   "none open")


class AdminUserPage(BaseModel):
    items: list[AdminUserOut]
    total: int = Field(description="How many users match the filters")
    limit: int
    offset: int


class UserInvite(Strict):
    email: str = Field(min_length=3, max_length=320)
    name: str = Field(min_length=1, max_length=200)
    role: RoleName
    organisation_id: uuid.UUID


class UserPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    job_title: str | None = Field(default=None, max_length=200, description="Function in the organisation, printed "
                                  "under the official's name in decision documents; empty string clears it")
    role: RoleName | None = Field(default=None, description="A change ends the user's sessions")


# --- organisations ------------------------------------------------------------------------------------------------

class AdminOrganisationOut(BaseModel):
    id: uuid.UUID
    kind: str
    name: str
    email: str | None = Field(description="The functional mailbox (notices go there rather than to each member)")
    phone: str | None
    address: str | None = Field(description="Postal address, one line per line of a letter")
    website: str | None = None
    letter_gaps: list[str] = Field(default_factory=list, description="What a decision letter of this authority "
                                   "lacks (address, phone, email): it is laid out without it; enter it")
    created_at: datetime
    members: int = Field(description="Users of the organisation, deactivated ones included")
    active_members: int


class AdminOrganisationPage(BaseModel):
    items: list[AdminOrganisationOut]
    total: int
    limit: int
    offset: int


class OrganisationCreate(Strict):
    kind: KindName
    name: str = Field(min_length=1, max_length=300)
    email: str | None = Field(default=None, max_length=320, description="Functional mailbox, e.g. "
                              "tiefbau@stadt.example")
    phone: str | None = Field(default=None, max_length=64)
    address: str | None = Field(default=None, max_length=500)
    website: str | None = Field(default=None, max_length=300)


class OrganisationPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=300, description="Tenant admins only")
    email: str | None = Field(default=None, max_length=320, description="Functional mailbox; empty string clears it")
    phone: str | None = Field(default=None, max_length=64)
    address: str | None = Field(default=None, max_length=500, description="Postal address; lines separated by "
                                "newlines (or commas)")
    website: str | None = Field(default=None, max_length=300, description="https://… shown in the letterhead")


# --- links ----------------------------------------------------------------------------------------------------------

class PasswordResetIn(Strict):
    tenant: str = Field(min_length=1, max_length=16)
    email: str = Field(min_length=1, max_length=320)


class AcceptedOut(BaseModel):
    detail: str


class LinkOut(BaseModel):
    purpose: Literal["invitation", "reset"]
    email: str
    name: str
    expires_at: datetime
    totp_required: bool = Field(description="The account has a second factor: send totp_code with the password")


class LinkRedeem(Strict):
    password: str = Field(min_length=1, max_length=1024)
    totp_code: str | None = Field(default=None, max_length=32, description="Needed when the account has a second "
                                  "factor")
