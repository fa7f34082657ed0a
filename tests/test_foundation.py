"""Foundation: problem+json errors, health and readiness, token auth, roles and tenant isolation."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from fastapi import APIRouter
from sqlalchemy import text, update

from breitband import identity
from breitband.models import ApiToken

PROBLEM = "application/problem+json"


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert len(r.headers["x-request-id"]) == 32


def test_unknown_route_is_problem_json(client):
    r = client.get("/no/such/thing", headers={"X-Request-ID": "abc-123"})
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["type"] == "https://breitband.dev/problems/not-found"
    assert body["status"] == 404
    assert body["detail"] == "No resource at GET /no/such/thing"
    assert body["request_id"] == "abc-123"
    assert r.headers["x-request-id"] == "abc-123"


def test_validation_error_names_the_field(client, world):
    r = client.get("/api/v1/organisations/not-a-uuid", headers=world.admin.headers)
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["type"] == "https://breitband.dev/problems/validation-error"
    assert [e["field"] for e in body["errors"]] == ["path.org_id"]


def test_unhandled_exception_is_500_without_internals(app, caplog):
    router = APIRouter()

    @router.get("/boom")
    def boom():
        raise RuntimeError("secret connection string postgresql://user:pw@host")

    app.include_router(router)
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as c, caplog.at_level("ERROR"):
        r = c.get("/boom")
    assert r.status_code == 500
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert "secret" not in r.text
    assert body["type"] == "https://breitband.dev/problems/internal-error"
    rid = body["request_id"]
    assert r.headers["x-request-id"] == rid
    logged = [rec for rec in caplog.records if rec.getMessage() == "unhandled exception"]
    assert len(logged) == 1
    assert "secret connection string" in "".join(__import__("traceback").format_exception(*logged[0].exc_info))


def test_readyz_reports_database_down(settings):
    from fastapi.testclient import TestClient

    from breitband.app import create_app

    bad = settings.model_copy(update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
                                      "database_readonly_url": None})
    app = create_app(bad)
    with TestClient(app) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["ready"] is False
    # anonymous: ok per check, no details (the database is down, so no token could be checked either)
    assert body["checks"]["database"] == {"ok": False}
    assert body["checks"]["postgis"] == {"ok": False}
    assert body["checks"]["migrations"] == {"ok": False}
    assert "nowhere" not in r.text and "127.0.0.1" not in r.text


def test_database_down_is_503_problem_json(settings):
    from fastapi.testclient import TestClient

    from breitband.app import create_app

    bad = settings.model_copy(update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
                                      "database_readonly_url": None})
    with TestClient(create_app(bad), raise_server_exceptions=False) as c:
        r = c.get("/api/v1/me", headers={"Authorization": "Bearer bb_whatever"})
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["retry-after"] == "2"
    body = r.json()
    assert body["type"] == "https://breitband.dev/problems/database-unavailable"
    assert "127.0.0.1" not in r.text and "nowhere" not in r.text   # no connection details leak
    assert body["request_id"]


def _outage_app(settings):
    """The app on its own engines (real pools, autocommit statement sessions), not the tests' outer transaction."""
    from breitband.app import create_app
    from breitband.db import Database

    db = Database.from_settings(settings)
    return db, create_app(settings, db=db)


def _kill_pooled_connection(db, engine) -> None:
    with db.engine.connect() as conn:       # the pool's only connection: the one the request used
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    with engine.connect() as admin:
        assert admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar() is True
        admin.commit()


def test_a_connection_lost_while_pooled_is_503_once_then_the_pool_reconnects(settings, engine, monkeypatch):
    """A connection used moments ago is not pinged (a round trip on every request): if the server dropped it, that
    one request gets 503 and the next one gets a fresh connection."""
    from fastapi.testclient import TestClient

    db, app = _outage_app(settings)
    bad = {"Authorization": "Bearer bb_not-a-token"}
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            assert c.get("/api/v1/me", headers=bad).status_code == 401     # the token lookup ran
            _kill_pooled_connection(db, engine)
            r = c.get("/api/v1/me", headers=bad)
            assert r.status_code == 503, r.text
            assert r.json()["type"] == "https://breitband.dev/problems/database-unavailable"
            assert c.get("/api/v1/me", headers=bad).status_code == 401
    finally:
        db.dispose()


def test_a_connection_that_rested_is_pinged_and_replaced(settings, engine, monkeypatch):
    from fastapi.testclient import TestClient

    from breitband import db as dbmod

    db, app = _outage_app(settings)
    bad = {"Authorization": "Bearer bb_not-a-token"}
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            assert c.get("/api/v1/me", headers=bad).status_code == 401
            _kill_pooled_connection(db, engine)
            monkeypatch.setattr(dbmod, "PING_AFTER_IDLE_S", -1.0)            # as if it had rested long
            assert c.get("/api/v1/me", headers=bad).status_code == 401      # pinged, dropped, reconnected
    finally:
        db.dispose()


def test_statement_sessions_run_each_statement_on_its_own(settings):
    """Authentication and the resolution dry run read one statement at a time, without BEGIN/COMMIT round trips:
    each statement is its own transaction (now() moves), and the read-only one refuses writes."""
    import time

    import pytest
    from sqlalchemy.exc import DBAPIError

    from breitband.db import Database

    db = Database.from_settings(settings)
    try:
        with db.statement_session(readonly=True) as s:
            assert s.execute(text("SHOW transaction_read_only")).scalar() == "on"
            first = s.execute(text("SELECT now()")).scalar()
            time.sleep(0.01)
            assert s.execute(text("SELECT now()")).scalar() > first
            with pytest.raises(DBAPIError, match="read-only transaction"):
                s.execute(text("CREATE TEMP TABLE not_here (i int)"))
        with db.statement_session() as s:
            assert s.execute(text("SHOW transaction_read_only")).scalar() == "off"
            first = s.execute(text("SELECT now()")).scalar()
            time.sleep(0.01)
            assert s.execute(text("SELECT now()")).scalar() > first
    finally:
        db.dispose()


def test_readyz_checks_postgis_and_migrations(client, world):
    r = client.get("/readyz", headers=world.admin.headers)     # details for a tenant admin only
    body = r.json()
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["postgis"]["ok"] is True
    assert body["checks"]["postgis"]["detail"].startswith("PostGIS 3.")
    assert body["checks"]["migrations"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True


def test_me(client, world):
    r = client.get("/api/v1/me", headers=world.operator_member.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["email"] == "planer@xa.example"
    assert body["role"] == "operator_member"
    assert body["tenant"] == {"key": "xa", "name": "Testland A", "crs": "EPSG:25832"}
    assert body["organisation"]["name"] == "Netz Testland A GmbH"
    assert body["token_id"] == str(world.operator_member.token_id)


def test_missing_and_malformed_token(client):
    r = client.get("/api/v1/me")
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    assert r.headers["www-authenticate"] == 'Bearer realm="breitband"'
    assert r.json()["type"].endswith("/token-missing")
    r = client.get("/api/v1/me", headers={"Authorization": "Bearer "})
    assert r.status_code == 401
    assert r.json()["type"].endswith("/token-malformed")
    r = client.get("/api/v1/me", headers={"Authorization": "Token abc"})
    assert r.status_code == 401
    assert r.json()["type"].endswith("/token-malformed")
    # HTTP Basic is taken only by the read-only GIS endpoints (tests/test_basic_auth.py); here it says so
    r = client.get("/api/v1/me", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    assert r.json()["type"].endswith("/basic-not-accepted")


def test_invalid_token(client, world):
    r = client.get("/api/v1/me", headers={"Authorization": "Bearer bb_not-a-real-token"})
    assert r.status_code == 401
    assert r.json()["detail"] == "The token is not valid"


def test_expired_token(client, session, world):
    session.execute(update(ApiToken).where(ApiToken.id == world.reviewer.token_id)
                    .values(expires_at=datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)))
    session.commit()
    r = client.get("/api/v1/me", headers=world.reviewer.headers)
    assert r.status_code == 401
    assert r.json()["type"] == "https://breitband.dev/problems/token-expired"
    assert r.json()["detail"] == ("The token expired at 2026-03-01T09:30:00Z; get a new one from your operating "
                                  "office (or create one with POST /api/v1/me/tokens while another token is valid)")


def test_revoked_token(client, session, world):
    identity.revoke_token(session, world.reviewer.token_id, now=datetime(2026, 3, 2, 8, 0, 5, tzinfo=timezone.utc))
    session.commit()
    r = client.get("/api/v1/me", headers=world.reviewer.headers)
    assert r.status_code == 401
    assert r.json()["type"] == "https://breitband.dev/problems/token-revoked"
    assert r.json()["detail"] == ("The token was revoked at 2026-03-02T08:00:05Z (signed out or withdrawn); "
                                  "sign in with another token")


def test_token_stored_only_as_hash(session, world):
    row = session.get(ApiToken, world.reviewer.token_id)
    assert row.token_hash == identity.hash_token(world.reviewer.token)
    assert world.reviewer.token not in (row.token_hash, row.prefix, row.name)
    assert row.prefix == world.reviewer.token[:10]


def test_wrong_role_is_403(app, world):
    from fastapi import Depends
    from fastapi.testclient import TestClient

    from breitband.auth import require
    from breitband.models import Role

    router = APIRouter()

    @router.get("/admin-only")
    def admin_only(principal=Depends(require(Role.tenant_admin))):
        return {"ok": principal.email}

    app.include_router(router)
    with TestClient(app) as c:
        r = c.get("/admin-only", headers=world.operator_member.headers)
        assert r.status_code == 403
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["detail"] == "This needs one of the roles tenant_admin; you are operator_member"
        assert c.get("/admin-only", headers=world.admin.headers).json() == {"ok": "admin@xa.example"}


def test_other_tenant_gets_404(client, world, other_world):
    foreign = other_world.authority.id
    r = client.get(f"/api/v1/organisations/{foreign}", headers=world.admin.headers)
    assert r.status_code == 404
    assert r.json()["detail"] == f"No organisation {foreign}"
    own = client.get(f"/api/v1/organisations/{world.authority.id}", headers=world.admin.headers)
    assert own.status_code == 200
    names = {o["name"] for o in client.get("/api/v1/organisations", headers=world.admin.headers).json()}
    assert names == {"Servicestelle Testland A", "Netz Testland A GmbH", "Faser Testland A AG",
                     "Straßenbauamt Testland A"}


def test_other_operator_gets_404(client, world):
    r = client.get(f"/api/v1/organisations/{world.other_operator.id}", headers=world.operator_member.headers)
    assert r.status_code == 404
    names = {o["name"] for o in client.get("/api/v1/organisations",
                                           headers=world.operator_member.headers).json()}
    assert names == {"Servicestelle Testland A", "Netz Testland A GmbH", "Straßenbauamt Testland A"}
    assert client.get(f"/api/v1/organisations/{uuid.uuid4()}", headers=world.admin.headers).status_code == 404
