"""What every ruff agent shares: which fixes a mode takes, in which order, and what a
step fixed. A leaf module: the per-file agent and the many-files one both import it.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Protocol

from fixbot.sandbox import apply_edits, carry_origins, decode, encode, line_starts, offset_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from fixbot.sandbox import Edit, LintCache, Patch, Violation

    from ._protocol import Request

# Which fixes a mode offers, and which it may apply along the way (cascades).
WANTED = {"safe": {"safe"}, "unsafe": {"unsafe"}, "fix": {"safe", "unsafe"}}
ALLOWED = {"safe": {"safe"}, "unsafe": {"safe", "unsafe"}, "fix": {"safe", "unsafe"}}
# Steps an agent remembers (content, rule and chosen fixes -> result); a bound on memory.
STEPS_KEPT = 4096


def wanted(violation: Violation, request: Request) -> bool:
    """Whether the request asks for this finding's fix (its mode offers it; and where the
    request names the fixes it wants, this is one)."""
    if violation.applicability not in WANTED[request.mode]:
        return False
    return request.wanted is None or violation.identity in request.wanted


def grouped(
    chosen: list[Violation], groups: Sequence[frozenset[str]]
) -> tuple[list[Violation], int]:
    """The fixes of a rule that go in one step (those in no group first, then group by
    group), and the index of their group (-1 for none)."""

    def group_of(v: Violation) -> int:
        return next((i for i, g in enumerate(groups) if v.identity in g), -1)

    first = min(group_of(v) for v in chosen)
    return [v for v in chosen if group_of(v) == first], first


def apply_fixes(content: bytes, chosen: Sequence[Violation]) -> bytes:
    """Some of a rule's fixes, from ruff's edits; one whose edits overlap another's
    waits for a later step (the next lint gives it positions that hold)."""
    text, bom = decode(content)
    starts = line_starts(text)
    spans = []
    for v in chosen:
        if v.fix is None or not v.fix.edits:
            continue
        first = min(offset_of(starts, text, e.location) for e in v.fix.edits)
        last = max(offset_of(starts, text, e.end_location) for e in v.fix.edits)
        spans.append((first, last, v.fix.edits))
    edits: list[Edit] = []
    reach = -1
    for start, end, fix in sorted(spans, key=lambda s: (s[0], s[1])):
        if start >= reach:
            edits += fix
            reach = end
    try:
        return encode(apply_edits(text, edits), bom) if edits else content
    except ValueError:
        return content


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
    # Steps already taken, by (path, (rule, unsafe, clean, content hash, *fixes)).
    steps_taken: dict[tuple[str, tuple[object, ...]], tuple[bytes, list[Violation]]]

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
