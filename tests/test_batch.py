"""sandbox._batch: batch sizes follow the failure rate seen so far, per kind of patch."""

from __future__ import annotations

from collections import Counter

import pytest

from fixbot.sandbox.proof._batch import MAX_BATCH, PRIOR_WEIGHT, PRIORS, Batcher
from fixbot.sandbox.proof._prove import Candidate


def cand(key: str, kind: str) -> Candidate:
    """A candidate that changes nothing, of `kind`."""
    agent, _, mode = kind.partition(":")
    return Candidate(key=key, agent=agent, before={}, after={}, mode=mode)


def fail(batcher: Batcher, kind: str, failed: int, passed: int) -> None:
    """Record `failed` failures and `passed` successes for `kind`."""
    for _ in range(failed):
        batcher.record(kind, failed=True)
    for _ in range(passed):
        batcher.record(kind, failed=False)


class TestFailureRate:
    def test_starts_at_the_prior(self) -> None:
        """Before anything is seen, the rate is the prior of the kind's mode."""
        batcher = Batcher()
        assert batcher.failure_rate("ruff:safe") == pytest.approx(PRIORS["safe"])
        assert batcher.failure_rate("llm:llm") == pytest.approx(PRIORS["llm"])
        assert batcher.failure_rate("ruff:unsafe") == pytest.approx(PRIORS["unsafe"])

    def test_unknown_kind_gets_the_default_prior(self) -> None:
        """A kind whose mode has no prior starts at 5%."""
        assert Batcher().failure_rate("codemod:rewrite") == pytest.approx(0.05)

    def test_observations_pull_the_rate(self) -> None:
        """The rate is the prior weighted against what was seen."""
        batcher = Batcher()
        fail(batcher, "ruff:safe", failed=3, passed=7)
        expected = (3 + PRIORS["safe"] * PRIOR_WEIGHT) / (10 + PRIOR_WEIGHT)
        assert batcher.failure_rate("ruff:safe") == pytest.approx(expected)

    def test_kinds_are_counted_apart(self) -> None:
        """Failures of one kind leave another kind's rate alone."""
        batcher = Batcher()
        fail(batcher, "llm:llm", failed=20, passed=0)
        assert batcher.failure_rate("ruff:safe") == pytest.approx(PRIORS["safe"])
        # Same mode, other agent: its own counters, the same prior.
        assert batcher.failure_rate("other:llm") == pytest.approx(PRIORS["llm"])


class TestSize:
    def test_priors_per_kind(self) -> None:
        """Safe ruff fixes start in big batches, a model's in small ones, unknown in between."""
        batcher = Batcher()
        safe, llm, unknown = (batcher.size(k) for k in ("ruff:safe", "llm:llm", "x:unknown"))
        assert safe == round(1 / (1.5 * PRIORS["safe"]))
        assert llm == round(1 / (1.5 * PRIORS["llm"]))
        assert unknown == round(1 / (1.5 * 0.05))
        assert llm < unknown < safe <= MAX_BATCH

    def test_shrinks_as_failures_grow(self) -> None:
        """Each observed failure makes the batch no bigger, and many make it much smaller."""
        batcher = Batcher()
        sizes = [batcher.size("ruff:unsafe")]
        for _ in range(12):
            batcher.record("ruff:unsafe", failed=True)
            sizes.append(batcher.size("ruff:unsafe"))
        assert sizes == sorted(sizes, reverse=True)
        assert sizes[0] > 10 * sizes[-1]
        assert sizes[-1] == 1

    def test_one_at_the_break_even_rate(self) -> None:
        """At p = 0.38 one by one wins: size 1; just below it, still 2."""
        batcher = Batcher()
        # (9 + 0.05 * 10) / (15 + 10) = 0.38 exactly.
        fail(batcher, "x:unknown", failed=9, passed=6)
        assert batcher.failure_rate("x:unknown") == pytest.approx(0.38)
        assert batcher.size("x:unknown") == 1
        below = Batcher()
        fail(below, "x:unknown", failed=9, passed=7)  # 9.5 / 26 ≈ 0.365
        assert below.failure_rate("x:unknown") < 0.38
        assert below.size("x:unknown") == 2

    def test_one_when_everything_fails(self) -> None:
        """A kind that always fails is proven one at a time."""
        batcher = Batcher()
        fail(batcher, "llm:llm", failed=50, passed=0)
        assert batcher.size("llm:llm") == 1

    def test_grows_toward_max_with_successes(self) -> None:
        """Successes make batches bigger, never past MAX_BATCH."""
        batcher = Batcher()
        sizes = [batcher.size("llm:llm")]
        for _ in range(8):
            fail(batcher, "llm:llm", failed=0, passed=250)
            sizes.append(batcher.size("llm:llm"))
        assert sizes == sorted(sizes)
        assert sizes[-1] > sizes[0]
        fail(batcher, "ruff:safe", failed=0, passed=10_000)
        assert batcher.size("ruff:safe") == MAX_BATCH


class TestSplit:
    def test_keeps_kinds_apart(self) -> None:
        """Every batch holds one kind only."""
        cands = [cand(f"f{i:02}.py", ("ruff:safe", "llm:llm")[i % 2]) for i in range(20)]
        batches = Batcher().split(cands)
        assert all(len({c.kind for c in batch}) == 1 for batch in batches)
        assert {batch[0].kind for batch in batches} == {"ruff:safe", "llm:llm"}

    def test_never_exceeds_the_kinds_size(self) -> None:
        """No batch is bigger than its kind's size; all but the last of a kind are full."""
        batcher = Batcher()
        fail(batcher, "ruff:unsafe", failed=4, passed=6)
        cands = [cand(f"m{i:03}.py", "ruff:unsafe") for i in range(40)]
        cands += [cand(f"n{i:03}.py", "llm:llm") for i in range(11)]
        batches = batcher.split(cands)
        for kind in ("ruff:unsafe", "llm:llm"):
            mine = [b for b in batches if b[0].kind == kind]
            size = batcher.size(kind)
            assert all(len(b) <= size for b in mine)
            assert all(len(b) == size for b in mine[:-1])
        assert len([b for b in batches if b[0].kind == "llm:llm"]) == -(-11 // 4)

    def test_covers_every_candidate_once(self) -> None:
        """Each candidate is in exactly one batch."""
        kinds = ("ruff:safe", "ruff:unsafe", "llm:llm", "x:unknown")
        cands = [cand(f"pkg{i % 7}/m{i:03}.py", kinds[i % 4]) for i in range(150)]
        batches = Batcher().split(cands)
        seen = Counter(c.key for batch in batches for c in batch)
        assert seen == Counter(c.key for c in cands)
        assert all(batches)

    def test_keeps_path_order(self) -> None:
        """Within a kind, batches are runs of neighbouring paths in sorted order."""
        batcher = Batcher()
        fail(batcher, "llm:llm", failed=5, passed=5)  # a small size: several batches
        keys = [f"pkg{p}/mod{m}.py" for p in "cab" for m in range(5)]
        batches = batcher.split([cand(k, "llm:llm") for k in reversed(keys)])
        assert len(batches) > 1
        flat = [c.key for batch in batches for c in batch]
        assert flat == sorted(keys)
        # Neighbours together: every batch is a contiguous slice of the sorted paths.
        for batch in batches:
            start = flat.index(batch[0].key)
            assert [c.key for c in batch] == flat[start : start + len(batch)]

    def test_empty(self) -> None:
        """Nothing to split, no batches."""
        assert Batcher().split([]) == []

    def test_kind_defaults_to_agent(self) -> None:
        """A candidate without a kind is batched under its agent's name."""
        one = Candidate(key="a.py", agent="ruff", before={}, after={})
        assert one.kind == "ruff"
        assert Batcher().split([one]) == [[one]]
