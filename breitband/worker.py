"""The Celery worker's entry point: ``celery -A breitband.worker worker``, and what ``breitband worker`` and
``breitband beat`` run.

The app and its configuration are ``breitband.celery``'s; this module imports every task module by name, so that a
worker knows every task a message can name, and a misspelled or missing module fails at start-up (autodiscovery
skipped a package without tasks silently). ``permits.pipeline.audience`` registers the outbox audience of the permit
events and the tasks that subscribe to them, which the relay asks for; ``accounts.events`` that of the security
events. Processes that only send tasks (the API, the
command line's other commands) send them by name and import none of this.

The task modules: breitband.tasks, notifications.tasks, permits.cases.tasks, permits.pipeline.tasks,
permits.documents.tasks.
"""

from __future__ import annotations

# Imported for what importing them does: each registers its tasks with the Celery app (and
# permits.pipeline.audience also the outbox audience, its subscriptions and the reminders task).
import accounts.events  # noqa: F401  (the outbox audience of security events)
import breitband.metrics  # task run time and queue wait, by Celery's signals
import breitband.tasks  # noqa: F401
import notifications.tasks  # noqa: F401
import permits.cases.tasks
import permits.documents.tasks
import permits.pipeline.audience
import permits.pipeline.tasks  # noqa: F401
from breitband.celery import celery_app

app = celery_app  # what `celery -A breitband.worker` finds
