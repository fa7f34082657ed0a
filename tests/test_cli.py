"""The `breitband` command line, run as a subprocess against the test database."""

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
    yield "cl"
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tenants WHERE key = 'cl'"))


@pytest.mark.slow
def test_help_everywhere():
    for cmd in ([], ["tenant"], ["tenant", "create"], ["org", "create"], ["user", "create"], ["token", "create"],
                ["token", "revoke"], ["token", "list"], ["token", "cap-expiry"], ["user", "deactivate"],
                ["user", "reactivate"], ["db", "upgrade"], ["serve"],
                ["worker"], ["beat"]):
        proc = run(*cmd, "--help")
        assert "Usage:" in proc.stdout, cmd


@pytest.mark.slow
def test_tenant_org_user_token_roundtrip(cli_tenant, engine):
    t = json.loads(run("tenant", "create", cli_tenant, "--name", "CLI-Land", "--crs", "EPSG:25833").stdout)
    assert t == {"key": "cl", "name": "CLI-Land", "crs": "EPSG:25833", "rules": {}}
    dup = run("tenant", "create", cli_tenant, "--name", "x", "--crs", "EPSG:25833", check=False)
    assert dup.returncode == 1
    assert dup.stderr.startswith("error: Tenant 'cl' exists already")
    assert {"key": "cl", "name": "CLI-Land", "crs": "EPSG:25833"} in json.loads(run("tenant", "list").stdout)

    org = json.loads(run("org", "create", "--tenant", "cl", "--kind", "operator", "--name", "Netz AG").stdout)
    assert org["kind"] == "operator"
    listed = json.loads(run("org", "list", "--tenant", "cl").stdout)
    assert [o["name"] for o in listed] == ["Netz AG"]
    user = json.loads(run("user", "create", "--tenant", "cl", "--org", "Netz AG", "--email", "A@Netz.example",
                          "--name", "A", "--role", "operator_member").stdout)
    assert user["email"] == "a@netz.example"
    bad_role = run("user", "create", "--tenant", "cl", "--org", "Netz AG", "--email", "b@netz.example",
                   "--name", "B", "--role", "tenant_admin", check=False)
    assert bad_role.returncode == 2
    assert "Role tenant_admin belongs to an organisation of kind operating_office, not operator" in bad_role.stderr

    tok = json.loads(run("token", "create", "--tenant", "cl", "--email", "a@netz.example").stdout)
    assert tok["token"].startswith("bb_")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash FROM api_tokens WHERE id = :id"), {"id": tok["id"]}).scalar()
    assert stored is not None and tok["token"] not in stored
    rev = json.loads(run("token", "revoke", tok["id"]).stdout)
    assert rev["revoked_at"] is not None


@pytest.mark.slow
def test_cli_errors_are_clear(cli_tenant):
    proc = run("tenant", "create", cli_tenant, "--name", "X", "--crs", "EPSG:4326", check=False)
    assert proc.returncode == 2
    assert "EPSG:4326 is not a metric projected CRS" in proc.stderr
    proc = run("tenant", "create", cli_tenant, "--name", "X", "--crs", "EPSG:999999", check=False)
    assert proc.returncode == 2
    assert "Unknown CRS 'EPSG:999999'" in proc.stderr
    proc = run("token", "revoke", "nope", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: 'nope' is not a token id (a UUID)"
    proc = run("tenant", "show", "zz", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: No tenant 'zz'"


@pytest.mark.slow
def test_user_deactivate_ends_every_token_at_the_next_request_and_reactivate_restores_them(cli_tenant, client):
    run("tenant", "create", cli_tenant, "--name", "CLI-Land", "--crs", "EPSG:25833")
    run("org", "create", "--tenant", "cl", "--kind", "operator", "--name", "Netz AG")
    run("user", "create", "--tenant", "cl", "--org", "Netz AG", "--email", "a@netz.example", "--name", "A",
        "--role", "operator_member")
    secret = json.loads(run("token", "create", "--tenant", "cl", "--email", "a@netz.example").stdout)["token"]
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200

    out = json.loads(run("user", "deactivate", "--tenant", "cl", "--email", "A@Netz.example").stdout)
    assert (out["email"], out["active"], out["changed"], out["valid_tokens"]) == ("a@netz.example", False, True, 1)
    r = client.get("/api/v1/me", headers=headers)
    assert r.status_code == 401
    assert r.json()["type"] == "https://breitband.dev/problems/user-deactivated"
    again = json.loads(run("user", "deactivate", "--tenant", "cl", "--email", "a@netz.example").stdout)
    assert (again["active"], again["changed"]) == (False, False)

    out = json.loads(run("user", "reactivate", "--tenant", "cl", "--email", "a@netz.example").stdout)
    assert (out["active"], out["changed"], out["valid_tokens"]) == (True, True, 1)
    assert client.get("/api/v1/me", headers=headers).status_code == 200

    unknown = run("user", "deactivate", "--tenant", "cl", "--email", "nobody@netz.example", check=False)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: No user 'nobody@netz.example' in tenant 'cl'"
