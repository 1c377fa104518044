"""The model as a micro-agent: one request per violation, many at once.

Each request shows the model one violation and the smallest region around it;
the reply's first fenced python block is the region rewritten (docs/architecture.md, the
LLM wire protocol). Replies that have no block, change nothing or do not fit
back are dropped. A rejected fix comes back with its verdict in the system
message, until the attempts run out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import structlog

from fixbot.sandbox import FileChange, Patch, Ruff, sha256

from ._llm_client import BudgetExhausted, LlmAuthError, LlmFailed
from ._region import Region, extract_code, find_regions, splice

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fixbot.sandbox import Violation

    from ._llm_client import LlmClient
    from ._protocol import Request

log = structlog.get_logger("fixbot")

SYSTEM = """\
You fix lint violations in Python code, one at a time, for a tool that proves every fix \
with the linter and the project's own tests before anyone sees it.

Rule {rule} ({name}): {summary}

{explanation}

How to answer:
- Reply with the region you are given, rewritten, in exactly one fenced ```python block.
- Fix only this violation. Keep the behaviour identical and everything else as it is.
- Keep the region's indentation and its first and last lines' scope: return the whole region.
- Never silence the linter: no noqa, type: ignore, pragma or fmt comments.
"""

FEEDBACK = """\

A previous attempt at this fix was rejected ({reason}). What the checks said:
{detail}
Try a different fix that avoids this."""

USER = """\
File: {path}
Violation: {rule} on line {line} of the region below: {message}

```python
{region}```"""


class RuleDocs:
    """`ruff rule CODE --output-format json`, asked once per rule per run."""

    def __init__(self, ruff: Ruff) -> None:
        self._ruff = ruff
        self._docs: dict[str, dict[str, str]] = {}
        self._lock = anyio.Lock()

    async def get(self, rule: str) -> dict[str, str]:
        """The rule's name, summary and explanation (trimmed)."""
        async with self._lock:
            if rule not in self._docs:
                data = await self._ruff.rule_doc(rule)
                self._docs[rule] = {
                    "name": str(data.get("name", rule)),
                    "summary": str(data.get("summary", "")),
                    "explanation": str(data.get("explanation", ""))[:4000],
                }
            return self._docs[rule]


def build_messages(
    violation: Violation, region: Region, docs: dict[str, str], feedback: str | None
) -> list[dict[str, str]]:
    """The system and user messages for one violation (the code only in the last message)."""
    system = SYSTEM.format(
        rule=violation.rule,
        name=docs.get("name", violation.name),
        summary=docs.get("summary", ""),
        explanation=docs.get("explanation", ""),
    )
    if feedback:
        reason, _, detail = feedback.partition("\n")
        system += FEEDBACK.format(reason=reason, detail=detail.strip()[:2000] or "(no detail)")
    user = USER.format(
        path=violation.path,
        rule=violation.rule,
        line=violation.location.row - region.start + 1,
        message=violation.message,
        region=region.text,
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


class LlmAgent:
    """Asks a model to rewrite the region around each violation no other agent can fix."""

    name = "llm"
    modes: tuple[str, ...] = ("llm",)
    learns = True  # a rejected fix comes back with its verdict

    def __init__(
        self,
        client: LlmClient,
        ruff: Ruff,
        *,
        rules: Iterable[str] | None = None,
        ignore: Iterable[str] = (),
        deterministic_first: bool = True,
    ) -> None:
        self.client = client
        self.ruff = ruff
        self.docs = RuleDocs(ruff)
        self.rules = frozenset(rules) if rules else None
        self.ignore = frozenset(ignore)
        self.deterministic_first = deterministic_first
        self.dropped: dict[str, str] = {}  # fingerprint -> why the last reply was dropped

    def _routed(self, rule: str) -> bool:
        if any(rule.startswith(prefix) for prefix in self.ignore):
            return False
        return self.rules is None or any(rule.startswith(prefix) for prefix in self.rules)

    def can_fix(self, violation: Violation, mode: str) -> bool:
        """By default, violations no deterministic agent has a fix for, in .py files.

        Rules routed to the model by name (`llm-select`) go to it even when ruff has
        a fix; it then sees what is left after ruff's fixes were proven or rejected.
        """
        if mode != "llm" or violation.cell is not None or not self._routed(violation.rule):
            return False
        if self.rules is not None:
            return True
        has_fix = violation.fix is not None and violation.fix.applicability != "displayonly"
        return not (has_fix and self.deterministic_first)

    async def propose(self, request: Request) -> list[Patch]:
        """One step per violation whose region does not overlap another's, bottom-up."""
        (path,) = request.task.files
        content = request.content[path]
        lint = await Ruff(request.root, self.ruff.select, self.ruff.executable).lint_source(
            path, content
        )
        chosen: list[tuple[Violation, Region]] = []
        mine = [
            v
            for v in lint.violations
            if self.can_fix(v, "llm")
            and v.fingerprint not in request.blocked
            and (request.wanted is None or v.fingerprint in request.wanted)
        ]
        regions = find_regions(content, [(v.location.row, v.end_location.row) for v in mine])
        for v, region in zip(mine, regions, strict=True):
            if region is None or any(
                r.start <= region.end and region.start <= r.end for _, r in chosen
            ):
                continue
            chosen.append((v, region))
        rewritten: dict[str, str | None] = {}

        async def ask(v: Violation, region: Region) -> None:
            rewritten[v.fingerprint] = await self._ask(
                v, region, request.feedback.get(v.fingerprint)
            )

        try:
            async with anyio.create_task_group() as tg:
                for v, region in chosen:
                    tg.start_soon(ask, v, region)
        except* LlmAuthError as refused:
            # The typed error itself, not a task group's wrapper: callers catch it by type.
            raise refused.exceptions[0] from None
        steps: list[Patch] = []
        # Bottom-up, so the line numbers of the regions above stay true.
        for v, region in sorted(chosen, key=lambda item: -item[1].start):
            code = rewritten.get(v.fingerprint)
            new = splice(content, region, code) if code is not None else None
            if new is None:
                if code is not None:
                    self.dropped[v.fingerprint] = "reply does not fit the region or changes nothing"
                continue
            steps.append(
                Patch(
                    id=f"{path}@llm.{request.round}.{len(steps) + 1}",
                    round=request.round,
                    step=len(steps) + 1,
                    agent=self.name,
                    kind="llm",
                    rules=(v.rule,),
                    files=(path,),
                    targets=(v,),
                    changes=(FileChange(path=path, old_sha=sha256(content), new=new),),
                    parent=steps[-1].id if steps else None,
                    attempt=request.attempts.get(v.fingerprint, 0) + 1,
                )
            )
            content = new
        return steps

    async def _ask(self, v: Violation, region: Region, feedback: str | None) -> str | None:
        docs = await self.docs.get(v.rule)
        try:
            reply = await self.client.complete(build_messages(v, region, docs, feedback))
        except LlmAuthError:
            raise  # a refused key ends the run (exit 3): every other request would fail too
        except BudgetExhausted:
            self.dropped[v.fingerprint] = "budget exhausted"
            return None
        except LlmFailed as exc:
            log.warning("llm.failed", rule=v.rule, path=v.path, reason=str(exc))
            self.dropped[v.fingerprint] = f"model request failed: {exc}"
            return None
        if reply.finish_reason == "length":
            self.dropped[v.fingerprint] = "reply cut off at its length limit"
            return None
        code = extract_code(reply.text)
        if code is None:
            self.dropped[v.fingerprint] = "reply has no python block"
        return code
