"""The shell's endpoints: health, readiness, the caller, tenants and organisations (API tokens and signing in:
accounts/endpoints.py)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from breitband import identity
from breitband.auth import credentials_sent, current_principal, require
from breitband.db import get_read_session
from breitband.errors import PROBLEM_JSON
from breitband.health import public_readiness, readiness
from breitband.identity import Principal
from breitband.models import Organisation, Role
from breitband.schemas import MeOut, OrganisationOut, ReadinessOut, TenantOut

health_router = APIRouter(tags=["health"])
router = APIRouter(prefix="/api/v1", tags=["identity"])


@health_router.get("/healthz", summary="The process is up")
def healthz() -> dict:
    return {"status": "ok"}


@health_router.get("/readyz", response_model=ReadinessOut, summary="Database, PostGIS, migrations, broker, worker",
                   description="Without a token: `ready` and each check's `ok` only. With a tenant admin's token "
                               "also each check's `detail` (versions, migration heads, workers, errors) and `ms`. "
                               "A token that is sent must be valid (401 otherwise).",
                   responses={503: {"model": ReadinessOut}, 401: {"content": {PROBLEM_JSON: {}},
                                                                  "description": "An invalid token was sent"}})
def readyz(request: Request) -> JSONResponse:
    detailed = False
    if credentials_sent(request):
        detailed = current_principal(request).role is Role.tenant_admin
    result = readiness(request.app.state.settings, request.app.state.db)
    if not detailed:
        result = public_readiness(result)
    return JSONResponse(result, status_code=200 if result["ready"] else 503)


def org_out(org: Organisation) -> OrganisationOut:
    return OrganisationOut(id=org.id, tenant_key=org.tenant_key, kind=org.kind, name=org.name, email=org.email,
                           phone=org.phone, address=org.address)


@router.get("/me", response_model=MeOut, summary="Who am I (any role)")
def me(principal: Principal = Depends(require()), session: Session = Depends(get_read_session)) -> MeOut:
    tenant = identity.get_tenant(session, principal.tenant_key)
    org = identity.get_readable_organisation(session, principal, principal.organisation_id)
    return MeOut(id=principal.user_id, email=principal.email, name=principal.name, role=principal.role.value,
                 tenant=TenantOut(key=tenant.key, name=tenant.name, crs=f"EPSG:{tenant.srid}"),
                 organisation=org_out(org), token_id=principal.token_id,
                 token_expires_at=principal.token_expires_at)


@router.get("/organisations", response_model=list[OrganisationOut],
            summary="Organisations of the caller's tenant (any role; operators see only their own operator)")
def list_organisations(kind: str | None = None, principal: Principal = Depends(require()),
                       session: Session = Depends(get_read_session)) -> list[OrganisationOut]:
    stmt = identity.readable_organisations(principal).order_by(Organisation.kind, Organisation.name)
    if kind:
        stmt = stmt.where(Organisation.kind == kind)
    return [org_out(o) for o in session.scalars(stmt)]


@router.get("/organisations/{org_id}", response_model=OrganisationOut, summary="One organisation (any role)")
def get_organisation(org_id: uuid.UUID, principal: Principal = Depends(require()),
                     session: Session = Depends(get_read_session)) -> OrganisationOut:
    return org_out(identity.get_readable_organisation(session, principal, org_id))


@router.get("/tenant", response_model=TenantOut, summary="The caller's tenant (any role)")
def tenant(principal: Principal = Depends(require()), session: Session = Depends(get_read_session)) -> TenantOut:
    t = identity.get_tenant(session, principal.tenant_key)
    return TenantOut(key=t.key, name=t.name, crs=f"EPSG:{t.srid}")


__all__ = ["router", "health_router", "Role"]
