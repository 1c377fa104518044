"""One task's way through the stages, and how a failing chain of fixes is narrowed down.

A rejected chain that fixed several violations is not thrown away: its risky
fixes are each tried alone (first those in the functions the failing tests'
reports name), the safe rest held back and asked for again with the ones that
pass; many fixes, or fixes that pass alone but fail together, are halved. A
single fix that fails is refused and reported (or, for an agent that learns,
sent back with its verdict). So one fix that changes behaviour is
refused while the other fixes of its file still land.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from fixbot.sandbox import cleared

from ._chains import (
    asked_of,
    cosmetic,
    failed_functions,
    fixing,
    new_content,
    split_targets,
    suspected,
)

if TYPE_CHECKING:
    from fixbot.agents import Stage, Task
    from fixbot.sandbox import Patch, Verdict, Violation


@dataclass(slots=True)
class PatchRecord:
    """A patch and what became of it."""

    patch: Patch
    status: str  # accepted, rejected, dropped
    verdict: Verdict
    before: bytes  # the content the patch replaced


PROBE_LIMIT = 8
# Where this share of the fixes narrowed in a file failed alone, the next failing group
# is tried fix by fix at once, up to this many: past p = 0.38 no group scheme beats one
# by one (docs/architecture.md). dateutil's test of its imports: 12 of 19 F401 bad.
DENSE_SHARE = 0.38
DENSE_PROBE_LIMIT = 32
Status = Literal["asking", "proving", "done"]


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
    # Fixes in the functions a failing test's report named: probed first, each alone.
    suspects: set[str] = field(default_factory=set)
    # Of those, the fixes in a function named on a line the report points at.
    pointed: set[str] = field(default_factory=set)
    # Fixes proposed in steps of their own, group by group, so that a static refusal
    # is pinned on a smaller group each time (see `refuse_static`).
    groups: list[frozenset[str]] = field(default_factory=list)
    # Single fixes probed alone that their tests refused.
    alone_refused: int = 0
    # Fixes that passed a probe (alone or in a group): what a failing chain of fixes
    # already probed is halved down to, in the queue, once none is left untried.
    passed_probe: set[str] = field(default_factory=set)

    @property
    def path(self) -> str:
        """The task's one file."""
        return self.task.files[0]

    @property
    def active(self) -> bool:
        """Whether this job has anything left to propose."""
        return self.stage < len(self.stages)

    @property
    def status(self) -> Status:
        """Where the job is: done, with a chain or probes to prove, or with more to ask for."""
        if not self.active:
            return "done"
        if self.pending or self.probe_pending:
            return "proving"
        return "asking"

    def advance(self) -> None:
        """On to the next stage, asking for everything again."""
        self.stage += 1
        self.queue = [None]

    def _advance_if_idle(self) -> None:
        """The one rule: a stage with nothing queued, probed or pending is exhausted."""
        if self.active and not (self.queue or self.probes or self.probe_pending or self.pending):
            self.advance()

    def drop_accepted(self, reason: str, detail: str, base: bytes) -> None:
        """The final gate drops what landed here: the file goes back to `base`."""
        for rec in self.records:
            if rec.status == "accepted":
                rec.status = "dropped"
                rec.verdict = rec.verdict.model_copy(update={"reason": reason, "detail": detail})
        self.content = base

    def stop(self) -> None:
        """Propose nothing more (the run's patch budget is spent)."""
        self.pending = []
        self.stage = len(self.stages)

    def keep_first(self, budget: int) -> int:
        """Keep at most `budget` steps of the pending chain; how many are kept."""
        self.pending = self.pending[:budget]
        return len(self.pending)

    def proposed(self, chain: list[Patch]) -> None:
        """The agent's chain for the head of the queue; none moves on to the next group."""
        self.pending = chain
        if not chain:
            self.queue.pop(0)
            self._advance_if_idle()

    def probe_proposed(self, group: frozenset[str], chain: list[Patch]) -> None:
        """A probe's chain to prove; none means nothing is left to propose for it."""
        if chain:
            self.probe_pending.append((group, chain))
        else:
            self.blocked |= group

    def end_proposing(self) -> None:
        """The round's proposals are in: probes asked, held fixes released if none came."""
        self.probes = []
        if not self.probe_pending:
            self.release_held()  # no probe had anything to try
        self._advance_if_idle()

    @property
    def learns(self) -> bool:
        """Whether the current stage's agent can use a verdict to try again."""
        return self.active and self.stages[self.stage].agent.learns

    def settle(self, verdict: Verdict) -> None:
        """Record the verdict on the pending chain and decide what to try next."""
        chain, self.pending = self.pending, []
        group = self.queue.pop(0)
        before = self.content
        self.proposals += 1
        if verdict.accepted:
            for step, patch in enumerate(chain, 1):
                # Each patch is a step of the chain: it names what that step revealed.
                shown = tuple((n, d) for n, d in verdict.revealed if n == step)
                its_own = verdict.model_copy(update={"revealed": shown})
                self.records.append(PatchRecord(patch, "accepted", its_own, before))
                before = patch.changes[0].new
            self.content = before
        else:
            asked = asked_of(chain, group)
            fingerprints = sorted({v.identity for v in asked} or set(group or ()))
            if self._narrows(asked, self.proposals):
                if rest := self._clear(chain, before, asked, verdict):
                    own = failed_functions(self.path, verdict.failing_tests)
                    named = suspected(chain, before, set(verdict.clues))
                    inside = suspected(chain, before, own)
                    # Only a step that changed the code can have changed what a test saw.
                    idle = cosmetic(chain, before, named | inside)
                    self.pointed |= suspected(chain, before, set(verdict.pointed)) - idle
                    self._narrow(rest, named - idle, inside - idle)
            else:
                self._refuse(chain, verdict, before, fingerprints)
        self._advance_if_idle()

    def would_narrow(self) -> bool:
        """Whether a refusal of the pending chain would be narrowed down, not recorded."""
        group = self.queue[0] if self.queue else None
        return self._narrows(asked_of(self.pending, group), self.proposals + 1)

    @property
    def probe_limit(self) -> int:
        """How many fixes are tried each alone at once rather than halved."""
        # Against every fix narrowed here, not only those tried alone: single fixes are
        # tried at the bottom of failing groups, where a bad one is the rule.
        dense = self.alone_refused >= 2 and self.alone_refused >= DENSE_SHARE * len(self.probed)
        return DENSE_PROBE_LIMIT if dense else PROBE_LIMIT

    def _narrows(self, asked: list[Violation], proposals: int) -> bool:
        """The one rule for narrowing a refused chain down rather than recording it."""
        return len({v.identity for v in asked}) > 1 and proposals < self.max_proposals

    def _clear(
        self, chain: list[Patch], before: bytes, asked: list[Violation], verdict: Verdict
    ) -> list[Violation]:
        """The asked fixes left to narrow once those the failing run points away from are
        held back (`cleared`: in a test module, fixes in test functions whose tests passed).

        What is left is probed, however few: a fix is refused only after a run of its own.
        """
        ids = {v.identity for v in asked}
        innocent = self._innocent(chain, before, frozenset(ids), verdict)
        if not innocent:
            return asked
        rest = [v for v in asked if v.identity not in innocent]
        left = {v.identity for v in rest}
        self.held |= innocent
        if len(left) > 1:
            return rest
        self.probes.append(frozenset(left))
        self.probed |= left
        return []

    def _innocent(
        self, chain: list[Patch], before: bytes, ids: frozenset[str], verdict: Verdict
    ) -> frozenset[str]:
        """Which of `ids` the failing run clears; none where that leaves nothing to suspect,
        or only a fix that passed alone before (then the usual narrowing decides)."""
        steps = [
            ({v.identity: v.location.row for v in p.targets if v.identity in ids}, new_content(p))
            for p in chain
        ]
        innocent = frozenset(cleared(self.path, before, steps, verdict.failing_tests)) & ids
        rest = ids - innocent
        if not innocent or not rest or (len(rest) == 1 and rest <= self.probed):
            return frozenset()
        return innocent

    def _narrow(
        self, asked: list[Violation], suspected: set[str], in_failed: set[str] | None = None
    ) -> None:
        """Narrow a failing chain down: one bad fix must not sink the good ones next to it.

        The few risky fixes (unsafe ones, a model's) are each tried on their own in
        the next round, side by side: one round finds the bad ones where halving takes
        two per level. The safe rest is held back and asked for with the risky fixes
        that pass, in one chain: a round saved, as safe fixes almost never break a
        test (and if they do, that chain is narrowed in turn). Many fixes are halved,
        both halves probed side by side, and a failing half again, down to single
        fixes. Fixes that passed alone but fail together are halved in the queue: the
        first half lands, the second is narrowed on top of it.

        Where the failing tests' reports name the functions some risky fixes lie in
        (`suspected`), only those are tried alone; the other risky fixes are tried
        together beside them, and only if that fails, each alone.
        """
        fingerprints = {v.identity for v in asked}
        # A fix inside the very test that failed (`in_failed`) is risky whatever its
        # applicability; where only such fixes are risky, up to DENSE_PROBE_LIMIT of them
        # are each tried alone at once. dateutil's test of its imports failed for 12 of
        # the 14 (safe) F401 fixes in it: held back as safe, they cost two rounds more.
        in_failed = in_failed or set()
        risky = sorted(
            {v.identity for v in asked if v.applicability != "safe" or v.identity in in_failed}
        )
        limit = DENSE_PROBE_LIMIT if risky and set(risky) <= in_failed else PROBE_LIMIT
        safe = frozenset(fingerprints - set(risky))
        fresh = not fingerprints <= self.probed
        unprobed = [fp for fp in risky if fp not in self.probed]
        # A fix inside the failing test is suspect as much as one the tracebacks name: a
        # test that is "no longer collected" (PT014 dropping a duplicate case) leaves no
        # traceback, and dateutil's test_tz.py took three levels of halving to find it.
        suspects = [fp for fp in unprobed if fp in suspected or fp in in_failed]
        cap = DENSE_PROBE_LIMIT if set(suspects) <= in_failed else PROBE_LIMIT
        if fresh and 0 < len(suspects) < len(unprobed) and len(suspects) <= cap:
            others = frozenset(unprobed) - set(suspects)
            self.held |= fingerprints - set(unprobed)
            self.probes = [*(frozenset({fp}) for fp in suspects), others]
            self.probed |= set(suspects)
            self.suspects |= set(suspects)
        elif fresh and risky and len(risky) <= limit:
            self.held |= safe
            self.probes = [frozenset({fp}) for fp in risky]
            self.probed |= fingerprints
        elif fresh and len(fingerprints) <= self.probe_limit:
            self.probes = [frozenset({fp}) for fp in sorted(fingerprints)]
            self.probed |= fingerprints
        elif fresh:
            # Both halves at once, side by side, as bisection does: a round per level,
            # where one half after the other took two. What passes waits with the held.
            self.probes = split_targets(asked)
            self.probed |= fingerprints
        elif untried := [v for v in asked if v.identity not in self.passed_probe]:
            # Held back (a safe fix beside probed risky ones), never tried: tried now,
            # side by side, before any halving in the queue.
            ids = {v.identity for v in untried}
            self.held |= fingerprints - ids
            self.probed |= ids
            if len(ids) <= self.probe_limit:
                self.probes = [frozenset({fp}) for fp in sorted(ids)]
            else:
                self.probes = split_targets(untried)
        else:
            self.queue[:0] = split_targets(asked)

    def refuse_static(self, verdict: Verdict) -> bool:
        """Narrow a chain that lint, compile or format refused, with no test run.

        Each fault of the verdict is pinned on the fixes of one step. A fix the
        fault is pinned on alone, or whose own lines hold what is wrong (a
        culprit), is refused for good, naming its finding. The rest of a step at
        fault is split in two groups, each fixed in a step of its own, so the next
        static check pins the fault on a smaller group. The caller proposes again
        at once. False when there is nothing to narrow (the chain takes the usual way).
        """
        faults = [f for f in verdict.faults if set(f.blame) - self.blocked]
        if not faults or self.proposals >= self.max_proposals:
            return False
        chain, self.pending = self.pending, []
        self.proposals += 1
        for fault in faults:
            blame = sorted(set(fault.blame) - self.blocked)
            culprits = {k: d for k, d in fault.culprits.items() if k in blame}
            if len(blame) == 1:
                culprits = {blame[0]: culprits.get(blame[0], fault.detail)}
            for identity, detail in sorted(culprits.items()):
                refusal = verdict.model_copy(update={"detail": detail, "new_violations": ()})
                # Its step may still land (with its other fixes) under the same id.
                steps = fixing(chain, {identity})
                steps[0] = steps[0].model_copy(update={"id": f"{steps[0].id}~lint"})
                self._refuse(steps, refusal, self.content, [identity])
            rest = [b for b in blame if b not in culprits]
            if len(rest) > 1 and not culprits:
                halves = [frozenset(rest[: len(rest) // 2]), frozenset(rest[len(rest) // 2 :])]
                self.groups = [g - set(rest) for g in self.groups if g - set(rest)] + halves
        return True

    def guessed_culprit(self) -> frozenset[str] | None:
        """The probe the clues say fails: the one suspect probed alone, or of several, the
        one the failing line points at (`Verdict.pointed`); None where they cannot say."""
        alone = [group for group, _ in self.probe_pending if group <= self.suspects]
        if len(alone) > 1:
            # The generated monorepo's SIM118 was a suspect beside a C416 one line above
            # it in the failing test; only the assert that failed called the SIM118 one.
            alone = [group for group in alone if group <= self.pointed]
        return alone[0] if len(alone) == 1 else None

    def predicted_group(self) -> frozenset[str] | None:
        """What the next round asks for if the clues were right, or None without clues.

        Right means: the guessed culprit fails alone, and the other suspects and the
        probe of the other risky fixes pass, so the next chain is those fixes with the
        held-back safe ones.
        """
        groups = [group for group, _ in self.probe_pending]
        culprit = self.guessed_culprit()
        others = [group for group in groups if not group <= self.suspects]
        if self.queue or culprit is None or len(others) != 1:
            return None
        return frozenset(self.held.union(*(group for group in groups if group != culprit)))

    def release_held(self) -> None:
        """Ask for the held-back safe fixes (with whatever passed its probe)."""
        if self.held:
            # Last: the head of the queue may be what a pending chain was asked for.
            self.queue.append(self.held)
            self.held = frozenset()

    def settle_probes(self, verdicts: list[Verdict], before: bytes) -> None:
        """Refuse the fixes that failed alone; ask for the ones that passed, together."""
        good: set[str] = set()
        again: list[frozenset[str]] = []
        for (group, chain), verdict in zip(self.probe_pending, verdicts, strict=True):
            self.proposals += 1
            if len(group) == 1:
                self.alone_refused += verdict.reason == "tests"
            if verdict.accepted:
                good |= group
                self.passed_probe |= group
            elif len(group) > 1:
                # A group refused together (for its tests, a limit, lint...): split
                # until each fix is tried on its own, never refused as a group. Fixes
                # in the tests that passed wait with what passed (`cleared`).
                innocent = self._innocent(chain, before, group, verdict)
                good |= innocent
                again.append(group - innocent)
            else:
                self._refuse(chain, verdict, before, sorted(group))
        self.probe_pending = []
        for group in again:
            # Added to, not set: a chain of this job refused in the same round may have
            # asked for probes of its own.
            ordered = sorted(group)
            if len(ordered) <= self.probe_limit:
                self.probes += [frozenset({fp}) for fp in ordered]
                self.probed |= group
            else:
                half = len(ordered) // 2
                self.probes += [frozenset(ordered[:half]), frozenset(ordered[half:])]
        self.held |= good
        # With probes still to run, what passed waits with the held fixes: a chain landing
        # beside the probes would change the content their fixes were found in, and a
        # fix on a line it rewrote would no longer be found (the probes' own fixes too).
        if self.held and not self.probes:
            # Proven one by one; together, with the safe fixes held back and on top of
            # what landed meanwhile, they are proven once more before anything lands.
            self.queue.insert(0, self.held)
            self.held = frozenset()
        self._advance_if_idle()

    def _refuse(
        self, chain: list[Patch], verdict: Verdict, before: bytes, fingerprints: list[str]
    ) -> None:
        # One record for the whole chain of a single fix: what a person would take over.
        # Its id is unique in the report, though a round may propose the same step twice.
        taken = {r.patch.id for r in self.records}
        patch_id, copies = chain[0].id, 1
        while patch_id in taken:
            copies += 1
            patch_id = f"{chain[0].id}~{copies}"
        merged = chain[-1].model_copy(
            update={
                "id": patch_id,
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
