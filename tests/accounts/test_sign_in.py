"""Signing in over HTTP (accounts/endpoints.py, accounts/local.py): the cookie, CSRF, lockout and back-off that do
not reveal whether an address exists, the second factor, sign-out, deactivation."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from accounts import passwords, totp
from accounts.models import SecurityEvent
from breitband import identity, sessions
from breitband.models import Tenant, User, WebSession
from tests.accounts.conftest import PASSWORD, login

PROBLEM = "application/problem+json"


def problem(r, status: int, type_: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["type"] == f"https://breitband.dev/problems/{type_}", body
    return body


def test_sign_in_sets_a_session_cookie_and_answers_like_me(client, with_passwords, clock):
    w = with_passwords
    r = login(client, " Planer@XA.example ")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["email"] == w.operator_member.email and body["user"]["role"] == "operator_member"
    assert body["user"]["organisation"]["id"] == str(w.operator.id)
    assert body["idle_timeout_s"] == 1800 and body["totp_enrolment_required"] is False
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("breitband_session=bs_")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie and "Secure" not in cookie
    assert r.headers["cache-control"] == "no-store"

    s = client.get("/api/v1/auth/session")
    assert s.status_code == 200, s.text
    assert s.json()["csrf_token"] == body["csrf_token"] and s.json()["restricted"] is None
    assert client.get("/api/v1/me").json()["email"] == w.operator_member.email


def test_https_gives_a_secure_host_cookie(client, with_passwords, settings, monkeypatch):
    monkeypatch.setattr(settings, "public_base_url", "https://breitband.example")
    r = login(client, "planer@xa.example")
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("__Host-breitband=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie and "Domain" not in cookie


def test_csrf_with_the_cookie_and_never_with_bearer(client, with_passwords):
    csrf = login(client, "planer@xa.example").json()["csrf_token"]
    problem(client.post("/api/v1/me/tokens", json={"name": "x"}), 403, "csrf-token-missing")
    problem(client.post("/api/v1/me/tokens", json={"name": "x"}, headers={"X-CSRF-Token": "nope"}), 403,
            "csrf-token-invalid")
    assert client.post("/api/v1/me/tokens", json={"name": "x"}, headers={"X-CSRF-Token": csrf}).status_code == 201
    bearer = client.post("/api/v1/me/tokens", json={"name": "y"}, headers=with_passwords.reviewer.headers)
    assert bearer.status_code == 201


def test_every_sign_in_starts_a_new_session(client, with_passwords, session):
    first = login(client, "planer@xa.example").headers["set-cookie"]
    second = login(client, "planer@xa.example").headers["set-cookie"]
    assert first.split(";")[0] != second.split(";")[0]
    assert len(sessions.open_sessions(session, with_passwords.operator_member.user_id)) == 2


def test_wrong_password_and_unknown_address_answer_alike(client, with_passwords):
    wrong = problem(login(client, "planer@xa.example", "not the password!"), 401, "sign-in-failed")
    unknown = problem(login(client, "nobody@xa.example", "not the password!"), 401, "sign-in-failed")
    assert wrong["detail"] == unknown["detail"]
    assert "set-cookie" not in login(client, "nobody@xa.example").headers
    # an invited user without a password yet: the same
    problem(login(client, "faser@xa.example"), 401, "sign-in-failed")
    problem(login(client, "planer@xa.example", tenant="zz"), 404, "tenant-not-found")
    r = client.post("/api/v1/auth/login", json={"tenant": "xa", "email": "planer@xa.example"})
    problem(r, 422, "validation-error")


def lock_out(client, email: str) -> list[int]:
    return [login(client, email, "wrong password 123").status_code for _ in range(6)]


def test_lockout_and_back_off_are_the_same_for_known_and_unknown_addresses(client, with_passwords, session, clock):
    for email in ("planer@xa.example", "nobody@xa.example"):
        assert lock_out(client, email) == [401] * 5 + [429]
        r = login(client, email, PASSWORD)            # even the right password waits
        body = problem(r, 429, "too-many-sign-in-attempts")
        assert 1 <= int(r.headers["retry-after"]) <= 60 and body["retry_after_s"] == int(r.headers["retry-after"])
    # after the minute: one more failure locks for 2 minutes, the next for 4
    for minutes in (2, 4):
        clock.now += timedelta(minutes=minutes // 2, seconds=1)      # the previous lock is over
        for email in ("planer@xa.example", "nobody@xa.example"):
            problem(login(client, email, "wrong password 123"), 401, "sign-in-failed")
            r = problem(login(client, email, "wrong password 123"), 429, "too-many-sign-in-attempts")
            assert minutes * 60 - 1 <= r["retry_after_s"] <= minutes * 60
    lockouts = session.scalars(select(SecurityEvent).where(SecurityEvent.kind == "lockout")
                               .order_by(SecurityEvent.id)).all()
    assert [(e.email, e.detail["failures"]) for e in lockouts] == [
        ("planer@xa.example", 5), ("nobody@xa.example", 5), ("planer@xa.example", 6), ("nobody@xa.example", 6),
        ("planer@xa.example", 7), ("nobody@xa.example", 7)]
    clock.now += timedelta(minutes=5)
    assert login(client, "planer@xa.example").status_code == 200      # success resets the counter
    session.expire_all()
    user = session.get(User, with_passwords.operator_member.user_id)
    assert user.failed_sign_ins == 0 and user.locked_until is None


def test_back_off_stops_at_an_hour():
    from accounts.local import lock_for
    assert [lock_for(n) for n in (4, 5, 6, 7)] == [None, timedelta(minutes=1), timedelta(minutes=2),
                                                   timedelta(minutes=4)]
    assert lock_for(11) == lock_for(50) == timedelta(minutes=60)


def test_a_deactivated_user_hears_it_only_with_the_right_password(client, with_passwords, session):
    identity.set_user_active(session, session.get(User, with_passwords.operator_member.user_id), False)
    session.commit()
    problem(login(client, "planer@xa.example", "wrong password 123"), 401, "sign-in-failed")
    problem(login(client, "planer@xa.example"), 401, "user-deactivated")


def test_deactivation_ends_sessions_and_tokens_at_the_next_request(client, with_passwords, session):
    assert login(client, "planer@xa.example").status_code == 200
    assert client.get("/api/v1/me").status_code == 200
    identity.set_user_active(session, session.get(User, with_passwords.operator_member.user_id), False)
    session.commit()
    problem(client.get("/api/v1/me"), 401, "user-deactivated")
    problem(client.get("/api/v1/me", headers=with_passwords.operator_member.headers), 401, "user-deactivated")


def enable_totp(session, user_id, clock) -> str:
    user = session.get(User, user_id)
    user.totp_secret = totp.new_secret()
    user.totp_enabled_at = clock.now
    session.commit()
    return user.totp_secret


def test_second_factor_required_invalid_and_not_replayable(client, with_passwords, session, clock):
    secret = enable_totp(session, with_passwords.operator_member.user_id, clock)
    problem(login(client, "planer@xa.example"), 401, "totp-required")
    problem(login(client, "planer@xa.example", totp_code="000000" if totp.code_at(secret, clock.now) != "000000"
                  else "111111"), 401, "totp-invalid")
    code = totp.code_at(secret, clock.now)
    r = login(client, "planer@xa.example", totp_code=code)
    assert r.status_code == 200, r.text
    problem(login(client, "planer@xa.example", totp_code=code), 401, "totp-invalid")        # replayed
    clock.now += timedelta(seconds=30)
    assert login(client, "planer@xa.example", totp_code=totp.code_at(secret, clock.now)).status_code == 200
    session.expire_all()
    assert session.get(WebSession, _session_id(session, with_passwords.operator_member.user_id)).mfa is True


def _session_id(session, user_id):
    return sessions.open_sessions(session, user_id)[0].id


def test_enrolment_required_by_the_tenant(client, with_passwords, session, clock):
    session.get(Tenant, "xa").rules = {"sign_in": {"totp_required_roles": ["tenant_admin"]}}
    session.commit()
    r = login(client, "admin@xa.example")
    assert r.status_code == 200 and r.json()["totp_enrolment_required"] is True
    csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
    assert client.get("/api/v1/auth/session").json()["restricted"] == "totp-enrolment"
    problem(client.get("/api/v1/organisations"), 403, "totp-enrolment-required")

    started = client.post("/api/v1/me/totp", headers=csrf)
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/") and "issuer=Breitband%20Testland%20A" in \
        body["otpauth_uri"]
    assert body["qr_svg"].startswith("<svg")
    problem(client.post("/api/v1/me/totp/confirm", json={"code": "12345"}, headers=csrf), 422, "totp-malformed")
    ok = client.post("/api/v1/me/totp/confirm", json={"code": totp.code_at(body["secret"], clock.now)}, headers=csrf)
    assert ok.status_code == 204, ok.text
    assert client.get("/api/v1/auth/session").json()["restricted"] is None
    assert client.get("/api/v1/organisations").status_code == 200
    enabled = session.scalars(select(SecurityEvent).where(SecurityEvent.kind == "totp-enabled")).one()
    assert enabled.user_id == enabled.actor_id == with_passwords.admin.user_id
    problem(client.post("/api/v1/me/totp", headers=csrf), 409, "totp-already-enabled")
    r = client.request("DELETE", "/api/v1/me/totp", json={"password": PASSWORD}, headers=csrf)
    problem(r, 409, "totp-required-by-tenant")
    # next sign-in: the code is needed
    problem(login(client, "admin@xa.example"), 401, "totp-required")


def test_removing_the_second_factor_needs_the_password(client, with_passwords, session, clock):
    secret = enable_totp(session, with_passwords.operator_member.user_id, clock)
    r = login(client, "planer@xa.example", totp_code=totp.code_at(secret, clock.now))
    csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
    problem(client.request("DELETE", "/api/v1/me/totp", json={"password": "wrong password 1"}, headers=csrf), 422,
            "password-wrong")
    assert client.request("DELETE", "/api/v1/me/totp", json={"password": PASSWORD}, headers=csrf).status_code == 204
    assert session.scalars(select(SecurityEvent).where(SecurityEvent.kind == "totp-disabled")).one()
    assert login(client, "planer@xa.example").status_code == 200


def test_idle_timeout_and_absolute_lifetime_of_a_signed_in_session(client, with_passwords, clock):
    assert login(client, "planer@xa.example").status_code == 200
    clock.now += timedelta(minutes=31)
    problem(client.get("/api/v1/auth/session"), 401, "session-expired")
    assert login(client, "planer@xa.example").status_code == 200
    for _ in range(24):
        clock.now += timedelta(minutes=29)
        assert client.get("/api/v1/me").status_code == 200
    clock.now += timedelta(minutes=29)
    problem(client.get("/api/v1/me"), 401, "session-expired")       # 12 h after sign-in


def test_logout_ends_the_session_or_revokes_the_token(client, with_passwords, session):
    csrf = login(client, "planer@xa.example").json()["csrf_token"]
    problem(client.post("/api/v1/auth/logout"), 403, "csrf-token-missing")
    r = client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json() == {"logout_url": None}
    assert "breitband_session=\"\"" in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    client.cookies.clear()
    nobody = client.get("/api/v1/auth/session")         # no cookie, no token: not signed in, not an error
    assert nobody.status_code == 204 and nobody.headers["cache-control"] == "no-store"

    headers = with_passwords.reviewer.headers
    problem(client.get("/api/v1/auth/session", headers=headers), 401, "session-required")
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 200
    problem(client.get("/api/v1/me", headers=headers), 401, "token-revoked")
    assert client.post("/api/v1/me/logout", headers=with_passwords.admin.headers).status_code == 204
    problem(client.get("/api/v1/me", headers=with_passwords.admin.headers), 401, "token-revoked")


def test_sessions_list_end_one_and_end_all(client, with_passwords, session, app):
    from fastapi.testclient import TestClient
    other = TestClient(app)
    assert login(other, "planer@xa.example").status_code == 200
    csrf = {"X-CSRF-Token": login(client, "planer@xa.example").json()["csrf_token"]}
    listed = client.get("/api/v1/me/sessions").json()
    assert len(listed) == 2 and [s["current"] for s in listed] == [True, False]
    assert listed[0]["client_ip"] and listed[0]["user_agent"]
    r = client.delete(f"/api/v1/me/sessions/{listed[1]['id']}", headers=csrf)
    assert r.status_code == 204
    problem(other.get("/api/v1/me"), 401, "session-ended")
    problem(client.delete(f"/api/v1/me/sessions/{listed[1]['id']}", headers=csrf), 404, "session-not-found")
    assert login(other, "planer@xa.example").status_code == 200
    r = client.post("/api/v1/me/sessions/end-all", headers=csrf)
    assert r.status_code == 200 and r.json() == {"ended": 2}
    problem(other.get("/api/v1/me"), 401, "session-ended")
    problem(client.get("/api/v1/me"), 401, "token-missing")         # this one's cookie was cleared too


def test_change_password_ends_the_other_sessions(client, with_passwords, session, app):
    from fastapi.testclient import TestClient
    other = TestClient(app)
    assert login(other, "planer@xa.example").status_code == 200
    csrf = {"X-CSRF-Token": login(client, "planer@xa.example").json()["csrf_token"]}
    change = "/api/v1/me/password"
    problem(client.post(change, json={"current_password": "wrong one 12345", "new_password": "x" * 3},
                        headers=csrf), 422, "current-password-wrong")
    session.expire_all()
    assert session.get(User, with_passwords.operator_member.user_id).failed_sign_ins == 1   # counted
    problem(client.post(change, json={"current_password": PASSWORD, "new_password": "short"}, headers=csrf), 422,
            "password-too-short")
    problem(client.post(change, json={"current_password": PASSWORD, "new_password": "qwertyuiop1234"},
                        headers=csrf), 422, "password-common")
    problem(client.post(change, json={"current_password": PASSWORD, "new_password": "planer-hat-recht-7"},
                        headers=csrf), 422, "password-personal")
    r = client.post(change, json={"current_password": PASSWORD, "new_password": "harbour owl tundra 9"},
                    headers=csrf)
    assert r.status_code == 204, r.text
    assert client.get("/api/v1/me").status_code == 200
    problem(other.get("/api/v1/me"), 401, "session-ended")
    session.expire_all()
    user = session.get(User, with_passwords.operator_member.user_id)
    assert passwords.verify(user.password_hash, "harbour owl tundra 9") and user.failed_sign_ins == 0
    problem(login(client, "planer@xa.example"), 401, "sign-in-failed")
    assert login(client, "planer@xa.example", "harbour owl tundra 9").status_code == 200


def test_openapi_documents_the_cookie_and_the_csrf_header(client):
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["session"] == {**schemes["session"], "type": "apiKey", "in": "cookie", "name": "breitband_session"}
    assert schemes["bearer"]["scheme"] == "bearer"
    create = schema["paths"]["/api/v1/me/tokens"]["post"]
    assert create["security"] == [{"bearer": []}, {"session": []}]
    assert "X-CSRF-Token" in [p["name"] for p in create["parameters"]]
    assert "X-CSRF-Token" not in [p["name"] for p in schema["paths"]["/api/v1/me/tokens"]["get"].get("parameters",
                                                                                                          [])]
    assert "security" not in schema["paths"]["/api/v1/auth/login"]["post"]
    assert "429" in schema["paths"]["/api/v1/auth/login"]["post"]["responses"]


def test_options_list_the_tenants(client, world, other_world):
    r = client.get("/api/v1/auth/options")
    assert r.status_code == 200
    tenants = {t["key"]: t for t in r.json()["tenants"]}
    assert tenants["xa"] == {"key": "xa", "name": "Testland A", "local": True, "oidc": None}
    assert "xb" in tenants


def test_a_read_only_token_cannot_sign_out_or_change_anything(client, with_passwords, session):
    csrf = {"X-CSRF-Token": login(client, "planer@xa.example").json()["csrf_token"]}
    secret = client.post("/api/v1/me/tokens", json={"name": "QGIS", "scope": "read"}, headers=csrf).json()["token"]
    client.cookies.clear()
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/me/sessions", headers=headers).status_code == 200
    problem(client.post("/api/v1/me/tokens", json={"name": "x"}, headers=headers), 403, "token-read-only")
    problem(client.post("/api/v1/auth/logout", headers=headers), 403, "token-read-only")


def test_visitors_without_a_session_do_not_lock_their_address_out(settings, db, with_passwords):
    """Every load of the web app asks GET /api/v1/auth/session; before signing in the browser has no cookie, which
    is no failed authentication (a wrong cookie still is)."""
    from fastapi.testclient import TestClient

    from breitband.app import create_app
    from tests.accounts.conftest import limits_redis

    key = "breitband:rl:auth-failures:client:testclient"
    with limits_redis() as r:
        r.delete(key)
        app = create_app(settings.model_copy(update={"rate_limit_auth_failures": "3/60"}), db=db)
        with TestClient(app, raise_server_exceptions=False) as c:
            for _ in range(5):
                assert c.get("/api/v1/auth/session").status_code == 204
            assert r.get(key) is None
            assert login(c, "planer@xa.example").status_code == 200
            c.cookies.clear()
            c.cookies.set(sessions.cookie_name(), "not-a-session")
            problem(c.get("/api/v1/auth/session"), 401, "session-ended")
            assert int(r.get(key)) == 1
        r.delete(key)


def test_too_many_failures_from_one_client_address(settings, db, with_passwords):
    from fastapi.testclient import TestClient

    from breitband.app import create_app
    from tests.accounts.conftest import limits_redis

    key = "breitband:rl:auth-failures:client:testclient"
    with limits_redis() as r:
        r.delete(key)
        app = create_app(settings.model_copy(update={"rate_limit_auth_failures": "3/60"}), db=db)
        with TestClient(app, raise_server_exceptions=False) as c:
            for n in range(3):            # different addresses: no account is locked, the client address is
                problem(login(c, f"guess{n}@xa.example", "wrong password 123"), 401, "sign-in-failed")
            r429 = login(c, "planer@xa.example")
            body = problem(r429, 429, "too-many-sign-in-attempts")
            assert 1 <= int(r429.headers["retry-after"]) <= 60 and "from your address" in body["detail"]
        r.delete(key)
