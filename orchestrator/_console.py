"""The terminal: two consoles (colour as asked, NO_COLOR honoured), one error line per
failure, a live status line with counts, and logs printed above it, never through it."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import typer
from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from fixbot.sandbox import ConfigError, FixbotError

from . import _logging
from ._publish import LeftAlone
from ._run import run_fixbot
from ._types import Progress

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._config import Config
    from ._shard import Bundle
    from ._types import Outcome

Color = Literal["auto", "always", "never"]
# What a command catches and turns into one line and an exit code (see exit_for).
EXPECTED = (FixbotError, KeyboardInterrupt, LeftAlone, BaseExceptionGroup)


@dataclass(slots=True)
class Screen:
    """Where output goes, made once the command knows its colour, quiet and verbose."""

    out: Console = field(default_factory=lambda: Console(soft_wrap=True))
    err: Console = field(default_factory=lambda: Console(stderr=True, soft_wrap=True))
    quiet: bool = False
    verbose: bool = False

    def configure(self, color: Color, *, quiet: bool = False, verbose: bool = False) -> None:
        """Consoles for `color`: auto follows the terminal, NO_COLOR and FORCE_COLOR."""
        options: dict[str, Any] = {"soft_wrap": True}
        if color == "never":
            options |= {"no_color": True, "color_system": None}
        elif color == "always":
            options["force_terminal"] = True
        self.out = Console(**options)
        self.err = Console(stderr=True, **options)
        self.quiet, self.verbose = quiet, verbose

    @property
    def colors(self) -> bool:
        """Whether log lines on stderr may carry colour."""
        return self.err.is_terminal and self.err.color_system is not None and not self.err.no_color

    @property
    def live(self) -> bool:
        """Whether a live status line fits: a real terminal, and not quiet."""
        return not self.quiet and sys.stderr.isatty() and self.err.is_terminal


screen = Screen()


def fail(message: str, code: int) -> typer.Exit:
    """The error's first line after `fixbot: error:`, its text as is (no markup)."""
    first, _, rest = message.partition("\n")
    screen.err.print(Text.assemble(("fixbot: error: ", "bold red"), first), highlight=False)
    if rest:
        screen.err.print(rest, highlight=False, markup=False)
    return typer.Exit(code)


def _terminate(*_: object) -> None:
    # A CI job being cancelled: clean up exactly as on Ctrl-C.
    raise KeyboardInterrupt


def handle_signals() -> None:
    """A closed terminal or a dropped SSH session (SIGHUP) cleans up as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)


def start(config: Config, *, verbose: bool = False, quiet: bool = False) -> None:
    """Consoles and logging set up with every secret redacted; warnings said."""
    check_report_dir(config.report_dir)
    if config.output_file:
        # Found unwritable before the branch is written and pushed, not after.
        path = Path(config.output_file).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.open("a").close()
        except OSError as exc:
            raise ConfigError(f"--output-file cannot be written: {path}: {exc.strerror}") from None
    screen.configure(config.color, quiet=quiet, verbose=verbose)
    json_logs = config.log_format == "json"
    level = logging.INFO if (json_logs or verbose) else logging.WARNING
    _logging.configure(config.log_format, config.secrets.values(), level, colors=screen.colors)
    for notice in config.notices:
        warn(notice)


def warn(message: str) -> None:
    """One warning line on stderr, printed as is (quiet too: -q keeps warnings)."""
    line = Text.assemble(("fixbot: warning: ", "yellow"), message)
    screen.err.print(line, highlight=False)


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
        expected, rest = exc.split((FixbotError, KeyboardInterrupt, LeftAlone))
        if rest is not None or expected is None:
            raise exc  # a bug beside a user's error still shows its traceback
        exc = expected.exceptions[0]
    if isinstance(exc, LeftAlone):
        screen.err.print(f"fixbot: {exc}", markup=False, highlight=False, soft_wrap=True)
        return typer.Exit(0)
    if isinstance(exc, KeyboardInterrupt):
        screen.err.print("fixbot: interrupted; worktrees removed, nothing of yours was changed")
        return typer.Exit(130)
    assert isinstance(exc, FixbotError)  # noqa: S101 - the only other kind caught
    return fail(str(exc), exc.exit_code)


def run_with_progress(
    repo: Path,
    paths: list[str],
    config: Any,
    *,
    bundles: Sequence[Bundle] = (),
) -> tuple[Outcome, float]:
    """The run, with a live status line on a terminal; its outcome and wall seconds."""
    progress = Progress()

    async def go() -> Outcome:
        return await run_fixbot(repo, paths, config, progress=progress, bundles=bundles)

    if not screen.live:
        return anyio.run(go), progress.elapsed
    # Live swaps sys.stderr for a proxy while it runs: a log line lands above the status.
    with Live(_Status(progress), console=screen.err, transient=True, redirect_stderr=True,
              refresh_per_second=8):  # fmt: skip
        outcome = anyio.run(go)
    return outcome, progress.elapsed


class _Status:
    """The live line: stage, round, violations decided of planned, patches, test runs, time."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.spinner = Spinner("dots", style="cyan")

    def __rich__(self) -> Spinner:
        p = self.progress
        decided, accepted, rejected = p.counts()
        parts = [f"[bold]{p.stage}[/]"]
        if p.round:
            parts.append(f"round {p.round}")
        if p.planned:
            parts.append(f"{decided}/{p.planned} violations decided")
            parts.append(f"[green]{accepted} accepted[/], [red]{rejected} rejected[/]")
        parts.append(f"{p.test_runs} test run{'s' * (p.test_runs != 1)}")
        parts.append(time.strftime("%M:%S", time.gmtime(p.elapsed)))
        self.spinner.update(text=Text.from_markup(" · ".join(parts)))
        return self.spinner
