"""`breitband user create --password-stdin`, `user set-password`, `user deactivate` (accounts/cli.py), run as a
subprocess against the test database."""

from __future__ import annotations

import json
from functools import partial

import pytest
from sqlalchemy import text

from tests.support.cli import breitband_cli

run = partial(breitband_cli, check=True)      # tests/support/cli.py


@pytest.fixture
def cli_tenant(engine):
    """Committed data (a subprocess cannot see a test transaction); removed afterwards."""
    yield "cp"
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tenants WHERE key = 'cp'"))


@pytest.fixture
def committing_client(settings, cli_tenant):
    """An app on the real database (its requests commit), so that the command line and the HTTP API see each
    other's sign-ins and sessions (the usual client's transaction is rolled back and would lock the user's row)."""
    from fastapi.testclient import TestClient

    from breitband.app import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def login(client, password: str):
    return client.post("/api/v1/auth/login", json={"tenant": "cp", "email": "ada@netz.example",
                                                   "password": password})


@pytest.mark.slow
def test_create_with_a_password_set_password_and_deactivate(cli_tenant, committing_client, engine):
    client = committing_client
    run("tenant", "create", cli_tenant, "--name", "Passwort-Land", "--crs", "EPSG:25833")
    run("org", "create", "--tenant", "cp", "--kind", "operator", "--name", "Netz AG")
    create = ("user", "create", "--tenant", "cp", "--org", "Netz AG", "--email", "Ada@Netz.example", "--name",
              "Ada Lovelace", "--role", "operator_member", "--password-stdin")
    refused = run(*create, stdin="password1234\n", check=False)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: This password is among the most commonly used ones")
    assert "password1234" not in refused.stderr
    short = run(*create, stdin="\n", check=False)
    assert short.returncode == 2 and "No password on standard input" in short.stderr

    out = json.loads(run(*create, stdin="engine notes analytical 1843\n").stdout)
    assert out["email"] == "ada@netz.example" and out["password"] is True
    assert login(client, "engine notes analytical 1843").status_code == 200

    personal = run("user", "set-password", "--tenant", "cp", "--email", "ada@netz.example",
                   stdin="lovelace-was-here\n", check=False)
    assert personal.returncode == 2 and "your e-mail address or your name" in personal.stderr
    done = json.loads(run("user", "set-password", "--tenant", "cp", "--email", "ada@netz.example",
                          stdin="difference engine brass\n").stdout)
    assert done["sessions_ended"] == 1
    assert client.get("/api/v1/me").json()["type"].endswith("/session-ended")
    assert login(client, "engine notes analytical 1843").status_code == 401
    assert login(client, "difference engine brass").status_code == 200

    out = json.loads(run("user", "deactivate", "--tenant", "cp", "--email", "ada@netz.example").stdout)
    assert out["sessions_ended"] == 1 and out["changed"] is True
    assert client.get("/api/v1/me").status_code == 401
    with engine.connect() as conn:
        kinds = conn.execute(text("SELECT kind FROM security_events WHERE tenant_key = 'cp' ORDER BY id")).scalars()
        assert list(kinds) == ["user-created", "password-set", "sign-in", "password-set", "sign-in-failed",
                               "sign-in", "user-deactivated"]
        agent = conn.execute(text("SELECT DISTINCT user_agent FROM security_events WHERE tenant_key = 'cp' "
                                  "AND kind IN ('user-created', 'user-deactivated')")).scalars().all()
        assert agent == ["breitband CLI"]
