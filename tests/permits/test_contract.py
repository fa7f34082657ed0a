"""The API keeps its contract: schemathesis over the app's own /openapi.json.

Every operation of the OpenAPI is called in-process (ASGI) inside the test's rolled-back transaction, with
generated data that fits the schema (positive) and data that does not (negative), as a role that may call it, with
real tokens and — for most positive examples — the ids of real objects made here (a draft, a submitted application
and its cases, a decision document, an attachment, a webhook, a spare token), so that reads answer 200 and commands
reach their domain rules instead of 404. Commands get the resource's current ETag as If-Match in those examples.

Each answer is checked: no 5xx; the status code is one the operation documents; its media type is the documented one
(``application/problem+json`` for errors); the body matches the documented schema; documented response headers
match; and data that breaks the schema (e.g. ``due_before=0``) is rejected with a 4xx.

Unknown query parameters are ignored, as FastAPI does (clients and proxies add cache busters; refusing them would
break them for no safety gain), except in the OGC API, whose standard requires a 400 (/req/core/query-param-unknown)
and whose OpenAPI declares the parameters it reads. Negative data that only adds parameters is not sent.

Bounded and stable: EXAMPLES positive and NEGATIVE negative examples per operation, derandomised (the same cases on
every run), no shrinking. All failures are collected and reported together.
"""

from __future__ import annotations

import io
import time
import uuid
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from breitband import identity
from breitband.models import Role, User
from tests.support.api import collection, draft_body, trench

EXAMPLES = 12
NEGATIVE = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection]
# /readyz answers 503 while no worker runs (none does in this test): its documented answer, still checked against
# its schema, not a server error.
CHECKS_OF = {("GET", "/readyz"): [c for c in CHECKS if c is not not_a_server_error]}
# A file part of a multipart body is bytes on the wire: what schemathesis sends as "an integer instead of binary" is
# a valid file, so negative data cannot be told from positive there (the other checks stay).
for _key in (("POST", "/verify"), ("POST", "/api/v1/applications/{application_id}/attachments")):
    CHECKS_OF[_key] = [c for c in CHECKS if c is not negative_data_rejection]
# A refusal of invalid data: 4xx that a request can get before or instead of its processing (409 and 412 too: an
# If-Match or a state check can answer before the body's content matters).
REJECTED = [400, 401, 403, 404, 405, 406, 409, 412, 413, 415, 422, 428, 429]
# The token's own lifecycle: these get a fresh token per example (logout revokes the token it is called with).
FRESH_TOKEN = {("POST", "/api/v1/me/logout"), ("DELETE", "/api/v1/me/tokens/{token_id}")}
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f8"
                    "cfc0f01f0005000201e2b5e3d10000000049454e44ae426082")


def _route_roles(app) -> dict[tuple[str, str], list[Role]]:
    from breitband.limits import _api_routes

    out = {}
    for methods, path, route in _api_routes(app):
        names, stack = [], [route.dependant]
        while stack:
            d = stack.pop()
            names.append(getattr(d.call, "__name__", "") or "")
            stack.extend(d.dependencies)
        roles = next((n.removeprefix("require_").split("_or_") for n in names if n.startswith("require_")), None)
        for m in methods:
            out[(m, path)] = [Role(r) for r in roles] if roles else list(Role)
    return out


def _issue_document(db, session, case_id: str) -> str:
    """The decision's document, as the relay and the two document tasks make it after a decision."""
    from notifications import outbox
    from notifications.models import Event
    from permits.documents.tasks import document_generate, documents_for_event

    outbox.relay(db)
    event = session.scalars(select(Event).where(Event.case_id == uuid.UUID(case_id),
                                                Event.type == "case.decided")).one()
    doc_id = documents_for_event.apply(args=[outbox.event_dict(event)]).get()
    assert document_generate.apply(args=[doc_id]).get()["status"] == "ready"
    return doc_id


@pytest.fixture
def world(app, client, api, he, lines, clock, session, db, task_db) -> dict[str, Any]:
    """Real objects of every kind an operation's path names, and the people who may see them."""
    clock.set("2026-02-02T09:00:00+01:00")
    hook = client.post("/api/v1/webhooks", headers=he.operator.headers,
                       json={"url": "http://10.20.30.40/hook", "event_types": ["application.submitted"]})
    assert hook.status_code == 201, hook.text
    route = collection(trench(lines["l3262"], "open_trench", depth_cm=80, width_cm=40), trench(lines["neu_isenburg"]))
    submitted = api.submitted(he.operator, route)
    decided_case = api.case_of(submitted, "Hessen Mobil")
    open_case = api.case_of(submitted, "Stadt Neu-Isenburg")
    r = api.command(he.hessen_mobil, f"/cases/{decided_case}/decision",
                    {"outcome": "granted", "conditions": ["HE-N01"]})
    assert r.status_code == 200, r.text
    document_id = _issue_document(db, session, decided_case)
    draft = api.create(he.operator, draft_body(collection(trench(lines["neu_isenburg_2"]))))
    assert draft.status_code == 201, draft.text
    upload = client.post(f"/api/v1/applications/{draft.json()['id']}/attachments", headers=he.operator.headers,
                         files={"file": ("querschnitt.png", io.BytesIO(PNG), "image/png")}, data={"kind": "other"})
    assert upload.status_code == 201, upload.text
    deliveries = client.get(f"/api/v1/webhooks/{hook.json()['id']}/deliveries", headers=he.operator.headers)
    assert deliveries.status_code == 200 and deliveries.json()["items"], deliveries.text
    operator_user = session.get(User, he.operator.user_id)
    spare, _ = identity.create_token(session, operator_user, "spare")
    session.commit()
    people = {Role.operator_member: he.operator, Role.authority_reviewer: he.neu_isenburg,
              Role.authority_admin: he.hessen_mobil, Role.tenant_admin: he.admin}
    # Path parameter → (the real id, the resource whose ETag a command on it needs)
    ids = {"application_id": [submitted["id"], draft.json()["id"]], "case_id": [open_case, decided_case],
           "document_id": [document_id], "attachment_id": [upload.json()["id"]], "webhook_id": [hook.json()["id"]],
           "org_id": [str(he.orgs["neu_isenburg"])], "user_id": [str(he.operator.user_id)],
           "token_id": [str(spare.id)], "collection_id": ["applications", "cases"], "layer": ["applications"],
           "step": ["resolve"], "number": [1], "delivery_id": [deliveries.json()["items"][0]["id"]],
           "z": [14], "x": [8583], "y": [5541]}
    return {"people": people, "ids": ids, "operator_user": operator_user}


def _etag_path(path: str) -> str | None:
    parts = path.split("/")          # /api/v1/applications/{id}/submit → /api/v1/applications/{id}
    return "/".join(parts[:5]) if len(parts) >= 5 and parts[3] in ("applications", "cases", "statements") else None


@pytest.mark.slow
def test_the_api_keeps_its_openapi_contract(app, client, world, session):
    config = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": REJECTED}}})
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    roles = _route_roles(app)
    people, ids = world["people"], world["ids"]
    operations = [r.ok() for r in schema.get_all_operations()]
    order = {"GET": 0, "POST": 1, "PATCH": 1, "PUT": 1, "DELETE": 2}
    operations.sort(key=lambda op: (op.path == "/api/v1/me/logout", order.get(op.method.upper(), 1)))
    failures: list[str] = []
    statuses: dict[str, list[int]] = {}
    started = time.monotonic()

    def token_for(role: Role, key: tuple[str, str]) -> str:
        if key in FRESH_TOKEN:
            _, secret = identity.create_token(session, world["operator_user"], "fresh")
            session.commit()
            return secret
        return people[role].token

    for operation in operations:
        key = (operation.method.upper(), operation.path)
        allowed = [r for r in roles.get(key, list(Role)) if r in people]

        def call(case, role: Role, known: int | None, mode: GenerationMode, key=key, operation=operation) -> None:
            token = token_for(role, key)
            if key in FRESH_TOKEN and key[0] == "DELETE":
                token_user = world["operator_user"]
                spare, _ = identity.create_token(session, token_user, "to-revoke")
                session.commit()
                case.path_parameters = {**(case.path_parameters or {}), "token_id": str(spare.id)}
                role = Role.operator_member
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
            if known is not None and mode.is_positive:
                params = dict(case.path_parameters or {})
                for name in params:
                    if name in ids and not (key in FRESH_TOKEN and name == "token_id"):
                        params[name] = ids[name][known % len(ids[name])]
                case.path_parameters = params
                etag_path = _etag_path(case.formatted_path)
                if "If-Match" in (case.headers or {}) and etag_path:
                    r = client.get(etag_path, headers={"Authorization": f"Bearer {token}"})
                    if r.status_code == 200:
                        case.headers["If-Match"] = r.headers["etag"]
            response = case.call_and_validate(checks=CHECKS_OF.get(key, CHECKS))
            statuses.setdefault(operation.label, []).append(response.status_code)

        for mode, count in ((GenerationMode.POSITIVE, EXAMPLES), (GenerationMode.NEGATIVE, NEGATIVE)):
            @hypothesis.settings(max_examples=count, derandomize=True, deadline=None, database=None,
                                 phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode), role=st.sampled_from(allowed),
                   known=st.one_of(st.none(), st.integers(0, 3)))
            def run(case, role, known):
                call(case, role, known, mode)  # noqa: B023 - run() is called in this iteration

            try:
                run()
            except Unsatisfiable:
                assert mode.is_negative, operation.label     # no parameter or body that data could break
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - all failures are reported together
                failures.append(f"{mode.value} {operation.label}: {type(exc).__name__}: {str(exc)[:3000]}")

    elapsed = time.monotonic() - started
    calls = sum(map(len, statuses.values()))
    print(f"contract: {len(operations)} operations, {calls} calls in {elapsed:.0f} s")
    for label, codes in statuses.items():
        print(f"  {label}: " + ", ".join(f"{c}x{codes.count(c)}" for c in sorted(set(codes))))
    assert not failures, f"{len(failures)} contract failures:\n\n" + "\n\n".join(failures)


@pytest.mark.parametrize("query, field", [
    ("due_before=0", "due_before"), ("due_before=2026-13-01", "due_before"), ("due_before=9999-12-31", "due_before"),
    ("limit=0", "limit"), ("limit=201", "limit"), ("offset=-1", "offset"), ("offset=1000001", "offset"),
    ("status=nonsense", "status"), ("application_id=7", "application_id"), ("overdue=perhaps", "overdue")])
def test_the_inbox_rejects_what_its_openapi_does_not_declare(client, he, query, field):
    r = client.get(f"/api/v1/cases?{query}", headers=he.neu_isenburg.headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in r.json()["detail"]


def test_the_openapi_documents_problems_and_headers(app):
    spec = app.openapi()
    assert spec["openapi"].startswith("3.1")
    decide = spec["paths"]["/api/v1/cases/{case_id}/decision"]["post"]
    assert sorted(decide["responses"]) == ["200", "400", "401", "403", "404", "409", "412", "413", "422", "428",
                                           "429", "503"]
    assert {(p["in"], p["name"], p["required"]) for p in decide["parameters"]} == {
        ("path", "case_id", True), ("header", "If-Match", True), ("header", "Idempotency-Key", False),
        ("header", "X-CSRF-Token", False)}
    assert list(decide["responses"]["422"]["content"]) == ["application/problem+json"]
    inbox = spec["paths"]["/api/v1/cases"]["get"]
    due = next(p for p in inbox["parameters"] if p["name"] == "due_before")
    assert due["schema"]["anyOf"][0] == {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
    assert due["schema"]["format"] == "date"
    # 400 for format= other than json, 406 for an Accept without JSON: both name the export (permits.http.json_list)
    assert sorted(inbox["responses"]) == ["200", "400", "401", "406", "422", "429", "503"]
    assert sorted(spec["paths"]["/healthz"]["get"]["responses"]) == ["200", "422"]
    items = spec["paths"]["/api/v1/ogc/collections/{collection_id}/items"]["get"]
    assert [p["name"] for p in items["parameters"]] == ["collection_id", "f", "bbox", "bbox-crs", "crs", "datetime",
                                                        "limit", "offset", "filter", "filter-lang", "filter-crs",
                                                        "sortby"]
    assert list(items["responses"]["200"]["content"]) == ["application/geo+json"]
    assert "Content-Crs" in items["responses"]["200"]["headers"]
    assert items["security"] == [{"bearer": []}, {"session": []}, {"basic": []}]
    assert items["responses"]["400"]["content"] == {"application/problem+json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, ops in spec["paths"].items():           # every OGC operation documents what it answers
        if path.startswith("/api/v1/ogc"):
            assert {"200", "400", "401"} <= set(ops["get"]["responses"]), path
            assert all(p.get("description") or p["in"] == "path" for p in ops["get"]["parameters"]), path
