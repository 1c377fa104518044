"""The run ahead beside a round of probes (`orchestrator/_ahead.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from fixbot.agents import RuffAgent, Stage, Task
from fixbot.orchestrator._ahead import Ahead
from fixbot.orchestrator._fanout import FanOut
from fixbot.orchestrator._job import Job
from fixbot.sandbox import Patch
from fixbot.sandbox._ruff import Ruff, default_ruff
from tests.conftest import init_repo
from tests.test_narrowing import edited
from tests.test_prove import make_prover

if TYPE_CHECKING:
    from pathlib import Path

    from fixbot.sandbox import Prover, Verdict


# `test_one`'s E711 fix breaks it (`Anything() == None` is true, `is None` is not);
# `test_two`'s E712 fix is harmless.
TESTS = """\
import time


class Anything:
    def __eq__(self, other):
        return True


def test_one():
    assert Anything() == None


def test_two():
    flag = True
    assert flag == True
"""
PATH = "tests/test_x.py"


async def fixing(repo: Path, job: Job, rule: str, old: str, new: str) -> list[Patch]:
    """A one-step chain of `job`'s file with `old` made `new`, fixing its `rule` finding."""
    lint = await Ruff(repo).lint_source(job.path, job.content, ignore_noqa=True)
    (target,) = [v for v in lint.violations if v.code == rule]
    return edited(job, old, new, rule, target)


async def probes_beside(
    tmp_path: Path,
    ahead_tree: tuple[str, str],
    made: frozenset[str] = frozenset({"two"}),
    two: str = "flag",
    ends_after: float = 0,
) -> tuple[list[Verdict], int, Prover]:
    """A round of two probes, E711 the guessed culprit, beside a run ahead on the test file
    with `ahead_tree`'s text replaced, whose chain `made` those fixes and which ends
    `ends_after` seconds into the round; the other probe makes `flag == True` `two`. The
    probes' verdicts, the test runs the round made (reruns at base aside), the prover."""
    files = {
        "pyproject.toml": '[tool.ruff.lint]\nselect = ["E711", "E712"]\n'
        "[tool.pytest.ini_options]\n",
        PATH: TESTS,
    }
    repo = init_repo(tmp_path / "r", files)
    agent = RuffAgent(default_ruff(), None, modes=("fix",))
    (x,) = jobs = [Job(Task(PATH, (PATH,), ()), [Stage(agent, "fix")], (repo / PATH).read_bytes())]
    x.probe_pending = [
        (frozenset({"one"}), await fixing(repo, x, "E711", "== None", "is None")),
        (frozenset({"two"}), await fixing(repo, x, "E712", "flag == True", two)),
    ]
    x.suspects = {"one"}
    assert x.guessed_culprit() == {"one"}
    tree = {PATH: x.content.replace(ahead_tree[0].encode(), ahead_tree[1].encode())}
    async with make_prover(repo, tmp_path / "wt", size=3) as prover:
        fan = FanOut(prover=prover, root=repo, ruff=Ruff(repo, None, default_ruff()), jobs=jobs)
        await prover.prove_whole_ahead(tree)
        done = anyio.Event()
        ahead = Ahead(anyio.CancelScope(), {PATH: frozenset({"two"})}, tree, done, {PATH: made})
        stats = prover.stats
        before = stats.test_runs - stats.reruns_at_base

        async def end() -> None:
            await anyio.sleep(ends_after)
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(end)
            _, probe_verdicts = await fan._prove_round([], jobs, ahead)
        return probe_verdicts[PATH], stats.test_runs - stats.reruns_at_base - before, prover


@pytest.mark.anyio
async def test_a_passing_run_ahead_covers_the_probes_it_expected_to_pass(tmp_path: Path) -> None:
    """The whole suite passed on the guessed tree: the other probe is not run, the guessed
    culprit is, and is refused after that run of its own."""
    (culprit, other), runs, _ = await probes_beside(tmp_path, ("flag == True", "flag"))
    assert (culprit.accepted, culprit.reason) == (False, "tests"), culprit
    assert other.accepted
    assert "run ahead" in (other.detail or "")
    assert runs == 1


@pytest.mark.anyio
async def test_a_failed_run_ahead_covers_nothing(tmp_path: Path) -> None:
    """The guessed tree failed its tests: every probe runs, and stands on its own run."""
    (culprit, other), runs, _ = await probes_beside(tmp_path, ("== None", "is None"))
    assert (culprit.accepted, culprit.reason) == (False, "tests"), culprit
    assert other.accepted
    assert "run ahead" not in (other.detail or "")
    assert runs == 2


@pytest.mark.anyio
async def test_a_run_ahead_covers_only_the_fixes_its_chain_made(tmp_path: Path) -> None:
    """Its chain left the other probe's fix out (an agent may): its pass covers nothing."""
    (_, other), runs, _ = await probes_beside(tmp_path, ("x", "x"), made=frozenset())
    assert other.accepted
    assert "run ahead" not in (other.detail or "")
    assert runs == 2


@pytest.mark.anyio
async def test_a_probe_cut_short_mid_run_leaves_its_worktree_clean(tmp_path: Path) -> None:
    """The run ahead passes while the other probe's tests sleep: that run is stopped,
    counted as passed, not as a test run, and its worktree is clean and free again."""
    (_, other), runs, prover = await probes_beside(
        tmp_path, ("flag == True", "flag"), two="time.sleep(30) or flag", ends_after=2
    )
    assert "run ahead" in (other.detail or "")
    assert runs == 1
    assert len(prover.pool._free) == len(prover.pool._all)
    for tree in prover.pool._all:
        status = await tree._git("status", "--porcelain")
        assert not status.stdout.strip(), status.stdout
