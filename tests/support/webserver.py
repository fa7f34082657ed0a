"""The app served by uvicorn in a subprocess, for browser stories whose server needs an environment of its own (a
public base URL known before the start, an OpenID Provider's client secret, shorter session limits)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from breitband.settings import PROJECT_ROOT
from tests.support.waiting import wait_for


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def running_app(port: int, log: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """uvicorn with ``breitband.app:create_app`` on 127.0.0.1:``port`` (one process), this process's environment
    plus BREITBAND_PUBLIC_BASE_URL and ``env``; output to ``log``. Yields the base URL once /healthz answers; stops
    the server afterwards."""
    base = f"http://127.0.0.1:{port}"
    log.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "BREITBAND_PUBLIC_BASE_URL": base, **(env or {})}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "breitband.app:create_app", "--factory",
                                 "--host", "127.0.0.1", "--port", str(port)], env=environment, cwd=PROJECT_ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: proc.poll() is not None or _healthy(base), timeout=30,
                     what=f"uvicorn at {base} (log: {log})")
            if proc.poll() is not None:
                raise AssertionError(f"uvicorn exited with {proc.returncode} (log: {log})")
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
