"""Public endpoints of the e-mailed links (accounts/links.py): ask for a reset link, look at a link, set the password
with it and be signed in.

An unknown link and a wrong second-factor code count as failed authentications of the client address
(breitband/limits.py, ``rate_limit_auth_failures``), so that nobody can try links or codes at leisure."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from accounts import links, local
from accounts.endpoints import NO_STORE, LoginOut, signed_in
from accounts.events import Origin
from accounts.schemas import AcceptedOut, LinkOut, LinkRedeem, PasswordResetIn
from breitband import clock, identity
from breitband.db import get_read_session, write_session
from breitband.errors import PROBLEM_JSON, NotFound, Unauthorized

router = APIRouter(prefix="/api/v1/auth", tags=["sign-in"])

TOKEN = Path(..., min_length=1, max_length=100, description="The secret from the e-mailed link (after /#/link/)")
PROBLEMS = {status: {"content": {PROBLEM_JSON: {}}, "description": text} for status, text in (
    (401, "The account has a second factor: totp-required / totp-invalid"),
    (403, "The user is deactivated (user-deactivated)"), (404, "Unknown link (link-unknown) or tenant"),
    (410, "The link was used (link-used) or has expired or was replaced (link-expired)"),
    (422, "The password does not meet the policy (password-too-short, password-common, ...)"),
    (429, "Too many failed attempts, or reset requests, from the client address"))}
RESET_ACCEPTED = ("If the address belongs to an active account of the tenant, an e-mail with a link to set a new "
                  "password is on its way (at most one every 5 minutes). Wenn die Adresse zu einem aktiven Konto "
                  "gehört, ist eine E-Mail mit einem Link zum Festlegen eines neuen Passworts unterwegs.")


@contextmanager
def counted_failures(request: Request) -> Iterator[None]:
    """Refuse a blocked client address; count an unknown link or a wrong code as a failed authentication."""
    request.app.state.limits.refuse_if_blocked(request)
    try:
        yield
    except (NotFound, Unauthorized):
        request.app.state.limits.count_auth_failure(request)
        raise


@router.post("/password-reset", status_code=202, response_model=AcceptedOut, responses=PROBLEMS,
             summary="Ask for a link to set a new password (public; 202 whether or not the address has an account)")
def password_reset(request: Request, data: PasswordResetIn, session: Session = write_session) -> JSONResponse:
    limits = request.app.state.limits
    limits.check("password-reset", "client", limits.client(request.scope))     # each request may send an e-mail
    links.request_reset(session, data.tenant.strip().lower(), data.email, Origin.of(request))
    return JSONResponse({"detail": RESET_ACCEPTED}, status_code=202, headers=NO_STORE)


@router.get("/links/{token}", response_model=LinkOut, responses=PROBLEMS,
            summary="What an invitation or reset link is for, and until when it works (public; uses nothing up)")
def inspect_link(request: Request, token: str = TOKEN, session: Session = Depends(get_read_session)) -> JSONResponse:
    with counted_failures(request):
        view = links.inspect(session, token)
    body = LinkOut(purpose=view.purpose, email=view.email, name=view.name, expires_at=view.expires_at,
                   totp_required=view.totp_required)
    return JSONResponse(body.model_dump(mode="json"), headers=NO_STORE)


@router.post("/links/{token}", response_model=LoginOut, responses=PROBLEMS,
             summary="Set the password with an invitation or reset link and sign in (public; the link is used up)",
             description="Sets the password (policy: at least 12 characters, not a common one, not the e-mail "
                         "address or name), ends the user's other sessions and open links, and starts a session "
                         "(cookie, as POST /api/v1/auth/login). When the tenant requires a second factor for the "
                         "role and the user has none, the session is restricted to setting it up.")
def redeem_link(request: Request, data: LinkRedeem, token: str = TOKEN,
                session: Session = write_session) -> JSONResponse:
    origin = Origin.of(request)
    now = clock.now()
    with counted_failures(request):
        user = links.redeem(session, token, data.password, origin, totp_code=data.totp_code, now=now)
    tenant = identity.get_tenant(session, user.tenant_key)
    signed = local.start_session(session, tenant, user, origin, now, mfa=user.totp_enabled_at is not None,
                                 method="link")
    return signed_in(session, signed)
