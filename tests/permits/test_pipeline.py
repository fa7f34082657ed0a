"""The review pipeline through the API and its Celery tasks (run in the test process on the test's transaction):
started by the outbox, steps idempotent, progress visible, a failed step shown to tenant admins and retried."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from typer.testing import CliRunner

import breitband.clock
from breitband import identity
from breitband.models import OrgKind
from notifications import outbox
from notifications.models import Event
from permits.participation import service as participation
from permits.participation.models import StatementRequest
from permits.pipeline import runner
from permits.pipeline import service as pipeline
from permits.pipeline.models import PipelineRun
from tests.support.api import PROBLEM, collection, trench

STEPS = ["resolution", "checks", "participation", "notifications"]


def traffic_body(session, ags: str = "06438009", name: str = "Straßenverkehrsbehörde Neu-Isenburg"):
    org = identity.create_organisation(session, "he", OrgKind.participating_body, name)
    participation.add_body(session, "he", org, "traffic", ags, breitband.clock.now())
    session.commit()
    return org


def run_id_of(session, app_id: str, version: int = 1) -> uuid.UUID:
    return pipeline.run_for(session, uuid.UUID(app_id), version).id


def run_all(task_db, run_id) -> list[str]:
    """What the chain does: each step task in order, on a worker's terms (task.apply)."""
    from permits.pipeline.tasks import pipeline_step

    states = []
    for name in STEPS:
        result = pipeline_step.apply(args=[str(run_id), name])
        states.append(result.state)
        if result.state != "SUCCESS":
            break
    return states


def steps(client, who, app_id):
    r = client.get(f"/api/v1/applications/{app_id}/pipeline", headers=who.headers)
    assert r.status_code == 200, r.text
    return {s["name"]: s for s in r.json()["runs"][0]["steps"]}


def test_submit_writes_a_pending_run_and_the_relay_starts_it(api, he, lines, clock, client, db, session, task_db):
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])), traffic_restrictions=[])
    body = client.get(f"/api/v1/applications/{app['id']}/pipeline", headers=he.operator.headers).json()
    [run] = body["runs"]
    assert (run["version"], run["trigger"], run["status"]) == (1, "submission", "pending")
    assert [(s["name"], s["status"], s["attempts"]) for s in run["steps"]] == [(n, "pending", 0) for n in STEPS]
    assert client.get(f"/api/v1/applications/{app['id']}/pipeline", headers=he.other_operator.headers
                      ).status_code == 404

    # the relay publishes application.submitted and sends permits.pipeline_start, which sends the chain
    from permits.pipeline.tasks import pipeline_start

    assert outbox.relay(db)["triggered"] >= 1
    assert "permits.pipeline_start" in outbox._subscribers["application.submitted"]
    event = next(e for e in client.get("/api/v1/events", headers=he.operator.headers).json()["items"]
                 if e["type"] == "application.submitted")
    assert pipeline_start.apply(args=[event]).get() is True          # the chain went to the broker
    session.expire_all()
    assert session.get(PipelineRun, run_id_of(session, app["id"])).enqueued_at is not None
    assert pipeline_start.apply(args=[event]).get() is False         # a second publication starts nothing

    assert run_all(task_db, run_id_of(session, app["id"])) == ["SUCCESS"] * 4
    s = steps(client, he.neu_isenburg, app["id"])
    assert {n: x["status"] for n, x in s.items()} == dict.fromkeys(STEPS, "succeeded")
    res = s["resolution"]["result"]
    assert res["matches_submission"] is True
    assert [(a["name"], a["length_m"]) for a in res["authorities"]] == [
        ("Stadt Neu-Isenburg", app["route"]["by_authority"][0]["length_m"])]
    checks = s["checks"]["result"]
    assert checks["conflicts"]["checked"] is False and "nicht Teil" in checks["conflicts"]["note"]
    assert checks["participation"]["requests"] == [] and checks["participation"]["unresolved"] == []
    assert s["notifications"]["result"]["events"] == ["pipeline.completed"]
    completed = session.scalars(select(Event).where(Event.application_id == app["id"],
                                                    Event.type == "pipeline.completed")).all()
    assert [(e.payload["version"], e.payload["statements_requested"]) for e in completed] == [(1, 0)]
    # the applicant sees progress and findings, not the internals
    mine = steps(client, he.operator, app["id"])
    assert mine["resolution"]["result"] is None and "plausibility" in mine["checks"]["result"]


def test_plausibility_findings_on_real_sections(api, he, lines, clock, client, session, task_db):
    sections = collection(
        trench(lines["neu_isenburg"], "open_trench", depth_cm=40, width_cm=30),     # shallow, not declared
        trench(lines["l3262"], "micro_trenching", depth_cm=90, width_cm=12))        # too deep for micro-trenching
    app = api.submitted(he.operator, sections, traffic_restrictions=[
        {"kind": "lane_narrowing", "start": "2026-05-01", "end": "2026-06-10"}])  # starts before planned_start
    traffic_body(session)
    assert run_all(task_db, run_id_of(session, app["id"])) == ["SUCCESS"] * 4
    findings = steps(client, he.admin, app["id"])["checks"]["result"]["plausibility"]["findings"]
    assert [(f["code"], f.get("field")) for f in findings if f["severity"] == "warning"] == [
        ("reduced-depth-not-declared", "sections.features[0].properties.reduced_depth"),
        ("depth-atypical", "sections.features[1].properties.depth_cm"),
        ("restriction-outside-period", "traffic_restrictions[0]")]
    assert "90 cm Tiefe ist für Micro-Trenching untypisch (üblich 7–45 cm)" in findings[1]["message"]


def test_failed_step_visible_to_admins_and_retried_after_the_cause_is_fixed(api, he, lines, clock, client, session,
                                                                          task_db):
    # a traffic restriction, but no Straßenverkehrsbehörde on file: participation cannot be requested
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    run_id = run_id_of(session, app["id"])
    assert run_all(task_db, run_id) == ["SUCCESS", "SUCCESS", "IGNORED"]
    admin_view = steps(client, he.admin, app["id"])
    assert [admin_view[n]["status"] for n in STEPS] == ["succeeded", "succeeded", "failed", "pending"]
    error = admin_view["participation"]["error"]
    assert "keine Straßenverkehrsbehörde für Neu-Isenburg (06438009) oder ihren Kreis hinterlegt" in error
    assert admin_view["participation"]["allowed_commands"] == ["retry"]
    unresolved = admin_view["checks"]["result"]["participation"]["unresolved"]
    assert [(u["rule"], u["gemeinde"]["ags"]) for u in unresolved] == [("verkehrsrechtliche-anordnung", "06438009")]
    operator_view = steps(client, he.operator, app["id"])
    assert operator_view["participation"]["status"] == "failed" and operator_view["participation"]["error"] is None
    run = client.get(f"/api/v1/applications/{app['id']}/pipeline", headers=he.admin.headers).json()["runs"][0]
    assert run["status"] == "failed"
    failed_events = session.scalars(select(Event).where(Event.application_id == app["id"],
                                                        Event.type == "pipeline.failed")).all()
    assert [e.payload["step"] for e in failed_events] == ["participation"]

    retry = f"/api/v1/applications/{app['id']}/pipeline/participation/retry"
    assert client.post(retry, headers=he.operator.headers).status_code == 403
    r = client.post(f"/api/v1/applications/{app['id']}/pipeline/checks/retry", headers=he.admin.headers)
    assert r.status_code == 409 and r.json()["type"].endswith("/step-not-failed")
    assert client.post(f"/api/v1/applications/{app['id']}/pipeline/bogus/retry",
                       headers=he.admin.headers).status_code == 404

    body = traffic_body(session)          # the tenant admin registers the body ...
    r = client.post(retry, headers=he.admin.headers)       # ... and retries
    assert r.status_code == 202, r.text
    assert [s["status"] for s in r.json()["runs"][0]["steps"]] == ["succeeded", "succeeded", "pending", "pending"]
    assert run_all(task_db, run_id) == ["SUCCESS"] * 4
    view = steps(client, he.admin, app["id"])
    assert [view[n]["status"] for n in STEPS] == ["succeeded"] * 4
    assert (view["participation"]["attempts"], view["participation"]["error"]) == (2, None)
    [request] = session.scalars(select(StatementRequest).where(StatementRequest.application_id == app["id"])).all()
    assert (request.body_org_id, request.role, request.status) == (body.id, "traffic", "requested")
    assert request.triggers[0]["reason"] == ("Verkehrsbeschränkungen (Gehwegsperrung) in Neu-Isenburg (§ 45 StVO).")


def test_steps_are_idempotent_and_in_order(api, he, lines, clock, session, task_db, db):
    traffic_body(session)
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    run_id = run_id_of(session, app["id"])
    assert runner.run_step(db, run_id, "participation")["status"] == "blocked"     # checks has not run
    assert run_all(task_db, run_id) == ["SUCCESS"] * 4
    for name in STEPS:                                   # a redelivered message for every step: nothing happens
        assert runner.run_step(db, run_id, name)["status"] == "skipped"
    assert session.scalar(select(func.count()).select_from(StatementRequest).where(
        StatementRequest.application_id == app["id"])) == 1
    assert session.scalar(select(func.count()).select_from(Event).where(
        Event.application_id == app["id"], Event.type.in_(["statement.requested", "pipeline.completed"]))) == 2
    assert runner.run_step(db, uuid.uuid4(), "checks")["status"] == "missing"


def test_supplement_starts_a_new_run_and_the_cli_retries(api, he, lines, clock, client, session, task_db):
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    run_all(task_db, run_id_of(session, app["id"]))                    # participation fails: no body
    clock.set("2026-01-20T10:00:00+01:00")
    r = api.command(he.operator, f"/applications/{app['id']}/supplements", {"message": "Neuer Verkehrsplan"})
    assert r.status_code == 200, r.text
    runs = client.get(f"/api/v1/applications/{app['id']}/pipeline", headers=he.admin.headers).json()["runs"]
    assert [(x["version"], x["trigger"], x["status"]) for x in runs] == [(2, "supplement", "pending"),
                                                                         (1, "submission", "failed")]
    run2 = run_id_of(session, app["id"], 2)
    assert run_all(task_db, run2) == ["SUCCESS", "SUCCESS", "IGNORED"]

    traffic_body(session)
    from breitband.cli import app as cli

    result = CliRunner().invoke(cli, ["pipeline", "retry", app["id"], "participation", "--here"])
    assert result.exit_code == 0, result.output
    assert '"step": "notifications"' in result.output and '"status": "succeeded"' in result.output
    session.expire_all()
    assert session.get(PipelineRun, run2).status == "succeeded"
    result = CliRunner().invoke(cli, ["pipeline", "retry", app["id"]])
    assert result.exit_code != 0 and "Only a failed step can be retried" in str(result.exception)
    shown = CliRunner().invoke(cli, ["pipeline", "show", app["id"]])
    assert shown.exit_code == 0 and '"trigger": "supplement"' in shown.output
    bad = client.get(f"/api/v1/applications/{uuid.uuid4()}/pipeline", headers=he.admin.headers)
    assert bad.status_code == 404 and bad.headers["content-type"] == PROBLEM
