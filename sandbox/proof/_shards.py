"""The whole suite split over the cores: parts by test file, run side by side.

The last round's whole-suite run (the gate) had one pytest process and left every
other core idle while fixbot waited for it. Once the baseline has said which files
hold tests and how long the suite takes, that run is split into one part per worker,
each a selected run of its files in a worktree of its own (as probes run), and the
parts' outcomes are put together. Every test that ran at base still runs.

A split run decides only a pass. Where it shows anything worse than base (a test
failing, missing, a part stopped), the suite runs again whole, in one process, and
that run is judged: a test that needs another file's tests in its process would
otherwise fail there, be found failing alone at base, and be excused for good.

Not split: a suite too quick to pay for a second start-up, a command that is not
pytest, names paths of its own, or already runs in parallel (pytest-xdist, on the
command line or in the repo's pytest configuration).
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from typing import TYPE_CHECKING, Protocol

import anyio
import structlog

from fixbot.sandbox._testrun import OUTPUT_TAIL
from fixbot.sandbox._types import TestResults, TestStatus

from ._judge import test_file

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from fixbot.sandbox._testrun import TestCommand

    from ._candidate import ProofStats
    from ._judge import Baseline

log = structlog.get_logger("fixbot")

# A part runs at least this long (by the baseline's time): below it, another start-up
# of pytest and the repo's imports costs more than the part saves.
SECONDS_A_PART = 1.5
# pytest-xdist's options, as they may be written on a command line or in `addopts`.
_PARALLEL = re.compile(r"""(?:^|[\s"'\[,])(?:-n|--numprocesses\b|--dist\b|--tx\b)|xdist""")
# Where pytest reads its options (addopts) at a repo's root.
_CONFIG_FILES = (
    "pyproject.toml",
    "pytest.ini",
    ".pytest.ini",
    "pytest.toml",
    "setup.cfg",
    "tox.ini",
)


def runs_in_parallel(root: Path) -> bool:
    """Whether the repo's pytest configuration may already spread a run over processes
    (any mention of pytest-xdist's options: a false alarm costs only the split)."""
    for name in _CONFIG_FILES:
        with contextlib.suppress(OSError):
            if _PARALLEL.search((root / name).read_text("utf-8", errors="replace")):
                return True
    return False


def parts_of_suite(
    baseline: Baseline, command: TestCommand | None, workers: int, *, parallel: bool = False
) -> list[list[str]] | None:
    """The test files of each part of a whole-suite run, or None to run it in one.
    `parallel`: the repo's configuration already runs pytest in parallel."""
    base = baseline.results
    if command is None or not command.is_pytest or base is None or not base.per_test:
        return None
    args = command.argv[command.argv.index("pytest") + 1 :] if "pytest" in command.argv else ()
    if parallel or _PARALLEL.search(" ".join(command.argv)):
        return None
    if any(not a.startswith("-") for a in args):
        return None  # paths of its own (or an option's value): each part would run them all
    files = sorted(baseline.test_files)
    count = min(workers, len(files), int(base.seconds // SECONDS_A_PART))
    if count < 2:
        return None
    # Heaviest first, each to the lightest part so far (by tests at base).
    tests = Counter(test_file(t) for t in base.outcomes)
    parts: list[list[str]] = [[] for _ in range(count)]
    loads = [0] * count
    for file in sorted(files, key=lambda f: (-tests[f], f)):
        lightest = loads.index(min(loads))
        parts[lightest].append(file)
        loads[lightest] += max(1, tests[file])
    return [sorted(part) for part in parts]


def joined(parts: Sequence[TestResults]) -> TestResults:
    """One run's results from its parts' (their test files are disjoint); its time is
    the longest part's."""
    codes = [p.returncode for p in parts]
    # pytest: 0 passed, 1 tests failed, 5 none collected; anything else stopped a run.
    stopped = [c for c in codes if c not in {0, 1, 5}]
    code = stopped[0] if stopped else 1 if 1 in codes else 5 if all(c == 5 for c in codes) else 0
    outcomes: dict[str, TestStatus] = {}
    failures: dict[str, str] = {}
    for part in parts:
        outcomes.update(part.outcomes)
        failures.update(part.failures)
    # Each part's tail, where run_tests puts what stopped it (a time-out, a limit).
    share = OUTPUT_TAIL // len(parts)
    return TestResults(
        outcomes=outcomes,
        returncode=code,
        output="\n".join(p.output[-share:] for p in parts),
        seconds=max(p.seconds for p in parts),
        per_test=all(p.per_test for p in parts),
        limit=next((p.limit for p in parts if p.limit), ""),
        failures=failures,
    )


class Runner(Protocol):
    """What runs the parts (the Prover): one test process at a time, and the stats."""

    baseline: Baseline
    stats: ProofStats

    async def run_one(
        self, files: Mapping[str, bytes], node_ids: Sequence[str] | None
    ) -> TestResults: ...


async def run_in_parts(
    prover: Runner, files: Mapping[str, bytes], parts: list[list[str]]
) -> TestResults:
    """The whole suite in `parts` side by side; again in one process, and judged so, if
    they show anything worse than base."""
    done: list[TestResults] = []

    async def run_part(part: list[str]) -> None:
        done.append(await prover.run_one(files, part))

    async with anyio.create_task_group() as tg:
        for part in parts:
            tg.start_soon(run_part, part)
    results = joined(done)
    stopped = any(p.returncode not in {0, 1, 5} or not p.per_test for p in done)
    if stopped or prover.baseline.problems(results):
        log.info("tests.unsplit", parts=len(parts), stopped=stopped)
        prover.stats.test_runs += 1  # the split run; run_suite counts the one in one process
        prover.stats.test_seconds += results.seconds
        results = await prover.run_one(files, None)
    return results
