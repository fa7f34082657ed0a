"""The conditions catalogue (API and CLI) and the append-only audit table."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from breitband.settings import PROJECT_ROOT
from permits.cases.catalogue import load_catalogue, read_catalogue_file
from tests.support.api import collection, draft_body, trench
from tests.support.cli import breitband_cli

HE_FILE = PROJECT_ROOT / "data" / "tenants" / "he_conditions.toml"


cli = breitband_cli      # tests/support/cli.py


def test_conditions_and_reasons_of_the_tenant(api, he, other_world):
    conditions = api.get(he.operator, "/conditions").json()
    assert [c["code"] for c in conditions] == [f"HE-N{i:02d}" for i in range(1, 12)]
    assert conditions[0] == {
        "code": "HE-N01", "title": "Wiederherstellung der Verkehrsfläche", "category": "restoration", "active": True,
        "text": "Die in Anspruch genommene Verkehrsfläche ist nach Abschluss der Arbeiten in einen dem vorgefundenen "
                "gleichwertigen Zustand zu versetzen. Aufgrabungen, Verfüllung, Verdichtung und Wiederherstellung "
                "des Oberbaus richten sich nach den ZTV A-StB in der in Hessen eingeführten Fassung; Deckschichten "
                "sind in der vorgefundenen Bauweise und Stärke herzustellen, Nähte sind zu vergießen."}
    assert [r["code"] for r in api.get(he.neu_isenburg, "/refusal-reasons").json()] == [
        f"HE-V{i:02d}" for i in range(1, 8)]
    # another tenant has its own (here: empty) catalogue
    xb = {"Authorization": f"Bearer {other_world.reviewer.token}"}
    assert api.c.get("/api/v1/conditions", headers=xb).json() == []


def test_deactivated_codes_cannot_be_used_in_new_decisions(api, he, lines, clock, session):
    rows = [r for r in read_catalogue_file(HE_FILE) if r["code"] != "HE-N05"]
    assert load_catalogue(session, "he", rows) == {"conditions": 10, "refusal_reasons": 7,
                                                    "traffic_order_conditions": 5, "traffic_order_reasons": 3,
                                                    "deactivated": 1}
    session.commit()
    assert "HE-N05" not in [c["code"] for c in api.get(he.operator, "/conditions").json()]
    inactive = api.get(he.operator, "/conditions", include_inactive="true").json()
    assert [c["active"] for c in inactive if c["code"] == "HE-N05"] == [False]
    case_id = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))["cases"][0]["id"]
    r = api.command(he.neu_isenburg, f"/cases/{case_id}/decision", {"outcome": "granted", "conditions": ["HE-N05"]})
    assert (r.status_code, r.json()["errors"]) == (
        422, [{"field": "conditions[0]", "message": "unknown or inactive condition code 'HE-N05'"}])


@pytest.fixture
def cli_tenant(engine):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tenants (key, name, srid, rules) VALUES ('cx', 'Katalog-Land', 25832, '{}')"))
    yield "cx"
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tenants WHERE key = 'cx'"))


@pytest.mark.slow
def test_conditions_load_cli(cli_tenant, tmp_path):
    run = cli("conditions", "load", "--tenant", cli_tenant, str(HE_FILE))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"tenant": "cx", "conditions": 11, "refusal_reasons": 7,
                                       "traffic_order_conditions": 5, "traffic_order_reasons": 3, "deactivated": 0}
    small = tmp_path / "small.toml"
    small.write_text('[[conditions]]\ncode = "CX-1"\ntitle = "Eine"\ntext = "Nur eine Bedingung."\n', "utf-8")
    assert json.loads(cli("conditions", "load", "--tenant", "cx", str(small)).stdout) == {
        "tenant": "cx", "conditions": 1, "refusal_reasons": 0, "traffic_order_conditions": 0,
        "traffic_order_reasons": 0, "deactivated": 26}
    listed = json.loads(cli("conditions", "list", "--tenant", "cx").stdout)
    assert listed == {"condition": [{"code": "CX-1", "title": "Eine", "active": True}], "refusal_reason": [],
                      "order_condition": [], "order_reason": []}
    assert len(json.loads(cli("conditions", "list", "--tenant", "cx", "--inactive").stdout)["condition"]) == 12

    bad = tmp_path / "bad.toml"
    bad.write_text('[[conditions]]\ncode = "A-1"\ntitle = "x"\ntext = "y"\n'
                   '[[conditions]]\ncode = "A-1"\ntitle = ""\ntext = "y"\n[[reasons]]\ncode = "R"\n', "utf-8")
    run = cli("conditions", "load", "--tenant", "cx", str(bad))
    assert run.returncode == 2
    assert run.stderr.splitlines()[0] == (
        f"error: {bad}: reasons: unknown table; expected [[conditions]], [[refusal_reasons]], "
        "[[traffic_order_conditions]] and [[traffic_order_reasons]]; "
        "conditions[1].code: duplicate code A-1; conditions[1].title: a non-empty title is required")
    run = cli("conditions", "load", "--tenant", "nope", str(HE_FILE))
    assert (run.returncode, run.stderr.strip()) == (1, "error: No tenant 'nope'")


def test_the_audit_trail_cannot_be_changed(api, he, lines, clock, session):
    app = api.create(he.operator, draft_body(collection(trench(lines["neu_isenburg"])))).json()
    count = session.execute(text("SELECT count(*) FROM permit_audit WHERE application_id = :id"),
                            {"id": app["id"]}).scalar()
    assert count == 1
    for statement in ("UPDATE permit_audit SET actor_name = 'jemand anders' WHERE application_id = :id",
                      "DELETE FROM permit_audit WHERE application_id = :id",
                      "TRUNCATE permit_audit"):
        with pytest.raises(DBAPIError) as err, session.begin_nested():
            session.execute(text(statement), {"id": app["id"]})
        assert "permit_audit is append-only" in str(err.value)
    assert session.execute(text("SELECT actor_name FROM permit_audit WHERE application_id = :id"),
                           {"id": app["id"]}).scalar() == "planer"
