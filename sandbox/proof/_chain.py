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

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fixbot.sandbox._text import step_diff
from fixbot.sandbox._types import Fault

from ._identity import carry_origins, with_identity

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from fixbot.sandbox._types import Step, Violation


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
    steps: Sequence[Step],
    lint_of: Callable[[str, bytes], Sequence[Violation]],
    *,
    reveal: bool = False,
) -> ChainProblem | None:
    """What lint says against one file's chain (None when every step holds)."""
    return judge_chain(steps, lint_of, reveal=reveal)[0]


def judge_chain(
    steps: Sequence[Step],
    lint_of: Callable[[str, bytes], Sequence[Violation]],
    *,
    reveal: bool = False,
) -> tuple[ChainProblem | None, tuple[Violation, ...]]:
    """What lint says against one file's chain (None when every step holds), and the
    findings its fixes revealed (`revealed`; only with `reveal`, else they are new).

    Every step's targets must be in the content it started from and gone from the
    content it left; a finding a step uncovered must be gone by the end, fixed by a
    later step. `lint_of(path, content)` gives the findings of any content of the chain.
    """
    if not steps:
        return None, ()
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
            return _pinned(why, missing, asked), ()
        targets = _found(step.targets, present)
        asked[f"+{number}"] = tuple(v.identity for v in targets)
        after = lint_of(path, step.after)
        left = Counter(v.fingerprint for v in after)
        remain = [
            v for v in targets if left[v.fingerprint] > have[v.fingerprint] - wanted[v.fingerprint]
        ]
        if remain:
            return _pinned("targeted violation remains: ", remain, asked), ()
        present = carry_origins(present, after, targets, number)
        new = [v for v in present if v.identity == f"+{number}"]
        if new:
            born[f"+{number}"] = (step, targets, new)
    fresh = [v for v in present if v.uncovered]
    shown = revealed(fresh, born) if reveal else []
    traded = {id(v) for v in shown}
    fresh = [v for v in fresh if id(v) not in traded]
    if not fresh:
        return None, tuple(shown)
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
    return ChainProblem("new violations: " + "; ".join(described), described, tuple(faults)), ()


# Findings that may mean a fix broke or worsened the code it rewrote, never taken as
# revealed: pyflakes (an undefined name), pycodestyle (a line the fix made too long),
# bugbear, pylint's errors, bandit (PT009 writes the `assert` that S101 reports), the
# size of code (mccabe, pylint's too-many-* and nesting), and what `python -O` strips
# from an `assert` PT009 wrote: an assignment (RUF018) or the whole check (PT015).
_NEVER_REVEALED = re.compile(r"^(?:(?:F|E|W|B|S|PLE|C90|PLR09)[0-9]|RUF018$|PT015$|PLR1702$)")


def revealed(
    fresh: Sequence[Violation], born: dict[str, tuple[Step, list[Violation], list[Violation]]]
) -> list[Violation]:
    """Of the findings a chain leaves new (`fresh`), those its fixes revealed.

    PT009 turns `self.assertEqual(x, 16)` into `assert x == 16`, where PLR2004 reports
    the magic value: it was in the code already, in a form that rule cannot see. A
    finding is taken as revealed when ruff offers no fix for it (no later step could
    take it away), its rule is none of the rules its step fixed and may not mean the
    fix broke something (`_NEVER_REVEALED`), and it lies on the lines one of its
    step's own fixes rewrote: one finding for each such fix, a trade, and only where
    nothing else new lies on that fix's lines.
    """
    out: list[Violation] = []
    for tag in dict.fromkeys(v.identity for v in fresh):
        step, targets, made = born[tag]
        left = [v for v in fresh if v.identity == tag]
        pairs = _as_made(left, made)  # each as its step made it: a later step may move it
        if len(pairs) != len(left):
            continue  # some cannot be placed: none is taken as revealed
        fixed_rules = {t.rule for t in targets}
        covered = _covering(step, targets, [m for _, m in pairs], rewritten=True)
        # Which of the step's fixes each finding lies on, and how many lie on each fix.
        on = [
            [i for i, (_, held) in enumerate(covered) if any(h is m for h in held)]
            for _, m in pairs
        ]
        crowd = Counter(i for fixes in on for i in fixes)
        out += [
            v
            for (v, _), fixes in zip(pairs, on, strict=True)
            if len(fixes) == 1
            and crowd[fixes[0]] == 1
            and not covered[fixes[0]][0].uncovered
            and v.applicability not in {"safe", "unsafe"}
            and v.rule not in fixed_rules
            and not _NEVER_REVEALED.match(v.rule)
        ]
    return out


def _as_made(
    left: Sequence[Violation], made: Sequence[Violation]
) -> list[tuple[Violation, Violation]]:
    """Each finding left at a chain's end paired with the finding its step made, by
    rule and message, in order; none of a kind whose counts differ (a later step
    reworded or took away some of them: which is which cannot be told)."""
    by_kind: dict[tuple[str, str], list[Violation]] = defaultdict(list)
    for m in made:
        by_kind[m.rule, m.message].append(m)
    ends: dict[tuple[str, str], list[Violation]] = defaultdict(list)
    for v in left:
        ends[v.rule, v.message].append(v)
    return [
        pair
        for kind, vs in ends.items()
        if len(by_kind[kind]) == len(vs)
        for pair in zip(vs, by_kind[kind], strict=True)
    ]


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
    step: Step,
    targets: Sequence[Violation],
    made: Sequence[Violation],
    *,
    rewritten: bool = False,
) -> list[tuple[Violation, list[Violation]]]:
    """Each of the step's targets whose range covers where a finding of `made` came from,
    with those findings. With `rewritten`, only a finding on a line the step changed
    counts, and a block the step rewrote ends at its last line: what lets a fix land
    (`revealed`) is never a line it left as it was, though its target's range spans it."""
    opcodes, _ = step_diff(step.before, step.after)
    found: dict[int, list[Violation]] = defaultdict(list)
    for v in made:
        row = v.location.row - 1
        span = next(
            (
                # Line for line where the step kept the line count; else the whole block.
                (i1 + row - j1, i1 + row - j1)
                if i2 - i1 == j2 - j1
                else (i1, max(i1, i2 - 1) if rewritten else i2)
                for tag, i1, i2, j1, j2 in opcodes
                if (j1 <= row < j2 or (j1 == j2 == row)) and not (rewritten and tag == "equal")
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
