"""How a run narrows a file whose chain broke a test down to its culprit (real pytest)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.conftest import checkout_tests, fixbot, init_repo, report_of

if TYPE_CHECKING:
    from pathlib import Path

# Four unsafe fixes in four functions; only the E711 in `is_missing` changes what a
# test sees (`Anything() == None` is true, `Anything() is None` is not).
REPO = {
    "pyproject.toml": """\
[tool.ruff.lint]
select = ["E711", "E712", "RUF015", "C416"]
[tool.pytest.ini_options]
pythonpath = ["."]
""",
    "pkg/__init__.py": "",
    "pkg/m.py": """\
class Anything:
    def __eq__(self, other):
        return True


def is_missing(x):
    return x == None


def is_on(flag):
    return flag == True


def first(xs):
    return [x for x in xs][0]


def copied(xs):
    return [x for x in xs]
""",
    "tests/test_m.py": """\
from pkg import m


def test_is_missing():
    assert m.is_missing(m.Anything())


def test_others():
    assert m.is_on(True)
    assert m.first([3, 4]) == 3
    assert m.copied((1, 2)) == [1, 2]
""",
}


def test_the_function_a_failing_test_names_is_probed_first(tmp_path: Path) -> None:
    """The failing test's report names `is_missing`: its fix runs alone, the other three
    together beside it; the culprit is refused, the rest land, in two probe runs not four."""
    repo = init_repo(tmp_path / "r", REPO)
    done = fixbot("run", repo, "--agents", "ruff", "--branch", "lint")
    assert done.returncode == 0, done.stderr
    report = report_of(repo)
    (refused,) = [p for p in report["patches"] if p["status"] != "accepted"]
    assert refused["rules"] == ["E711"]
    assert refused["reason"] == "tests"
    assert report["violations_after"] == 1
    # The first chain, two reruns at base (not flaky), the two probes, the last chain.
    assert report["proof"]["test_runs"] == 6, report["proof"]
    assert checkout_tests(repo, "lint", tmp_path / "check").returncode == 0


# The failing test names `check`, whose E712 fix is harmless; the culprit is the E711 in
# `missing`, which `check` calls and no report line names.
MISLEADING = {
    **REPO,
    "pkg/m.py": """\
class Anything:
    def __eq__(self, other):
        return True


def check(x, strict=True):
    if strict == True:
        return missing(x)
    return False


def missing(x):
    return x == None


def first(xs):
    return [x for x in xs][0]
""",
    "tests/test_m.py": """\
from pkg import m


def test_check():
    assert m.check(m.Anything())


def test_first():
    assert m.first([3, 4]) == 3
""",
}


def test_a_wrong_clue_costs_a_round_never_a_verdict(tmp_path: Path) -> None:
    """The clue points at `check`: its fix passes alone, the others fail together, so each
    of those is tried alone next; only the E711 is refused, and the run ahead is dropped."""
    repo = init_repo(tmp_path / "r", MISLEADING)
    done = fixbot("run", repo, "--agents", "ruff", "--branch", "lint", "--log-format", "json")
    assert done.returncode == 0, done.stderr
    report = report_of(repo)
    refused = [p for p in report["patches"] if p["status"] != "accepted"]
    assert [(p["rules"], p["reason"]) for p in refused] == [(["E711"], "tests")]
    assert report["violations_after"] == 1
    assert '"tests.ahead"' in done.stderr  # the guess was made, and was wrong
    assert checkout_tests(repo, "lint", tmp_path / "check").returncode == 0
