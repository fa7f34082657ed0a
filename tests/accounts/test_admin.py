"""User and organisation administration (accounts/admin.py): who may change whom, the guards (own account, last
admin), sessions and tokens ending with a role change or deactivation, and the audit trail of every change."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from accounts import admin as administration
from accounts.models import SecurityEvent
from breitband import identity, sessions
from breitband.errors import Conflict
from breitband.models import OrgKind, Role, User, WebSession

PROBLEM = "https://breitband.dev/problems/"


def problem(r) -> tuple[int, str]:
    assert r.headers["content-type"] == "application/problem+json", r.text
    return r.status_code, r.json()["type"].removeprefix(PROBLEM)


def last_event(session, kind: str) -> SecurityEvent:
    return session.scalars(select(SecurityEvent).where(SecurityEvent.kind == kind)
                           .order_by(SecurityEvent.id.desc())).first()


def me_with_cookie(client, secret: str):
    """GET /api/v1/me with a session cookie (and no token)."""
    client.cookies.set(sessions.cookie_name(), secret)
    try:
        return client.get("/api/v1/me")
    finally:
        client.cookies.clear()


def patch(client, who, user_id, **body):
    return client.patch(f"/api/v1/admin/users/{user_id}", json=body, headers=who.headers)


def post(client, who, path: str, body: dict | None = None):
    return client.post(path, json=body or {}, headers=who.headers)


def test_tenant_admin_sees_and_filters_every_user_of_the_tenant_only(world, other_world, client):
    r = client.get("/api/v1/admin/users", headers=world.admin.headers)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    page = r.json()
    emails = [u["email"] for u in page["items"]]
    assert page["total"] == 5 and set(emails) == {"admin@xa.example", "planer@xa.example", "faser@xa.example",
                                                  "pruefer@xa.example", "leitung@xa.example"}
    assert emails == sorted(emails, key=lambda e: e.split("@")[0])           # by name (= local part here)
    first = page["items"][0]
    assert set(first) >= {"organisation", "password_set", "totp_enabled", "invitation_expires_at", "last_sign_in_at"}

    def emails_of(**params):
        r = client.get("/api/v1/admin/users", params=params, headers=world.admin.headers)
        assert r.status_code == 200, r.text
        return [u["email"] for u in r.json()["items"]]

    assert emails_of(organisation_id=str(world.authority.id)) == ["leitung@xa.example", "pruefer@xa.example"]
    assert emails_of(role="authority_admin") == ["leitung@xa.example"]
    assert emails_of(q="PLANER") == ["planer@xa.example"]
    assert emails_of(q="%") == [] and emails_of(q="_") == []                 # wildcards are literal characters
    assert emails_of(active="false") == []
    assert emails_of(limit=2, offset=1) == ["faser@xa.example", "leitung@xa.example"]
    assert problem(client.get("/api/v1/admin/users", params={"role": "king"}, headers=world.admin.headers)) == (
        422, "invalid-role")
    assert problem(client.get("/api/v1/admin/users", params={"limit": 0}, headers=world.admin.headers)) == (
        422, "invalid-parameter")
    # another tenant's user does not exist
    assert problem(patch(client, world.admin, other_world.reviewer.user_id, name="X")) == (404, "user-not-found")


def test_authority_admin_administers_its_own_organisation_only(world, client, session):
    boss = world.authority_admin
    r = client.get("/api/v1/admin/users", headers=boss.headers)
    assert [u["email"] for u in r.json()["items"]] == ["leitung@xa.example", "pruefer@xa.example"]
    orgs = client.get("/api/v1/admin/organisations", headers=boss.headers).json()["items"]
    assert [(o["name"], o["members"], o["active_members"]) for o in orgs] == [("Straßenbauamt Testland A", 2, 2)]

    # other organisations' users: not found; other organisations: not theirs; tenant_admin: never theirs to give
    assert problem(patch(client, boss, world.operator_member.user_id, name="X")) == (404, "user-not-found")
    assert problem(post(client, boss, f"/api/v1/admin/users/{world.admin.user_id}/deactivate")) == (
        404, "user-not-found")
    invite = {"email": "neu@xa.example", "name": "Neu", "role": "authority_reviewer"}
    assert problem(post(client, boss, "/api/v1/admin/users", {**invite, "organisation_id": str(world.operator.id)})
                   ) == (403, "organisation-outside-scope")
    assert problem(patch(client, boss, world.reviewer.user_id, role="tenant_admin")) == (403, "role-not-grantable")
    assert problem(patch(client, boss, world.reviewer.user_id, role="operator_member")) == (
        422, "role-not-for-organisation")
    assert problem(post(client, boss, "/api/v1/admin/organisations", {"kind": "operator", "name": "X"})) == (
        403, "role-not-allowed")

    # within its organisation: invite, promote, rename
    r = post(client, boss, "/api/v1/admin/users", {**invite, "organisation_id": str(world.authority.id)})
    assert r.status_code == 201 and r.json()["organisation"]["id"] == str(world.authority.id)
    r = patch(client, boss, world.reviewer.user_id, role="authority_admin", name="  Paula   Prüfer ")
    assert r.status_code == 200 and (r.json()["role"], r.json()["name"]) == ("authority_admin", "Paula Prüfer")
    # members without an admin role may not administer at all
    assert problem(client.get("/api/v1/admin/users", headers=world.operator_member.headers)) == (
        403, "role-not-allowed")


def test_operator_admin_and_tenant_admin_across_organisations(world, client, session):
    op = session.get(User, world.operator_member.user_id)
    op.role = Role.operator_admin.value
    session.commit()
    r = patch(client, world.operator_member, world.other_operator_member.user_id, role="operator_admin")
    assert problem(r) == (404, "user-not-found")
    r = post(client, world.operator_member, "/api/v1/admin/users",
             {"email": "azubi@xa.example", "name": "Azubi", "role": "operator_member",
              "organisation_id": str(world.operator.id)})
    assert r.status_code == 201, r.text
    assert problem(post(client, world.operator_member, "/api/v1/admin/users",
                        {"email": "a2@xa.example", "name": "A", "role": "authority_reviewer",
                         "organisation_id": str(world.operator.id)})) == (422, "role-not-for-organisation")

    # the tenant admin: any organisation, any role that fits its kind, tenant admins too
    r = patch(client, world.admin, world.other_operator_member.user_id, role="operator_admin")
    assert r.status_code == 200 and r.json()["role"] == "operator_admin"
    r = post(client, world.admin, "/api/v1/admin/users", {"email": "zweit@xa.example", "name": "Zweit",
                                                          "role": "tenant_admin",
                                                          "organisation_id": str(world.operating_office.id)})
    assert r.status_code == 201
    dup = post(client, world.admin, "/api/v1/admin/users", {"email": "ZWEIT@xa.example", "name": "Z",
                                                            "role": "tenant_admin",
                                                            "organisation_id": str(world.operating_office.id)})
    assert problem(dup) == (409, "user-exists")
    unknown_org = post(client, world.admin, "/api/v1/admin/users", {"email": "u@xa.example", "name": "U",
                                                                    "role": "tenant_admin",
                                                                    "organisation_id": str(uuid.uuid4())})
    assert problem(unknown_org) == (404, "organisation-not-found")
    extra = post(client, world.admin, "/api/v1/admin/users", {"email": "u@xa.example", "name": "U",
                                                              "role": "operator_member", "extra": 1,
                                                              "organisation_id": str(world.operator.id)})
    assert extra.status_code == 422


def test_own_account_and_last_admin_guards(world, client, session):
    admin, boss = world.admin, world.authority_admin
    assert problem(patch(client, admin, admin.user_id, role="operator_member")) == (403, "own-account")
    assert problem(post(client, admin, f"/api/v1/admin/users/{admin.user_id}/deactivate")) == (403, "own-account")
    assert problem(patch(client, boss, boss.user_id, role="authority_reviewer")) == (403, "own-account")
    assert patch(client, admin, admin.user_id, name="Ada Admin").status_code == 200     # the name is fine

    # the authority's only admin: neither demoted nor deactivated, by the tenant admin either
    assert problem(patch(client, admin, boss.user_id, role="authority_reviewer")) == (409, "last-organisation-admin")
    assert problem(post(client, admin, f"/api/v1/admin/users/{boss.user_id}/deactivate")) == (
        409, "last-organisation-admin")
    # a deactivated second admin does not count; an active one does
    reviewer = session.get(User, world.reviewer.user_id)
    reviewer.role, reviewer.active = Role.authority_admin.value, False
    session.commit()
    assert problem(patch(client, admin, boss.user_id, role="authority_reviewer")) == (409, "last-organisation-admin")
    assert post(client, admin, f"/api/v1/admin/users/{reviewer.id}/reactivate").status_code == 200
    r = patch(client, admin, boss.user_id, role="authority_reviewer")
    assert r.status_code == 200 and r.json()["role"] == "authority_reviewer"

    # an operating office's last tenant admin: a tenant admin of another office cannot deactivate them
    office2 = identity.create_organisation(session, "xa", OrgKind.operating_office, "Zweite Servicestelle")
    other = identity.create_user(session, office2, "zweit@xa.example", "Zweit", Role.tenant_admin)
    session.commit()
    assert problem(post(client, admin, f"/api/v1/admin/users/{other.id}/deactivate")) == (
        409, "last-organisation-admin")
    # with a colleague in that office it works
    identity.create_user(session, office2, "dritt@xa.example", "Dritt", Role.tenant_admin)
    session.commit()
    assert post(client, admin, f"/api/v1/admin/users/{other.id}/deactivate").status_code == 200


def test_the_tenants_last_tenant_admin_is_kept(world, session):
    """Behind the own-account rule (a tenant admin cannot deactivate themselves) the service itself refuses to take
    the tenant's last active tenant admin, whoever asks (the command line too)."""
    user = session.get(User, world.admin.user_id)
    with pytest.raises(Conflict) as refused:
        administration.guard_last_admin(session, user, "deactivate the user")
    assert refused.value.type == "last-tenant-admin"
    identity.create_user(session, world.operating_office, "kollege@xa.example", "Kollege", Role.tenant_admin)
    administration.guard_last_admin(session, user, "deactivate the user")   # a second one: allowed


def test_role_change_and_deactivation_end_sessions_and_tokens(world, client, session):
    reviewer = world.reviewer
    started = sessions.start(session, reviewer.user_id, method="password")
    session.commit()
    assert me_with_cookie(client, started.secret).status_code == 200

    r = client.patch(f"/api/v1/admin/users/{reviewer.user_id}", json={"role": "authority_admin"},
                     headers={**world.admin.headers, "User-Agent": "Admin-UA"})
    assert r.status_code == 200
    refused = me_with_cookie(client, started.secret)
    assert problem(refused) == (401, "session-ended")
    assert client.get("/api/v1/me", headers=reviewer.headers).json()["role"] == "authority_admin"   # token: new role
    event = last_event(session, "role-changed")
    assert (event.user_id, event.actor_id, event.client_ip, event.user_agent) == (
        reviewer.user_id, world.admin.user_id, "testclient", "Admin-UA")
    assert event.detail == {"before": {"role": "authority_reviewer"}, "after": {"role": "authority_admin"},
                            "sessions_ended": 1}

    again = sessions.start(session, reviewer.user_id, method="password")
    session.commit()
    r = post(client, world.admin, f"/api/v1/admin/users/{reviewer.user_id}/deactivate")
    assert r.status_code == 200 and r.json()["active"] is False
    assert problem(me_with_cookie(client, again.secret)) == (
        401, "session-ended")
    assert problem(client.get("/api/v1/me", headers=reviewer.headers)) == (401, "user-deactivated")
    event = last_event(session, "user-deactivated")
    assert (event.user_id, event.actor_id) == (reviewer.user_id, world.admin.user_id)
    assert event.detail == {"before": {"active": True}, "after": {"active": False}, "sessions_ended": 1}
    # twice: nothing changes, nothing recorded
    assert post(client, world.admin, f"/api/v1/admin/users/{reviewer.user_id}/deactivate").status_code == 200
    assert session.scalar(select(SecurityEvent.id).where(SecurityEvent.kind == "user-deactivated")
                          .order_by(SecurityEvent.id.desc())) == event.id

    r = post(client, world.admin, f"/api/v1/admin/users/{reviewer.user_id}/reactivate")
    assert r.status_code == 200 and r.json()["active"] is True
    assert client.get("/api/v1/me", headers=reviewer.headers).status_code == 200
    assert last_event(session, "user-reactivated").detail == {"before": {"active": False}, "after": {"active": True}}
    # the ended sessions stay ended
    assert session.get(WebSession, again.id).revoked_at is not None


def test_resend_invitation(world, client, session):
    r = post(client, world.admin, "/api/v1/admin/users", {"email": "neu@xa.example", "name": "Neu",
                                                          "role": "operator_member",
                                                          "organisation_id": str(world.operator.id)})
    uid = r.json()["id"]
    r = post(client, world.admin, f"/api/v1/admin/users/{uid}/invitation")
    assert r.status_code == 200 and r.json()["invitation_expires_at"] is not None
    assert last_event(session, "user-invited").detail["resent"] is True
    # a user with a password asks for a reset instead
    reviewer = session.get(User, world.reviewer.user_id)
    reviewer.password_hash = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$aGFzaA"
    session.commit()
    assert problem(post(client, world.admin, f"/api/v1/admin/users/{reviewer.id}/invitation")) == (
        409, "password-already-set")
    post(client, world.admin, f"/api/v1/admin/users/{uid}/deactivate")
    assert problem(post(client, world.admin, f"/api/v1/admin/users/{uid}/invitation")) == (409, "user-deactivated")


def test_organisations_list_create_patch(world, client, session):
    admin = world.admin
    r = client.get("/api/v1/admin/organisations", headers=admin.headers)
    items = r.json()["items"]
    assert r.json()["total"] == 4
    assert [(o["kind"], o["members"]) for o in items] == [("operating_office", 1), ("operator", 1),
                                                          ("operator", 1), ("road_authority", 2)]
    r = post(client, admin, "/api/v1/admin/organisations",
             {"kind": "participating_body", "name": " Untere  Naturschutzbehörde ", "email": "UNB@Kreis.example",
              "phone": "06074 1234", "address": "Am Park 1\n63128 Dietzenbach"})
    assert r.status_code == 201, r.text
    org = r.json()
    assert (org["name"], org["email"], org["members"]) == ("Untere Naturschutzbehörde", "unb@kreis.example", 0)
    event = last_event(session, "organisation-created")
    assert event.actor_id == admin.user_id and event.detail["after"]["kind"] == "participating_body"
    assert problem(post(client, admin, "/api/v1/admin/organisations",
                        {"kind": "operator", "name": "untere naturschutzbehörde"})) == (409, "organisation-exists")
    assert problem(post(client, admin, "/api/v1/admin/organisations",
                        {"kind": "operator", "name": "X", "email": "kein-mail"})) == (422, "invalid-email")
    assert post(client, admin, "/api/v1/admin/organisations", {"kind": "bank", "name": "X"}).status_code == 422

    filtered = client.get("/api/v1/admin/organisations", params={"kind": "participating_body", "q": "natur"},
                          headers=admin.headers).json()["items"]
    assert [o["id"] for o in filtered] == [org["id"]]

    r = client.patch(f"/api/v1/admin/organisations/{org['id']}", json={"phone": "06074 999", "email": ""},
                     headers=admin.headers)
    assert r.status_code == 200 and (r.json()["phone"], r.json()["email"]) == ("06074 999", None)
    event = last_event(session, "organisation-changed")
    assert event.detail["before"] == {"email": "unb@kreis.example", "phone": "06074 1234"}
    assert event.detail["after"] == {"email": None, "phone": "06074 999"}

    # an organisation's admin: contact details of its own organisation, not its name, not others
    boss = world.authority_admin
    own = f"/api/v1/admin/organisations/{world.authority.id}"
    r = client.patch(own, json={"email": "asv@testland.example"}, headers=boss.headers)
    assert r.status_code == 200 and r.json()["email"] == "asv@testland.example"
    assert problem(client.patch(own, json={"name": "Neu"}, headers=boss.headers)) == (
        403, "organisation-name-locked")
    assert problem(client.patch(f"/api/v1/admin/organisations/{org['id']}", json={"phone": "1"},
                                headers=boss.headers)) == (404, "organisation-not-found")
    assert client.patch(own, json={"kind": "operator"}, headers=boss.headers).status_code == 422
