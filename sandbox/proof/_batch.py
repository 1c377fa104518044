"""How many candidates to prove in one batch: sized from the failure rate seen so far.

One batch run answers "are all of these good?". When few patches are bad, big
batches save runs; when many are, bisection costs more than it saves
(docs/architecture.md, "Batches and their cost": batch+bisect is near the N·H(p)
bound with B* about 55 to 77 at p = 0.01, 13 at 0.05, 3 at 0.2, and one by one
wins past p ≈ 0.38). So p is
estimated per kind of patch (agent and mode) from this run, starting from a
prior, and the batch size follows it.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._candidate import Candidate

# Before anything is seen: ruff's safe fixes almost never break tests, unsafe ones
# sometimes, a model's more often (guesses; see docs/architecture.md, "Batches and their cost").
PRIORS = {"safe": 0.005, "unsafe": 0.03, "fix": 0.01, "llm": 0.15}
PRIOR_WEIGHT = 10
MAX_BATCH = 256


class Batcher:
    """Tracks test failures per kind and splits candidates into batches."""

    def __init__(self) -> None:
        self.tested: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()

    def failure_rate(self, kind: str) -> float:
        """Estimated chance that a candidate of this kind fails the tests."""
        prior = PRIORS.get(kind.rsplit(":", 1)[-1], 0.05)  # by mode, else by agent
        return (self.failed[kind] + prior * PRIOR_WEIGHT) / (self.tested[kind] + PRIOR_WEIGHT)

    def size(self, kind: str) -> int:
        """The batch size for a kind: about 1/(1.5 p), 1 when bisection cannot pay."""
        p = self.failure_rate(kind)
        if p >= 0.38:
            return 1
        return max(1, min(MAX_BATCH, round(1 / (1.5 * p))))

    def record(self, kind: str, *, failed: bool) -> None:
        """One candidate's test outcome."""
        self.tested[kind] += 1
        self.failed[kind] += failed

    def split(self, candidates: Sequence[Candidate], workers: int = 1) -> list[list[Candidate]]:
        """Batches of one kind each, no bigger than that kind's size, neighbours together.

        A suspect is a batch of its own.

        Candidates are taken in path order: files of one package share their tests,
        so with test impact selection a batch of neighbours runs few tests. There are
        at least as many batches as `workers`, so every worktree has one to prove.
        """
        by_kind: dict[str, list[Candidate]] = {}
        batches = []
        for cand in sorted(candidates, key=lambda c: c.key):
            if cand.suspect:
                batches.append([cand])  # likely to fail: sharing would cost a second run
            else:
                by_kind.setdefault(cand.kind, []).append(cand)
        for kind, group in by_kind.items():
            size = min(self.size(kind), max(1, -(-len(group) // max(1, workers))))
            batches += [group[i : i + size] for i in range(0, len(group), size)]
        return batches
