"""What the proof is about and what it cost: the values every proof module shares.

A leaf module: the prover, its static checks, batching and bisection all import it,
and it imports none of them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fixbot.sandbox._types import Step


@dataclass(frozen=True, slots=True)
class Candidate:
    """One task's proposed change, judged as a unit."""

    key: str
    agent: str
    before: Mapping[str, bytes]
    after: Mapping[str, bytes]
    targets: Counter[str] = field(default_factory=Counter)
    # The chain's steps, each judged for lint against the content it started from;
    # empty: one step per file, from `before` to `after`, fixing `targets`.
    steps: tuple[Step, ...] = ()
    # How the agent made it ("fix", "safe", "llm"...): candidates of one agent and mode
    # share a failure rate.
    mode: str = ""
    # A file's whole accepted chain against the base (the gate's): each step of it
    # passed the static checks, so content that passed them needs no second look.
    accepted_chain: bool = False
    # Whether the caller, if this is refused, tries each of its fixes alone: then a
    # batch run that pins a failing test on it alone needs no confirming run of its own.
    narrowed: bool = False
    # The failing tests' reports point at it (see `Verdict.clues`): it likely fails, so
    # it is proven in a batch of its own, and a failure is its own run at once.
    suspect: bool = False
    # A probe of a narrowing (some of a file's fixes, tried apart): its pass lands
    # nothing, so where it fails only beside another probe, neither is refused.
    probe: bool = False

    @property
    def kind(self) -> str:
        """The agent and mode, as one key of the failure rates (`agent:mode`)."""
        return f"{self.agent}:{self.mode}" if self.mode else self.agent


@dataclass(slots=True)
class ProofStats:
    """What proving cost, for the report and the benchmarks."""

    test_runs: int = 0
    test_seconds: float = 0.0
    reruns_at_base: int = 0
    lint_runs: int = 0
    batches: int = 0
    tested: int = 0  # candidates that reached the tests
    failed_tests: int = 0  # of those, rejected for the tests
    selected_runs: int = 0  # test runs narrowed by test impact selection
    reused_runs: int = 0  # whole-suite runs on a tree that had passed it already
    cached_runs: int = 0  # runs found made already, in this run or an earlier one
