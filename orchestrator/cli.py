"""`fixbot`: the command line. One user-facing error type; exit codes: docs/architecture.md."""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from fixbot.sandbox import ConfigError, FixbotError, default_ruff

from . import _options as opt  # noqa: TC001 - typer reads the annotations at run time
from ._cmd_shard import merge, plan_shards, run_shard
from ._config import load_config, setting_flags
from ._console import EXPECTED, exit_for, handle_signals, run_with_progress, start
from ._finish import finish
from ._shard import fixbot_version

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Pay down a repository's lint debt with proven fixes.",
)


def _version_line() -> str:
    """fixbot's version and the ruff it runs."""
    try:
        ruff = subprocess.run(
            [default_ruff(), "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.split()[-1]
    except (OSError, subprocess.SubprocessError, IndexError):
        ruff = "not found"
    return f"fixbot {fixbot_version()} (ruff {ruff})"


def _show_version(asked: bool) -> None:
    if asked:
        typer.echo(_version_line())
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_show_version, is_eager=True, help="Show the versions."
        ),
    ] = False,
) -> None:
    """Pay down a repository's lint debt: only proven fixes land on the fixbot branch."""


@app.command()
def version() -> None:
    """Show fixbot's version and ruff's."""
    typer.echo(_version_line())


@app.command()
def run(
    repo: Annotated[Path, typer.Argument(help="The repository (default: here).")] = Path(),
    paths: Annotated[list[str] | None, typer.Argument(help="Only these files or folders.")] = None,
    select: Annotated[
        str | None,
        typer.Option(help="Rules to fix, comma-separated (default: the repo's ruff config)."),
    ] = None,
    exclude: Annotated[
        str | None, typer.Option(help="Globs of paths to leave alone, comma-separated.")
    ] = None,
    max_patches: Annotated[
        int | None, typer.Option(help="Stop after this many accepted patches.")
    ] = None,
    base: Annotated[str | None, typer.Option(help="The commit to fix (default HEAD).")] = None,
    branch: opt.Branch = None,
    jobs: opt.Jobs = None,
    agents: Annotated[str | None, typer.Option(help="Agents to use: ruff,codemod,llm.")] = None,
    test_cmd: opt.TestCmd = None,
    report_dir: opt.ReportDir = None,
    dry_run: Annotated[
        bool | None,
        typer.Option("--dry-run/--no-dry-run", help="Prove and report; write no branch."),
    ] = None,
    force: opt.Force = None,
    push: opt.Push = None,
    open_pr: opt.OpenPr = None,
    remote: opt.Remote = None,
    pr_base: opt.PrBase = None,
    forge: opt.Forge = None,
    split_by: opt.SplitBy = None,
    pr_max_lines: opt.PrMaxLines = None,
    test_timeout: opt.TestTimeout = None,
    llm_base_url: Annotated[
        str | None,
        typer.Option(help="The model's OpenAI-compatible base URL.", rich_help_panel="Model"),
    ] = None,
    llm_model: Annotated[
        str | None, typer.Option(help="The model's name.", rich_help_panel="Model")
    ] = None,
    llm_concurrency: Annotated[
        int | None,
        typer.Option(help="Model requests in flight (default 16).", rich_help_panel="Model"),
    ] = None,
    llm_max_requests: Annotated[
        int | None,
        typer.Option(help="Hard cap on model requests, retries included.", rich_help_panel="Model"),
    ] = None,
    llm_token_budget: Annotated[
        int | None,
        typer.Option(
            help="Hard cap on model tokens, prompt and completion.", rich_help_panel="Model"
        ),
    ] = None,
    log_format: opt.LogFormat = None,
    color: opt.Color = None,
    quiet: opt.Quiet = False,
    config_file: opt.ConfigFile = None,
    diff: opt.Diff = None,
    exit_non_zero_on_fix: opt.ExitNonZeroOnFix = None,
    output_format: opt.OutputFormat = None,
    output_file: opt.OutputFile = None,
    fail_on_unfixed: opt.FailOnUnfixed = None,
    verbose: opt.Verbose = False,
    plan: Annotated[
        Path | None,
        typer.Option(
            help="A plan from `fixbot plan`: prove one of its shards.", rich_help_panel="Sharding"
        ),
    ] = None,
    shard: Annotated[
        int | None, typer.Option(help="The shard to prove (1-based).", rich_help_panel="Sharding")
    ] = None,
    bundle_out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the shard's bundle, for `fixbot merge`.", rich_help_panel="Sharding"
        ),
    ] = None,
) -> None:
    """Lint, propose fixes, prove each one, and put the proven ones on a branch."""
    flags = setting_flags(locals())  # first: only the parameters are there yet
    handle_signals()
    try:
        if not repo.is_dir():
            raise FixbotError(f"not a directory: {repo}")
        if plan is not None:
            run_shard(
                repo,
                paths or [],
                flags,
                plan,
                shard,
                bundle_out,
                speech=(verbose, quiet, config_file),
            )
            return
        if shard is not None or bundle_out is not None:
            raise ConfigError("--shard and --bundle-out go with --plan")
        config = load_config(repo, flags=flags, config_file=config_file)
        start(config, verbose=verbose, quiet=quiet)
        outcome, seconds = run_with_progress(repo, paths or [], config)
    except EXPECTED as exc:
        raise exit_for(exc) from None
    finish(outcome, config, seconds)


app.command(name="plan")(plan_shards)
app.command(name="merge")(merge)


def main() -> None:
    """Console-script entry point.

    Ends the process without tearing the interpreter down. A run on a big repository
    holds hundreds of MB of parsed trees and findings when it is done, and freeing
    them one object at a time took over a second at exit (dateutil: 1.1 s of a 54 s
    run) with nothing left to do. Exit handlers still run (they remove the run's
    scratch folders), and the output is flushed first.
    """
    try:
        app()
    except SystemExit as stop:
        code = stop.code
    else:
        code = 0
    if isinstance(code, str):  # sys.exit("message"), as Python reports it
        sys.stderr.write(code + "\n")
        code = 1
    atexit._run_exitfuncs()  # noqa: SLF001 - the handlers an interpreter exit would run
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to flush to
            stream.flush()
    os._exit(code or 0)
