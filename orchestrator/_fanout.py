"""The fan-out: every task proposes, the prover judges, rejected fixes are narrowed down.

Each round, every task with work left proposes one candidate (a chain of
one-rule patches on top of its accepted content), and the fixes being narrowed
down propose one probe each (see `_job.py`). All candidates of a round touch
different files, so they are proven together; the probes of one file cannot
share a worktree, so the k-th probes of all files form a batch of their own.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import structlog

from fixbot.agents import BatchAgent, Request
from fixbot.sandbox import Candidate, FileChange, Patch, Ruff, Step, Verdict, sha256

from ._ahead import Ahead, as_predicted, may_guess, prove_sets
from ._chains import asked_of

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from anyio.abc import TaskGroup

    from fixbot.agents import Stage
    from fixbot.sandbox import Prover

    from ._job import Job

log = structlog.get_logger("fixbot")


# Static narrowing steps in one round: each pins a refusal on one step's fixes.
STATIC_ROUNDS = 24
_UNDECIDED = Verdict(patch_id="", accepted=False, reason="undecided")


def _candidate(
    job: Job, chain: list[Patch], key: str | None = None, *, suspect: bool = False
) -> Candidate:
    befores = [job.content, *(p.changes[0].new for p in chain[:-1])]
    return Candidate(
        key=key or job.path,
        agent=chain[0].agent,
        mode=job.stages[job.stage].mode,
        before={job.path: job.content},
        after={job.path: chain[-1].changes[0].new},
        targets=Counter(v.fingerprint for p in chain for v in p.targets),
        steps=tuple(
            Step(job.path, before, p.changes[0].new, p.targets)
            for before, p in zip(befores, chain, strict=True)
        ),
        narrowed=key is None and job.would_narrow(),
        suspect=suspect,
        probe=key is not None,
    )


@dataclass(slots=True)
class FanOut:
    """Runs jobs round by round until none has anything left to propose."""

    prover: Prover
    root: Path
    ruff: Ruff
    jobs: list[Job]
    concurrency: int = 4
    max_patches: int | None = None
    rounds: int = 0
    on_round: Callable[[int, int], None] | None = None

    def accepted_count(self) -> int:
        """Patches accepted so far."""
        return sum(1 for j in self.jobs for r in j.records if r.status == "accepted")

    def ground(self) -> dict[str, bytes]:
        """The accepted content of every file changed so far."""
        return {
            j.path: j.content for j in self.jobs if any(r.status == "accepted" for r in j.records)
        }

    async def run(self) -> None:
        """Rounds until done; the number of rounds is bounded by the narrowing."""
        async with anyio.create_task_group() as background:
            await self._rounds(background)
            background.cancel_scope.cancel()  # a run ahead that no round waits for

    async def _rounds(self, background: TaskGroup) -> None:
        ahead: Ahead | None = None
        while True:
            active = [j for j in self.jobs if j.active]
            budget = None if self.max_patches is None else self.max_patches - self.accepted_count()
            if not active or (budget is not None and budget <= 0):
                return
            self.rounds += 1
            started = time.perf_counter()
            await self._propose_all(active)
            proposed = time.perf_counter()
            await self._narrow_static([j for j in active if j.pending])
            log.info(
                "round.static",
                round=self.rounds,
                propose_seconds=round(proposed - started, 2),
                static_seconds=round(time.perf_counter() - proposed, 2),
            )
            proposing = [j for j in active if j.pending]
            log.info(
                "round.proposed",
                round=self.rounds,
                chains=len(proposing),
                probes=sum(len(j.probe_pending) for j in active),
            )
            if budget is not None:
                proposing = self._within_budget(proposing, budget)
            probing = [j for j in active if j.probe_pending]
            if ahead is not None and self._tree(proposing) != ahead.tree:
                ahead.scope.cancel()  # not the tree this round proves: no one will wait for it
            ahead = None
            if not proposing and not probing:
                continue
            if self.on_round:
                self.on_round(self.rounds, len(proposing) + len(probing))
            if not proposing and budget is None:
                ahead = await self._prove_ahead(probing, background)
            verdicts, probe_verdicts = await self._prove_round(proposing, probing, ahead)
            self._settle(proposing, probing, verdicts, probe_verdicts)
            if ahead is not None and not as_predicted(self.jobs, ahead.groups):
                ahead.scope.cancel()
                ahead = None

    @staticmethod
    def _settle(
        proposing: list[Job],
        probing: list[Job],
        verdicts: dict[str, Verdict],
        probe_verdicts: dict[str, list[Verdict]],
    ) -> None:
        """Each job takes its verdicts and decides what to try next."""
        before = {j.path: j.content for j in probing}
        for job in proposing:
            verdict = verdicts[job.path]
            log.info(
                "patch.accepted" if verdict.accepted else "patch.rejected",
                path=job.path,
                rules=",".join(sorted({r for p in job.pending for r in p.rules})),
                stage=job.stages[job.stage].label,
                reason=verdict.reason,
            )
            job.settle(verdict)
        for job in probing:
            job.settle_probes(probe_verdicts[job.path], before[job.path])

    async def _prove_round(
        self, proposing: list[Job], probing: list[Job], ahead: Ahead | None = None
    ) -> tuple[dict[str, Verdict], dict[str, list[Verdict]]]:
        """The round's chains in batches, and the probes side by side with them.

        Probes of one file cannot share a worktree, but the k-th probes of different
        files can: they are proven together, one set per k. A run `ahead` is cancelled
        as soon as a probe's verdict shows its guess wrong: the guessed culprit passes, or
        another probe fails; its pass stands in for the probes it expected to pass
        (`prove_sets`).
        """
        ground = self.ground()
        verdicts: dict[str, Verdict] = {}
        probe_verdicts = {j.path: [_UNDECIDED] * len(j.probe_pending) for j in probing}
        sets: dict[int, list[Candidate]] = {}
        guessed: set[str] = set()  # the probes a run ahead expects to fail
        covered: set[str] = set()  # the probes its pass would cover
        for job in probing:
            culprit = job.guessed_culprit()
            for index, (group, chain) in enumerate(job.probe_pending):
                key = f"{job.path}#probe{index}"
                if group == culprit:
                    guessed.add(key)
                elif ahead is not None and ahead.covers(job.path, group):
                    covered.add(key)
                # A suspect likely fails: a batch of its own saves the confirming run. Where
                # the clues single out one, the other suspects are expected to pass, and
                # share a batch with the other probes; one that fails there is bisected.
                suspect = group == culprit if culprit else group <= job.suspects
                sets.setdefault(index, []).append(_candidate(job, chain, key, suspect=suspect))

        proposed = {j.path for j in proposing}
        # The sets that run the most tests take a worktree first: a long probe started
        # last runs alone while the other worktrees idle (dateutil's round of 32 quick
        # probes ended with 6 s of one 454-test probe).
        cost = {k: max(self.prover.tests_to_run([c]) for c in sets[k]) for k in sets}
        groups = [sets[k] for k in sorted(sets, key=lambda k: -cost[k])]
        if proposing:
            groups.insert(0, [_candidate(j, j.pending) for j in proposing])
        # Every worktree but the reference proves; the groups share them out.
        workers = max(1, (self.prover.pool.size - 1) // max(1, len(groups)))
        whole = self._last_if_accepted(proposing, probing)
        # Round 1's whole run mostly fails on real code, and a failing split run is run
        # again in one process; a later round's chains were narrowed, and mostly pass.
        split = whole and self.rounds > 1

        async def prove(cands: list[Candidate]) -> None:
            found = await self.prover.prove(
                cands, ground, whole=whole, split=split, workers=workers
            )
            verdicts.update(found)
            probes = (c for c in cands if c.key not in proposed)
            wrong = (c for c in probes if (c.key in guessed) == found[c.key].accepted)
            if ahead is not None and any(wrong):
                ahead.scope.cancel()

        await prove_sets(self.prover, groups, prove, ahead, covered, verdicts)
        for job in probing:
            for index in range(len(job.probe_pending)):
                probe_verdicts[job.path][index] = verdicts.pop(f"{job.path}#probe{index}")
        return verdicts, probe_verdicts

    async def _narrow_static(self, jobs: list[Job]) -> None:
        """Chains that lint, compile or format refuse are narrowed here, with no test run.

        The static checks of the whole round's chains run in one scratch worktree;
        each refusal is pinned on the step at fault, whose fix is left out or whose
        fixes are split one per step (see `Job.refuse_static`), and the job
        proposes again at once. Tests then run
        once, on what is left: a lint refusal never costs a test run.
        """
        limiter = anyio.CapacityLimiter(self.concurrency)
        for _ in range(STATIC_ROUNDS):
            if not jobs:
                break
            ground = self.ground()
            verdicts = await self.prover.check_static(
                [_candidate(j, j.pending) for j in jobs], ground
            )
            again = [j for j in jobs if j.path in verdicts and j.refuse_static(verdicts[j.path])]
            # Many files' chains are proposed again at once (their steps up to the one
            # refused are remembered); the rest, and any that came back empty, one by one.
            await self._propose_batches(again)
            async with anyio.create_task_group() as tg:
                for job in again:
                    tg.start_soon(self._propose, job, limiter)
            jobs = [j for j in again if j.pending]

    async def _prove_ahead(self, probing: list[Job], background: TaskGroup) -> Ahead | None:
        """Start the whole suite on the tree the next round will prove, if the clues are right.

        A round of probes only, where each file's clues named its suspects and nothing
        else is left to do: the next round is the last, proven whole, and its chains
        are known now (each suspect refused, the rest with the held-back fixes). Their
        whole-suite run starts beside the probes; the next round waits for it. If the
        probes say otherwise, it is cancelled (see `Prover.prove_whole_ahead`).
        """
        if not may_guess(self.prover, self.jobs, probing):
            return None
        predicted = {j.path: j.predicted_group() for j in probing}
        groups = {path: group for path, group in predicted.items() if group is not None}
        if len(groups) != len(probing):
            return None
        chains: dict[str, list[Patch]] = {}

        async def guess(job: Job, limiter: anyio.CapacityLimiter) -> None:
            async with limiter:
                request = self._request(job, wanted=groups[job.path])
                propose = job.stages[job.stage].agent.propose
                chains[job.path] = await self._tidy(job, await propose(request))

        # Side by side, as a round's proposals are: this is on the critical path.
        async with anyio.create_task_group() as tg:
            limiter = anyio.CapacityLimiter(self.concurrency)
            for job in probing:
                tg.start_soon(guess, job, limiter)
        if not all(chains.values()):
            return None
        tree = self.ground() | {path: chain[-1].changes[0].new for path, chain in chains.items()}
        scope, done = anyio.CancelScope(), anyio.Event()

        async def ahead() -> None:
            try:
                with scope:
                    await self.prover.prove_whole_ahead(tree)
            finally:
                done.set()

        background.start_soon(ahead)
        made = {
            path: frozenset(v.identity for v in asked_of(chain, None))
            for path, chain in chains.items()
        }
        return Ahead(scope, groups, tree, done, made)

    def _tree(self, proposing: list[Job]) -> dict[str, bytes]:
        """The tree a round's chains make, on top of what was accepted."""
        return self.ground() | {j.path: j.pending[-1].changes[0].new for j in proposing}

    def _last_if_accepted(self, proposing: list[Job], probing: list[Job]) -> bool:
        """Whether accepting every chain of this round would end the run.

        Such a round is proven against the whole suite in one batch: if it passes,
        its tree is exactly the merged one, and that run is the gate as well.
        """
        if probing or not proposing or self.max_patches is not None:
            return False
        if any(j.active for j in self.jobs if not j.pending):
            return False
        return all(len(j.queue) == 1 and j.stage == len(j.stages) - 1 for j in proposing)

    def _within_budget(self, proposing: list[Job], budget: int) -> list[Job]:
        kept = []
        for job in proposing:
            if budget <= 0:
                job.stop()
                continue
            budget -= job.keep_first(budget)
            kept.append(job)
        return kept

    async def _propose_batches(self, active: list[Job]) -> None:
        """Jobs whose agent can propose for many files at once do so, together."""
        groups: dict[tuple[int, str], tuple[Stage, list[Job]]] = {}
        for job in active:
            if job.pending or not job.active or not job.queue or job.probes:
                continue
            stage = job.stages[job.stage]
            if isinstance(stage.agent, BatchAgent):
                groups.setdefault((id(stage.agent), stage.mode), (stage, []))[1].append(job)

        for stage, jobs in groups.values():
            # Even one file: the batch agent lints each step as the proof does (a file in
            # a worktree, noqa ignored), so the proof finds those lints made already.
            requests = [self._request(job) for job in jobs]
            agent = stage.agent
            assert isinstance(agent, BatchAgent)  # noqa: S101 - grouped by it above
            chains = await agent.propose_many(requests, self.prover.pool.use)
            for job, chain in zip(jobs, chains, strict=True):
                job.proposed(chain)

    def _request(self, job: Job, wanted: frozenset[str] | None = None) -> Request:
        stage = job.stages[job.stage]
        return Request(
            task=job.task,
            mode=stage.mode,
            content={job.path: job.content},
            root=self.root,
            wanted=wanted if wanted is not None else job.queue[0],
            blocked=frozenset(job.blocked),
            groups=tuple(job.groups),
            round=self.rounds,
            feedback=dict(job.feedback),
            attempts=dict(job.attempts),
        )

    async def _propose_all(self, active: list[Job]) -> None:
        if any(job.learns for job in active):
            # A model's proposals cost money: none goes out before the tests at base
            # are known to run (a broken test command ends the run first).
            await self.prover.baseline_known()
        await self._propose_batches(active)
        limiter = anyio.CapacityLimiter(self.concurrency)
        async with anyio.create_task_group() as tg:
            for job in active:
                tg.start_soon(self._propose, job, limiter)
                for group in job.probes:
                    tg.start_soon(self._probe, job, group, limiter)
        for job in active:
            job.end_proposing()

    async def _propose(self, job: Job, limiter: anyio.CapacityLimiter) -> None:
        async with limiter:
            # Not beside the job's own probes: a chain landing in their round would change
            # the content their fixes were found in, and a fix whose line it rewrote would
            # no longer be found when the probes' winners are asked for.
            while job.active and job.queue and not job.pending and not job.probes:
                stage = job.stages[job.stage]
                job.proposed(await self._tidy(job, await stage.agent.propose(self._request(job))))

    async def _probe(self, job: Job, group: frozenset[str], limiter: anyio.CapacityLimiter) -> None:
        async with limiter:
            stage = job.stages[job.stage]
            request = self._request(job, wanted=group)
            job.probe_proposed(group, await self._tidy(job, await stage.agent.propose(request)))

    async def _tidy(self, job: Job, chain: list[Patch]) -> list[Patch]:
        """Format what a fix disturbed in a file that was format-clean (and only there)."""
        if not chain:
            return chain
        if job.format_clean is None:
            job.format_clean = await self.ruff.format_source(job.path, job.content) == job.content
        if not job.format_clean:
            return chain
        tidy, previous = [], job.content
        for patch in chain:
            new = await self.ruff.format_source(job.path, patch.changes[0].new)
            change = FileChange(path=job.path, old_sha=sha256(previous), new=new)
            tidy.append(patch.model_copy(update={"changes": (change,)}))
            previous = new
        return tidy
