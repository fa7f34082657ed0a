"""Prometheus metrics: ``GET /metrics`` in the text format, for a scraper holding ``BREITBAND_METRICS_TOKEN``.

Two kinds of figures:

* **Counted where they happen**, in the process that does the work: request latency per route template, problem
  answers by type, tile answers (rendered, empty, 304 revalidations = hits of the browsers' and proxies' caches),
  Celery task run time and queue wait, deadline sweep runs and the deemed approvals they issued. One process
  serves its own. Several processes on one machine (uvicorn ``--workers``, Celery's prefork pool, beat) share them
  when ``PROMETHEUS_MULTIPROC_DIR`` names an empty directory at their start (prometheus-client's multiprocess mode;
  ``scripts/run`` does that); on several machines each API is scraped on its own.
* **Read at scrape time from the shared state**, so they are right whatever process or machine did the work: the
  Celery queue depth on the broker, the outbox (events not yet published, age of the oldest), deliveries by channel
  and status (failed, given up), open cases and deemed approvals per tenant, decision documents not yet ready.

Labels are bounded: route templates (``/api/v1/cases/{case_id}``, never raw paths; ``unmatched`` for paths no
route serves), problem types are our own stable names, tile layers are the registered ones.
"""

from __future__ import annotations

import hmac
import os
import time
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun
from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import text

from breitband.celery import celery_app
from breitband.errors import NotFound, Unauthorized

router = APIRouter(include_in_schema=False)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

HTTP_LATENCY = Histogram("breitband_http_request_duration_seconds", "HTTP request latency by route template",
                         ["method", "route", "status"], buckets=LATENCY_BUCKETS)
PROBLEMS = Counter("breitband_http_problems_total", "problem+json answers by problem type", ["type", "status"])
TILES = Counter("breitband_tile_responses_total",
                "Vector tile answers: rendered, empty (204) or not_modified (304: a cache hit of a browser or proxy)",
                ["layer", "result"])
TASK_DURATION = Histogram("breitband_task_duration_seconds", "Celery task run time", ["task", "state"],
                          buckets=TASK_BUCKETS)
TASK_WAIT = Histogram("breitband_task_queue_wait_seconds",
                      "Time from sending a Celery task to a worker starting it", ["task"], buckets=TASK_BUCKETS)
SWEEPS = Counter("breitband_deadline_sweep_runs_total", "Deadline sweeps run (beat task or command)")
DEEMED_ISSUED = Counter("breitband_deemed_approvals_issued_total", "Deemed approvals issued by the sweeps")


def record_request(method: str, route: str, status: int, seconds: float, problem_type: str | None) -> None:
    HTTP_LATENCY.labels(method, route, str(status)).observe(seconds)
    if problem_type:
        PROBLEMS.labels(problem_type, str(status)).inc()


def record_tile(layer: str, result: str) -> None:
    TILES.labels(layer, result).inc()


def record_sweep(issued: int) -> None:
    SWEEPS.inc()
    if issued:
        DEEMED_ISSUED.inc(issued)


# --- Celery: run time and queue wait of every task, in the worker that runs it ------------------------------------

_started: dict[str, float] = {}
SENT_AT_HEADER = "breitband_sent_at"


@before_task_publish.connect
def _task_published(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        headers.setdefault(SENT_AT_HEADER, time.time())


@task_prerun.connect
def _task_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is None or task is None:
        return
    _started[task_id] = time.perf_counter()
    request = task.request
    sent_at = getattr(request, SENT_AT_HEADER, None) or (getattr(request, "headers", None) or {}).get(SENT_AT_HEADER)
    if isinstance(sent_at, int | float):
        TASK_WAIT.labels(task.name).observe(max(0.0, time.time() - float(sent_at)))


@task_postrun.connect
def _task_finished(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None) if task_id else None
    if started is not None and task is not None:
        TASK_DURATION.labels(task.name, (state or "unknown").lower()).observe(time.perf_counter() - started)


# --- read at scrape time -----------------------------------------------------------------------------------------

class SharedStateCollector:
    """Gauges from the database and the broker, collected per scrape (a failure becomes ``breitband_scrape_error``
    for that source, never a failed scrape)."""

    def __init__(self, db) -> None:
        self.db = db

    def collect(self):
        errors = GaugeMetricFamily("breitband_scrape_error", "1 when a source could not be read during this scrape",
                                   labels=["source"])
        try:
            yield from self._database()
            errors.add_metric(["database"], 0)
        except Exception:
            errors.add_metric(["database"], 1)
        try:
            yield from self._broker()
            errors.add_metric(["broker"], 0)
        except Exception:
            errors.add_metric(["broker"], 1)
        yield errors

    def _database(self):
        with self.db.readonly_engine.connect() as conn:
            conn.execute(text("SET LOCAL statement_timeout = '2s'"))
            pending, oldest = conn.execute(text(
                "SELECT count(*), extract(epoch FROM now() - min(created_at)) FROM permit_events "
                "WHERE published_at IS NULL")).one()
            outbox = GaugeMetricFamily("breitband_outbox_unpublished_events", "Events written, not yet published")
            outbox.add_metric([], pending)
            lag = GaugeMetricFamily("breitband_outbox_lag_seconds", "Age of the oldest unpublished event (0: none)")
            lag.add_metric([], float(oldest or 0.0))
            deliveries = GaugeMetricFamily("breitband_deliveries", "Deliveries (e-mail, webhook) by channel and status",
                                           labels=["channel", "status"])
            for channel, status, n in conn.execute(text(
                    "SELECT channel, status, count(*) FROM notification_deliveries GROUP BY 1, 2 ORDER BY 1, 2")):
                deliveries.add_metric([channel, status], n)
            cases = GaugeMetricFamily("breitband_cases", "Cases by tenant and status", labels=["tenant", "status"])
            for tenant, status, n in conn.execute(text(
                    "SELECT tenant_key, status, count(*) FROM cases GROUP BY 1, 2 ORDER BY 1, 2")):
                cases.add_metric([tenant, status], n)
            documents = GaugeMetricFamily("breitband_documents", "Decision documents by status", labels=["status"])
            for status, n in conn.execute(text(
                    "SELECT status, count(*) FROM decision_documents GROUP BY 1 ORDER BY 1")):
                documents.add_metric([status], n)
        yield from (outbox, lag, deliveries, cases, documents)

    def _broker(self):
        depth = GaugeMetricFamily("breitband_celery_queue_depth", "Messages waiting in the broker's queue",
                                  labels=["queue"])
        queue = celery_app.conf.task_default_queue or "celery"
        with celery_app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=1.0)
            _name, count, _consumers = conn.default_channel.queue_declare(queue=queue, passive=True)
            depth.add_metric([queue], count)
        yield depth


def exposition(db) -> bytes:
    """This process's counters (or, in multiprocess mode, those of every process sharing the directory), then the
    shared state's gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own = CollectorRegistry()
        multiprocess.MultiProcessCollector(own)
    else:
        own = REGISTRY
    shared = CollectorRegistry(auto_describe=False)
    shared.register(SharedStateCollector(db))
    return generate_latest(own) + generate_latest(shared)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if not token:
        raise NotFound("Metrics are off: set BREITBAND_METRICS_TOKEN to serve them", type="metrics-off")
    given = request.headers.get("authorization", "")
    if not given.lower().startswith("bearer ") or not hmac.compare_digest(given[7:].strip().encode(), token.encode()):
        raise Unauthorized("/metrics needs 'Authorization: Bearer <BREITBAND_METRICS_TOKEN>'", type="metrics-token",
                           challenge='Bearer realm="metrics"')
    return Response(exposition(request.app.state.db), media_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
