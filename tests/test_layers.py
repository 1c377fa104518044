"""The layers hold: imports read with `ast`, from the source of the three packages.

- `sandbox` imports neither `agents` nor `orchestrator`; `agents` never imports
  `orchestrator` (docs/architecture.md, "Layers").
- A package reaches another only through its public surface (its `__init__`),
  never into one of its private `_modules`.
- Inside a package, modules import each other without a circle, also counting
  the imports made only for type checking or inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("sandbox", "agents", "orchestrator")
BELOW = {"sandbox": set(), "agents": {"sandbox"}, "orchestrator": {"sandbox", "agents"}}


def imports(path: Path, package: str) -> list[tuple[str, int]]:
    """Every module `path` imports, as a dotted name under `fixbot.` where it is fixbot's.

    `package` is the dotted package the file is in, below `fixbot.` (e.g. `sandbox.proof`).
    """
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = f"fixbot.{package}".split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
                names = [f"{module}.{a.name}" for a in node.names]
                out += [(module, node.lineno)] + [(n, node.lineno) for n in names]
            elif node.module:
                out.append((node.module, node.lineno))
                out += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
    return out


def layer_problems(root: Path) -> list[str]:
    """What breaks the layers under `root` (a checkout), one line each."""
    problems = []
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            folder = ".".join(path.parent.relative_to(root).parts)  # e.g. sandbox.proof
            me = f"fixbot.{folder}.{path.stem}"
            graph[me] = set()
            for name, line in imports(path, folder):
                parts = name.split(".")
                if parts[0] in PACKAGES:
                    problems.append(f"{path.name}:{line}: imports {name} outside `fixbot.`")
                    continue
                if parts[0] != "fixbot" or len(parts) < 2:
                    continue
                other = parts[1]
                if other in PACKAGES and other != package and other not in BELOW[package]:
                    problems.append(f"{package}/{path.name}:{line}: upward import of {name}")
                if (
                    other in PACKAGES
                    and other != package
                    and any(p.startswith("_") for p in parts[2:3])
                ):
                    problems.append(
                        f"{package}/{path.name}:{line}: reaches into private {'.'.join(parts[:3])}"
                    )
                # A module of the same folder (or a subfolder's): an edge for the circles.
                inner = parts[1:]
                while inner and not (root.joinpath(*inner[:-1]) / f"{inner[-1]}.py").exists():
                    inner = inner[:-1]
                if other == package and len(inner) > 1:
                    graph[me].add("fixbot." + ".".join(inner))
    problems += [f"import circle: {' -> '.join(c)}" for c in _circles(graph)]
    return problems


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt == node:
                continue
            if state.get(nxt) == "open":
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_layers_hold() -> None:
    """No upward import, no reach into another package's private module, no circle."""
    assert layer_problems(ROOT) == []


def test_a_planted_violation_is_caught(tmp_path: Path) -> None:
    """Each rule fails on a module that breaks it (so the test above can fail)."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "sandbox" / "_a.py").write_text("from fixbot.agents import RuffAgent\n")
    (tmp_path / "agents" / "_b.py").write_text("from fixbot.sandbox._ruff import decode\n")
    (tmp_path / "orchestrator" / "_c.py").write_text("from ._d import x\n")
    (tmp_path / "orchestrator" / "_d.py").write_text("from ._c import y\n")
    (tmp_path / "orchestrator" / "_e.py").write_text("import sandbox\n")
    problems = layer_problems(tmp_path)
    assert any("upward import of fixbot.agents" in p for p in problems)
    assert any("reaches into private fixbot.sandbox._ruff" in p for p in problems)
    assert any(p.startswith("import circle:") for p in problems)
    assert any("outside `fixbot.`" in p for p in problems)
