"""sandbox.proof._shards: the whole suite in parts side by side, against real pytest."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fixbot.sandbox._testrun import TIMED_OUT, TestCommand
from fixbot.sandbox._types import TestResults
from fixbot.sandbox.proof import _shards
from fixbot.sandbox.proof._judge import Baseline
from fixbot.sandbox.proof._prove import Candidate
from fixbot.sandbox.proof._shards import joined, parts_of_suite
from tests.conftest import init_repo
from tests.test_prove import make_prover

if TYPE_CHECKING:
    from pathlib import Path


def command(*argv: str, is_pytest: bool = True) -> TestCommand:
    """A test command as configured (`--test-cmd`)."""
    return TestCommand(argv, "flag", "python", is_pytest=is_pytest, display=" ".join(argv))


PYTEST = command("python", "-m", "pytest")


def baseline(seconds: float, tests: dict[str, int]) -> Baseline:
    """A baseline whose run took `seconds`, with so many passing tests per file."""
    outcomes = {f"{f}::test_{i}": "passed" for f, n in tests.items() for i in range(n)}
    return Baseline(TestResults(outcomes=outcomes, returncode=0, seconds=seconds))


class TestParts:
    def test_files_go_to_the_lightest_part(self) -> None:
        """Heaviest file first, each to the part with the fewest tests so far."""
        base = baseline(10, {"t/a.py": 50, "t/b.py": 30, "t/c.py": 25, "t/d.py": 5})
        assert parts_of_suite(base, PYTEST, 2) == [["t/a.py", "t/d.py"], ["t/b.py", "t/c.py"]]

    def test_no_more_parts_than_the_suite_pays_for(self) -> None:
        """3.5 s of suite: two parts of 1.5 s at least, though four workers are free."""
        base = baseline(3.5, {f"t/{n}.py": 1 for n in "abcdef"})
        assert len(parts_of_suite(base, PYTEST, 4) or []) == 2

    @pytest.mark.parametrize(
        ("seconds", "cmd", "workers", "files"),
        [
            (1.0, PYTEST, 2, 2),  # too quick for a second start-up
            (10, PYTEST, 1, 2),  # one worker
            (10, PYTEST, 2, 1),  # one test file
            (10, command("make", "test", is_pytest=False), 2, 2),
            (10, command("pytest", "-n", "4"), 2, 2),
            (10, command("pytest", "-nauto"), 2, 2),
        ],
    )
    def test_runs_that_stay_whole(
        self, seconds: float, cmd: TestCommand, workers: int, files: int
    ) -> None:
        """Quick, one worker, one file, not pytest, or already parallel: one process."""
        base = baseline(seconds, {f"t/{n}.py": 3 for n in range(files)})
        assert parts_of_suite(base, cmd, workers) is None

    def test_a_command_with_paths_of_its_own_stays_whole(self) -> None:
        """`pytest tests/`: each part would collect the whole folder again."""
        base = baseline(10, {"t/a.py": 3, "t/b.py": 3})
        assert parts_of_suite(base, command("python", "-m", "pytest", "tests/"), 2) is None
        assert parts_of_suite(base, command("python", "-m", "pytest", "-x"), 2) is not None

    @pytest.mark.parametrize(
        ("name", "text", "parallel"),
        [
            ("pyproject.toml", '[tool.pytest.ini_options]\naddopts = ["-n", "auto"]\n', True),
            ("setup.cfg", "[tool:pytest]\naddopts = -ra -nauto\n", True),
            ("pytest.ini", "[pytest]\naddopts = --dist loadfile\n", True),
            ("pyproject.toml", '[tool.pytest.ini_options]\naddopts = "--no-header -ra"\n', False),
        ],
    )
    def test_xdist_in_the_repos_configuration(
        self, tmp_path: Path, name: str, text: str, *, parallel: bool
    ) -> None:
        """pytest-xdist's options in `addopts`: the run is parallel already."""
        (tmp_path / name).write_text(text)
        assert _shards.runs_in_parallel(tmp_path) is parallel
        base = baseline(10, {"t/a.py": 3, "t/b.py": 3})
        parts = parts_of_suite(base, PYTEST, 2, parallel=_shards.runs_in_parallel(tmp_path))
        assert (parts is None) is parallel

    def test_joined_outcomes_and_exit_code(self) -> None:
        """Outcomes and failures of both parts; a failed part makes the run failed."""
        a = TestResults(outcomes={"t/a.py::x": "passed"}, returncode=0, output="a ok")
        b = TestResults(
            outcomes={"t/b.py::y": "failed"}, returncode=1, failures={"t/b.py::y": "boom"}
        )
        a = a.model_copy(update={"seconds": 2.5})
        run = joined([a, b])
        assert run.outcomes == {"t/a.py::x": "passed", "t/b.py::y": "failed"}
        assert (run.returncode, run.failures, run.seconds) == (1, {"t/b.py::y": "boom"}, 2.5)
        stopped = TestResults(outcomes={}, returncode=2, output="interrupted")
        assert joined([a, stopped]).returncode == 2

    def test_what_stopped_a_part_stays_in_the_output(self) -> None:
        """A part that timed out, joined after a part with a long output: the time-out
        still ends its share of the output (the test cache looks for it)."""
        slow = TestResults(outcomes={}, returncode=-9, output="x" * 100 + "\n" + TIMED_OUT)
        chatty = TestResults(outcomes={}, returncode=0, output="w" * 10_000)
        assert TIMED_OUT in joined([slow, chatty]).output


PIDS = """
import os
from pathlib import Path

from pkg import m


def test_{name}_one():
    Path({marks!r}, "{name}-" + str(os.getpid())).touch()
    assert m.add(2, 3) == 5


def test_{name}_two():
    assert m.add(1, 1) == 2
"""


@pytest.mark.anyio
class TestSplitWholeRuns:
    async def test_a_whole_run_in_two_processes(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two workers: the gate's whole suite runs as two pytest processes, every test
        runs, and a change that breaks one file's tests is still refused."""
        monkeypatch.setattr(_shards, "SECONDS_A_PART", 1e-6)
        marks = tmp_path / "marks"
        marks.mkdir()
        repo = init_repo(
            tmp_path / "repo",
            {
                "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p no:anyio"\n',
                "pkg/__init__.py": "",
                "pkg/m.py": "import os\n\n\ndef add(a, b):\n    return a + b\n",
                "tests/test_a.py": PIDS.format(name="a", marks=str(marks)),
                "tests/test_b.py": PIDS.format(name="b", marks=str(marks)),
            },
        )
        async with make_prover(repo, tmp_path / "wt", size=3) as prover:
            at_base = {p.name.split("-")[1] for p in marks.iterdir()}
            assert len(at_base) == 1  # the baseline itself is one process

            def change(after: str) -> Candidate:
                return Candidate(
                    key="pkg/m.py",
                    agent="ruff",
                    before={"pkg/m.py": b"import os\n\n\ndef add(a, b):\n    return a + b\n"},
                    after={"pkg/m.py": after.encode()},
                )

            for mark in marks.iterdir():
                mark.unlink()
            good = await prover.prove(
                [change("def add(a, b):\n    return a + b\n")], {}, whole=True, split=True
            )
            assert good["pkg/m.py"].accepted
            pids = {p.name.split("-")[1] for p in marks.iterdir()}
            assert {p.name.split("-")[0] for p in marks.iterdir()} == {"a", "b"}
            assert len(pids) == 2  # each file's tests in a process of its own
            runs = prover.stats.test_runs - prover.stats.reruns_at_base
            bad = await prover.prove(
                [change("def add(a, b):\n    return a * b\n")], {}, whole=True, split=True
            )
            assert bad["pkg/m.py"].reason == "tests"
            # Judged on the suite run again whole, in one process, after the split run.
            assert prover.stats.test_runs - prover.stats.reruns_at_base == runs + 2
