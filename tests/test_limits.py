"""Request size limits (413 while the body streams in) and rate limits with counters in Redis (429 + Retry-After),
through the HTTP API of an app built with small limits. Real Redis: the counters live in the test's limits db
(BREITBAND_TEST_LIMITS_REDIS_URL), flushed before each test."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest
import redis
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from breitband import sessions
from breitband.limits import BODY_RULES, DEFAULT, RATE_RULES, ROUTE, UPLOAD, VERIFY, LimitsMiddleware
from permits.models import Application
from tests.conftest import TEST_LIMITS_REDIS_URL

PROBLEM = "application/problem+json"
KIB = 1024
LINE = {"type": "LineString", "coordinates": [[8.6810, 50.0500], [8.6900, 50.0560]]}


@pytest.fixture(autouse=True)
def counters():
    r = redis.Redis.from_url(TEST_LIMITS_REDIS_URL)
    r.flushdb()
    yield r
    r.flushdb()
    r.close()


def small(settings, **extra):
    """The test settings with small limits: bodies 64 KiB (routes 128 KiB, verify 96 KiB, attachments 64 KiB +
    32 KiB), 3 per minute for every rate."""
    values = dict(body_limit_mb=64 / 1024, body_limit_route_mb=128 / 1024, body_limit_verify_mb=96 / 1024,
                  max_attachment_mb=64 / 1024, body_limit_multipart_overhead_mb=32 / 1024,
                  rate_limit_auth_failures="3/60", rate_limit_verify="3/60", rate_limit_resolve_token="3/60",
                  rate_limit_resolve_client="5/60", rate_limit_redeliver_token="3/60",
                  limits_redis_url=TEST_LIMITS_REDIS_URL)
    values.update(extra)
    return settings.model_copy(update=values)


def make_app(settings, db, **extra):
    from breitband.app import create_app

    app = create_app(small(settings, **extra), db=db)
    app.state.probe_calls = 0

    @app.post("/probe-body")
    async def probe(request: Request):
        """A test endpoint that reads its body: it must never get one over the limit."""
        body = await request.body()
        request.app.state.probe_calls += 1
        return {"bytes": len(body)}

    return app


@pytest.fixture
def limited(settings, db):
    return make_app(settings, db)


@pytest.fixture
def api(limited):
    with TestClient(limited, raise_server_exceptions=False) as c:
        yield c


def assert_problem(r, status: int, type_: str):
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["type"] == f"https://breitband.dev/problems/{type_}"
    assert body["status"] == status
    return body


# --- body size -------------------------------------------------------------------------------------------------

def test_content_length_over_the_limit_is_refused_before_the_endpoint_runs(api, limited):
    r = api.post("/probe-body", content=b"x" * (64 * KIB + 1))
    body = assert_problem(r, 413, "payload-too-large")
    assert body["detail"] == ("The body has 65537 bytes; POST /probe-body accepts at most 64 KiB (65536 bytes)")
    assert body["limit_bytes"] == 65536 and body["endpoint"] == "POST /probe-body"
    assert r.headers["x-request-id"] == body["request_id"]
    assert limited.state.probe_calls == 0


def test_body_at_the_limit_passes(api, limited):
    r = api.post("/probe-body", content=b"x" * (64 * KIB))
    assert r.status_code == 200 and r.json() == {"bytes": 65536}
    assert limited.state.probe_calls == 1


def test_chunked_body_over_the_limit_without_content_length(api, limited):
    sent = []

    def chunks():
        for _ in range(20):
            sent.append(8 * KIB)
            yield b"y" * (8 * KIB)

    r = api.post("/probe-body", content=chunks())
    body = assert_problem(r, 413, "payload-too-large")
    assert body["detail"] == "The body passed; POST /probe-body accepts at most 64 KiB (65536 bytes)"
    assert limited.state.probe_calls == 0
    # the same chunked body under the limit passes
    r = api.post("/probe-body", content=(b"z" * (8 * KIB) for _ in range(8)))
    assert r.status_code == 200 and r.json() == {"bytes": 65536}


def test_the_middleware_stops_reading_at_the_limit(limited):
    """At the ASGI interface (TestClient reads a generator body whole before the app sees it): the body arrives in
    16 KiB messages; the app pulls the fifth (which passes 64 KiB), answers 413 and never asks for the 95 others."""
    pulled = 0
    sent: list[dict] = []

    async def receive():
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"q" * (16 * KIB), "more_body": pulled < 100}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/probe-body", "raw_path": b"/probe-body", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"testserver"), (b"transfer-encoding", b"chunked")],
             "client": ("192.0.2.1", 1234), "server": ("testserver", 80)}
    asyncio.run(limited(scope, receive, send))
    assert pulled == 5
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["type"] == "https://breitband.dev/problems/payload-too-large"
    assert limited.state.probe_calls == 0


def trench(vertices: int) -> dict:
    """A trench line in Frankfurt with coordinates at full double precision (about 36 bytes a vertex)."""
    coords = [[8.68 + i * 1.000001e-5, 50.05 + i * 5.000001e-6] for i in range(vertices)]
    props = {"laying_method": "open_trench", "depth_cm": 60, "width_cm": 30}
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": props, "geometry": {"type": "LineString", "coordinates": coords}}]}


def test_route_endpoints_take_larger_bodies_than_others(api, world, session):
    """A draft of about 100 KiB passes although the default is 64 KiB (its route limit is 128 KiB); one over
    128 KiB is refused by the middleware and nothing is stored."""
    headers = world.operator_member.headers
    draft = {"project_name": "Glasfaser Sachsenhausen", "sections": trench(2000)}
    assert 64 * KIB < len(json.dumps(draft)) < 128 * KIB
    r = api.post("/api/v1/applications", json=draft, headers=headers)
    assert r.status_code != 413 and r.status_code < 500, r.text   # judged by the endpoint (xa has no rules: 422)
    before = session.scalar(select(func.count()).select_from(Application))
    draft["sections"] = trench(4000)
    assert len(json.dumps(draft)) > 128 * KIB
    r = api.post("/api/v1/applications", json=draft, headers=headers)
    body = assert_problem(r, 413, "payload-too-large")
    assert "POST /api/v1/applications accepts at most 128 KiB" in body["detail"]
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Application)) == before
    # a command without a route keeps the default limit
    r = api.post(f"/api/v1/applications/{uuid.uuid4()}/withdraw", json={"reason": "r" * (70 * KIB)},
                 headers=headers)
    body = assert_problem(r, 413, "payload-too-large")
    assert body["endpoint"] == "POST /api/v1/applications/{application_id}/withdraw"


def test_without_a_token_a_route_endpoint_takes_only_the_default(api):
    """FastAPI parses a body before authentication; a body that will be answered 401 is held to 64 KiB."""
    r = api.post("/api/v1/applications", json={"sections": trench(2000)})
    body = assert_problem(r, 413, "payload-too-large")
    assert body["endpoint"] == "POST /api/v1/applications without a token" and body["limit_bytes"] == 64 * KIB
    assert api.post("/api/v1/applications", json={"sections": trench(10)}).status_code == 401


def test_resolve_over_its_limit_is_413(api, world):
    coords = [[8.68 + i * 1e-6, 50.05 + i * 1e-6] for i in range(6000)]   # ~200 KiB of GeoJSON
    r = api.post("/api/v1/resolve", content=json.dumps({"type": "LineString", "coordinates": coords}),
                 headers=world.operator_member.headers)
    body = assert_problem(r, 413, "payload-too-large")
    assert body["endpoint"] == "POST /api/v1/resolve" and body["limit_bytes"] == 128 * KIB


def test_attachment_upload_limit_is_the_attachment_size_plus_multipart_overhead(api, world):
    headers = world.operator_member.headers
    app_id = uuid.uuid4()
    # 80 KiB: over the file limit (64 KiB), under the body limit (96 KiB) → the endpoint's own 413 (or 404 first)
    r = api.post(f"/api/v1/applications/{app_id}/attachments", headers=headers,
                 files={"file": ("a.pdf", b"%PDF-" + b"0" * (80 * KIB), "application/pdf")})
    assert r.status_code in (404, 413) and r.json()["type"] != "https://breitband.dev/problems/payload-too-large"
    # 100 KiB: the whole request is refused by the middleware
    r = api.post(f"/api/v1/applications/{app_id}/attachments", headers=headers,
                 files={"file": ("a.pdf", b"%PDF-" + b"0" * (100 * KIB), "application/pdf")})
    body = assert_problem(r, 413, "payload-too-large")
    assert body["limit_bytes"] == 96 * KIB


def test_verify_upload_limit(api):
    r = api.post("/verify", files={"file": ("big.pdf", b"%PDF-" + b"0" * (100 * KIB), "application/pdf")})
    body = assert_problem(r, 413, "payload-too-large")
    assert body["endpoint"] == "POST /verify" and body["limit_bytes"] == 96 * KIB
    r = api.post("/verify", files={"file": ("small.pdf", b"%PDF-1.7 not a document", "application/pdf")})
    assert r.status_code == 200 and r.json()["genuine"] is False


def test_every_endpoint_that_takes_a_body_has_its_limit_class(limited):
    """The templates of BODY_RULES exist, and every operation with a request body is classed as decided here, so a
    new endpoint that takes a route or a file cannot silently fall under the 2 MiB default."""
    spec = limited.openapi()
    operations = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert set(BODY_RULES) <= operations
    assert set(RATE_RULES) <= operations
    middleware = LimitsMiddleware(None, limited.state.limits)
    classes = {(m.upper(), p): middleware.body_rule(m.upper(), p)[0]
               for p, ops in spec["paths"].items() for m, op in ops.items() if "requestBody" in op}
    expected = {key: DEFAULT for key in classes}
    expected.update({
        ("POST", "/api/v1/resolve"): ROUTE, ("POST", "/api/v1/applications"): ROUTE,
        ("POST", "/api/v1/route-file"): ROUTE, ("PUT", "/api/v1/applications/{application_id}/route"): ROUTE,
        ("PATCH", "/api/v1/applications/{application_id}"): ROUTE,
        ("POST", "/api/v1/applications/{application_id}/supplements"): ROUTE,
        ("POST", "/api/v1/applications/{application_id}/works-completion"): ROUTE,
        ("POST", "/api/v1/applications/{application_id}/attachments"): UPLOAD, ("POST", "/verify"): VERIFY})
    assert classes == expected
    multipart = {(m.upper(), p) for p, ops in spec["paths"].items() for m, op in ops.items()
                 if "multipart/form-data" in op.get("requestBody", {}).get("content", {})}
    assert all(classes[k] in (UPLOAD, VERIFY, ROUTE) for k in multipart)   # /resolve takes a route file too


def test_openapi_documents_413_and_429_as_problem_json(limited):
    paths = limited.openapi()["paths"]
    create = paths["/api/v1/applications"]["post"]["responses"]
    assert "application/problem+json" in create["413"]["content"]
    assert "128 KiB" in create["413"]["description"]
    assert "Retry-After" in create["429"]["headers"]
    assert "verify per client" in paths["/verify"]["post"]["responses"]["429"]["description"]
    resolve = paths["/api/v1/resolve"]["post"]["responses"]
    assert "resolve per token, resolve per client" in resolve["429"]["description"]
    redeliver = paths["/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"]["post"]["responses"]
    assert "redeliver per token" in redeliver["429"]["description"]
    assert "429" not in paths["/verify/{document_id}"]["get"]["responses"]        # public, no limit
    assert "413" not in paths["/api/v1/applications"]["get"]["responses"]         # takes no body


# --- rate limits -------------------------------------------------------------------------------------------------

def test_auth_failures_per_client_then_429_before_the_token_is_checked(limited, world):
    with TestClient(limited, client=("198.51.100.7", 4000), raise_server_exceptions=False) as attacker, \
            TestClient(limited, client=("198.51.100.8", 4000), raise_server_exceptions=False) as other:
        for headers in ({"Authorization": "Bearer wrong-1"}, {}, {"Authorization": "Basic abc"}):
            assert attacker.get("/api/v1/me", headers=headers).status_code == 401
        r = attacker.get("/api/v1/me", headers={"Authorization": "Bearer wrong-4"})
        body = assert_problem(r, 429, "too-many-requests")
        assert 55 <= int(r.headers["retry-after"]) <= 60
        assert body["detail"].startswith("More than 3 failed authentications from your address within 60 s")
        # blocked before the token is checked: a valid token from the blocked address waits too
        assert attacker.get("/api/v1/me", headers=world.operator_member.headers).status_code == 429
        # another address is unaffected, with a bad token and with a good one
        assert other.get("/api/v1/me", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert other.get("/api/v1/me", headers=world.operator_member.headers).status_code == 200


def test_a_blocked_address_gets_429_before_its_body_is_read(limited, world):
    with TestClient(limited, client=("198.51.100.9", 1), raise_server_exceptions=False) as c:
        for _ in range(3):
            assert c.get("/api/v1/me", headers={"Authorization": "Bearer wrong"}).status_code == 401
    pulled = 0
    sent: list[dict] = []

    async def receive():
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/v1/applications", "raw_path": b"/api/v1/applications", "root_path": "",
             "query_string": b"", "client": ("198.51.100.9", 2), "server": ("testserver", 80),
             "headers": [(b"host", b"testserver"), (b"content-length", b"2"), (b"content-type", b"application/json"),
                         (b"authorization", world.operator_member.headers["Authorization"].encode())]}
    asyncio.run(limited(scope, receive, send))
    assert sent[0]["status"] == 429 and pulled == 0
    assert dict(sent[0]["headers"])[b"retry-after"].isdigit()


def test_successful_authentications_are_not_counted(api, world):
    for _ in range(6):
        assert api.get("/api/v1/me", headers=world.operator_member.headers).status_code == 200


def test_window_ends_after_retry_after(settings, db, counters):
    app = make_app(settings, db, rate_limit_auth_failures="2/1")
    with TestClient(app, raise_server_exceptions=False) as c:
        assert [c.get("/api/v1/me").status_code for _ in range(3)] == [401, 401, 429]
        assert c.get("/api/v1/me").headers["retry-after"] == "1"
        key = "breitband:rl:auth-failures:client:testclient"
        assert int(counters.get(key)) == 2 and 0 < counters.pttl(key) <= 1000
        counters.delete(key)   # what the end of the window does (the key expires), without waiting for it
        assert c.get("/api/v1/me").status_code == 401


def test_forwarded_for_is_believed_only_from_trusted_proxies(settings, db):
    app = make_app(settings, db, trusted_proxies=["192.0.2.0/24"])
    with TestClient(app, client=("192.0.2.10", 1), raise_server_exceptions=False) as proxy, \
            TestClient(app, client=("203.0.113.5", 1), raise_server_exceptions=False) as direct:
        bad = {"Authorization": "Bearer wrong"}
        for _ in range(3):
            assert proxy.get("/api/v1/me", headers={**bad, "X-Forwarded-For": "203.0.113.99, 192.0.2.11"}
                             ).status_code == 401
        # the client behind the proxies is blocked, however it spoofs the left of the header
        r = proxy.get("/api/v1/me", headers={**bad, "X-Forwarded-For": "1.2.3.4, 203.0.113.99"})
        assert r.status_code == 429
        # another client behind the same proxy is not
        assert proxy.get("/api/v1/me", headers={**bad, "X-Forwarded-For": "203.0.113.100"}).status_code == 401
        # an untrusted peer's X-Forwarded-For is ignored: it is counted as itself
        for _ in range(3):
            assert direct.get("/api/v1/me", headers={**bad, "X-Forwarded-For": "203.0.113.99"}).status_code == 401
        assert direct.get("/api/v1/me", headers={**bad, "X-Forwarded-For": "203.0.113.77"}).status_code == 429


def test_verify_is_limited_per_client_before_the_upload_is_read(limited):
    with TestClient(limited, client=("198.51.100.20", 1), raise_server_exceptions=False) as a, \
            TestClient(limited, client=("198.51.100.21", 1), raise_server_exceptions=False) as b:
        pdf = {"file": ("x.pdf", b"%PDF-1.7 not a document", "application/pdf")}
        assert [a.post("/verify", files=pdf).status_code for _ in range(3)] == [200, 200, 200]
        r = a.post("/verify", files=pdf)
        body = assert_problem(r, 429, "too-many-requests")
        assert body["detail"].startswith("More than 3 document verifications from your address within 60 s")
        assert int(r.headers["retry-after"]) in range(55, 61)
        # refused before the body: even one over the size limit gets 429, not 413
        big = {"file": ("x.pdf", b"%PDF-" + b"0" * (200 * KIB), "application/pdf")}
        assert a.post("/verify", files=big).status_code == 429
        assert b.post("/verify", files=pdf).status_code == 200


def test_resolve_is_limited_per_token_and_per_client(limited, world):
    """3 per token, 5 per client address."""
    alice, bob, carol = world.operator_member, world.reviewer, world.admin
    with TestClient(limited, client=("198.51.100.30", 1), raise_server_exceptions=False) as office, \
            TestClient(limited, client=("198.51.100.31", 1), raise_server_exceptions=False) as home:
        codes = [office.post("/api/v1/resolve", json=LINE, headers=alice.headers).status_code for _ in range(4)]
        assert all(c < 500 and c != 429 for c in codes[:3]) and codes[3] == 429
        r = office.post("/api/v1/resolve", json=LINE, headers=alice.headers)
        body = assert_problem(r, 429, "too-many-requests")
        assert body["detail"].startswith("More than 3 resolution requests with this token within 60 s")
        # the same token from another address: still the token's limit
        assert home.post("/api/v1/resolve", json=LINE, headers=alice.headers).status_code == 429
        # another token from the same office: the token is fresh, but the office address has made 5 requests
        assert office.post("/api/v1/resolve", json=LINE, headers=bob.headers).status_code == 429
        body = office.post("/api/v1/resolve", json=LINE, headers=bob.headers).json()
        assert body["detail"].startswith("More than 5 resolution requests from your address within 60 s")
        # another token from another address is unaffected
        assert home.post("/api/v1/resolve", json=LINE, headers=carol.headers).status_code not in (429, 500)


def test_redelivery_is_limited_per_token(api, world):
    hook, delivery = uuid.uuid4(), uuid.uuid4()
    url = f"/api/v1/webhooks/{hook}/deliveries/{delivery}/redeliver"
    admin = world.authority_admin
    assert [api.post(url, headers=admin.headers).status_code for _ in range(3)] == [404, 404, 404]
    r = api.post(url, headers=admin.headers)
    body = assert_problem(r, 429, "too-many-requests")
    assert body["detail"].startswith("More than 3 webhook redeliveries with this token within 60 s")
    assert "retry-after" in r.headers
    # another organisation admin's token has its own counter
    assert api.post(url, headers=world.operator_member.headers).status_code == 404


def test_limits_fail_open_when_redis_is_unreachable(settings, db, world, caplog):
    app = make_app(settings, db, limits_redis_url="redis://127.0.0.1:1/0", limits_redis_retry_s=0)
    with caplog.at_level(logging.WARNING, logger="breitband.limits"), \
            TestClient(app, raise_server_exceptions=False) as c:
        assert [c.get("/api/v1/me", headers={"Authorization": "Bearer x"}).status_code for _ in range(5)] == [401] * 5
        assert c.get("/api/v1/me", headers=world.operator_member.headers).status_code == 200
        pdf = {"file": ("x.pdf", b"%PDF-1.7 not a document", "application/pdf")}
        assert [c.post("/verify", files=pdf).status_code for _ in range(4)] == [200] * 4
        # the body limits need no Redis
        assert c.post("/probe-body", content=b"x" * (64 * KIB + 1)).status_code == 413
    warnings = [r.getMessage() for r in caplog.records if r.name == "breitband.limits"]
    assert warnings and all("unreachable" in w and "fail open" in w for w in warnings)


def test_an_unreachable_redis_is_asked_again_only_after_the_retry_interval(settings, db, caplog):
    app = make_app(settings, db, limits_redis_url="redis://127.0.0.1:1/0", limits_redis_retry_s=60)
    with caplog.at_level(logging.WARNING, logger="breitband.limits"), \
            TestClient(app, raise_server_exceptions=False) as c:
        for _ in range(5):
            assert c.get("/api/v1/me").status_code == 401
    assert len([r for r in caplog.records if r.name == "breitband.limits"]) == 1


def test_resolve_work_is_budgeted_per_token_in_features(settings, db, session, he_data, world):
    """The work of /resolve counts in features per token (rate_limit_resolve_features_token), charged once the
    route is parsed and before it is resolved: many small requests and one big one spend the same budget."""
    from breitband import identity
    from breitband.models import OrgKind, Role

    app = make_app(settings, db, rate_limit_resolve_features_token="10/60")
    org = identity.create_organisation(session, "he", OrgKind.operator, "Budget Netz GmbH")
    _, secret = identity.create_token(session, identity.create_user(session, org, "budget@netz.example", "B",
                                                                     Role.operator_member), "t")
    session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    pits = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [8.6335 + i / 10000, 50.0524]},
         "properties": {"kind": "pit"}} for i in range(4)]}
    with TestClient(app, raise_server_exceptions=False) as c:
        assert [c.post("/api/v1/resolve", json=pits, headers=headers).status_code for _ in range(2)] == [200, 200]
        r = c.post("/api/v1/resolve", json=pits, headers=headers)          # 12 > 10
        body = assert_problem(r, 429, "too-many-requests")
        assert body["detail"].startswith("More than 10 features resolved with this token within 60 s")
        assert (body["limit"], body["limit_count"]) == ("resolve-features", 10)
        assert 1 <= int(r.headers["retry-after"]) <= 60
        # another token has its own budget
        assert c.post("/api/v1/resolve", json=pits, headers=world.operator_member.headers).status_code != 429


def test_a_browser_session_counts_like_a_token(limited, world, session):
    """The web app signs in with a session cookie: its resolution requests count per session like a token's."""
    started = sessions.start(session, world.operator_member.user_id, method="password")
    session.commit()
    with TestClient(limited, client=("198.51.100.40", 1), raise_server_exceptions=False) as browser, \
            TestClient(limited, client=("198.51.100.41", 1), raise_server_exceptions=False) as other:
        browser.cookies.set(sessions.cookie_name(), started.secret)
        other.cookies.set(sessions.cookie_name(), started.secret)
        csrf = {"X-CSRF-Token": started.csrf_token}
        codes = [browser.post("/api/v1/resolve", json=LINE, headers=csrf).status_code for _ in range(4)]
        assert all(c < 500 and c != 429 for c in codes[:3]) and codes[3] == 429, codes
        # the same session from another address: still the session's limit
        assert other.post("/api/v1/resolve", json=LINE, headers=csrf).status_code == 429
