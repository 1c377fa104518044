"""What the command line shows and how it ends: one error line, the summary, CI outputs."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import typer
from rich.console import Console
from rich.table import Table

from fixbot.sandbox import ConfigError, FixbotError

from . import _logging
from ._ci import publish_to_github_actions, render_unfixed
from ._publish import LeftAlone
from ._run import run_fixbot

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._config import Config
    from ._shard import Bundle
    from ._types import Outcome

out = Console()
err = Console(stderr=True)
# What a command catches and turns into one line and an exit code (see exit_for).
EXPECTED = (FixbotError, KeyboardInterrupt, LeftAlone, BaseExceptionGroup)


def fail(message: str, code: int) -> typer.Exit:
    first, _, rest = message.partition("\n")
    err.print(f"[bold red]fixbot: error:[/] {first}", highlight=False, markup=True, soft_wrap=True)
    if rest:
        err.print(rest, highlight=False, markup=False)
    return typer.Exit(code)


def _terminate(*_: object) -> None:
    # A CI job being cancelled: clean up exactly as on Ctrl-C.
    raise KeyboardInterrupt


def handle_signals() -> None:
    """A closed terminal or a dropped SSH session (SIGHUP) cleans up as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)


def start(config: Config, *, verbose: bool) -> bool:
    """Logging set up with every secret redacted, warnings said; whether logs are JSON."""
    check_report_dir(config.report_dir)
    tokens = (config.llm_api_key, config.github_token, config.gitlab_token)
    secrets = [s.get_secret_value() for s in tokens if s]
    json_logs = _logging.use_json(config.log_format)
    level = logging.INFO if (json_logs or verbose) else logging.WARNING
    _logging.configure(config.log_format, secrets, level)
    for notice in config.notices:
        warn(notice)
    return json_logs


def warn(message: str) -> None:
    """One warning line on stderr, printed as is."""
    err.print(f"fixbot: warning: {message}", markup=False, highlight=False, soft_wrap=True)


def finish(outcome: Outcome, config: Config) -> None:
    """The summary, CI outputs, and exit 1 for leftover debt when asked to."""
    summary(outcome)
    try:
        ci_outputs(outcome, config)
    except FixbotError as exc:
        raise exit_for(exc) from None
    if config.fail_on_unfixed and outcome.remaining:
        raise typer.Exit(1)


def ci_outputs(outcome: Outcome, config: Config) -> None:
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


def exit_for(exc: BaseException) -> typer.Exit:
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
    return fail(str(exc), exc.exit_code)


def run_with_progress(
    repo: Path,
    paths: list[str],
    config: Any,
    *,
    show: bool,
    bundles: Sequence[Bundle] = (),
) -> Outcome:
    """The run, with a live status line on a terminal."""
    if not show:
        return anyio.run(lambda: run_fixbot(repo, paths, config, bundles=bundles))
    with err.status("starting") as status:

        def on_stage(name: str) -> None:
            status.update(f"[bold]{name}[/]")

        def on_round(number: int, count: int) -> None:
            status.update(f"[bold]prove[/]: round {number}, {count} candidate(s) in one batch")

        async def go() -> Outcome:
            return await run_fixbot(
                repo, paths, config, on_stage=on_stage, on_round=on_round, bundles=bundles
            )

        return anyio.run(go)


def summary(outcome: Outcome) -> None:
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
    for line in published_lines(r.published):
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    out.print(f"report: {outcome.report_dir / 'report.md'}", highlight=False)


def published_lines(published: dict[str, Any]) -> list[str]:
    """What --push, --open-pr and --split-by did, a line each."""
    entries = published.get("groups", [published] if published else [])
    lines = []
    for e in entries:
        name = f"{e['branch']}: " if "branch" in e and "groups" in published else ""
        if e.get("url"):
            lines.append(f"{name}{e['review']} {e['url']}")
        elif "skipped" in e:
            lines.append(f"{e['group']}: not written ({e['skipped']})")
        elif "pushed" in e:
            why = f" ({e['why']})" if e.get("why") else ""
            lines.append(f"{name}pushed: {e['pushed']}{why}")
        elif name:
            lines.append(f"{name}written, {e['fixes']} fix(es) in {e['files']} file(s)")
    return lines
