"""Command-line options every command shares: how it speaks, and where its config is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Quiet = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="Only errors, warnings and one closing line.",
        rich_help_panel="Output and config",
    ),
]
Verbose = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="Log what each stage does.", rich_help_panel="Output and config"
    ),
]
Color = Annotated[
    str | None,
    typer.Option(
        "--color",
        help="auto, always or never (NO_COLOR is honoured).",
        rich_help_panel="Output and config",
    ),
]
LogFormat = Annotated[
    str | None,
    typer.Option(
        help="console (readable; the default) or json (for machines).",
        rich_help_panel="Output and config",
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="A pyproject.toml (its tool.fixbot table) or fixbot.toml to read instead.",
        rich_help_panel="Output and config",
    ),
]

# Options `run` and `merge` share, so that their help never drifts apart.
Branch = Annotated[str | None, typer.Option(help="Branch to write (default fixbot/<yyyy-mm-dd>).")]
Jobs = Annotated[int | None, typer.Option(help="Worktrees proving in parallel.")]
TestCmd = Annotated[
    str | None, typer.Option(help="The repo's test command ('' for lint-only proof).")
]
TestTimeout = Annotated[float | None, typer.Option(help="Seconds one test run may take.")]
ReportDir = Annotated[
    str | None,
    typer.Option(help="Where report.json and report.md go.", rich_help_panel="Output and config"),
]
Force = Annotated[
    bool | None,
    typer.Option(
        "--force/--no-force",
        help="Replace a branch that has others' commits.",
        rich_help_panel="Publishing",
    ),
]
Push = Annotated[
    bool | None,
    typer.Option(
        "--push/--no-push",
        help="Push the branch (force with lease).",
        rich_help_panel="Publishing",
    ),
]
OpenPr = Annotated[
    bool | None,
    typer.Option(
        "--open-pr/--no-open-pr",
        help="Open or update the branch's PR; pushes.",
        rich_help_panel="Publishing",
    ),
]
Remote = Annotated[
    str | None, typer.Option(help="The remote to push to.", rich_help_panel="Publishing")
]
PrBase = Annotated[
    str | None,
    typer.Option(
        help="The branch a new PR targets (default: the repo's).", rich_help_panel="Publishing"
    ),
]
Forge = Annotated[
    str | None, typer.Option(help="github, gitlab or auto.", rich_help_panel="Publishing")
]
SplitBy = Annotated[
    str | None,
    typer.Option(
        help="One branch and PR per rule, directory or codeowners.",
        rich_help_panel="Publishing",
    ),
]
PrMaxLines = Annotated[
    int | None,
    typer.Option(
        help="Cut a PR over this many changed lines into parts.", rich_help_panel="Publishing"
    ),
]
Diff = Annotated[
    bool | None,
    typer.Option(
        "--diff/--no-diff",
        help="Print the diff of what landed (or would).",
        rich_help_panel="Output and config",
    ),
]
ExitNonZeroOnFix = Annotated[
    bool | None,
    typer.Option(
        "--exit-non-zero-on-fix",
        help="Exit 1 when any fix landed.",
        rich_help_panel="Output and config",
    ),
]
OutputFormat = Annotated[
    str | None,
    typer.Option(
        help="What stayed unfixed: text, github, gitlab or json.",
        rich_help_panel="Output and config",
    ),
]
OutputFile = Annotated[
    str | None,
    typer.Option(
        help="Write --output-format's output here, not to stdout.",
        rich_help_panel="Output and config",
    ),
]
FailOnUnfixed = Annotated[
    bool | None,
    typer.Option(
        "--fail-on-unfixed/--no-fail-on-unfixed",
        help="Exit 1 if debt is left.",
        rich_help_panel="Output and config",
    ),
]
