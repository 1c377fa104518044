"""What every ruff agent shares: which fixes a mode takes, in which order, and what a
step fixed. A leaf module: the per-file agent and the many-files one both import it.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Protocol

from fixbot.sandbox import carry_origins

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from fixbot.sandbox import LintCache, Patch, Violation

    from ._protocol import Request

# Which fixes a mode offers, and which it may apply along the way (cascades).
WANTED = {"safe": {"safe"}, "unsafe": {"unsafe"}, "fix": {"safe", "unsafe"}}
ALLOWED = {"safe": {"safe"}, "unsafe": {"safe", "unsafe"}, "fix": {"safe", "unsafe"}}


def step_order(violation: Violation) -> tuple[int, str]:
    """Safe fixes before unsafe ones, then by rule."""
    return (violation.applicability != "safe", violation.rule)


def step_kind(targets: tuple[Violation, ...] | list[Violation], mode: str) -> str:
    """'unsafe' if any target's fix is unsafe, else 'safe'."""
    if not targets:
        return "safe" if mode == "safe" else mode
    return "unsafe" if any(v.applicability == "unsafe" for v in targets) else "safe"


def gone_of(
    chosen: Sequence[Violation], before: Sequence[Violation], after: Sequence[Violation]
) -> list[Violation]:
    """The chosen findings a step fixed: gone from `after`, counted as a multiset."""
    gone = Counter(v.fingerprint for v in before) - Counter(v.fingerprint for v in after)
    out = []
    for v in chosen:
        if gone[v.fingerprint] > 0:
            gone[v.fingerprint] -= 1
            out.append(v)
    return out


# The one finding `ruff format` can fix: a line too long, where the formatter can wrap it.
LONG_LINE = "E501"


def made_too_long(
    before: Sequence[Violation], after: Sequence[Violation], fixed: Iterable[Violation]
) -> list[int]:
    """Rows of the lines a step made too long (E501 it uncovered), to be wrapped.

    PT009 joins a multi-line `assertEqual(...)` into one `assert ... == ...` line;
    blind `ruff check --fix` leaves it too long. Formatting just those lines
    makes the step whole: no new finding, and no line that no fix touched rewritten.
    """
    if not any(v.rule == LONG_LINE for v in after):
        return []
    carried = carry_origins(before, after, fixed, 0)  # "+0": what this very step uncovered
    return sorted({v.location.row for v in carried if v.rule == LONG_LINE and v.origin == "+0"})


class StepMaker(Protocol):
    """What proposing for many files at once needs of the ruff agent."""

    select: tuple[str, ...] | None
    ruff_executable: str
    max_iterations: int
    lint_cache: LintCache | None

    def allowed(self, violation: Violation, mode: str) -> bool:
        """Whether `mode` may apply this violation's fix (asked for, or uncovered)."""
        ...

    def step(
        self,
        path: str,
        request: Request,
        number: int,
        rule: str,
        targets: tuple[Violation, ...],
        before: bytes,
        after: bytes,
        chain: list[Patch],
    ) -> Patch:
        """One step of a chain: one rule's fixes in one file."""
        ...
