"""API tokens expire and can be revoked: the default expiry, self-service list/create/revoke under /api/v1/me/tokens,
sign-out, tenant admins revoking their users' tokens, the 401s of expired and revoked tokens, and the CLI."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text, update

from breitband import identity
from breitband.models import ApiToken, OrgKind, Role
from tests.support.cli import breitband_cli

PROBLEM = "application/problem+json"
TOKEN_FIELDS = {"id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at", "scope", "current"}


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def problem(r, status: int, type_: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["type"] == f"https://breitband.dev/problems/{type_}"
    return body


# --- expiry ----------------------------------------------------------------------------------------------------

def test_default_expiry_is_90_days(client, session, world):
    row = session.get(ApiToken, world.operator_member.token_id)          # made by identity.create_token
    assert row.expires_at - row.created_at == timedelta(days=90)
    me = client.get("/api/v1/me", headers=world.operator_member.headers).json()
    assert ts(me["token_expires_at"]) == row.expires_at

    r = client.post("/api/v1/me/tokens", json={"name": "QGIS"}, headers=world.operator_member.headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == TOKEN_FIELDS | {"token"}
    assert body["name"] == "QGIS"
    assert body["token"].startswith("bb_") and body["prefix"] == body["token"][:10]
    assert ts(body["expires_at"]) - ts(body["created_at"]) == timedelta(days=90)
    assert body["revoked_at"] is None and body["last_used_at"] is None and body["current"] is False
    assert r.headers["location"] == f"/api/v1/me/tokens/{body['id']}"
    assert r.headers["cache-control"] == "no-store"
    stored = session.get(ApiToken, uuid.UUID(body["id"]))
    assert stored.user_id == world.operator_member.user_id
    assert stored.token_hash == identity.hash_token(body["token"]) and body["token"] not in stored.token_hash
    # the new token works, and /me tells its expiry
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"}).json()
    assert me["token_id"] == body["id"]
    assert ts(me["token_expires_at"]) == ts(body["expires_at"])


def test_explicit_expiry_and_its_bounds(client, world):
    h = world.reviewer.headers
    r = client.post("/api/v1/me/tokens", json={"name": "ein Jahr", "expires_in_days": 365}, headers=h)
    assert r.status_code == 201
    assert ts(r.json()["expires_at"]) - ts(r.json()["created_at"]) == timedelta(days=365)
    r = client.post("/api/v1/me/tokens", json={"name": "eine Woche", "expires_in_days": 7}, headers=h)
    assert ts(r.json()["expires_at"]) - ts(r.json()["created_at"]) == timedelta(days=7)
    for days in (366, 0, -1, 10**30):
        body = problem(client.post("/api/v1/me/tokens", json={"name": "x", "expires_in_days": days}, headers=h),
                       422, "invalid-token-expiry")
        assert body["detail"] == (f"expires_in_days must be between 1 and 365 days (token_max_expiry_days), "
                                  f"not {days}")
        assert body["field"] == "expires_in_days"
    body = problem(client.post("/api/v1/me/tokens", json={"name": "a\u0000b"}, headers=h), 422, "nul-character")
    assert body["pointer"] == "/name"          # refused by the input guard before the endpoint
    body = problem(client.post("/api/v1/me/tokens", json={"name": "a\u0007b"}, headers=h), 422, "invalid-token-name")
    assert body == {**body, "field": "name",
                    "detail": "A token's name must be 1-200 characters without control characters"}
    body = problem(client.post("/api/v1/me/tokens", json={"name": ""}, headers=h), 422, "validation-error")
    assert body["errors"][0]["field"] == "body.name"
    body = problem(client.post("/api/v1/me/tokens", json={"expires_in_days": 3}, headers=h), 422, "validation-error")
    assert body["errors"][0]["field"] == "body.name"


def test_expired_token_is_401(client, session, world):
    user = session.get(identity.User, world.reviewer.user_id)
    made = datetime.now(timezone.utc) - timedelta(days=91)
    token, secret = identity.create_token(session, user, "alt", now=made)
    session.commit()
    assert token.expires_at == made + timedelta(days=90)
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    body = problem(r, 401, "token-expired")
    expired = (made + timedelta(days=90)).isoformat(timespec="seconds").replace("+00:00", "Z")
    assert body["detail"] == (f"The token expired at {expired}; get a new one from your operating office (or "
                              "create one with POST /api/v1/me/tokens while another token is valid)")
    assert r.headers["www-authenticate"] == 'Bearer realm="breitband"'
    # a token made before expiry was the default (expires_at NULL) stays valid
    session.execute(update(ApiToken).where(ApiToken.id == token.id).values(expires_at=None))
    session.commit()
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json()["token_expires_at"] is None


# --- self-service list and revoke -----------------------------------------------------------------------------

def test_list_shows_only_own_tokens(client, world, other_world):
    h = world.operator_member.headers
    first = client.post("/api/v1/me/tokens", json={"name": "QGIS"}, headers=h).json()
    second = client.post("/api/v1/me/tokens", json={"name": "Skript", "expires_in_days": 30}, headers=h).json()
    client.post("/api/v1/me/tokens", json={"name": "fremd"}, headers=world.other_operator_member.headers)
    client.post("/api/v1/me/tokens", json={"name": "fremd"}, headers=other_world.operator_member.headers)
    r = client.get("/api/v1/me/tokens", headers=h)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    listed = r.json()
    assert [(t["id"], t["name"], t["current"]) for t in listed] == [
        (second["id"], "Skript", False), (first["id"], "QGIS", False),
        (str(world.operator_member.token_id), "test", True)]
    for t in listed:
        assert set(t) == TOKEN_FIELDS                # never the hash or the secret
    assert listed[0] == {k: v for k, v in second.items() if k != "token"}


def test_revoke_own_token(client, world):
    h = world.operator_member.headers
    made = client.post("/api/v1/me/tokens", json={"name": "Laptop"}, headers=h).json()
    other = {"Authorization": f"Bearer {made['token']}"}
    assert client.get("/api/v1/me", headers=other).status_code == 200
    r = client.delete(f"/api/v1/me/tokens/{made['id']}", headers=h)
    assert r.status_code == 204 and r.content == b""
    body = problem(client.get("/api/v1/me", headers=other), 401, "token-revoked")
    assert body["detail"].startswith("The token was revoked at ")
    revoked_at = next(t for t in client.get("/api/v1/me/tokens", headers=h).json()
                      if t["id"] == made["id"])["revoked_at"]
    assert revoked_at is not None
    assert client.delete(f"/api/v1/me/tokens/{made['id']}", headers=h).status_code == 204   # idempotent
    again = next(t for t in client.get("/api/v1/me/tokens", headers=h).json() if t["id"] == made["id"])
    assert again["revoked_at"] == revoked_at                                                 # first time kept
    assert client.get("/api/v1/me", headers=h).status_code == 200                            # the caller's own


def test_cannot_revoke_another_users_token(client, world, other_world):
    for victim, caller in ((world.other_operator_member, world.operator_member),   # same tenant
                           (world.operator_member, world.admin),                   # admin, but not through /me
                           (other_world.operator_member, world.operator_member)):  # other tenant
        body = problem(client.delete(f"/api/v1/me/tokens/{victim.token_id}", headers=caller.headers),
                       404, "token-not-found")
        assert body["detail"] == f"No token {victim.token_id}"
        assert client.get("/api/v1/me", headers=victim.headers).status_code == 200
    unknown = uuid.UUID(int=7)
    body = problem(client.delete(f"/api/v1/me/tokens/{unknown}", headers=world.operator_member.headers),
                   404, "token-not-found")
    assert body["detail"] == "No token 00000000-0000-0000-0000-000000000007"
    body = problem(client.delete("/api/v1/me/tokens/abc", headers=world.operator_member.headers),
                   422, "validation-error")
    assert body["errors"][0]["field"] == "path.token_id"


def test_logout_revokes_the_current_token(client, world):
    h = world.reviewer.headers
    spare = client.post("/api/v1/me/tokens", json={"name": "Ersatz"}, headers=h).json()
    r = client.post("/api/v1/me/logout", headers=h)
    assert r.status_code == 204 and r.content == b""
    body = problem(client.get("/api/v1/me", headers=h), 401, "token-revoked")
    assert body["detail"].startswith("The token was revoked at ")
    problem(client.post("/api/v1/me/logout", headers=h), 401, "token-revoked")   # signed out is signed out
    # the user's other tokens stay valid
    spare_h = {"Authorization": f"Bearer {spare['token']}"}
    assert client.get("/api/v1/me", headers=spare_h).status_code == 200
    listed = {t["id"]: t for t in client.get("/api/v1/me/tokens", headers=spare_h).json()}
    assert listed[str(world.reviewer.token_id)]["revoked_at"] is not None
    assert listed[spare["id"]]["revoked_at"] is None and listed[spare["id"]]["current"] is True


def test_idempotency_key_creates_one_token(client, session, world):
    h = {**world.authority_admin.headers, "Idempotency-Key": "token-1"}
    first = client.post("/api/v1/me/tokens", json={"name": "GIS"}, headers=h)
    assert first.status_code == 201
    token_id = first.json()["id"]
    again = problem(client.post("/api/v1/me/tokens", json={"name": "GIS"}, headers=h), 409, "token-already-created")
    assert again["token_id"] == token_id
    assert again["detail"] == (f"A token was already created with Idempotency-Key 'token-1' (id {token_id}). Its "
                               "secret is shown only once and is not stored; revoke that token (DELETE "
                               f"/api/v1/me/tokens/{token_id}) and create a new one with a new key")
    problem(client.post("/api/v1/me/tokens", json={"name": "anders"}, headers=h), 422, "idempotency-key-reused")
    names = session.scalars(select(ApiToken.name).where(ApiToken.user_id == world.authority_admin.user_id)
                            .order_by(ApiToken.name)).all()
    assert names == ["GIS", "test"]
    # the secret is not kept with the key
    kept = session.execute(text("SELECT response_body::text FROM idempotency_keys WHERE key = 'token-1'")).scalar()
    assert first.json()["token"] not in kept and first.json()["token"][:20] not in kept


def test_active_token_limit(client, world, settings, monkeypatch):
    monkeypatch.setattr(settings, "token_max_active_per_user", 3)
    h = world.operator_member.headers
    made = [client.post("/api/v1/me/tokens", json={"name": f"t{i}"}, headers=h) for i in range(2)]
    assert [r.status_code for r in made] == [201, 201]                       # with the fixture's token: 3
    body = problem(client.post("/api/v1/me/tokens", json={"name": "t3"}, headers=h), 409, "too-many-tokens")
    assert body["detail"] == ("You hold 3 active tokens, the most allowed (token_max_active_per_user = 3); revoke "
                              "one you no longer use first")
    client.delete(f"/api/v1/me/tokens/{made[0].json()['id']}", headers=h)
    assert client.post("/api/v1/me/tokens", json={"name": "t3"}, headers=h).status_code == 201


# --- tenant admins --------------------------------------------------------------------------------------------

def test_tenant_admin_revokes_a_users_token(client, world, other_world):
    op = world.operator_member
    url = f"/api/v1/users/{op.user_id}/tokens"
    listed = client.get(url, headers=world.admin.headers)
    assert listed.status_code == 200
    assert [(t["id"], t["current"]) for t in listed.json()] == [(str(op.token_id), False)]
    # another tenant's admin: the user does not exist for them
    body = problem(client.get(url, headers=other_world.admin.headers), 404, "user-not-found")
    assert body["detail"] == f"No user {op.user_id}"
    problem(client.delete(f"{url}/{op.token_id}", headers=other_world.admin.headers), 404, "user-not-found")
    # a token that is not this user's
    problem(client.delete(f"{url}/{world.reviewer.token_id}", headers=world.admin.headers), 404, "token-not-found")
    # not an admin
    problem(client.delete(f"{url}/{op.token_id}", headers=world.reviewer.headers), 403, "role-not-allowed")
    assert client.get("/api/v1/me", headers=op.headers).status_code == 200
    assert client.get("/api/v1/me", headers=world.reviewer.headers).status_code == 200

    r = client.delete(f"{url}/{op.token_id}", headers=world.admin.headers)
    assert r.status_code == 204
    problem(client.get("/api/v1/me", headers=op.headers), 401, "token-revoked")
    assert client.delete(f"{url}/{op.token_id}", headers=world.admin.headers).status_code == 204   # idempotent
    assert client.get(url, headers=world.admin.headers).json()[0]["revoked_at"] is not None


# --- CLI ------------------------------------------------------------------------------------------------------

cli = breitband_cli      # tests/support/cli.py


@pytest.fixture
def cli_user(engine):
    """A committed tenant "ct" with one user (a subprocess cannot see a test transaction); removed afterwards."""
    from sqlalchemy.orm import Session

    with Session(bind=engine) as session:
        identity.create_tenant(session, "ct", "Token-Land", "EPSG:25832", {})
        org = identity.create_organisation(session, "ct", OrgKind.operator, "Netz CT")
        identity.create_user(session, org, "cli@ct.example", "CLI", Role.operator_member)
        session.commit()
    yield "cli@ct.example"
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tenants WHERE key = 'ct'"))


@pytest.mark.slow
def test_cli_token_create_list_and_cap(cli_user, engine):
    proc = cli("token", "create", "--tenant", "ct", "--email", cli_user, "--name", "GIS", "--expires-in-days", "30")
    assert proc.returncode == 0, proc.stderr
    made = json.loads(proc.stdout)
    assert ts(made["expires_at"]) - ts(made["created_at"]) == timedelta(days=30)
    assert made["note"] == f"Store the token now; it cannot be shown again. It expires at {made['expires_at']}."
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT expires_at - created_at FROM api_tokens WHERE id = :id"),
                              {"id": made["id"]}).scalar()
    assert stored == timedelta(days=30)

    default = json.loads(cli("token", "create", "--tenant", "ct", "--email", cli_user).stdout)
    assert ts(default["expires_at"]) - ts(default["created_at"]) == timedelta(days=90)

    for days in ("0", "366"):
        proc = cli("token", "create", "--tenant", "ct", "--email", cli_user, "--expires-in-days", days)
        assert proc.returncode == 2
        assert proc.stderr.splitlines()[0] == (f"error: --expires-in-days must be between 1 and 365 days "
                                               f"(token_max_expiry_days), not {days}")

    listed = json.loads(cli("token", "list", "--tenant", "ct").stdout)
    assert [(t["id"], t["user"], t["name"]) for t in listed] == [(default["id"], cli_user, "cli"),
                                                                  (made["id"], cli_user, "GIS")]
    assert "token" not in listed[0] and "token_hash" not in listed[0]

    # a token from before expiry was the default: cap-expiry gives it one (and shortens the 90 days to 60)
    with engine.begin() as conn:
        conn.execute(text("UPDATE api_tokens SET expires_at = NULL WHERE id = :id"), {"id": default["id"]})
    before = datetime.now(timezone.utc)
    capped = json.loads(cli("token", "cap-expiry", "--days", "60", "--tenant", "ct").stdout)
    after = datetime.now(timezone.utc)
    assert capped == {"changed": 1, "days": 60, "tenant": "ct"}          # the 30-day token is left alone
    with engine.connect() as conn:
        expiries = dict(conn.execute(text("SELECT id::text, expires_at FROM api_tokens WHERE id IN (:a, :b)"),
                                     {"a": made["id"], "b": default["id"]}).all())
    assert expiries[made["id"]] == ts(made["expires_at"])
    assert before + timedelta(days=60) <= expiries[default["id"]] <= after + timedelta(days=60)

    revoked = json.loads(cli("token", "revoke", made["id"]).stdout)
    assert revoked["id"] == made["id"] and revoked["revoked_at"] is not None
    assert [t["id"] for t in json.loads(cli("token", "list", "--tenant", "ct", "--active").stdout)] == [default["id"]]


def test_bad_input_is_4xx_problem_json(client, world):
    h = world.operator_member.headers
    cases = [
        (client.post("/api/v1/me/tokens", json=["QGIS"], headers=h), 422, "validation-error"),
        (client.post("/api/v1/me/tokens", json={"name": "x", "expires_in_days": "viele"}, headers=h),
         422, "validation-error"),
        (client.post("/api/v1/me/tokens", json={"name": "x", "expires_in_days": 1.5}, headers=h),
         422, "validation-error"),
        (client.post("/api/v1/me/tokens", json={"name": "   "}, headers=h), 422, "invalid-token-name"),
        (client.post("/api/v1/me/tokens", json={"name": "x" * 201}, headers=h), 422, "validation-error"),
        (client.post("/api/v1/me/tokens", content=b"{", headers={**h, "Content-Type": "application/json"}),
         422, "validation-error"),
        (client.post("/api/v1/me/tokens", json={"name": "x"}, headers={**h, "Idempotency-Key": "k" * 256}),
         422, "invalid-idempotency-key"),
        (client.get("/api/v1/users/1/tokens", headers=world.admin.headers), 422, "validation-error"),
        (client.delete(f"/api/v1/users/{uuid.uuid4()}/tokens/{'9' * 60}", headers=world.admin.headers),
         422, "validation-error"),
        (client.get(f"/api/v1/users/{world.admin.user_id}/tokens", headers=world.operator_member.headers),
         403, "role-not-allowed"),
        (client.get("/api/v1/me/tokens"), 401, "token-missing"),
    ]
    for r, status, type_ in cases:
        problem(r, status, type_)
