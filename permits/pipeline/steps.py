"""Which function does each step of the review pipeline: the one place that maps the engine's step names
(``permits.pipeline.service.STEPS``, in their order) to the modules that do the work.

The engine does not import the step modules, and nothing registers itself by being imported: the participation
step needs the engine (``StepError``), so the engine naming it would be a cycle. The runner
(``permits.pipeline.runner``) looks the function up here. A new step is a name in ``STEPS`` and a line below.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from permits.models import Application
from permits.participation import service as participation
from permits.pipeline import checks
from permits.pipeline import service as pipeline
from permits.pipeline.models import PipelineRun

Step = Callable[[Session, PipelineRun, Application, datetime], dict[str, Any]]

FUNCTIONS: dict[str, Step] = {
    "resolution": checks.step_resolution,
    "checks": checks.step_checks,
    "participation": participation.step_participation,
    "notifications": pipeline.step_notifications,
}
if tuple(FUNCTIONS) != pipeline.STEPS:      # fails at start-up, not in the middle of a run
    raise RuntimeError(f"pipeline steps {tuple(FUNCTIONS)} do not match the engine's {pipeline.STEPS}")
