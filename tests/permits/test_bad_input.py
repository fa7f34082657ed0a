"""Bad input never ends in a 500: every route of the app, walked with the values that broke it before.

The walk is generated from the app's route table, so a new route is walked too; a new route that takes a JSON body
needs an example body here (the test fails until it has one). Each route gets, in every path parameter, query
parameter, header and JSON leaf that it takes: a NUL character, integers beyond 64 bits, the last day of the
calendar, an If-Match of 4,300 digits, and JSON nested deeper than any real document. The answer must be a 4xx
problem+json (or the route's normal answer where the value is harmless) — never a 5xx.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from breitband import identity
from breitband.models import User
from tests.support.api import collection, draft_body, trench

PROBLEM = "application/problem+json"
NUL = "a\x00b"
HUGE = str(10**30)
DIGITS_4300 = "9" * 4300
LAST_DAY = "9999-12-31"

def deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


def example_bodies(lines: dict[str, Any], ids: dict[str, str]) -> dict[tuple[str, str], Any]:
    """A valid JSON body per route that takes one (method, path template)."""
    route = collection(trench(lines["neu_isenburg"]))
    return {
        ("POST", "/api/v1/resolve"): route,
        ("POST", "/api/v1/route-file"): route,
        ("PUT", "/api/v1/applications/{application_id}/route"): route,
        ("POST", "/api/v1/applications"): draft_body(route),
        ("PATCH", "/api/v1/applications/{application_id}"): {"project_name": "Bauabschnitt 4"},
        ("POST", "/api/v1/applications/{application_id}/supplements"): {
            "message": "Querschnitt ergänzt", "sections": route, "planned_start": "2026-06-02"},
        ("POST", "/api/v1/applications/{application_id}/withdraw"): {"reason": "Trasse entfällt"},
        ("POST", "/api/v1/applications/{application_id}/works-start"): {"started_on": "2026-06-01", "note": "los"},
        ("POST", "/api/v1/applications/{application_id}/works-completion"): {
            "completed_on": "2026-07-01", "as_built": route, "note": "fertig"},
        ("POST", "/api/v1/cases/{case_id}/request-information"): {"message": "Querschnitt fehlt",
                                                                  "items": ["Querschnitt"]},
        ("POST", "/api/v1/cases/{case_id}/confirm-complete"): {"note": "vollständig"},
        ("POST", "/api/v1/cases/{case_id}/decision"): {
            "outcome": "granted", "conditions": ["HE-01"], "additional_conditions": ["Gehweg freihalten"],
            "explanation": "Zustimmung", "note": "ok"},
        ("POST", "/api/v1/cases/{case_id}/forward"): {"to_organisation_id": ids["other_authority"],
                                                      "reason": "Kreisstraße", "piece_indexes": [0]},
        ("POST", "/api/v1/cases/{case_id}/extend-deadline"): {"reason": "Umfangreiche Prüfung"},
        ("POST", "/api/v1/statements/{statement_id}/answer"): {
            "answer": "agree_with_conditions", "conditions": [{"code": "HE-01", "text": "Gehweg"}],
            "reasons": "Verkehr"},
        ("POST", "/api/v1/documents/{document_id}/revoke"): {"reason": "Fehler im Bescheid"},
        ("POST", "/api/v1/webhooks"): {"url": "http://10.20.30.40/hook", "event_types": ["application.submitted"]},
        ("POST", "/api/v1/me/tokens"): {"name": "QGIS Arbeitsplatz", "expires_in_days": 30},
        ("PATCH", "/api/v1/webhooks/{webhook_id}"): {"url": "http://10.20.30.41/hook", "active": True},
        ("POST", "/api/v1/auth/login"): {"tenant": "he", "email": "planer@glasfaser-test.example",
                                         "password": "kein richtiges Passwort", "totp_code": "123456"},
        ("POST", "/api/v1/auth/password-reset"): {"tenant": "he", "email": "planer@glasfaser-test.example"},
        ("POST", "/api/v1/auth/links/{token}"): {"password": "Feldweg Laterne Kompass 7", "totp_code": "123456"},
        ("POST", "/api/v1/me/password"): {"current_password": "kein richtiges Passwort",
                                          "new_password": "Feldweg Laterne Kompass 7"},
        ("POST", "/api/v1/me/totp/confirm"): {"code": "123456"},
        ("DELETE", "/api/v1/me/totp"): {"password": "kein richtiges Passwort"},
        ("POST", "/api/v1/admin/users"): {"email": "neu@glasfaser-test.example", "name": "Nina Neu",
                                          "role": "operator_member", "organisation_id": ids["org_id"]},
        ("PATCH", "/api/v1/admin/users/{user_id}"): {"name": "Nina Neu", "role": "operator_member"},
        ("POST", "/api/v1/admin/organisations"): {"kind": "operator", "name": "Faser Neu GmbH",
                                                  "email": "info@faser-neu.example", "phone": "+49 69 1234",
                                                  "address": "Hauptstraße 1, 63263 Neu-Isenburg"},
        ("PATCH", "/api/v1/admin/organisations/{org_id}"): {"email": "info@faser-neu.example",
                                                            "phone": "+49 69 1234"},
    }


def leaves(value: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in leaves(v, path + (k,))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in leaves(v, path + (i,))]
    return [(path, value)]


def replaced(body: Any, path: tuple, new: Any) -> Any:
    out = copy.deepcopy(body)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return out


def body_variants(body: Any) -> list[tuple[str, Any]]:
    out = []
    for path, value in leaves(body):
        where = "/".join(map(str, path))
        if isinstance(value, str):
            out.append((f"NUL in {where}", replaced(body, path, NUL)))
            out.append((f"last day in {where}", replaced(body, path, LAST_DAY)))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((f"huge number in {where}", replaced(body, path, 10**30)))
    if isinstance(body, dict):
        out.append(("NUL in a key", {**body, NUL: 1}))
        out.append(("deep JSON at the top", {**body, "deep": deep(600)}))
        for path, _ in leaves(body):
            if "properties" in path:
                where = path[:path.index("properties") + 1]
                out.append(("deep JSON in properties", replaced(body, where + ("x",), deep(500))))
                break
    return out


def path_values(path: str, ids: dict[str, str]) -> dict[str, str]:
    values = {}
    for name in re.findall(r"{(\w+)}", path):
        values[name] = ids.get(name, str(uuid.uuid4()) if name.endswith("_id") else "applications")
    if "z" in values:
        values.update(z="14", x="8583", y="5541", layer="roads")
    if "number" in values:
        values["number"] = "1"
    if "step" in values:
        values["step"] = "resolve"
    return values


def fill(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def check(response, what: str, failures: list[str]) -> None:
    if response.status_code == 503 and what.startswith("GET /readyz"):
        return      # not ready (no worker in this test): its documented answer
    if response.status_code >= 500:
        failures.append(f"{what}: {response.status_code} {response.text[:200]}")
    elif response.status_code >= 400 and response.status_code != 405 and \
            not response.headers.get("content-type", "").startswith(PROBLEM):
        failures.append(f"{what}: {response.status_code} without problem+json ({response.headers.get('content-type')})")


@pytest.mark.slow
def test_every_route_answers_bad_values_with_4xx_problem_json(app, client, api, he, lines, clock, session):
    clock.set("2026-02-02T09:00:00+01:00")
    submitted = api.submitted(he.operator, collection(trench(lines["neu_isenburg"])))
    case_id = api.case_of(submitted, "Stadt Neu-Isenburg") if any(
        c["authority"]["name"] == "Stadt Neu-Isenburg" for c in submitted["cases"]) else submitted["cases"][0]["id"]
    hook = client.post("/api/v1/webhooks", headers=he.operator.headers,
                       json={"url": "http://10.20.30.40/hook", "event_types": ["application.submitted"]})
    assert hook.status_code == 201, hook.text
    ids = {"application_id": submitted["id"], "case_id": case_id, "webhook_id": hook.json()["id"],
           "org_id": str(he.orgs["operator"]), "other_authority": str(he.orgs["kreis_offenbach"]),
           "collection_id": "applications", "feature_id": submitted["id"]}
    bodies = example_bodies(lines, ids)
    people = [he.operator, he.neu_isenburg, he.admin]
    failures: list[str] = []
    walked = 0
    spec = app.openapi()
    for path, operations in spec["paths"].items():
        values = path_values(path, ids)
        for method, operation in operations.items():
            method = method.upper()
            content = operation.get("requestBody", {}).get("content", {})
            takes_json = any("json" in kind for kind in content)
            body = bodies.get((method, path))
            if takes_json and body is None:
                failures.append(f"{method} {path}: no example body in this test; add one")
                continue
            url = fill(path, values)
            requests: list[tuple[str, str, dict[str, Any], dict[str, str], Any]] = []
            for name in values:
                if name in ("z", "x", "y", "number"):
                    for bad in (HUGE, "-" + HUGE):
                        requests.append((f"{name}={bad[:5]}…", fill(path, {**values, name: bad}), {}, {}, body))
                else:
                    requests.append((f"NUL in path {name}", fill(path, {**values, name: "a%00b"}), {}, {}, body))
            query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            for name in query:
                for label, bad in (("NUL", NUL), ("huge", HUGE), ("-huge", "-" + HUGE), ("last day", LAST_DAY),
                                   ("4300 digits", DIGITS_4300)):
                    requests.append((f"{label} in ?{name}", url, {name: bad}, {}, body))
            for label, header in (("If-Match of 4300 digits", {"If-Match": f'"{DIGITS_4300}"'}),
                                  ("If-Match with NUL", {"If-Match": '"1\\u0000"'}),
                                  ("Idempotency-Key of 4300 digits", {"Idempotency-Key": DIGITS_4300})):
                requests.append((label, url, {}, header, body))
            if body is not None:
                for label, variant in body_variants(body):
                    requests.append((label, url, {}, {}, variant))
            for label, target, params, headers, payload in requests:
                for who in people:
                    auth = who.headers
                    if method != "GET" and path.startswith("/api/v1/me/"):
                        # logout and token revocation may revoke the caller's own token: a fresh one each time
                        auth = {"Authorization": "Bearer " + identity.create_token(
                            session, session.get(User, who.user_id), "walk")[1]}
                        session.commit()
                    kwargs: dict[str, Any] = {"params": params, "headers": {**auth, **headers}}
                    if payload is not None:
                        kwargs["content"] = json.dumps(payload)
                        kwargs["headers"]["Content-Type"] = "application/json"
                    response = client.request(method, target, **kwargs)
                    walked += 1
                    check(response, f"{method} {path} [{label}] as {who.token[:8]}", failures)
    assert not failures, f"{len(failures)} of {walked} requests failed:\n" + "\n".join(failures[:80])
    assert walked > 1000


def test_stored_deep_properties_stay_readable(app, client, api, he, lines, session):
    """A draft stored before the depth limit, with section properties nested 500 deep, must not make the
    application's versions unreadable for everyone."""
    r = api.create(he.operator, draft_body(collection(trench(lines["neu_isenburg"]))))
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    nested = json.dumps(deep(500))
    session.execute(text("UPDATE application_versions SET content = jsonb_set(content, "
                         "'{sections,features,0,properties,x}', CAST(:nested AS jsonb)) WHERE application_id = :id"),
                    {"nested": nested, "id": app_id})
    session.commit()
    for path in (f"/applications/{app_id}", f"/applications/{app_id}/versions", f"/applications/{app_id}/versions/1"):
        r = api.get(he.operator, path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])


def test_nul_character_is_rejected_with_its_place(api, he, lines):
    body = draft_body(collection(trench(lines["neu_isenburg"])), project_name="Bau\x00abschnitt")
    r = api.create(he.operator, body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    problem = r.json()
    assert problem["type"] == "https://breitband.dev/problems/nul-character"
    assert problem["pointer"] == "/project_name"
    r = api.get(he.operator, "/applications", reference="GRM\x00")
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "https://breitband.dev/problems/nul-character"
    assert r.json()["parameter"] == "reference"


def test_json_nested_too_deep_is_rejected(api, he, lines):
    body = draft_body(collection(trench(lines["neu_isenburg"], x=deep(100))))
    r = api.create(he.operator, body)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "https://breitband.dev/problems/json-too-deep"
    assert "32" in r.json()["detail"]



def test_json_depth_ignores_brackets_in_strings_and_escapes():
    import random

    from breitband.input_guard import json_depth

    def depth_of(value: Any) -> int:
        if isinstance(value, dict):
            return 1 + max((depth_of(v) for v in value.values()), default=0)
        if isinstance(value, list):
            return 1 + max((depth_of(v) for v in value), default=0)
        return 0

    rng = random.Random(11)
    pieces = ['[', ']', '{', '}', '"', '\\', '\\"', '\\\\', 'ä', 'x', '\\u0000']

    def build(level: int) -> Any:
        roll = rng.random()
        if level > 40 or roll < 0.3:
            return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        if roll < 0.65:
            return [build(level + 1) for _ in range(rng.randint(0, 3))]
        return {"".join(rng.choice(pieces) for _ in range(3)) + str(i): build(level + 1)
                for i in range(rng.randint(0, 3))}

    exact = 0
    for _ in range(300):
        value = build(0)
        for dumped in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
            expected, measured = depth_of(value), json_depth(dumped.encode())
            if dumped.count("[") + dumped.count("{") > 32:
                assert measured == expected, (dumped[:200], expected, measured)
                exact += 1
            else:                       # few brackets: their count bounds the depth, no need to look closer
                assert expected <= measured <= 32
    assert exact > 100
