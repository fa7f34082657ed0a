"""Inboxes: the authority's cases in legal order (§ 147 (2) TKG) with days left and filters; the operator's list."""

from __future__ import annotations

from tests.support.api import collection, trench


def bbox_of(line, pad=0.0002) -> str:
    xs = [c[0] for c in line["coordinates"]]
    ys = [c[1] for c in line["coordinates"]]
    return f"{min(xs) - pad},{min(ys) - pad},{max(xs) + pad},{max(ys) + pad}"


def test_authority_inbox_order_days_left_and_filters(api, he, lines, clock):
    def submit(when, line):
        clock.set(when)
        app = api.submitted(he.operator, collection(trench(lines[line])), project_name=f"Projekt {when[:10]}")
        return app["id"], app["cases"][0]["id"]

    a1, c1 = submit("2026-01-10T09:00:00+01:00", "neu_isenburg")
    a2, c2 = submit("2026-01-05T09:00:00+01:00", "neu_isenburg")
    a3, c3 = submit("2026-01-07T09:00:00+01:00", "neu_isenburg_2")
    a4, c4 = submit("2026-01-12T09:00:00+01:00", "neu_isenburg_2")
    clock.set("2026-01-13T09:00:00+01:00")
    assert api.command(he.neu_isenburg, f"/cases/{c3}/request-information", {"message": "?"}).status_code == 200
    assert api.command(he.neu_isenburg, f"/cases/{c4}/decision", {"outcome": "granted"}).status_code == 200

    clock.set("2026-01-20T12:00:00+01:00")
    inbox = api.get(he.neu_isenburg, "/cases").json()
    assert [(i["id"], i["status"], i["complete_at"], i["decision_due"], i["days_left"], i["overdue"])
            for i in inbox["items"]] == [
        # 5 April 2026 is Easter Sunday, 6 April Easter Monday: c2's period ends on Tuesday 7 April (§ 193 BGB);
        # 12 April is a Sunday
        (c2, "received", "2026-01-05T08:00:00Z", "2026-04-07", 77, False),
        (c1, "received", "2026-01-10T08:00:00Z", "2026-04-10", 80, False),
        (c3, "incomplete", None, None, None, False),
        (c4, "granted", "2026-01-12T08:00:00Z", "2026-04-13", None, False)]
    assert [(i["decision_due_statutory"], i["decision_due_moved"]) for i in inbox["items"]] == [
        ("2026-04-05", "der 05.04.2026 ist ein Sonntag, der 06.04.2026 ist Ostermontag"),
        ("2026-04-10", None), (None, None), ("2026-04-12", "der 12.04.2026 ist ein Sonntag")]
    assert inbox["items"][0]["reference"] == "HE-2026-000002"
    assert inbox["items"][0]["project_name"] == "Projekt 2026-01-05"
    assert (inbox["items"][0]["applicant"]["name"], inbox["items"][0]["authority"]["name"]) == (
        "Glasfaser Test GmbH", "Stadt Neu-Isenburg")

    def ids(**params):
        return [i["id"] for i in api.get(he.neu_isenburg, "/cases", **params).json()["items"]]

    assert ids(status="incomplete") == [c3]
    assert ids(status=["received", "incomplete"]) == [c2, c1, c3]
    assert ids(due_before="2026-04-07") == [c2]           # the day the period ends on, not its statutory day
    assert ids(due_before="2026-04-06") == []
    assert ids(bbox=bbox_of(lines["neu_isenburg_2"])) == [c3, c4]
    assert ids(application_id=a1) == [c1]
    page = api.get(he.neu_isenburg, "/cases", limit=2).json()
    assert ([i["id"] for i in page["items"]], page["has_more"]) == ([c2, c1], True)
    page = api.get(he.neu_isenburg, "/cases", limit=2, offset=2).json()
    assert ([i["id"] for i in page["items"]], page["has_more"], page["next"]) == ([c3, c4], False, None)

    # keyset paging: `next` of a page is the `after` of the following one, through the stopped clock (c3 has no
    # complete receipt) and from the open into the closed cases; filters stay those of the request
    def pages(limit, **params):
        out, after = [], None
        while True:
            page = api.get(he.neu_isenburg, "/cases", limit=limit, **params, **({"after": after} if after else {}))
            assert page.status_code == 200, page.text
            page = page.json()
            out.append([i["id"] for i in page["items"]])
            assert page["has_more"] == (page["next"] is not None)
            if not page["has_more"]:
                return out
            after = page["next"]

    assert pages(2) == [[c2, c1], [c3, c4]]
    assert pages(1) == [[c2], [c1], [c3], [c4]]
    assert pages(3) == [[c2, c1, c3], [c4]]
    assert pages(1, status=["received", "incomplete"]) == [[c2], [c1], [c3]]
    assert pages(1, status="granted") == [[c4]]
    first = api.get(he.neu_isenburg, "/cases", limit=3).json()
    assert api.get(he.neu_isenburg, "/cases", after=first["next"], offset=1).status_code == 422
    bad = api.get(he.neu_isenburg, "/cases", after="not-a-cursor")
    assert (bad.status_code, bad.json()["field"]) == (422, "after")

    clock.set("2026-04-08T00:00:00+02:00")             # c2's period has expired; the sweep has not run yet
    assert ids(overdue="true") == [c2]
    first = api.get(he.neu_isenburg, "/cases").json()["items"][0]
    assert (first["id"], first["days_left"], first["overdue"]) == (c2, -1, True)

    # the tenant admin's and the operator's inboxes: the same legal order over the cases they may see (index-ordered
    # per tenant and per applicant, migration 0007), with keyset paging
    for who in (he.admin, he.operator):
        assert [i["id"] for i in api.get(who, "/cases").json()["items"]] == [c2, c1, c3, c4]
        first = api.get(who, "/cases", limit=2, status=["received", "incomplete", "granted"]).json()
        rest = api.get(who, "/cases", limit=2, status=["received", "incomplete", "granted"],
                       after=first["next"]).json()
        assert [i["id"] for i in first["items"] + rest["items"]] == [c2, c1, c3, c4]
    assert api.get(he.other_operator, "/cases").json()["items"] == []

    # the operator's list: newest first, each case's status
    listed = api.get(he.operator, "/applications").json()["items"]
    assert [(a["id"], [c["status"] for c in a["cases"]]) for a in listed] == [
        (a4, ["granted"]), (a1, ["received"]), (a3, ["incomplete"]), (a2, ["received"])]
    assert [a["id"] for a in api.get(he.operator, "/applications", status="information_requested").json()["items"]] \
        == [a3]
    assert [a["status"] for a in api.get(he.operator, "/applications", reference="HE-2026-000004").json()["items"]] \
        == ["granted"]
    assert api.get(he.operator, "/applications", status="lost").status_code == 422
