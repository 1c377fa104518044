"""`fixbot`: the command line. One user-facing error type; exit codes: docs/architecture.md."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.table import Table

from fixbot.sandbox import ConfigError, FixbotError

from . import _logging
from ._ci import publish_to_github_actions, render_unfixed
from ._config import Config, load_config
from ._publish import LeftAlone
from ._run import Outcome, run_fixbot

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Pay down a repository's lint debt with proven fixes.",
)
out = Console()
err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Pay down a repository's lint debt: only proven fixes land on the fixbot branch."""


def _fail(message: str, code: int) -> typer.Exit:
    first, _, rest = message.partition("\n")
    err.print(f"[bold red]fixbot: error:[/] {first}", highlight=False, markup=True, soft_wrap=True)
    if rest:
        err.print(rest, highlight=False, markup=False)
    return typer.Exit(code)


def _terminate(*_: object) -> None:
    # A CI job being cancelled: clean up exactly as on Ctrl-C.
    raise KeyboardInterrupt


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
    branch: Annotated[
        str | None, typer.Option(help="Branch to write (default fixbot/<yyyy-mm-dd>).")
    ] = None,
    jobs: Annotated[int | None, typer.Option(help="Worktrees proving in parallel.")] = None,
    agents: Annotated[str | None, typer.Option(help="Agents to use: ruff,codemod,llm.")] = None,
    test_cmd: Annotated[
        str | None, typer.Option(help="The repo's test command ('' for lint-only proof).")
    ] = None,
    report_dir: Annotated[
        str | None, typer.Option(help="Where report.json and report.md go.")
    ] = None,
    dry_run: Annotated[
        bool | None,
        typer.Option("--dry-run/--no-dry-run", help="Prove and report; write no branch."),
    ] = None,
    force: Annotated[
        bool | None,
        typer.Option("--force/--no-force", help="Replace a branch that has others' commits."),
    ] = None,
    push: Annotated[
        bool | None,
        typer.Option("--push/--no-push", help="Push the branch (force with lease)."),
    ] = None,
    open_pr: Annotated[
        bool | None,
        typer.Option("--open-pr/--no-open-pr", help="Open or update the branch's PR; pushes."),
    ] = None,
    remote: Annotated[str | None, typer.Option(help="The remote to push to.")] = None,
    pr_base: Annotated[
        str | None, typer.Option(help="The branch a new PR targets (default: the repo's).")
    ] = None,
    forge: Annotated[str | None, typer.Option(help="github, gitlab or auto.")] = None,
    test_timeout: Annotated[
        float | None, typer.Option(help="Seconds one test run may take.")
    ] = None,
    llm_base_url: Annotated[
        str | None, typer.Option(help="The model's OpenAI-compatible base URL.")
    ] = None,
    llm_model: Annotated[str | None, typer.Option(help="The model's name.")] = None,
    llm_concurrency: Annotated[
        int | None, typer.Option(help="Model requests in flight (default 16).")
    ] = None,
    llm_max_requests: Annotated[
        int | None, typer.Option(help="Hard cap on model requests, retries included.")
    ] = None,
    llm_token_budget: Annotated[
        int | None, typer.Option(help="Hard cap on model tokens, prompt and completion.")
    ] = None,
    log_format: Annotated[str | None, typer.Option(help="auto, json or console.")] = None,
    output_format: Annotated[
        str | None, typer.Option(help="What stayed unfixed: text, github, gitlab or json.")
    ] = None,
    output_file: Annotated[
        str | None, typer.Option(help="Write --output-format's output here, not to stdout.")
    ] = None,
    fail_on_unfixed: Annotated[
        bool | None,
        typer.Option("--fail-on-unfixed/--no-fail-on-unfixed", help="Exit 1 if debt is left."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show progress events on a terminal.")
    ] = False,
) -> None:
    """Lint, propose fixes, prove each one, and put the proven ones on a branch."""
    flags: dict[str, Any] = {
        "select": select,
        "exclude": exclude,
        "max_patches": max_patches,
        "base": base,
        "branch": branch,
        "jobs": jobs,
        "agents": agents,
        "test_cmd": test_cmd,
        "report_dir": report_dir,
        "dry_run": dry_run,
        "force": force,
        "push": push,
        "open_pr": open_pr,
        "remote": remote,
        "pr_base": pr_base,
        "forge": forge,
        "test_timeout": test_timeout,
        "llm_base_url": llm_base_url,
        "llm_model": llm_model,
        "llm_concurrency": llm_concurrency,
        "llm_max_requests": llm_max_requests,
        "llm_token_budget": llm_token_budget,
        "log_format": log_format,
        "output_format": output_format,
        "output_file": output_file,
        "fail_on_unfixed": fail_on_unfixed,
    }
    # A closed terminal or a dropped SSH session (SIGHUP) cleans up as Ctrl-C does.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        if not repo.is_dir():
            raise FixbotError(f"not a directory: {repo}")  # noqa: TRY301 - one exit path
        config = load_config(repo, flags=flags)
        check_report_dir(config.report_dir)
        tokens = (config.llm_api_key, config.github_token, config.gitlab_token)
        secrets = [s.get_secret_value() for s in tokens if s]
        json_logs = _logging.use_json(config.log_format)
        level = logging.INFO if (json_logs or verbose) else logging.WARNING
        _logging.configure(config.log_format, secrets, level)
        for notice in config.notices:
            err.print(f"fixbot: warning: {notice}", markup=False, highlight=False, soft_wrap=True)
        outcome = _run_with_progress(
            repo, paths or [], config, show=not json_logs and err.is_terminal
        )
    except (FixbotError, KeyboardInterrupt, LeftAlone, BaseExceptionGroup) as exc:
        raise _exit_for(exc) from None
    _summary(outcome)
    try:
        _ci_outputs(outcome, config)
    except FixbotError as exc:
        raise _exit_for(exc) from None
    if config.fail_on_unfixed and outcome.remaining:
        raise typer.Exit(1)


def _ci_outputs(outcome: Outcome, config: Config) -> None:
    """Annotations of what stayed unfixed, and GitHub Actions' step summary and outputs."""
    if config.output_format != "text":
        text = render_unfixed(outcome.remaining, config.output_format)
        if config.output_file:
            path = Path(config.output_file).expanduser()
            try:
                path.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot write --output-file {path}: {exc.strerror}") from None
        elif text:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
    r, md = outcome.report, outcome.report_dir / "report.md"
    publish_to_github_actions(
        os.environ,
        summary=md.read_text(encoding="utf-8"),
        outputs={"branch": r.branch or "", "accepted": str(r.accepted), "report": str(md)},
    )


def check_report_dir(report_dir: str | None) -> None:
    """A report folder that cannot be written is bad input, found before anything is done."""
    if not report_dir:
        return
    folder = Path(report_dir).expanduser().resolve()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise FixbotError(f"--report-dir is not a folder: {existing}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FixbotError(f"--report-dir cannot be written: {existing}")


def _exit_for(exc: BaseException) -> typer.Exit:
    """One line and an exit code for an error a user caused; a bug keeps its traceback."""
    # Errors raised inside task groups arrive wrapped in exception groups.
    while isinstance(exc, BaseExceptionGroup):
        expected = exc.subgroup((FixbotError, KeyboardInterrupt, LeftAlone))
        if expected is None:
            raise exc
        exc = expected.exceptions[0]
    if isinstance(exc, LeftAlone):
        err.print(f"fixbot: {exc}", markup=False, highlight=False, soft_wrap=True)
        return typer.Exit(0)
    if isinstance(exc, KeyboardInterrupt):
        err.print("fixbot: interrupted; worktrees removed, nothing of yours was changed")
        return typer.Exit(130)
    assert isinstance(exc, FixbotError)  # noqa: S101 - the only other kind caught
    return _fail(str(exc), exc.exit_code)


def _run_with_progress(repo: Path, paths: list[str], config: Any, *, show: bool) -> Outcome:
    if not show:
        return anyio.run(run_fixbot, repo, paths, config)
    with err.status("starting") as status:

        def on_stage(name: str) -> None:
            status.update(f"[bold]{name}[/]")

        def on_round(number: int, count: int) -> None:
            status.update(f"[bold]prove[/]: round {number}, {count} candidate(s) in one batch")

        async def go() -> Outcome:
            return await run_fixbot(repo, paths, config, on_stage=on_stage, on_round=on_round)

        return anyio.run(go)


def _summary(outcome: Outcome) -> None:
    r = outcome.report
    table = Table(title="fixbot: violations by rule", show_lines=False)
    for column in ("rule", "found", "fixed", "rejected", "unfixed"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for rule, c in r.by_rule.items():
        table.add_row(rule, str(c.found), str(c.fixed), str(c.rejected), str(c.unfixed))
    out.print(table)
    proof = (
        f"tests: {r.tests.command}"
        if r.tests.mode == "tests"
        else "LINT ONLY (no test command found)"
    )
    out.print(
        f"violations {r.violations_before} -> {r.violations_after}; "
        f"patches: {r.accepted} accepted, {r.rejected} rejected, {r.dropped} dropped; "
        f"proof: {proof}",
        highlight=False,
    )
    checkout = r.isolation.get("checkout", "")
    if checkout.startswith("CHANGED"):
        out.print(f"WARNING: your checkout was {checkout}", highlight=False, markup=False)
    if r.branch:
        untouched = "" if checkout.startswith("CHANGED") else " (your checkout was not touched)"
        out.print(f"branch: {r.branch}{untouched}", highlight=False)
    elif r.dry_run:
        out.print("dry run: no branch written", highlight=False)
    else:
        out.print("nothing proven to land: no branch written", highlight=False)
    published = r.published
    if published.get("url"):
        out.print(f"{published['review']}: {published['url']}", highlight=False)
    elif published:
        out.print(f"pushed: {published['pushed']} ({published.get('why', '')})", highlight=False)
    out.print(f"report: {outcome.report_dir / 'report.md'}", highlight=False)


def main() -> None:
    """Console-script entry point."""
    app()
