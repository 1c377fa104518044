"""The run, stage by stage: lint, baseline, plan, fan-out, gate, merge, report."""

from __future__ import annotations

import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING

import structlog

from agents import Router, RuffAgent
from sandbox import (
    Baseline,
    Candidate,
    Prover,
    Ruff,
    TestCommandError,
    WorktreePool,
    default_ruff,
    find_python,
    git,
    probe_isolation,
    resolve_test_command,
    sweep,
)
from sandbox._git import common_dir, rev_parse, toplevel

from ._fanout import FanOut, Job, PatchRecord
from ._merge import base_identity, check_branch, move_branch, write_commits
from ._plan import make_plan
from ._report import (
    LlmBlock,
    Report,
    TestsBlock,
    count_by_rule,
    patch_entries,
    save_rejected,
    write_reports,
)
from ._state import RunLock, new_run_dir, worktree_root

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

    from sandbox import TestCommand, TestResults, Worktree

    from ._config import Config

log = structlog.get_logger("fixbot")


@dataclass(slots=True)
class Outcome:
    """What a finished run hands the CLI."""

    report: Report
    report_dir: Path
    run_dir: Path
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class Timer:
    """Seconds per stage, snake_case names."""

    timings: dict[str, float] = field(default_factory=dict)
    on_stage: Callable[[str], None] | None = None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time one stage and tell the progress display."""
        if self.on_stage:
            self.on_stage(name)
        log.info("stage.start", stage=name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0) + time.perf_counter() - start, 3)


def _check_baseline(command: TestCommand, results: TestResults) -> None:
    """A test command that cannot run at base makes every later verdict meaningless."""
    collection_errors = [t for t, s in results.outcomes.items() if s == "error" and "::" not in t]
    tail = "\n" + results.output[-3000:] if results.output else ""
    if not results.per_test:
        if results.returncode != 0:
            raise TestCommandError(
                f"test command fails at base (exit {results.returncode}): {command.display}{tail}"
            )
        return
    if collection_errors:
        raise TestCommandError(
            f"test command has collection errors at base: {command.display}{tail}"
        )
    if not results.outcomes:
        raise TestCommandError(f"test command ran no tests at base: {command.display}{tail}")
    if results.returncode not in {0, 1}:
        raise TestCommandError(
            f"test command cannot run at base (exit {results.returncode}): {command.display}{tail}"
        )


async def run_fixbot(
    repo_arg: Path,
    paths: Sequence[str],
    config: Config,
    *,
    on_stage: Callable[[str], None] | None = None,
    on_round: Callable[[int, int], None] | None = None,
) -> Outcome:
    """Run the whole job on one repository."""
    timer = Timer(on_stage=on_stage)
    with timer.stage("setup"):
        repo = await toplevel(repo_arg.resolve())
        base = await rev_parse(repo, config.base)
        home = await common_dir(repo) / "fixbot"
    with RunLock(home):
        roots = worktree_root(home, config.worktree_dir)
        swept = await sweep(repo, roots)
        if swept:
            log.info("worktrees.swept", count=swept, reason="left by an earlier run")
        now = datetime.now(UTC)
        run_dir = new_run_dir(home, f"{now:%Y%m%dT%H%M%SZ}-{base[:8]}")
        identity = await base_identity(
            repo, base, config.commit_author_name, config.commit_author_email
        )
        branch = None if config.dry_run else (config.branch or f"fixbot/{now:%Y-%m-%d}")
        old_tip = await check_branch(repo, branch, identity, force=config.force) if branch else None
        rel_paths = [_relative(repo, repo_arg, p) for p in paths]
        jobs = config.jobs or 2
        async with WorktreePool(repo, base, roots, size=jobs + 1) as pool, pool.use() as reference:
            return await _run_in(
                config, timer, repo, base, reference, pool, run_dir, branch, old_tip, identity,
                rel_paths, jobs, on_round,
            )  # fmt: skip


def _relative(repo: Path, repo_arg: Path, path: str) -> str:
    from pathlib import Path as _Path  # noqa: PLC0415

    full = (_Path(repo_arg) / path).resolve()
    try:
        return full.relative_to(repo).as_posix()
    except ValueError:
        from sandbox import ConfigError  # noqa: PLC0415

        raise ConfigError(f"path is outside the repository: {path}") from None


async def _run_in(
    config: Config,
    timer: Timer,
    repo: Path,
    base: str,
    reference: Worktree,
    pool: WorktreePool,
    run_dir: Path,
    branch: str | None,
    old_tip: str | None,
    identity: object,
    paths: list[str],
    jobs: int,
    on_round: Callable[[int, int], None] | None,
) -> Outcome:
    ruff_exe = config.ruff_path or default_ruff()
    select = tuple(config.select) if config.select else None
    with timer.stage("lint"):
        ruff = Ruff(reference.path, select, ruff_exe)
        ruff_version = await ruff.version()
        missing = [p for p in paths if not (reference.path / p).exists()]
        if missing:
            from sandbox import ConfigError  # noqa: PLC0415

            raise ConfigError(f"no such path at {base[:12]}: {missing[0]}")
        lint = await ruff.lint(paths)
    with timer.stage("baseline"):
        test_source = "flag" if config.source("test_cmd") in {"flag", "env"} else "config"
        command = resolve_test_command(repo, config.test_cmd, test_source)
        python = command.python if command else find_python(repo)
        isolation = await probe_isolation(python)
        prover = Prover(
            pool=pool,
            select=select,
            ruff_executable=ruff_exe,
            python=python,
            isolation=isolation,
            test_command=command,
            baseline=Baseline(None),
            test_timeout=config.test_timeout,
        )
        if command is not None:
            results = await prover.run_suite({})
            _check_baseline(command, results)
            prover.baseline = Baseline(results)
            prover.stats.test_runs = 0
            prover.stats.test_seconds = 0.0
    with timer.stage("plan"):
        router = Router(
            [RuffAgent(ruff_exe, select, config.max_fix_iterations)],
            unsafe_fixes=config.unsafe_fixes,
        )
        plan = make_plan(lint.violations, router, paths=paths, exclude=config.exclude)
        fan = FanOut(
            prover=prover,
            root=reference.path,
            ruff=ruff,
            jobs=[
                Job(task=t, stages=router.stages_for(t), content=reference.read(t.files[0]))
                for t in plan.tasks
            ],
            concurrency=max(2, jobs * 2),
            max_patches=config.max_patches,
            on_round=on_round,
        )
    log.info("plan.ready", violations=len(plan.violations), tasks=len(plan.tasks))
    with timer.stage("prove"):
        await fan.run()
    with timer.stage("gate"):
        dropped = await _gate(prover, fan, reference)
    records = [r for j in fan.jobs for r in j.records]
    accepted = [r for r in records if r.status == "accepted"]
    with timer.stage("lint_after"):
        files = fan.ground()
        async with pool.use() as tree:
            tree.write(files)
            after = await Ruff(tree.path, select, ruff_exe).lint(paths)
        after_in_scope = make_plan(
            after.violations, router, paths=paths, exclude=config.exclude
        ).violations
    tip = None
    with timer.stage("merge"):
        if branch and accepted:
            proof = _proof_line(command, prover, isolation.facts)
            temp_ref = f"refs/fixbot/staging/{run_dir.name}"
            tip = await write_commits(repo, base, accepted, identity, proof, temp_ref)  # type: ignore[arg-type]
            await move_branch(repo, branch, tip, old_tip)
            await git("update-ref", "-d", temp_ref, cwd=repo)
            log.info("branch.written", branch=branch, tip=tip, commits=len(accepted))
    with timer.stage("report"):
        results = prover.baseline.results
        passed_before = sum(
            1 for s in (results.outcomes.values() if results else []) if s == "passed"
        )
        report = Report(
            base=base,
            branch=branch if tip else None,
            versions={
                "fixbot": metadata.version("fixbot"),
                "ruff": ruff_version,
                "python": platform.python_version(),
                "git": (await git("--version", cwd=repo)).stdout.decode().split()[-1],
            },
            selection={
                "rules": list(select) if select else None,
                "source": config.source("select") if select else "ruff config of the repo",
                "description": ", ".join(select) if select else "the repo's own ruff configuration",
            },
            violations_before=len(plan.violations),
            violations_after=len(after_in_scope),
            accepted=len(accepted),
            rejected=sum(1 for r in records if r.status == "rejected"),
            dropped=len(dropped),
            unfixed=len(after_in_scope),
            by_rule=count_by_rule(plan.violations, after_in_scope, records),
            patches=patch_entries(records),
            tests=TestsBlock(
                command=command.display if command else None,
                mode="tests" if command else "lint-only",
                passed_before=passed_before,
                passed_after=passed_before - len(prover.baseline.flaky & _passed(results)),
                already_failing=len(prover.baseline.already_failing),
                flaky=len(prover.baseline.flaky),
                flaky_tests=sorted(prover.baseline.flaky),
                already_failing_tests=sorted(prover.baseline.already_failing),
            ),
            timings=timer.timings,
            llm=LlmBlock(),
            isolation=isolation.facts,
            dry_run=config.dry_run,
            proof={
                "rounds": fan.rounds,
                "test_runs": prover.stats.test_runs,
                "test_seconds": round(prover.stats.test_seconds, 3),
                "reruns_at_base": prover.stats.reruns_at_base,
            },
        )
        save_rejected(run_dir, records)
        report_dir = _report_dir(config, repo, run_dir)
        write_reports(report, report_dir)
    return Outcome(report=report, report_dir=report_dir, run_dir=run_dir)


def _passed(results: TestResults | None) -> set[str]:
    return {t for t, s in (results.outcomes.items() if results else []) if s == "passed"}


def _report_dir(config: Config, repo: Path, run_dir: Path) -> Path:
    from pathlib import Path as _Path  # noqa: PLC0415

    if not config.report_dir:
        return run_dir
    path = _Path(config.report_dir).expanduser()
    return path if path.is_absolute() else (_Path.cwd() / path)


def _proof_line(command: TestCommand | None, prover: Prover, isolation: dict[str, str]) -> str:
    lint = "ruff with the repo's config (noqa ignored): targeted violations gone, nothing new; compiles"
    if command is None:
        return lint + "; lint only (no test command)."
    results = prover.baseline.results
    passed = len(_passed(results))
    return f"{lint}; `{command.display}`: all {passed} tests that passed at base still pass ({isolation.get('network', '')})."


async def _gate(prover: Prover, fan: FanOut, reference: Worktree) -> list[PatchRecord]:
    """Lint and the whole suite on the merged tree; culprits are dropped, never the whole lot."""
    dropped: list[PatchRecord] = []
    for _ in range(3):
        changed = [j for j in fan.jobs if any(r.status == "accepted" for r in j.records)]
        if not changed:
            return dropped
        candidates = [
            Candidate(
                key=j.path,
                agent="gate",
                before={j.path: reference.read(j.path)},
                after={j.path: j.content},
            )
            for j in changed
        ]
        verdicts = await prover.prove(candidates, {})
        culprits = [j for j in changed if not verdicts[j.path].accepted]
        if not culprits:
            return dropped
        for job in culprits:
            verdict = verdicts[job.path]
            log.warning("gate.dropped", path=job.path, reason=verdict.reason)
            for rec in job.records:
                if rec.status == "accepted":
                    rec.status = "dropped"
                    rec.verdict = verdict.model_copy(update={"reason": f"gate: {verdict.reason}"})
                    dropped.append(rec)
            job.content = reference.read(job.path)
    # Still failing after three rounds: land nothing rather than something unproven.
    for job in fan.jobs:
        for rec in job.records:
            if rec.status == "accepted":
                rec.status = "dropped"
                dropped.append(rec)
        job.content = reference.read(job.path)
    return dropped
