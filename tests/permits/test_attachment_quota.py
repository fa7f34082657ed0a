"""Issue 11, finding 8: an attachment quota per application (count and total size, settings), and the audit trail
does not show authorities attachments that were never submitted."""

from __future__ import annotations

from test_permits_attachments import PDF, PNG, TYPE, upload

from tests.support.api import PROBLEM, collection, draft_body, trench


def test_quota_by_count_is_422_naming_the_quota_and_the_use(api, he, lines, clock, settings, monkeypatch):
    monkeypatch.setattr(settings, "max_attachments_per_application", 3)
    app = api.create(he.operator, draft_body(None)).json()
    for i in range(3):
        assert upload(api, he.operator, app["id"], f"plan-{i}.pdf", PDF).status_code == 201
    r = upload(api, he.operator, app["id"], "plan-4.pdf", PDF)
    assert (r.status_code, r.headers["content-type"]) == (422, PROBLEM)
    body = r.json()
    assert body["type"] == TYPE + "attachment-quota-exceeded"
    assert (body["quota"], body["attachments"], body["max_attachments"], body["total_bytes"]) == (
        "max_attachments_per_application", 3, 3, 3 * len(PDF))
    assert body["detail"] == ("The application already has 3 attachments, the most allowed (quota: 3 attachments "
                              "per application)")
    assert len(api.get(he.operator, f"/applications/{app['id']}").json()["attachments"]) == 3
    # another application of the same operator has its own quota
    other = api.create(he.operator, draft_body(None)).json()
    assert upload(api, he.operator, other["id"], "plan.pdf", PDF).status_code == 201


def test_quota_by_total_size_is_413_naming_the_quota_and_the_use(api, he, lines, clock, settings, monkeypatch):
    monkeypatch.setattr(settings, "max_attachments_total_mb", 0.25)          # 262,144 bytes
    app = api.create(he.operator, draft_body(None)).json()
    big = PDF + b"%" + b"x" * (150_000 - len(PDF) - 1)
    assert upload(api, he.operator, app["id"], "a.pdf", big).status_code == 201
    r = upload(api, he.operator, app["id"], "b.pdf", big)
    assert (r.status_code, r.headers["content-type"]) == (413, PROBLEM)
    body = r.json()
    assert (body["type"], body["quota"], body["total_bytes"], body["incoming_bytes"], body["max_total_bytes"]) == (
        TYPE + "attachment-quota-exceeded", "max_attachments_total_mb", 150_000, 150_000, 262_144)
    assert body["detail"] == ("The application's attachments take 0.14 MiB; this file of 0.14 MiB would pass the "
                              "quota of 0.25 MiB per application")
    assert upload(api, he.operator, app["id"], "small.png", PNG).status_code == 201        # what fits still does
    # a foreign application is 404, not a quota answer
    foreign = upload(api, he.other_operator, app["id"], "c.pdf", PDF)
    assert foreign.status_code == 404


def test_history_does_not_show_authorities_unsubmitted_attachments(api, he, lines, clock):
    app = api.create(he.operator, draft_body(collection(trench(lines["neu_isenburg"])))).json()
    app_id = app["id"]
    draft_only = upload(api, he.operator, app_id, "Entwurf-intern.pdf", PDF).json()
    plan = upload(api, he.operator, app_id, "Plan.pdf", PDF).json()
    r = api.c.patch(f"/api/v1/applications/{app_id}",
                    headers={**he.operator.headers, "If-Match": api.etag(he.operator, f"/applications/{app_id}")},
                    json={"attachment_ids": [plan["id"]]})
    assert r.status_code == 200, r.text
    submitted = api.command(he.operator, f"/applications/{app_id}/submit", etag=r.headers["etag"]).json()
    case_id = submitted["cases"][0]["id"]
    # after submission: a file uploaded for a supplement not sent yet
    pending = upload(api, he.operator, app_id, "Nachreichung-geheim.png", PNG, kind="cross_section").json()

    def uploads(who) -> list[str]:
        trail = api.get(who, f"/applications/{app_id}/history").json()
        return [r["detail"]["file_name"] for r in trail if r["command"] == "attachment"]

    assert uploads(he.operator) == ["Entwurf-intern.pdf", "Plan.pdf", "Nachreichung-geheim.png"]
    assert uploads(he.neu_isenburg) == ["Plan.pdf"]
    seen = str(api.get(he.neu_isenburg, f"/applications/{app_id}/history").json())
    assert draft_only["id"] not in seen and pending["id"] not in seen and "geheim" not in seen
    case_trail = str(api.get(he.neu_isenburg, f"/cases/{case_id}/history").json())
    assert "geheim" not in case_trail and "Entwurf" not in case_trail
    assert [a["file_name"] for a in api.get(he.neu_isenburg, f"/applications/{app_id}").json()["attachments"]] == [
        "Plan.pdf"]

    # sent with a supplement, the upload becomes visible
    api.command(he.neu_isenburg, f"/cases/{case_id}/request-information", {"message": "Querschnitt fehlt"})
    r = api.command(he.operator, f"/applications/{app_id}/supplements",
                    {"message": "Querschnitt anbei", "attachment_ids": [pending["id"]]})
    assert r.status_code == 200, r.text
    assert uploads(he.neu_isenburg) == ["Plan.pdf", "Nachreichung-geheim.png"]
