"""The bundled example repo (examples/sample-repo, see its EXPECTED.md), end to end.

42 violations: 14 safe fixes, 18 harmless unsafe fixes, 4 unsafe fixes that change
behaviour (each next to a harmless fix of the same rule), 6 with no fix.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import checkout_tests, fixbot, git

BREAKING = {
    ("E711", "samplepkg/records.py"),
    ("SIM118", "samplepkg/records.py"),
    ("PIE810", "samplepkg/naming.py"),
    ("C419", "samplepkg/validate.py"),
}
NO_FIX = {"B904", "E722", "E741", "PERF401", "SIM115", "UP031"}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """One run of `fixbot run` on a fresh copy of the sample repo."""
    import shutil  # noqa: PLC0415

    from tests.conftest import SAMPLE_REPO, init_repo  # noqa: PLC0415

    repo = tmp_path_factory.mktemp("sample") / "repo"
    shutil.copytree(SAMPLE_REPO, repo, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
    init_repo(repo, {})
    head = git(repo, "rev-parse", "HEAD")
    done = fixbot("run", repo, "--branch", "fixbot/sample", "--report-dir", repo.parent / "out")
    assert done.returncode == 0, done.stderr
    assert git(repo, "rev-parse", "HEAD") == head
    report = json.loads((repo.parent / "out" / "report.json").read_text())
    return repo, report, done.stdout


class TestSampleRepo:
    """Every fixable violation lands except the behaviour-changing ones."""

    def test_counts(self, outcome: tuple[Path, dict, str]) -> None:
        """42 before, 10 after: the 4 rejected and the 6 that have no fix."""
        _, report, _ = outcome
        assert report["violations_before"] == 42
        assert report["violations_after"] == 10
        assert report["unfixed"] == 10
        assert report["dropped"] == 0
        fixed = sum(c["fixed"] for c in report["by_rule"].values())
        assert fixed == 32

    def test_breaking_fixes_rejected_by_tests(self, outcome: tuple[Path, dict, str]) -> None:
        """Exactly the four behaviour-changing fixes are rejected, each for failing tests."""
        _, report, _ = outcome
        rejected = [p for p in report["patches"] if p["status"] == "rejected"]
        assert {(p["rules"][0], p["files"][0]) for p in rejected} == BREAKING
        assert all(p["reason"] == "tests" for p in rejected)
        for rule, _path in BREAKING:
            assert report["by_rule"][rule] == {
                "found": 2,
                "fixed": 1,
                "rejected": 1,
                "unfixed": 0,
                "offered": 2,
                "landed": 1,
                "refused": {"tests": 1},
                "revealed": 0,
            }

    def test_no_fix_rules_unfixed(self, outcome: tuple[Path, dict, str]) -> None:
        """Rules ruff has no fix for stay, counted as unfixed."""
        _, report, _ = outcome
        for rule in NO_FIX:
            assert report["by_rule"][rule]["unfixed"] == 1

    def test_branch_is_green(self, outcome: tuple[Path, dict, str], tmp_path: Path) -> None:
        """The branch passes every test and ruff finds only the 10 expected violations."""
        repo, _, _ = outcome
        where = tmp_path / "check"
        tests = checkout_tests(repo, "fixbot/sample", where)
        assert tests.returncode == 0, tests.stdout
        assert "26 passed" in tests.stdout
        from fixbot.sandbox import default_ruff  # noqa: PLC0415

        lint = subprocess.run(
            [default_ruff(), "check", "--no-cache", "--output-format", "concise", "."],
            cwd=where, capture_output=True, text=True, check=False,
        )  # fmt: skip
        found = {line.split(" ")[1] for line in lint.stdout.splitlines() if ": " in line}
        assert found == NO_FIX | {rule for rule, _ in BREAKING}
        git(repo, "worktree", "remove", "--force", str(where))

    def test_commits_grouped_by_rule(self, outcome: tuple[Path, dict, str]) -> None:
        """One commit per rule group, each naming its rule and carrying the proof trailer."""
        repo, report, _ = outcome
        log = git(repo, "log", "--format=%s%x00%B%x01", "main..fixbot/sample")
        entries = [e for e in log.split("\x01") if e.strip()]
        assert entries
        for entry in entries:
            subject, body = entry.strip().split("\x00", 1)
            assert subject.startswith("fix(")
            assert "Fixbot-Proof:" in body
            assert "26 tests" in body
        assert report["tests"]["passed_before"] == 26
