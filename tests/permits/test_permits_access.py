"""Who sees and does what: every permit endpoint × role × organisation × tenant.

Operators see their organisation's applications; authorities see applications with a case of theirs; tenant admins
see their tenant. Anything else is 404 (existence does not leak); a role that may never call an endpoint is 403.
"""

from __future__ import annotations

import pytest
from test_permits_attachments import PDF, upload

from tests.support.api import collection, draft_body, trench
from tests.support.people import Person

ACTORS = ["owner", "colleague", "other_operator", "admin", "case_authority", "other_authority", "xb_operator",
          "xb_admin", "xb_authority"]

# (method, path, body) -> expected status per actor, in the order of ACTORS
READS = [
    (("GET", "/applications/{app}", None), [200, 200, 404, 200, 200, 404, 404, 404, 404]),
    (("GET", "/applications/{app}/history", None), [200, 200, 404, 200, 200, 404, 404, 404, 404]),
    (("GET", "/applications/{app}/versions", None), [200, 200, 404, 200, 200, 404, 404, 404, 404]),
    (("GET", "/applications/{app}/versions/1", None), [200, 200, 404, 200, 200, 404, 404, 404, 404]),
    (("GET", "/applications/{draft}", None), [200, 200, 404, 200, 404, 404, 404, 404, 404]),
    (("GET", "/applications/{draft}/versions/1", None), [200, 200, 404, 200, 404, 404, 404, 404, 404]),
    (("GET", "/cases/{case}", None), [200, 200, 404, 200, 200, 404, 404, 404, 404]),
    (("GET", "/cases/{case}/history", None), [200, 200, 404, 200, 200, 404, 404, 404, 404]),
    (("GET", "/applications/{app}/attachments/{att}", None), [200, 200, 404, 200, 200, 404, 404, 404, 404]),
    (("GET", "/applications/{draft}/attachments/{draft_att}", None), [200, 200, 404, 200, 404, 404, 404, 404, 404]),
    (("GET", "/conditions", None), [200] * 9),
    (("GET", "/refusal-reasons", None), [200] * 9),
]
# Commands, with a valid If-Match: a refusal is due to scope or role, never to the version.
COMMANDS = [
    (("PATCH", "/applications/{draft}", {"project_name": "x"}), [None, None, 404, 403, 403, 403, 404, 403, 403]),
    (("POST", "/applications/{draft}/submit", {}), [None, None, 404, 403, 403, 403, 404, 403, 403]),
    (("POST", "/applications/{app}/supplements", {"message": "x"}), [None, None, 404, 403, 403, 403, 404, 403, 403]),
    (("POST", "/applications/{app}/withdraw", {}), [None, None, 404, 403, 403, 403, 404, 403, 403]),
    (("POST", "/applications/{app}/works-start", {"started_on": "2026-06-01"}),
     [None, None, 404, 403, 403, 403, 404, 403, 403]),
    (("POST", "/applications/{app}/works-completion", {"completed_on": "2026-06-01"}),
     [None, None, 404, 403, 403, 403, 404, 403, 403]),
    (("POST", "/cases/{case}/request-information", {"message": "x"}), [403, 403, 403, 403, None, 404, 403, 403, 404]),
    (("POST", "/cases/{case}/confirm-complete", {}), [403, 403, 403, 403, None, 404, 403, 403, 404]),
    (("POST", "/cases/{case}/decision", {"outcome": "granted"}), [403, 403, 403, 403, None, 404, 403, 403, 404]),
    (("POST", "/cases/{case}/forward", {"to_organisation_id": "{ffm}", "reason": "x"}),
     [403, 403, 403, 403, None, 404, 403, 403, 404]),
    (("POST", "/cases/{case}/extend-deadline", {"reason": "x"}), [403, 403, 403, 403, None, 404, 403, 403, 404]),
]


@pytest.fixture
def scene(api, he, lines, clock, other_world):
    created = api.create(he.operator, draft_body(collection(trench(lines["neu_isenburg"]))))
    att = upload(api, he.operator, created.json()["id"], "Plan.pdf", PDF).json()
    r = api.c.patch(f"/api/v1/applications/{created.json()['id']}", json={"attachment_ids": [att["id"]]},
                    headers={**he.operator.headers, "If-Match": created.headers["etag"]})
    app = api.command(he.operator, f"/applications/{created.json()['id']}/submit", etag=r.headers["etag"]).json()
    draft = api.create(he.operator, draft_body(collection(trench(lines["neu_isenburg_2"])))).json()
    draft_att = upload(api, he.operator, draft["id"], "Entwurf.pdf", PDF).json()
    xb = {name: Person(getattr(other_world, name).user_id, getattr(other_world, name).organisation_id,
                       getattr(other_world, name).token)
          for name in ("operator_member", "admin", "reviewer")}
    actors = dict(zip(ACTORS, [he.operator, he.colleague, he.other_operator, he.admin, he.neu_isenburg,
                               he.frankfurt, xb["operator_member"], xb["admin"], xb["reviewer"]]))
    ids = {"app": app["id"], "draft": draft["id"], "case": app["cases"][0]["id"], "ffm": str(he.orgs["frankfurt"]),
           "att": att["id"], "draft_att": draft_att["id"]}
    return actors, ids


def _fill(value, ids):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def test_reads(api, scene):
    actors, ids = scene
    failures = []
    for (method, path, _), expected in READS:
        for actor, want in zip(ACTORS, expected):
            r = api.c.request(method, "/api/v1" + path.format(**ids), headers=actors[actor].headers)
            if r.status_code != want:
                failures.append((method, path, actor, r.status_code, want))
            if want == 404:
                assert r.headers["content-type"] == "application/problem+json"
    assert failures == []


def test_commands(api, scene):
    actors, ids = scene
    failures = []
    for (method, path, body), expected in COMMANDS:
        resource = "/".join(path.split("/")[:3]).format(**ids)
        etag = api.etag(actors["admin"], resource)
        for actor, want in zip(ACTORS, expected):
            if want is None:
                continue
            r = api.c.request(method, "/api/v1" + path.format(**ids), json=_fill(body, ids),
                              headers={**actors[actor].headers, "If-Match": etag})
            if r.status_code != want:
                failures.append((method, path, actor, r.status_code, want))
        assert api.etag(actors["admin"], resource) == etag          # nothing changed
    assert failures == []
    # and the allowed actors can (the colleague acts for the same organisation)
    r = api.command(actors["colleague"], f"/applications/{ids['draft']}/submit")
    assert r.status_code == 200, r.text
    assert api.command(actors["case_authority"], f"/cases/{ids['case']}/confirm-complete", {}).status_code == 200


def test_creating_and_uploading(api, scene):
    actors, ids = scene
    body = draft_body(None)
    for actor, want in zip(ACTORS, [201, 201, 201, 403, 403, 403, 201, 403, 403]):
        r = api.c.post("/api/v1/applications", json=body, headers=actors[actor].headers)
        assert r.status_code == want, (actor, r.text)
        if want == 201:
            assert r.json()["tenant_key"] == ("xb" if actor.startswith("xb") else "he")
    for actor, want in zip(ACTORS, [201, 201, 404, 403, 403, 403, 404, 403, 403]):
        r = upload(api, actors[actor], ids["draft"], "x.pdf", PDF)
        assert r.status_code == want, (actor, r.text)


def test_lists_are_scoped(api, scene):
    actors, ids = scene
    apps = {a: sorted(i["id"] for i in api.get(actors[a], "/applications").json()["items"]) for a in ACTORS}
    assert apps == {"owner": sorted([ids["app"], ids["draft"]]), "colleague": sorted([ids["app"], ids["draft"]]),
                    "other_operator": [], "admin": sorted([ids["app"], ids["draft"]]),
                    "case_authority": [ids["app"]], "other_authority": [], "xb_operator": [], "xb_admin": [],
                    "xb_authority": []}
    cases = {a: [i["id"] for i in api.get(actors[a], "/cases").json()["items"]] for a in ACTORS}
    assert cases == {"owner": [ids["case"]], "colleague": [ids["case"]], "other_operator": [], "admin": [ids["case"]],
                     "case_authority": [ids["case"]], "other_authority": [], "xb_operator": [], "xb_admin": [],
                     "xb_authority": []}


def test_authorities_see_other_parts_marked_as_not_theirs(api, he, lines, clock):
    app = api.submitted(he.operator, collection(trench(lines["neu_isenburg"]), trench(lines["k823"])))
    seen = api.get(he.frankfurt, f"/applications/{app['id']}").json()
    marks = sorted((c["authority"]["name"], c["mine"], c["decision_due"]) for c in seen["cases"])
    assert marks == [("Stadt Frankfurt am Main", True, "2026-04-15"), ("Stadt Neu-Isenburg", False, None)]
    assert seen["allowed_commands"] == []
    owner = api.get(he.operator, f"/applications/{app['id']}").json()
    assert {c["mine"] for c in owner["cases"]} == {False}
    assert {c["decision_due"] for c in owner["cases"]} == {"2026-04-15"}
