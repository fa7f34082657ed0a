"""The Celery app: JSON only, late acks, reject on worker loss, time limits, a beat schedule of real tasks.

Processes that only send tasks (the API, the command line) use this app and send by name. Workers start from
``breitband.worker`` (``breitband worker``, ``breitband beat``), which imports every package's ``tasks.py``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import before_task_publish, setup_logging, task_postrun, task_prerun, worker_init

from breitband.logging import configure_logging, request_id_var
from breitband.settings import get_settings

# Periodic tasks. Only real tasks belong here; each later capability adds its own entry.
BEAT_SCHEDULE: dict[str, dict] = {
    # Deemed approvals (§ 127 (3) TKG) fall due at midnight Europe/Berlin; the sweep is idempotent and records each
    # with its own deadline as effective date, so running it every 5 minutes is both timely and safe.
    "permits-sweep-deadlines": {"task": "permits.sweep_deadlines", "schedule": 300.0},
    # The outbox relay is kicked after every commit that wrote events; this run catches whatever a kick missed.
    "notifications-relay": {"task": "notifications.relay", "schedule": 10.0},
    # Deliveries whose retry is due (long backoffs), or that a dead worker held.
    "notifications-dispatch-due": {"task": "notifications.dispatch_due", "schedule": 30.0},
    # Pipeline runs that were never sent to the broker (it was down) or got stuck (a worker died).
    "permits-pipeline-resume": {"task": "permits.pipeline_resume", "schedule": 60.0},
    # Decision documents for decided cases that have none (or whose generation failed and has attempts left).
    "permits-documents-sweep": {"task": "permits.documents_sweep", "schedule": 120.0},
    # Reminders to authorities 14 and 3 days before a decision deadline (idempotent; hourly is timely enough).
    "permits-deadline-reminders": {"task": "permits.deadline_reminders", "schedule": 3600.0},
}


@worker_init.connect
def _survive_lost_redis_connection(**_) -> None:
    """Keep the worker alive when its Redis connection breaks while it holds unacknowledged messages.

    Celery/kombu 5.7 first detaches the broken connection from its transport, then closes the channel, whose QoS
    tries to put the unacknowledged messages back through the detached transport: AttributeError in
    ``_connparams`` ('NoneType' object has no attribute 'hostname'), reported as "Unrecoverable error", and the
    worker exits (the same family as celery/kombu#582 and #970). A worker always holds some (every countdown
    retry), so a Redis restart stopped the service. Skipping the restore is safe: the messages stay in Redis's
    unacked hash and come back after the visibility timeout, and the beat sweeps (relay, dispatch_due,
    pipeline_resume, documents_sweep) redo from the database whatever is due before that.
    tests/faults/test_redis_restart.py (the worker holding a scheduled message) proves it.

    Applied as a worker starts (before its consumer connects): only a consumer holds unacknowledged messages, and
    processes that only send tasks (the API, the command line) need not load the Redis transport for it."""
    from kombu.transport import redis as kombu_redis  # deferred: workers only; it loads redis-py (~0.2 s)

    original = kombu_redis.QoS.restore_unacked
    if getattr(original, "_breitband", False):
        return

    def restore_unacked(self, client=None):
        transport = self.channel.connection
        if client is None and (transport is None or getattr(transport, "client", None) is None):
            return None
        return original(self, client)

    restore_unacked._breitband = True  # type: ignore[attr-defined]
    kombu_redis.QoS.restore_unacked = restore_unacked


def make_celery() -> Celery:
    settings = get_settings()
    app = Celery("breitband", broker=settings.broker_url, backend=settings.result_backend)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_time_limit=settings.task_time_limit_s,
        result_expires=3600,
        timezone="Europe/Berlin",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": max(3600, settings.task_time_limit_s * 2)},
        worker_hijack_root_logger=False,
        beat_schedule=BEAT_SCHEDULE,
    )
    return app


@setup_logging.connect
def _configure_worker_logging(loglevel=None, **_) -> None:
    """Workers and beat log like the API: JSON lines through the scrubbing handler of ``breitband.logging``.
    With a receiver of this signal Celery installs no handlers of its own (its task loggers propagate to ours)."""
    configure_logging(loglevel or get_settings().log_level)


# The request id of the HTTP request (or task) that sent a task travels in the message's headers and is the request
# id of the task's log lines, so one id follows a piece of work from the request through the worker.
REQUEST_ID_HEADER = "breitband_request_id"
_task_tokens: dict[str, Any] = {}


@before_task_publish.connect
def _send_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    rid = request_id_var.get()
    if headers is not None and rid:
        headers.setdefault(REQUEST_ID_HEADER, rid)


@task_prerun.connect
def _adopt_request_id(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is None or task is None:
        return
    request = task.request
    rid = getattr(request, REQUEST_ID_HEADER, None) or (getattr(request, "headers", None) or {}).get(REQUEST_ID_HEADER)
    _task_tokens[task_id] = request_id_var.set(rid if isinstance(rid, str) else None)


@task_postrun.connect
def _drop_request_id(task_id: str | None = None, **_: Any) -> None:
    token = _task_tokens.pop(task_id, None) if task_id else None
    if token is not None:
        request_id_var.reset(token)


celery_app = make_celery()
