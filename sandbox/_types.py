"""The plain values that leave the sandbox: violations, patches and verdicts."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Applicability = Literal["safe", "unsafe", "displayonly"]
TestStatus = Literal["passed", "failed", "error", "skipped", "xfailed", "xpassed"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Violations are plain slotted dataclasses, not pydantic models: a monorepo's lint
# makes tens of thousands of them, and building models cost seconds (measured in
# benchmarks/bench_scale.py). pydantic still takes them as fields of the models below.


@dataclass(frozen=True, slots=True)
class Location:
    """1-based row and column; columns count Unicode code points, not bytes."""

    row: int
    column: int


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace the text from `location` up to (not including) `end_location`."""

    content: str
    location: Location
    end_location: Location


@dataclass(frozen=True, slots=True)
class Fix:
    """A fix ruff offers for one violation."""

    applicability: Applicability
    message: str | None = None
    edits: tuple[Edit, ...] = ()


@dataclass(frozen=True, slots=True)
class Violation:
    """One ruff diagnostic, with a fingerprint that survives line shifts.

    `path` is repo-relative POSIX.
    """

    code: str | None
    name: str
    message: str
    path: str
    location: Location
    end_location: Location
    fix: Fix | None = None
    cell: int | None = None
    noqa_row: int | None = None
    fingerprint: str = ""
    # Who this finding is across the steps of a chain: its fingerprint in the content
    # the chain started from, even after a step rewrote its line (which changes the
    # fingerprint); "+N" when step N uncovered it. None outside a chain.
    origin: str | None = None

    @property
    def identity(self) -> str:
        """The fingerprint this finding had where its chain started (see `origin`)."""
        return self.fingerprint if self.origin is None else self.origin

    @property
    def uncovered(self) -> bool:
        """Whether a step of its chain brought this finding about (an import left unused)."""
        return (self.origin or "").startswith("+")

    @property
    def rule(self) -> str:
        """ruff's code, or the rule's name where ruff has no code for it."""
        return self.code or self.name

    @property
    def applicability(self) -> Applicability | None:
        """How sure ruff is of its fix, or None where it offers none."""
        return self.fix.applicability if self.fix else None


def fingerprint(
    rule: str, path: str, message: str, source_lines: list[str], scope: str = ""
) -> str:
    """Identify a violation by what it is about, never by where the lines are.

    The range's lines are stripped so that re-indenting or shifting code keeps
    the fingerprint; the message tells apart two findings on one line, and the
    enclosing def or class (`scope`) two identical lines in different functions.
    """
    digest = hashlib.sha1(usedforsecurity=False)
    scoped = (f"scope:{scope.strip()}",) if scope.strip() else ()
    for part in (rule, path, message, *(line.strip() for line in source_lines), *scoped):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:20]


# Lint results with noqa ignored, by (path, sha256 of the content): a lint is a function
# of ruff, the config, the path and the content, so whoever ran it, it holds.
LintCache = dict[tuple[str, str], tuple[Violation, ...]]


def fingerprints(violations: list[Violation] | tuple[Violation, ...]) -> Counter[str]:
    """The multiset of fingerprints: two identical findings count twice."""
    return Counter(v.fingerprint for v in violations)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a chain in one file: the content it starts from, what it leaves, and
    the findings it fixes, as found in `before` (their fingerprints are `before`'s)."""

    path: str
    before: bytes
    after: bytes
    targets: tuple[Violation, ...] = ()


class FileChange(_Frozen):
    """A file's whole new content, and the content it must replace."""

    path: str
    old_sha: str = Field(description="sha256 of the bytes this change expects to replace")
    new: bytes


class Patch(_Frozen):
    """A proposed change to one task's files, fixing `targets`.

    `parent` names the accepted patch whose content this one builds on (the
    previous step on the same files), or None when it builds on the base.
    """

    id: str
    agent: str
    kind: str = Field(description="how the agent made it, e.g. 'safe' or 'unsafe'")
    rules: tuple[str, ...]
    files: tuple[str, ...]
    targets: tuple[Violation, ...]
    changes: tuple[FileChange, ...]
    parent: str | None = None
    attempt: int = 1
    round: int = Field(default=0, description="the fan-out round that proposed it")
    step: int = Field(default=1, description="its place in its chain, from 1")


class Fault(_Frozen):
    """A static refusal pinned on the fixes of one step of a chain (their identities)."""

    blame: tuple[str, ...]
    detail: str
    # Of `blame`, the fixes whose own lines hold what is wrong, each with it named.
    culprits: dict[str, str] = Field(default_factory=dict)


class Verdict(_Frozen):
    """The outcome of proving one patch; `reason` is one word a person can filter on."""

    patch_id: str
    accepted: bool
    reason: str
    detail: str = ""
    failing_tests: tuple[str, ...] = ()
    # Names defined in the candidate's files that the failing tests' reports mention
    # (a function they called, a frame they passed through): where to look first.
    clues: tuple[str, ...] = ()
    # Of the clues, those on the lines the failing tests' reports point at (pytest's
    # `>` and `E` lines): where the tests were when they failed, the likeliest culprit.
    pointed: tuple[str, ...] = ()
    new_violations: tuple[str, ...] = ()
    # For an accepted patch: findings its fixes revealed, each traded for the finding a
    # fix took away on the lines it rewrote (`proof._chain.revealed`): the number of the
    # step in its file's chain (from 1), and the finding as `rule path:line: message`.
    revealed: tuple[tuple[int, str], ...] = ()
    # For a static refusal of a chain: the steps at fault, each pinned on its fixes.
    faults: tuple[Fault, ...] = ()


class TestResults(_Frozen):
    """Per-test outcomes of one run of the repo's tests, keyed by pytest node id."""

    __test__ = False

    outcomes: dict[str, TestStatus]
    returncode: int
    output: str = ""
    seconds: float = 0.0
    per_test: bool = Field(
        default=True, description="False when the command gave no JUnit XML (exit code only)"
    )
    limit: str = Field(default="", description="the resource limit the run hit, if any")
    failures: dict[str, str] = Field(
        default_factory=dict,
        description="test id -> the report of its failure or error (message and traceback tail)",
    )


def sha256(data: bytes) -> str:
    """The hash fixbot uses to say which content a change expects."""
    return hashlib.sha256(data).hexdigest()
