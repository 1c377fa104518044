"""Each finding's identity across the steps of a chain.

A step rewrites a line, which changes the fingerprint of every finding on it
(D300 then D400 on one docstring): the finding keeps its identity, its
fingerprint in the content the chain started from, when it lies where the
finding that vanished went. What a step uncovers is marked as its own ("+N").
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from fixbot.sandbox._types import Violation


def carry_origins(
    before: Sequence[Violation], after: Sequence[Violation], fixed: Iterable[Violation], step: int
) -> list[Violation]:
    """`after`'s findings, each with its identity (`origin`) carried over from `before`.

    A finding whose fingerprint stays is the same finding; one found more than once
    (twin lines, as the same parameter in two signatures) is paired closest to where
    its row went (`_closest`). One whose line the step rewrote is paired with a finding
    of the same rule that vanished without being fixed (same message first, then in
    order of position), if it lies where that one went: between the findings that
    stayed around it, or anywhere within the rows a fix of this step spans. What is
    left was uncovered by this step: its origin is "+step".
    """
    fixed = list(fixed)
    done = Counter(v.fingerprint for v in fixed)
    pool: dict[str, list[Violation]] = defaultdict(list)
    for v in before:
        if done[v.fingerprint] > 0:
            done[v.fingerprint] -= 1
        else:
            pool[v.fingerprint].append(v)
    out, where = _kept(after, pool, [(v.location.row, v.end_location.row) for v in fixed])
    vanished = sorted(
        (v for vs in pool.values() for v in vs), key=lambda v: (v.location.row, v.location.column)
    )
    unmatched = [i for i, v in enumerate(out) if v is None]
    for key in (lambda v: (v.rule, v.message), lambda v: (v.rule,)):
        left: dict[tuple[str, ...], list[Violation]] = defaultdict(list)
        for v in vanished:
            left[key(v)].append(v)
        still = []
        for i in unmatched:
            row = after[i].location.row
            gone = next((g for g in left.get(key(after[i]), ()) if where.holds(g, row)), None)
            if gone is not None:
                left[key(after[i])].remove(gone)
                vanished.remove(gone)
                out[i] = with_identity(after[i], gone.identity)
            else:
                still.append(i)
        unmatched = still
    for i in unmatched:
        out[i] = dataclasses.replace(after[i], origin=f"+{step}")
    return [v for v in out if v is not None]


def _kept(
    after: Sequence[Violation], pool: dict[str, list[Violation]], spans: list[tuple[int, int]]
) -> tuple[list[Violation | None], _Rows]:
    """`after`'s findings whose fingerprint stayed, each with its identity (None for the
    rest), and where the rows of the content before went, told by those that stayed and
    by the rows the step's fixes span."""
    count = Counter(v.fingerprint for v in after)
    out: list[Violation | None] = [None] * len(after)
    anchors: list[tuple[int, int]] = []  # (row before, row after)
    twins: dict[str, list[int]] = defaultdict(list)
    for i, v in enumerate(after):
        kept_as = pool.get(v.fingerprint)
        if kept_as and len(kept_as) == 1 and count[v.fingerprint] == 1:
            kept = kept_as.pop()
            anchors.append((kept.location.row, v.location.row))
            out[i] = with_identity(v, kept.identity)
        elif kept_as:
            twins[v.fingerprint].append(i)
    moved = _Rows(anchors)
    for fingerprint, found in twins.items():
        for kept, i in _closest(pool[fingerprint], [after[i] for i in found], found, moved):
            pool[fingerprint].remove(kept)
            anchors.append((kept.location.row, after[i].location.row))
            out[i] = with_identity(after[i], kept.identity)
    return out, _Rows(anchors, spans)


# Past this many twin pairs to weigh, twins pair in order (a file of identical lines).
_MAX_TWIN_PAIRS = 10_000


def _closest(
    kept_as: list[Violation], found: list[Violation], index: list[int], moved: _Rows
) -> list[tuple[Violation, int]]:
    """Findings of one fingerprint before and after a step, paired closest first.

    Each finding before is expected where its row went (moved as the nearest finding
    found once above it moved); the pairs nearest that place are taken first. In order,
    a twin the step made above the others (COM812 splitting a signature one parameter
    per line makes `min`'s A002 read as the two further down) took the first one's
    identity, and left the last one over as new.
    """
    if len(kept_as) * len(found) > _MAX_TWIN_PAIRS:
        return list(zip(kept_as, index, strict=False))
    by_distance = sorted(
        (abs(v.location.row - moved.expected(k.location.row)), n, m)
        for n, k in enumerate(kept_as)
        for m, v in enumerate(found)
    )
    taken_before: set[int] = set()
    taken_after: set[int] = set()
    pairs = []
    for _, n, m in by_distance:
        if n not in taken_before and m not in taken_after:
            taken_before.add(n)
            taken_after.add(m)
            pairs.append((kept_as[n], index[m]))
    return pairs


class _Rows:
    """Where a row of the content before a step can be after it, told by the findings
    that kept their fingerprints (their lines did not change) on either side of it.

    A finding the step rewrote stays between the same neighbours; one it made
    elsewhere (PT009 joining an assertion into a long line at the top of a file,
    while the same step shortened a long line at its end) does not, and is new.
    """

    def __init__(
        self, anchors: list[tuple[int, int]], spans: Sequence[tuple[int, int]] = ()
    ) -> None:
        self.anchors = sorted(anchors)
        self.rows = [old for old, _ in self.anchors]
        # The rows the step's own fixes span: what lies within may go anywhere within
        # what that fix rewrote (I001 sorts a block, moving an import past its neighbours).
        self.spans = spans

    def holds(self, gone: Violation, row: int) -> bool:
        at = gone.location.row
        return self._between(at, at, row) or any(
            self._between(first, last, row) for first, last in self.spans if first <= at <= last
        )

    def expected(self, row: int) -> int:
        """Where a row of the content before is expected after the step: moved as the
        nearest finding that stayed above it (or not at all) moved."""
        i = bisect.bisect_right(self.rows, row)
        return row + (self.anchors[i - 1][1] - self.anchors[i - 1][0] if i else 0)

    def _between(self, first: int, last: int, row: int) -> bool:
        """Whether `row` lies between the neighbours of rows `first` to `last`, once moved."""
        i = bisect.bisect_left(self.rows, first)
        low = self.anchors[i - 1][1] if i > 0 else 0
        k = bisect.bisect_right(self.rows, last)
        high = self.anchors[k][1] if k < len(self.anchors) else None
        return low <= row and (high is None or row <= high)


# (finding, identity) -> that finding so known. A lint hands out one shared `Violation` per
# unchanged finding (`sandbox/_findings.py`), so a finding a step rewrote is carried as
# the same copy from step to step, not copied again each time (dateutil: 400,000 copies).
# The finding is kept in the value: its id cannot be reused while the entry lives.
_KNOWN_AS: dict[tuple[int, str], tuple[Violation, Violation]] = {}
_MAX_KNOWN_AS = 200_000


def with_identity(v: Violation, identity: str) -> Violation:
    """`v` known as `identity`: itself when that is already so (most findings, most steps)."""
    if v.identity == identity:
        return v
    key = (id(v), identity)
    known = _KNOWN_AS.get(key)
    if known is not None and known[0] is v:
        return known[1]
    made = dataclasses.replace(v, origin=None if identity == v.fingerprint else identity)
    if len(_KNOWN_AS) >= _MAX_KNOWN_AS:
        _KNOWN_AS.clear()
    _KNOWN_AS[key] = (v, made)
    return made
