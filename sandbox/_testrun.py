"""Find the repo's test command and run it in a worktree, per test.

Outcomes come from pytest's JUnit XML, never the exit code alone: a patch is
judged test by test against base (docs/architecture.md, "What proven means", step 5).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import sys
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

import anyio

from ._errors import TestCommandError
from ._isolation import Isolation
from ._process import repo_env, run
from ._types import TestResults, TestStatus

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "TestCommand",
    "find_python",
    "parse_junit",
    "resolve_test_command",
    "run_tests",
]

OUTPUT_TAIL = 4000
NO_TESTS_COLLECTED = 5  # pytest's exit code
# Lower is worse: one test can appear twice (a failed call, then a teardown error).
_RANK: dict[TestStatus, int] = {
    "error": 0,
    "failed": 1,
    "xpassed": 2,
    "passed": 3,
    "xfailed": 4,
    "skipped": 5,
}
_BARE_PYTHON = re.compile(r"python(3(\.\d+)?)?")

# Said in a run's output when it was stopped: its outcomes are not its verdict.
TIMED_OUT = "[fixbot] the tests timed out"


@dataclass(frozen=True, slots=True)
class TestCommand:
    """How to run the repo's tests, and where that came from."""

    __test__ = False  # not a pytest test class

    argv: tuple[str, ...]
    source: Literal["flag", "config", "detected"]
    python: str
    is_pytest: bool
    display: str


def find_python(repo: Path) -> str:
    """The interpreter that runs the repo's code: its venv, else python3 on PATH."""
    root = repo.resolve()
    for venv in (".venv", "venv"):
        # Not resolved: a venv's python is a symlink, and only its unresolved
        # path makes Python find the venv's pyvenv.cfg.
        candidate = root / venv / "bin" / "python"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    for entry in os.get_exec_path():
        # A relative entry ("." or "") would pick up whatever the worktree holds.
        if not Path(entry).is_absolute():
            continue
        candidate = Path(entry) / "python3"
        if candidate.is_file() and os.access(candidate, os.X_OK) and not _is_own(candidate):
            return str(candidate)
    raise TestCommandError(
        "no Python to run the repo's tests: create a .venv in the repo or put a python3 "
        "other than fixbot's own on PATH"
    )


def _is_own(candidate: Path) -> bool:
    """Whether `candidate` would run with fixbot's own packages."""
    if candidate.parent.resolve().is_relative_to(Path(sys.prefix).resolve()):
        return True
    # Inside a venv, the base interpreter it links to is a different environment
    # (it cannot see the venv's packages); outside one, it is fixbot's own.
    in_venv = sys.prefix != sys.base_prefix
    return not in_venv and candidate.resolve() == Path(sys.executable).resolve()


def resolve_test_command(
    repo: Path, configured: str | None, source: Literal["flag", "config"] = "flag"
) -> TestCommand | None:
    """The command that runs the repo's tests, or None for a lint-only proof."""
    if configured is None:
        if not _has_pytest_setup(repo):
            return None
        return _pytest(repo, find_python(repo), (), "detected")
    try:
        argv = shlex.split(configured)
    except ValueError as exc:
        raise TestCommandError(f"cannot parse the test command {configured!r}: {exc}") from None
    if not argv:
        return None  # the user asked for lint-only
    display = configured.strip()
    if argv[1:3] == ["-m", "pytest"] and "/" in argv[0]:
        # An interpreter the user named: a relative path means the user's checkout,
        # since a worktree holds no untracked venv.
        interpreter = Path(argv[0])
        argv[0] = str(interpreter if interpreter.is_absolute() else repo.resolve() / interpreter)
        return TestCommand(tuple(argv), source, argv[0], is_pytest=True, display=display)
    python = find_python(repo)
    if argv[0] in {"pytest", "py.test"}:
        skip = 1
    elif argv[1:3] == ["-m", "pytest"] and _BARE_PYTHON.fullmatch(argv[0]):
        skip = 3  # a bare `python` on PATH could be fixbot's own: the repo's runs it
    else:
        return TestCommand(tuple(argv), source, python, is_pytest=False, display=display)
    return _pytest(repo, python, argv[skip:], source)


def _pytest(
    repo: Path, python: str, args: Sequence[str], source: Literal["flag", "config", "detected"]
) -> TestCommand:
    shown = Path(python)
    # Named as the repo would name it: its venv relative to its root, else the bare
    # name found on PATH. A machine's path in a commit message breaks determinism.
    shown = (
        shown.relative_to(repo.resolve())
        if shown.is_relative_to(repo.resolve())
        else Path(shown.name)
    )
    display = shlex.join([str(shown), "-m", "pytest", *args])
    argv = (python, "-m", "pytest", *args)
    return TestCommand(argv, source, python, is_pytest=True, display=display)


def _has_pytest_setup(repo: Path) -> bool:
    """pytest configuration, or a tests folder, at the repo's root."""
    if any((repo / name).is_dir() for name in ("tests", "test")):
        return True
    if any((repo / name).is_file() for name in ("pytest.ini", ".pytest.ini", "pytest.toml")):
        return True
    pyproject = repo / "pyproject.toml"
    if pyproject.is_file():
        try:
            # [tool.pytest.ini_options], or pytest 9's native [tool.pytest].
            if "pytest" in tomllib.loads(pyproject.read_text("utf-8")).get("tool", {}):
                return True
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            pass  # ruff reports a broken pyproject.toml; detection just skips it
    for name, section in (("setup.cfg", "tool:pytest"), ("tox.ini", "pytest")):
        path = repo / name
        # A regex, not configparser: interpolation and duplicate keys make real
        # files fail to parse, and only the header matters here.
        header = re.compile(rf"^\s*\[{re.escape(section)}\]\s*$", re.MULTILINE)
        if path.is_file() and header.search(path.read_text("utf-8", errors="replace")):
            return True
    return False


# The kernel refuses a command line past ARG_MAX (2 MiB here, less the environment).
_MOST_NODE_BYTES = 256 * 1024


def _on_command_line(node_ids: Sequence[str]) -> list[str]:
    """Node ids as pytest's arguments: by their files where the ids would be too long
    (30,000 failing tests rerun at base), which runs more of them, never fewer."""
    if sum(len(n.encode()) + 1 for n in node_ids) > _MOST_NODE_BYTES:
        node_ids = sorted({n.split("::", 1)[0] for n in node_ids})
    # pytest reads an argument starting with a dash as an option even after a "--" (a
    # test folder named `-x`); "./" keeps it a path.
    return [f"./{node}" if node.startswith("-") else node for node in node_ids]


async def run_tests(
    command: TestCommand,
    worktree: Path,
    *,
    node_ids: Sequence[str] | None = None,
    timeout: float = 900,
    isolation: Isolation | None = None,
) -> TestResults:
    """Run the tests in `worktree` and report each test's outcome.

    `node_ids` selects tests when the command is pytest (an empty selection
    runs nothing); other commands always run whole. With `isolation`, they run
    fenced in, with a private temp folder of their own.
    """
    worktree = Path(await anyio.Path(worktree).resolve())
    if command.is_pytest and node_ids is not None and not node_ids:
        return TestResults(outcomes={}, returncode=0)
    isolation = isolation or Isolation()
    # Outside the worktree: nothing the run leaves may end up in a patch or commit.
    with isolation.private_tmp() as tmp:
        junit = tmp / "junit.xml"
        # xunit1 keeps the `file` attribute that node ids are rebuilt from.
        options = [f"--junitxml={junit}", "-o", "junit_family=xunit1", "-p", "no:cacheprovider"]
        # Python's own tracebacks: pytest's long ones took 0.1 s a failing test to write
        # (dateutil's 40 tests failing at base: 2.7 s of a 6.3 s suite).
        options.append("--tb=native")
        env = _test_env(command.python, worktree) | {"TMPDIR": str(tmp)}
        argv = list(command.argv)
        if command.is_pytest:
            # On the command line, after the user's own options, so that ours win
            # (the last --junitxml counts); before a "--", which ends options.
            at = argv.index("--") if "--" in argv else len(argv)
            argv[at:at] = options
            argv += _on_command_line(node_ids or ())
        else:
            # Reaches a pytest that `make test` or tox starts; for pytest itself the
            # command line is better, as the variable leaks into nested pytest runs.
            env["PYTEST_ADDOPTS"] = shlex.join(options)
        argv = isolation.command(argv, worktree, tmp)
        started = time.monotonic()
        try:
            done = await run(argv, cwd=worktree, env=env, timeout=timeout, keep=KEEP_OUTPUT)
        except (FileNotFoundError, PermissionError) as exc:
            raise TestCommandError(
                f"cannot start the test command `{command.display}`: {exc.strerror}"
            ) from None
        seconds = time.monotonic() - started
        xml = await _read_junit(junit)

    output = done.output
    if done.timed_out:
        output += f"\n{TIMED_OUT} after {timeout:g} s"
    limit = limit_hit(done.returncode, output)
    if limit:
        output += f"\n[fixbot] the tests hit their {limit} limit"
    outcomes: dict[str, TestStatus] | None = None
    failures: dict[str, str] = {}
    if xml is not None:
        try:
            outcomes, failures = parse_junit(xml)
            # The worktree's own files by their path in the repo (`tests/test_a.py`).
            inside = f'"{worktree}/'
            failures = {test: text.replace(inside, '"') for test, text in failures.items()}
        except ET.ParseError as exc:
            output += f"\n[fixbot] unreadable JUnit XML: {exc}"
    no_report = done.timed_out or done.returncode == NO_TESTS_COLLECTED
    if outcomes is None and command.is_pytest and no_report:
        # Nothing collected, or killed before pytest wrote its report: every test
        # is then missing, which the caller judges; none is "failed".
        outcomes = {}
    per_test = outcomes is not None
    if outcomes is None:
        outcomes = {command.display: "passed" if done.returncode == 0 else "failed"}
    return TestResults(
        outcomes=outcomes,
        returncode=done.returncode,
        output=output[-OUTPUT_TAIL:],
        seconds=seconds,
        per_test=per_test,
        limit=limit,
        failures=failures,
    )


# What is kept of a test run's output (its tail), and the largest JUnit XML read.
KEEP_OUTPUT = 1024 * 1024
MAX_JUNIT = 32 * 1024 * 1024

# Killed by the kernel for going past an rlimit: as a signal, or as 128 + the signal
# when a launcher (bubblewrap, a shell) reports its child's death.
_LIMIT_SIGNALS = {signal.SIGXCPU: "CPU time", signal.SIGXFSZ: "file size"}


async def _read_junit(junit: Path) -> bytes | None:
    """The JUnit XML the untrusted run wrote: a regular file of sane size, or nothing."""
    report = anyio.Path(junit)
    if await report.is_symlink() or not await report.is_file():
        return None
    if (await report.stat()).st_size > MAX_JUNIT:
        return None
    return await report.read_bytes()


def limit_hit(returncode: int, output: str) -> str:
    """The resource limit a test run went past ("" for none)."""
    for sig, name in _LIMIT_SIGNALS.items():
        if returncode in {-sig, 128 + sig}:
            return name
    if "MemoryError" in output:
        return "memory"
    return ""


def _test_env(python: str, worktree: Path) -> dict[str, str]:
    """repo_env, importing the worktree's code and running in the repo's venv."""
    # PYTHONPATH comes before site-packages, so before the .pth entries and the
    # setuptools finders of an editable install from the user's checkout.
    paths = [str(path) for path in (worktree / "src", worktree) if path.is_dir()]
    extra = {"PYTHONPATH": os.pathsep.join(paths)}
    venv = Path(python).parent.parent
    if (venv / "pyvenv.cfg").is_file():
        # As `activate` would: tools the tests start (console scripts) come from the venv.
        extra["VIRTUAL_ENV"] = str(venv)
        extra["PATH"] = os.pathsep.join([str(venv / "bin"), repo_env()["PATH"]])
    return repo_env(extra)


# What is kept of failure reports: enough to name the code a failing test went
# through, bounded so that a run with thousands of failures stays small in the cache.
FAILURE_REPORT_CHARS = 4000
MAX_FAILURE_REPORTS = 200


class Junit(NamedTuple):
    """What pytest's xunit1 JUnit XML says, keyed by node id."""

    outcomes: dict[str, TestStatus]
    failures: dict[str, str]  # a failing test's message and the tail of its traceback


def parse_junit(xml: bytes) -> Junit:
    """Per-test outcomes, and the reports of the tests that failed, in one pass."""
    cases, modules = _cases(xml)
    outcomes: dict[str, TestStatus] = {}
    failures: dict[str, str] = {}
    for case in cases:
        node = _node_id(case.get("classname", ""), case.get("name", ""), case.get("file"), modules)
        status = _status(case)
        if node not in outcomes or _RANK[status] < _RANK[outcomes[node]]:
            outcomes[node] = status
        for child in case:
            if child.tag in {"failure", "error"} and len(failures) < MAX_FAILURE_REPORTS:
                text = f"{child.get('message', '')}\n{_from_the_test(child.text or '')}"
                failures[node] = (failures.get(node, "") + text)[-FAILURE_REPORT_CHARS:]
    return Junit(outcomes, failures)


# A frame of a native traceback (`--tb=native`, Python's own format): its file and function.
NATIVE_FRAME = re.compile(r'^  File "([^"]*)", line (\d+), in (\S+)$')


def _from_the_test(report: str) -> str:
    """A native traceback without the frames of pytest and pluggy that lead to the test
    (or fixture), as pytest's long report shows it: they name pytest's own functions,
    and the report is kept by its tail. Only the leading ones go, in each traceback of
    a chain: a frame of pytest's after the test's (`pytest.raises`, `pytest.fail`) is
    where the test failed, and stays."""
    out: list[str] = []
    leading = False  # within the first frames of a traceback, all pytest's or pluggy's
    skipping = False  # within such a frame's lines
    for line in report.splitlines():
        if line.startswith("Traceback ("):
            leading, skipping = True, False
        elif m := NATIVE_FRAME.match(line):
            skipping = leading and _is_pytests(m[1])
            leading = skipping
        elif not line.startswith("    "):
            leading = skipping = False  # the exception, or what chains two tracebacks
        if not skipping:
            out.append(line)
    return "\n".join(out)


def _is_pytests(path: str) -> bool:
    return "/_pytest/" in path or "/pluggy/" in path


def _cases(xml: bytes) -> tuple[list[ET.Element], dict[str, str]]:
    """The test cases, and the file each test module lives in (module -> file)."""
    # The file comes from our own pytest run; expat (>= 2.4.1, bundled since 3.11)
    # refuses entity expansion attacks and ElementTree loads no external entities.
    cases = list(ET.fromstring(xml).iter("testcase"))  # noqa: S314
    # Learn where each test module lives, for tests whose `file` is elsewhere.
    modules: dict[str, str] = {}
    for case in cases:
        file, classname = case.get("file"), case.get("classname", "")
        if file and _in_module(classname, _module_of(file)):
            modules[_module_of(file)] = file
    return cases, modules


def _module_of(file: str) -> str:
    # pytest's mangling of a node id's path into the classname, in reverse.
    return re.sub(r"\.py$", "", file.replace("/", "."))


def _in_module(classname: str, module: str) -> bool:
    return classname == module or classname.startswith(module + ".")


def _node_id(classname: str, name: str, file: str | None, modules: dict[str, str]) -> str:
    if file:
        module = _module_of(file)
        if not classname and name == module:
            return file  # a collection error: the module itself
        if _in_module(classname, module):
            classes = classname[len(module) + 1 :].split(".") if classname != module else []
            return "::".join([file, *classes, name])
    # `file` names where the function is defined: another module for an inherited
    # test, so the test's own module comes from the classname.
    if not classname:
        return modules.get(name, name)
    parts = classname.split(".")
    for cut in range(len(parts), 0, -1):
        known = modules.get(".".join(parts[:cut]))
        if known:
            return "::".join([known, *parts[cut:], name])
    # Unknown module: test classes are capitalised (python_classes = Test*), modules rarely.
    cut = next((i for i, part in enumerate(parts) if part[:1].isupper()), len(parts))
    path = "/".join(parts[:cut]) + ".py" if cut else ""
    return "::".join([p for p in (path, *parts[cut:]) if p] + [name])


def _status(case: ET.Element) -> TestStatus:
    found: list[TestStatus] = []
    for child in case:
        if child.tag == "failure":
            found.append("failed")
        elif child.tag == "error":
            found.append("error")
        elif child.tag == "skipped":
            found.append("xfailed" if child.get("type") == "pytest.xfail" else "skipped")
    # A non-strict XPASS has no child at all: JUnit cannot tell it from a pass.
    return min(found, key=_RANK.__getitem__) if found else "passed"
