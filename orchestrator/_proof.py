"""What a run says about its proof: whether the tests can judge anything at base, what
was in force while they ran, and what proving cost, for the report and the commits."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import structlog

from fixbot.sandbox import Fingerprint, TestCommandError, entropy_bound

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from fixbot.sandbox import Isolation, Prover, TestCommand, TestResults

    from ._job import PatchRecord

log = structlog.get_logger("fixbot")

# Terminal escape sequences (CSI, OSC, two-byte) and other control characters but tab
# and newline: the untrusted run's output is shown without them.
_CONTROL = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|.)|[\x00-\x08\x0b-\x1f\x7f]"
)


def check_baseline(command: TestCommand, results: TestResults) -> None:
    """A test command that cannot run at base makes every later verdict meaningless."""
    # The untrusted run's own words: without terminal control sequences (a fake "all
    # passed" line, a window title, the clipboard), before they reach a terminal or a log.
    shown = _CONTROL.sub("", results.output[-3000:])
    tail = "\n" + shown if shown else ""
    problem = None
    if not results.per_test:
        if results.returncode != 0:
            problem = f"fails at base (exit {results.returncode})"
    elif any(s == "error" and "::" not in t for t, s in results.outcomes.items()):
        problem = "has collection errors at base"
    elif not results.outcomes:
        problem = "ran no tests at base"
    elif results.returncode not in {0, 1}:
        problem = f"cannot run at base (exit {results.returncode})"
    if problem:
        raise TestCommandError(f"test command {problem}: {command.display}{tail}")


def submodule_fact(present: Mapping[str, str], missing: Sequence[str]) -> str:
    """Which submodules the worktrees have, and which tests therefore protect nothing."""
    parts = []
    if present:
        parts.append("cloned offline from your checkout's own: " + ", ".join(sorted(present)))
    if missing:
        log.warning("submodules.missing", paths=list(missing))
        parts.append(
            "NOT in your checkout, so not in the worktrees: "
            + ", ".join(sorted(missing))
            + " (tests that need them fail at base and protect nothing)"
        )
    return "; ".join(parts)


def checkout_fact(repo: Path, before: Fingerprint | None) -> str:
    """What became of the user's checkout while the repo's tests ran."""
    if before is None:
        return "read-only to the tests"
    changed = before.changed(Fingerprint.of(repo))
    if not changed:
        return "unchanged (fingerprinted before and after)"
    log.warning("checkout.changed", files=changed[:20])
    return f"CHANGED during the run: {', '.join(changed[:10])}"


def proof_block(rounds: int, prover: Prover, records: list[PatchRecord]) -> dict[str, object]:
    """What proving cost, against the information bound N·H(p) (docs/architecture.md).

    N counts the patches decided and p the share refused for their tests; the runs
    it took (`test_runs` less `reruns_at_base`) are for comparison, not a promise:
    per-test outcomes tell more than one bit a run.
    """
    stats = prover.stats
    decided = [r for r in records if r.status in {"accepted", "rejected"}]
    broke = sum(1 for r in decided if r.status == "rejected" and r.verdict.reason == "tests")
    return {
        "rounds": rounds,
        "batches": stats.batches,
        "test_runs": stats.test_runs,
        "test_seconds": round(stats.test_seconds, 3),
        "selected_runs": stats.selected_runs,
        "reused_runs": stats.reused_runs,
        "cached_runs": stats.cached_runs,
        "reruns_at_base": stats.reruns_at_base,
        "tested": stats.tested,
        "failed_tests": stats.failed_tests,
        "patches_decided": len(decided),
        "patches_broke_tests": broke,
        "entropy_bound": round(entropy_bound(len(decided), broke), 2),
        "one_by_one": len(decided),
    }


def proof_line(command: TestCommand | None, prover: Prover, isolation: Isolation) -> str:
    lint = (
        "ruff with the repo's config (noqa ignored) finds the targeted violations gone "
        "and nothing new; compiles"
    )
    if command is None:
        return f"{lint}; lint only (no test command)."
    results = prover.baseline.results
    passed = sum(1 for s in (results.outcomes.values() if results else ()) if s == "passed")
    where = isolation.facts.get("network", "")
    return (
        f"{lint}; `{command.display}`: all {passed} tests that passed at base still pass "
        f"(network: {where})."
    )
