"""ruff's own fixes as patches: safe fixes first, then unsafe ones, one rule per step.

One rule per step keeps commits reviewable by rule. A step runs ruff's fix loop
for its rule (ruff knows which fixes may not be applied together); when only
some of a rule's violations are wanted, their edits are applied one by one
from ruff's JSON instead, re-linting in between, since edits shift positions.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import TYPE_CHECKING

from sandbox import FileChange, FixDidNotConverge, Patch, Ruff, Violation, sha256
from sandbox._ruff import apply_edits, decode, encode

if TYPE_CHECKING:
    from ._protocol import Request

MODES = ("safe", "unsafe")


class RuffAgent:
    """Proposes ruff's fixes for one file, to a fixed point, bounded."""

    name = "ruff"
    modes = MODES

    def __init__(
        self, ruff_executable: str, select: tuple[str, ...] | None, max_iterations: int = 10
    ) -> None:
        self.ruff_executable = ruff_executable
        self.select = select
        self.max_iterations = max_iterations

    def can_fix(self, violation: Violation, mode: str) -> bool:
        """Safe mode takes safe fixes; unsafe mode takes unsafe ones."""
        return violation.cell is None and violation.applicability == mode

    def _allowed(self, violation: Violation, mode: str) -> bool:
        if violation.applicability == "safe":
            return True
        return mode == "unsafe" and violation.applicability == "unsafe"

    async def propose(self, request: Request) -> list[Patch]:
        """Steps of one rule each, until nothing wanted is left to fix."""
        (path,) = request.task.files
        ruff = Ruff(request.root, self.select, self.ruff_executable)
        content = request.content[path]
        present = (await ruff.lint_source(path, content)).violations
        start = Counter(v.fingerprint for v in present)
        blocked = set(request.blocked)
        steps: list[Patch] = []
        # Bounded: ruff's own fix loop can fail to converge, and so could this one.
        while len(steps) < self.max_iterations * 4:
            new = Counter(v.fingerprint for v in present) - start
            candidates = [
                v
                for v in present
                if v.fingerprint not in blocked
                and v.cell is None
                and self._allowed(v, request.mode)
                and (new[v.fingerprint] > 0 or self._wanted(v, request))
            ]
            if not candidates:
                break
            rule = min(v.rule for v in candidates)
            chosen = [v for v in candidates if v.rule == rule]
            of_rule = [v for v in present if v.rule == rule and self._allowed(v, request.mode)]
            fixed = content
            if len(chosen) == len(of_rule):
                with contextlib.suppress(FixDidNotConverge):
                    fixed = await ruff.fix_source(
                        path, content, select=[rule], unsafe=request.mode == "unsafe"
                    )
            else:
                fixed = _apply_one(content, chosen[0])
            after = (
                (await ruff.lint_source(path, fixed)).violations if fixed != content else present
            )
            gone = Counter(v.fingerprint for v in present) - Counter(v.fingerprint for v in after)
            targets = tuple(v for v in chosen if gone[v.fingerprint] > 0)
            if fixed == content or not targets:
                # Nothing moved: never offer these again in this proposal.
                blocked |= {v.fingerprint for v in chosen}
                continue
            steps.append(
                Patch(
                    id=f"{path}@{request.mode}.{request.round}.{len(steps) + 1}",
                    agent=self.name,
                    kind=request.mode,
                    rules=(rule,),
                    files=(path,),
                    targets=targets,
                    changes=(FileChange(path=path, old_sha=sha256(content), new=fixed),),
                    parent=steps[-1].id if steps else None,
                )
            )
            content, present = fixed, after
        return steps

    @staticmethod
    def _wanted(violation: Violation, request: Request) -> bool:
        if violation.applicability != request.mode:
            return False
        return request.wanted is None or violation.fingerprint in request.wanted


def _apply_one(content: bytes, violation: Violation) -> bytes:
    text, bom = decode(content)
    assert violation.fix is not None  # noqa: S101 - chosen among fixable ones
    try:
        return encode(apply_edits(text, violation.fix.edits), bom)
    except ValueError:
        return content
