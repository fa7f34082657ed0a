"""The structure issue 12 asks for, checked on every run: the import rules of scripts/check_imports.py (no cycle, no
upward or sideways import between packages, no project import inside a function), and every module of the project
importable on its own, whatever was imported before it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.xfail(strict=False, reason="until issue 12 merges: the other branches remove the cycles and imports "
                                        "inside functions scripts/check_imports.py reports")
def test_check_imports_finds_nothing():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_imports.py")], capture_output=True,
                          text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stdout


@pytest.mark.slow
def test_every_module_imports_first_in_a_fresh_interpreter():
    proc = subprocess.run([sys.executable, "-m", "tests.support.imports"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith(", 0 failed"), proc.stdout
