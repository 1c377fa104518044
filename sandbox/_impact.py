"""Test impact selection: which test files can a change reach through imports.

Built on `ruff analyze graph` (docs/architecture.md, "Facts about the tools"). The
promise is one-sided: a test left out must be one the change cannot affect, so
every doubt ends in `None` ("run the full suite") or in selecting more.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import posixpath
import re
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import structlog

from ._process import no_git_env, run
from ._text import parse_python

STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

log = structlog.get_logger("fixbot")

# `--min-dots 0`: the default (2) misses `import_module("pkg.lazy")`.
# `--type-checking-imports`: annotations can be resolved at run time (pydantic,
# typing.get_type_hints), so a TYPE_CHECKING import is a real edge; the flag also
# overrides a repo's `[tool.ruff.analyze]` that turns them off.
# Direction is `dependencies` and we invert it: its keys are exactly the files ruff
# analysed, while `dependents` also lists files ruff only saw as import targets
# (excluded ones), whose own imports it never read.
_GRAPH_ARGS = (
    "analyze",
    "graph",
    "--direction",
    "dependencies",
    "--detect-string-imports",
    "--min-dots",
    "0",
    "--type-checking-imports",
)
_UNPARSED = re.compile(r"Failed to generate import map for (.+?\.(?:pyi?|ipynb)): ")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Folders no test run goes into (ruff's default excludes and pytest's norecursedirs).
_SKIP_DIRS = frozenset(
    {"__pycache__", "__pypackages__", "_build", "buck-out", "build", "dist", "node_modules"}
    | {"site-packages", "venv"}
)


def is_test_file(path: str) -> bool:
    """pytest's default `python_files`: test_*.py and *_test.py."""
    name = posixpath.basename(path)
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def is_conftest(path: str) -> bool:
    """A conftest.py at any depth."""
    return posixpath.basename(path) == "conftest.py"


@dataclass(frozen=True, slots=True)
class ImpactMap:
    """The reverse import graph of a tree, and the tests in it."""

    # repo-relative POSIX file -> files that import it directly, plus the implicit
    # edges to ancestor __init__.py files. Every analysed file is a key.
    dependents: dict[str, frozenset[str]]
    tests: frozenset[str]
    conftests: frozenset[str]
    # Files whose own imports are unknown (ruff could not parse them, or its config
    # excludes them): they may import anything, so every change is taken to reach them.
    opaque: frozenset[str] = frozenset()
    # Globs (`*` crosses `/`; a trailing `/` means the whole folder) whose change
    # always means the full suite, e.g. settings read through files, not imports.
    always_full: tuple[str, ...] = ()
    # Set when the graph could not be built; then every answer is "run everything".
    blind: str | None = None

    def tests_for(self, changed: Iterable[str]) -> frozenset[str] | None:
        """Test files a change to `changed` can reach; None means run the full suite.

        May name files pytest does not collect (an opaque test under a folder outside
        `testpaths`): intersect with the files the baseline collected.
        """
        if self.blind is not None:
            return None
        seeds = {posixpath.normpath(p) for p in changed}
        if not seeds:
            return frozenset()
        for path in seeds:
            if (
                not path.endswith(".py")
                or is_conftest(path)  # pytest loads it for a whole folder, fixtures and hooks
                or path not in self.dependents
                or path in self.opaque
                or self._always_full(path)
            ):
                return None
        selected: set[str] = set()
        seen = seeds | self.opaque
        queue = deque(seen)
        while queue:
            path = queue.popleft()
            if path in self.tests:
                selected.add(path)
            if path in self.conftests:
                selected |= self._tests_under(posixpath.dirname(path))
            for parent in self.dependents.get(path, ()):
                if parent not in seen:
                    seen.add(parent)
                    queue.append(parent)
        return frozenset(selected)

    def _always_full(self, path: str) -> bool:
        return any(
            fnmatch.fnmatchcase(path, pat) or fnmatch.fnmatchcase(path, pat.rstrip("/") + "/*")
            for pat in self.always_full
        )

    def _tests_under(self, folder: str) -> set[str]:
        if not folder:
            return set(self.tests)
        prefix = folder + "/"
        return {t for t in self.tests if t.startswith(prefix)}


async def build_impact_map(
    root: Path,
    ruff_executable: str,
    *,
    always_full: Iterable[str] = (),
    timeout: float = 300.0,
) -> ImpactMap:
    """Build the impact map of the whole tree at `root`; never raises on a ruff failure."""
    full = tuple(always_full)
    imports, stderr = await _run_graph(root, ruff_executable, timeout)
    if isinstance(imports, str):
        log.warning("impact.unavailable", reason=imports)
        return ImpactMap({}, frozenset(), frozenset(), always_full=full, blind=imports)
    unparsed = {
        rel
        for match in _UNPARSED.finditer(stderr)
        if (rel := _relative(match.group(1), root)) is not None
    }
    # Walk the disk for tests and conftests ruff never analysed (excluded by its config):
    # pytest still runs them, and what they import is unknown.
    on_disk = await anyio.to_thread.run_sync(_walk_pytest_files, root)
    return _assemble(imports, unparsed, on_disk, full, lambda p: _stdlib_only(root / p))


def _stdlib_only(path: Path) -> bool:
    """Whether a file ruff did not analyse imports nothing but the standard library.

    Such a file (a `_version.py` an install generated, git-ignored) cannot reach
    a changed file, so it need not make every test that imports it run.
    """
    try:
        source = path.read_bytes()
    except OSError:
        return False
    if (tree := parse_python(source)) is None:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level or not node.module:
                return False
            names = [node.module]
        else:
            continue
        if any(n.partition(".")[0] not in STDLIB for n in names):
            return False
    return True


async def _run_graph(
    root: Path, ruff_executable: str, timeout: float
) -> tuple[dict[str, list[str]] | str, str]:
    """ruff's import map and its stderr, or why there is none (a str) and stderr."""
    try:
        # The whole tree, never explicit files: explicit files limit the keys.
        done = await run(
            [ruff_executable, *_GRAPH_ARGS], cwd=root, env=no_git_env(), timeout=timeout
        )
    except OSError as exc:  # no such executable, or no such root
        return f"ruff analyze graph could not start: {exc}", ""
    stderr = _ANSI.sub("", done.stderr.decode(errors="replace"))
    if done.timed_out:
        return f"ruff analyze graph timed out after {timeout:g}s", stderr
    if done.returncode != 0:
        return f"ruff analyze graph exited {done.returncode}: {stderr.strip()[-500:]}", stderr
    try:
        return _parse(done.stdout), stderr
    except ValueError as exc:
        return f"ruff analyze graph printed no usable map: {exc}", stderr


def _parse(stdout: bytes) -> dict[str, list[str]]:
    data = json.loads(stdout)  # JSONDecodeError is a ValueError
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in data.values()
    ):
        msg = "not an object of file lists"
        raise ValueError(msg)
    return data


def _assemble(
    imports: dict[str, list[str]],
    unparsed: set[str],
    on_disk: set[str],
    always_full: tuple[str, ...],
    is_leaf: Callable[[str], bool] = lambda _: False,
) -> ImpactMap:
    # Paths are relative to the cwd (the root), or absolute when outside it: those can
    # never be a repo-relative changed file, so they are dropped.
    analysed = {k for k in imports if not posixpath.isabs(k)}
    reverse: dict[str, set[str]] = {k: set() for k in analysed}
    for source in analysed:
        for target in imports[source]:
            if not posixpath.isabs(target):
                reverse.setdefault(target, set()).add(source)
    # Python runs every ancestor package's __init__ before the module itself, and
    # ruff records `import pkg.util` as an edge to pkg/util.py only.
    # (String ops, not PurePosixPath: this loop is most of the cost on large trees.)
    for module in list(reverse):
        folder = module.rpartition("/")[0]
        while True:
            init = f"{folder}/__init__.py" if folder else "__init__.py"
            if init != module and init in reverse:
                reverse[init].add(module)
            if not folder:
                break
            folder = folder.rpartition("/")[0]
    # Imported but never analysed (an excluded file ruff resolved an import to).
    targets_only = {
        p for p in reverse if p not in analysed and p.endswith((".py", ".pyi")) and not is_leaf(p)
    }
    unseen = on_disk - analysed - targets_only
    known = reverse.keys() | unseen
    return ImpactMap(
        dependents={k: frozenset(v) for k, v in reverse.items()},
        tests=frozenset(p for p in known if is_test_file(p)),
        conftests=frozenset(p for p in known if is_conftest(p)),
        opaque=frozenset(unparsed | targets_only | unseen),
        always_full=always_full,
    )


def _relative(path: str, root: Path) -> str | None:
    """A path from a ruff message as repo-relative POSIX, or None when outside."""
    given = Path(path)
    if not given.is_absolute():
        return given.as_posix()
    # The child's cwd is the resolved root, so ruff's absolute paths are under it.
    for base in (root.resolve(), root.absolute()):
        try:
            return given.relative_to(base).as_posix()
        except ValueError:
            continue
    return None


def _walk_pytest_files(root: Path) -> set[str]:
    """Test files and conftests on disk, outside hidden folders, venvs and build output."""
    found: set[str] = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".")
            and d not in _SKIP_DIRS
            and not d.endswith((".egg-info", ".egg"))
            and not Path(folder, d, "pyvenv.cfg").exists()
        ]
        rel = Path(folder).relative_to(root).as_posix()
        for name in files:
            if is_test_file(name) or is_conftest(name):
                found.add(name if rel == "." else f"{rel}/{name}")
    return found
