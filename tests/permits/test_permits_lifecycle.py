"""The permit lifecycle through the HTTP API on real routes at the Frankfurter Kreuz, with a controlled clock."""

from __future__ import annotations

from sqlalchemy import select

from notifications.models import Event
from permits.cases import deemed
from tests.support.api import PROBLEM, collection, draft_body, trench

KREUZ_AUTHORITIES = ["Die Autobahn GmbH des Bundes", "Hessen Mobil", "Landkreis Offenbach", "Stadt Frankfurt am Main"]


def kreuz_sections(lines):
    return collection(
        trench(lines["a5"], "directional_drilling", depth_cm=150, width_cm=20, label="Querung A 5"),
        trench(lines["l3262"], "open_trench", depth_cm=80, width_cm=40),
        trench(lines["k163"], "mini_trenching", label="K 163 Mini-Trench"),
        trench(lines["k823"], "micro_trenching"),
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": lines["k823"]["coordinates"][0]},
         "properties": {"kind": "cabinet", "label": "NVt 12"}})


def test_full_flow_four_authorities_information_supplement_decisions_and_deemed_approval(
        api, he, lines, clock, db, session, client):
    clock.set("2026-01-15T10:00:00+01:00")
    created = api.create(he.operator, draft_body(kreuz_sections(lines)))
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"] == f"/api/v1/applications/{created.json()['id']}"
    app = created.json()
    assert (app["reference"], app["status"], app["version"]) == ("HE-2026-000001", "draft", 1)
    assert app["allowed_commands"] == ["update", "attachments", "submit", "withdraw"]
    assert [f["properties"]["reduced_depth"] for f in app["content"]["sections"]["features"][:4]] == [
        False, False, True, True]

    r = api.command(he.operator, f"/applications/{app['id']}/submit", etag=created.headers["etag"])
    assert r.status_code == 200, r.text
    app = r.json()
    assert app["status"] == "submitted"
    assert app["etag"] == r.headers["etag"]
    assert sorted(c["authority"]["name"] for c in app["cases"]) == KREUZ_AUTHORITIES
    assert {c["status"] for c in app["cases"]} == {"received"}
    by_authority = {c["authority"]["name"]: c for c in app["route"]["by_authority"]}
    assert sorted(by_authority) == KREUZ_AUTHORITIES
    assert abs(sum(c["length_m"] for c in by_authority.values()) - app["route"]["total_length_m"]) <= 1.0
    assert by_authority["Die Autobahn GmbH des Bundes"]["length_m"] == 300.0
    # the resolution is stored with the submitted version, pieces in the request CRS
    version = api.get(he.operator, f"/applications/{app['id']}/versions/1").json()
    assert version["kind"] == "submission"
    assert version["submitted_at"] == "2026-01-15T09:00:00Z"
    assert sorted(a["name"] for a in version["resolution"]["authorities"]) == KREUZ_AUTHORITIES

    cases = {c["authority"]["name"]: c["id"] for c in app["cases"]}
    ffm, autobahn = cases["Stadt Frankfurt am Main"], cases["Die Autobahn GmbH des Bundes"]
    kreis, mobil = cases["Landkreis Offenbach"], cases["Hessen Mobil"]
    case = api.get(he.frankfurt, f"/cases/{ffm}").json()
    assert (case["received_at"], case["completeness_due"], case["complete_at"], case["decision_due"]) == (
        "2026-01-15T09:00:00Z", "2026-02-16", "2026-01-15T09:00:00Z", "2026-04-15")   # 15 Feb 2026: a Sunday
    assert (case["completeness_due_statutory"], case["deadlines"]["completeness"]["label"]) == (
        "2026-02-15", "Montag, 16.02.2026 — der 15.02.2026 ist ein Sonntag")
    assert (case["deadline_at"], case["days_left"], case["overdue"]) == ("2026-04-15T22:00:00Z", 90, False)
    assert case["part"]["name"] == "Stadt Frankfurt am Main"
    assert case["allowed_commands"] == ["request-information", "confirm-complete", "decision", "forward",
                                        "extend-deadline"]

    # Frankfurt reports the application incomplete within the month: the clock stops
    clock.set("2026-02-10T09:00:00+01:00")
    r = api.command(he.frankfurt, f"/cases/{ffm}/request-information",
                    {"message": "Bitte Regelquerschnitt für den Micro-Trench nachreichen.",
                     "items": ["Regelquerschnitt", "Verkehrszeichenplan"]})
    assert r.status_code == 200, r.text
    case = r.json()
    assert (case["status"], case["clock_running"], case["complete_at"], case["decision_due"], case["days_left"]) == (
        "incomplete", False, None, None, None)
    request = case["information_requests"][0]
    assert (request["stops_clock"], request["requested_on"], request["items"]) == (
        True, "2026-02-10", ["Regelquerschnitt", "Verkehrszeichenplan"])
    assert api.get(he.operator, f"/applications/{app['id']}").json()["status"] == "information_requested"

    # the supplement answers Frankfurt's request and restarts both of its periods; other cases keep theirs
    clock.set("2026-02-20T11:00:00+01:00")
    r = api.command(he.operator, f"/applications/{app['id']}/supplements",
                    {"message": "Regelquerschnitt und Verkehrszeichenplan anbei."})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["version"]) == ("submitted", 2)
    case = api.get(he.frankfurt, f"/cases/{ffm}").json()
    assert (case["status"], case["received_at"], case["completeness_due"], case["complete_at"],
            case["decision_due"], case["application_version"]) == (
        "received", "2026-02-20T10:00:00Z", "2026-03-20", "2026-02-20T10:00:00Z", "2026-05-20", 2)
    assert case["information_requests"][0]["answered_in_version"] == 2
    assert api.get(he.hessen_mobil, f"/cases/{mobil}").json()["decision_due"] == "2026-04-15"
    versions = api.get(he.operator, f"/applications/{app['id']}/versions").json()
    assert [(v["number"], v["kind"]) for v in versions] == [(1, "submission"), (2, "supplement")]
    assert sorted(versions[0]["addressed_case_ids"]) == sorted(cases.values())
    assert versions[1]["addressed_case_ids"] == [ffm]
    assert versions[1]["note"] == "Regelquerschnitt und Verkehrszeichenplan anbei."

    # two authorities decide
    clock.set("2026-02-25T14:00:00+01:00")
    assert api.command(he.autobahn, f"/cases/{autobahn}/confirm-complete", {}).json()["status"] == "in_review"
    clock.set("2026-03-02T09:30:00+01:00")
    r = api.command(he.autobahn, f"/cases/{autobahn}/decision",
                    {"outcome": "granted", "conditions": ["HE-N02", "HE-N10"],
                     "additional_conditions": ["Die Querung ist mindestens 3 m unter der Fahrbahn zu führen."]})
    assert r.status_code == 200, r.text
    decision = r.json()["decision"]
    assert (r.json()["status"], r.json()["effective_on"], decision["outcome"]) == ("granted", "2026-03-02", "granted")
    assert [(c["code"], c["title"]) for c in decision["conditions"]] == [
        ("HE-N02", "Verkehrssicherung und verkehrsrechtliche Anordnung"),
        ("HE-N10", "Querung klassifizierter Straßen in geschlossener Bauweise")]
    assert decision["additional_conditions"] == ["Die Querung ist mindestens 3 m unter der Fahrbahn zu führen."]

    clock.set("2026-03-10T16:00:00+01:00")
    r = api.command(he.kreis_offenbach, f"/cases/{kreis}/decision",
                    {"outcome": "refused", "reasons": ["HE-V03"],
                     "explanation": "Grundhafte Erneuerung der K 163 im Sommer 2026."})
    assert r.status_code == 200, r.text
    assert r.json()["decision"]["reasons"][0]["code"] == "HE-V03"

    clock.set("2026-03-16T08:00:00+01:00")
    r = api.command(he.frankfurt, f"/cases/{ffm}/decision", {"outcome": "granted", "conditions": ["HE-N04"]})
    assert r.json()["status"] == "granted"

    # Hessen Mobil never answers: the consent is deemed granted exactly three months after complete receipt
    assert deemed.sweep(db, clock.set("2026-04-15T23:59:59+02:00"))["deemed_granted"] == 0
    result = deemed.sweep(db, clock.set("2026-04-18T07:00:00+02:00"))      # the sweep ran late (downtime)
    assert [(c["case_id"], c["effective_on"]) for c in result["cases"]] == [(mobil, "2026-04-15")]
    case = api.get(he.hessen_mobil, f"/cases/{mobil}").json()
    assert (case["status"], case["effective_on"], case["decided_at"]) == (
        "deemed_granted", "2026-04-15", "2026-04-15T22:00:00Z")
    assert (case["decision"]["legal_basis"], case["decision"]["complete_at"]) == (
        "§ 127 Abs. 3 Satz 1 TKG (Zustimmungsfiktion)", "2026-01-15T09:00:00Z")
    assert case["allowed_commands"] == []
    assert deemed.sweep(db, clock.now)["deemed_granted"] == 0                # idempotent

    final = api.get(he.operator, f"/applications/{app['id']}").json()
    assert final["status"] == "partially_granted"
    assert sorted((c["authority"]["name"], c["status"]) for c in final["cases"]) == [
        ("Die Autobahn GmbH des Bundes", "granted"), ("Hessen Mobil", "deemed_granted"),
        ("Landkreis Offenbach", "refused"), ("Stadt Frankfurt am Main", "granted")]
    assert final["allowed_commands"] == ["works-start"]

    history = api.get(he.operator, f"/applications/{app['id']}/history").json()
    assert [h["command"] for h in history] == [
        "create", "submit", "request-information", "supplement", "confirm-complete", "decision", "decision",
        "decision", "deemed-approval"]
    assert (history[-1]["actor"]["role"], history[-1]["status_before"], history[-1]["status_after"],
            history[-1]["detail"]["effective_on"]) == ("system", "received", "deemed_granted", "2026-04-15")
    assert history[2]["on_behalf_of_org_id"] == str(he.orgs["frankfurt"])
    # Frankfurt's view of the history shows only its own case besides the application's records
    assert [h["command"] for h in api.get(he.frankfurt, f"/applications/{app['id']}/history").json()] == [
        "create", "submit", "request-information", "supplement", "decision"]

    events = session.scalars(select(Event).where(Event.application_id == app["id"])
                             .order_by(Event.seq)).all()
    types = [e.type for e in events]
    assert types.count("case.received") == 4
    assert types.count("case.decided") == 3
    assert [e.payload["effective_on"] for e in events if e.type == "case.deemed_granted"] == ["2026-04-15"]
    assert all(e.published_at is None and e.tenant_key == "he" for e in events)

    # works notices after the grant
    clock.set("2026-05-04T07:00:00+02:00")
    r = api.command(he.operator, f"/applications/{app['id']}/works-start", {"started_on": "2026-05-11"})
    assert (r.status_code, r.json()["works"]["started_on"], r.json()["allowed_commands"]) == (
        200, "2026-05-11", ["works-completion"])
    r = api.command(he.operator, f"/applications/{app['id']}/works-completion",
                    {"completed_on": "2026-05-29", "as_built": collection(trench(lines["k823"], "micro_trenching"))})
    assert (r.status_code, r.json()["works"]["completed_on"], r.json()["allowed_commands"]) == (
        200, "2026-05-29", [])
    assert r.json()["works"]["as_built"]["features"][0]["properties"]["laying_method"] == "micro_trenching"


def test_request_information_after_the_month_does_not_stop_the_clock(api, he, lines, clock, db):
    clock.set("2026-01-31T12:00:00+01:00")
    late = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    timely = api.submitted(he.operator, collection(trench(lines["neu_isenburg_2"])))
    late_case, timely_case = late["cases"][0]["id"], timely["cases"][0]["id"]
    case = api.get(he.neu_isenburg, f"/cases/{late_case}").json()
    # the month's statutory last day, Saturday 28 February, moves its end to Monday 2 March (§ 193 BGB)
    assert (case["completeness_due_statutory"], case["completeness_due"], case["decision_due"]) == (
        "2026-02-28", "2026-03-02", "2026-04-30")

    clock.set("2026-03-02T23:59:59+01:00")         # last second of the completeness month
    r = api.command(he.neu_isenburg, f"/cases/{timely_case}/request-information", {"message": "Querschnitt fehlt"})
    assert (r.json()["information_requests"][0]["stops_clock"], r.json()["decision_due"]) == (True, None)

    clock.set("2026-03-03T00:00:00+01:00")         # the month is over
    r = api.command(he.neu_isenburg, f"/cases/{late_case}/request-information", {"message": "Querschnitt fehlt"})
    case = r.json()
    assert (case["status"], case["information_requests"][0]["stops_clock"], case["clock_running"],
            case["decision_due"], case["complete_at"]) == (
        "incomplete", False, True, "2026-04-30", "2026-01-31T11:00:00Z")

    # the late request did not stop the clock: deemed granted on 30 April although information was requested
    result = deemed.sweep(db, clock.set("2026-05-01T00:00:00+02:00"))
    assert [(c["case_id"], c["effective_on"]) for c in result["cases"]] == [(late_case, "2026-04-30")]
    assert api.get(he.neu_isenburg, f"/cases/{timely_case}").json()["status"] == "incomplete"


def test_confirmed_complete_then_a_request_does_not_stop_the_clock(api, he, lines, clock):
    clock.set("2026-03-02T10:00:00+01:00")
    case_id = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))["cases"][0]["id"]
    assert api.command(he.neu_isenburg, f"/cases/{case_id}/confirm-complete", {}).status_code == 200
    clock.set("2026-03-05T10:00:00+01:00")
    case = api.command(he.neu_isenburg, f"/cases/{case_id}/request-information", {"message": "Rückfrage"}).json()
    assert (case["status"], case["information_requests"][0]["stops_clock"], case["decision_due"]) == (
        "incomplete", False, "2026-06-02")


def test_extension_once_only_and_counted_from_the_old_deadline(api, he, lines, clock):
    clock.set("2025-11-30T10:00:00+01:00")
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])), planned_start="2026-03-01")
    case_id = app["cases"][0]["id"]
    case = api.get(he.neu_isenburg, f"/cases/{case_id}").json()
    # 28 February 2026 is a Saturday: the period ends on Monday 2 March, and the extension runs from there (§ 190)
    assert (case["decision_due_statutory"], case["decision_due"]) == ("2026-02-28", "2026-03-02")
    clock.set("2026-02-20T10:00:00+01:00")
    r = api.command(he.neu_isenburg, f"/cases/{case_id}/extend-deadline",
                    {"reason": "Abstimmung mit der Straßenverkehrsbehörde dauert an"})
    assert r.status_code == 200, r.text
    case = r.json()
    assert (case["decision_due"], case["deadline_at"], case["extension"]["previous_due"]) == (
        "2026-04-02", "2026-04-02T22:00:00Z", "2026-03-02")
    assert "extend-deadline" not in case["allowed_commands"]
    r = api.command(he.neu_isenburg, f"/cases/{case_id}/extend-deadline", {"reason": "noch einmal"})
    assert r.status_code == 409
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert (body["type"], body["state"], body["allowed"]) == (
        "https://breitband.dev/problems/illegal-transition", "received",
        ["request-information", "confirm-complete", "decision", "forward"])
    assert body["detail"] == "The decision deadline was extended already (once only, § 150 TKG)"


def test_no_command_after_the_deadline_has_passed(api, he, lines, clock):
    clock.set("2026-01-15T10:00:00+01:00")
    case_id = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))["cases"][0]["id"]
    etag = api.etag(he.neu_isenburg, f"/cases/{case_id}")
    clock.set("2026-04-16T00:00:01+02:00")          # the sweep has not run yet
    listed = api.get(he.neu_isenburg, "/cases").json()["items"][0]
    assert (listed["status"], listed["overdue"], listed["days_left"]) == ("received", True, -1)
    for command, body in (("extend-deadline", {"reason": "zu spät"}),
                          ("decision", {"outcome": "refused", "reasons": ["HE-V02"], "explanation": "zu spät"})):
        r = api.command(he.neu_isenburg, f"/cases/{case_id}/{command}", body, etag=etag)
        assert r.status_code == 409
        assert (r.json()["state"], r.json()["allowed"]) == ("deemed_granted", [])
        assert r.json()["detail"] == (f"The consent is deemed granted since 2026-04-15 (the decision period "
                                      f"expired); '{command}' is not possible any more")


def test_illegal_transitions_are_409_with_the_allowed_commands(api, he, lines, clock):
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    r = api.command(he.operator, f"/applications/{app['id']}/submit")
    assert r.status_code == 409
    assert r.headers["content-type"] == PROBLEM
    assert (r.json()["command"], r.json()["state"], r.json()["allowed"]) == (
        "submit", "submitted", ["attachments", "supplements", "withdraw"])
    r = api.c.patch(f"/api/v1/applications/{app['id']}", json={"project_name": "neu"},
                    headers={**he.operator.headers, "If-Match": app["etag"]})
    assert (r.status_code, r.json()["command"]) == (409, "update")

    case_id = app["cases"][0]["id"]
    api.command(he.neu_isenburg, f"/cases/{case_id}/confirm-complete", {})
    r = api.command(he.neu_isenburg, f"/cases/{case_id}/confirm-complete", {})
    assert (r.status_code, r.json()["state"], r.json()["allowed"]) == (
        409, "in_review", ["request-information", "decision", "forward", "extend-deadline"])
    api.command(he.neu_isenburg, f"/cases/{case_id}/decision", {"outcome": "granted"})
    r = api.command(he.neu_isenburg, f"/cases/{case_id}/request-information", {"message": "?"})
    assert (r.status_code, r.json()["state"], r.json()["allowed"]) == (409, "granted", [])
    r = api.command(he.operator, f"/applications/{app['id']}/supplements", {"message": "nachträglich"})
    assert (r.status_code, r.json()["state"], r.json()["allowed"]) == (409, "granted", ["works-start"])


def test_withdrawal_closes_the_open_cases(api, he, lines, clock):
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"]), trench(lines["k823"])))
    r = api.command(he.operator, f"/applications/{app['id']}/withdraw", {"reason": "Projekt verschoben"})
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["allowed_commands"]) == ("withdrawn", [])
    assert {c["status"] for c in body["cases"]} == {"withdrawn"}
    case_id = body["cases"][0]["id"]
    case = api.get(he.admin, f"/cases/{case_id}").json()
    assert case["closed_reason"] == "Projekt verschoben"
    authority = he.neu_isenburg if case["authority"]["name"] == "Stadt Neu-Isenburg" else he.frankfurt
    r = api.command(authority, f"/cases/{case_id}/decision", {"outcome": "granted"})
    assert (r.status_code, r.json()["state"]) == (409, "withdrawn")

    draft = api.create(he.operator, draft_body(None)).json()
    r = api.command(he.operator, f"/applications/{draft['id']}/withdraw", {})
    assert (r.status_code, r.json()["status"], r.json()["cases"]) == (200, "withdrawn", [])


def test_forward_the_whole_case_or_some_pieces(api, he, lines, clock):
    clock.set("2026-01-15T10:00:00+01:00")
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    case_id = app["cases"][0]["id"]
    pieces = api.get(he.neu_isenburg, f"/cases/{case_id}").json()["part"]["pieces"]
    assert len(pieces) >= 2

    clock.set("2026-01-20T10:00:00+01:00")
    r = api.command(he.neu_isenburg, f"/cases/{case_id}/forward",
                    {"to_organisation_id": str(he.orgs["kreis_offenbach"]), "piece_indexes": [0],
                     "reason": "Das Stück liegt auf einer Kreisstraße (K 163)"})
    assert r.status_code == 200, r.text
    kept = r.json()
    assert (kept["status"], len(kept["part"]["pieces"]), kept["part"]["handed_on"][0]["whole"]) == (
        "received", len(pieces) - 1, False)
    new_id = kept["part"]["handed_on"][0]["to_case_id"]
    new = api.get(he.kreis_offenbach, f"/cases/{new_id}").json()
    assert (new["status"], new["forwarded_from_case_id"], new["received_at"], new["decision_due"]) == (
        "received", case_id, "2026-01-20T09:00:00Z", "2026-04-20")
    assert new["part"]["pieces"] == [pieces[0]]
    assert new["part"]["forwarded_from"]["reason"] == "Das Stück liegt auf einer Kreisstraße (K 163)"
    assert [i["id"] for i in api.get(he.kreis_offenbach, "/cases").json()["items"]] == [new_id]

    r = api.command(he.neu_isenburg, f"/cases/{case_id}/forward",
                    {"to_organisation_id": str(he.orgs["frankfurt"]), "reason": "Zuständig ist Frankfurt"})
    whole = r.json()
    assert (whole["status"], whole["forward"]["to_name"], whole["allowed_commands"]) == (
        "forwarded", "Stadt Frankfurt am Main", [])
    summary = api.get(he.operator, f"/applications/{app['id']}").json()
    assert sorted((c["authority"]["name"], c["status"]) for c in summary["cases"]) == [
        ("Landkreis Offenbach", "received"), ("Stadt Frankfurt am Main", "received"),
        ("Stadt Neu-Isenburg", "forwarded")]
    assert summary["status"] == "submitted"
    # a forward to something that is not a road authority of the tenant
    r = api.command(he.frankfurt, f"/cases/{whole['forwarded_to_case_id']}/forward",
                    {"to_organisation_id": str(he.orgs["operator"]), "reason": "x"})
    assert (r.status_code, r.json()["type"], r.json()["field"]) == (
        422, "https://breitband.dev/problems/unknown-authority", "to_organisation_id")


def test_changed_route_re_resolves_and_restarts(api, he, lines, clock):
    clock.set("2026-01-15T10:00:00+01:00")
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"]), trench(lines["k823"])))
    cases = {c["authority"]["name"]: c["id"] for c in app["cases"]}
    assert sorted(cases) == ["Stadt Frankfurt am Main", "Stadt Neu-Isenburg"]

    # the route no longer touches Frankfurt: its case closes, Neu-Isenburg's periods restart
    clock.set("2026-02-02T10:00:00+01:00")
    r = api.command(he.operator, f"/applications/{app['id']}/supplements",
                    {"message": "Trasse geändert: ohne K 823", "sections": collection(trench(lines["neu_isenburg"]))})
    assert r.status_code == 200, r.text
    assert sorted((c["authority"]["name"], c["status"]) for c in r.json()["cases"]) == [
        ("Stadt Frankfurt am Main", "withdrawn"), ("Stadt Neu-Isenburg", "received")]
    case = api.get(he.neu_isenburg, f"/cases/{cases['Stadt Neu-Isenburg']}").json()
    assert (case["received_at"], case["decision_due"], case["application_version"]) == (
        "2026-02-02T09:00:00Z", "2026-05-04", 2)                      # 2 May 2026: a Saturday
    assert api.get(he.frankfurt, f"/cases/{cases['Stadt Frankfurt am Main']}").json()["closed_reason"] == (
        "The changed route no longer touches this authority's roads")
    version = api.get(he.operator, f"/applications/{app['id']}/versions/2").json()
    assert (version["route_changed"], [a["name"] for a in version["resolution"]["authorities"]]) == (
        True, ["Stadt Neu-Isenburg"])

    # back onto the K 823: Frankfurt receives a new case
    clock.set("2026-02-09T10:00:00+01:00")
    r = api.command(he.operator, f"/applications/{app['id']}/supplements",
                    {"message": "Doch mit K 823",
                     "sections": collection(trench(lines["neu_isenburg"]), trench(lines["k823"]))})
    open_cases = [c for c in r.json()["cases"] if c["status"] == "received"]
    assert sorted(c["authority"]["name"] for c in open_cases) == ["Stadt Frankfurt am Main", "Stadt Neu-Isenburg"]
    new_ffm = next(c["id"] for c in open_cases if c["authority"]["name"] == "Stadt Frankfurt am Main")
    assert new_ffm != cases["Stadt Frankfurt am Main"]
    assert api.get(he.frankfurt, f"/cases/{new_ffm}").json()["decision_due"] == "2026-05-11"   # 9 May: Saturday

    # after a decision the route cannot change any more
    assert api.command(he.frankfurt, f"/cases/{new_ffm}/decision", {"outcome": "granted"}).status_code == 200
    r = api.command(he.operator, f"/applications/{app['id']}/supplements",
                    {"message": "Wieder ohne K 823", "sections": collection(trench(lines["neu_isenburg"]))})
    assert (r.status_code, r.json()["type"], r.json()["decided_case_ids"]) == (
        409, "https://breitband.dev/problems/route-change-after-decision", [new_ffm])
