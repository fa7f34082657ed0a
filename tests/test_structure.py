"""The structure issue 12 asks for, checked on every run: the import rules of scripts/check_imports.py (no cycle, no
upward or sideways import between packages, no project import inside a function), and every module of the project
importable on its own, whatever was imported before it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def check_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "check_imports.py"), "--root", str(root)],
                          capture_output=True, text=True, timeout=120)


def test_check_imports_finds_nothing():
    proc = check_imports(ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.rstrip().endswith(", 0 problem(s)"), proc.stderr


def test_check_imports_fails_on_a_cycle_an_upward_import_and_an_import_inside_a_function(tmp_path):
    files = {
        "breitband/__init__.py": "",
        "breitband/settings.py": "import permits.models\n",                        # the shell reaches up
        "geo/__init__.py": "",
        "geo/a.py": "from geo import b\n",                                          # a cycle a -> b -> a
        "geo/b.py": "def f():\n    from geo import a\n    import json\n    return a, json\n",
        "notifications/__init__.py": "",
        "notifications/x.py": "import geo.a\n",                                      # sideways
        "permits/__init__.py": "",
        "permits/models.py": "import numpy\n\ndef g():\n    import shapely  # deferred: heavy\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    proc = check_imports(tmp_path)
    problems = proc.stderr.splitlines()
    assert proc.returncode == 1
    assert problems[-1] == "check_imports: 9 modules, 5 problem(s)"
    assert problems[0] == "import cycle between geo.a, geo.b:"
    assert ("breitband/settings.py:1: breitband.settings (breitband) imports permits.models (permits), which is "
            "above it") in problems
    assert "notifications/x.py:1: notifications.x (notifications) imports geo.a (geo), which is beside it" in problems
    assert ("geo/b.py:2: geo.a is imported inside a function or class; import project modules at the top of the "
            "module") in problems
    assert "geo/b.py:3: json is imported inside a function without a `# deferred: <why>` comment" in problems


@pytest.mark.slow
def test_every_module_imports_first_in_a_fresh_interpreter():
    proc = subprocess.run([sys.executable, "-m", "tests.support.imports"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith(", 0 failed"), proc.stdout
