"""Identity service: tenants, organisations, users and API tokens (business rules; never commits)."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pyproj import CRS
from pyproj.exceptions import CRSError
from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session

from breitband import clock
from breitband.dates import iso_seconds
from breitband.errors import Conflict, NotFound, UnprocessableEntity
from breitband.models import ROLE_ORG_KINDS, ApiToken, Organisation, OrgKind, Role, Tenant, TokenScope, User
from breitband.settings import get_settings

TOKEN_PREFIX = "bb_"
TENANT_KEY_RE = re.compile(r"^[a-z][a-z0-9-]{1,15}$")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: uuid.UUID
    email: str
    name: str
    role: Role
    tenant_key: str
    organisation_id: uuid.UUID
    organisation_kind: OrgKind
    organisation_name: str
    token_id: uuid.UUID | None = None
    token_expires_at: datetime | None = None
    # How the request was authenticated: "token" (Bearer, or Basic on the GIS endpoints) or "session" (the browser's
    # cookie, breitband/sessions.py); the token's scope ("read" | "write"), or the session's id.
    auth_method: str = "token"
    token_scope: str | None = None
    session_id: uuid.UUID | None = None
    # (tenants.updated_at, tenants.data_changed_at) as read with the token: per-tenant caches (the resolution's
    # rules, territory, directory) compare it and skip their own query while it is unchanged.
    tenant_stamp: tuple[datetime, datetime] | None = None

    @property
    def is_tenant_admin(self) -> bool:
        return self.role is Role.tenant_admin


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_srid(crs: str | int) -> int:
    """'EPSG:25832', '25832' or 25832 → 25832; the CRS must be known to pyproj and projected (metric)."""
    text = str(crs).strip()
    try:
        parsed = CRS.from_user_input(int(text) if text.isdigit() else text)
    except CRSError as exc:
        raise UnprocessableEntity(f"Unknown CRS {crs!r}: {exc}", type="unknown-crs", field="crs") from None
    epsg = parsed.to_epsg()
    if epsg is None:
        raise UnprocessableEntity(f"CRS {crs!r} has no EPSG code", type="unknown-crs", field="crs")
    if not parsed.is_projected or parsed.axis_info[0].unit_name not in ("metre", "meter"):
        raise UnprocessableEntity(f"CRS EPSG:{epsg} is not a metric projected CRS; lengths need one "
                                  "(e.g. EPSG:25832 for ETRS89 / UTM 32N)", type="crs-not-metric", field="crs")
    return epsg


# --- tenants -------------------------------------------------------------------------------------------------

def create_tenant(session: Session, key: str, name: str, crs: str | int, rules: dict[str, Any] | None = None) -> Tenant:
    if not TENANT_KEY_RE.match(key):
        raise UnprocessableEntity(f"Tenant key {key!r} must be 2-16 lowercase letters, digits or '-', "
                                  "starting with a letter (e.g. 'he')", field="key")
    if session.get(Tenant, key) is not None:
        raise Conflict(f"Tenant {key!r} exists already", type="tenant-exists")
    tenant = Tenant(key=key, name=name, srid=parse_srid(crs), rules=rules or {})
    session.add(tenant)
    session.flush()
    return tenant


def update_tenant(session: Session, key: str, *, name: str | None = None, crs: str | int | None = None,
                  rules: dict[str, Any] | None = None) -> Tenant:
    tenant = get_tenant(session, key)
    if name:
        tenant.name = name
    if crs is not None:
        tenant.srid = parse_srid(crs)
    if rules is not None:
        tenant.rules = rules
    session.flush()
    return tenant


def get_tenant(session: Session, key: str) -> Tenant:
    tenant = session.get(Tenant, key)
    if tenant is None:
        raise NotFound(f"No tenant {key!r}", type="tenant-not-found")
    return tenant


def list_tenants(session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.key)))


# --- organisations -------------------------------------------------------------------------------------------

def create_organisation(session: Session, tenant_key: str, kind: OrgKind | str, name: str, *,
                        email: str | None = None, phone: str | None = None, address: str | None = None,
                        org_id: uuid.UUID | None = None) -> Organisation:
    get_tenant(session, tenant_key)
    try:
        kind = OrgKind(kind)
    except ValueError:
        raise UnprocessableEntity(f"Unknown organisation kind {kind!r}; one of "
                                  + ", ".join(k.value for k in OrgKind), field="kind") from None
    org = Organisation(id=org_id or uuid.uuid4(), tenant_key=tenant_key, kind=kind.value, name=name,
                       email=email, phone=phone, address=address)
    session.add(org)
    session.flush()
    return org


def readable_organisations(principal: Principal) -> Select[tuple[Organisation]]:
    """The one place that scopes organisation reads: same tenant; operators' details only to their members."""
    stmt = select(Organisation).where(Organisation.tenant_key == principal.tenant_key)
    if not principal.is_tenant_admin:
        stmt = stmt.where(or_(Organisation.kind != OrgKind.operator.value,
                              Organisation.id == principal.organisation_id))
    return stmt


def get_readable_organisation(session: Session, principal: Principal, org_id: uuid.UUID) -> Organisation:
    org = session.scalars(readable_organisations(principal).where(Organisation.id == org_id)).first()
    if org is None:
        raise NotFound(f"No organisation {org_id}", type="organisation-not-found")
    return org


def find_organisation(session: Session, tenant_key: str, ident: str) -> Organisation:
    """By UUID or exact name within a tenant (CLI convenience)."""
    stmt = select(Organisation).where(Organisation.tenant_key == tenant_key)
    try:
        stmt = stmt.where(Organisation.id == uuid.UUID(ident))
    except ValueError:
        stmt = stmt.where(Organisation.name == ident)
    found = list(session.scalars(stmt.limit(2)))
    if not found:
        raise NotFound(f"No organisation {ident!r} in tenant {tenant_key!r}", type="organisation-not-found")
    if len(found) > 1:
        raise Conflict(f"Several organisations are named {ident!r}; use the id", type="ambiguous-organisation")
    return found[0]


# --- users and tokens ----------------------------------------------------------------------------------------

def create_user(session: Session, organisation: Organisation, email: str, name: str, role: Role | str) -> User:
    try:
        role = Role(role)
    except ValueError:
        raise UnprocessableEntity(f"Unknown role {role!r}; one of " + ", ".join(r.value for r in Role),
                                  field="role") from None
    if OrgKind(organisation.kind) not in ROLE_ORG_KINDS[role]:
        allowed = ", ".join(sorted(k.value for k in ROLE_ORG_KINDS[role]))
        raise UnprocessableEntity(f"Role {role.value} belongs to an organisation of kind {allowed}, "
                                  f"not {organisation.kind}", field="role")
    email = email.strip().lower()
    if "@" not in email:
        raise UnprocessableEntity(f"{email!r} is not an e-mail address", field="email")
    exists = session.scalar(select(User.id).where(User.tenant_key == organisation.tenant_key, User.email == email))
    if exists:
        raise Conflict(f"A user {email} exists already in tenant {organisation.tenant_key!r}", type="user-exists")
    user = User(tenant_key=organisation.tenant_key, organisation_id=organisation.id, email=email, name=name,
                role=role.value)
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, tenant_key: str, email: str) -> User:
    user = session.scalar(select(User).where(User.tenant_key == tenant_key, User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"No user {email!r} in tenant {tenant_key!r}", type="user-not-found")
    return user


def set_user_active(session: Session, user: User, active: bool) -> bool:
    """Deactivate or reactivate a user; → whether anything changed. Every request with one of a deactivated user's
    tokens is refused from the next one on (401 ``user-deactivated``, checked with each token in ``authenticate``);
    the tokens themselves are kept, so a reactivated user works with them again (revoke them to end them for good)."""
    if user.active == active:
        return False
    user.active = active
    session.flush()
    return True


def token_lifetime(expires_in_days: int | None, *, field: str = "expires_in_days") -> timedelta:
    """The lifetime of a new token: the setting token_default_expiry_days when none is asked for, else the days
    asked for, which must lie between 1 and token_max_expiry_days."""
    settings = get_settings()
    if expires_in_days is None:
        return timedelta(days=settings.token_default_expiry_days)
    if not 1 <= expires_in_days <= settings.token_max_expiry_days:
        raise UnprocessableEntity(f"{field} must be between 1 and {settings.token_max_expiry_days} days "
                                  f"(token_max_expiry_days), not {expires_in_days}", type="invalid-token-expiry",
                                  field=field)
    return timedelta(days=expires_in_days)


def _token_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200 or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UnprocessableEntity("A token's name must be 1-200 characters without control characters",
                                  type="invalid-token-name", field="name")
    return name


def token_scope(scope: TokenScope | str | None) -> TokenScope:
    """"read" (GET and HEAD only) or "write" (everything the user's role may do; the default)."""
    try:
        return TokenScope(scope or TokenScope.write)
    except ValueError:
        raise UnprocessableEntity(f"A token's scope is 'read' or 'write', not {scope!r}", type="invalid-token-scope",
                                  field="scope") from None


def create_token(session: Session, user: User, name: str, *, expires_in: timedelta | None = None,
                 scope: TokenScope | str | None = None, now: datetime | None = None) -> tuple[ApiToken, str]:
    """Returns the token row and the secret. The secret is not stored and cannot be shown again. Every token
    expires: after ``expires_in``, by default after the setting token_default_expiry_days."""
    now = now or clock.now()
    if expires_in is None:
        expires_in = token_lifetime(None)
    if expires_in <= timedelta(0):
        raise UnprocessableEntity("A token's lifetime must be positive", type="invalid-token-expiry",
                                  field="expires_in_days")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=_token_name(name), token_hash=hash_token(secret), prefix=secret[:10],
                     created_at=now, expires_at=now + expires_in, scope=token_scope(scope).value)
    session.add(token)
    session.flush()
    return token, secret


def active_tokens(user_id: uuid.UUID, now: datetime) -> Select[tuple[ApiToken]]:
    return select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None),
                                  or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))


def create_own_token(session: Session, principal: Principal, name: str, expires_in_days: int | None, *,
                     scope: TokenScope | str | None = None, now: datetime | None = None) -> tuple[ApiToken, str]:
    """A new token for the caller (self-service), within token_max_expiry_days and token_max_active_per_user."""
    now = now or clock.now()
    lifetime = token_lifetime(expires_in_days)
    name = _token_name(name)
    limit = get_settings().token_max_active_per_user
    user = session.scalars(select(User).where(User.id == principal.user_id).with_for_update()).one()
    active = session.scalar(select(func.count()).select_from(active_tokens(user.id, now).subquery()))
    if active >= limit:
        raise Conflict(f"You hold {active} active tokens, the most allowed (token_max_active_per_user = {limit}); "
                       "revoke one you no longer use first", type="too-many-tokens")
    return create_token(session, user, name, expires_in=lifetime, scope=token_scope(scope), now=now)


def list_tokens(session: Session, user_id: uuid.UUID, limit: int = 200) -> list[ApiToken]:
    """A user's tokens, newest first (revoked and expired ones included, so the list tells what happened)."""
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user_id)
                                .order_by(ApiToken.created_at.desc(), ApiToken.id).limit(limit)))


def _revoke(session: Session, token: ApiToken | None, token_id: uuid.UUID, now: datetime | None) -> ApiToken:
    if token is None:
        raise NotFound(f"No token {token_id}", type="token-not-found")
    if token.revoked_at is None:
        token.revoked_at = now or clock.now()
        session.flush()
    return token


def revoke_token(session: Session, token_id: uuid.UUID, *, now: datetime | None = None) -> ApiToken:
    """Any token by its id (the installation's CLI). Revoking a revoked token keeps its first revocation time."""
    return _revoke(session, session.get(ApiToken, token_id), token_id, now)


def revoke_own_token(session: Session, principal: Principal, token_id: uuid.UUID, *,
                     now: datetime | None = None) -> ApiToken:
    """One of the caller's own tokens; another user's token is 404 (as if it did not exist)."""
    token = session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == principal.user_id))
    return _revoke(session, token, token_id, now)


def get_tenant_user(session: Session, principal: Principal, user_id: uuid.UUID) -> User:
    """A user of the caller's tenant (tenant admins); another tenant's user is 404."""
    user = session.scalar(select(User).where(User.id == user_id, User.tenant_key == principal.tenant_key))
    if user is None:
        raise NotFound(f"No user {user_id}", type="user-not-found")
    return user


def revoke_user_token(session: Session, principal: Principal, user_id: uuid.UUID, token_id: uuid.UUID, *,
                      now: datetime | None = None) -> ApiToken:
    """A token of a user of the caller's tenant (tenant admins); anything else is 404."""
    get_tenant_user(session, principal, user_id)
    token = session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id))
    return _revoke(session, token, token_id, now)


def cap_token_expiry(session: Session, days: int, *, tenant_key: str | None = None,
                     now: datetime | None = None) -> int:
    """Give every active token that never expires, or expires later than ``days`` from now, the expiry now + days
    (for tokens issued before expiry was the default). → the number of tokens changed."""
    now = now or clock.now()
    cap = now + token_lifetime(days, field="days")
    stmt = (update(ApiToken).where(ApiToken.revoked_at.is_(None),
                                   or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > cap))
            .values(expires_at=cap))
    if tenant_key is not None:
        get_tenant(session, tenant_key)
        stmt = stmt.where(ApiToken.user_id.in_(select(User.id).where(User.tenant_key == tenant_key)))
    return session.execute(stmt.execution_options(synchronize_session=False)).rowcount


class AuthError(Exception):
    """Why a secret does not authenticate: ``detail`` for people, ``reason`` (token-unknown, token-revoked,
    token-expired, user-deactivated) for programs."""

    def __init__(self, detail: str, reason: str = "token-invalid") -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason


_AUTH_SQL = (
    select(ApiToken.id.label("token_id"), ApiToken.revoked_at, ApiToken.expires_at, ApiToken.last_used_at,
           ApiToken.scope,
           User.id.label("user_id"), User.email, User.name, User.role, User.active, User.tenant_key,
           Organisation.id.label("organisation_id"), Organisation.kind, Organisation.name.label("organisation_name"),
           Tenant.updated_at.label("tenant_updated_at"), Tenant.data_changed_at.label("tenant_data_changed_at"))
    .join(User, User.id == ApiToken.user_id)
    .join(Organisation, Organisation.id == User.organisation_id)
    .join(Tenant, Tenant.key == User.tenant_key)
)
# How stale a token's last_used_at may get before a request writes it again (one write per minute, not per call).
LAST_USED_EVERY = timedelta(minutes=1)


def authenticate(session: Session, secret: str, *, now: datetime | None = None) -> Principal:
    """Resolve a Bearer secret to a principal, or raise AuthError with the reason. One query on columns (no ORM
    objects: it runs on every request), plus an update of last_used_at at most once a minute."""
    now = now or clock.now()
    row = session.execute(_AUTH_SQL.where(ApiToken.token_hash == hash_token(secret))).first()
    if row is None:
        raise AuthError("The token is not valid", "token-unknown")
    if row.revoked_at is not None:
        raise AuthError(f"The token was revoked at {iso_seconds(row.revoked_at)} (signed out or withdrawn); "
                        "sign in with another token", "token-revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise AuthError(f"The token expired at {iso_seconds(row.expires_at)}; get a new one from your operating office "
                        "(or create one with POST /api/v1/me/tokens while another token is valid)", "token-expired")
    if not row.active:
        raise AuthError("The user is deactivated", "user-deactivated")
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
        session.execute(update(ApiToken).where(ApiToken.id == row.token_id).values(last_used_at=now))
    return Principal(user_id=row.user_id, email=row.email, name=row.name, role=Role(row.role),
                     tenant_key=row.tenant_key, organisation_id=row.organisation_id,
                     organisation_kind=OrgKind(row.kind), organisation_name=row.organisation_name,
                     token_id=row.token_id, token_expires_at=row.expires_at, token_scope=row.scope,
                     tenant_stamp=(row.tenant_updated_at, row.tenant_data_changed_at))
