"""How a command ends: the summary that stays on screen, the diff, CI outputs, the exit code."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from fixbot.sandbox import ConfigError, FixbotError

from ._ci import publish_to_github_actions, render_unfixed
from ._console import exit_for, screen

if TYPE_CHECKING:
    from ._config import Config
    from ._types import Outcome


def finish(outcome: Outcome, config: Config, seconds: float) -> None:
    """The summary, the diff, CI outputs; exit 1 for fixes or leftover debt when asked to."""
    if config.diff:
        patch = outcome.patch.read_text(encoding="utf-8") if outcome.patch else ""
        sys.stdout.write(patch)
        sys.stdout.flush()
    else:
        summary(outcome, seconds)
    try:
        ci_outputs(outcome, config)
    except FixbotError as exc:
        raise exit_for(exc) from None
    if config.exit_non_zero_on_fix and outcome.report.accepted:
        raise typer.Exit(1)
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


def summary(outcome: Outcome, seconds: float) -> None:
    """What the run did, on stdout: a table per rule (not when quiet), then a line each."""
    r = outcome.report
    revealed = sum(c.revealed for c in r.by_rule.values())
    if not screen.quiet:
        table = Table(title="fixbot: violations by rule", show_lines=False)
        columns = ("rule", "found", "fixed", "rejected", "unfixed") + ("revealed",) * bool(revealed)
        for column in columns:
            table.add_column(column, justify="left" if column == "rule" else "right")
        for rule, c in r.by_rule.items():
            counts = (c.found, c.fixed, c.rejected, c.unfixed) + (c.revealed,) * bool(revealed)
            table.add_row(rule, *map(str, counts))
        screen.out.print(table)
    proof = f"tests ({r.tests.command})" if r.tests.mode == "tests" else "LINT ONLY (no tests)"
    shown = f" ({revealed} revealed by landed fixes)" if revealed else ""
    lines = [
        (
            f"violations {r.violations_before} -> {r.violations_after}{shown} in {seconds:.1f}s; "
            f"patches: {r.accepted} accepted, {r.rejected} rejected, {r.dropped} dropped; "
            f"proof: {proof}"
        )
    ]
    checkout = r.isolation.get("checkout", "")
    if checkout.startswith("CHANGED"):
        lines.append(f"WARNING: your checkout was {checkout}")
    if r.branch:
        untouched = "" if checkout.startswith("CHANGED") else " (your checkout was not touched)"
        lines.append(f"branch: {r.branch}{untouched}")
    elif r.dry_run:
        lines.append("dry run: no branch written")
    else:
        lines.append("nothing proven to land: no branch written")
    lines += published_lines(r.published)
    lines.append(f"report: {outcome.report_dir / 'report.md'}")
    for line in lines if not screen.quiet else lines[:1] + lines[-1:]:
        # soft_wrap: a line longer than the terminal is never cut in two.
        screen.out.print(line, highlight=False, markup=False, soft_wrap=True)


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
