"""sandbox.proof._context: the lines a native traceback leaves out, read from the tested code."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fixbot.sandbox._testrun import resolve_test_command, run_tests
from fixbot.sandbox.proof._context import context_names, repo_frames
from fixbot.sandbox.proof._prove import Candidate
from tests.conftest import init_repo
from tests.test_prove import make_prover

if TYPE_CHECKING:
    from pathlib import Path

REPORT = """\
assert [1, -1] == [1, -1, 2]
Traceback (most recent call last):
  File "tests/test_m.py", line 6, in test_part2
    assert seen == [1, -1, 2]
  File "/usr/lib/python3.11/unittest/case.py", line 873, in assertEqual
    assertion_func(first, second, msg=msg)
  File "../outside.py", line 1, in sneaky
    x
AssertionError: assert [1, -1] == [1, -1, 2]
"""

TEST_M = b"""from pkg import m


def test_part2():
    seen = []
    assert not m.c419_9([1, -1, 2], seen)
    assert seen == [1, -1, 2]
"""


async def nothing_at_base(path: str) -> bytes | None:
    return None


class TestRepoFrames:
    def test_only_the_repos_own_files(self) -> None:
        """A frame in the worktree (a relative path) counts; the stdlib's and `..` do not."""
        assert repo_frames(REPORT) == [("tests/test_m.py", 6, "test_part2")]


@pytest.mark.anyio
class TestContextNames:
    async def test_the_lines_above_the_failing_one(self) -> None:
        """The function's lines from its def down to the failing line name c419_9."""
        report = REPORT.replace("line 6,", "line 7,")
        names = await context_names(report, {"tests/test_m.py": TEST_M}, nothing_at_base)
        assert {"c419_9", "test_part2", "seen"} <= names
        assert "pkg" not in names  # above the def: not this function's

    async def test_the_file_at_base_when_the_run_did_not_change_it(self) -> None:
        """Not among the files written: read at base, once asked for."""
        asked = []

        async def at_base(path: str) -> bytes | None:
            asked.append(path)
            return TEST_M

        report = REPORT.replace("line 6,", "line 7,")
        assert "c419_9" in await context_names(report, {}, at_base)
        assert asked == ["tests/test_m.py"]

    async def test_no_def_above_names_nothing(self) -> None:
        """A frame whose function is not found above its line adds no name."""
        names = await context_names(REPORT, {"tests/test_m.py": b"x = 1\n" * 9}, nothing_at_base)
        assert names == set()

    async def test_a_real_failure_report(self, tmp_path: Path) -> None:
        """pytest's report of a real run names the frame by its path in the repo, and the
        call a line above the failing assert is found from it."""
        repo = init_repo(
            tmp_path / "repo",
            {
                "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p no:anyio"\n',
                "pkg/__init__.py": "",
                "pkg/m.py": "def c419_9(values, seen):\n    return all(seen.append(v) or v > 0"
                " for v in values)\n",
                "tests/test_m.py": TEST_M.decode(),
            },
        )
        command = resolve_test_command(repo, None)
        assert command is not None
        results = await run_tests(command, repo)
        report = results.failures["tests/test_m.py::test_part2"]
        assert repo_frames(report) == [("tests/test_m.py", 7, "test_part2")]
        files = {"tests/test_m.py": TEST_M}
        assert "c419_9" in await context_names(report, files, nothing_at_base)


@pytest.mark.anyio
async def test_the_prover_keeps_the_context_as_clues(tmp_path: Path) -> None:
    """A fix that breaks c419_9 fails `assert seen == ...`, a line below its call: the
    failing test's clues name c419_9 (read from the test module at base)."""
    before = (
        b"def c419_9(values, seen):\n    return all([seen.append(v) or v > 0 for v in values])\n"
    )
    repo = init_repo(
        tmp_path / "repo",
        {
            "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p no:anyio"\n',
            "pkg/__init__.py": "",
            "pkg/m.py": before.decode(),
            "tests/test_m.py": TEST_M.decode(),
        },
    )
    after = before.replace(b"all([", b"all(").replace(b"values])", b"values)")
    async with make_prover(repo, tmp_path / "wt") as prover:
        cand = Candidate(key="pkg/m.py", agent="ruff", before={"pkg/m.py": before},
                         after={"pkg/m.py": after})  # fmt: skip
        verdicts = await prover.prove([cand], {}, whole=True)
        assert verdicts["pkg/m.py"].reason == "tests"
        assert "c419_9" in prover.mentioned["tests/test_m.py::test_part2"]
