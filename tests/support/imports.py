"""Import every module of the project first, each in a fresh interpreter of its own: a module that only imports when
another one was imported before it (an import cycle that happens to resolve in one order, a name that exists only
after some other import) fails here. Run by tests/test_structure.py as ``python -m tests.support.imports``; prints
one line per module that fails, with its traceback, and exits 1 if any does.

A fresh interpreter per module is a fork of one that has loaded the third-party libraries the project uses (found by
importing the whole project once in a child), so each child spends its time on the project's own imports only; two
children run at a time. Also imported in one interpreter each: all modules in alphabetical order and in reverse.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("breitband", "geo", "notifications", "permits", "accounts")
PARALLEL = 2


def project_modules() -> list[str]:
    modules = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules.append(".".join(parts))
    return modules


def _child(modules: list[str], log: Path) -> None:
    """In a forked child: import ``modules`` in this order, output to ``log``; never returns."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    status = 0
    try:
        for module in modules:
            importlib.import_module(module)
    except BaseException:
        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def third_party_modules(modules: list[str]) -> list[str]:
    """The modules outside the project that importing all of ``modules`` loads (in a child, so this process stays
    clean of the project)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        for module in modules:
            try:
                importlib.import_module(module)
            except BaseException:
                pass                                    # reported by the runs below
        names = sorted(n for n in sys.modules if n.split(".")[0] not in PACKAGES)
        os.write(write, "\n".join(names).encode())
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 1 << 16):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    return data.decode().split("\n")


def main() -> int:
    modules = project_modules()
    for name in third_party_modules(modules):
        try:
            importlib.import_module(name)
        except BaseException:
            pass                                        # a submodule that only imports in some context: not ours
    leaked = sorted(n for n in sys.modules if n.split(".")[0] in PACKAGES)
    if leaked:                                          # a third-party module imported a project module
        print(f"the preloaded libraries imported project modules: {leaked}")
        return 1
    runs = [(f"{m} first", [m]) for m in modules]
    runs += [("all in alphabetical order", modules), ("all in reverse order", modules[::-1])]
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        running: dict[int, tuple[str, Path]] = {}

        def reap() -> None:
            pid, status = os.wait()
            what, log = running.pop(pid)
            if status != 0:
                failed.append((what, log.read_text(errors="replace")))

        for n, (what, order) in enumerate(runs):
            if len(running) >= PARALLEL:
                reap()
            log = Path(tmp) / f"{n}.log"
            pid = os.fork()
            if pid == 0:
                _child(order, log)
            running[pid] = (what, log)
        while running:
            reap()
    for what, output in failed:
        print(f"--- import failed: {what}\n{output}")
    print(f"{len(runs)} imports in fresh interpreters ({len(modules)} modules), {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
