"""report.json (the machine's account), report.md (the PR body) and the terminal summary."""

from __future__ import annotations

import platform
import re
from collections import Counter
from importlib import metadata
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from fixbot.sandbox import unified_diffs

if TYPE_CHECKING:
    from pathlib import Path

    from fixbot.sandbox import Baseline, TestCommand, Violation

    from ._job import PatchRecord
    from ._plan import Plan


class RuleCounts(BaseModel):
    """Violation counts for one rule, and what became of the fixes offered for it."""

    found: int = 0
    fixed: int = 0
    rejected: int = 0
    unfixed: int = 0
    offered: int = Field(default=0, description="violations found with a fix ruff can apply")
    landed: int = Field(default=0, description="fixes in accepted patches (uncovered ones too)")
    refused: dict[str, int] = Field(
        default_factory=dict, description="fixes in patches not landed, by reason"
    )
    revealed: int = Field(
        default=0,
        description="findings of this rule that landed fixes revealed (see land-revealed)",
    )


class RuleInfo(BaseModel):
    """What report.md says of a rule besides its counts: its name, and what was not tried."""

    name: str = Field(default="", description="ruff's kebab-case name (its documentation page)")
    not_attempted: dict[str, int] = Field(
        default_factory=dict, description="violations no agent was given, by reason (notebook...)"
    )


class PatchEntry(BaseModel):
    """One patch in the report."""

    id: str
    agent: str
    kind: str
    rules: list[str]
    files: list[str]
    status: str
    reason: str
    detail: str = ""
    fixes: int = 0
    revealed: list[str] = Field(
        default_factory=list,
        description="findings the patch's fixes revealed, each `rule path:line: message`",
    )


class TestsBlock(BaseModel):
    """How the repo's tests took part in the proof."""

    __test__ = False

    command: str | None
    mode: str  # "tests" or "lint-only"
    passed_before: int = 0
    passed_after: int = 0
    already_failing: int = 0
    flaky: int = 0
    flaky_tests: list[str] = Field(default_factory=list)
    already_failing_tests: list[str] = Field(default_factory=list)


class LlmBlock(BaseModel):
    """Model usage; all zero when no model took part."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    failures: int = 0
    cache_hits: int = 0
    budget_exhausted: bool = False
    estimated_requests: int = 0
    estimated_tokens: int = 0


class Report(BaseModel):
    """report.json, key for key as docs/architecture.md lists them."""

    base: str
    branch: str | None
    versions: dict[str, str]
    selection: dict[str, Any]
    violations_before: int
    violations_after: int
    accepted: int
    rejected: int
    dropped: int
    unfixed: int
    by_rule: dict[str, RuleCounts]
    patches: list[PatchEntry]
    tests: TestsBlock
    timings: dict[str, float]
    llm: LlmBlock = Field(default_factory=LlmBlock)
    isolation: dict[str, str]
    dry_run: bool = False
    proof: dict[str, Any] = Field(default_factory=dict)
    not_attempted: dict[str, int] = Field(
        default_factory=dict, description="violations no agent was given, by reason (notebook...)"
    )
    notices: list[str] = Field(
        default_factory=list, description="warnings of the run's (a half-configured model...)"
    )
    published: dict[str, Any] = Field(
        default_factory=dict, description="what --push and --open-pr did (pushed, url...)"
    )
    unfixed_reasons: dict[str, int] = Field(
        default_factory=dict,
        description="violations an agent was given and proposed nothing for, by its reason",
    )
    rule_info: dict[str, RuleInfo] = Field(
        default_factory=dict,
        description="per rule of by_rule: ruff's name, and violations not attempted by reason",
    )


def count_by_rule(
    before: list[Violation], after: list[Violation], records: list[PatchRecord]
) -> dict[str, RuleCounts]:
    """found / fixed / rejected / unfixed per rule; fixed + rejected + unfixed == found.

    Besides: how many fixes ruff offered, how many landed, and how many were
    refused, by reason (a test caught a change, lint could not confirm it...), and
    how many findings landed fixes revealed (left after, beside those found).
    """
    out: dict[str, RuleCounts] = {}
    for rec in records:
        for v in rec.patch.targets:
            counts = out.setdefault(v.rule, RuleCounts())
            if rec.status == "accepted":
                counts.landed += 1
            else:
                reason = rec.verdict.reason
                counts.refused[reason] = counts.refused.get(reason, 0) + 1
        for _, shown in rec.verdict.revealed if rec.status == "accepted" else ():
            out.setdefault(shown.split(" ", 1)[0], RuleCounts()).revealed += 1
    # Counted per rule, not matched by fingerprint: a fix that rewrites a `def` line
    # changes the fingerprint of every finding below it, which is not a fix.
    left = Counter(v.rule for v in after)
    still = Counter(v.fingerprint for v in after)
    refused = {v.identity for r in records if r.status != "accepted" for v in r.patch.targets}
    refused_left: Counter[str] = Counter()
    for v in before:
        counts = out.setdefault(v.rule, RuleCounts())
        counts.found += 1
        counts.offered += v.applicability in {"safe", "unsafe"}
        refused_left[v.rule] += v.fingerprint in refused and still[v.fingerprint] > 0
    for rule, counts in out.items():
        # What a landed fix revealed is left after, but was not one of those found.
        remaining = min(counts.found, max(0, left[rule] - counts.revealed))
        counts.fixed = counts.found - remaining
        counts.rejected = min(remaining, refused_left[rule])
        counts.unfixed = remaining - counts.rejected
    return dict(sorted(out.items()))


def describe_rules(
    plan: Plan, after: list[Violation], records: list[PatchRecord]
) -> dict[str, RuleInfo]:
    """Each rule's name, and its share of the plan's violations no agent was given."""
    out: dict[str, RuleInfo] = {}
    targets = [v for r in records for v in r.patch.targets]
    for v in (*plan.violations, *after, *targets):
        out.setdefault(v.rule, RuleInfo(name=v.name))
    rule_of = {v.fingerprint: v.rule for v in plan.violations}
    for fp, reason in plan.skipped.items():
        info = out.setdefault(rule_of.get(fp, "?"), RuleInfo())
        info.not_attempted[reason] = info.not_attempted.get(reason, 0) + 1
    return dict(sorted(out.items()))


def build_report(
    *,
    base: str,
    branch: str | None,
    versions: dict[str, str],
    select: tuple[str, ...] | None,
    select_source: str,
    plan: Plan,
    after: list[Violation],
    records: list[PatchRecord],
    command: TestCommand | None,
    baseline: Baseline,
    timings: dict[str, float],
    llm: LlmBlock,
    isolation: dict[str, str],
    dry_run: bool,
    proof: dict[str, Any],
    dropped_by_agents: dict[str, int] | None = None,
    notices: tuple[str, ...] = (),
) -> Report:
    """Assemble report.json from what the stages produced."""
    results = baseline.results
    passed = {t for t, s in (results.outcomes.items() if results else ()) if s == "passed"}
    return Report(
        base=base,
        branch=branch,
        versions={
            "fixbot": metadata.version("fixbot"),
            "python": platform.python_version(),
            **versions,
        },
        selection={
            "rules": list(select) if select else None,
            "source": select_source if select else "the repo's ruff configuration",
            "description": ", ".join(select) if select else "the repo's own ruff configuration",
        },
        violations_before=len(plan.violations),
        violations_after=len(after),
        accepted=sum(1 for r in records if r.status == "accepted"),
        rejected=sum(1 for r in records if r.status == "rejected"),
        dropped=sum(1 for r in records if r.status == "dropped"),
        unfixed=len(after),
        by_rule=count_by_rule(plan.violations, after, records),
        patches=patch_entries(records),
        tests=TestsBlock(
            command=command.display if command else None,
            mode="tests" if command else "lint-only",
            passed_before=len(passed),
            passed_after=len(passed - baseline.flaky),
            already_failing=len(baseline.already_failing),
            flaky=len(baseline.flaky),
            flaky_tests=sorted(baseline.flaky),
            already_failing_tests=sorted(baseline.already_failing),
        ),
        timings=timings,
        llm=llm,
        isolation=isolation,
        notices=list(notices),
        dry_run=dry_run,
        proof=proof,
        not_attempted=dict(Counter(plan.skipped.values())),
        unfixed_reasons=dict(sorted((dropped_by_agents or {}).items())),
        rule_info=describe_rules(plan, after, records),
    )


def patch_entries(records: list[PatchRecord]) -> list[PatchEntry]:
    """One entry per patch, in the order they were decided."""
    return [
        PatchEntry(
            id=r.patch.id,
            agent=r.patch.agent,
            kind=r.patch.kind,
            rules=list(r.patch.rules),
            files=list(r.patch.files),
            status=r.status,
            reason=r.verdict.reason,
            detail=r.verdict.detail[:2000],
            fixes=len(r.patch.targets),
            revealed=[d for _, d in r.verdict.revealed] if r.status == "accepted" else [],
        )
        for r in records
    ]


async def save_rejected(run_dir: Path, records: list[PatchRecord]) -> list[Path]:
    """Each rejected or dropped patch as a .diff headed by its verdict."""
    folder = run_dir / "rejected"
    refused = [r for r in records if r.status != "accepted"]
    diffs = await unified_diffs(
        [(r.patch.files[0], r.before, r.patch.changes[0].new) for r in refused]
    )
    out = []
    for i, (rec, diff) in enumerate(zip(refused, diffs, strict=True)):
        folder.mkdir(parents=True, exist_ok=True)
        name = re.sub(
            r"[^A-Za-z0-9_.-]+", "_", f"{i + 1:03d}-{rec.patch.rules[0]}-{rec.patch.files[0]}"
        )
        header = [
            f"# fixbot {rec.status} patch {rec.patch.id}",
            f"# rules: {', '.join(rec.patch.rules)}  fixes: {len(rec.patch.targets)}",
            f"# reason: {rec.verdict.reason}",
            *(f"# {line}" for line in rec.verdict.detail.splitlines()[:40]),
            *(f"# failing test: {t}" for t in rec.verdict.failing_tests[:40]),
        ]
        path = folder / f"{name}.diff"
        path.write_text("\n".join(header) + "\n" + diff, encoding="utf-8")
        out.append(path)
    return out
