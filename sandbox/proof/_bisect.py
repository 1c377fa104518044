"""Bisection: from a failing batch to the candidates that broke it.

A batch's failing tests point, through the import graph, at the candidates that
can reach them (the suspects); the others passed every test they can reach in
that very run. Suspects are run on their own, or halved where the graph cannot
say, and two candidates that fail only together are told apart as a merge queue
would: the first half stands, the second is narrowed down on top of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from fixbot.sandbox._impact import is_test_file
from fixbot.sandbox._types import Verdict

from ._judge import defined_names, test_file
from ._scope import edited_functions

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from fixbot.sandbox._impact import ImpactMap

    from ._candidate import Candidate


class Bisection:
    """Finding the culprits of a failing batch: a part of the Prover.

    `test_problems(files, changed, also)` runs the tests on the base plus `files`
    (those that can reach `changed`, and `also`) and says which got worse;
    `mentioned` holds, per failing test, the names its failure reports named, and
    `pointed` those on the lines they point at (`pointed_names`).
    """

    def __init__(
        self,
        impact: ImpactMap | None,
        test_problems: Callable[..., Awaitable[dict[str, str]]],
        mentioned: Mapping[str, set[str]] | None = None,
        pointed: Mapping[str, set[str]] | None = None,
    ) -> None:
        self.impact = impact
        self.test_problems = test_problems
        self.mentioned = mentioned if mentioned is not None else {}
        self.pointed = pointed if pointed is not None else {}

    def refused(self, cand: Candidate, problems: Mapping[str, str]) -> Verdict:
        """The verdict on a culprit, with the clues to where in it the tests broke."""
        named = set().union(*(self.mentioned.get(t, ()) for t in problems))
        clues = named & defined_names(cand.after.values()) if named else set()
        pointed = clues & set().union(*(self.pointed.get(t, ()) for t in problems))
        return refused(cand, problems).model_copy(
            update={"clues": tuple(sorted(clues)), "pointed": tuple(sorted(pointed))}
        )

    def _suspects(self, cands: list[Candidate], problems: dict[str, str]) -> list[Candidate] | None:
        """The candidates whose files can reach a failing test, or None if the graph cannot say."""
        if self.impact is None:
            return None
        failing = {test_file(t) for t in problems}
        if not failing <= self.impact.tests:
            return None  # a test the import graph does not know: anyone may have broken it
        suspects = []
        for cand in cands:
            reach = self.impact.tests_for(cand.after)
            if reach is None:
                return None
            if reach & failing:
                suspects.append(cand)
        return suspects

    async def _by_suspects(
        self, cands: list[Candidate], ground: Mapping[str, bytes], problems: dict[str, str]
    ) -> dict[str, Verdict] | None:
        """Verdicts found from the suspects alone, or None where halving must decide."""
        suspects = self._suspects(cands, problems) if len(cands) > 1 else None
        if not suspects or len(suspects) == len(cands):
            return None
        # Only a change that can reach a failing test can have broken it: the others
        # passed every test they can reach, in this very run.
        innocent = {c.key: proven(c) for c in cands if c not in suspects}
        pins = self._pins(suspects, problems)
        # A failing test pinned on a chain the caller narrows down: that run was as good
        # as the chain's own, and the caller splits it down to single fixes, each of
        # which is refused only after a run of its own.
        blamed = {
            c.key: self.refused(c, pins[c.key]) for c in suspects if c.narrowed and c.key in pins
        }
        rest = [c for c in suspects if c.key not in blamed]
        if not rest:
            return innocent | blamed
        if len(rest) > 1 and all(c.key in pins for c in rest):
            # Each is likely a culprit: each runs on its own at once, not all together first.
            return innocent | blamed | await self._each_alone(rest, ground, pins, cands)
        # The other suspects are run on their own: a culprit is blamed only after a run
        # of its own.
        left = {t: s for t, s in problems.items() if not any(t in pins[k] for k in blamed)}
        alone = await self.test_problems(
            merged(ground, rest), changed_scopes(rest), also=left, reverted=_files(cands, rest)
        )
        if alone:
            return innocent | blamed | await self.bisect(rest, ground, alone)
        if blamed:
            return innocent | blamed | {c.key: proven(c) for c in rest}
        return None  # each part passes alone: an interaction, for halving to find

    def _pins(
        self, suspects: list[Candidate], problems: dict[str, str]
    ) -> dict[str, dict[str, str]]:
        """For each suspect that alone (of the suspects) reaches a failing test: those tests.

        Such a test could only have failed through that suspect, as far as the import
        graph can tell.
        """
        assert self.impact is not None  # noqa: S101 - only with suspects from the graph
        reach: dict[str, set[str]] = {
            c.key: set(self.impact.tests_for(c.after) or ()) for c in suspects
        }
        pins = {}
        for cand in suspects:
            others = set().union(*(r for k, r in reach.items() if k != cand.key))
            mine = {t: s for t, s in problems.items() if test_file(t) in reach[cand.key] - others}
            if mine:
                pins[cand.key] = mine
        return pins

    def _each_pinned(
        self, cands: list[Candidate], problems: dict[str, str]
    ) -> dict[str, dict[str, str]] | None:
        """Each candidate's own failing tests, where there are several and each has some
        that no other of them reaches (`_pins`); None otherwise."""
        if len(cands) < 2 or self._suspects(cands, problems) != cands:
            return None
        pins = self._pins(cands, problems)
        return pins if len(pins) == len(cands) else None

    async def _each_alone(
        self,
        cands: list[Candidate],
        ground: Mapping[str, bytes],
        pins: dict[str, dict[str, str]],
        batch: list[Candidate],
    ) -> dict[str, Verdict]:
        """Each candidate on its own, side by side: refused if it fails alone.

        `batch` is what the run that failed the pinned tests had on `ground`.
        """
        out: dict[str, Verdict] = {}

        async def alone(cand: Candidate) -> None:
            problems = await self.test_problems(
                merged(ground, [cand]),
                changed_scopes([cand]),
                also=pins[cand.key],
                reverted=_files(batch, [cand]),
            )
            out[cand.key] = self.refused(cand, problems) if problems else proven(cand)

        async with anyio.create_task_group() as tg:
            for cand in cands:
                tg.start_soon(alone, cand)
        passed = [c for c in cands if out[c.key].accepted]
        if len(passed) > 1:
            # They failed together a moment ago: the ones that pass alone are proven
            # together before they stand (an interaction the graph could not see).
            also = {t: s for c in passed for t, s in pins[c.key].items()}
            together = await self.test_problems(
                merged(ground, passed),
                changed_scopes(passed),
                also=also,
                reverted=_files(batch, passed),
            )
            if together:
                out |= await self.bisect(passed, ground, together)
        return out

    async def _interaction(
        self, parts: list[list[Candidate]], ground: Mapping[str, bytes], problems: dict[str, str]
    ) -> dict[str, Verdict]:
        """Each half passes alone, the two together do not: the left half stands; the
        right is narrowed down on top of it, as a merge queue would, so the fix that
        breaks with the others is found and only it is refused.

        Probes are the exception: each passed in a run of its own half, and none lands by
        passing. Where their fixes meet in a chain, that chain fails and is narrowed on
        top of what landed, as here.
        """
        if all(c.probe for part in parts for c in part):
            return {c.key: proven(c) for part in parts for c in part}
        left = {c.key: proven(c) for c in parts[0]}
        together = await self.bisect(parts[1], merged(ground, parts[0]), problems)
        return left | {k: _together(v) for k, v in together.items()}

    async def bisect(
        self, cands: list[Candidate], ground: Mapping[str, bytes], problems: dict[str, str]
    ) -> dict[str, Verdict]:
        if by_suspects := await self._by_suspects(cands, ground, problems):
            return by_suspects
        if len(cands) == 1:
            return {cands[0].key: self.refused(cands[0], problems)}
        parts = _likely_first(cands, problems)
        found: list[dict[str, str]] = [{}, {}]
        out: dict[str, Verdict] = {}

        async def probe(i: int) -> None:
            if i == 0 and (pins := self._each_pinned(parts[0], problems)):
                # The failing tests' own modules, each pinned on its own failures: each
                # runs alone at once, not all together first (a level saved).
                alone = await self._each_alone(parts[0], ground, pins, cands)
                out.update(alone)
                found[0] = {t: "failed" for v in alone.values() for t in v.failing_tests}
                return
            found[i] = await self.test_problems(
                merged(ground, parts[i]),
                changed_scopes(parts[i]),
                also=problems,
                reverted=_files(cands, parts[i]),
            )
            if found[i]:
                # Narrowed at once, not after the other part's run: a part of test
                # modules runs in seconds beside the library's whole-suite run.
                out.update(await self.bisect(parts[i], ground, found[i]))

        async with anyio.create_task_group() as tg:
            for i in range(2):
                tg.start_soon(probe, i)
        if not found[0] and not found[1]:
            return await self._interaction(parts, ground, problems)
        for part, part_problems in zip(parts, found, strict=True):
            if not part_problems:
                out |= {c.key: proven(c) for c in part}
        return out


def _likely_first(cands: list[Candidate], problems: Mapping[str, str]) -> list[list[Candidate]]:
    """Two parts to probe side by side: the changes to the failing tests' own files, and
    the rest; halves where that tells nothing.

    A fix in a test module (PT009 turning `assertNotEqual` into `!=` in a test of
    `__ne__`) most often breaks that module's own tests, and a module of tests
    reaches no other test. Where the library's modules reach every test, halving
    pays a whole-suite run per level; this part runs only its own tests, and its
    members are then pinned each on its own failures.
    """
    failing = {test_file(t) for t in problems}
    likely = [c for c in cands if failing & set(c.after)]
    if 0 < len(likely) < len(cands):
        return [likely, [c for c in cands if c not in likely]]
    half = len(cands) // 2
    return [cands[:half], cands[half:]]


def _files(batch: Sequence[Candidate], part: Sequence[Candidate]) -> set[str]:
    """The files of a batch's candidates outside `part`: what a part's run takes back."""
    keys = {c.key for c in part}
    return {path for c in batch if c.key not in keys for path in c.after}


def _together(verdict: Verdict) -> Verdict:
    if verdict.accepted:
        return verdict
    detail = f"fails only together with other fixes of its batch: {verdict.detail}"
    return verdict.model_copy(update={"detail": detail})


def changed_scopes(cands: Sequence[Candidate]) -> dict[str, frozenset[str] | None]:
    """Each changed file, with the functions of it the changes edit (None: the whole file).

    Functions are looked for in test modules only: only their tests are selected
    by name (`Prover.select_tests`).
    """
    scopes: dict[str, frozenset[str] | None] = {}
    for cand in cands:
        for path, after in cand.after.items():
            before = cand.before.get(path)
            names = (
                edited_functions(before, after)
                if before is not None and is_test_file(path)
                else None
            )
            if path in scopes:
                held = scopes[path]
                names = None if held is None or names is None else held | names
            scopes[path] = names
    return scopes


def merged(ground: Mapping[str, bytes], cands: Sequence[Candidate]) -> dict[str, bytes]:
    files = dict(ground)
    for cand in cands:
        files.update(cand.after)
    return files


def refused(cand: Candidate, problems: Mapping[str, str]) -> Verdict:
    detail = "; ".join(f"{t}: {s}" for t, s in sorted(problems.items())[:10])
    limited = any(s.endswith(" limit)") for s in problems.values())
    return Verdict(
        patch_id=cand.key,
        accepted=False,
        reason="limit" if limited else "tests",
        detail=detail,
        failing_tests=tuple(sorted(problems)),
    )


def proven(cand: Candidate) -> Verdict:
    return Verdict(patch_id=cand.key, accepted=True, reason="proven")
