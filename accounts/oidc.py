"""Sign-in through the tenant's OpenID Provider (OpenID Connect Core 1.0, Authorization Code flow), configured in
the tenant's rules ``[sign_in.oidc]`` (geo/rules.py ``OidcSignIn``).

1. ``begin``: a random ``state`` (CSRF of the redirect), ``nonce`` (binds the ID token to this sign-in) and PKCE
   ``code_verifier`` (S256: a stolen code is useless without it) are stored in ``oidc_logins``; the browser goes to
   the IdP's authorization endpoint. The same state is also put into a short-lived cookie, so that a callback URL
   made by somebody else (their code, their state) cannot sign this browser into their account (login CSRF).
2. ``finish`` (the callback): the state must be known, unused, of this tenant, under 10 minutes old and equal to the
   browser's cookie; it is deleted at once (single use). The code is exchanged at the token endpoint (Authlib's
   OAuth2 client over httpx, client authentication as the IdP offers it); the ID token is validated (joserfc:
   signature against the IdP's JWKS, ``iss``, ``aud``, ``azp``, ``exp``, ``iat``, ``nonce``). Its claims map to an
   organisation and a role through the rules' maps, the address must be verified and in an allowed domain. The
   user is found by (tenant, issuer, subject), else by address (and linked), else provisioned when ``provision``
   is on. Then a new browser session starts (method "oidc", the raw ID token kept for the logout).
3. ``logout_url``: RP-initiated logout, the IdP's end_session_endpoint with ``id_token_hint`` and a
   ``post_logout_redirect_uri`` that leads back to the sign-in page.

Every failure is an ``OidcFailure`` with a reason slug; the endpoints (accounts/oidc_endpoints.py) show the page
of accounts/oidc_pages.py for it and record a security event. Nothing is written but the used state's deletion
(and the event) when a sign-in fails: the checks all come before the first write.

The IdP's discovery document and its keys are cached per issuer for ``METADATA_TTL_S``; an ID token signed with a
key id the cache does not know fetches the keys again (key rotation), at most once per ``JWKS_REFRESH_S``.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.deprecate import AuthlibDeprecationWarning
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError, UnsupportedAlgorithmError
from joserfc.jwk import KeySet
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from accounts.models import OidcLogin
from breitband import clock, identity, sessions
from breitband.errors import ProblemError
from breitband.models import ROLE_ORG_KINDS, Organisation, OrgKind, Role, Tenant, User
from breitband.settings import get_settings
from geo.rules import OidcSignIn, parse_rules

with warnings.catch_warnings():
    # Authlib ≥ 1.9 prefers the httpx2 package and warns when it falls back to httpx, which this project uses
    # everywhere (and which Authlib still supports); the warning says nothing about our use. (authlib.deprecate,
    # imported above, has already set its own "always" filter, so this one comes before it.)
    warnings.filterwarnings("ignore", message="The httpx module is deprecated", category=AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

log = logging.getLogger("accounts.oidc")

LOGIN_TTL = timedelta(minutes=10)
METADATA_TTL_S = 3600.0
JWKS_REFRESH_S = 60.0
HTTP_TIMEOUT_S = 10.0
LEEWAY_S = 60                     # clock skew allowed between the IdP and us for exp and iat
DEFAULT_RETURN_TO = "/#/"
STATE_COOKIE = "breitband_oidc_state"
# Asymmetric algorithms only: "none" never, and HS* would make the client secret a signing key.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class OidcFailure(Exception):
    """A sign-in through the IdP that cannot go on. ``reason`` is a key of accounts.oidc_pages.REASONS (the page
    says what happened and what to do); ``detail`` is for the log and the security event; ``email`` when known."""

    def __init__(self, reason: str, detail: str, *, email: str | None = None, user_id: uuid.UUID | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.email, self.user_id = reason, detail, email, user_id


# --- configuration ------------------------------------------------------------------------------------------------

def config_of(tenant: Tenant) -> OidcSignIn | None:
    """The tenant's ``[sign_in.oidc]`` (rules were validated when stored; stored rules from before the section
    existed have none)."""
    try:
        return parse_rules(tenant.rules or {}).sign_in.oidc
    except ProblemError:
        log.error("the rules of tenant %s do not validate; OpenID Connect sign-in is off for it", tenant.key)
        return None


def tenant_config(session: Session, tenant_key: str) -> tuple[Tenant, OidcSignIn]:
    tenant = session.get(Tenant, tenant_key) if identity.TENANT_KEY_RE.match(tenant_key) else None
    config = config_of(tenant) if tenant is not None else None
    if tenant is None or config is None:
        raise OidcFailure("not-configured", f"tenant {tenant_key!r} has no [sign_in.oidc]")
    return tenant, config


def public_options(tenant: Tenant) -> dict[str, str] | None:
    """For GET /api/v1/auth/options: the IdP's display name and where the browser starts, or None."""
    config = config_of(tenant)
    if config is None:
        return None
    return {"name": config.name, "start_url": f"/auth/oidc/{tenant.key}/start"}


def client_secret(config: OidcSignIn) -> str:
    secret = os.environ.get(config.client_secret_env) if config.client_secret_env else config.client_secret
    if not secret:
        raise OidcFailure("idp-unavailable", f"the client secret variable {config.client_secret_env} is not set")
    return secret


def base_url() -> str:
    return get_settings().public_base_url.rstrip("/")


def redirect_uri(tenant_key: str) -> str:
    """Registered at the IdP as the client's redirect URI."""
    return f"{base_url()}/auth/oidc/{tenant_key}/callback"


def post_logout_redirect_uri(tenant_key: str) -> str:
    """Registered at the IdP as post-logout redirect URI; it leads on to the sign-in page (OpenID Connect
    RP-Initiated Logout forbids a fragment in it, so it cannot be ``/#/login`` itself)."""
    return f"{base_url()}/auth/oidc/{tenant_key}/signed-out"


# --- the IdP's metadata and keys (cached) -------------------------------------------------------------------------

@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    auth_methods: tuple[str, ...]
    algorithms: tuple[str, ...]


_lock = threading.Lock()
_metadata: dict[str, tuple[float, Metadata]] = {}
_keys: dict[str, tuple[float, KeySet]] = {}


def _get_json(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=HTTP_TIMEOUT_S, follow_redirects=False)
        response.raise_for_status()
        data = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OidcFailure("idp-unavailable", f"GET {url}: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise OidcFailure("idp-unavailable", f"GET {url}: not a JSON object")
    return data


def metadata(issuer: str) -> Metadata:
    """The discovery document of ``issuer`` (OpenID Connect Discovery 1.0), cached; its ``issuer`` must be exactly
    the configured one."""
    now = time.monotonic()
    cached = _metadata.get(issuer)
    if cached and now - cached[0] < METADATA_TTL_S:
        return cached[1]
    doc = _get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
    if doc.get("issuer") != issuer:
        raise OidcFailure("idp-unavailable", f"the discovery document names issuer {doc.get('issuer')!r}, "
                                             f"not {issuer!r}")
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not isinstance(doc.get(k), str)]
    if missing:
        raise OidcFailure("idp-unavailable", f"the discovery document lacks {', '.join(missing)}")
    algorithms = tuple(a for a in doc.get("id_token_signing_alg_values_supported") or ["RS256"]
                       if a in SIGNING_ALGORITHMS)
    found = Metadata(issuer=issuer, authorization_endpoint=doc["authorization_endpoint"],
                     token_endpoint=doc["token_endpoint"], jwks_uri=doc["jwks_uri"],
                     userinfo_endpoint=doc.get("userinfo_endpoint"),
                     end_session_endpoint=doc.get("end_session_endpoint"),
                     auth_methods=tuple(doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]),
                     algorithms=algorithms or ("RS256",))
    with _lock:
        _metadata[issuer] = (now, found)
    return found


def keys(meta: Metadata, *, refresh: bool = False) -> KeySet:
    """The IdP's signing keys, cached; ``refresh`` fetches them again unless that happened within JWKS_REFRESH_S."""
    now = time.monotonic()
    cached = _keys.get(meta.issuer)
    if cached and (now - cached[0] < (JWKS_REFRESH_S if refresh else METADATA_TTL_S)):
        return cached[1]
    try:
        key_set = KeySet.import_key_set(_get_json(meta.jwks_uri))
    except (JoseError, ValueError, TypeError) as exc:
        raise OidcFailure("idp-unavailable", f"the JWKS at {meta.jwks_uri} is invalid: {exc}") from None
    with _lock:
        _keys[meta.issuer] = (now, key_set)
    return key_set


# --- 1. begin -----------------------------------------------------------------------------------------------------

def safe_return_to(value: str | None) -> str:
    """A path of our own origin to land on after sign-in; anything else (another host, a scheme, ``//host``,
    backslashes, control characters, too long) gives the default."""
    if not value or len(value) > 500 or not value.startswith("/") or value.startswith("//"):
        return DEFAULT_RETURN_TO
    if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return DEFAULT_RETURN_TO
    return value


def _oauth_client(config: OidcSignIn, meta: Metadata, tenant_key: str, secret: str | None = None) -> OAuth2Client:
    method = "client_secret_basic" if "client_secret_basic" in meta.auth_methods else "client_secret_post"
    return OAuth2Client(client_id=config.client_id, client_secret=secret, scope=" ".join(config.scopes),
                        redirect_uri=redirect_uri(tenant_key), code_challenge_method="S256",
                        token_endpoint_auth_method=method, timeout=HTTP_TIMEOUT_S)


def begin(session: Session, tenant_key: str, return_to: str | None, *, now: datetime | None = None) -> tuple[str, str]:
    """Store a new login under way and → (the IdP's authorization URL, the state for the browser's cookie)."""
    now = now or clock.now()
    _, config = tenant_config(session, tenant_key)
    meta = metadata(config.issuer)
    session.execute(delete(OidcLogin).where(OidcLogin.created_at < now - LOGIN_TTL))   # opportunistic clean-up
    login = OidcLogin(state=secrets.token_urlsafe(32), tenant_key=tenant_key, nonce=secrets.token_urlsafe(32),
                      code_verifier=secrets.token_urlsafe(64), return_to=safe_return_to(return_to), created_at=now)
    session.add(login)
    session.flush()
    with _oauth_client(config, meta, tenant_key) as client:
        url, _ = client.create_authorization_url(meta.authorization_endpoint, state=login.state, nonce=login.nonce,
                                                 code_verifier=login.code_verifier)
    return url, login.state


# --- 2. finish ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Callback:
    """The query of the callback, as the IdP sent it, and the state the browser's cookie holds."""

    state: str | None
    code: str | None
    iss: str | None = None
    error: str | None = None
    error_description: str | None = None
    cookie_state: str | None = None


@dataclass(frozen=True)
class SignedIn:
    user_id: uuid.UUID
    started: sessions.Started
    return_to: str
    provisioned: bool


def take_login(session: Session, tenant_key: str, callback: Callback, now: datetime) -> OidcLogin:
    """The login under way for the callback's state, deleted (single use) — or the reason it is not valid."""
    if not callback.state:
        raise OidcFailure("state-unknown", "the callback has no state")
    login = session.scalar(select(OidcLogin).where(OidcLogin.state == callback.state[:64]).with_for_update())
    if login is None or login.tenant_key != tenant_key:
        raise OidcFailure("state-unknown", "no login under way with this state (used, or never started)")
    session.delete(login)
    session.flush()
    if not callback.cookie_state or not secrets.compare_digest(callback.cookie_state, login.state):
        raise OidcFailure("state-mismatch", "the state does not match this browser's state cookie")
    if now - login.created_at > LOGIN_TTL:
        raise OidcFailure("state-expired", f"the login was started at {login.created_at.isoformat()}")
    return login


def exchange_code(config: OidcSignIn, meta: Metadata, tenant_key: str, login: OidcLogin,
                  callback: Callback) -> dict[str, Any]:
    """The token response for the callback's code (with the PKCE verifier)."""
    if callback.error:
        raise OidcFailure("idp-error", f"{callback.error}: {callback.error_description or ''}".strip(": "))
    if callback.iss is not None and callback.iss != meta.issuer:
        raise OidcFailure("issuer-mismatch", f"the authorization response names issuer {callback.iss!r}")
    if not callback.code:
        raise OidcFailure("token-exchange-failed", "the callback has no code")
    try:
        with _oauth_client(config, meta, tenant_key, client_secret(config)) as client:
            token = client.fetch_token(meta.token_endpoint, grant_type="authorization_code", code=callback.code,
                                       code_verifier=login.code_verifier)
    except (AuthlibBaseError, httpx.HTTPError, ValueError) as exc:
        raise OidcFailure("token-exchange-failed", f"{type(exc).__name__}: {exc}") from None
    if not token.get("id_token"):
        raise OidcFailure("token-invalid", "the token response has no id_token (is 'openid' among the scopes?)")
    return dict(token)


def _decode(raw: str, meta: Metadata) -> jwt.Token:
    """Check the signature with the IdP's keys (fetched again once for a key id we do not know)."""
    try:
        try:
            return jwt.decode(raw, keys(meta), algorithms=list(meta.algorithms))
        except InvalidKeyIdError:           # a key we have not seen: the IdP may have rotated its keys
            return jwt.decode(raw, keys(meta, refresh=True), algorithms=list(meta.algorithms))
    except (BadSignatureError, InvalidKeyIdError, UnsupportedAlgorithmError) as exc:
        raise OidcFailure("signature", f"the ID token's signature does not verify: {exc}") from None
    except JoseError as exc:
        raise OidcFailure("token-invalid", f"the ID token cannot be read: {exc}") from None


def validate_id_token(raw: str, config: OidcSignIn, meta: Metadata, nonce: str, *,
                      now: datetime | None = None) -> dict[str, Any]:
    """The claims of a valid ID token (OpenID Connect Core 1.0 § 3.1.3.7), or OidcFailure naming the check."""
    claims = _decode(raw, meta).claims
    now_s = int((now or clock.now()).timestamp())
    if claims.get("iss") != meta.issuer:
        raise OidcFailure("token-invalid", f"iss is {claims.get('iss')!r}, not {meta.issuer!r}")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
    if config.client_id not in audiences:
        raise OidcFailure("audience", f"aud {audience!r} does not contain our client id {config.client_id!r}")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != config.client_id:
        raise OidcFailure("audience", f"azp is {azp!r}, not our client id {config.client_id!r}")
    for name in ("exp", "iat"):
        if not isinstance(claims.get(name), int | float):
            raise OidcFailure("token-invalid", f"the ID token has no numeric {name}")
    if claims["exp"] + LEEWAY_S <= now_s:
        raise OidcFailure("token-expired", f"exp {claims['exp']} is before now ({now_s})")
    if claims["iat"] - LEEWAY_S > now_s:
        raise OidcFailure("token-expired", f"iat {claims['iat']} is in the future (now {now_s})")
    if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(claims["nonce"], nonce):
        raise OidcFailure("nonce", "the ID token's nonce is not this login's")
    if not isinstance(claims.get("sub"), str) or not claims["sub"] or len(claims["sub"]) > 255:
        raise OidcFailure("token-invalid", "the ID token has no usable sub")
    return dict(claims)


def with_userinfo(claims: dict[str, Any], config: OidcSignIn, meta: Metadata, token: dict[str, Any]) -> dict[str, Any]:
    """IdPs that keep the profile out of the ID token serve it at the userinfo endpoint: ask there when a claim we
    map is missing. The answer's ``sub`` must be the ID token's (Core § 5.3.2)."""
    wanted = ("email", "email_verified", config.organisation_claim, config.role_claim)
    if all(k in claims for k in wanted) or not meta.userinfo_endpoint or not token.get("access_token"):
        return claims
    try:
        response = httpx.get(meta.userinfo_endpoint, timeout=HTTP_TIMEOUT_S,
                             headers={"Authorization": f"Bearer {token['access_token']}"})
        response.raise_for_status()
        info = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OidcFailure("idp-unavailable", f"userinfo: {type(exc).__name__}: {exc}") from None
    if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
        raise OidcFailure("token-invalid", "the userinfo answer is for another subject")
    return {**info, **claims}


# --- claims → who ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claimed:
    """Who the IdP says the person is, mapped to our terms."""

    subject: str
    email: str
    name: str
    organisation: Organisation
    role: Role


def _first_mapped(value: Any, mapping: dict[str, Any]) -> Any:
    """A claim is a string or a list of strings (IdPs that send groups or several roles): the first value the map
    names."""
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return next((mapping[v] for v in values if isinstance(v, str) and v in mapping), None)


def _organisation(session: Session, tenant_key: str, config: OidcSignIn, claims: dict[str, Any]) -> Organisation:
    ident = _first_mapped(claims.get(config.organisation_claim), config.organisations)
    if ident is None:
        raise OidcFailure("organisation-not-mapped", f"claim {config.organisation_claim}="
                                                     f"{claims.get(config.organisation_claim)!r} is not mapped")
    try:
        return identity.find_organisation(session, tenant_key, ident)
    except ProblemError:
        raise OidcFailure("organisation-not-mapped", f"the rules map to organisation {ident!r}, which tenant "
                                                     f"{tenant_key!r} does not have (exactly once)") from None


def claimed(session: Session, tenant_key: str, config: OidcSignIn, claims: dict[str, Any]) -> Claimed:
    """Map the claims, or OidcFailure: the address must be there, verified and in an allowed domain; organisation
    and role must be mapped and fit together (ROLE_ORG_KINDS)."""
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        raise OidcFailure("email-missing", "the claims carry no e-mail address")
    email = email.strip().lower()
    if claims.get("email_verified") is not True:
        raise OidcFailure("email-unverified", "email_verified is not true", email=email)
    if email.rpartition("@")[2] not in config.allowed_domains:
        raise OidcFailure("domain-not-allowed", f"{email.rpartition('@')[2]} is not among "
                                                f"{', '.join(config.allowed_domains)}", email=email)
    try:
        organisation = _organisation(session, tenant_key, config, claims)
    except OidcFailure as exc:
        exc.email = email
        raise
    role = _first_mapped(claims.get(config.role_claim), config.roles)
    value = f"claim {config.role_claim}={claims.get(config.role_claim)!r}"
    if role is None:
        raise OidcFailure("role-not-mapped", f"{value} is not mapped", email=email)
    if OrgKind(organisation.kind) not in ROLE_ORG_KINDS[Role(role)]:
        raise OidcFailure("role-not-mapped", f"{value} maps to {Role(role).value}, which an organisation of kind "
                                             f"{organisation.kind} cannot hold", email=email)
    name = claims.get("name") if isinstance(claims.get("name"), str) and claims["name"].strip() else email
    return Claimed(subject=claims["sub"], email=email, name=name.strip()[:200], organisation=organisation,
                   role=Role(role))


@dataclass(frozen=True)
class Matched:
    user: User
    provisioned: bool
    linked: bool
    role_before: str | None      # set when the IdP's role replaced another


def match_user(session: Session, tenant_key: str, issuer: str, config: OidcSignIn, who: Claimed) -> Matched:
    """The user for the IdP's identity: by (tenant, issuer, subject), else by address (then linked to it), else a
    new one when the rules provision. The IdP is the authority on the role of the people it signs in: a changed
    role is taken over (and the user's other sessions end, as for any role change)."""
    user = session.scalar(select(User).where(User.tenant_key == tenant_key, User.oidc_issuer == issuer,
                                             User.oidc_subject == who.subject).with_for_update())
    linked = provisioned = False
    if user is None:
        user = session.scalar(select(User).where(User.tenant_key == tenant_key, User.email == who.email)
                              .with_for_update())
        if user is not None and user.oidc_subject is not None:
            raise OidcFailure("account-linked-elsewhere", f"{who.email} is linked to {user.oidc_issuer} "
                              f"subject {user.oidc_subject!r}", email=who.email, user_id=user.id)
        linked = user is not None
    if user is not None and not user.active:
        raise OidcFailure("user-deactivated", f"user {user.id} is deactivated", email=who.email, user_id=user.id)
    if user is not None and user.organisation_id != who.organisation.id:
        raise OidcFailure("organisation-mismatch", f"user {user.id} belongs to organisation {user.organisation_id}, "
                          f"the IdP's claims to {who.organisation.id}", email=who.email, user_id=user.id)
    if user is None:
        if not config.provision:
            raise OidcFailure("user-unknown", f"no user {who.email} and provision is off", email=who.email)
        user = identity.create_user(session, who.organisation, who.email, who.name, who.role)
        provisioned = True
    role_before = None
    if user.role != who.role.value:
        role_before, user.role = user.role, who.role.value
        sessions.end_all(session, user.id)
    user.oidc_issuer, user.oidc_subject = issuer, who.subject
    session.flush()
    return Matched(user=user, provisioned=provisioned, linked=linked, role_before=role_before)


def finish(session: Session, tenant_key: str, callback: Callback, *, client_ip: str | None,
           user_agent: str | None, now: datetime | None = None) -> tuple[SignedIn, Matched, Claimed]:
    """The callback: validate everything, then find or provision the user and start a session."""
    now = now or clock.now()
    _, config = tenant_config(session, tenant_key)
    login = take_login(session, tenant_key, callback, now)
    meta = metadata(config.issuer)
    token = exchange_code(config, meta, tenant_key, login, callback)
    claims = validate_id_token(token["id_token"], config, meta, login.nonce, now=now)
    who = claimed(session, tenant_key, config, with_userinfo(claims, config, meta, token))
    matched = match_user(session, tenant_key, meta.issuer, config, who)
    matched.user.last_sign_in_at = now
    started = sessions.start(session, matched.user.id, method="oidc", mfa=False, client_ip=client_ip,
                             user_agent=user_agent, oidc_id_token=token["id_token"], now=now)
    signed_in = SignedIn(user_id=matched.user.id, started=started, return_to=login.return_to or DEFAULT_RETURN_TO,
                         provisioned=matched.provisioned)
    return signed_in, matched, who


# --- 3. logout ----------------------------------------------------------------------------------------------------

def logout_url(session: Session, tenant_key: str, id_token: str | None) -> str | None:
    """Where the browser goes to sign out at the IdP too (RP-Initiated Logout 1.0), for a session that began there:
    the end_session_endpoint with id_token_hint, client_id and the post-logout redirect URI; None when the IdP has
    none, the tenant has no OIDC (any more) or the IdP cannot be reached (the local sign-out stands either way)."""
    if not id_token:
        return None
    try:
        _, config = tenant_config(session, tenant_key)
        meta = metadata(config.issuer)
    except OidcFailure as exc:
        log.warning("no IdP logout for tenant %s: %s", tenant_key, exc)
        return None
    if not meta.end_session_endpoint:
        return None
    return str(httpx.URL(meta.end_session_endpoint).copy_merge_params({
        "id_token_hint": id_token, "client_id": config.client_id,
        "post_logout_redirect_uri": post_logout_redirect_uri(tenant_key)}))


__all__ = ["OidcFailure", "Callback", "SignedIn", "begin", "finish", "logout_url", "public_options", "config_of",
           "validate_id_token", "metadata", "keys", "safe_return_to", "STATE_COOKIE",
           "redirect_uri", "post_logout_redirect_uri"]
