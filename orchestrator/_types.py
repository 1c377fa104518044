"""Values the run's modules share: the run's context, what it hands the command line, its
stage timer and its progress."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from fixbot.sandbox import Ruff, default_ruff

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from fixbot.sandbox import MetadataGuard, ProofStats, Violation, Worktree, WorktreePool

    from ._config import Config
    from ._job import Job
    from ._merge import Identity
    from ._publish import Publisher
    from ._report import Report
    from ._shard import Bundle, PatchRecord

log = structlog.get_logger("fixbot")


@dataclass(slots=True, repr=False)
class Outcome:
    """What a finished run hands the CLI."""

    def __repr__(self) -> str:
        # Short on purpose: asyncio.Runner reprs the main task, result and all, when it
        # checks the SIGINT handler on the way out (3.11): a whole report's repr took
        # half a second of every run.
        return f"Outcome(report_dir={self.report_dir!r}, accepted={self.report.accepted})"

    report: Report
    report_dir: Path
    run_dir: Path
    remaining: list[Violation] = field(default_factory=list)  # in scope, after the run
    records: list[PatchRecord] = field(default_factory=list)  # every patch decided
    patch: Path | None = None  # accepted.patch: the diff of what landed (or would)


@dataclass(slots=True)
class Timer:
    """Seconds per stage, snake_case names."""

    timings: dict[str, float] = field(default_factory=dict)
    progress: Progress | None = None

    @contextmanager
    def stage(self, name: str, *, show: bool = True) -> Iterator[None]:
        """Time one stage and tell the progress display (unless it runs in the background)."""
        if self.progress is not None and show:
            self.progress.stage = name
        log.info("stage.start", stage=name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0) + time.perf_counter() - start, 3)


@dataclass(slots=True)
class Progress:
    """What a run has done so far, read by the live display while the run writes it."""

    stage: str = "starting"
    round: int = 0
    planned: int = 0  # violations in the plan
    jobs: Sequence[Job] = ()
    stats: ProofStats | None = None
    started: float = field(default_factory=time.monotonic)

    def counts(self) -> tuple[int, int, int]:
        """Violations decided (fixed or refused), patches accepted, patches rejected."""
        decided = accepted = rejected = 0
        for job in self.jobs:
            for record in job.records:
                if record.status == "accepted":
                    accepted += 1
                    decided += len(record.patch.targets)
                elif record.status == "rejected":
                    rejected += 1
                    decided += len(record.patch.targets)
        return min(decided, self.planned), accepted, rejected

    @property
    def test_runs(self) -> int:
        """Test runs so far."""
        return self.stats.test_runs if self.stats else 0

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started


@dataclass(slots=True)
class Context:
    """Everything the stages of one run share."""

    config: Config
    repo: Path
    base: str
    home: Path
    run_dir: Path
    branch: str | None
    identity: Identity
    paths: list[str]
    timer: Timer
    pool: WorktreePool
    reference: Worktree  # a worktree at base that nothing writes to
    publisher: Publisher | None = None
    bundles: Sequence[Bundle] = ()  # a merge: the shards' patches, proven already
    ruff_exe: str = field(default_factory=default_ruff)
    # Where no fence keeps tests off the git metadata, its watcher (see _prepare_tests).
    guard: MetadataGuard | None = None

    @property
    def select(self) -> tuple[str, ...] | None:
        """The rules asked for, or None for the repo's own ruff config."""
        return tuple(self.config.select) if self.config.select else None

    def ruff(self, tree: Worktree | None = None) -> Ruff:
        """ruff bound to a worktree (the reference one by default) and the selection."""
        return Ruff((tree or self.reference).path, self.select, self.ruff_exe)
