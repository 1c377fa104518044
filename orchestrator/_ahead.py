"""The run ahead: the whole suite on the tree the next round will likely prove, started
beside a round of probes (see `FanOut._prove_ahead` and docs/architecture.md, "A run
ahead").

A round of probes whose failing tests' clues each name one culprit (`Job.guessed_culprit`)
predicts the next round: each culprit refused, everything else asked for in one chain,
which is the last round and is proven whole. Its whole-suite run starts now, in a worktree
of its own, and the next round waits for it and reuses a pass. The probes it expected to
pass run only until it passes: its tree holds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from fixbot.sandbox import Verdict

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Sequence

    from fixbot.sandbox import Candidate, Prover

    from ._job import Job

COVERED = "the whole suite passed with its fixes, in the run ahead"


@dataclass(frozen=True, slots=True)
class Ahead:
    """A run ahead (see `FanOut._prove_ahead`): how to stop it, and what it guessed."""

    scope: anyio.CancelScope
    groups: dict[str, frozenset[str]]  # what each probing file's next chain asks for
    tree: dict[str, bytes]  # the tree whose whole suite it runs
    done: anyio.Event  # set when it ends: passed, failed or cancelled
    # Per file, the fixes its chain made (an agent may leave one it was asked for out):
    # only a probe of those is in its tree.
    fixed: dict[str, frozenset[str]]

    def covers(self, path: str, group: frozenset[str]) -> bool:
        """Whether a pass of the run ahead holds this probe's fixes of `path`."""
        return group <= self.fixed.get(path, frozenset())


def may_guess(prover: Prover, jobs: Sequence[Job], probing: Sequence[Job]) -> bool:
    """Whether a run ahead can pay: the next round would be the last, and cheap to guess."""
    return (
        # A third worktree, or the run ahead would hold the one the probes need.
        prover.pool.size >= 3
        and bool(probing)
        and not any(j.active for j in jobs if j not in probing)
        # A later stage would follow: the next round would not be the last.
        and all(j.stage == len(j.stages) - 1 for j in probing)
        # A model's proposal for a guess would cost money.
        and not any(j.learns for j in probing)
    )


def as_predicted(jobs: Sequence[Job], groups: dict[str, frozenset[str]]) -> bool:
    """Whether the round went as the run ahead guessed: the next asks for its groups."""
    return all(j.queue == [groups[j.path]] if j.path in groups else not j.active for j in jobs)


async def prove_sets(
    prover: Prover,
    groups: list[list[Candidate]],
    prove: Callable[[list[Candidate]], Coroutine[Any, Any, None]],
    ahead: Ahead | None,
    covered: set[str],
    verdicts: dict[str, Verdict],
) -> None:
    """Every group side by side; beside a run `ahead`, the probes it would cover (the
    keys in `covered`) only until it passes, the others first and in full.

    The run ahead's tree holds the fixes of every probe that is expected to pass
    (`Ahead.covers`), so a pass there covers them: what is still running of them is
    stopped and counted as passed. That is never what lands a fix: the next round asks
    for exactly that tree and reuses the pass, and a wrong guess (a culprit that passes
    alone) sends the next round to tests of its own. The culprits' probes still run in
    full: a fix is refused only after a run of its own.
    """
    if ahead is None or not covered:
        async with anyio.create_task_group() as tg:
            for cands in groups:
                tg.start_soon(prove, cands)
        return
    coverable = [[c for c in g if c.key in covered] for g in groups]
    async with anyio.create_task_group() as first:
        # Started first, so they take the worktrees first: the culprits' verdicts say
        # whether the guess holds.
        for cands in groups:
            if in_full := [c for c in cands if c.key not in covered]:
                first.start_soon(prove, in_full)
        with anyio.CancelScope() as behind:

            async def cut_short() -> None:
                await ahead.done.wait()
                if prover.passed_whole(ahead.tree):
                    behind.cancel()

            async with anyio.create_task_group() as watch:
                watch.start_soon(cut_short)
                async with anyio.create_task_group() as rest:
                    for cands in (g for g in coverable if g):
                        rest.start_soon(prove, cands)
                watch.cancel_scope.cancel()  # all proven: nothing left to cut short
    for cand in (c for g in coverable for c in g if c.key not in verdicts):
        verdicts[cand.key] = Verdict(
            patch_id=cand.key, accepted=True, reason="proven", detail=COVERED
        )
