"""The `breitband` command line as a user runs it: a subprocess with the tests' environment (database, broker),
from the project root. Data it should see must be committed (a subprocess cannot see a test's transaction)."""

from __future__ import annotations

import os
import subprocess
import sys

from breitband.settings import PROJECT_ROOT


def breitband_cli(*args: str, stdin: str = "", check: bool = False) -> subprocess.CompletedProcess:
    """Run ``breitband ARGS`` with ``stdin`` as its input (empty by default: nothing waits for a terminal); with
    ``check`` a non-zero exit fails with its stderr."""
    proc = subprocess.run([sys.executable, "-m", "breitband.cli", *args], input=stdin, capture_output=True,
                          text=True, env=os.environ.copy(), cwd=PROJECT_ROOT, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc
