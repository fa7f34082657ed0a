"""The browser's side of OpenID Connect sign-in (accounts/oidc.py): top-level navigations, not API calls, so they
answer with redirects and pages rather than JSON, and stay out of the OpenAPI document.

- ``GET /auth/oidc/{tenant}/start?return_to=/#/…`` → 302 to the IdP, with a short-lived state cookie;
- ``GET /auth/oidc/{tenant}/callback`` → the session cookie and 302 to ``return_to`` (a path of ours, default
  ``/#/``), or a page saying what went wrong and what to do (accounts/oidc_pages.py), 400/403 (502 when the IdP
  cannot be reached);
- ``GET /auth/oidc/{tenant}/signed-out`` → 302 to the sign-in page: the post-logout redirect URI registered at the
  IdP (POST /api/v1/auth/logout answers the IdP's logout URL, accounts.oidc.logout_url);
- ``GET /auth/oidc/page.css`` → the failure pages' stylesheet.

Every sign-in and every failure is a security event (oidc-sign-in, oidc-failed, user-provisioned, role-changed).
A failed callback counts as a failed authentication of the client address (breitband/limits.py, the same counter as
bad tokens and passwords); over the limit, start and callback answer 429 with a page and Retry-After.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from accounts import events, oidc
from accounts.oidc_pages import PAGE_CSS, SIGN_IN_PAGE, page
from breitband import limits, sessions
from breitband.db import write_session
from breitband.limits import TooManyRequests

router = APIRouter(prefix="/auth/oidc", include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}


def _state_cookie_path(tenant: str) -> str:
    return f"/auth/oidc/{tenant}/"


@router.get("/page.css")
def page_css() -> Response:
    """The look of the failure pages (accounts/oidc_pages.py): the same for every tenant, cached for a day."""
    return Response(PAGE_CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/{tenant}/start")
def start(tenant: str, request: Request, return_to: str | None = None,
          session: Session = write_session) -> Response:
    try:
        limits.of(request).refuse_if_blocked(request)
    except TooManyRequests as exc:
        return page("too-many-attempts", headers=exc.headers)
    try:
        url, state = oidc.begin(session, tenant, return_to)
    except oidc.OidcFailure as failure:
        oidc.log.warning("OIDC start for tenant %s failed: %s", tenant, failure)
        return page(failure.reason)
    response = RedirectResponse(url, status_code=302, headers=NO_STORE)
    response.set_cookie(oidc.STATE_COOKIE, state, max_age=int(oidc.LOGIN_TTL.total_seconds()),
                        path=_state_cookie_path(tenant), httponly=True, secure=sessions.secure_cookies(),
                        samesite="lax")
    return response


@router.get("/{tenant}/callback")
def callback(tenant: str, request: Request, session: Session = write_session) -> Response:
    try:
        limits.of(request).refuse_if_blocked(request)
    except TooManyRequests as exc:
        return page("too-many-attempts", headers=exc.headers)
    q = request.query_params
    received = oidc.Callback(state=q.get("state"), code=q.get("code"), iss=q.get("iss"), error=q.get("error"),
                             error_description=q.get("error_description"),
                             cookie_state=request.cookies.get(oidc.STATE_COOKIE))
    origin = events.Origin.of(request)
    try:
        signed_in, matched, who = oidc.finish(session, tenant, received, client_ip=origin.client_ip,
                                              user_agent=origin.user_agent)
    except oidc.OidcFailure as failure:
        if failure.reason not in ("not-configured", "idp-unavailable"):
            limits.of(request).count_auth_failure(request)
        response = _failed(session, tenant, origin, failure, received)
    else:
        _record_sign_in(session, tenant, origin, matched, who)
        response = RedirectResponse(signed_in.return_to, status_code=302, headers=NO_STORE)
        sessions.set_cookie(response, signed_in.started)
    response.delete_cookie(oidc.STATE_COOKIE, path=_state_cookie_path(tenant), httponly=True,
                           secure=sessions.secure_cookies(), samesite="lax")
    return response


@router.get("/{tenant}/signed-out")
def signed_out(tenant: str) -> Response:
    return RedirectResponse(SIGN_IN_PAGE, status_code=302, headers=NO_STORE)


def _failed(session: Session, tenant: str, origin: events.Origin, failure: oidc.OidcFailure,
            received: oidc.Callback) -> Response:
    """The page for a failed sign-in, and the event (when the tenant exists: events belong to a tenant)."""
    oidc.log.warning("OIDC sign-in for tenant %s failed: %s", tenant, failure)
    if failure.reason != "not-configured":
        events.record(session, "oidc-failed", tenant, origin, user_id=failure.user_id, email=failure.email,
                      detail={"reason": failure.reason, "detail": failure.detail[:500]})
    return page(failure.reason, detail=received.error if failure.reason == "idp-error" else None)


def _record_sign_in(session: Session, tenant: str, origin: events.Origin, matched: oidc.Matched,
                    who: oidc.Claimed) -> None:
    user = matched.user
    if matched.provisioned:
        events.record(session, "user-provisioned", tenant, origin, user_id=user.id, email=user.email,
                      detail={"organisation_id": str(who.organisation.id), "role": who.role.value,
                              "subject": who.subject})
    if matched.role_before is not None:
        events.record(session, "role-changed", tenant, origin, user_id=user.id, email=user.email,
                      detail={"before": matched.role_before, "after": user.role, "source": "oidc"})
    events.record(session, "oidc-sign-in", tenant, origin, user_id=user.id, email=user.email,
                  detail={"subject": who.subject, "linked": matched.linked, "provisioned": matched.provisioned})


__all__ = ["router"]
