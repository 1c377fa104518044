"""Landing a proven run: the lint after, the branch, the report, the diff, publishing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from fixbot.sandbox import ServiceError, git, unified_diffs

from ._merge import write_branch
from ._plan import in_scope
from ._proof import proof_block, proof_line
from ._report import build_report, save_rejected
from ._report_md import write_reports
from ._shard import fixbot_version
from ._split import Landing, failures, split_and_land
from ._types import Outcome

if TYPE_CHECKING:
    from fixbot.sandbox import Isolation, Prover, TestCommand, Violation

    from ._config import Config
    from ._fanout import FanOut
    from ._job import PatchRecord
    from ._plan import Plan
    from ._types import Context

log = structlog.get_logger("fixbot")


@dataclass(slots=True)
class Proven:
    """What the stages up to the final gate hand the landing."""

    fan: FanOut
    prover: Prover
    command: TestCommand | None
    isolation: Isolation
    plan: Plan
    ruff_version: str
    llm: Any
    facts: dict[str, str]
    dropped: dict[str, int]


async def land(ctx: Context, proven: Proven, old_tip: str | None) -> Outcome:
    """Lint the merged tree, write the branch, the reports and the diff, and publish."""
    fan, prover, command, isolation = proven.fan, proven.prover, proven.command, proven.isolation
    plan, ruff_version, llm_usage = proven.plan, proven.ruff_version, proven.llm
    facts, dropped = proven.facts, proven.dropped
    with ctx.timer.stage("lint_after"):
        after = await _lint_after(ctx, fan)
    with ctx.timer.stage("merge"):
        proof = proof_line(command, prover, isolation)
        tip = await _merge(ctx, fan, old_tip, proof)
    with ctx.timer.stage("report"):
        records = [r for j in fan.jobs for r in j.records]
        report = build_report(
            base=ctx.base,
            branch=ctx.branch if tip else None,
            versions={
                "fixbot": fixbot_version(),
                "ruff": ruff_version,
                "git": await _git_version(ctx.repo),
            },
            select=ctx.select,
            select_source=ctx.config.source("select"),
            plan=plan,
            after=after,
            records=records,
            command=command,
            baseline=prover.baseline,
            timings=ctx.timer.timings,
            llm=llm_usage,
            isolation=facts,
            dry_run=ctx.config.dry_run,
            proof=proof_block(fan.rounds, prover, records),
            dropped_by_agents=dropped,
            notices=ctx.config.notices,
        )
        await save_rejected(ctx.run_dir, records)
        ground = fan.ground()
        diffs = await unified_diffs([(p, ctx.reference.read(p), ground[p]) for p in sorted(ground)])
        patch = ctx.run_dir / "accepted.patch"
        patch.write_text("".join(diffs), encoding="utf-8")
        report_dir = _report_dir(ctx.config, ctx.run_dir)
        write_reports(report, report_dir, list(ctx.config.secrets.values()))
    if ctx.publisher is not None or (ctx.config.split_by != "none" and tip):
        with ctx.timer.stage("publish"):
            body = (report_dir / "report.md").read_text(encoding="utf-8")
            report.published = await _publish(ctx, tip, records, prover, proof, body)
            write_reports(report, report_dir, list(ctx.config.secrets.values()))
        if failed := failures(report.published):
            raise ServiceError(f"publishing failed for {len(failed)} group(s): {failed[0]}")
    return Outcome(report, report_dir, ctx.run_dir, remaining=after, records=records, patch=patch)


async def _publish(
    ctx: Context,
    tip: str | None,
    records: list[PatchRecord],
    prover: Prover,
    proof: str,
    body: str,
) -> dict[str, object]:
    """Push and open or update the PR, or (--split-by) one branch and PR per group."""
    if ctx.publisher is not None:
        fixed = sum(len(r.patch.targets) for r in records if r.status == "accepted")
        return await ctx.publisher.publish(tip, accepted=fixed, report_md=body)
    landing = Landing(ctx.repo, ctx.base, ctx.identity, proof, ctx.branch or "fixbot")
    return await split_and_land(
        records, ctx.config, prover, ctx.reference, landing, body, ctx.run_dir / "split"
    )


async def _lint_after(ctx: Context, fan: FanOut) -> list[Violation]:
    """The merged tree's violations, in the run's scope (as counted before)."""
    async with ctx.pool.use() as tree:
        tree.write(fan.ground())
        after = await ctx.ruff(tree).lint(ctx.paths)
    return [v for v in after.violations if in_scope(v.path, ctx.paths, ctx.config.exclude)]


async def _merge(ctx: Context, fan: FanOut, old_tip: str | None, proof: str) -> str | None:
    accepted = [r for j in fan.jobs for r in j.records if r.status == "accepted"]
    if not ctx.branch or not accepted:
        return None
    tip = await write_branch(ctx.repo, ctx.base, accepted, ctx.identity, proof, ctx.branch, old_tip)
    log.info("branch.written", branch=ctx.branch, tip=tip, patches=len(accepted))
    return tip


async def _git_version(repo: Path) -> str:
    return (await git("--version", cwd=repo)).stdout.decode().split()[-1]


def _report_dir(config: Config, run_dir: Path) -> Path:
    if not config.report_dir:
        return run_dir
    return Path(config.report_dir).expanduser().resolve()
