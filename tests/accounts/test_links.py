"""Invitation and reset links (accounts/links.py): e-mailed through the real SMTP server of the tests, single use,
24 hours, only their hash stored, older ones dead when a new one is sent; the reset form tells nobody whether an
address has an account; using a link sets the password, ends the user's sessions and signs in."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from accounts import links, totp
from accounts.events import Origin
from accounts.models import AccountLink, SecurityEvent
from breitband import identity, sessions
from breitband.app import create_app
from breitband.db import Database
from breitband.logging import scrub
from breitband.models import OrgKind, Role, User, WebSession
from notifications import delivery
from notifications.models import Delivery, FeedEntry
from tests.conftest import TEST_LIMITS_REDIS_URL
from tests.support.cli import breitband_cli
from tests.support.waiting import wait_for

PROBLEM = "https://breitband.dev/problems/"
PASSWORD = "Lindenbaum Fahrrad Kompass 7"
LINK_RE = re.compile(r"https?://\S+/#/link/(\S+)")


def deliveries(session, user_id, event_type: str) -> list[Delivery]:
    return list(session.scalars(select(Delivery).where(
        Delivery.event_type == event_type,
        Delivery.target == select(User.email).where(User.id == user_id).scalar_subquery())
        .order_by(Delivery.created_at)))


def token_of(mail) -> str:
    [token] = set(LINK_RE.findall(mail.body))          # the same link in both languages
    return token


def events(session, user_id, kind: str) -> list[SecurityEvent]:
    return list(session.scalars(select(SecurityEvent).where(SecurityEvent.user_id == user_id,
                                                            SecurityEvent.kind == kind).order_by(SecurityEvent.id)))


def invite(client, world, **body):
    data = {"email": "neu@xa.example", "name": "Nora Neu", "role": "authority_reviewer",
            "organisation_id": str(world.authority.id), **body}
    return client.post("/api/v1/admin/users", json=data, headers={**world.admin.headers, "User-Agent": "Admin-UA"})


def test_invitation_mail_link_inspect_redeem_and_sign_in(world, client, db, session, smtp, settings):
    r = invite(client, world)
    assert r.status_code == 201, r.text
    user = r.json()
    assert (user["role"], user["active"], user["password_set"]) == ("authority_reviewer", True, False)
    assert user["invitation_expires_at"] is not None and r.headers["location"] == f"/api/v1/admin/users/{user['id']}"

    # the e-mail: through the delivery machinery, to the invited address only, German first, English second
    [d] = deliveries(session, user["id"], "account.invitation")
    assert delivery.deliver(db, d.id)["status"] == "delivered"
    [mail] = smtp.to("neu@xa.example")
    assert mail.subject == "Einladung zu Breitband (Testland A) / Invitation to Breitband"
    body = mail.body
    assert "admin hat Sie zum Genehmigungsverfahren Breitband" in body                  # who invited
    assert "als Prüfer/in einer Behörde für Straßenbauamt Testland A" in body            # role and organisation
    assert "as authority reviewer for Straßenbauamt Testland A" in body
    assert body.index("Guten Tag Nora Neu") < body.index("Hello Nora Neu")
    assert "Der Link gilt bis" in body and "Einladung erneut zu senden" in body         # until when, what then
    token = token_of(mail)
    assert f"{settings.public_base_url}/#/link/{token}" in body
    # the private event reaches no feed and no webhook; only the token's hash is kept
    assert session.scalar(select(FeedEntry).where(FeedEntry.event_id == d.event_id)) is None
    link = session.scalars(select(AccountLink).where(AccountLink.user_id == uuid.UUID(user["id"]))).one()
    assert link.token_hash == identity.hash_token(token) and token not in json.dumps(
        [e.detail for e in session.scalars(select(SecurityEvent))])
    assert link.expires_at - link.created_at == timedelta(hours=24) and link.created_by == world.admin.user_id
    # the secret is masked wherever it could reach a log line (the API's path carries it)
    assert token not in scrub(f"POST /api/v1/auth/links/{token} 200")

    view = client.get(f"/api/v1/auth/links/{token}")
    assert view.status_code == 200 and view.headers["cache-control"] == "no-store"
    assert view.json() == {"purpose": "invitation", "email": "neu@xa.example", "name": "Nora Neu",
                           "expires_at": link.expires_at.isoformat().replace("+00:00", "Z"), "totp_required": False}

    weak = client.post(f"/api/v1/auth/links/{token}", json={"password": "kurz"})
    assert (weak.status_code, weak.json()["type"], weak.json()["field"]) == (
        422, PROBLEM + "password-too-short", "password")
    signed = client.post(f"/api/v1/auth/links/{token}", json={"password": PASSWORD},
                         headers={"User-Agent": "Nora-Browser"})
    assert signed.status_code == 200, signed.text
    out = signed.json()
    assert out["user"]["email"] == "neu@xa.example" and out["totp_enrolment_required"] is False
    assert sessions.cookie_name() in signed.cookies
    me = client.get("/api/v1/me")                               # the cookie signs in
    assert me.status_code == 200 and me.json()["email"] == "neu@xa.example"
    row = session.scalars(select(WebSession).where(WebSession.user_id == uuid.UUID(user["id"]))).one()
    assert row.method == "link"

    again = client.post(f"/api/v1/auth/links/{token}", json={"password": PASSWORD + "!"})
    assert (again.status_code, again.json()["type"]) == (410, PROBLEM + "link-used")
    assert client.get(f"/api/v1/auth/links/{token}").status_code == 410

    # the audit trail: invited by the admin, from the admin's client; the password set by the user
    uid = uuid.UUID(user["id"])
    [invited] = events(session, uid, "user-invited")
    assert (invited.actor_id, invited.client_ip, invited.user_agent) == (world.admin.user_id, "testclient", "Admin-UA")
    assert invited.detail["after"] == {"email": "neu@xa.example", "name": "Nora Neu", "role": "authority_reviewer",
                                       "organisation_id": str(world.authority.id)}
    [password_set] = events(session, uid, "password-set")
    assert (password_set.actor_id, password_set.user_agent, password_set.detail["how"]) == (
        uid, "Nora-Browser", "invitation")
    assert events(session, uid, "sign-in")[0].detail["method"] == "link"


def test_expired_replaced_unknown_links(world, client, session, clock):
    assert invite(client, world).status_code == 201
    user = identity.find_user(session, "xa", "neu@xa.example")
    first = links.issue(session, user, links.LinkPurpose.invitation, created_by=None, now=clock.now)
    second = links.issue(session, user, links.LinkPurpose.invitation, created_by=None, now=clock.now)
    session.commit()
    # a new link of the same purpose ends the older ones
    r = client.get(f"/api/v1/auth/links/{first.secret}")
    assert (r.status_code, r.json()["type"]) == (410, PROBLEM + "link-expired")
    assert "send the invitation again" in r.json()["detail"]
    assert client.get(f"/api/v1/auth/links/{second.secret}").status_code == 200

    clock.set((clock.now + timedelta(hours=24)).isoformat())
    r = client.post(f"/api/v1/auth/links/{second.secret}", json={"password": PASSWORD})
    assert (r.status_code, r.json()["type"]) == (410, PROBLEM + "link-expired")
    assert session.get(User, user.id).password_hash is None

    for unknown in ("bb_" + "x" * 43, "irgendwas"):
        r = client.get(f"/api/v1/auth/links/{unknown}")
        assert (r.status_code, r.headers["content-type"], r.json()["type"]) == (
            404, "application/problem+json", PROBLEM + "link-unknown")
    assert client.get("/api/v1/auth/links/" + "y" * 101).status_code == 422


def test_reset_same_answer_for_unknown_addresses_one_mail_per_five_minutes(world, client, session, clock):
    reviewer = session.get(User, world.reviewer.user_id)

    def ask(email: str, tenant: str = "xa"):
        r = client.post("/api/v1/auth/password-reset", json={"tenant": tenant, "email": email})
        assert r.status_code == 202, r.text
        return r.json()

    known = ask("PRUEFER@xa.example")
    assert ask("niemand@xa.example") == known                          # the same answer either way
    assert len(deliveries(session, reviewer.id, "account.reset")) == 1
    assert session.scalar(select(Delivery).where(Delivery.target == "niemand@xa.example")) is None
    probe = session.scalars(select(SecurityEvent).where(SecurityEvent.email == "niemand@xa.example")).one()
    assert (probe.kind, probe.user_id, probe.detail) == ("password-reset-requested", None,
                                                         {"sent": False, "reason": "unknown-address"})

    ask("pruefer@xa.example")                                          # within 5 minutes: nothing more is sent
    assert len(deliveries(session, reviewer.id, "account.reset")) == 1
    requested = events(session, reviewer.id, "password-reset-requested")
    assert [e.detail["sent"] for e in requested] == [True, False]
    assert requested[0].email == "pruefer@xa.example" and requested[0].actor_id is None

    clock.set((clock.now + timedelta(minutes=5)).isoformat())
    ask("pruefer@xa.example")
    assert len(deliveries(session, reviewer.id, "account.reset")) == 2
    old, new = session.scalars(select(AccountLink).where(AccountLink.user_id == reviewer.id)
                               .order_by(AccountLink.created_at)).all()
    assert old.expires_at == new.created_at                            # the older link died with the new one

    # a deactivated user gets nothing either
    reviewer.active = False
    session.commit()
    clock.set((clock.now + timedelta(minutes=10)).isoformat())
    assert ask("pruefer@xa.example") == known
    assert len(deliveries(session, reviewer.id, "account.reset")) == 2

    unknown_tenant = client.post("/api/v1/auth/password-reset", json={"tenant": "zz", "email": "a@b.example"})
    assert (unknown_tenant.status_code, unknown_tenant.json()["type"]) == (404, PROBLEM + "tenant-not-found")
    missing = client.post("/api/v1/auth/password-reset", json={"tenant": "xa"})
    assert (missing.status_code, missing.json()["type"]) == (422, PROBLEM + "validation-error")


def test_reset_requests_per_client_address_are_limited(world, settings, db):
    """Each request may send an e-mail (to a different address each time): BREITBAND_RATE_LIMIT_PASSWORD_RESET per
    client address, 429 with Retry-After beyond it."""
    redis.Redis.from_url(TEST_LIMITS_REDIS_URL).flushdb()
    app = create_app(settings.model_copy(update={"rate_limit_password_reset": "2/60",
                                                 "limits_redis_url": TEST_LIMITS_REDIS_URL}), db=db)
    with TestClient(app, raise_server_exceptions=False) as client:
        answers = [client.post("/api/v1/auth/password-reset", json={"tenant": "xa", "email": f"a{i}@xa.example"})
                   for i in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2].json()["type"] == PROBLEM + "too-many-requests" and int(answers[2].headers["retry-after"]) > 0
    redis.Redis.from_url(TEST_LIMITS_REDIS_URL).flushdb()


def test_reset_ends_every_session_and_needs_the_second_factor(world, client, session, clock):
    user = session.get(User, world.operator_member.user_id)
    old = sessions.start(session, user.id, method="password")
    user.totp_secret = totp.new_secret()
    user.totp_enabled_at = clock.now
    issued = links.request_reset(session, "xa", user.email, Origin(client_ip="203.0.113.9", user_agent="x"))
    session.commit()
    path = f"/api/v1/auth/links/{issued.secret}"
    assert client.get(path).json()["totp_required"] is True

    r = client.post(path, json={"password": PASSWORD})
    assert (r.status_code, r.json()["type"]) == (401, PROBLEM + "totp-required")
    r = client.post(path, json={"password": PASSWORD, "totp_code": "000000" if totp.code_at(
        user.totp_secret, clock.now) != "000000" else "111111"})
    assert (r.status_code, r.json()["type"]) == (401, PROBLEM + "totp-invalid")
    assert session.get(User, user.id).password_hash is None               # nothing changed, the link still works

    r = client.post(path, json={"password": PASSWORD, "totp_code": totp.code_at(user.totp_secret, clock.now)})
    assert r.status_code == 200, r.text
    session.expire_all()
    assert session.get(WebSession, old.id).revoked_at == clock.now
    [event] = events(session, user.id, "password-set")
    assert (event.detail["how"], event.detail["sessions_ended"]) == ("reset", 1)
    assert session.scalar(select(WebSession).where(WebSession.user_id == user.id, WebSession.method == "link")).mfa


def test_tenant_requiring_a_second_factor_gets_a_restricted_session(world, client, session):
    tenant = session.get(identity.Tenant, "xa")
    tenant.rules = {"sign_in": {"totp_required_roles": ["tenant_admin"]}}
    admin = session.get(User, world.admin.user_id)
    issued = links.request_reset(session, "xa", admin.email, Origin.cli())
    session.commit()
    r = client.post(f"/api/v1/auth/links/{issued.secret}", json={"password": PASSWORD})
    assert r.status_code == 200 and r.json()["totp_enrolment_required"] is True
    csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
    assert client.get("/api/v1/me").status_code == 200
    blocked = client.get("/api/v1/admin/users", headers=csrf)
    assert (blocked.status_code, blocked.json()["type"]) == (403, PROBLEM + "totp-enrolment-required")


def test_deactivated_users_link_is_refused(world, client, session):
    user = session.get(User, world.reviewer.user_id)
    issued = links.request_reset(session, "xa", user.email, Origin.cli())
    user.active = False
    session.commit()
    r = client.post(f"/api/v1/auth/links/{issued.secret}", json={"password": PASSWORD})
    assert (r.status_code, r.json()["type"]) == (403, PROBLEM + "user-deactivated")


# --- through the worker and the command line, with committed data ---------------------------------------------------

@pytest.fixture
def committed_tenant(engine, settings):
    """A tenant with an operating office and its admin, COMMITTED (the worker and the command line use their own
    connections); deleted afterwards with everything in it."""
    key = "ln" + uuid.uuid4().hex[:6]
    with Session(bind=engine) as s:
        identity.create_tenant(s, key, "Linkland", "EPSG:25832", {})
        office = identity.create_organisation(s, key, OrgKind.operating_office, "Servicestelle Linkland")
        road = identity.create_organisation(s, key, OrgKind.road_authority, "Straßenbauamt Linkland")
        admin = identity.create_user(s, office, f"admin@{key}.example", "Ada Admin", Role.tenant_admin)
        _, secret = identity.create_token(s, admin, "test")
        ids = {"key": key, "road": str(road.id), "admin_token": secret}
        s.commit()
    database = Database.from_settings(settings)
    with TestClient(create_app(settings, db=database), raise_server_exceptions=False) as client:
        yield client, ids
    database.dispose()
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tenants WHERE key = :k"), {"k": key})


@pytest.mark.worker
def test_invitation_mail_sent_by_the_worker(committed_tenant, worker, smtp):
    client, ids = committed_tenant
    address = f"neu@{ids['key']}.example"
    r = client.post("/api/v1/admin/users", json={"email": address, "name": "Nina Neu", "role": "authority_admin",
                                                 "organisation_id": ids["road"]},
                    headers={"Authorization": f"Bearer {ids['admin_token']}"})
    assert r.status_code == 201, r.text
    [mail] = wait_for(lambda: smtp.to(address), what="the invitation e-mail")
    assert "Ada Admin hat Sie" in mail.body and "Administrator/in einer Behörde" in mail.body
    token = token_of(mail)
    assert client.get(f"/api/v1/auth/links/{token}").json()["email"] == address
    signed = client.post(f"/api/v1/auth/links/{token}", json={"password": PASSWORD})
    assert signed.status_code == 200 and signed.json()["user"]["role"] == "authority_admin"


run_cli = breitband_cli      # tests/support/cli.py


@pytest.mark.slow
def test_cli_invite_and_reset_password(committed_tenant, engine):
    _, ids = committed_tenant
    key = ids["key"]
    proc = run_cli("user", "invite", "--tenant", key, "--org", "Straßenbauamt Linkland", "--email",
                   f"Chef@{key}.example", "--name", "Carl Chef", "--role", "authority_admin")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["email"], out["role"], out["organisation"]) == (f"chef@{key}.example", "authority_admin",
                                                                "Straßenbauamt Linkland")
    wrong = run_cli("user", "invite", "--tenant", key, "--org", "Servicestelle Linkland", "--email",
                    f"x@{key}.example", "--name", "X", "--role", "authority_admin")
    assert wrong.returncode == 2 and "belongs to an organisation of kind" in wrong.stderr

    proc = run_cli("user", "reset-password", "--tenant", key, "--email", f"admin@{key}.example")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["sent"] is True
    again = run_cli("user", "reset-password", "--tenant", key, "--email", f"admin@{key}.example")
    assert again.returncode == 1 and "less than 5 minutes ago" in again.stderr
    unknown = run_cli("user", "reset-password", "--tenant", key, "--email", f"nobody@{key}.example")
    assert unknown.returncode == 1 and "No user" in unknown.stderr

    with engine.connect() as conn:
        kinds = [r[0] for r in conn.execute(text(
            "SELECT kind || ':' || coalesce(user_agent, '') || ':' || (actor_id IS NULL) FROM security_events "
            "WHERE tenant_key = :k ORDER BY id"), {"k": key})]
        mails = conn.execute(text("SELECT event_type, target FROM notification_deliveries WHERE tenant_key = :k "
                                  "ORDER BY created_at"), {"k": key}).all()
    assert kinds == ["user-invited:breitband CLI:true", "password-reset-requested:breitband CLI:true",
                     "password-reset-requested:breitband CLI:true"]
    assert [tuple(m) for m in mails] == [("account.invitation", f"chef@{key}.example"),
                                         ("account.reset", f"admin@{key}.example")]
