#!/usr/bin/env python3
"""Check the import structure of the project's Python packages; exit 1 on a violation.

Rules (CONTRIBUTING.md, "Layers"):
1. No import cycle between modules, counting every import of a project module wherever it is written.
2. Dependencies point one way. The layers, from the bottom:
      shell        breitband (everything but the entry points below)
      domains      geo, notifications      (each uses the shell and itself only)
      permits      permits, accounts       (each uses the shell, geo and notifications, not the other)
      entry points breitband.app, breitband.cli, breitband.demo, breitband.main, breitband.worker, migrations
                   (put the application together: may use everything)
   An import that reaches a higher layer, or a sideways one (geo <-> notifications, permits <->
   accounts), is an error.
3. No import of a project module inside a function or class body. A deferred import of a heavy or optional
   *third-party* library is allowed when its line carries a comment that says why (`# deferred: ...`).

`--report` prints the figures used in notes: modules per package, imports inside functions, the longest functions.
Only the standard library is used, so the script runs before any dependency is installed.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("breitband", "geo", "notifications", "permits", "accounts", "migrations")
ENTRY_POINTS = {"breitband.app", "breitband.cli", "breitband.demo", "breitband.main", "breitband.worker"}
LAYER = {"breitband": 0, "geo": 1, "notifications": 1, "permits": 2, "accounts": 2, "migrations": 3}
ENTRY_LAYER = 3


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        if not (ROOT / package).is_dir():
            continue
        for path in sorted((ROOT / package).rglob("*.py")):
            modules[module_name(path)] = path
    return modules


def layer_of(module: str) -> tuple[int, str]:
    """(layer number, group name) of a module."""
    if module in ENTRY_POINTS or any(module.startswith(e + ".") for e in ENTRY_POINTS):
        return ENTRY_LAYER, "entry points"
    top = module.split(".")[0]
    return LAYER[top], top


class Imports(ast.NodeVisitor):
    """Every import of a module, with its line, whether it is inside a function or class, and its comment."""

    def __init__(self, module: str, is_package: bool, lines: list[str]):
        self.module, self.is_package, self.lines = module, is_package, lines
        self.found: list[tuple[str, int, bool]] = []   # (imported name, line, nested)
        self.depth = 0

    def _nested(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = _nested

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, node.lineno, self.depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.module.split(".")
            if not self.is_package:
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        for alias in node.names:
            self.found.append((f"{prefix}.{alias.name}" if alias.name != "*" else prefix, node.lineno,
                               self.depth > 0))


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported name refers to (`a.b.c` may be module a.b's attribute c)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def analyse(modules: dict[str, Path]):
    graph: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], int] = {}
    nested_project, nested_third_party = [], []
    for module, path in modules.items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        visitor = Imports(module, path.name == "__init__.py", lines)
        visitor.visit(ast.parse(text, filename=str(path)))
        for name, line, nested in visitor.found:
            target = resolve(name, modules)
            if target is not None and target != module:
                # importing `a.b.c` also runs the package a and a.b: only the module itself is an edge here
                graph[module].add(target)
                where.setdefault((module, target), line)
            if nested:
                comment = lines[line - 1].partition("#")[2].strip()
                entry = (module, line, name, comment)
                (nested_project if target is not None else nested_third_party).append(entry)
    return graph, where, nested_project, nested_third_party


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, result, counter = {}, {}, set(), [], [], [0]
    nodes = sorted(set(graph) | {t for ts in graph.values() for t in ts})
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        result.append(sorted(component))
    return result


def violations(modules: dict[str, Path]) -> list[str]:
    graph, where, nested_project, nested_third_party = analyse(modules)
    problems = []
    for component in cycles(graph):
        members = set(component)
        edges = [f"{a} -> {b} (line {where[a, b]})" for a in component for b in sorted(graph[a]) if b in members]
        problems.append("import cycle between " + ", ".join(component) + ":\n      " + "\n      ".join(edges))
    for module, targets in sorted(graph.items()):
        mine, my_group = layer_of(module)
        for target in sorted(targets):
            theirs, their_group = layer_of(target)
            if theirs > mine or (theirs == mine and their_group != my_group):
                problems.append(f"{modules[module].relative_to(ROOT)}:{where[module, target]}: {module} ({my_group}) "
                                f"imports {target} ({their_group}), which is {'above' if theirs > mine else 'beside'}"
                                " it")
    for module, line, name, _ in nested_project:
        problems.append(f"{modules[module].relative_to(ROOT)}:{line}: {name} is imported inside a function or class;"
                        " import project modules at the top of the module")
    for module, line, name, comment in nested_third_party:
        if not comment.startswith("deferred:"):
            problems.append(f"{modules[module].relative_to(ROOT)}:{line}: {name} is imported inside a function "
                            "without a `# deferred: <why>` comment")
    return problems


def report(modules: dict[str, Path]) -> None:
    graph, _, nested_project, nested_third_party = analyse(modules)
    per_package = defaultdict(int)
    for module in modules:
        parts = module.split(".")
        per_package[".".join(parts[:2]) if len(parts) > 2 else parts[0]] += 1
    print("modules per package:", ", ".join(f"{p} {n}" for p, n in sorted(per_package.items())))
    print(f"modules: {len(modules)}; import cycles: {len(cycles(graph))}; imports inside functions: "
          f"{len(nested_project)} of project modules, {len(nested_third_party)} of third-party libraries")
    for module, line, name, comment in nested_third_party:
        print(f"  {modules[module].relative_to(ROOT)}:{line}: {name}  # {comment}")
    functions = []
    for path in modules.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(ROOT)}:{node.lineno} "
                                                                    f"{node.name}"))
    print("longest functions:", "; ".join(f"{where} ({n} lines)" for n, where in sorted(functions)[::-1][:10]))


def main(argv: list[str] | None = None) -> int:
    global ROOT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="print the structure's figures as well")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to check (default: this one)")
    args = parser.parse_args(argv)
    ROOT = args.root.resolve()
    modules = discover()
    if args.report:
        report(modules)
    problems = violations(modules)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"check_imports: {len(modules)} modules, {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
