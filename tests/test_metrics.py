"""GET /metrics: off without a token, 401 with a wrong one; request latency by route template, problem types, tile
answers, and the shared state read at scrape time (outbox, deliveries, cases, documents, the broker's queue)."""

from __future__ import annotations

import math
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from breitband.app import create_app

TOKEN = "metrics-token-for-the-tests-0123456789"


@pytest.fixture
def metrics_client(settings, db):
    app = create_app(settings.model_copy(update={"metrics_token": TOKEN}), db=db)
    with TestClient(app) as c:
        yield c


def scrape(client) -> str:
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain") and r.headers["cache-control"] == "no-store"
    return r.text


def value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit(" ", 1)[0]))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_are_off_without_a_token(client):
    r = client.get("/metrics")
    assert r.status_code == 404 and r.json()["type"].endswith("/metrics-off")


def test_metrics_need_the_token(metrics_client):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        r = metrics_client.get("/metrics", headers=headers)
        assert r.status_code == 401 and r.json()["type"].endswith("/metrics-token"), headers
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_requests_problems_and_shared_state(metrics_client, he):
    before = scrape(metrics_client)
    case = "00000000-0000-0000-0000-000000000000"
    seen = value(before, "breitband_http_request_duration_seconds_count", method="GET",
                 route="/api/v1/cases/{case_id}", status="404") or 0
    for _ in range(3):
        assert metrics_client.get(f"/api/v1/cases/{case}", headers=he.neu_isenburg.headers).status_code == 404
    metrics_client.get("/no/such/path/1234")
    after = scrape(metrics_client)
    # by route template, never the raw path (bounded labels)
    assert value(after, "breitband_http_request_duration_seconds_count", method="GET",
                 route="/api/v1/cases/{case_id}", status="404") == seen + 3
    assert case not in after and "/no/such/path" not in after
    assert value(after, "breitband_http_request_duration_seconds_count", method="GET", route="unmatched",
                 status="404") >= 1
    assert value(after, "breitband_http_problems_total", type="case-not-found", status="404") is not None or \
        value(after, "breitband_http_problems_total", type="not-found", status="404") is not None
    # read from the database and the broker at scrape time
    assert value(after, "breitband_scrape_error", source="database") == 0
    assert value(after, "breitband_scrape_error", source="broker") == 0
    assert value(after, "breitband_outbox_unpublished_events") is not None
    assert value(after, "breitband_outbox_lag_seconds") is not None
    assert value(after, "breitband_celery_queue_depth", queue="celery") is not None


def test_tile_answers_are_counted(metrics_client, he_data, engine):
    with engine.connect() as conn:                        # a tile with a road of the imported data in it
        lon, lat = conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_PointOnSurface(geom), 4326) AS p "
            "FROM road_segments WHERE tenant_key = 'he' ORDER BY id LIMIT 1) s")).one()
    z = 14
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    url = f"/tiles/roads/{z}/{x}/{y}.mvt?tenant=he"
    first = metrics_client.get(url)
    assert first.status_code == 200
    again = metrics_client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    body = scrape(metrics_client)
    assert value(body, "breitband_tile_responses_total", layer="roads", result="not_modified") >= 1
