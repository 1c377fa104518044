"""The fan-out: every task proposes, the prover judges, rejected fixes are narrowed down.

Each round, every task with work left proposes one candidate (a chain of
one-rule patches on top of its accepted content); all candidates of a round
touch different files, so they are proven together as one batch. A rejected
candidate that fixed several violations is split in two and both halves are
tried again; a rejected single fix is blocked and reported. So one fix that
changes behaviour is rejected while the other fixes of its file still land.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import structlog

from agents import Request
from sandbox import Candidate, FileChange, Patch, Ruff, Verdict, sha256

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from agents import Stage, Task
    from sandbox import Prover, Violation

log = structlog.get_logger("fixbot")


@dataclass(slots=True)
class PatchRecord:
    """A patch and what became of it."""

    patch: Patch
    status: str  # accepted, rejected, dropped
    verdict: Verdict
    before: bytes  # the content the patch replaced


PROBE_LIMIT = 8


def split_targets(targets: list[Violation]) -> list[frozenset[str]]:
    """Two groups to try one after the other, the likelier-good one first.

    Safe fixes almost never change behaviour, so a failing mix is split into its
    safe and its unsafe fixes first; after that, halves in rule order.
    """
    unique = sorted(
        {v.fingerprint: v for v in targets}.values(), key=lambda v: (v.rule, v.fingerprint)
    )
    safe = [v.fingerprint for v in unique if v.applicability == "safe"]
    rest = [v.fingerprint for v in unique if v.applicability != "safe"]
    if safe and rest:
        return [frozenset(safe), frozenset(rest)]
    fps = [v.fingerprint for v in unique]
    half = len(fps) // 2
    return [frozenset(fps[:half]), frozenset(fps[half:])]


@dataclass(slots=True)
class Job:
    """One task's way through the stages."""

    task: Task
    stages: list[Stage]
    content: bytes
    stage: int = 0
    queue: list[frozenset[str] | None] = field(default_factory=lambda: [None])
    blocked: set[str] = field(default_factory=set)
    records: list[PatchRecord] = field(default_factory=list)
    pending: list[Patch] = field(default_factory=list)
    format_clean: bool | None = None  # whether the file was ruff-format clean at base
    attempts: dict[str, int] = field(default_factory=dict)  # fingerprint -> rejected attempts
    proposals: int = 0
    # A bound on proposals for one task, whatever goes wrong in narrowing it down.
    max_proposals: int = 64
    feedback: dict[str, str] = field(default_factory=dict)  # fingerprint -> the last verdict
    max_attempts: int = 1
    # Fixes tried one by one, side by side, in the next round (see `settle`).
    probes: list[frozenset[str]] = field(default_factory=list)
    probe_pending: list[tuple[frozenset[str], list[Patch]]] = field(default_factory=list)
    probed: set[str] = field(default_factory=set)
    held: frozenset[str] = frozenset()  # safe fixes asked for again with the probes that pass

    @property
    def path(self) -> str:
        """The task's one file."""
        return self.task.files[0]

    @property
    def active(self) -> bool:
        """Whether this job has anything left to propose."""
        return self.stage < len(self.stages)

    def advance(self) -> None:
        """On to the next stage, asking for everything again."""
        self.stage += 1
        self.queue = [None]

    @property
    def learns(self) -> bool:
        """Whether the current stage's agent can use a verdict to try again."""
        return self.active and getattr(self.stages[self.stage].agent, "learns", False)

    def settle(self, verdict: Verdict) -> None:
        """Record the verdict on the pending chain and decide what to try next."""
        chain, self.pending = self.pending, []
        group = self.queue.pop(0)
        before = self.content
        self.proposals += 1
        if verdict.accepted:
            for patch in chain:
                self.records.append(PatchRecord(patch, "accepted", verdict, before))
                before = patch.changes[0].new
            self.content = before
        else:
            # Only what was asked for is narrowed: a chain also fixes what its own steps
            # uncovered (an import left unused), and those come back with every retry.
            asked = [v for p in chain for v in p.targets if group is None or v.fingerprint in group]
            fingerprints = sorted({v.fingerprint for v in asked} or set(group or ()))
            if len({v.fingerprint for v in asked}) > 1 and self.proposals < self.max_proposals:
                self._narrow(asked)
            else:
                self._refuse(chain, verdict, before, fingerprints)
        if not (self.queue or self.probes or self.probe_pending):
            self.advance()

    def would_narrow(self) -> bool:
        """Whether a refusal of the pending chain would be narrowed down, not recorded."""
        group = self.queue[0] if self.queue else None
        asked = {
            v.fingerprint
            for p in self.pending
            for v in p.targets
            if group is None or v.fingerprint in group
        }
        return len(asked) > 1 and self.proposals + 1 < self.max_proposals

    def _narrow(self, asked: list[Violation]) -> None:
        """Narrow a failing chain down: one bad fix must not sink the good ones next to it.

        The few risky fixes (unsafe ones, a model's) are each tried on their own in
        the next round, side by side: one round finds the bad ones where halving takes
        two per level. The safe rest is held back and asked for with the risky fixes
        that pass, in one chain: a round saved, as safe fixes almost never break a
        test (and if they do, that chain is halved). Many fixes, or ones that passed
        alone but fail together, are halved instead.
        """
        fingerprints = {v.fingerprint for v in asked}
        risky = sorted({v.fingerprint for v in asked if v.applicability != "safe"})
        safe = frozenset(fingerprints - set(risky))
        fresh = not fingerprints <= self.probed
        if fresh and risky and len(risky) <= PROBE_LIMIT:
            self.held = safe
            self.probes = [frozenset({fp}) for fp in risky]
            self.probed |= fingerprints
        elif fresh and len(fingerprints) <= PROBE_LIMIT:
            self.probes = [frozenset({fp}) for fp in sorted(fingerprints)]
            self.probed |= fingerprints
        else:
            self.queue[:0] = split_targets(asked)

    def release_held(self) -> None:
        """Ask for the held-back safe fixes (with whatever passed its probe)."""
        if self.held:
            self.queue.insert(0, self.held)
            self.held = frozenset()

    def settle_probes(self, verdicts: list[Verdict], before: bytes) -> None:
        """Refuse the fixes that failed alone; ask for the ones that passed, together."""
        good: set[str] = set()
        for (group, chain), verdict in zip(self.probe_pending, verdicts, strict=True):
            self.proposals += 1
            if verdict.accepted:
                good |= group
            else:
                self._refuse(chain, verdict, before, sorted(group))
        self.probe_pending = []
        if good or self.held:
            # Proven one by one; together, with the safe fixes held back and on top of
            # what landed meanwhile, they are proven once more before anything lands.
            self.queue.insert(0, frozenset(good | self.held))
            self.held = frozenset()
        if not (self.queue or self.probes):
            self.advance()

    def _refuse(
        self, chain: list[Patch], verdict: Verdict, before: bytes, fingerprints: list[str]
    ) -> None:
        # One record for the whole chain of a single fix: what a person would take over.
        merged = chain[-1].model_copy(
            update={
                "id": chain[0].id,
                "rules": tuple(sorted({r for p in chain for r in p.rules})),
                "targets": tuple(v for p in chain for v in p.targets),
            }
        )
        self.records.append(PatchRecord(merged, "rejected", verdict, before))
        for target in fingerprints:
            self.attempts[target] = self.attempts.get(target, 0) + 1
        if len(fingerprints) == 1 and self.learns:
            (target,) = fingerprints
            if self.attempts[target] < self.max_attempts:
                self.feedback[target] = f"{verdict.reason}\n{verdict.detail}"
                self.queue.insert(0, frozenset(fingerprints))
                return
        self.blocked.update(fingerprints)


_UNDECIDED = Verdict(patch_id="", accepted=False, reason="undecided")


def _candidate(job: Job, chain: list[Patch], key: str | None = None) -> Candidate:
    return Candidate(
        key=key or job.path,
        agent=chain[0].agent,
        kind=job.stages[job.stage].label,
        before={job.path: job.content},
        after={job.path: chain[-1].changes[0].new},
        targets=Counter(v.fingerprint for p in chain for v in p.targets),
        narrowed=key is None and job.would_narrow(),
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
        while True:
            active = [j for j in self.jobs if j.active]
            budget = None if self.max_patches is None else self.max_patches - self.accepted_count()
            if not active or (budget is not None and budget <= 0):
                return
            self.rounds += 1
            await self._propose_all(active)
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
            if not proposing and not probing:
                continue
            if self.on_round:
                self.on_round(self.rounds, len(proposing) + len(probing))
            verdicts, probe_verdicts = await self._prove_round(proposing, probing)
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
        self, proposing: list[Job], probing: list[Job]
    ) -> tuple[dict[str, Verdict], dict[str, list[Verdict]]]:
        """The round's chains in batches, and the probes side by side with them.

        Probes of one file cannot share a worktree, but the k-th probes of different
        files can: they are proven together, one set per k.
        """
        ground = self.ground()
        verdicts: dict[str, Verdict] = {}
        probe_verdicts = {j.path: [_UNDECIDED] * len(j.probe_pending) for j in probing}
        sets: dict[int, list[Candidate]] = {}
        for job in probing:
            for index, (_, chain) in enumerate(job.probe_pending):
                sets.setdefault(index, []).append(
                    _candidate(job, chain, key=f"{job.path}#probe{index}")
                )

        groups = list(sets.values())
        if proposing:
            groups.insert(0, [_candidate(j, j.pending) for j in proposing])
        # Every worktree but the reference proves; the groups share them out.
        workers = max(1, (self.prover.pool.size - 1) // max(1, len(groups)))
        whole = self._last_if_accepted(proposing, probing)

        async def prove(cands: list[Candidate]) -> None:
            verdicts.update(await self.prover.prove(cands, ground, whole=whole, workers=workers))

        async with anyio.create_task_group() as tg:
            for cands in groups:
                tg.start_soon(prove, cands)
        for job in probing:
            for index in range(len(job.probe_pending)):
                probe_verdicts[job.path][index] = verdicts.pop(f"{job.path}#probe{index}")
        return verdicts, probe_verdicts

    def _last_if_accepted(self, proposing: list[Job], probing: list[Job]) -> bool:
        """Whether accepting every chain of this round would end the run.

        Such a round is proven against the whole suite in one batch: if it passes,
        its tree is exactly the merged one, and that run is the gate as well.
        """
        if probing or not proposing or self.max_patches is not None:
            return False
        if any(j.active for j in self.jobs if not j.pending):
            return False
        return all(
            len(j.queue) == 1 and not j.probes and j.stage == len(j.stages) - 1 for j in proposing
        )

    def _within_budget(self, proposing: list[Job], budget: int) -> list[Job]:
        kept = []
        for job in proposing:
            if budget <= 0:
                job.pending = []
                job.stage = len(job.stages)
                continue
            job.pending = job.pending[:budget]
            budget -= len(job.pending)
            kept.append(job)
        return kept

    async def _propose_batches(self, active: list[Job]) -> None:
        """Fresh stages of agents that can propose for many files at once do so."""
        groups: dict[tuple[int, str], tuple[Stage, list[Job]]] = {}
        for job in active:
            if job.pending or not job.active or not job.queue or job.queue[0] is not None:
                continue
            if job.blocked:
                continue
            stage = job.stages[job.stage]
            if hasattr(stage.agent, "propose_many"):
                groups.setdefault((id(stage.agent), stage.mode), (stage, []))[1].append(job)
        for stage, jobs in groups.values():
            if len(jobs) < 2:
                continue
            requests = [self._request(job) for job in jobs]
            chains = await stage.agent.propose_many(requests, self.prover.pool.use)  # type: ignore[attr-defined]
            for job, chain in zip(jobs, chains, strict=True):
                job.pending = chain
                if not chain:
                    job.queue.pop(0)
                    if not job.queue:
                        job.advance()

    def _request(self, job: Job, wanted: frozenset[str] | None = None) -> Request:
        stage = job.stages[job.stage]
        return Request(
            task=job.task,
            mode=stage.mode,
            content={job.path: job.content},
            root=self.root,
            wanted=wanted if wanted is not None else job.queue[0],
            blocked=frozenset(job.blocked),
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
            job.probes = []
            if not job.probe_pending:
                job.release_held()  # no probe had anything to try
            if job.active and not (job.queue or job.pending or job.probe_pending):
                job.advance()

    async def _propose(self, job: Job, limiter: anyio.CapacityLimiter) -> None:
        async with limiter:
            while job.active and job.queue and not job.pending:
                stage = job.stages[job.stage]
                job.pending = await self._tidy(job, await stage.agent.propose(self._request(job)))
                if not job.pending:
                    job.queue.pop(0)
                    if not job.queue and not job.probes:
                        job.advance()

    async def _probe(self, job: Job, group: frozenset[str], limiter: anyio.CapacityLimiter) -> None:
        async with limiter:
            stage = job.stages[job.stage]
            request = self._request(job, wanted=group)
            chain = await self._tidy(job, await stage.agent.propose(request))
            if chain:
                job.probe_pending.append((group, chain))
            else:
                job.blocked |= group  # nothing left to propose for it

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
