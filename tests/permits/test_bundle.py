"""§ 127 (5) TKG, one application for every permit (issue 15, part 2): statement requests that are no longer needed
are closed with a reason and the body is told; deciding while statements are pending needs a confirmation."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import uuid
import zipfile
from datetime import datetime, timezone

from sqlalchemy import select
from test_participation import bodies, cli, run_pipeline, statements, water_area  # noqa: F401 - fixtures

import breitband.clock
from notifications import delivery, outbox
from notifications.models import Delivery, Event
from permits.cases import deemed
from tests.support.api import PROBLEM, collection, draft_body, trench

TYPE = "https://breitband.dev/problems/"


def _deliver_all(db, session, app_id) -> None:
    outbox.relay(db)
    ids = session.scalars(select(Delivery.id).join(Event, Event.id == Delivery.event_id).where(
        Event.application_id == uuid.UUID(app_id), Delivery.channel == "email", Delivery.status == "pending")).all()
    for d in ids:
        assert delivery.deliver(db, d)["status"] == "delivered"


def _events(session, app_id: str, type_: str) -> list[dict]:
    return [e.payload for e in session.scalars(select(Event).where(
        Event.application_id == uuid.UUID(app_id), Event.type == type_).order_by(Event.seq))]


def test_deciding_with_pending_statements_needs_confirmation_and_closes_them(
        api, he, lines, clock, client, session, task_db, db, smtp, bodies, water_area):  # noqa: F811
    app = api.submitted(he.operator, collection(trench(lines["l3262"]), trench(lines["neu_isenburg"])))
    assert run_pipeline(task_db, session, app["id"]) == ["SUCCESS"] * 4
    [w] = statements(client, bodies.water)
    [t] = statements(client, bodies.traffic_ni)
    hm, ni = api.case_of(app, "Hessen Mobil"), api.case_of(app, "Stadt Neu-Isenburg")

    # without confirmation: 409 naming every pending request, nothing decided
    r = api.command(he.hessen_mobil, f"/cases/{hm}/decision", {"outcome": "granted"})
    assert (r.status_code, r.headers["content-type"]) == (409, PROBLEM), r.text
    problem = r.json()
    assert problem["type"] == TYPE + "statements-pending"
    assert [(p["id"], p["body"]["name"], p["role"]) for p in problem["pending_statements"]] == [
        (t["id"], "Straßenverkehrsbehörde Neu-Isenburg", "traffic"),
        (w["id"], "Untere Wasserbehörde Kreis Offenbach", "water")]
    assert "Straßenverkehrsbehörde Neu-Isenburg (Frist " in problem["detail"]
    assert client.get(f"/api/v1/cases/{hm}", headers=he.hessen_mobil.headers).json()["status"] == "received"
    # a non-boolean confirmation is a validation error, not a 500
    r = api.command(he.hessen_mobil, f"/cases/{hm}/decision", {"outcome": "granted",
                                                                "confirm_pending_statements": "perhaps"})
    assert (r.status_code, r.headers["content-type"]) == (422, PROBLEM)

    # the water body answers; with confirmation Hessen Mobil decides, and the decision records what was pending
    r = client.post(f"/api/v1/statements/{w['id']}/answer", headers={**bodies.water.headers, "If-Match": w["etag"]},
                    json={"answer": "agree"})
    assert r.status_code == 200, r.text
    r = api.command(he.hessen_mobil, f"/cases/{hm}/decision", {"outcome": "granted",
                                                                "confirm_pending_statements": True})
    assert r.status_code == 200, r.text
    assert [p["id"] for p in r.json()["decision"]["pending_statements"]] == [t["id"]]
    # Neu-Isenburg's case is still open: the traffic request is still needed
    [t_now] = statements(client, bodies.traffic_ni)
    assert (t_now["status"], t_now["closed_reason"]) == ("requested", None)

    # the last open case decided: the unanswered request is closed with its reason, the answered one stays
    r = api.command(he.neu_isenburg, f"/cases/{ni}/decision", {"outcome": "granted"})
    assert r.status_code == 409 and r.json()["type"] == TYPE + "statements-pending"
    r = api.command(he.neu_isenburg, f"/cases/{ni}/decision", {"outcome": "granted",
                                                                "confirm_pending_statements": True})
    assert r.status_code == 200, r.text
    [t_now] = statements(client, bodies.traffic_ni)
    assert (t_now["status"], t_now["closed_reason"], t_now["allowed_commands"]) == (
        "closed", "application_decided", [])
    assert t_now["closed_at"] is not None
    [w_now] = statements(client, bodies.water)
    assert (w_now["status"], w_now["closed_reason"]) == ("answered", None)
    r = client.post(f"/api/v1/statements/{t['id']}/answer",
                    headers={**bodies.traffic_ni.headers, "If-Match": t_now["etag"]}, json={"answer": "agree"})
    assert r.status_code == 409 and "the application has been decided" in r.json()["detail"]
    [closed] = _events(session, app["id"], "statement.closed")
    assert (closed["statement_id"], closed["reason"], closed["status"]) == (t["id"], "application_decided", "closed")

    # the body is told by e-mail
    _deliver_all(db, session, app["id"])
    [mail] = [m for m in smtp.to("svb@neu-isenburg.example") if "nicht mehr erforderlich" in m.subject]
    assert mail.subject == (f"Stellungnahme zu {app['reference']} nicht mehr erforderlich / Statement request "
                            "closed")
    assert "Über den Antrag ist entschieden; die Stellungnahme wird nicht mehr benötigt." in mail.body
    assert smtp.to("uwb@kreis-offenbach.example") and not [
        m for m in smtp.to("uwb@kreis-offenbach.example") if "nicht mehr erforderlich" in m.subject]


def test_withdrawal_closes_requests_as_withdrawn(api, he, lines, clock, client, session, task_db,
                                                 bodies, water_area):  # noqa: F811
    app = api.submitted(he.operator, collection(trench(lines["l3262"])))
    assert run_pipeline(task_db, session, app["id"]) == ["SUCCESS"] * 4
    [w] = statements(client, bodies.water)
    r = api.command(he.operator, f"/applications/{app['id']}/withdraw", {"reason": "Projekt gestoppt"})
    assert r.status_code == 200, r.text
    [w_now] = statements(client, bodies.water)
    assert (w_now["id"], w_now["status"], w_now["closed_reason"]) == (w["id"], "withdrawn", "application_withdrawn")
    [t_now] = statements(client, bodies.traffic_ni)                   # the default draft restricts traffic too
    assert (t_now["status"], t_now["closed_reason"]) == ("withdrawn", "application_withdrawn")
    events = _events(session, app["id"], "statement.closed")
    assert sorted(e["statement_id"] for e in events) == sorted([w["id"], t_now["id"]])
    closed = next(e for e in events if e["statement_id"] == w["id"])
    assert (closed["reason"], closed["reason_text"]) == (
        "application_withdrawn", "Der Antrag wurde zurückgenommen; die Stellungnahme wird nicht mehr benötigt.")


def test_route_change_supersedes_with_reason_and_tells_the_body(api, he, lines, clock, client, session, task_db, db,
                                                                smtp, bodies, water_area):  # noqa: F811
    app = api.submitted(he.operator, collection(trench(lines["l3262"])), traffic_restrictions=[])
    assert run_pipeline(task_db, session, app["id"]) == ["SUCCESS"] * 4
    [first] = statements(client, bodies.water)
    clock.set("2026-01-22T10:00:00+01:00")
    r = api.command(he.operator, f"/applications/{app['id']}/supplements",
                    {"message": "Trasse verlängert", "sections": collection(trench(lines["l3262"]),
                                                                            trench(lines["neu_isenburg"]))})
    assert r.status_code == 200, r.text
    assert run_pipeline(task_db, session, app["id"], 2) == ["SUCCESS"] * 4
    old = next(s for s in statements(client, bodies.water) if s["id"] == first["id"])
    assert (old["status"], old["closed_reason"]) == ("superseded", "route_changed")
    _deliver_all(db, session, app["id"])
    assert [m.subject for m in smtp.to("uwb@kreis-offenbach.example") if "Trasse geändert" in m.subject] == [
        f"Stellungnahme zu {app['reference']}: Trasse geändert, neue Anfrage / Statement request superseded"]


def test_deemed_approval_by_the_sweep_closes_requests_like_a_command(api, he, lines, clock, client, session, task_db,
                                                                     db, bodies, water_area):  # noqa: F811
    app = api.submitted(he.operator, collection(trench(lines["l3262"])), traffic_restrictions=[])
    assert run_pipeline(task_db, session, app["id"]) == ["SUCCESS"] * 4
    [w] = statements(client, bodies.water)
    result = deemed.sweep(db, datetime(2026, 6, 1, 10, tzinfo=timezone.utc))    # (the tokens expire in April)
    assert result["deemed_granted"] == 1
    session.expire_all()
    [w_now] = statements(client, bodies.water)
    assert (w_now["status"], w_now["closed_reason"]) == ("closed", "application_decided")
    assert w_now["etag"] != w["etag"]
    [closed] = _events(session, app["id"], "statement.closed")
    # the same payload as the per-case path writes (close_unneeded)
    assert closed == {"application_id": app["id"], "reference": app["reference"], "tenant_key": "he",
                      "statement_id": w["id"], "body_org_id": w["body"]["id"], "role": "water", "status": "closed",
                      "reason": "application_decided",
                      "reason_text": "Über den Antrag ist entschieden; die Stellungnahme wird nicht mehr benötigt.",
                      "due_on": w["due_on"]}


# --- further decisions issued together with the consent (§ 127 (5) TKG) ----------------------------------------------

def _rules_with_decisions(session, roles=("traffic", "water")) -> None:
    """The default rules, with the traffic order and the water permit as decisions (tenant configuration)."""
    from permits.participation import service as participation

    data = copy.deepcopy(participation.DEFAULT_RULES)
    for rule in data["rules"]:
        if rule["role"] in roles:
            rule["procedure"] = "decision"
    participation.store_rules(session, "he", participation.parse_rules(data), "test", breitband.clock.now())
    session.commit()


def _submitted_with_plan(api, client, he, lines, names=("l3262", "neu_isenburg")) -> tuple[dict, dict]:
    """An application along the L 3262 and through Neu-Isenburg with a lane closure and a traffic signs plan."""
    from test_permits_attachments import PDF, upload

    created = api.create(he.operator, draft_body(
        collection(*(trench(lines[n]) for n in names)),
        traffic_restrictions=[{"kind": "lane_closure", "description": "Fahrstreifen gesperrt, Ampel",
                               "road": "Admiral-Rosendahl-Straße", "start": "2026-06-01", "end": "2026-06-20"}]))
    assert created.status_code == 201, created.text
    app_id = created.json()["id"]
    plan = upload(api, he.operator, app_id, "Verkehrszeichenplan.pdf", PDF, kind="traffic_plan").json()
    r = client.patch(f"/api/v1/applications/{app_id}", headers={**he.operator.headers,
                                                                "If-Match": created.headers["etag"]},
                     json={"attachment_ids": [plan["id"]]})
    assert r.status_code == 200, r.text
    r = api.command(he.operator, f"/applications/{app_id}/submit", etag=r.headers["etag"])
    assert r.status_code == 200, r.text
    return r.json(), plan


ORDER = {"period_start": "2026-06-01", "period_end": "2026-06-20",
         "times_of_day": [{"weekdays": [1, 2, 3, 4, 5], "start": "09:00", "end": "15:30"}],
         "detour": "Über Frankfurter Straße und Carl-Ulrich-Straße, beschildert nach Plan",
         "measures": "Halbseitige Sperrung mit Lichtsignalanlage"}


def test_traffic_order_and_water_permit_are_cases_of_their_bodies_bound_to_the_consent(
        api, he, lines, clock, client, session, task_db, db, bodies, water_area):  # noqa: F811
    _rules_with_decisions(session)
    app, plan = _submitted_with_plan(api, client, he, lines)
    assert run_pipeline(task_db, session, app["id"]) == ["SUCCESS"] * 4
    assert statements(client, bodies.traffic_ni) == [] and statements(client, bodies.water) == []

    # each body finds its decision in its inbox, bound to the consent's deadline, with no deemed approval of its own
    [order] = client.get("/api/v1/cases", headers=bodies.traffic_ni.headers).json()["items"]
    [water] = client.get("/api/v1/cases", headers=bodies.water.headers).json()["items"]
    assert (order["kind"], order["reference"], water["kind"]) == ("traffic_order", app["reference"], "water_permit")
    hm, ni = api.case_of(app, "Hessen Mobil"), api.case_of(app, "Stadt Neu-Isenburg")
    consent = client.get(f"/api/v1/cases/{hm}", headers=he.hessen_mobil.headers).json()
    order_case = client.get(f"/api/v1/cases/{order['id']}", headers=bodies.traffic_ni.headers).json()
    assert (order_case["decision_due"], order_case["deadline_at"], order_case["allowed_commands"]) == (
        consent["decision_due"], None, ["decision"])
    assert order_case["proposed_order"]["period_start"] == "2026-06-01"
    assert order_case["proposed_order"]["period_end"] == "2026-06-20"
    assert sorted(c["authority"]["name"] for c in order_case["consent_cases"]) == ["Hessen Mobil",
                                                                                  "Stadt Neu-Isenburg"]
    # the consent case shows them and their state
    assert sorted((r["kind"], r["body"]["name"], r["status"]) for r in consent["related_decisions"]) == [
        ("traffic_order", "Straßenverkehrsbehörde Neu-Isenburg", "received"),
        ("water_permit", "Untere Wasserbehörde Kreis Offenbach", "received")]
    # nobody else reads them: another body, another operator
    for stranger in (bodies.traffic_kreis, bodies.monument, he.other_operator, he.frankfurt):
        r = client.get(f"/api/v1/cases/{order['id']}", headers=stranger.headers)
        assert (r.status_code, r.headers["content-type"]) == (404, PROBLEM)
    # the applicant sees them with the application
    mine = client.get(f"/api/v1/applications/{app['id']}", headers=he.operator.headers).json()
    assert sorted(c["kind"] for c in mine["cases"]) == ["consent", "consent", "traffic_order", "water_permit"]
    assert len(mine["related_decisions"]) == 2

    # the consent cannot go out while they are open, unless the authority says why
    r = api.command(he.hessen_mobil, f"/cases/{hm}/decision", {"outcome": "granted"})
    assert (r.status_code, r.json()["type"]) == (409, TYPE + "related-decisions-missing"), r.text
    assert sorted(m["kind"] for m in r.json()["related_decisions"]) == ["traffic_order", "water_permit"]
    assert "Verkehrsrechtliche Anordnung (§ 45 Abs. 6 StVO) – Straßenverkehrsbehörde Neu-Isenburg" in r.json()[
        "detail"]
    # the body cannot use the consent's commands; a traffic order needs its form data and its own catalogue
    for command in ("request-information", "extend-deadline", "forward"):
        r = api.command(bodies.traffic_ni, f"/cases/{order['id']}/{command}", {"message": "x", "reason": "x"})
        assert r.status_code in (409, 422), (command, r.text)
    r = api.command(bodies.traffic_ni, f"/cases/{order['id']}/decision", {"outcome": "granted"})
    assert (r.status_code, r.json()["field"]) == (422, "traffic_order"), r.text
    r = api.command(bodies.traffic_ni, f"/cases/{order['id']}/decision", {
        "outcome": "granted", "traffic_order": {**ORDER, "signs_plan_attachment_id": str(uuid.uuid4())}})
    assert (r.status_code, r.json()["field"]) == (422, "traffic_order.signs_plan_attachment_id"), r.text
    r = api.command(bodies.traffic_ni, f"/cases/{order['id']}/decision", {
        "outcome": "granted", "traffic_order": {**ORDER, "period_end": "2026-05-01",
                                                "signs_plan_attachment_id": plan["id"]}})
    assert r.status_code == 422 and "period_end lies before period_start" in r.text
    r = api.command(bodies.traffic_ni, f"/cases/{order['id']}/decision", {
        "outcome": "granted", "conditions": ["HE-N01"], "traffic_order": {**ORDER, "signs_plan_attachment_id":
                                                                           plan["id"]}})
    assert r.status_code == 422 and "unknown or inactive order condition code 'HE-N01'" in r.text
    r = api.command(bodies.traffic_ni, f"/cases/{order['id']}/decision", {
        "outcome": "granted", "conditions": ["HE-VA01", "HE-VA03"],
        "traffic_order": {**ORDER, "signs_plan_attachment_id": plan["id"]}})
    assert r.status_code == 200, r.text
    decided = r.json()["decision"]
    assert [c["code"] for c in decided["conditions"]] == ["HE-VA01", "HE-VA03"]
    assert decided["traffic_order"]["signs_plan"]["file_name"] == "Verkehrszeichenplan.pdf"
    assert decided["traffic_order"]["times_of_day"] == [{"weekdays": [1, 2, 3, 4, 5], "start": "09:00:00",
                                                         "end": "15:30:00"}]
    assert api.get(he.operator, "/conditions", decision_kind="traffic_order").json()[0]["code"] == "HE-VA01"

    # with the water permit still open, Hessen Mobil decides and says why; the decision records it
    r = api.command(he.hessen_mobil, f"/cases/{hm}/decision", {
        "outcome": "granted", "related_missing_reason": "Die Wasserbehörde hat Fristverlängerung erbeten."})
    assert r.status_code == 200, r.text
    assert [m["kind"] for m in r.json()["decision"]["related_missing"]] == ["water_permit"]
    r = api.command(bodies.water, f"/cases/{water['id']}/decision", {"outcome": "granted", "conditions": ["HE-N04"]})
    assert r.status_code == 200, r.text
    r = api.command(he.neu_isenburg, f"/cases/{ni}/decision", {
        "outcome": "granted", "related_missing_reason": "unnötig"})
    assert (r.status_code, r.json()["field"]) == (422, "related_missing_reason")
    r = api.command(he.neu_isenburg, f"/cases/{ni}/decision", {"outcome": "granted"})
    assert r.status_code == 200, r.text
    assert client.get(f"/api/v1/applications/{app['id']}", headers=he.operator.headers).json()["status"] == "granted"


def test_the_bundle_goes_out_together_one_notice_one_package(api, he, lines, clock, client, session, task_db, db,
                                                            smtp, bodies):  # noqa: F811
    from test_documents import pdf_text

    from tests.support.documents import issue

    _rules_with_decisions(session, roles=("traffic",))
    app, plan = _submitted_with_plan(api, client, he, lines, names=("neu_isenburg",))
    assert run_pipeline(task_db, session, app["id"]) == ["SUCCESS"] * 4
    [order] = client.get("/api/v1/cases", headers=bodies.traffic_ni.headers).json()["items"]
    ni = api.case_of(app, "Stadt Neu-Isenburg")
    r = api.command(bodies.traffic_ni, f"/cases/{order['id']}/decision", {
        "outcome": "granted", "conditions": ["HE-VA01"], "traffic_order": {**ORDER, "signs_plan_attachment_id":
                                                                           plan["id"]}})
    assert r.status_code == 200, r.text
    assert _events(session, app["id"], "application.decided") == []
    r = client.get(f"/api/v1/applications/{app['id']}/documents.zip", headers=he.operator.headers)
    assert (r.status_code, r.json()["type"]) == (409, TYPE + "application-not-decided")
    r = api.command(he.neu_isenburg, f"/cases/{ni}/decision", {"outcome": "granted", "conditions": ["HE-N01"]})
    assert r.status_code == 200, r.text

    # one event for the bundle, listing every decision
    [bundle] = _events(session, app["id"], "application.decided")
    assert bundle["status"] == "granted"
    assert [(d["kind"], d["authority"], d["status"]) for d in bundle["decisions"]] == [
        ("consent", "Stadt Neu-Isenburg", "granted"), ("traffic_order", "Straßenverkehrsbehörde Neu-Isenburg",
                                                       "granted")]
    assert bundle["package_url"] == f"/api/v1/applications/{app['id']}/documents.zip"
    # one e-mail to the operator for the bundle, none per decision
    _deliver_all(db, session, app["id"])
    subjects = [m.subject for m in smtp.to("planer@glasfaser-test.example")]
    assert f"{app['reference']}: alle Entscheidungen liegen vor / all decisions issued" in subjects
    assert not [s for s in subjects if "Zustimmung erteilt" in s]
    [notice] = [m for m in smtp.to("planer@glasfaser-test.example") if "alle Entscheidungen" in m.subject]
    assert "Verkehrsrechtliche Anordnung (§ 45 Abs. 6 StVO) – Straßenverkehrsbehörde Neu-Isenburg: erteilt" in \
        notice.body

    # the package: not before the documents are signed, then both in one zip with a manifest
    r = client.get(f"/api/v1/applications/{app['id']}/documents.zip", headers=he.operator.headers)
    assert (r.status_code, r.json()["type"]) == (409, TYPE + "documents-not-ready")
    consent_doc, order_doc = issue(db, task_db, session, ni), issue(db, task_db, session, order["id"])
    r = client.get(f"/api/v1/applications/{app['id']}/documents.zip", headers=he.operator.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert [(d["kind"], d["document_id"]) for d in manifest["documents"]] == [
            ("consent", str(consent_doc.id)), ("traffic_order", str(order_doc.id))]
        order_pdf = zf.read(manifest["documents"][1]["file"])
    assert hashlib.sha256(order_pdf).hexdigest() == order_doc.sha256
    text = " ".join(pdf_text(order_pdf).split())
    assert "Verkehrsrechtliche Anordnung (§ 45 Abs. 6 StVO)" in text
    assert "Geltungszeitraum: 01.06.2026 bis 20.06.2026; Zeiten: Mo, Di, Mi, Do, Fr 09:00–15:30 Uhr" in text
    assert "Umleitung: Über Frankfurter Straße und Carl-Ulrich-Straße" in text
    assert "§ 45 Abs. 6 StVO i. V. m. § 127 Abs. 5 TKG" in text
    # the same scope as the application: another operator gets 404
    r = client.get(f"/api/v1/applications/{app['id']}/documents.zip", headers=he.other_operator.headers)
    assert (r.status_code, r.headers["content-type"]) == (404, PROBLEM)


def test_a_deemed_approval_covers_only_the_consent(api, he, lines, clock, client, session, task_db, db,
                                                  bodies):  # noqa: F811
    from test_documents import pdf_text

    from tests.support.documents import issue

    _rules_with_decisions(session, roles=("traffic",))
    app, plan = _submitted_with_plan(api, client, he, lines, names=("neu_isenburg",))
    assert run_pipeline(task_db, session, app["id"]) == ["SUCCESS"] * 4
    [order] = client.get("/api/v1/cases", headers=bodies.traffic_ni.headers).json()["items"]
    ni = api.case_of(app, "Stadt Neu-Isenburg")
    # the sweep deems the consent, never the traffic order; the certificate names what it does not cover
    swept = deemed.sweep(db, datetime(2026, 4, 16, 10, tzinfo=timezone.utc))
    assert [c["case_id"] for c in swept["cases"]] == [ni]
    session.expire_all()
    consent = client.get(f"/api/v1/cases/{ni}", headers=he.neu_isenburg.headers).json()
    assert consent["status"] == "deemed_granted"
    assert consent["decision"]["not_covered"] == [{
        "case_id": order["id"], "kind": "traffic_order", "title": "Verkehrsrechtliche Anordnung (§ 45 Abs. 6 StVO)",
        "body": "Straßenverkehrsbehörde Neu-Isenburg", "status": "received"}]
    assert client.get(f"/api/v1/cases/{order['id']}", headers=bodies.traffic_ni.headers).json()["status"] == \
        "received"
    doc = issue(db, task_db, session, ni)
    text = " ".join(pdf_text(client.get(f"/api/v1/documents/{doc.id}/pdf", headers=he.operator.headers).content)
                    .split())
    assert "Nicht von der Fiktion umfasst" in text
    assert ("Verkehrsrechtliche Anordnung (§ 45 Abs. 6 StVO) – Straßenverkehrsbehörde Neu-Isenburg (Stand: noch "
            "nicht entschieden)") in text
    assert _events(session, app["id"], "application.decided") == []

    # the traffic order decided last: the bundle is announced by the command
    r = api.command(bodies.traffic_ni, f"/cases/{order['id']}/decision", {
        "outcome": "refused", "reasons": ["HE-VAV01"], "explanation": "Stadtfest im Juni."})
    assert r.status_code == 200, r.text
    [bundle] = _events(session, app["id"], "application.decided")
    assert [(d["kind"], d["status"]) for d in bundle["decisions"]] == [("consent", "deemed_granted"),
                                                                        ("traffic_order", "refused")]


def test_the_sweep_announces_the_bundle_like_a_command(api, he, lines, clock, client, session, task_db, db,
                                                      bodies):  # noqa: F811
    _rules_with_decisions(session, roles=("traffic",))
    app, plan = _submitted_with_plan(api, client, he, lines, names=("neu_isenburg",))
    assert run_pipeline(task_db, session, app["id"]) == ["SUCCESS"] * 4
    [order] = client.get("/api/v1/cases", headers=bodies.traffic_ni.headers).json()["items"]
    ni = api.case_of(app, "Stadt Neu-Isenburg")
    r = api.command(bodies.traffic_ni, f"/cases/{order['id']}/decision", {
        "outcome": "granted", "traffic_order": {**ORDER, "signs_plan_attachment_id": plan["id"]}})
    assert r.status_code == 200, r.text
    deemed.sweep(db, datetime(2026, 4, 16, 10, tzinfo=timezone.utc))
    deemed.sweep(db, datetime(2026, 4, 17, 10, tzinfo=timezone.utc))          # again: nothing twice
    session.expire_all()
    [bundle] = _events(session, app["id"], "application.decided")
    assert bundle == {"application_id": app["id"], "reference": app["reference"], "tenant_key": "he",
                      "status": "granted", "package_url": f"/api/v1/applications/{app['id']}/documents.zip",
                      "decisions": [
                          {"case_id": ni, "kind": "consent", "title": "Zustimmung nach § 127 TKG",
                           "authority": "Stadt Neu-Isenburg", "status": "deemed_granted"},
                          {"case_id": order["id"], "kind": "traffic_order",
                           "title": "Verkehrsrechtliche Anordnung (§ 45 Abs. 6 StVO)",
                           "authority": "Straßenverkehrsbehörde Neu-Isenburg", "status": "granted"}]}
    consent = client.get(f"/api/v1/cases/{ni}", headers=he.neu_isenburg.headers).json()
    assert [(n["kind"], n["status"]) for n in consent["decision"]["not_covered"]] == [("traffic_order", "granted")]
