"""The HTTP API of signing in and of one's own account: sign-in options, sign-in and sign-out, the current browser
session, one's sessions, password, second factor and API tokens; tenant admins' view of users' tokens and of the
security events.

Refused sign-ins (and a wrong current password) are *returned* as problem answers, not raised: the request's
transaction then commits, so the failure counters and security events stay (breitband.db.write_session rolls back
on an exception).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from accounts import events, local, oidc
from accounts.events import Origin
from breitband import clock, idempotency, identity, sessions
from breitband.api import org_out
from breitband.auth import require
from breitband.db import get_read_session, write_session
from breitband.errors import PROBLEM_JSON, Conflict, NotFound, ProblemError, Unauthorized, problem_response
from breitband.identity import Principal
from breitband.limits import TooManyRequests
from breitband.models import ApiToken, Organisation, Role, Tenant, User, WebSession
from breitband.openapi import honours_idempotency_key
from breitband.schemas import MeOut, TenantOut, TokenCreate, TokenCreated, TokenOut

router = APIRouter(prefix="/api/v1", tags=["sign-in"])
tokens_router = APIRouter(prefix="/api/v1", tags=["identity"])

PROBLEMS = {status: {"content": {PROBLEM_JSON: {}}, "description": text} for status, text in (
    (401, "Not signed in, or the credentials are wrong"), (403, "Not allowed (role, CSRF header, read-only token)"),
    (404, "No such object of the caller's own"), (409, "Conflict"), (422, "Invalid input"),
    (429, "Too many failed sign-ins (Retry-After)"))}
NO_STORE = {"Cache-Control": "no-store"}
ANYONE = require()
TENANT_ADMIN = require(Role.tenant_admin)


# --- schemas --------------------------------------------------------------------------------------------------

class OidcOption(BaseModel):
    name: str = Field(description="The identity provider's name, for the button 'Anmelden mit …'")
    start_url: str


class TenantOption(BaseModel):
    key: str
    name: str
    local: bool = Field(description="Whether e-mail address and password can be used")
    oidc: OidcOption | None


class OptionsOut(BaseModel):
    tenants: list[TenantOption]


class LoginIn(BaseModel):
    tenant: str = Field(min_length=1, max_length=16)
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    totp_code: str | None = Field(default=None, max_length=32, description="The code of the authenticator app, "
                                  "when the second factor is on")


class LoginOut(BaseModel):
    user: MeOut
    csrf_token: str = Field(description="Send it as X-CSRF-Token with every POST, PUT, PATCH and DELETE")
    expires_at: datetime = Field(description="When the session ends at the latest (absolute lifetime)")
    idle_timeout_s: int = Field(description="The session ends after this long without a request")
    totp_enrolment_required: bool = Field(description="The tenant requires a second factor for the role and none "
                                          "is set up: the session reaches only GET /api/v1/me, /api/v1/auth/session, "
                                          "/api/v1/me/totp* and POST /api/v1/auth/logout until it is")


class SessionOut(BaseModel):
    user: MeOut
    csrf_token: str
    expires_at: datetime
    idle_expires_at: datetime
    restricted: str | None = Field(description="'totp-enrolment' while the second factor must be set up first")


class LogoutOut(BaseModel):
    logout_url: str | None = Field(description="Where to send the browser to sign out at the identity provider "
                                   "too (sessions signed in with OpenID Connect); null otherwise")


class MySessionOut(BaseModel):
    id: uuid.UUID
    method: str
    mfa: bool
    restricted: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    idle_expires_at: datetime
    client_ip: str | None
    user_agent: str | None
    current: bool = Field(description="Whether this is the session of this request")


class EndedOut(BaseModel):
    ended: int


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class TotpStarted(BaseModel):
    secret: str = Field(description="Base32, for typing into the app by hand")
    otpauth_uri: str
    qr_svg: str = Field(description="The URI as a QR code: an <svg> element to put into the page")


class TotpCode(BaseModel):
    code: str = Field(min_length=1, max_length=32)


class PasswordConfirm(BaseModel):
    password: str = Field(min_length=1, max_length=1024)


class SecurityEventOut(BaseModel):
    id: int
    at: datetime
    kind: str
    user_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    email: str | None
    client_ip: str | None
    user_agent: str | None
    detail: dict[str, Any]


class SecurityEventPage(BaseModel):
    items: list[SecurityEventOut]
    next_before_id: int | None = Field(description="Pass as before_id for the next (older) page; null: no more")


# --- helpers ------------------------------------------------------------------------------------------------------

def user_out(session: Session, user: User) -> MeOut:
    """The same shape as GET /api/v1/me, for a user signed in by a session (no token)."""
    tenant = identity.get_tenant(session, user.tenant_key)
    org = session.get(Organisation, user.organisation_id)
    return MeOut(id=user.id, email=user.email, name=user.name, role=user.role,
                 tenant=TenantOut(key=tenant.key, name=tenant.name, crs=f"EPSG:{tenant.srid}"),
                 organisation=org_out(org), token_id=None, token_expires_at=None,
                 totp_enabled=user.totp_enabled_at is not None, totp_required=local.totp_required(tenant, user.role))


def answer(request: Request, exc: ProblemError) -> JSONResponse:
    """A refusal as the endpoint's answer (the transaction commits what the refusal recorded)."""
    body = exc.to_problem(instance=request.url.path)
    rid = getattr(request.state, "request_id", None)
    if rid:
        body["request_id"] = rid
    return problem_response(exc.status, body, exc.headers)


def own_user(session: Session, principal: Principal) -> User:
    return session.scalars(select(User).where(User.id == principal.user_id).with_for_update()).one()


def throttle(request: Request) -> local.AddressThrottle:
    found = getattr(request.app.state, "sign_in_throttle", None)
    if found is None:
        found = request.app.state.sign_in_throttle = local.AddressThrottle(request.app.state.settings
                                                                           .limits_redis_url)
    return found


def refuse_blocked_address(request: Request) -> None:
    """Per client address: the failed-authentication limit of breitband/limits.py, answered with the sign-in's
    own problem type."""
    try:
        request.app.state.limits.refuse_if_blocked(request)
    except TooManyRequests as exc:
        raise TooManyRequests("Too many failed sign-ins from your address; try again in "
                              f"{exc.extra['retry_after_s']} s", exc.extra["retry_after_s"],
                              type="too-many-sign-in-attempts") from None


def session_out(row: WebSession, current: uuid.UUID | None) -> MySessionOut:
    return MySessionOut(id=row.id, method=row.method, mfa=row.mfa, restricted=row.restricted,
                        created_at=row.created_at, last_seen_at=row.last_seen_at, expires_at=row.expires_at,
                        # this request counts as activity, though last_seen_at is written only once a minute
                      idle_expires_at=min(row.expires_at, max(row.last_seen_at, clock.now())
                                          + sessions.idle_timeout()),
                        client_ip=row.client_ip, user_agent=row.user_agent, current=row.id == current)


# --- public: options and sign-in --------------------------------------------------------------------------------

def oidc_option(tenant: Tenant) -> OidcOption | None:
    """The tenant's OpenID Connect button ([sign_in.oidc] of its rules), or None."""
    found = oidc.public_options(tenant)
    return OidcOption(**found) if found else None


@router.get("/auth/options", response_model=OptionsOut, summary="How one can sign in, per tenant (public)")
def options(session: Session = Depends(get_read_session)) -> OptionsOut:
    return OptionsOut(tenants=[TenantOption(key=t.key, name=t.name, local=True, oidc=oidc_option(t))
                               for t in identity.list_tenants(session)])


@router.post("/auth/login", response_model=LoginOut, responses=PROBLEMS,
             summary="Sign in with e-mail address and password (and TOTP code); sets the session cookie (public)",
             description="401 `sign-in-failed` for a wrong password and an unknown address alike; 401 "
                         "`totp-required` / `totp-invalid` when the second factor is on; 401 `user-deactivated` "
                         "(only after the right password); 429 `too-many-sign-in-attempts` with Retry-After after 5 "
                         "failures for an address (1 minute, doubling to 60) or too many from the client address.")
def login(request: Request, data: LoginIn, session: Session = write_session) -> Response:
    refuse_blocked_address(request)
    try:
        signed = local.sign_in(session, throttle(request), tenant_key=data.tenant, email=data.email,
                               password=data.password, totp_code=data.totp_code, client=Origin.of(request))
    except ProblemError as exc:
        if exc.status == 401:
            request.app.state.limits.count_auth_failure(request)
        return answer(request, exc)
    return signed_in(session, signed)


def signed_in(session: Session, signed: local.SignedIn) -> JSONResponse:
    """The answer to a sign-in (password or link): the user, the CSRF token and limits, and the session cookie."""
    body = LoginOut(user=user_out(session, signed.user), csrf_token=signed.started.csrf_token,
                    expires_at=signed.started.expires_at,
                    idle_timeout_s=int(sessions.idle_timeout().total_seconds()),
                    totp_enrolment_required=signed.totp_enrolment_required)
    response = JSONResponse(body.model_dump(mode="json"), headers=NO_STORE)
    sessions.set_cookie(response, signed.started)
    return response


# --- signed in: the session, signing out ------------------------------------------------------------------------

def credentials_sent(request: Request) -> None:
    """The web app asks on every load whether the browser has a session; a browser with no cookie and no token at all
    (every visitor before signing in) has not failed to authenticate, so it is answered 401 here, before the
    authentication that counts failures per client address (breitband/limits.py): otherwise twenty people a minute
    opening the sign-in page behind one office address would lock that address out of signing in. A cookie or
    token that is sent and wrong still counts."""
    if sessions.cookie_of(request) is None and "authorization" not in request.headers:
        raise Unauthorized("Not signed in: the request carries no session cookie", type="token-missing")


@router.get("/auth/session", response_model=SessionOut, responses=PROBLEMS,
            summary="The browser's session: who, its CSRF token, when it ends (session cookie only)")
def current_session(response: Response, _: None = Depends(credentials_sent), principal: Principal = Depends(ANYONE),
                    session: Session = Depends(get_read_session)) -> SessionOut:
    if principal.session_id is None:
        raise Unauthorized("This tells about a browser session; the request was made with a token",
                           type="session-required")
    row = session.get(WebSession, principal.session_id)
    response.headers.update(NO_STORE)
    user = session.get(User, principal.user_id)
    return SessionOut(user=user_out(session, user), csrf_token=row.csrf_token, expires_at=row.expires_at,
                      # this request counts as activity, though last_seen_at is written only once a minute
                      idle_expires_at=min(row.expires_at, max(row.last_seen_at, clock.now())
                                          + sessions.idle_timeout()),
                      restricted=row.restricted)


def sign_out(request: Request, session: Session, principal: Principal) -> str | None:
    """End the session of this request, or revoke the token it was made with. → where to send the browser to sign
    out at the identity provider too (a session that began there), or None."""
    client = Origin.of(request)
    logout_url = None
    if principal.session_id is not None:
        row = session.get(WebSession, principal.session_id)
        if row is not None and row.method == "oidc":
            logout_url = oidc.logout_url(session, principal.tenant_key, row.oidc_id_token)
        sessions.end(session, principal.session_id)
        events.record(session, "sign-out", principal.tenant_key, client, user_id=principal.user_id,
                      actor_id=principal.user_id, email=principal.email,
                      detail={"session_id": str(principal.session_id)})
    else:
        identity.revoke_own_token(session, principal, principal.token_id)
        events.record(session, "token-revoked", principal.tenant_key, client, user_id=principal.user_id,
                      actor_id=principal.user_id, email=principal.email,
                      detail={"token_id": str(principal.token_id), "how": "sign-out"})
    return logout_url


@router.post("/auth/logout", response_model=LogoutOut, responses=PROBLEMS,
             summary="Sign out: end this browser session (cookie cleared) or revoke the token of this request")
def logout(request: Request, principal: Principal = Depends(ANYONE), session: Session = write_session) -> Response:
    logout_url = sign_out(request, session, principal)
    response = JSONResponse(LogoutOut(logout_url=logout_url).model_dump(), headers=NO_STORE)
    if principal.session_id is not None:
        sessions.clear_cookie(response)
    return response


@tokens_router.post("/me/logout", status_code=204, responses=PROBLEMS,
                    summary="Sign out: revoke the token this request is made with, or end this browser session "
                            "(any role; the same as POST /api/v1/auth/logout)")
def me_logout(request: Request, principal: Principal = Depends(ANYONE), session: Session = write_session
              ) -> Response:
    sign_out(request, session, principal)
    response = Response(status_code=204)
    if principal.session_id is not None:
        sessions.clear_cookie(response)
    return response


# --- one's sessions ---------------------------------------------------------------------------------------------

@router.get("/me/sessions", response_model=list[MySessionOut], responses=PROBLEMS,
            summary="One's open browser sessions, newest first; the one of this request is marked (any role)")
def my_sessions(response: Response, principal: Principal = Depends(ANYONE),
                session: Session = Depends(get_read_session)) -> list[MySessionOut]:
    response.headers.update(NO_STORE)
    return [session_out(s, principal.session_id) for s in sessions.open_sessions(session, principal.user_id)]


@router.delete("/me/sessions/{session_id}", status_code=204, responses=PROBLEMS,
               summary="End one of one's sessions (e.g. on a lost laptop) (any role)")
def end_my_session(request: Request, session_id: uuid.UUID, principal: Principal = Depends(ANYONE),
                   session: Session = write_session) -> Response:
    row = session.scalar(select(WebSession).where(WebSession.id == session_id,
                                                  WebSession.user_id == principal.user_id))
    if row is None or row.revoked_at is not None:
        raise NotFound(f"No open session {session_id} of yours", type="session-not-found")
    sessions.end(session, row.id)
    response = Response(status_code=204)
    if row.id == principal.session_id:
        sessions.clear_cookie(response)
    events.record(session, "session-ended", principal.tenant_key, Origin.of(request), user_id=principal.user_id,
                  actor_id=principal.user_id, email=principal.email,
                  detail={"session_id": str(row.id), "current": row.id == principal.session_id})
    return response


@router.post("/me/sessions/end-all", response_model=EndedOut, responses=PROBLEMS,
             summary="Sign out everywhere: end all of one's sessions, this one included (any role)")
def end_all_my_sessions(request: Request, principal: Principal = Depends(ANYONE),
                        session: Session = write_session) -> Response:
    ended = sessions.end_all(session, principal.user_id)
    events.record(session, "session-ended", principal.tenant_key, Origin.of(request), user_id=principal.user_id,
                  actor_id=principal.user_id, email=principal.email,
                  detail={"all": True, "ended": ended})
    response = JSONResponse({"ended": ended}, headers=NO_STORE)
    if principal.session_id is not None:
        sessions.clear_cookie(response)
    return response


# --- password and second factor --------------------------------------------------------------------------------

@router.post("/me/password", status_code=204, responses=PROBLEMS,
             summary="Change one's password; one's other sessions end (any role)",
             description="422 `current-password-wrong` (counts as a failed sign-in), `password-too-short`, "
                         "`password-common`, `password-personal`, `password-unchanged`.")
def change_my_password(request: Request, data: PasswordChange, principal: Principal = Depends(ANYONE),
                       session: Session = write_session) -> Response:
    user = own_user(session, principal)
    try:
        local.change_password(session, user, data.current_password, data.new_password, client=Origin.of(request),
                              current_session=principal.session_id)
    except ProblemError as exc:
        return answer(request, exc)
    return Response(status_code=204)


@router.post("/me/totp", response_model=TotpStarted, responses=PROBLEMS,
             summary="Start setting up the second factor: a new secret, pending until confirmed (any role)")
def start_totp(principal: Principal = Depends(ANYONE), session: Session = write_session) -> JSONResponse:
    user = own_user(session, principal)
    enrolment = local.begin_totp(session, user, identity.get_tenant(session, user.tenant_key))
    body = TotpStarted(secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri, qr_svg=enrolment.qr_svg)
    return JSONResponse(body.model_dump(), headers=NO_STORE)


@router.post("/me/totp/confirm", status_code=204, responses=PROBLEMS,
             summary="Turn the second factor on with a code from the app; a session restricted to this set-up "
                     "becomes a full one (any role)")
def confirm_totp(request: Request, data: TotpCode, principal: Principal = Depends(ANYONE),
                 session: Session = write_session) -> Response:
    user = own_user(session, principal)
    local.confirm_totp(session, user, data.code, current_session=principal.session_id, client=Origin.of(request))
    return Response(status_code=204)


@router.delete("/me/totp", status_code=204, responses=PROBLEMS,
               summary="Remove the second factor, confirmed with one's password; 409 `totp-required-by-tenant` "
                       "when the tenant requires it for the role (any role)")
def remove_totp(request: Request, data: PasswordConfirm, principal: Principal = Depends(ANYONE),
                session: Session = write_session) -> Response:
    user = own_user(session, principal)
    local.disable_totp(session, user, identity.get_tenant(session, user.tenant_key), data.password,
                       client=Origin.of(request))
    return Response(status_code=204)


# --- API tokens (one's own; tenant admins: their users') ---------------------------------------------------------

def token_out(token: ApiToken, principal: Principal) -> TokenOut:
    return TokenOut(id=token.id, name=token.name, prefix=token.prefix, created_at=token.created_at,
                    expires_at=token.expires_at, last_used_at=token.last_used_at, revoked_at=token.revoked_at,
                    scope=token.scope, current=token.id == principal.token_id)


@tokens_router.get("/me/tokens", response_model=list[TokenOut], responses=PROBLEMS,
                   summary="The caller's own API tokens, newest first, revoked and expired ones included (any role)")
def my_tokens(response: Response, principal: Principal = Depends(ANYONE),
              session: Session = Depends(get_read_session)) -> list[TokenOut]:
    response.headers.update(NO_STORE)
    return [token_out(t, principal) for t in identity.list_tokens(session, principal.user_id)]


@tokens_router.post("/me/tokens", status_code=201, response_model=TokenCreated, responses=PROBLEMS,
                    summary="Create an API token for oneself; the secret is in this answer only (any role)",
                    description="`scope`: 'write' (default) or 'read' (refused on every unsafe method: 403 "
                                "`token-read-only`). Honours `Idempotency-Key`: the same key with the same body does "
                                "not create a second token but answers 409 `token-already-created` with its id, "
                                "because the secret is never stored and cannot be shown again; the same key with "
                                "another body is 422.")
@honours_idempotency_key
def create_my_token(request: Request, data: TokenCreate, principal: Principal = Depends(ANYONE),
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
    events.record(session, "token-created", principal.tenant_key, Origin.of(request), user_id=principal.user_id,
                  actor_id=principal.user_id, email=principal.email,
                  detail={"token_id": str(token.id), "name": token.name, "scope": token.scope,
                          "expires_at": token.expires_at.isoformat() if token.expires_at else None})
    out = token_out(token, principal)
    if key is not None:   # what is kept for a repeated key: the token without its secret
        idempotency.store_response(session, principal.user_id, key, 201, out.model_dump(mode="json"), {})
    body = TokenCreated(**out.model_dump(), token=secret).model_dump(mode="json")
    return JSONResponse(body, status_code=201, headers={"Location": f"/api/v1/me/tokens/{token.id}", **NO_STORE})


def _record_revocation(session: Session, request: Request, principal: Principal, token: ApiToken,
                       was_open: bool, user_id: uuid.UUID) -> None:
    if was_open:
        events.record(session, "token-revoked", principal.tenant_key, Origin.of(request), user_id=user_id,
                      actor_id=principal.user_id, detail={"token_id": str(token.id), "name": token.name})


@tokens_router.delete("/me/tokens/{token_id}", status_code=204, responses=PROBLEMS,
                      summary="Revoke one of one's own tokens; revoking it again changes nothing (any role)")
def revoke_my_token(request: Request, token_id: uuid.UUID, principal: Principal = Depends(ANYONE),
                    session: Session = write_session) -> Response:
    before = session.scalar(select(ApiToken.revoked_at).where(ApiToken.id == token_id))
    token = identity.revoke_own_token(session, principal, token_id)
    _record_revocation(session, request, principal, token, before is None, principal.user_id)
    return Response(status_code=204)


@tokens_router.get("/users/{user_id}/tokens", response_model=list[TokenOut], responses=PROBLEMS,
                   summary="The API tokens of a user of the caller's tenant, newest first (tenant admin)")
def user_tokens(user_id: uuid.UUID, response: Response, principal: Principal = Depends(TENANT_ADMIN),
                session: Session = Depends(get_read_session)) -> list[TokenOut]:
    identity.get_tenant_user(session, principal, user_id)
    response.headers.update(NO_STORE)
    return [token_out(t, principal) for t in identity.list_tokens(session, user_id)]


@tokens_router.delete("/users/{user_id}/tokens/{token_id}", status_code=204, responses=PROBLEMS,
                      summary="Revoke a token of a user of the caller's tenant (tenant admin)")
def revoke_user_token(request: Request, user_id: uuid.UUID, token_id: uuid.UUID,
                      principal: Principal = Depends(TENANT_ADMIN), session: Session = write_session) -> Response:
    before = session.scalar(select(ApiToken.revoked_at).where(ApiToken.id == token_id))
    token = identity.revoke_user_token(session, principal, user_id, token_id)
    _record_revocation(session, request, principal, token, before is None, user_id)
    return Response(status_code=204)


# --- tenant admins: security events ---------------------------------------------------------------------------------

@router.get("/admin/security-events", response_model=SecurityEventPage, responses=PROBLEMS,
            summary="The tenant's security events, newest first, a page at a time (tenant admin)",
            description="Filters: `kind` (repeatable), `user_id` (events about or done by that user), `since` "
                        "(inclusive) and `until` (exclusive) as RFC 3339 instants; `limit` 1-500 (100); the next, "
                        "older page with `before_id` = the previous page's `next_before_id`.")
def security_events(principal: Principal = Depends(TENANT_ADMIN), session: Session = Depends(get_read_session),
                    kind: list[str] | None = Query(default=None), user_id: uuid.UUID | None = None,
                    since: datetime | None = None, until: datetime | None = None,
                    limit: int = Query(default=100), before_id: int | None = Query(default=None, ge=1,
                                                                                    le=2**62)) -> dict[str, Any]:
    return events.page(session, principal.tenant_key, limit=limit, kind=kind, user_id=user_id, since=since,
                       until=until, before_id=before_id)


__all__ = ["router", "tokens_router"]
