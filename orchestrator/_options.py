"""Command-line options every command shares: how it speaks, and where its config is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="Only errors, warnings and one closing line.")
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log what each stage does.")]
Color = Annotated[
    str | None, typer.Option("--color", help="auto, always or never (NO_COLOR is honoured).")
]
LogFormat = Annotated[
    str | None, typer.Option(help="console (readable; the default) or json (for machines).")
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config", help="A pyproject.toml ([tool.fixbot]) or fixbot.toml to read instead."
    ),
]
