"""The suite's markers (registered in pyproject.toml, ``--strict-markers``) and a check at collection that a test
using a real worker or a browser carries its marker, so that ``-m "not worker"`` really leaves it out:

- ``browser``: drives Chromium (tests/web);
- ``worker``: starts real Celery worker processes or threads, or private servers (tests/faults, the worker tests of
  tests/notifications, tests/test_celery.py, tests/web);
- ``slow``: takes more than ~5 s on its own.

The quick loop is ``scripts/test -m "not browser and not worker and not slow"``; the default is the whole suite.
"""

from __future__ import annotations

import pytest

# fixture → the marker every test using it (directly or through another fixture) must carry
FIXTURE_MARKERS = {
    "worker": "worker",              # tests/support/workers.py, tests/test_celery.py: a Celery worker thread
    "private_stack": "worker",       # tests/faults: PostgreSQL, Redis, API and worker processes of their own
    "server": "worker",              # tests/web: uvicorn in a subprocess
    "browser": "browser",            # tests/web: Chromium
}


def unmarked(items) -> list[str]:
    return [f"{item.nodeid} uses the fixture {fixture!r}: mark it @pytest.mark.{marker}"
            for item in items for fixture, marker in FIXTURE_MARKERS.items()
            if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker(marker) is None]


def pytest_collection_modifyitems(config, items):
    missing = unmarked(items)
    if missing:
        raise pytest.UsageError("tests without the marker their fixtures need (tests/support/markers.py):\n  "
                                + "\n  ".join(missing))
