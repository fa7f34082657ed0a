"""The administration API (accounts/admin.py has the rules): users and organisations, for tenant admins (the whole
tenant) and organisations' admins (their own organisation)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from accounts import admin
from accounts.events import Origin
from accounts.schemas import (
    AdminOrganisationOut,
    AdminOrganisationPage,
    AdminUserOut,
    AdminUserPage,
    OrganisationCreate,
    OrganisationPatch,
    OrganisationRef,
    UserInvite,
    UserPatch,
)
from breitband.auth import require
from breitband.db import get_read_session, write_session
from breitband.errors import PROBLEM_JSON
from breitband.identity import Principal
from breitband.models import Role

router = APIRouter(prefix="/api/v1/admin", tags=["administration"])

ADMINS = require(Role.tenant_admin, Role.authority_admin, Role.operator_admin)
TENANT_ADMIN = require(Role.tenant_admin)
NO_STORE = {"Cache-Control": "no-store"}
PROBLEMS = {status: {"content": {PROBLEM_JSON: {}}, "description": text} for status, text in (
    (401, "Not signed in"),
    (403, "Not an admin, outside the caller's organisation (organisation-outside-scope), a role the caller cannot "
          "give (role-not-grantable), the caller's own account (own-account)"),
    (404, "No such user or organisation among those the caller administers"),
    (409, "user-exists, organisation-exists, last-organisation-admin, last-tenant-admin, password-already-set, "
          "user-deactivated"),
    (422, "Invalid input, or a role that does not belong to the organisation's kind (role-not-for-organisation)"))}
LIMIT = Query(100, description="Page size, 1-500")
OFFSET = Query(0, description="Items to skip")
Q = Query(None, max_length=200, description="Part of the name or e-mail address (case-insensitive)")


def user_out(row: admin.UserRow) -> AdminUserOut:
    u, o = row.user, row.organisation
    return AdminUserOut(id=u.id, email=u.email, name=u.name, job_title=u.job_title, role=u.role, active=u.active,
                        organisation=OrganisationRef(id=o.id, name=o.name, kind=o.kind), created_at=u.created_at,
                        last_sign_in_at=u.last_sign_in_at, password_set=u.password_hash is not None,
                        totp_enabled=u.totp_enabled_at is not None, oidc_linked=u.oidc_subject is not None,
                        invitation_expires_at=row.invitation_expires_at)


def organisation_out(row: admin.OrganisationRow) -> AdminOrganisationOut:
    o = row.organisation
    gaps = ([k for k in ("address", "phone", "email") if not getattr(o, k)] if o.kind == "road_authority" else [])
    return AdminOrganisationOut(id=o.id, kind=o.kind, name=o.name, email=o.email, phone=o.phone, address=o.address,
                                website=o.website, letter_gaps=gaps, created_at=o.created_at, members=row.members,
                                active_members=row.active_members)


def _user_answer(session: Session, user, status: int = 200) -> JSONResponse:
    body = user_out(admin.user_row(session, user)).model_dump(mode="json")
    headers = {**NO_STORE, **({"Location": f"/api/v1/admin/users/{user.id}"} if status == 201 else {})}
    return JSONResponse(body, status_code=status, headers=headers)


# --- users --------------------------------------------------------------------------------------------------------

@router.get("/users", response_model=AdminUserPage, responses=PROBLEMS,
            summary="Users the caller administers, by name (tenant admin: the tenant; organisation admin: own "
                    "organisation)")
def list_users(response: Response, organisation_id: uuid.UUID | None = Query(None), role: str | None = Query(None),
               active: bool | None = Query(None), q: str | None = Q, limit: int = LIMIT, offset: int = OFFSET,
               principal: Principal = Depends(ADMINS), session: Session = Depends(get_read_session)) -> AdminUserPage:
    rows, total = admin.list_users(session, principal, organisation_id=organisation_id, role=role, active=active,
                                   q=q, limit=limit, offset=offset)
    response.headers.update(NO_STORE)
    return AdminUserPage(items=[user_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/users/{user_id}", response_model=AdminUserOut, responses=PROBLEMS,
            summary="One user the caller administers")
def get_user(user_id: uuid.UUID, principal: Principal = Depends(ADMINS),
             session: Session = Depends(get_read_session)) -> JSONResponse:
    return _user_answer(session, admin.get_user(session, principal, user_id))


@router.post("/users", status_code=201, response_model=AdminUserOut, responses=PROBLEMS,
             summary="Invite a user: created without a password, the invitation link e-mailed (valid 24 h)")
def invite_user(request: Request, data: UserInvite, principal: Principal = Depends(ADMINS),
                session: Session = write_session) -> JSONResponse:
    user = admin.invite_user(session, principal, Origin.of(request), email=data.email, name=data.name,
                             role=data.role, organisation_id=data.organisation_id)
    return _user_answer(session, user, 201)


@router.patch("/users/{user_id}", response_model=AdminUserOut, responses=PROBLEMS,
              summary="Rename a user, set their function (job title) or change their role (a role change ends "
                      "their sessions)")
def patch_user(request: Request, user_id: uuid.UUID, data: UserPatch, principal: Principal = Depends(ADMINS),
               session: Session = write_session) -> JSONResponse:
    user = admin.change_user(session, principal, user_id, Origin.of(request), name=data.name, role=data.role,
                             job_title=data.job_title)
    return _user_answer(session, user)


@router.post("/users/{user_id}/deactivate", response_model=AdminUserOut, responses=PROBLEMS,
             summary="Deactivate a user: sessions end, tokens are refused from the next request on")
def deactivate_user(request: Request, user_id: uuid.UUID, principal: Principal = Depends(ADMINS),
                    session: Session = write_session) -> JSONResponse:
    user, _ = admin.set_active(session, principal, user_id, False, Origin.of(request))
    return _user_answer(session, user)


@router.post("/users/{user_id}/reactivate", response_model=AdminUserOut, responses=PROBLEMS,
             summary="Reactivate a user (their unrevoked, unexpired tokens work again)")
def reactivate_user(request: Request, user_id: uuid.UUID, principal: Principal = Depends(ADMINS),
                    session: Session = write_session) -> JSONResponse:
    user, _ = admin.set_active(session, principal, user_id, True, Origin.of(request))
    return _user_answer(session, user)


@router.post("/users/{user_id}/invitation", response_model=AdminUserOut, responses=PROBLEMS,
             summary="Send a new invitation link to a user without a password (older links stop working)")
def resend_invitation(request: Request, user_id: uuid.UUID, principal: Principal = Depends(ADMINS),
                      session: Session = write_session) -> JSONResponse:
    return _user_answer(session, admin.resend_invitation(session, principal, user_id, Origin.of(request)))


# --- organisations ------------------------------------------------------------------------------------------------

@router.get("/organisations", response_model=AdminOrganisationPage, responses=PROBLEMS,
            summary="Organisations the caller administers with member counts (tenant admin: all; organisation "
                    "admin: own)")
def list_organisations(response: Response, kind: str | None = Query(None), q: str | None = Q, limit: int = LIMIT,
                       offset: int = OFFSET, principal: Principal = Depends(ADMINS),
                       session: Session = Depends(get_read_session)) -> AdminOrganisationPage:
    rows, total = admin.list_organisations(session, principal, kind=kind, q=q, limit=limit, offset=offset)
    response.headers.update(NO_STORE)
    return AdminOrganisationPage(items=[organisation_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.post("/organisations", status_code=201, response_model=AdminOrganisationOut, responses=PROBLEMS,
             summary="Create an organisation (tenant admin)")
def create_organisation(request: Request, data: OrganisationCreate, principal: Principal = Depends(TENANT_ADMIN),
                        session: Session = write_session) -> JSONResponse:
    org = admin.create_organisation(session, principal, Origin.of(request), kind=data.kind, name=data.name,
                                    email=data.email, phone=data.phone, address=data.address, website=data.website)
    body = organisation_out(admin.organisation_row(session, org)).model_dump(mode="json")
    return JSONResponse(body, status_code=201, headers={"Location": f"/api/v1/admin/organisations/{org.id}"})


@router.patch("/organisations/{org_id}", response_model=AdminOrganisationOut, responses=PROBLEMS,
              summary="Change an organisation (tenant admin: any field of any; organisation admin: e-mail, phone, "
                      "address of its own)")
def patch_organisation(request: Request, org_id: uuid.UUID, data: OrganisationPatch,
                       principal: Principal = Depends(ADMINS), session: Session = write_session
                       ) -> AdminOrganisationOut:
    org = admin.change_organisation(session, principal, org_id, Origin.of(request), data.model_dump(exclude_unset=True))
    return organisation_out(admin.organisation_row(session, org))
