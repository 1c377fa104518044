"""Prove candidate patches in a worktree: what "proven" means, in code.

A candidate is one task's change (its files' whole new content). Many
file-disjoint candidates are proven together: policy, compile, lint and format
are judged per file in one pass each, the tests once for the whole batch; when
the tests fail, the batch is bisected to the culprits, and a culprit is only
blamed after a run of its own. See docs/architecture.md, "What proven means".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import structlog

from fixbot.sandbox._policy import policy_problem
from fixbot.sandbox._testrun import run_tests
from fixbot.sandbox._types import LintCache, TestResults, Verdict, sha256

from ._batch import Batcher
from ._bisect import Bisection, changed_scopes, merged, proven
from ._candidate import Candidate, ProofStats
from ._context import BaseFiles, context_names
from ._judge import Baseline, mentioned_names, pointed_names, test_file, test_id
from ._reruns import find_flaky, rejudged_whole
from ._select import select_tests
from ._shards import parts_of_suite, run_in_parts, runs_in_parallel
from ._static import StaticChecks

log = structlog.get_logger("fixbot")

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence

    from fixbot.sandbox._guard import MetadataGuard
    from fixbot.sandbox._impact import ImpactMap
    from fixbot.sandbox._isolation import Isolation
    from fixbot.sandbox._testcache import TestCache
    from fixbot.sandbox._testrun import TestCommand
    from fixbot.sandbox._worktree import WorktreePool


class Prover:
    """Proves batches of candidates on top of the accepted tree (`ground`)."""

    def __init__(
        self,
        *,
        pool: WorktreePool,
        select: Sequence[str] | None,
        ruff_executable: str,
        python: str,
        isolation: Isolation,
        test_command: TestCommand | None,
        baseline: Baseline,
        test_timeout: float = 900,
        impact: ImpactMap | None = None,
        guard: MetadataGuard | None = None,
        cache: TestCache | None = None,
        lint_cache: LintCache | None = None,
        reveal: bool = True,
    ) -> None:
        self.pool = pool
        # Where tests can write the git folder (no fence), it is checked after each run.
        self.guard = guard
        self.cache = cache  # test runs remembered across runs (see _testcache.py)
        self.select = tuple(select) if select else None
        self.ruff_executable = ruff_executable
        self.python = python
        self.isolation = isolation
        self.test_command = test_command
        self.test_timeout = test_timeout
        self.stats = ProofStats()
        self.batcher = Batcher()
        # Its parts: the checks that need no tests (their lint cache is shared with the
        # ruff agent, which lints the content between steps), and finding a failing
        # batch's culprits.
        self.static = StaticChecks(
            select=self.select,
            ruff_executable=ruff_executable,
            python=python,
            isolation=isolation,
            stats=self.stats,
            lint_cache=lint_cache,
            reveal=reveal,
        )
        # Per failing test, the names its failure reports mentioned (in any run): the
        # clues a refusal carries to where in a chain the tests broke.
        self.mentioned: dict[str, set[str]] = {}
        # Of those, the names on the lines the reports point at: the likeliest culprits.
        self.pointed: dict[str, set[str]] = {}
        self.bisection = Bisection(impact, self.test_problems, self.mentioned, self.pointed)
        # Trees (as path -> content hash) on which the whole suite passed, so the gate
        # need not run it again on exactly that tree.
        self._passed_whole: set[frozenset[tuple[str, str]]] = set()
        # Whole-suite runs started ahead of the round that will prove their tree (see
        # `prove_whole_ahead`); that round waits for them rather than run the suite again.
        self._ahead: dict[frozenset[tuple[str, str]], anyio.Event] = {}
        self._ready = anyio.Event()
        self.at_base = BaseFiles(pool.repo, pool.base)  # what failure reports leave out
        self.baseline = baseline

    @property
    def impact(self) -> ImpactMap | None:
        """The import graph that selects tests and names suspects (None: run them all)."""
        return self.bisection.impact

    @impact.setter
    def impact(self, value: ImpactMap | None) -> None:
        self.bisection.impact = value

    @property
    def lint_cache(self) -> LintCache:
        """What the proof knows content lints to (noqa ignored); an agent may add to it."""
        return self.static.lint

    @property
    def baseline(self) -> Baseline:
        """The tests at base; judging a test run waits until they are known."""
        return self._baseline

    @baseline.setter
    def baseline(self, value: Baseline) -> None:
        self._baseline = value
        if value.results is not None:
            self._ready.set()

    async def baseline_known(self) -> None:
        """Wait until the tests at base are known (at once without a test command)."""
        if self.test_command is not None:
            await self._ready.wait()

    async def establish_baseline(self, check: Callable[[TestResults], None]) -> TestResults:
        """Run the whole suite at base, `check` it, and let waiting judgments go on.

        Meant to run side by side with proposing and the first round's tests: those
        run at once, and only their judging waits for this.
        """
        results = await self.run_suite({}, counted=False)
        check(results)
        self.baseline = Baseline(results)
        return results

    async def prove(
        self,
        candidates: Sequence[Candidate],
        ground: Mapping[str, bytes],
        *,
        whole: bool = False,
        split: bool = False,
        workers: int | None = None,
    ) -> dict[str, Verdict]:
        """A verdict for every candidate; accepted ones passed every check.

        `whole` proves them as one batch against the whole test suite: the final
        gate on the merged tree, where no selection may leave a test out; with `split`,
        that run may go in parts side by side (`run_suite`). Else they
        are split into batches, at least one for each of `workers` (by default, every
        worktree but the reference).
        """
        verdicts = {c.key: v for c in candidates if (v := self._policy(c))}
        standing = [c for c in candidates if c.key not in verdicts]

        async def prove_batch(batch: list[Candidate]) -> None:
            async with self.pool.use() as tree:
                verdicts.update(await self.static.check(tree, batch, ground))
            survivors = [c for c in batch if c.key not in verdicts]
            if survivors:
                tested = await self._tested(survivors, ground, whole=whole, split=split)
                verdicts.update(tested)
                for cand in survivors:
                    failed = tested[cand.key].reason == "tests"
                    self.batcher.record(cand.kind, failed=failed)
                    self.stats.tested += 1
                    self.stats.failed_tests += failed

        async with anyio.create_task_group() as tg:
            # One worktree stays with the run as its reference; the rest prove.
            workers = workers or max(1, self.pool.size - 1)
            batches = [list(standing)] if whole else self.batcher.split(standing, workers)
            for batch in batches:
                self.stats.batches += 1
                tg.start_soon(prove_batch, batch)
        for cand in standing:
            shown = self.static.revealed_of(cand)
            if shown and verdicts[cand.key].accepted:
                verdicts[cand.key] = verdicts[cand.key].model_copy(update={"revealed": shown})
        return verdicts

    async def check_static(
        self, candidates: Sequence[Candidate], ground: Mapping[str, bytes]
    ) -> dict[str, Verdict]:
        """The verdicts of the candidates that policy, compile, lint or format refuse.

        No test runs. Content that passes is remembered, so proving it later costs
        no second look.
        """
        verdicts = {c.key: v for c in candidates if (v := self._policy(c))}
        standing = [c for c in candidates if c.key not in verdicts]
        if standing:
            async with self.pool.use() as tree:
                verdicts.update(await self.static.check(tree, standing, ground))
        return verdicts

    def _policy(self, cand: Candidate) -> Verdict | None:
        problem = next(
            (
                p
                for path, new in cand.after.items()
                if (p := policy_problem(cand.agent, path, cand.before.get(path, b""), new))
            ),
            None,
        )
        if not problem:
            return None
        return Verdict(patch_id=cand.key, accepted=False, reason="policy", detail=problem)

    async def run_suite(
        self,
        files: Mapping[str, bytes],
        node_ids: Sequence[str] | None = None,
        *,
        counted: bool = True,
        reuse: bool = True,
        split: bool = False,
    ) -> TestResults:
        """The configured tests on base + `files` (`counted` in the proof's stats).

        A run made before on exactly this tree, selection and environment (in this
        run or an earlier one) is reused, unless `reuse` is off (the reruns that
        decide flakiness must really run). With `split` (the last round's run, the gate)
        and the baseline known, the whole suite runs in parts side by side, one per
        worker (`parts_of_suite`).
        """
        assert self.test_command is not None  # noqa: S101 - callers check
        if reuse and self.cache is not None:
            cached = self.cache.get(files, node_ids)
            if cached is not None:
                self.stats.cached_runs += 1
                log.info("tests.cached", files=len(files), tests=len(cached.outcomes))
                return cached
        parts = None
        if node_ids is None and split and self._ready.is_set():
            parallel = runs_in_parallel(self.pool.repo)
            workers = self.pool.size - 1
            parts = parts_of_suite(self.baseline, self.test_command, workers, parallel=parallel)
        if parts is None:
            results = await self.run_one(files, node_ids)
        else:
            results = await run_in_parts(self, files, parts)
        seconds = results.seconds  # the run's own time: not the wait for a worktree
        if self.cache is not None:
            self.cache.put(files, node_ids, results)
        if counted:
            self.stats.test_runs += 1
            self.stats.test_seconds += seconds
        log.info(
            "tests.ran",
            files=len(files),
            selected="all" if node_ids is None else len(node_ids),
            tests=len(results.outcomes),
            seconds=round(seconds, 2),
            parts=len(parts or [None]),
        )
        return results

    async def run_one(
        self, files: Mapping[str, bytes], node_ids: Sequence[str] | None
    ) -> TestResults:
        """One test process, in a worktree of its own with base + `files`."""
        assert self.test_command is not None  # noqa: S101 - callers check
        async with self.pool.use() as tree:
            tree.write(files)
            try:
                return await run_tests(
                    self.test_command,
                    tree.path,
                    node_ids=node_ids,
                    timeout=self.test_timeout,
                    isolation=self.isolation,
                )
            finally:
                # Also after a run that was cancelled (a run ahead the probes proved
                # wrong): what it planted before it was killed is found here.
                if self.guard is not None:
                    self.guard.check()

    def select_tests(
        self,
        changed: Collection[str] | Mapping[str, frozenset[str] | None] | None,
        reverted: Collection[str] | None = None,
    ) -> list[str] | None:
        """The tests that can reach `changed`, or None for the whole suite
        (`sandbox/proof/_select.py`)."""
        return select_tests(self.impact, self.baseline, self.test_command, changed, reverted)

    def tests_to_run(self, cands: Sequence[Candidate]) -> int:
        """How many tests proving `cands` together runs, as far as selection can tell."""
        return self.baseline.count(self.select_tests(changed_scopes(cands)))

    async def test_problems(
        self,
        files: Mapping[str, bytes],
        changed: Collection[str] | Mapping[str, frozenset[str] | None] | None = None,
        also: Collection[str] = (),
        reverted: Collection[str] | None = None,
        *,
        split: bool = False,
    ) -> dict[str, str]:
        """Tests worse than at base with `files` written; flaky ones found and excused.

        With `changed`, only the tests that can reach those files run (test impact
        selection); without it, or where the import graph cannot say, all of them.
        With `reverted` too (bisecting), only those that can also reach the files a
        run that failed just `also` had changed besides (`select_tests`).
        """
        if self.test_command is None:
            return {}
        if changed is None or self.impact is None or not self.test_command.is_pytest:
            # The whole suite needs nothing from the baseline to start; only judging does.
            results = await self.run_suite(files, split=split)
            await self._ready.wait()
            selection = None
        else:
            await self._ready.wait()
            selection = self.select_tests(changed, reverted)
            if selection is not None and also:
                # Bisecting a failure: the tests that failed always run, whatever the graph says.
                whole = {s for s in selection if "::" not in s}
                more = {test_id(t) for t in also if test_file(t) not in whole}
                selection = sorted(set(selection) | more)
            if selection is not None and not selection:
                return {}
            results = await self.run_suite(files, node_ids=selection)
            # Counted once it ran: a probe the run ahead cut short ran none.
            self.stats.selected_runs += selection is not None
        base = self.baseline.results
        assert base is not None  # noqa: S101 - set before _ready, for the type checker
        problems = self.baseline.problems(results, within=selection)
        if problems and results.limit:
            # Not a behaviour change shown by a test: the run was stopped at a limit.
            return {t: f"{s} (the run hit its {results.limit} limit)" for t, s in problems.items()}
        if problems and self.test_command.is_pytest and base.per_test:
            await find_flaky(self, sorted(problems))
            problems = {t: s for t, s in problems.items() if t not in self.baseline.flaky}
            if problems and selection is not None:
                problems = await rejudged_whole(self, files, selection, problems)
        for test in problems:
            if report := results.failures.get(test):
                context = await context_names(report, files, self.at_base)
                self.mentioned.setdefault(test, set()).update(mentioned_names(report) | context)
                self.pointed.setdefault(test, set()).update(pointed_names(report))
        return problems

    def passed_whole(self, tree: Mapping[str, bytes]) -> bool:
        """Whether the whole suite passed on exactly `tree` (base + these files)."""
        return _digest(tree) in self._passed_whole

    async def prove_whole_ahead(self, tree: Mapping[str, bytes]) -> None:
        """The whole suite on `tree` (base + these files), before any round proves it.

        For a tree a later round will likely prove whole: a pass is remembered as a
        passing last round's is, and that round waits for this run instead of starting
        its own. A failure only means the guess was wrong: nothing is refused for it.
        """
        digest = _digest(tree)
        if self.test_command is None or digest in self._passed_whole or digest in self._ahead:
            return
        self._ahead[digest] = done = anyio.Event()
        log.info("tests.ahead", files=len(tree))
        try:
            # In one part: the probes beside it need the other worktrees.
            if not await self.test_problems(tree):
                self._passed_whole.add(digest)
        finally:
            del self._ahead[digest]
            done.set()

    async def _tested(
        self,
        cands: Sequence[Candidate],
        ground: Mapping[str, bytes],
        *,
        whole: bool = False,
        split: bool = False,
    ) -> dict[str, Verdict]:
        tree = merged(ground, cands)
        digest = _digest(tree)
        if whole and digest in self._ahead:
            await self._ahead[digest].wait()
        if whole and self.test_command is not None and digest in self._passed_whole:
            # The whole suite already passed on exactly this tree (a last round that
            # ran whole): that run counts, as the gate of the merged tree.
            self.stats.reused_runs += 1
            log.info("tests.reused", files=len(tree))
            return {c.key: proven(c) for c in cands}
        problems = await self.test_problems(
            tree, None if whole else changed_scopes(cands), split=whole and split
        )
        if not problems:
            if whole:
                self._passed_whole.add(digest)
            return {c.key: proven(c) for c in cands}
        return await self.bisection.bisect(list(cands), ground, problems)


def _digest(tree: Mapping[str, bytes]) -> frozenset[tuple[str, str]]:
    """A tree (base + these files) as one value: each path with its content's hash."""
    return frozenset((path, sha256(data)) for path, data in tree.items())
