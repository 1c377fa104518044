"""`fixbot plan`, `fixbot run --plan --shard --bundle-out` and `fixbot merge`: one run
across CI matrix jobs (see _shard.py for the files they hand each other)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import typer

from fixbot.agents import Router
from fixbot.sandbox import (
    ConfigError,
    Ruff,
    WorktreePool,
    common_dir,
    default_ruff,
    generated_files,
    rev_parse,
    toplevel,
)

from . import _options as opt  # noqa: TC001 - typer reads the annotations at run time
from ._agents import make_agents
from ._config import load_config, setting_flags
from ._console import EXPECTED, exit_for, handle_signals, run_with_progress, screen, start, warn
from ._finish import finish, summary
from ._plan import make_plan
from ._run import relative_path
from ._shard import Bundle, ShardPlan, check_bundles, check_versions, deal, fixbot_version
from ._state import RunLock, worktree_root

if TYPE_CHECKING:
    from ._config import Config

# How report.json's isolation block begins when bubblewrap fenced the tests.
FENCED = "read-only (bubblewrap)"


def plan_shards(
    repo: Annotated[Path, typer.Argument(help="The repository (default: here).")] = Path(),
    paths: Annotated[list[str] | None, typer.Argument(help="Only these files or folders.")] = None,
    shards: Annotated[int, typer.Option(min=1, help="How many shards.")] = 2,
    output: Annotated[Path, typer.Option(help="Where the plan goes.")] = Path("plan.json"),
    select: Annotated[str | None, typer.Option(help="Rules to fix, comma-separated.")] = None,
    exclude: Annotated[str | None, typer.Option(help="Globs of paths to leave alone.")] = None,
    base: Annotated[str | None, typer.Option(help="The commit to fix (default HEAD).")] = None,
    log_format: opt.LogFormat = None,
    color: opt.Color = None,
    quiet: opt.Quiet = False,
    config_file: opt.ConfigFile = None,
) -> None:
    """Lint the base once and split its files into shards of about equal cost."""
    flags = setting_flags(locals())  # first: only the parameters are there yet
    handle_signals()
    try:
        config = load_config(repo, flags=flags, config_file=config_file)
        start(config, quiet=quiet)
        plan = anyio.run(_make_plan, repo, paths or [], config, shards)
        try:
            plan.write(output)
        except OSError as exc:
            raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from None
    except EXPECTED as exc:
        raise exit_for(exc) from None
    sizes = ", ".join(str(len(s)) for s in plan.shards)
    screen.out.print(f"plan: {output} ({shards} shards of {sizes} files)", highlight=False)


async def _make_plan(repo_arg: Path, paths: list[str], config: Config, shards: int) -> ShardPlan:
    repo = await toplevel(repo_arg.resolve())
    base = await rev_parse(repo, config.base)
    home = await common_dir(repo) / "fixbot"
    rel = [relative_path(repo, repo_arg, p) for p in paths]
    with RunLock(home):
        roots = worktree_root(home, config.worktree_dir)
        generated = await generated_files(repo)
        async with (
            WorktreePool(repo, base, roots, size=1, generated=generated) as pool,
            pool.use() as tree,
        ):
            select = tuple(config.select) if config.select else None
            ruff = Ruff(tree.path, select, config.ruff_path or default_ruff())
            version = await ruff.version()
            lint = await ruff.lint(rel)
            async with make_agents(config, ruff, home / "cache") as (agents, _):
                router = Router(agents, config.unsafe_fixes)
                plan = make_plan(lint.violations, router, paths=rel, exclude=config.exclude)
    # A file's cost: its violations, and one for proving the file at all.
    cost = {t.files[0]: len(t.violations) + 1 for t in plan.tasks}
    return ShardPlan(
        base=base,
        versions={"fixbot": fixbot_version(), "ruff": version},
        select=list(config.select) if config.select else None,
        exclude=list(config.exclude),
        shards=deal(cost, shards),
    )


async def _ruff_version(repo: Path, config: Config) -> str:
    return await Ruff(repo, None, config.ruff_path or default_ruff()).version()


def run_shard(
    repo: Path,
    paths: list[str],
    flags: dict[str, Any],
    plan_file: Path,
    shard: int | None,
    bundle_out: Path | None,
    *,
    speech: tuple[bool, bool, Path | None],
) -> None:
    """Prove one shard of a plan and write its bundle (`fixbot run --plan`)."""
    if shard is None or bundle_out is None:
        raise ConfigError("--plan needs --shard K and --bundle-out DIR")
    if paths:
        raise ConfigError("with --plan, the plan says which files: give no PATHS")
    if flags.get("push") or flags.get("open_pr"):
        raise ConfigError("a shard only proves: `fixbot merge` pushes and opens the PR")
    try:
        bundle_out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--bundle-out cannot be made: {exc.strerror or exc}") from None
    plan = ShardPlan.read(plan_file)
    mine = plan.paths_of(shard)
    flags = {
        **flags,
        "base": plan.base,
        "select": plan.select,
        "exclude": plan.exclude,
        "dry_run": True,
        # FIXBOT_PUSH in the job's environment is for the merge, not for a shard.
        "push": False,
        "open_pr": False,
        "report_dir": str(bundle_out),
        "branch": None,
    }
    verbose, quiet, config_file = speech
    config = load_config(repo, flags=flags, config_file=config_file)
    start(config, verbose=verbose, quiet=quiet)
    check_versions(f"the plan {plan_file}", plan.versions, anyio.run(_ruff_version, repo, config))
    records, fenced = [], True
    if mine:
        outcome, seconds = run_with_progress(repo, mine, config)
        records = outcome.records
        fence = outcome.report.isolation.get("filesystem", "")
        fenced = outcome.report.tests.mode == "lint-only" or fence.startswith(FENCED)
        summary(outcome, seconds)
    bundle = Bundle(
        plan=plan.digest,
        base=plan.base,
        versions=plan.versions,
        shard=shard,
        shards=len(plan.shards),
        paths=mine,
        select=plan.select,
        exclude=plan.exclude,
        records=records,
        fenced=fenced,
    )
    where = bundle.write(bundle_out)
    screen.out.print(f"bundle: {where} (shard {shard} of {len(plan.shards)})", highlight=False)


def merge(
    bundles: Annotated[list[Path], typer.Argument(help="Bundle folders from the shards.")],
    repo: Annotated[Path, typer.Option(help="The repository (default: here).")] = Path(),
    branch: opt.Branch = None,
    push: opt.Push = None,
    open_pr: opt.OpenPr = None,
    remote: opt.Remote = None,
    pr_base: opt.PrBase = None,
    forge: opt.Forge = None,
    split_by: opt.SplitBy = None,
    pr_max_lines: opt.PrMaxLines = None,
    test_cmd: opt.TestCmd = None,
    test_timeout: opt.TestTimeout = None,
    jobs: opt.Jobs = None,
    report_dir: opt.ReportDir = None,
    force: opt.Force = None,
    output_format: opt.OutputFormat = None,
    output_file: opt.OutputFile = None,
    fail_on_unfixed: opt.FailOnUnfixed = None,
    diff: opt.Diff = None,
    exit_non_zero_on_fix: opt.ExitNonZeroOnFix = None,
    log_format: opt.LogFormat = None,
    color: opt.Color = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    config_file: opt.ConfigFile = None,
) -> None:
    """Apply the shards' bundles, run the final gate on them together, write and publish."""
    flags = setting_flags(locals())  # first: only the parameters are there yet
    handle_signals()
    try:
        if not repo.is_dir():
            raise ConfigError(f"--repo is not a directory: {repo}")
        loaded = [Bundle.read(folder) for folder in bundles]
        first = loaded[0]
        flags |= {"base": first.base, "select": first.select, "exclude": first.exclude}
        config = load_config(repo, flags=flags, config_file=config_file)
        start(config, verbose=verbose, quiet=quiet)
        for warning in check_bundles(loaded, anyio.run(_ruff_version, repo, config)):
            warn(warning)
        unfenced = [b for b in loaded if not b.fenced]
        if unfenced and (config.push or config.open_pr):
            raise ConfigError(
                f"bundle {unfenced[0].where} was proven with the repo's tests outside"
                " bubblewrap's fence, where they could rewrite it: publishing needs"
                " bubblewrap in every prove job"
            )
        outcome, seconds = run_with_progress(repo, [], config, bundles=loaded)
    except EXPECTED as exc:
        raise exit_for(exc) from None
    finish(outcome, config, seconds)
