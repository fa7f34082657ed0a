"""The shell's endpoints: health, readiness, the caller and their API tokens, tenants and organisations."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from breitband import idempotency, identity
from breitband.auth import current_principal, require
from breitband.db import get_read_session, write_session
from breitband.errors import PROBLEM_JSON, Conflict
from breitband.health import public_readiness, readiness
from breitband.identity import Principal
from breitband.models import ApiToken, Organisation, Role
from breitband.openapi import honours_idempotency_key
from breitband.schemas import MeOut, OrganisationOut, ReadinessOut, TenantOut, TokenCreate, TokenCreated, TokenOut

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
    if request.headers.get("authorization") is not None:
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


# --- the caller's API tokens, and tenant admins' view of their users' tokens -----------------------------------

PROBLEMS = {status: {"content": {PROBLEM_JSON: {}}, "description": text} for status, text in (
    (401, "No, an unknown, a revoked or an expired token"), (403, "The role may not do this"),
    (404, "No such token (or user) of the caller's own"), (409, "Conflict"), (422, "Invalid input"))}
NO_STORE = {"Cache-Control": "no-store"}


def token_out(token: ApiToken, principal: Principal) -> TokenOut:
    return TokenOut(id=token.id, name=token.name, prefix=token.prefix, created_at=token.created_at,
                    expires_at=token.expires_at, last_used_at=token.last_used_at, revoked_at=token.revoked_at,
                    scope=token.scope, current=token.id == principal.token_id)


@router.get("/me/tokens", response_model=list[TokenOut], responses=PROBLEMS,
            summary="The caller's own API tokens, newest first, revoked and expired ones included (any role)")
def my_tokens(response: Response, principal: Principal = Depends(require()),
              session: Session = Depends(get_read_session)) -> list[TokenOut]:
    response.headers.update(NO_STORE)
    return [token_out(t, principal) for t in identity.list_tokens(session, principal.user_id)]


@router.post("/me/tokens", status_code=201, response_model=TokenCreated, responses=PROBLEMS,
             summary="Create an API token for oneself; the secret is in this answer only (any role)",
             description="Honours `Idempotency-Key`: the same key with the same body does not create a second "
                         "token but answers 409 `token-already-created` with its id, because the secret is never "
                         "stored and cannot be shown again; the same key with another body is 422.")
@honours_idempotency_key
def create_my_token(request: Request, data: TokenCreate, principal: Principal = Depends(require()),
                    session: Session = write_session) -> JSONResponse:
    key, stored = idempotency.claim(request, session, principal.user_id, data)
    if stored is not None:
        token_id = (stored.response_body or {}).get("id")
        raise Conflict(f"A token was already created with Idempotency-Key {key!r} (id {token_id}). Its secret "
                       "is shown only once and is not stored; revoke that token (DELETE /api/v1/me/tokens/"
                       f"{token_id}) and create a new one with a new key", type="token-already-created",
                       token_id=token_id)
    token, secret = identity.create_own_token(session, principal, data.name, data.expires_in_days,
                                                   scope=data.scope)
    out = token_out(token, principal)
    if key is not None:   # what is kept for a repeated key: the token without its secret
        idempotency.store_response(session, principal.user_id, key, 201, out.model_dump(mode="json"), {})
    body = TokenCreated(**out.model_dump(), token=secret).model_dump(mode="json")
    return JSONResponse(body, status_code=201, headers={"Location": f"/api/v1/me/tokens/{token.id}", **NO_STORE})


@router.delete("/me/tokens/{token_id}", status_code=204, responses=PROBLEMS,
               summary="Revoke one of one's own tokens; revoking it again changes nothing (any role)")
def revoke_my_token(token_id: uuid.UUID, principal: Principal = Depends(require()),
                    session: Session = write_session) -> Response:
    identity.revoke_own_token(session, principal, token_id)
    return Response(status_code=204)


@router.post("/me/logout", status_code=204, responses=PROBLEMS,
             summary="Sign out: revoke the token this request is made with (any role)")
def logout(principal: Principal = Depends(require()), session: Session = write_session) -> Response:
    identity.revoke_own_token(session, principal, principal.token_id)
    return Response(status_code=204)


TENANT_ADMIN = require(Role.tenant_admin)


@router.get("/users/{user_id}/tokens", response_model=list[TokenOut], responses=PROBLEMS,
            summary="The API tokens of a user of the caller's tenant, newest first (tenant admin)")
def user_tokens(user_id: uuid.UUID, response: Response, principal: Principal = Depends(TENANT_ADMIN),
                session: Session = Depends(get_read_session)) -> list[TokenOut]:
    identity.get_tenant_user(session, principal, user_id)
    response.headers.update(NO_STORE)
    return [token_out(t, principal) for t in identity.list_tokens(session, user_id)]


@router.delete("/users/{user_id}/tokens/{token_id}", status_code=204, responses=PROBLEMS,
               summary="Revoke a token of a user of the caller's tenant (tenant admin)")
def revoke_user_token(user_id: uuid.UUID, token_id: uuid.UUID, principal: Principal = Depends(TENANT_ADMIN),
                      session: Session = write_session) -> Response:
    identity.revoke_user_token(session, principal, user_id, token_id)
    return Response(status_code=204)


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
