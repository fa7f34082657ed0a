"""Browser sessions (breitband/sessions.py) as every request sees them: the cookie authenticates where no
Authorization header is sent; unsafe requests need the CSRF header; idle and absolute limits; ended sessions and
deactivated users are refused at the next request; a session restricted to setting up the second factor reaches only
that; read-only tokens are refused on unsafe methods. (Signing in itself is tested in tests/accounts/.)"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi import Response

from breitband import identity, sessions
from breitband.models import User, WebSession

PROBLEM = "application/problem+json"


def problem(r, status: int, type_: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["type"] == f"https://breitband.dev/problems/{type_}"
    return body


@pytest.fixture
def signed_in(client, session, world, clock):
    """The operator member of tenant xa with a session started now; the test client carries its cookie."""
    started = sessions.start(session, world.operator_member.user_id, method="password", client_ip="192.0.2.7",
                             user_agent="pytest")
    session.commit()
    client.cookies.set(sessions.cookie_name(), started.secret)
    return started


def test_the_cookie_authenticates_and_names_the_session(client, signed_in, world):
    me = client.get("/api/v1/me")
    assert me.status_code == 200, me.text
    assert me.json()["email"] == world.operator_member.email
    assert sessions.cookie_name() == "breitband_session"        # http public base URL: no __Host- prefix


def test_a_bearer_token_wins_over_the_cookie(client, signed_in, world):
    r = client.get("/api/v1/me", headers=world.reviewer.headers)
    assert r.json()["email"] == world.reviewer.email


def test_unsafe_requests_with_the_cookie_need_the_csrf_token(client, signed_in):
    body = {"name": "QGIS"}
    problem(client.post("/api/v1/me/tokens", json=body), 403, "csrf-token-missing")
    problem(client.post("/api/v1/me/tokens", json=body, headers={"X-CSRF-Token": "guess"}), 403,
            "csrf-token-invalid")
    r = client.post("/api/v1/me/tokens", json=body, headers={"X-CSRF-Token": signed_in.csrf_token})
    assert r.status_code == 201, r.text


def test_bearer_tokens_never_need_csrf(client, world):
    r = client.post("/api/v1/me/tokens", json={"name": "script"}, headers=world.operator_member.headers)
    assert r.status_code == 201, r.text


def test_idle_timeout_and_absolute_lifetime(client, session, world, clock):
    started = sessions.start(session, world.operator_member.user_id, method="password")
    session.commit()
    client.cookies.set(sessions.cookie_name(), started.secret)
    # a request every 29 minutes keeps it open ...
    for _ in range(3):
        clock.now += timedelta(minutes=29)
        assert client.get("/api/v1/me").status_code == 200
    # ... 31 minutes without one end it
    clock.now += timedelta(minutes=31)
    problem(client.get("/api/v1/me"), 401, "session-expired")

    started = sessions.start(session, world.operator_member.user_id, method="password")
    session.commit()
    client.cookies.set(sessions.cookie_name(), started.secret)
    assert started.expires_at - clock.now == timedelta(hours=12)
    while True:                                           # busy all day: 12 h is the end anyway
        clock.now += timedelta(minutes=29)
        r = client.get("/api/v1/me")
        if r.status_code != 200:
            break
    problem(r, 401, "session-expired")
    assert started.expires_at <= clock.now < started.expires_at + timedelta(minutes=29)


def test_ended_sessions_and_deactivated_users_are_refused_at_the_next_request(client, session, world, signed_in):
    other = sessions.start(session, world.operator_member.user_id, method="password")
    assert sessions.end_all(session, world.operator_member.user_id, except_id=other.id) == 1
    session.commit()
    problem(client.get("/api/v1/me"), 401, "session-ended")

    client.cookies.set(sessions.cookie_name(), other.secret)
    assert client.get("/api/v1/me").status_code == 200
    identity.set_user_active(session, session.get(User, world.operator_member.user_id), False)
    session.commit()
    problem(client.get("/api/v1/me"), 401, "user-deactivated")
    client.cookies.set(sessions.cookie_name(), "bs_unknown")
    problem(client.get("/api/v1/me"), 401, "session-ended")


def test_a_session_restricted_to_totp_enrolment_reaches_only_that(client, session, world):
    started = sessions.start(session, world.admin.user_id, method="password", restricted=sessions.RESTRICTED_TOTP)
    session.commit()
    client.cookies.set(sessions.cookie_name(), started.secret)
    assert client.get("/api/v1/me").status_code == 200
    problem(client.get("/api/v1/me/tokens"), 403, "totp-enrolment-required")
    problem(client.get("/api/v1/organisations"), 403, "totp-enrolment-required")


def test_last_seen_is_written_at_most_once_a_minute(client, session, world, signed_in, clock):
    start = clock.now
    clock.now += timedelta(seconds=30)
    client.get("/api/v1/me")
    session.expire_all()
    assert session.get(WebSession, signed_in.id).last_seen_at == start
    clock.now += timedelta(seconds=40)
    client.get("/api/v1/me")
    session.expire_all()
    assert session.get(WebSession, signed_in.id).last_seen_at == clock.now


def test_read_only_tokens_read_but_never_write(client, session, world):
    user = session.get(User, world.operator_member.user_id)
    _, secret = identity.create_token(session, user, "QGIS", scope="read")
    session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    problem(client.post("/api/v1/me/tokens", json={"name": "x"}, headers=headers), 403, "token-read-only")
    tokens = client.get("/api/v1/me/tokens", headers=world.operator_member.headers).json()
    assert {t["name"]: t["scope"] for t in tokens}["QGIS"] == "read"
    r = client.post("/api/v1/me/tokens", json={"name": "bad", "scope": "admin"}, headers=world.operator_member.headers)
    assert r.status_code == 422


def cookie_header(started) -> str:
    response = Response()
    sessions.set_cookie(response, started)
    return response.headers["set-cookie"]


def test_cookie_flags(monkeypatch, settings):
    started = sessions.Started(id=uuid.uuid4(), secret="bs_x", csrf_token="c", expires_at=None)
    plain = cookie_header(started)
    assert plain.startswith("breitband_session=bs_x;")
    assert "HttpOnly" in plain and "Path=/" in plain and "SameSite=lax" in plain and "Secure" not in plain
    assert "Max-Age" not in plain and "Domain" not in plain
    monkeypatch.setattr(settings, "public_base_url", "https://breitband.example")
    secure = cookie_header(started)
    assert secure.startswith("__Host-breitband=bs_x;")
    assert "Secure" in secure and "HttpOnly" in secure and "Path=/" in secure and "Domain" not in secure
