"""A real uvicorn serving the app (API + web app) for the browser tests and other stories that need a server of
their own (a short idle limit, an identity provider's tenant)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from breitband.settings import PROJECT_ROOT
from tests.support.waiting import free_port

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "web"


@contextmanager
def running_server(settings, log_name: str = "server.log", **env_extra: str) -> Iterator[str]:
    """uvicorn serving the app (API + web app) on a free port against the test database and broker (the environment
    tests/conftest.py set), with the worker's data directory; ``env_extra`` adds settings (BREITBAND_…). Yields the
    base URL; the server's log goes to test-artifacts/web/<log_name>."""
    if not (PROJECT_ROOT / "web" / "dist" / "index.html").is_file():
        pytest.fail("web/dist is missing: scripts/setup.sh builds the web app (npm ci && npm run build in web/)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BREITBAND_PUBLIC_BASE_URL": base, "BREITBAND_LOG_LEVEL": "INFO",
           "BREITBAND_DATA_DIR": str(settings.data_dir), **env_extra}
    log = open(ARTIFACTS / log_name, "w")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "breitband.app:create_app", "--factory",
                             "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=PROJECT_ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90          # a loaded 2-core machine needs more than 30 s at times
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"uvicorn did not start (see {ARTIFACTS / log_name})")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
