"""The seams between the run and the agents that propose patches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from fixbot.sandbox import Patch, Violation, Worktree


@dataclass(frozen=True, slots=True)
class Task:
    """All in-scope violations of one file: tasks never share a file."""

    key: str
    files: tuple[str, ...]
    violations: tuple[Violation, ...]

    @property
    def rules(self) -> tuple[str, ...]:
        """The rules found in this task, sorted."""
        return tuple(sorted({v.rule for v in self.violations}))


@dataclass(frozen=True, slots=True)
class Request:
    """What an agent is asked to fix now, on top of the task's accepted content.

    `wanted` None means every violation the agent can fix in this `mode`; a set
    narrows it to those fingerprints (after a rejection). `blocked` fixes were
    rejected before and are never proposed again. Each of `groups` is fixed in a
    step of its own, apart from the rest of its rule, so that a refusal can be
    pinned on one group. Fingerprints here are identities (`Violation.identity`)
    in the request's content.
    """

    task: Task
    mode: str
    content: Mapping[str, bytes]
    root: Path
    wanted: frozenset[str] | None = None
    blocked: frozenset[str] = frozenset()
    groups: tuple[frozenset[str], ...] = ()
    round: int = 1
    feedback: Mapping[str, str] = field(default_factory=dict)  # fingerprint -> last verdict
    attempts: Mapping[str, int] = field(default_factory=dict)  # fingerprint -> attempts so far


@runtime_checkable
class Agent(Protocol):
    """Proposes patches; never applies or proves them.

    `learns`: whether a rejected fix may come back to it with its verdict (a model
    can use one; ruff's fixes are what they are). `dropped`: why it proposed nothing
    for a finding it was given.
    """

    name: str
    modes: tuple[str, ...]
    learns: bool

    @property
    def dropped(self) -> Mapping[str, str]:
        """Finding (fingerprint) -> why the agent proposed nothing for it (a model's reply
        that had no code, a request that failed): reported with what stayed unfixed."""
        ...

    def can_fix(self, violation: Violation, mode: str) -> bool:
        """Whether this agent, in `mode`, has a fix to offer for `violation`."""
        ...

    async def propose(self, request: Request) -> list[Patch]:
        """A chain of patches (each builds on the one before), or [] for nothing to do."""
        ...


@runtime_checkable
class BatchAgent(Agent, Protocol):
    """An agent that proposes for many files at once, in a scratch worktree it is lent."""

    async def propose_many(
        self,
        requests: list[Request],
        scratch: Callable[[], AbstractAsyncContextManager[Worktree]],
    ) -> list[list[Patch]]:
        """`propose` for every request, in the requests' order."""
        ...
