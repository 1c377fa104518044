"""sandbox._judge: which tests got worse than at base, and what lint says against a change.

Lint findings come from the real ruff over real files in tmp_path.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from fixbot.sandbox._ruff import Ruff
from fixbot.sandbox._types import TestResults
from fixbot.sandbox.proof import _judge
from fixbot.sandbox.proof._judge import Baseline, entropy_bound, lint_problem

if TYPE_CHECKING:
    from pathlib import Path

    from fixbot.sandbox._types import TestStatus, Violation

pytestmark = pytest.mark.anyio

PATH = "pkg/mod.py"


def results(outcomes: dict[str, TestStatus]) -> TestResults:
    """A test run with these outcomes."""
    return TestResults(outcomes=outcomes, returncode=0 if "failed" not in outcomes.values() else 1)


BASE: dict[str, TestStatus] = {
    "tests/test_a.py::test_pass": "passed",
    "tests/test_a.py::test_fail": "failed",
    "tests/test_a.py::test_skip": "skipped",
    "tests/test_b.py::test_pass": "passed",
    "tests/test_b.py::TestX::test_error": "error",
    "tests/test_b.py::test_xfail": "xfailed",
    "tests/test_c.py::test_flaky": "passed",
}


@pytest.fixture
def baseline() -> Baseline:
    """The repo's tests at base, one of them flaky."""
    return Baseline(results(BASE), flaky={"tests/test_c.py::test_flaky"})


class TestTestFile:
    def test_file_of_node_id(self) -> None:
        """The part before the first '::'."""
        assert _judge.test_file("tests/test_b.py::TestX::test_error") == "tests/test_b.py"
        assert _judge.test_file("tests/test_a.py") == "tests/test_a.py"


class TestBaseline:
    def test_already_failing(self, baseline: Baseline) -> None:
        """Failed and errored tests at base are already failing; skips are not."""
        assert baseline.already_failing == {
            "tests/test_a.py::test_fail",
            "tests/test_b.py::TestX::test_error",
        }

    def test_test_files(self, baseline: Baseline) -> None:
        """The files the collected tests live in."""
        assert baseline.test_files == {"tests/test_a.py", "tests/test_b.py", "tests/test_c.py"}

    def test_lint_only_baseline(self) -> None:
        """Without tests there is nothing failing, no test file, and no problem."""
        empty = Baseline(None)
        assert empty.already_failing == set()
        assert empty.test_files == set()
        assert empty.problems(results({"tests/t.py::x": "failed"})) == {}

    def test_same_outcomes_no_problem(self, baseline: Baseline) -> None:
        """The base's own outcomes are no problem."""
        assert baseline.problems(results(BASE)) == {}

    def test_passed_now_failing(self, baseline: Baseline) -> None:
        """A test that passed and now fails, errors or skips is a problem, by its outcome."""
        after = BASE | {
            "tests/test_a.py::test_pass": "failed",
            "tests/test_b.py::test_pass": "skipped",
        }
        assert baseline.problems(results(after)) == {
            "tests/test_a.py::test_pass": "failed",
            "tests/test_b.py::test_pass": "skipped",
        }

    def test_no_longer_collected(self, baseline: Baseline) -> None:
        """A test collected at base and missing now is a problem."""
        after = {k: v for k, v in BASE.items() if k != "tests/test_b.py::test_pass"}
        assert baseline.problems(results(after)) == {
            "tests/test_b.py::test_pass": "no longer collected"
        }

    def test_skip_or_xfail_now_failing(self, baseline: Baseline) -> None:
        """A skipped or xfailed test that now fails or errors is a problem; one that passes not."""
        after = BASE | {
            "tests/test_a.py::test_skip": "error",
            "tests/test_b.py::test_xfail": "failed",
        }
        assert baseline.problems(results(after)) == {
            "tests/test_a.py::test_skip": "error",
            "tests/test_b.py::test_xfail": "failed",
        }
        fine = BASE | {
            "tests/test_a.py::test_skip": "passed",
            "tests/test_b.py::test_xfail": "xpassed",
        }
        assert baseline.problems(results(fine)) == {}

    def test_already_failing_excused(self, baseline: Baseline) -> None:
        """Tests that failed at base never count against a patch, even when gone."""
        after = BASE | {"tests/test_a.py::test_fail": "error"}
        del after["tests/test_b.py::TestX::test_error"]
        assert baseline.problems(results(after)) == {}

    def test_flaky_excused(self, baseline: Baseline) -> None:
        """A test flaky at base is excused; the same test not marked flaky is not."""
        after = BASE | {"tests/test_c.py::test_flaky": "failed"}
        assert baseline.problems(results(after)) == {}
        strict = Baseline(results(BASE))
        assert strict.problems(results(after)) == {"tests/test_c.py::test_flaky": "failed"}

    def test_within_narrows_to_files(self, baseline: Baseline) -> None:
        """With `within`, only tests in those files are judged (a run of selected tests)."""
        after = {"tests/test_a.py::test_pass": "failed", "tests/test_a.py::test_skip": "skipped"}
        assert baseline.problems(results(after), within={"tests/test_a.py"}) == {
            "tests/test_a.py::test_pass": "failed"
        }
        # Without `within`, the tests of the files that did not run count as gone.
        everything = baseline.problems(results(after))
        assert everything.get("tests/test_b.py::test_pass") == "no longer collected"
        assert baseline.problems(results(after), within=set()) == {}

    def test_within_narrows_to_test_ids(self, baseline: Baseline) -> None:
        """A test id in `within` (parameters dropped) judges that test alone in its file."""
        after = {"tests/test_a.py::test_pass": "failed"}
        assert baseline.problems(results(after), within={"tests/test_a.py::test_pass"}) == {
            "tests/test_a.py::test_pass": "failed"
        }
        # The others of its file did not run, and are not missed; a selected one is.
        assert baseline.problems(results({}), within={"tests/test_a.py::test_pass"}) == {
            "tests/test_a.py::test_pass": "no longer collected"
        }

    def test_new_tests_ignored(self, baseline: Baseline) -> None:
        """A test that was not there at base is not judged, whatever its outcome."""
        after = BASE | {"tests/test_new.py::test_new": "failed"}
        assert baseline.problems(results(after)) == {}


@pytest.fixture
def ruff(tmp_path: Path) -> Ruff:
    """ruff in a repo folder whose config selects pyflakes, E501 (at 40) and I001."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pyproject.toml").write_text(
        '[tool.ruff]\nline-length = 40\n[tool.ruff.lint]\nselect = ["F", "E501", "I001"]\n'
    )
    return Ruff(tmp_path)


async def lint(ruff: Ruff, source: str) -> list[Violation]:
    """The real ruff's findings in `source` as pkg/mod.py (also written there)."""
    (ruff.root / PATH).write_text(source)
    return (await ruff.lint_source(PATH, source.encode())).violations


def targets_of(violations: list[Violation], rule: str) -> Counter[str]:
    """The fingerprints of `rule`'s violations, as a task's targets."""
    return Counter(v.fingerprint for v in violations if v.rule == rule)


class TestLintProblem:
    async def test_target_gone_nothing_new(self, ruff: Ruff) -> None:
        """The targeted violation is gone and nothing appeared: no problem."""
        before = await lint(ruff, "import os\nimport sys\n\nprint(sys.argv)\n")
        after = await lint(ruff, "import sys\n\nprint(sys.argv)\n")
        assert [v.rule for v in before] == ["F401"]
        assert lint_problem(before, after, targets_of(before, "F401")) == ("", ())

    async def test_target_remains(self, ruff: Ruff) -> None:
        """A change that leaves the target in place says so."""
        source = "import os\nimport sys\n\nprint(sys.argv)\n"
        before = await lint(ruff, source)
        after = await lint(ruff, source.replace("print(sys.argv)", "print(sys.path)"))
        reason, fresh = lint_problem(before, after, targets_of(before, "F401"))
        assert reason == "1 targeted violation(s) remain"
        assert fresh == ()

    async def test_one_of_two_targets_remains(self, ruff: Ruff) -> None:
        """Targets are a multiset: fixing one of two leaves one."""
        before = await lint(ruff, "import os\nimport sys\n\nX = 1\n")
        after = await lint(ruff, "import sys\n\nX = 1\n")
        reason, _ = lint_problem(before, after, targets_of(before, "F401"))
        assert reason == "1 targeted violation(s) remain"

    async def test_new_violation_of_another_rule(self, ruff: Ruff) -> None:
        """A fix that adds a finding of another rule names it, with path, row and message."""
        before = await lint(ruff, "import os\n\n\ndef f():\n    return 1\n")
        after = await lint(ruff, "def f():\n    x = 1\n    return 1\n")
        reason, fresh = lint_problem(before, after, targets_of(before, "F401"))
        (f841,) = [v for v in after if v.rule == "F841"]
        line = f"F841 {PATH}:2: {f841.message}"
        assert fresh == (line,)
        assert reason == f"new violations: {line}"

    async def test_same_rule_new_unused_import(self, ruff: Ruff) -> None:
        """Removing one unused import while leaving another unused is a new F401."""
        before = await lint(ruff, "import os\nimport sys\n\nprint(sys.argv)\n")
        after = await lint(ruff, "import sys\n\nprint(42)\n")
        assert [v.rule for v in after] == ["F401"]  # one before, one after: the count held
        reason, fresh = lint_problem(before, after, targets_of(before, "F401"))
        assert fresh == (f"F401 {PATH}:1: `sys` imported but unused",)
        assert reason.startswith("new violations: F401")

    async def test_same_rule_two_targets(self, ruff: Ruff) -> None:
        """Fixing two F401s but making a third import unused: the count fell by less than 2."""
        before = await lint(ruff, "import json\nimport os\nimport sys\n\nprint(json)\n")
        after = await lint(ruff, "import json\n\nprint(42)\n")
        targets = targets_of(before, "F401")
        assert sum(targets.values()) == 2
        reason, fresh = lint_problem(before, after, targets)
        assert fresh == (f"F401 {PATH}:1: `json` imported but unused",)
        assert reason.startswith("new violations: ")

    async def test_import_block_rewording_tolerated(self, ruff: Ruff) -> None:
        """An I001 over the import block changes fingerprint when an import goes: not new."""
        before = await lint(ruff, "import sys\nimport os\nimport json\n\nprint(sys.argv, json)\n")
        after = await lint(ruff, "import sys\nimport json\n\nprint(sys.argv, json)\n")
        i001_before = [v.fingerprint for v in before if v.rule == "I001"]
        i001_after = [v.fingerprint for v in after if v.rule == "I001"]
        assert len(i001_before) == len(i001_after) == 1
        assert i001_before != i001_after  # a different fingerprint, the same finding
        assert lint_problem(before, after, targets_of(before, "F401")) == ("", ())

    async def test_long_line_rewording_tolerated(self, ruff: Ruff) -> None:
        """An E501 on a line the fix changed but left too long is the same finding."""
        before = await lint(ruff, 'print(f"a message that is far too long to fit")\n')
        after = await lint(ruff, 'print("a message that is far too long to fit")\n')
        assert sorted(v.rule for v in before) == ["E501", "F541"]
        e501 = [(v.fingerprint, v.message) for v in (*before, *after) if v.rule == "E501"]
        assert len(e501) == 2
        assert e501[0] != e501[1]
        assert lint_problem(before, after, targets_of(before, "F541")) == ("", ())

    async def test_more_of_a_tolerated_rule_is_new(self, ruff: Ruff) -> None:
        """Rewording is tolerated per rule only up to the count: a second long line is new."""
        before = await lint(ruff, 'print(f"a message that is far too long to fit")\n')
        after = await lint(
            ruff,
            'print("a message that is far too long to fit")\n'
            'print("another line that is far too long")\n',
        )
        reason, fresh = lint_problem(before, after, targets_of(before, "F541"))
        assert reason.startswith("new violations: E501")
        assert len(fresh) == 2  # both E501 fingerprints are new; the rule's count grew

    async def test_no_targets_nothing_changed(self, ruff: Ruff) -> None:
        """With no targets and the same findings, nothing to say."""
        before = await lint(ruff, "import os\n")
        assert lint_problem(before, before, Counter()) == ("", ())


class TestEntropyBound:
    def test_five_percent_of_a_hundred(self) -> None:
        """100 patches with 5 bad need about 28.6 runs at best."""
        assert entropy_bound(100, 5) == pytest.approx(28.64, abs=0.01)

    def test_certain_outcomes_cost_nothing(self) -> None:
        """No failures, all failures, or no patches: nothing to learn."""
        assert entropy_bound(100, 0) == 0
        assert entropy_bound(7, 7) == 0
        assert entropy_bound(0, 0) == 0

    def test_half_is_one_run_each(self) -> None:
        """At p = 1/2 every patch costs a full bit."""
        assert entropy_bound(64, 32) == pytest.approx(64)
        assert entropy_bound(10, 1) == pytest.approx(
            10 * -(0.1 * math.log2(0.1) + 0.9 * math.log2(0.9))
        )


# A report as pytest's JUnit XML carries it (message, then the long traceback).
REPORT = """\
AssertionError: assert False
def test_part0():
        assert m.copied((1, 2)) == [1, 2]
>       assert m.is_member(m.Row(["sku"], [1]), "sku")
E       AssertionError: assert False
E        +  where False = <function is_member at 0x7f>(<pkg.m.Row object at 0x7e>, 'sku')

tests/test_m.py:10: AssertionError"""


class TestPointedNames:
    def test_the_failing_line_and_the_error_only(self) -> None:
        """The `>` and `E` lines name `is_member` and `Row`; `copied`, run before, is context."""
        pointed = _judge.pointed_names(REPORT)
        assert {"is_member", "Row"} <= pointed
        assert "copied" not in pointed
        assert "copied" in _judge.mentioned_names(REPORT)

    def test_a_native_traceback(self) -> None:
        """`--tb=native`: each frame's line and the exception; the statement run before
        and the function names of the frames are context."""
        report = (
            "AssertionError: assert False\n"
            "Traceback (most recent call last):\n"
            '  File "/wt/tests/test_m.py", line 10, in test_part0\n'
            '    assert m.is_member(m.Row(["sku"], [1]), "sku")\n'
            '  File "/wt/pkg/m.py", line 4, in is_member\n'
            "    return lookup(row) is not None\n"
            "           ^^^^^^^^^^^\n"
            "KeyError: 'sku'\n"
        )
        pointed = _judge.pointed_names(report)
        assert {"is_member", "Row", "lookup", "KeyError"} <= pointed
        assert "test_part0" not in pointed
        assert "test_part0" in _judge.mentioned_names(report)

    def test_a_report_that_points_nowhere(self) -> None:
        """A report without pytest's marks (another runner, a bare message) points at nothing."""
        assert _judge.pointed_names("boom: is_member failed\nTraceback in is_member") == set()
