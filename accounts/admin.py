"""Administration of users and organisations: who may change whom, and the guards that keep a tenant manageable.

Scope:
* a tenant admin administers every organisation and user of the tenant;
* an organisation's admin (``authority_admin`` of a road authority or participating body, ``operator_admin`` of an
  operator) administers the users of its own organisation, with the roles of that organisation's kind only — never
  ``tenant_admin``; users of other organisations do not exist for them (404).

Guards: nobody changes their own role or deactivates themselves; the last active admin of an organisation (its
``operator_admin``, ``authority_admin`` or, in the operating office, ``tenant_admin``) and the last tenant admin of
the tenant cannot be demoted or deactivated (409). A role change and a deactivation end the user's browser sessions
(tokens are refused through ``users.active`` / read the role afresh on every request).

Every change is a security event (accounts/events.py) with the actor, the client and ``detail`` before/after.
Services flush; the request or the command line commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session

from accounts import links
from accounts.events import Origin, record_by
from accounts.models import AccountLink, LinkPurpose
from breitband import clock, identity, sessions
from breitband.errors import Conflict, Forbidden, NotFound, UnprocessableEntity
from breitband.identity import Principal
from breitband.models import ROLE_ORG_KINDS, Organisation, OrgKind, Role, User

# The role that administers an organisation of each kind.
ADMIN_ROLE = {OrgKind.operator: Role.operator_admin, OrgKind.road_authority: Role.authority_admin,
              OrgKind.participating_body: Role.authority_admin, OrgKind.operating_office: Role.tenant_admin}
ADMIN_ROLES = frozenset(ADMIN_ROLE.values())
MAX_LIMIT = 500


def like(text: str) -> str:
    """``q`` as an ILIKE pattern that matches it literally anywhere (``%``, ``_`` and ``\\`` escaped)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def page_bounds(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise UnprocessableEntity(f"limit must lie between 1 and {MAX_LIMIT}", type="invalid-parameter",
                                  field="limit")
    if offset < 0:
        raise UnprocessableEntity("offset must not be negative", type="invalid-parameter", field="offset")


def parse_role(role: str, field: str = "role") -> Role:
    try:
        return Role(role)
    except ValueError:
        raise UnprocessableEntity(f"Unknown role {role!r}; one of " + ", ".join(r.value for r in Role),
                                  type="invalid-role", field=field) from None


# --- scope --------------------------------------------------------------------------------------------------------

def is_admin(principal: Principal) -> bool:
    return principal.role in ADMIN_ROLES


def scoped_users(principal: Principal) -> Select[tuple[User]]:
    """The users the caller administers: the tenant's (tenant admin) or the own organisation's."""
    stmt = select(User).where(User.tenant_key == principal.tenant_key)
    if not principal.is_tenant_admin:
        stmt = stmt.where(User.organisation_id == principal.organisation_id)
    return stmt


def scoped_organisations(principal: Principal) -> Select[tuple[Organisation]]:
    stmt = select(Organisation).where(Organisation.tenant_key == principal.tenant_key)
    if not principal.is_tenant_admin:
        stmt = stmt.where(Organisation.id == principal.organisation_id)
    return stmt


def get_user(session: Session, principal: Principal, user_id: uuid.UUID, *, lock: bool = False) -> User:
    stmt = scoped_users(principal).where(User.id == user_id)
    user = session.scalar(stmt.with_for_update() if lock else stmt)
    if user is None:
        raise NotFound(f"No user {user_id} among the users you administer", type="user-not-found")
    return user


def get_organisation(session: Session, principal: Principal, org_id: uuid.UUID, *, lock: bool = False
                     ) -> Organisation:
    stmt = scoped_organisations(principal).where(Organisation.id == org_id)
    org = session.scalar(stmt.with_for_update() if lock else stmt)
    if org is None:
        raise NotFound(f"No organisation {org_id} among those you administer", type="organisation-not-found")
    return org


def check_grant(principal: Principal, org: Organisation, role: Role) -> None:
    """May the caller give ``role`` to a member of ``org``? 403 beyond the caller's rights, 422 for a role that
    does not belong to the organisation's kind."""
    if role is Role.tenant_admin and not principal.is_tenant_admin:
        raise Forbidden("Only a tenant admin can make someone a tenant admin", type="role-not-grantable",
                        field="role")
    if not principal.is_tenant_admin and org.id != principal.organisation_id:
        raise Forbidden("You administer the users of your own organisation only", type="organisation-outside-scope",
                        field="organisation_id")
    if OrgKind(org.kind) not in ROLE_ORG_KINDS[role]:
        kinds = ", ".join(sorted(k.value for k in ROLE_ORG_KINDS[role]))
        allowed = ", ".join(r.value for r in Role if OrgKind(org.kind) in ROLE_ORG_KINDS[r])
        raise UnprocessableEntity(f"The role {role.value} belongs to organisations of kind {kinds}; "
                                  f"{org.name} is a {org.kind} (roles: {allowed})", type="role-not-for-organisation",
                                  field="role")


def _not_self(principal: Principal, user: User, what: str) -> None:
    if user.id == principal.user_id:
        raise Forbidden(f"You cannot {what} yourself; ask another administrator", type="own-account")


def guard_last_admin(session: Session, user: User, what: str) -> None:
    """Refuse to take the admin role (or the account) from the last active admin of the user's organisation, or
    from the tenant's last active tenant admin. The admins in question are locked first, so that two admins who
    demote each other at the same time cannot both succeed."""
    if not user.active or Role(user.role) not in ADMIN_ROLES:
        return
    others = [u for u in session.scalars(
        select(User).where(User.organisation_id == user.organisation_id, User.role == user.role,
                           User.active.is_(True)).with_for_update()) if u.id != user.id]
    if Role(user.role) is Role.tenant_admin:
        tenant_admins = [u for u in session.scalars(
            select(User).where(User.tenant_key == user.tenant_key, User.role == Role.tenant_admin.value,
                               User.active.is_(True)).with_for_update()) if u.id != user.id]
        if not tenant_admins:
            raise Conflict(f"{user.email} is the tenant's last active tenant admin; make someone else tenant admin "
                           f"before you {what}", type="last-tenant-admin")
    if not others:
        raise Conflict(f"{user.email} is the last active {user.role} of the organisation; give another member that "
                       f"role before you {what}", type="last-organisation-admin")


def _actor(session: Session, principal: Principal) -> User:
    return session.get(User, principal.user_id)


# --- users --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UserRow:
    user: User
    organisation: Organisation
    invitation_expires_at: datetime | None     # an open invitation link


def _open_invitation(now: datetime):
    return (select(func.max(AccountLink.expires_at))
            .where(AccountLink.user_id == User.id, AccountLink.purpose == LinkPurpose.invitation.value,
                   AccountLink.used_at.is_(None), AccountLink.expires_at > now)
            .correlate(User).scalar_subquery())


def list_users(session: Session, principal: Principal, *, organisation_id: uuid.UUID | None = None,
               role: str | None = None, active: bool | None = None, q: str | None = None, limit: int = 100,
               offset: int = 0, now: datetime | None = None) -> tuple[list[UserRow], int]:
    """The users the caller administers, by name then e-mail. → (page, total matching)."""
    page_bounds(limit, offset)
    stmt = scoped_users(principal)
    if organisation_id is not None:
        stmt = stmt.where(User.organisation_id == organisation_id)
    if role is not None:
        stmt = stmt.where(User.role == parse_role(role).value)
    if active is not None:
        stmt = stmt.where(User.active.is_(active))
    if q and q.strip():
        pattern = like(q.strip())
        stmt = stmt.where(or_(User.name.ilike(pattern, escape="\\"), User.email.ilike(pattern, escape="\\")))
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = session.execute(
        stmt.add_columns(Organisation, _open_invitation(now or clock.now()))
        .join(Organisation, Organisation.id == User.organisation_id)
        .order_by(func.lower(User.name), User.email, User.id).limit(limit).offset(offset))
    return [UserRow(u, o, inv) for u, o, inv in rows], total


def user_row(session: Session, user: User, now: datetime | None = None) -> UserRow:
    invitation = session.scalar(select(func.max(AccountLink.expires_at)).where(
        AccountLink.user_id == user.id, AccountLink.purpose == LinkPurpose.invitation.value,
        AccountLink.used_at.is_(None), AccountLink.expires_at > (now or clock.now())))
    return UserRow(user, session.get(Organisation, user.organisation_id), invitation)


def invite_user(session: Session, principal: Principal, origin: Origin, *, email: str, name: str, role: str,
                organisation_id: uuid.UUID) -> User:
    """Create a user without a password in an organisation the caller administers and e-mail the invitation."""
    org = session.scalar(select(Organisation).where(Organisation.id == organisation_id,
                                                    Organisation.tenant_key == principal.tenant_key))
    if org is None:
        raise NotFound(f"No organisation {organisation_id} in your tenant", type="organisation-not-found",
                       field="organisation_id")
    check_grant(principal, org, parse_role(role))
    name = _name(name)
    user = identity.create_user(session, org, email, name, role)
    links.invite(session, user, _actor(session, principal), origin)
    return user


def resend_invitation(session: Session, principal: Principal, user_id: uuid.UUID, origin: Origin) -> User:
    """A new invitation link (the older ones die) for a user who has not set a password yet."""
    user = get_user(session, principal, user_id, lock=True)
    if not user.active:
        raise Conflict(f"{user.email} is deactivated; reactivate the user first", type="user-deactivated")
    if user.password_hash is not None:
        raise Conflict(f"{user.email} has set a password already; they can ask for a new one with \"Passwort "
                       "vergessen?\" on the sign-in page", type="password-already-set")
    links.invite(session, user, _actor(session, principal), origin, resent=True)
    return user


def _name(name: str) -> str:
    name = " ".join(name.split())
    if not 1 <= len(name) <= 200:
        raise UnprocessableEntity("A name has 1 to 200 characters", type="invalid-name", field="name")
    return name


def change_user(session: Session, principal: Principal, user_id: uuid.UUID, origin: Origin, *,
                name: str | None = None, role: str | None = None, job_title: str | None = None) -> User:
    """Rename a user, change their function (job title; "" clears it) and/or their role. A role change ends the
    user's sessions."""
    user = get_user(session, principal, user_id, lock=True)
    if job_title is not None and (" ".join(job_title.split()) or None) != user.job_title:
        before = user.job_title
        user.job_title = " ".join(job_title.split()) or None
        record_by(session, "user-changed", principal, origin, user_id=user.id,
                  detail={"before": {"job_title": before}, "after": {"job_title": user.job_title}})
    if name is not None and _name(name) != user.name:
        before = user.name
        user.name = _name(name)
        record_by(session, "user-changed", principal, origin, user_id=user.id,
                  detail={"before": {"name": before}, "after": {"name": user.name}})
    if role is not None and parse_role(role).value != user.role:
        _change_role(session, principal, user, parse_role(role), origin)
    session.flush()
    return user


def _change_role(session: Session, principal: Principal, user: User, role: Role, origin: Origin) -> None:
    _not_self(principal, user, "change the role of")
    check_grant(principal, session.get(Organisation, user.organisation_id), role)
    guard_last_admin(session, user, "change the role")
    before = user.role
    user.role = role.value
    ended = sessions.end_all(session, user.id)
    record_by(session, "role-changed", principal, origin, user_id=user.id,
              detail={"before": {"role": before}, "after": {"role": role.value}, "sessions_ended": ended})


def set_active(session: Session, principal: Principal, user_id: uuid.UUID, active: bool, origin: Origin
               ) -> tuple[User, bool]:
    """Deactivate (ends the user's sessions; tokens are refused from the next request on) or reactivate.
    → (user, whether anything changed); doing it twice changes nothing and records nothing."""
    user = get_user(session, principal, user_id, lock=True)
    if active == user.active:
        return user, False
    if not active:
        _not_self(principal, user, "deactivate")
        guard_last_admin(session, user, "deactivate the user")
    identity.set_user_active(session, user, active)
    detail: dict[str, Any] = {"before": {"active": not active}, "after": {"active": active}}
    if not active:
        detail["sessions_ended"] = sessions.end_all(session, user.id)
    record_by(session, "user-reactivated" if active else "user-deactivated", principal, origin, user_id=user.id,
              detail=detail)
    return user, True


# --- organisations ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OrganisationRow:
    organisation: Organisation
    members: int
    active_members: int


ORG_FIELDS = ("name", "email", "phone", "address", "website")
FIELD_LIMITS = {"name": 300, "email": 320, "phone": 64, "address": 500, "website": 300}


def list_organisations(session: Session, principal: Principal, *, kind: str | None = None, q: str | None = None,
                       limit: int = 100, offset: int = 0) -> tuple[list[OrganisationRow], int]:
    """The organisations the caller administers with their member counts, by kind then name."""
    page_bounds(limit, offset)
    stmt = scoped_organisations(principal)
    if kind is not None:
        stmt = stmt.where(Organisation.kind == _kind(kind).value)
    if q and q.strip():
        pattern = like(q.strip())
        stmt = stmt.where(or_(Organisation.name.ilike(pattern, escape="\\"),
                              Organisation.email.ilike(pattern, escape="\\")))
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    counts = (select(User.organisation_id, func.count().label("members"),
                     func.count(case((User.active.is_(True), 1))).label("active"))
              .group_by(User.organisation_id).subquery())
    rows = session.execute(
        stmt.add_columns(func.coalesce(counts.c.members, 0), func.coalesce(counts.c.active, 0))
        .outerjoin(counts, counts.c.organisation_id == Organisation.id)
        .order_by(Organisation.kind, func.lower(Organisation.name), Organisation.id).limit(limit).offset(offset))
    return [OrganisationRow(o, m, a) for o, m, a in rows], total


def organisation_row(session: Session, org: Organisation) -> OrganisationRow:
    members, active = session.execute(select(func.count(), func.count(case((User.active.is_(True), 1))))
                                      .where(User.organisation_id == org.id)).one()
    return OrganisationRow(org, members, active)


def _kind(kind: str) -> OrgKind:
    try:
        return OrgKind(kind)
    except ValueError:
        raise UnprocessableEntity(f"Unknown organisation kind {kind!r}; one of "
                                  + ", ".join(k.value for k in OrgKind), type="invalid-kind", field="kind") from None


def _clean(values: dict[str, Any]) -> dict[str, str | None]:
    """Trimmed values (empty → None; the name must stay); the e-mail is a functional mailbox address."""
    out: dict[str, str | None] = {}
    for key, value in values.items():
        text = " ".join(str(value).split()) if key != "address" and value is not None else value
        text = (text or "").strip() or None
        if text is not None and len(text) > FIELD_LIMITS[key]:
            raise UnprocessableEntity(f"{key} has at most {FIELD_LIMITS[key]} characters", type="invalid-field",
                                      field=key)
        if key == "name" and text is None:
            raise UnprocessableEntity("An organisation needs a name", type="invalid-field", field="name")
        if key == "website" and text is not None and not text.startswith(("https://", "http://")):
            raise UnprocessableEntity(f"{text!r} is not a web address (https://…)", type="invalid-field",
                                      field="website")
        if key == "email" and text is not None:
            local, _, domain = text.partition("@")
            if not local or "." not in domain or " " in text:
                raise UnprocessableEntity(f"{text!r} is not an e-mail address", type="invalid-email", field="email")
            text = text.lower()
        out[key] = text
    return out


def _unique_name(session: Session, tenant_key: str, name: str, except_id: uuid.UUID | None = None) -> None:
    stmt = select(Organisation.id).where(Organisation.tenant_key == tenant_key,
                                         func.lower(Organisation.name) == name.lower())
    if except_id is not None:
        stmt = stmt.where(Organisation.id != except_id)
    if session.scalar(stmt.limit(1)) is not None:
        raise Conflict(f"An organisation named {name!r} exists already in the tenant", type="organisation-exists",
                       field="name")


def create_organisation(session: Session, principal: Principal, origin: Origin, *, kind: str, name: str,
                        email: str | None = None, phone: str | None = None, address: str | None = None,
                        website: str | None = None) -> Organisation:
    """A new organisation of the tenant (tenant admins only)."""
    if not principal.is_tenant_admin:
        raise Forbidden("Only a tenant admin creates organisations", type="role-not-allowed")
    values = _clean({"name": name, "email": email, "phone": phone, "address": address, "website": website})
    _unique_name(session, principal.tenant_key, values["name"])
    org = identity.create_organisation(session, principal.tenant_key, _kind(kind), values["name"],
                                       email=values["email"], phone=values["phone"], address=values["address"])
    org.website = values["website"]
    record_by(session, "organisation-created", principal, origin, user_id=principal.user_id,
              detail={"organisation_id": str(org.id), "after": {"kind": org.kind, **values}})
    return org


def change_organisation(session: Session, principal: Principal, org_id: uuid.UUID, origin: Origin,
                        changes: dict[str, Any]) -> Organisation:
    """Change the given fields. Tenant admins: any organisation, every field; an organisation's admin: its own
    contact details (e-mail, phone, address), not its name, which the tenant's records and decisions carry."""
    org = get_organisation(session, principal, org_id, lock=True)
    if "name" in changes and not principal.is_tenant_admin:
        raise Forbidden("The name of an organisation is changed by the operating office (tenant admin)",
                        type="organisation-name-locked", field="name")
    values = _clean({k: v for k, v in changes.items() if k in ORG_FIELDS})
    if values.get("name"):
        _unique_name(session, principal.tenant_key, values["name"], except_id=org.id)
    before = {k: getattr(org, k) for k in values if getattr(org, k) != values[k]}
    if before:
        for key in before:
            setattr(org, key, values[key])
        session.flush()
        record_by(session, "organisation-changed", principal, origin, user_id=principal.user_id,
                  detail={"organisation_id": str(org.id), "before": before,
                          "after": {k: values[k] for k in before}})
    return org


__all__ = ["list_users", "invite_user", "resend_invitation", "change_user", "set_active", "list_organisations",
           "create_organisation", "change_organisation"]
