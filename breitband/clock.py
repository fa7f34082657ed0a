"""The service's one clock. Whatever needs the current time asks ``now()``: endpoints (as a dependency,
``Depends(clock.now)``), services, tasks, delivery and back-off. Tests set it with ``clock.use(...)`` or the
``frozen`` context manager, so no test sleeps through real time.

The override is process-wide: it is for tests, which run the API in-process; a worker process has its own clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

Source = Callable[[], datetime]
_source: Source | None = None


def now() -> datetime:
    """The current instant, timezone-aware (UTC)."""
    return _source() if _source is not None else datetime.now(timezone.utc)


def use(source: Source | None) -> None:
    """Let ``source`` tell the time from now on (None: the real clock again)."""
    global _source
    _source = source


@contextmanager
def frozen(at: datetime | Source) -> Iterator[None]:
    """Within the block ``now()`` answers ``at`` (an instant, or a callable that tells the time)."""
    previous = _source
    use(at if callable(at) else (lambda: at))
    try:
        yield
    finally:
        use(previous)
