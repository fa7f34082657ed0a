"""Authorisation as a dependency, so every endpoint states who may call it.

Missing or invalid token → 401 (counted per client address; over ``rate_limit_auth_failures`` → 429 before the
token is checked); wrong role → 403; objects of another tenant or organisation → 404 (done by the
scoped queries in each repository, never by leaking that the object exists).

The token comes as ``Authorization: Bearer <token>``. The read-only GIS endpoints (OGC API - Features, vector tiles,
TileJSON, the style) also take HTTP Basic with any user name and the token as the password, because that is what GIS
desktops offer (QGIS 3.22: Basic, EsriToken, certificates, PKI; GDAL: ``GDAL_HTTP_AUTH=BASIC``); they declare it with
``require(basic=True)`` / ``current_principal(request, basic=True)``, for GET and HEAD only. Everywhere else Basic is
refused with a 401 that says where it is accepted.

Browsers sign in with a session cookie instead (breitband/sessions.py): without an Authorization header, the
cookie authenticates; an unsafe request made with it needs the ``X-CSRF-Token`` header (403 otherwise). A session
still restricted to setting up the second factor reaches only that set-up (403 ``totp-enrolment-required``). A
token of scope "read" is refused on every unsafe method (403 ``token-read-only``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from fastapi import Request

from breitband import sessions
from breitband.db import Database
from breitband.errors import Forbidden, Unauthorized
from breitband.identity import AuthError, Principal, authenticate
from breitband.models import Role, TokenScope

ANY_ROLE = tuple(Role)
BEARER = 'Bearer realm="breitband"'
BEARER_OR_BASIC = 'Bearer realm="breitband", Basic realm="breitband", charset="UTF-8"'
BASIC_METHODS = ("GET", "HEAD")
GIS_ENDPOINTS = "the read-only GIS endpoints (GET of /api/v1/ogc/…, /tiles/…, TileJSON and the style)"
# What a session restricted to setting up the second factor may reach (the rest answers 403).
TOTP_ENROLMENT_PATHS = (("GET", "/api/v1/me"), ("GET", "/api/v1/auth/session"), ("POST", "/api/v1/auth/logout"),
                        ("*", "/api/v1/me/totp"))


def token_of(request: Request, *, basic: bool = False) -> str:
    """The API token the request carries: ``Bearer <token>``, or where ``basic`` allows it (GET and HEAD) HTTP Basic
    with the token as the password (the user name is ignored)."""
    basic = basic and request.method in BASIC_METHODS
    challenge = BEARER_OR_BASIC if basic else BEARER
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("Send an API token: 'Authorization: Bearer <token>'" + (
            " (or HTTP Basic with any user name and the token as the password)" if basic else ""),
            type="token-missing", challenge=challenge)
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer" and value:
        return value
    if scheme == "basic" and not basic:
        raise Unauthorized(f"HTTP Basic is accepted only on {GIS_ENDPOINTS}, with the API token as the password; "
                           "send 'Authorization: Bearer <token>' here", type="basic-not-accepted", challenge=BEARER)
    if scheme == "basic":
        try:
            _, colon, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            password, colon = "", ""
        if not colon or not password.strip():
            raise Unauthorized("HTTP Basic credentials must be base64 of 'user:token': any user name, an API token "
                               "as the password", type="token-malformed", challenge=challenge)
        return password.strip()
    raise Unauthorized("The Authorization header must be 'Bearer <token>'" + (
        " or HTTP Basic with the token as the password" if basic else ""), type="token-malformed", challenge=challenge)


# What a response that depends on the caller varies with: the token, or the browser's session cookie.
VARY_CREDENTIALS = "Authorization, Cookie"


def credentials_sent(request: Request) -> bool:
    """Whether the request says who it is (an Authorization header, or the session cookie): then it must be valid,
    and what depends on the caller is answered for the caller (never silently as for the public)."""
    return "authorization" in request.headers or sessions.cookie_of(request) is not None


def current_principal(request: Request, *, basic: bool = False) -> Principal:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    limits = request.app.state.limits
    # After too many failures from this address: 429 before the token is looked at (breitband/limits.py).
    limits.refuse_if_blocked(request)
    cookie = sessions.cookie_of(request)
    try:
        if cookie is not None and "authorization" not in request.headers:
            principal = _by_session(request, cookie)
        else:
            principal = _by_token(request, basic)
    except Unauthorized:
        limits.count_auth_failure(request)
        raise
    request.state.principal = principal
    return principal


def _by_token(request: Request, basic: bool) -> Principal:
    db: Database = request.app.state.db
    secret = token_of(request, basic=basic)
    # On the primary (a token made a moment ago must work at once), one statement, no transaction around it.
    with db.statement_session() as session:
        try:
            principal = authenticate(session, secret)
        except AuthError as exc:
            # Expired, revoked and deactivated say so in their type (a client can tell the user what to do);
            # a secret that matches no token stays "token-invalid".
            kind = exc.reason if exc.reason in ("token-expired", "token-revoked", "user-deactivated") \
                else "token-invalid"
            raise Unauthorized(exc.detail, type=kind,
                               challenge=BEARER_OR_BASIC if basic and request.method in BASIC_METHODS
                               else BEARER) from None
    if principal.token_scope == TokenScope.read.value and request.method not in sessions.SAFE_METHODS:
        raise Forbidden("This token may only read (scope 'read'); use a token of scope 'write' to change anything",
                        type="token-read-only")
    return principal


def _by_session(request: Request, secret: str) -> Principal:
    db: Database = request.app.state.db
    with db.statement_session() as session:
        try:
            found = sessions.lookup(session, secret)
        except sessions.SessionRefused as exc:
            raise Unauthorized(exc.detail, type=exc.reason if exc.reason != "session-unknown" else "session-ended",
                               challenge=BEARER) from None
    if found.stale:
        with db.transaction() as session:
            sessions.touch(session, found.principal.session_id)
    if request.method not in sessions.SAFE_METHODS:
        given = request.headers.get(sessions.CSRF_HEADER)
        if not given:
            raise Forbidden(f"A request signed in by the browser's session that changes something needs the header "
                            f"{sessions.CSRF_HEADER} with the session's CSRF token (GET /api/v1/auth/session)",
                            type="csrf-token-missing")
        if not sessions.csrf_ok(found.csrf_token, given):
            raise Forbidden(f"The {sessions.CSRF_HEADER} header does not match this session's CSRF token; reload the "
                            "page", type="csrf-token-invalid")
    if found.restricted == sessions.RESTRICTED_TOTP and not _totp_enrolment_path(request):
        raise Forbidden("Set up your second factor (TOTP) first: your tenant requires it for your role",
                        type="totp-enrolment-required")
    return found.principal


def _totp_enrolment_path(request: Request) -> bool:
    path = request.url.path.rstrip("/")
    # Exact paths for one method; "*" entries also cover what lies below them (/api/v1/me/totp/confirm).
    return any(path == allowed or (method == "*" and path.startswith(allowed + "/"))
               for method, allowed in TOTP_ENROLMENT_PATHS if method in ("*", request.method))


def require(*roles: Role, basic: bool = False) -> Callable[[Request], Principal]:
    """Dependency factory: ``principal: Principal = Depends(require(Role.tenant_admin))``; ``basic=True`` for the
    read-only GIS endpoints, which also take HTTP Basic with the token as the password."""
    allowed = frozenset(roles or ANY_ROLE)

    def dependency(request: Request) -> Principal:
        principal = current_principal(request, basic=basic)
        if principal.role not in allowed:
            raise Forbidden(f"This needs one of the roles {', '.join(sorted(r.value for r in allowed))}; "
                            f"you are {principal.role.value}", type="role-not-allowed")
        return principal

    dependency.__name__ = "require_" + "_or_".join(sorted(r.value for r in allowed))   # read by breitband.openapi
    return dependency
