"""The run, stage by stage: lint, baseline, plan, fan-out, gate, merge, report."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import anyio
import structlog

from fixbot.agents import Router
from fixbot.sandbox import (
    Baseline,
    ConfigError,
    Fingerprint,
    MetadataGuard,
    Prover,
    TestCache,
    WorktreePool,
    build_impact_map,
    common_dir,
    converted_files,
    default_limits,
    environment_of,
    find_python,
    generated_files,
    git,
    probe_isolation,
    resolve_test_command,
    rev_parse,
    sha256,
    sweep,
    toplevel,
)

from ._agents import estimate_llm, llm_block, make_agents
from ._fanout import FanOut
from ._gate import final_gate
from ._job import Job
from ._land import Proven, land
from ._merge import base_identity, check_branch
from ._plan import make_plan
from ._proof import check_baseline, checkout_fact, submodule_fact
from ._publish import Publisher, environ
from ._shard import replay
from ._state import RunLock, new_run_dir, worktree_root
from ._types import Context, Outcome, Progress, Timer

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from fixbot.sandbox import Isolation, TestCommand, Violation

    from ._config import Config
    from ._shard import Bundle

log = structlog.get_logger("fixbot")


async def run_fixbot(
    repo_arg: Path,
    paths: Sequence[str],
    config: Config,
    *,
    progress: Progress | None = None,
    bundles: Sequence[Bundle] = (),
) -> Outcome:
    """Run the whole job on one repository (or merge the bundles of a sharded one)."""
    timer = Timer(progress=progress)
    with timer.stage("setup"):
        repo = await toplevel(repo_arg.resolve())
        base = await rev_parse(repo, config.base)
        home = await common_dir(repo) / "fixbot"
    with RunLock(home):
        roots = worktree_root(home, config.worktree_dir)
        if swept := await sweep(repo, roots):
            log.info("worktrees.swept", count=swept, reason="left by an earlier run")
        now = datetime.now(UTC)
        identity = await base_identity(
            repo, base, config.commit_author_name, config.commit_author_email
        )
        branch = None if config.dry_run else (config.branch or f"fixbot/{now:%Y-%m-%d}")
        old_tip = await check_branch(repo, branch, identity, force=config.force) if branch else None
        publisher = None
        if branch and (config.push or config.open_pr):
            # Before any work: a missing token or remote is said now, and a branch a
            # person has pushed to ends the run here (LeftAlone). Split, the groups'
            # branches are looked at when each is published.
            publisher = Publisher(repo, config, branch, base, identity, environ())
            try:
                await publisher.prepare(branch_too=config.split_by == "none")
            except BaseException:
                await publisher.aclose()
                raise
            if config.split_by != "none":
                await publisher.aclose()
                publisher = None
        rel_paths = [relative_path(repo, repo_arg, p) for p in paths]
        run_dir = new_run_dir(home, f"{now:%Y%m%dT%H%M%SZ}-{base[:8]}")
        # One worktree per core the run may use (cgroup- and affinity-aware), plus the reference.
        jobs = config.jobs or max(1, len(os.sched_getaffinity(0)))
        generated = await generated_files(repo)
        if generated:
            log.info("worktrees.generated", count=len(generated), files=generated[:10])
        async with (
            WorktreePool(repo, base, roots, size=jobs + 1, generated=generated) as pool,
            pool.use() as reference,
        ):
            ctx = Context(
                config,
                repo,
                base,
                home,
                run_dir,
                branch,
                identity,
                rel_paths,
                timer,
                pool,
                reference,
            )
            if config.ruff_path:
                ctx.ruff_exe = config.ruff_path
            ctx.publisher, ctx.bundles = publisher, bundles
            try:
                return await _stages(ctx, old_tip, jobs)
            finally:
                if publisher is not None:
                    await publisher.aclose()
                if ctx.guard is not None:
                    # Every test process is gone now (killed with its group): what one
                    # planted after the last check, in a race with a stopping run, is
                    # put back too.
                    ctx.guard.put_back()


def _round_shown(progress: Progress | None) -> Callable[[int, int], None] | None:
    if progress is None:
        return None

    def shown(number: int, _candidates: int) -> None:
        progress.round = number

    return shown


def relative_path(repo: Path, repo_arg: Path, path: str) -> str:
    """A path given on the command line, relative to the repository's top level."""
    full = (repo_arg / path).resolve()
    try:
        return full.relative_to(repo).as_posix()
    except ValueError:
        raise ConfigError(f"path is outside the repository: {path}") from None


async def _stages(ctx: Context, old_tip: str | None, jobs: int) -> Outcome:
    with ctx.timer.stage("lint"):
        ruff_version, violations = await _lint(ctx)
    with ctx.timer.stage("prepare"):
        command, isolation, prover = await _prepare_tests(ctx)
        # Where no fence keeps the tests out of the user's checkout, its state is taken
        # before and after: "not touched" is then measured, not assumed.
        checkout = None if isolation.fences_files else Fingerprint.of(ctx.repo)
    # The suite at base runs side by side with planning, proposing and the first
    # round's tests; only judging a test run waits for it (Prover.test_problems).
    async with (
        anyio.create_task_group() as background,
        make_agents(ctx.config, ctx.ruff(), ctx.home / "cache", prover.lint_cache) as (
            agents,
            client,
        ),
    ):
        background.start_soon(_baseline, ctx, command, prover)
        with ctx.timer.stage("plan"):
            router = Router(agents, ctx.config.unsafe_fixes)
            root = ctx.reference.path.resolve()
            found = {v.path for v in violations}
            links = {p for p in found if (root / p).resolve() != root / p}
            plain = {p: ctx.reference.read(p) for p in found - links if (root / p).is_file()}
            plan = make_plan(
                violations,
                router,
                paths=ctx.paths,
                exclude=ctx.config.exclude,
                symlinks=links,
                converted=await converted_files(ctx.repo, ctx.base, plain),
            )
            estimate = estimate_llm(plan, router, ctx.config)

            # Each planned file was read once already, for converted_files.
            def content(key: str) -> bytes:
                return plain[key] if key in plain else ctx.reference.read(key)

            fan = FanOut(
                prover=prover,
                root=ctx.reference.path,
                ruff=ctx.ruff(),
                jobs=[
                    Job(
                        t,
                        router.stages_for(t),
                        content(t.key),
                        max_attempts=ctx.config.llm_attempts,
                    )
                    for t in plan.tasks
                ],
                concurrency=max(ctx.config.llm_concurrency, jobs * 2) if client else jobs * 2,
                max_patches=ctx.config.max_patches,
                on_round=_round_shown(ctx.timer.progress),
            )
            log.info("plan.ready", violations=len(plan.violations), tasks=len(plan.tasks))
            if (progress := ctx.timer.progress) is not None:
                progress.planned, progress.jobs = len(plan.violations), fan.jobs
                progress.stats = prover.stats
            if client is not None:
                # Said before any request goes out, so a run that would cost too much can be
                # stopped in time.
                log.warning("llm.estimate", budget=ctx.config.llm_token_budget, **estimate)
        with ctx.timer.stage("prove"):
            if ctx.bundles:
                fan.rounds = replay(fan.jobs, ctx.bundles)
            else:
                await fan.run()
        dropped = Counter(reason for agent in agents for reason in agent.dropped.values())
    llm_usage = llm_block(client, estimate)
    with ctx.timer.stage("gate"):
        await final_gate(prover, fan.jobs, ctx.reference)
    facts = {**isolation.facts, "checkout": checkout_fact(ctx.repo, checkout)}
    if ctx.pool.submodules or ctx.pool.missing_submodules:
        facts["submodules"] = submodule_fact(ctx.pool.submodules, ctx.pool.missing_submodules)
    proven = Proven(fan, prover, command, isolation, plan, ruff_version, llm_usage, facts,
                    dict(dropped))  # fmt: skip
    return await land(ctx, proven, old_tip)


async def _lint(ctx: Context) -> tuple[str, list[Violation]]:
    ruff = ctx.ruff()
    version = await ruff.version()
    missing = [p for p in ctx.paths if not (ctx.reference.path / p).exists()]
    if missing:
        raise ConfigError(f"no such path at {ctx.base[:12]}: {missing[0]}")
    lint = await ruff.lint(ctx.paths)
    for failure in lint.failed:
        log.warning("lint.failed", detail=failure)
    return version, lint.violations


async def _prepare_tests(ctx: Context) -> tuple[TestCommand | None, Isolation, Prover]:
    """The test command, how runs are isolated, the import graph, and a Prover."""
    source: Literal["flag", "config"] = (
        "flag" if ctx.config.source("test_cmd") in {"flag", "env"} else "config"
    )
    command = resolve_test_command(ctx.repo, ctx.config.test_cmd, source)
    python = command.python if command else find_python(ctx.repo)
    limits = default_limits(ctx.pool.size, ctx.config.test_timeout)
    isolation = await probe_isolation(limits=limits, scratch=ctx.run_dir / "tmp")
    held = list(ctx.config.secrets)
    if command is not None and not isolation.fences_files and held:
        # Unfenced, a test reaches what fixbot's user can: with no PID namespace it reads
        # /proc/<fixbot>/environ; with unshare's, root unmounts /proc to see the host's,
        # or plants a `git` on PATH that fixbot's push then runs with the token.
        raise ConfigError(
            f"the repo's tests would run beside {', '.join(held)} with no filesystem fence"
            " to keep them from it: install bubblewrap (with unprivileged user namespaces"
            " allowed), or unset it"
        )
    if not isolation.fences_files:
        ctx.guard = MetadataGuard(ctx.home.parent)  # before any test runs
        # Said out loud: without bubblewrap a test can reach what fixbot's user can.
        log.warning(
            "isolation.weak",
            sandbox=isolation.sandbox,
            advice="install bubblewrap: the repo's tests are not fenced off the filesystem",
        )
    impact = None
    if command is not None and ctx.config.test_impact:
        impact = await build_impact_map(
            ctx.reference.path, ctx.ruff_exe, always_full=ctx.config.always_run
        )
    cache = None
    if command is not None and ctx.config.test_cache:
        tree = (await git("rev-parse", f"{ctx.base}^{{tree}}", cwd=ctx.repo)).stdout.decode()
        salt = {
            "tree": tree.strip(),
            "command": list(command.argv),
            "environment": environment_of(command.python),
            "generated": {p: sha256((ctx.repo / p).read_bytes()) for p in ctx.pool.generated},
            "limits": isolation.facts.get("limits", ""),
        }
        cache = TestCache(ctx.home / "cache" / "tests", salt)
    prover = Prover(
        cache=cache,
        guard=ctx.guard,
        pool=ctx.pool,
        select=ctx.select,
        ruff_executable=ctx.ruff_exe,
        python=python,
        isolation=isolation,
        test_command=command,
        baseline=Baseline(None),
        test_timeout=ctx.config.test_timeout,
        impact=impact,
        reveal=ctx.config.land_revealed,
    )
    return command, isolation, prover


async def _baseline(ctx: Context, command: TestCommand | None, prover: Prover) -> None:
    if command is not None:
        with ctx.timer.stage("baseline", show=False):
            await prover.establish_baseline(lambda results: check_baseline(command, results))
    log.info(
        "baseline.ready",
        mode="tests" if command else "lint-only",
        isolation=prover.isolation.facts.get("network"),
    )


__all__ = ["relative_path", "run_fixbot"]
