"""Reruns at base that say what a failing test means: a patch's fault, flakiness, or a
test that relies on the one before it.

Part of the Prover (`Prover.test_problems`); each decision is made once per test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import anyio

from ._judge import test_file

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from fixbot.sandbox._testcache import TestCache
    from fixbot.sandbox._types import TestResults

    from ._candidate import ProofStats
    from ._judge import Baseline


class Prover(Protocol):
    """What the reruns need of the Prover (`sandbox/proof/_prove.py`)."""

    baseline: Baseline
    cache: TestCache | None
    stats: ProofStats

    @property
    def run_suite(self) -> Callable[..., Awaitable[TestResults]]:
        """`Prover.run_suite`: the tests on base plus some files."""
        ...


async def rejudged_whole(
    prover: Prover, files: Mapping[str, bytes], selection: list[str], problems: dict[str, str]
) -> dict[str, str]:
    """Problems again, with each file where a test that relies on the one before it
    failed run whole: selected alone, it fails at base too.

    Whether a test fails alone at base is asked once per test, and only of tests
    that failed in a run that selected single tests of their file.
    """
    narrowed = {test_file(t) for t in selection if "::" in t}
    ask = sorted(
        t for t in problems if test_file(t) in narrowed and t not in prover.baseline.alone_checked
    )
    if ask:
        alone = await prover.run_suite({}, node_ids=ask, reuse=False)
        prover.stats.reruns_at_base += 1
        prover.baseline.alone_checked.update(ask)
        prover.baseline.needs_file.update(t for t in ask if alone.outcomes.get(t) != "passed")
    redo = {test_file(t) for t in problems if t in prover.baseline.needs_file} & narrowed
    if not redo:
        return problems
    widened = sorted({s for s in selection if test_file(s) not in redo} | redo)
    results = await prover.run_suite(files, node_ids=widened)
    again = prover.baseline.problems(results, within=redo)
    if again:
        await find_flaky(prover, sorted(again))
    kept = {t: s for t, s in problems.items() if test_file(t) not in redo}
    return kept | {t: s for t, s in again.items() if t not in prover.baseline.flaky}


async def find_flaky(prover: Prover, tests: Sequence[str]) -> None:
    """Rerun failing tests at base: one whose outcome there is not the baseline's (a
    passing test that fails) is flaky, not a patch's fault.

    Flakiness is decided at base only, and once per test: a test that passed
    both reruns is known to be stable and is not rerun for the next batch. The
    decisions are kept with the cached test runs, for the same base and environment.
    """
    if prover.cache is not None:
        flaky, stable = prover.cache.flakiness()
        prover.baseline.flaky |= flaky
        prover.baseline.stable |= stable - flaky
    unknown = [
        t for t in tests if t not in prover.baseline.stable and t not in prover.baseline.flaky
    ]
    if not unknown:
        return

    # First each test alone: a test that passes both reruns so is stable, in a second
    # where its file takes many (dateutil's test_tz.py: 424 tests, 6 s on the critical
    # path of the first round). The rest are rerun in their whole files, as a run that
    # failed them had them: a test that relies on one before it fails alone at base
    # too, and would be excused for good.
    base = prover.baseline.results.outcomes if prover.baseline.results else {}

    def steady(results: TestResults, test: str) -> bool:
        # As at base: an xfailed test that now fails (it raised something else) is
        # xfailed again at base, which is no flakiness.
        return results.outcomes.get(test) == base.get(test, "passed")

    alone = await _twice(prover, unknown)
    rest = [t for t in unknown if not all(steady(r, t) for r in alone)]
    if rest:
        files = sorted({test_file(t) for t in rest})
        for results in await _twice(prover, files):
            prover.baseline.flaky.update(t for t in rest if not steady(results, t))
    prover.baseline.stable.update(t for t in unknown if t not in prover.baseline.flaky)
    if prover.cache is not None:
        prover.cache.keep_flakiness(prover.baseline.flaky, prover.baseline.stable)


async def _twice(prover: Prover, node_ids: list[str]) -> list[TestResults]:
    """Two reruns of `node_ids` at base, side by side in two worktrees."""
    out: list[TestResults] = []

    async def rerun() -> None:
        out.append(await prover.run_suite({}, node_ids=node_ids, reuse=False))
        prover.stats.reruns_at_base += 1

    async with anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(rerun)
    return out
