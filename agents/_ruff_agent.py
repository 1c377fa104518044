"""ruff's own fixes as patches: safe fixes first, then unsafe ones, one rule per step.

One rule per step keeps commits reviewable by rule. A step runs ruff's fix loop
for its rule (ruff knows which fixes may not be applied together); when only
some of a rule's violations are wanted, their edits are applied one by one
from ruff's JSON instead, re-linting in between, since edits shift positions.

Modes: "safe" fixes safe fixes; "unsafe" fixes unsafe ones (on top of the safe
stage); "fix" does both in one chain, safe steps first. A fix may uncover a new
violation (an import left unused); that one is fixed too, in a later step.
Each step's targets are found in the content that step starts from: that is
how the proof judges them (`sandbox/proof/_chain.py`).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import TYPE_CHECKING, Any

from fixbot.sandbox import (
    FileChange,
    FixDidNotConverge,
    Patch,
    Ruff,
    Violation,
    carry_origins,
    sha256,
    with_identity,
)

from ._ruff_batch import propose_many
from ._ruff_steps import (
    ALLOWED,
    STEPS_KEPT,
    WANTED,
    apply_fixes,
    gone_of,
    grouped,
    made_too_long,
    step_kind,
    step_order,
    wanted,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from fixbot.sandbox import LintCache, Worktree

    from ._protocol import Request


class RuffAgent:
    """Proposes ruff's fixes for one file, to a fixed point, bounded."""

    name = "ruff"
    learns = False  # ruff's fixes are what they are: a verdict changes nothing

    def __init__(
        self,
        ruff_executable: str,
        select: tuple[str, ...] | None,
        max_iterations: int = 10,
        modes: tuple[str, ...] = ("safe", "unsafe"),
        lint_cache: LintCache | None = None,
    ) -> None:
        self.ruff_executable = ruff_executable
        self.select = select
        self.max_iterations = max_iterations
        self.modes = modes
        self._cache: dict[tuple[object, ...], Any] = {}
        self.dropped: dict[str, str] = {}  # ruff's fixes are deterministic: none dropped
        # Lints of content between steps, shared with the proof (see _ruff_batch.py).
        self.lint_cache = lint_cache
        self.steps_taken: dict[tuple[str, tuple[object, ...]], tuple[bytes, list[Violation]]] = {}

    def can_fix(self, violation: Violation, mode: str) -> bool:
        """Whether `mode` offers a fix for this violation."""
        return violation.cell is None and violation.applicability in WANTED[mode]

    @staticmethod
    def allowed(violation: Violation, mode: str) -> bool:
        """Whether `mode` may apply this violation's fix (asked for, or uncovered)."""
        return violation.cell is None and violation.applicability in ALLOWED[mode]

    async def propose(self, request: Request) -> list[Patch]:
        """Steps of one rule each, until nothing wanted is left to fix.

        Each step's targets are found in the content that step starts from, and
        carry their identity from the request's content (`Violation.origin`), so a
        finding whose line an earlier step rewrote is still the one asked for.
        """
        (path,) = request.task.files
        ruff = Ruff(request.root, self.select, self.ruff_executable)
        content = request.content[path]
        # A format-clean file is formatted after every step, as the proof will want
        # it: the next step's targets are then found in exactly the content it starts from.
        clean = await self._memo(
            ("clean", path, sha256(content)), self._is_clean, ruff, path, content
        )
        present = [
            with_identity(v, v.fingerprint)
            for v in await self._memo(
                ("lint", path, sha256(content)), self._lint, ruff, path, content
            )
        ]
        blocked = set(request.blocked)
        steps: list[Patch] = []
        visits: Counter[tuple[str, int]] = Counter()
        while True:
            candidates = [
                v
                for v in present
                if v.identity not in blocked
                and self.allowed(v, request.mode)
                and (v.uncovered or wanted(v, request))
            ]
            if not candidates:
                break
            rule = min(candidates, key=step_order).rule
            chosen, group = grouped([v for v in candidates if v.rule == rule], request.groups)
            visits[rule, group] += 1
            if visits[rule, group] > self.max_iterations:
                # Bounded per rule, as ruff's own fix loop is: a rule that keeps coming back
                # stops. Never by the chain's length, which would cut a cascade in two (a
                # fix whose uncovered finding the next step fixes, refused as new).
                blocked |= {v.identity for v in chosen}
                continue
            of_rule = [v for v in present if v.rule == rule and self.allowed(v, request.mode)]
            key = ("step", path, sha256(content), rule, *sorted(v.fingerprint for v in chosen))
            whole = len(chosen) == len(of_rule)
            fixed, after = await self._memo(
                key, self._fix_step, ruff, path, content, chosen, whole, clean, present
            )
            after = after if fixed != content else present
            targets = tuple(gone_of(chosen, present, after))
            if fixed == content or not targets:
                # Nothing moved: never offer these again in this proposal.
                blocked |= {v.identity for v in chosen}
                continue
            steps.append(
                self.step(path, request, len(steps) + 1, rule, targets, content, fixed, steps)
            )
            content = fixed
            present = carry_origins(present, after, targets, len(steps))
        return steps

    async def _memo(self, key: tuple[object, ...], compute: Callable[..., Any], *args: Any) -> Any:
        """ruff is deterministic: a step already taken (a chain proposed again after a
        refusal replays its steps up to the refused one) is not computed twice."""
        if key not in self._cache:
            if len(self._cache) > STEPS_KEPT:
                self._cache.clear()
            self._cache[key] = await compute(*args)
        return self._cache[key]

    @staticmethod
    async def _is_clean(ruff: Ruff, path: str, content: bytes) -> bool:
        return await ruff.format_source(path, content) == content

    @staticmethod
    async def _lint(ruff: Ruff, path: str, content: bytes) -> list[Violation]:
        return (await ruff.lint_source(path, content)).violations

    @staticmethod
    async def _fix_step(
        ruff: Ruff,
        path: str,
        content: bytes,
        chosen: list[Violation],
        whole_rule: bool,
        clean: bool,
        present: list[Violation],
    ) -> tuple[bytes, list[Violation]]:
        """One rule's fix (ruff's own loop when all of the rule is chosen) and its lint.

        Lines the fix made too long are formatted, in a file not format-clean (a clean
        one is formatted whole).
        """
        fixed = content
        if whole_rule:
            unsafe = any(v.applicability == "unsafe" for v in chosen)
            with contextlib.suppress(FixDidNotConverge):
                fixed = await ruff.fix_source(path, content, select=[chosen[0].rule], unsafe=unsafe)
        else:
            fixed = apply_fixes(content, chosen)
        if clean and fixed != content:
            fixed = await ruff.format_source(path, fixed)
        if fixed == content:
            return content, []
        after = (await ruff.lint_source(path, fixed)).violations
        if not clean and (rows := made_too_long(present, after, gone_of(chosen, present, after))):
            wrapped = await ruff.format_lines(path, fixed, rows)
            if wrapped != fixed:
                fixed, after = wrapped, (await ruff.lint_source(path, wrapped)).violations
        return fixed, after

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
        return Patch(
            id=f"{path}@{request.mode}.{request.round}.{number}",
            round=request.round,
            step=number,
            agent=self.name,
            kind=step_kind(targets, request.mode),
            rules=(rule,),
            files=(path,),
            targets=targets,
            changes=(FileChange(path=path, old_sha=sha256(before), new=after),),
            parent=chain[-1].id if chain else None,
        )

    async def propose_many(
        self,
        requests: list[Request],
        scratch: Callable[[], AbstractAsyncContextManager[Worktree]],
    ) -> list[list[Patch]]:
        """`propose` for many files at once: one ruff process per rule, not per file."""
        return await propose_many(self, requests, scratch)
