"""The deadline calculator (GET /api/v1/deadlines, `breitband deadlines compute`) and the moved period ends of real
cases in the API (case, inbox) on Hessen's calendar."""

from __future__ import annotations

import json

from tests.support.api import collection, trench
from tests.support.cli import breitband_cli

PROBLEM = "application/problem+json"


def test_the_calculator_moves_every_end_and_says_why(api, he):
    r = api.get(he.neu_isenburg, "/deadlines", received="2027-02-27")
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["tenant"], out["calendar"]["state"], out["calendar"]["subdivision"], out["received_on"],
            out["complete_on"]) == ("he", "HE", "HE", "2027-02-27", "2027-02-27")
    assert {k: (out[k]["statutory"], out[k]["end"], out[k]["moved_days"], out[k]["reason"])
            for k in ("completeness", "decision", "extended")} == {
        "completeness": ("2027-03-27", "2027-03-30", 3, "der 27.03.2027 ist ein Samstag, der 28.03.2027 ist ein "
                                                        "Sonntag, der 29.03.2027 ist Ostermontag"),
        "decision": ("2027-05-27", "2027-05-28", 1, "der 27.05.2027 ist Fronleichnam"),
        "extended": ("2027-06-28", "2027-06-28", 0, None)}           # one month from the moved end (§ 190)
    assert out["decision"]["label"] == "Freitag, 28.05.2027 — der 27.05.2027 ist Fronleichnam"
    assert out["decision"]["skipped"] == [{"date": "2027-05-27", "why": ["Fronleichnam"]}]
    assert (out["decision"]["expires_at"], out["deemed_approval_at"], out["applies_extension"]) == (
        "2027-05-28T22:00:00Z", "2027-05-28T22:00:00Z", False)

    out = api.get(he.operator, "/deadlines", received="2027-02-27", complete="2027-03-01T09:30:00+01:00",
                  extended="true").json()
    assert (out["completeness"]["end"], out["decision"]["end"], out["extended"]["end"], out["deemed_approval_at"]) \
        == ("2027-03-30", "2027-06-01", "2027-07-01", "2027-07-01T22:00:00Z")


def test_bad_dates_are_problems_that_name_the_parameter(api, he):
    for params, field in (({"received": "2027-02-30"}, "received"), ({"received": "gestern"}, "received"),
                          ({"received": "2027-03-01", "complete": "2027-02-01"}, "complete"),
                          ({"received": "2027-03-01", "complete": "1.3.2027"}, "complete"),
                          ({"received": "1999-12-31"}, "received"),
                          ({"received": "2027-03-01", "place": "Augsburg"}, "place")):
        r = api.get(he.neu_isenburg, "/deadlines", **params)
        assert (r.status_code, r.headers["content-type"], r.json()["field"]) == (422, PROBLEM, field), params
        assert r.json()["detail"].startswith(f"{field}: "), r.json()
    r = api.get(he.neu_isenburg, "/deadlines")
    assert (r.status_code, r.headers["content-type"]) == (422, PROBLEM)
    assert "received" in r.json()["detail"]


def test_the_cli_prints_the_three_ends_with_the_reasons(he_data):
    out = breitband_cli("deadlines", "compute", "--tenant", "he", "--received", "2027-02-27", "--extended",
                        check=True).stdout.splitlines()
    assert out == [
        "Mandant he, Feiertage HE (public)",
        "Eingang 27.02.2027, vollständig seit 27.02.2027",
        "Vollständigkeitsprüfung (1 Monat): Fristende Dienstag, 30.03.2027 — der 27.03.2027 ist ein Samstag, der "
        "28.03.2027 ist ein Sonntag, der 29.03.2027 ist Ostermontag (gesetzlich 27.03.2027, +3 Tage)",
        "Entscheidungsfrist (3 Monate): Fristende Freitag, 28.05.2027 — der 27.05.2027 ist Fronleichnam "
        "(gesetzlich 27.05.2027, +1 Tag)",
        "verlängert (§ 150 TKG, + 1 Monat): Fristende Montag, 28.06.2027",
        "Zustimmungsfiktion ab 2027-06-28T22:00:00Z (mit Verlängerung)"]
    data = json.loads(breitband_cli("deadlines", "compute", "--tenant", "he", "--received", "2026-09-25",
                                    "--json", check=True).stdout)
    assert (data["decision"]["statutory"], data["decision"]["end"]) == ("2026-12-25", "2026-12-28")
    bad = breitband_cli("deadlines", "compute", "--tenant", "he", "--received", "2027-13-01")
    assert (bad.returncode, bad.stderr.strip()) == (
        2, "error: received: '2027-13-01' is not an ISO 8601 date (YYYY-MM-DD) or date-time")
    bad = breitband_cli("deadlines", "compute", "--tenant", "zz", "--received", "2027-01-01")
    assert (bad.returncode, bad.stderr.strip()) == (2, "error: No tenant 'zz'")


def test_a_case_shows_the_statutory_day_and_the_moved_end(api, he, lines, clock):
    clock.set("2026-09-25T10:00:00+02:00")
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])), planned_start="2027-01-15",
                        planned_end="2027-03-31")
    case_id = app["cases"][0]["id"]
    assert app["cases"][0]["decision_due"] == "2026-12-28"
    case = api.get(he.neu_isenburg, f"/cases/{case_id}").json()
    # the month ends on Sunday 25 October (the day of the DST switch) → Monday; the period on Christmas Day, a
    # Friday, followed by Boxing Day on Saturday and a Sunday → Monday 28 December
    assert (case["completeness_due_statutory"], case["completeness_due"], case["decision_due_statutory"],
            case["decision_due"], case["deadline_at"]) == (
        "2026-10-25", "2026-10-26", "2026-12-25", "2026-12-28", "2026-12-28T23:00:00Z")
    assert case["deadlines"]["decision"]["label"] == (
        "Montag, 28.12.2026 — der 25.12.2026 ist Erster Weihnachtstag, der 26.12.2026 ist ein Samstag und Zweiter "
        "Weihnachtstag, der 27.12.2026 ist ein Sonntag")
    assert case["deadlines"]["completeness"]["skipped"] == [{"date": "2026-10-25", "why": ["Sonntag"]}]
    item = api.get(he.neu_isenburg, "/cases").json()["items"][0]
    assert (item["id"], item["decision_due"], item["decision_due_statutory"], item["completeness_due_moved"]) == (
        case_id, "2026-12-28", "2026-12-25", "der 25.10.2026 ist ein Sonntag")
    assert item["decision_due_moved"].startswith("der 25.12.2026 ist Erster Weihnachtstag")

    clock.set("2026-12-01T10:00:00+01:00")            # the extension runs from the moved end: 28 January
    r = api.command(he.neu_isenburg, f"/cases/{case_id}/extend-deadline", {"reason": "Abstimmung Verkehrsbehörde"})
    assert r.status_code == 200, r.text
    case = r.json()
    assert (case["decision_due_statutory"], case["decision_due"], case["extension"]["previous_due"],
            case["deadlines"]["decision"]["reason"]) == ("2027-01-28", "2027-01-28", "2026-12-28", None)
