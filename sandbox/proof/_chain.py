"""Judging a chain of steps for lint, step by step, with each finding's identity carried along.

A chain is one file's steps, each on the content the step before left (one
rule each, for ruff's fixes). Judged as one before/after pair, a chain looks
wrong in two ways that are not: a step fixes what an earlier step uncovered (an
import that UP006 left unused), and a step rewrites a line, which changes the
fingerprint of every other finding on it (D300 then D400 on one docstring). So
each step's targets are judged against the content that step started from, and
a finding keeps its identity when a step rewrites its line. What a step
uncovers is new only if it is still there when the chain ends.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fixbot.sandbox._text import step_diff
from fixbot.sandbox._types import Fault

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from fixbot.sandbox._types import Step, Violation


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


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """Why lint refuses a chain, what is new, and the steps at fault."""

    detail: str
    fresh: tuple[str, ...]
    faults: tuple[Fault, ...]


def describe(v: Violation) -> str:
    """`rule path:line message`, as a refusal names a finding."""
    return f"{v.rule} {v.path}:{v.location.row}: {v.message}"


def chain_problem(
    steps: Sequence[Step], lint_of: Callable[[str, bytes], Sequence[Violation]]
) -> ChainProblem | None:
    """What lint says against one file's chain (None when every step holds).

    Every step's targets must be in the content it started from and gone from the
    content it left; a finding a step uncovered must be gone by the end, fixed by a
    later step. `lint_of(path, content)` gives the findings of any content of the chain.
    """
    if not steps:
        return None
    path = steps[0].path
    present = [with_identity(v, v.fingerprint) for v in lint_of(path, steps[0].before)]
    asked: dict[str, tuple[str, ...]] = {}  # "+N" -> the identities step N was asked to fix
    # "+N" -> step N, its targets, and what it uncovered
    born: dict[str, tuple[Step, list[Violation], list[Violation]]] = {}
    for number, step in enumerate(steps, 1):
        have = Counter(v.fingerprint for v in present)
        wanted = Counter(v.fingerprint for v in step.targets)
        missing = [v for v in step.targets if have[v.fingerprint] < wanted[v.fingerprint]]
        if missing:
            why = "targeted violation not found in the content its step starts from: "
            return _pinned(why, missing, asked)
        targets = _found(step.targets, present)
        asked[f"+{number}"] = tuple(v.identity for v in targets)
        after = lint_of(path, step.after)
        left = Counter(v.fingerprint for v in after)
        remain = [
            v for v in targets if left[v.fingerprint] > have[v.fingerprint] - wanted[v.fingerprint]
        ]
        if remain:
            return _pinned("targeted violation remains: ", remain, asked)
        present = carry_origins(present, after, targets, number)
        new = [v for v in present if v.identity == f"+{number}"]
        if new:
            born[f"+{number}"] = (step, targets, new)
    fresh = [v for v in present if v.uncovered]
    if not fresh:
        return None
    faults = []
    for tag in sorted({v.identity for v in fresh}, key=lambda t: int(t[1:])):
        left_new = [v for v in fresh if v.identity == tag]
        kept = {(v.rule, v.message) for v in left_new}
        made = [v for v in born[tag][2] if (v.rule, v.message) in kept]
        named = None
        if not made:
            # A later step reworded it (an E501's length): known by its rule, named as it
            # is, where that pairs one finding with one (of several, which went away?).
            # Identities are carried one to one, so one born means one left.
            rules = {rule for rule, _ in kept}
            made = _one([v for v in born[tag][2] if v.rule in rules])
            named = left_new
        found: dict[str, list[Violation]] = defaultdict(list)
        for identity, near in _near(tag, made, born, named):
            found[identity] += near
        faults.append(
            Fault(
                blame=_blame([tag], asked),
                detail="new violations: " + "; ".join(describe(v) for v in left_new),
                culprits={
                    k: "new violations: " + "; ".join(dict.fromkeys(describe(v) for v in vs))
                    for k, vs in sorted(found.items())
                },
            )
        )
    described = tuple(describe(v) for v in fresh)
    return ChainProblem("new violations: " + "; ".join(described), described, tuple(faults))


def _found(targets: Sequence[Violation], present: Sequence[Violation]) -> list[Violation]:
    """Each target as found in the content its step starts from: two targets with one
    fingerprint (twin lines) are two findings, each with its own place and identity."""
    by_fp: dict[str, list[Violation]] = defaultdict(list)
    for v in present:
        by_fp[v.fingerprint].append(v)
    out = []
    for v in targets:
        twins = by_fp[v.fingerprint]
        same = next((t for t in twins if t.location == v.location), twins[0])
        twins.remove(same)
        out.append(same)
    return out


def _pinned(why: str, found: list[Violation], asked: dict[str, tuple[str, ...]]) -> ChainProblem:
    """A step's own targets are at fault: each is pinned on exactly, with what is wrong."""
    described = [describe(v) for v in found]
    culprits = {v.identity: why + d for v, d in zip(found, described, strict=True)}
    fault = Fault(
        blame=_blame([v.identity for v in found], asked),
        detail=why + "; ".join(described),
        culprits={k: d for k, d in culprits.items() if not k.startswith("+")},
    )
    return ChainProblem(fault.detail, (), (fault,))


def _near(
    tag: str,
    made: Sequence[Violation],
    born: dict[str, tuple[Step, list[Violation], list[Violation]]],
    named: Sequence[Violation] | None = None,
) -> Iterator[tuple[str, list[Violation]]]:
    """The fixes asked for whose lines (in the content their step started from) hold a
    finding step `tag` uncovered (`made`), each with the findings to name (`named`, by
    default those it holds).

    A new finding's row is mapped back through the step's diff; a fix whose range
    covers that spot made it (D212 moving a long summary up to the quotes, where E501
    then finds it; PT009 turning `assertEqual(x, 3)` into `x == 3`). A fix there that
    no one asked for, uncovered by an earlier step, is traced back to that step's fix
    in turn: dateutil's UP031 made a `.format(` call that UP032 joined into one line
    too long, and the UP031 fix is the culprit (finding it by halving took three
    rounds of static checks and proposals).
    """
    step, targets, _ = born[tag]
    for target, held in _covering(step, targets, made):
        if not target.uncovered:
            yield target.identity, list(named if named is not None else held)
        elif (source := born.get(target.identity)) is not None:
            earlier = [v for v in source[2] if v.fingerprint == target.fingerprint] or _one(
                [v for v in source[2] if v.rule == target.rule]
            )
            yield from _near(target.identity, earlier, born, named if named is not None else held)


def _one(found: list[Violation]) -> list[Violation]:
    """`found` if it is one finding, else none: a guess among several could name a fix
    whose own finding a later step took away."""
    return found if len(found) == 1 else []


def _covering(
    step: Step, targets: Sequence[Violation], made: Sequence[Violation]
) -> list[tuple[Violation, list[Violation]]]:
    """Each of the step's targets whose range covers where a finding of `made` came from,
    with those findings."""
    opcodes, _ = step_diff(step.before, step.after)
    found: dict[int, list[Violation]] = defaultdict(list)
    for v in made:
        row = v.location.row - 1
        span = next(
            (
                # Line for line where the step kept the line count; else the whole block.
                (i1 + row - j1, i1 + row - j1) if i2 - i1 == j2 - j1 else (i1, i2)
                for _, i1, i2, j1, j2 in opcodes
                if j1 <= row < j2 or (j1 == j2 == row)
            ),
            None,
        )
        if span is None:
            continue
        lo, hi = span
        for i, t in enumerate(targets):
            if t.location.row - 1 <= hi and lo <= t.end_location.row - 1:
                found[i].append(v)
    return [(targets[i], vs) for i, vs in sorted(found.items())]


def _blame(identities: Sequence[str], asked: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The fixes asked for that a refusal comes down to.

    A finding a step uncovered is no fix anyone asked for: the blame goes to the
    step that uncovered it, and so on back to fixes of the chain's first content.
    """
    out: set[str] = set()
    todo, seen = list(identities), set()
    while todo:
        identity = todo.pop()
        if not identity.startswith("+"):
            out.add(identity)
        elif identity not in seen:
            seen.add(identity)
            todo.extend(asked.get(identity, ()))
    return tuple(sorted(out))
