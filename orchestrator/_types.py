"""Values the run's modules share: what a run hands the command line, and its stage timer."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from fixbot.sandbox import Violation

    from ._job import PatchRecord
    from ._report import Report

log = structlog.get_logger("fixbot")


@dataclass(slots=True)
class Outcome:
    """What a finished run hands the CLI."""

    report: Report
    report_dir: Path
    run_dir: Path
    remaining: list[Violation] = field(default_factory=list)  # in scope, after the run
    records: list[PatchRecord] = field(default_factory=list)  # every patch decided


@dataclass(slots=True)
class Timer:
    """Seconds per stage, snake_case names."""

    timings: dict[str, float] = field(default_factory=dict)
    on_stage: Callable[[str], None] | None = None

    @contextmanager
    def stage(self, name: str, *, show: bool = True) -> Iterator[None]:
        """Time one stage and tell the progress display (unless it runs in the background)."""
        if self.on_stage and show:
            self.on_stage(name)
        log.info("stage.start", stage=name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0) + time.perf_counter() - start, 3)
