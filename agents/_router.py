"""Which agent gets a violation: the cheapest, surest one that can fix it first.

Order (docs/architecture.md): ruff safe fix, ruff unsafe fix, codemod, model. A task runs
through the stages in that order; each stage sees the content the earlier ones
left, and only what they could not fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fixbot.sandbox import Violation

    from ._protocol import Agent, Task


@dataclass(frozen=True, slots=True)
class Stage:
    """One agent in one mode."""

    agent: Agent
    mode: str

    @property
    def label(self) -> str:
        """e.g. 'ruff:safe'."""
        return f"{self.agent.name}:{self.mode}"


class Router:
    """Orders the enabled agents' stages and says which apply to a task."""

    def __init__(self, agents: Sequence[Agent], unsafe_fixes: bool = True) -> None:
        self.stages = tuple(
            Stage(agent, mode)
            for agent in agents
            for mode in agent.modes
            if unsafe_fixes or mode != "unsafe"
        )

    def stages_for(self, task: Task) -> list[Stage]:
        """The stages that have something to offer this task, in order."""
        return [s for s in self.stages if any(s.agent.can_fix(v, s.mode) for v in task.violations)]

    def owner(self, violation: Violation) -> Stage | None:
        """The first stage that would take this violation."""
        return next((s for s in self.stages if s.agent.can_fix(violation, s.mode)), None)
