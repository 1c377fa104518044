"""The whole suite split over the cores: parts by test file, run side by side.

A whole-suite run (round 1, the gate) had one pytest process and left every other
core idle while fixbot waited for it. Once the baseline has said which files hold
tests and how long the suite takes, a whole run is split into one part per worker,
each a selected run of its files in a worktree of its own (as probes run), and the
parts' outcomes are put together. Every test that ran at base still runs; what
changes is which other files share its process, the same as for any selected run
(and a test that fails only so is rerun at base, where it is decided).

Not split: a suite too quick to pay for a second start-up, a command that is not
pytest, or one that already runs in parallel (pytest-xdist).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from fixbot.sandbox._testrun import OUTPUT_TAIL
from fixbot.sandbox._types import TestResults, TestStatus

from ._judge import test_file

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fixbot.sandbox._testrun import TestCommand

    from ._judge import Baseline

# A part runs at least this long (by the baseline's time): below it, another start-up
# of pytest and the repo's imports costs more than the part saves.
SECONDS_A_PART = 1.5
# Options that already spread a pytest run over processes.
_PARALLEL = ("-n", "--numprocesses", "--dist", "-p xdist", "--tx")


def parts_of_suite(
    baseline: Baseline, command: TestCommand | None, workers: int
) -> list[list[str]] | None:
    """The test files of each part of a whole-suite run, or None to run it in one."""
    base = baseline.results
    if command is None or not command.is_pytest or base is None or not base.per_test:
        return None
    argv = " ".join(command.argv)
    if any(f" {flag}" in f" {argv}" for flag in _PARALLEL):
        return None
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


def joined(parts: Sequence[TestResults], seconds: float) -> TestResults:
    """One run's results from its parts' (their test files are disjoint)."""
    codes = [p.returncode for p in parts]
    # pytest: 0 passed, 1 tests failed, 5 none collected; anything else stopped a run.
    stopped = [c for c in codes if c not in {0, 1, 5}]
    code = stopped[0] if stopped else 1 if 1 in codes else 5 if all(c == 5 for c in codes) else 0
    outcomes: dict[str, TestStatus] = {}
    failures: dict[str, str] = {}
    for part in parts:
        outcomes.update(part.outcomes)
        failures.update(part.failures)
    return TestResults(
        outcomes=outcomes,
        returncode=code,
        output="\n".join(p.output for p in parts)[-OUTPUT_TAIL:],
        seconds=seconds,
        per_test=all(p.per_test for p in parts),
        limit=next((p.limit for p in parts if p.limit), ""),
        failures=failures,
    )
