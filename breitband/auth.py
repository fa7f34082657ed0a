"""Authorisation as a dependency, so every endpoint states who may call it.

Missing or invalid token → 401 (counted per client address; over ``rate_limit_auth_failures`` → 429 before the
token is checked); wrong role → 403; objects of another tenant or organisation → 404 (done by the
scoped queries in each repository, never by leaking that the object exists).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from breitband.db import Database
from breitband.errors import Forbidden, Unauthorized
from breitband.identity import AuthError, Principal, authenticate
from breitband.models import Role

ANY_ROLE = tuple(Role)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("Send an API token: 'Authorization: Bearer <token>'", type="token-missing")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <token>'", type="token-malformed")
    return secret.strip()


def current_principal(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    limits = request.app.state.limits
    # After too many failures from this address: 429 before the token is looked at (breitband/limits.py).
    limits.refuse_if_blocked(request)
    db: Database = request.app.state.db
    try:
        secret = _bearer(request)
        # On the primary (a token made a moment ago must work at once), one statement, no transaction around it.
        with db.statement_session() as session:
            try:
                principal = authenticate(session, secret)
            except AuthError as exc:
                # Expired, revoked and deactivated say so in their type (a client can tell the user what to do);
                # a secret that matches no token stays "token-invalid".
                kind = exc.reason if exc.reason in ("token-expired", "token-revoked", "user-deactivated") \
                    else "token-invalid"
                raise Unauthorized(exc.detail, type=kind) from None
    except Unauthorized:
        limits.count_auth_failure(request)
        raise
    request.state.principal = principal
    return principal


def require(*roles: Role) -> Callable[[Request], Principal]:
    """Dependency factory: ``principal: Principal = Depends(require(Role.tenant_admin))``."""
    allowed = frozenset(roles or ANY_ROLE)

    def dependency(request: Request) -> Principal:
        principal = current_principal(request)
        if principal.role not in allowed:
            raise Forbidden(f"This needs one of the roles {', '.join(sorted(r.value for r in allowed))}; "
                            f"you are {principal.role.value}", type="role-not-allowed")
        return principal

    dependency.__name__ = "require_" + "_or_".join(sorted(r.value for r in allowed))
    return dependency
