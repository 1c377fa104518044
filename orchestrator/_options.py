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
