"""Every subprocess fixbot starts goes through `run`.

Why not `anyio.run_process`: on cancellation it kills only the direct child, so a
test suite's grandchildren outlive a timed-out run. Here
each child leads its own session and the whole process group is killed on
timeout, on cancellation and on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from anyio.abc import Process

# What a process that runs the repo's code may see of fixbot's environment. Tokens,
# API keys and anything else not listed here never reach it (docs/architecture.md, "Containment").
ALLOWED_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "TERM",
    "USER",
    "LOGNAME",
    "SHELL",
)


def repo_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An allow-listed environment for processes that run the repo's code."""
    env = {key: os.environ[key] for key in ALLOWED_ENV if key in os.environ}
    env.setdefault("PATH", os.defpath)
    # Bytecode written into a pooled worktree would outlive the patch it came from.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONHASHSEED"] = "0"
    if extra:
        env.update(extra)
    return env


def no_git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An allow-listed environment for fixbot's own tools (git, ruff): no secrets.

    Not fixbot's whole environment: a program a repository can name (a planted
    git filter, a `ruff-path`) must find no key or token in it. And none of the
    GIT_* variables a hook or CI may have set: a stray GIT_DIR or GIT_INDEX_FILE
    makes git act on the wrong repository (pre-commit/pre-commit#300).
    """
    keep = {"GIT_EXEC_PATH", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSL_CAINFO", "GIT_SSL_NO_VERIFY"}
    allowed = {*ALLOWED_ENV, *keep, "SSH_AUTH_SOCK", "RUFF_CACHE_DIR", "XDG_CONFIG_HOME"}
    env = {k: v for k, v in os.environ.items() if k in allowed}
    # Never let git stop and ask for anything: there is nobody to answer.
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    # A replace ref (a test's, where no fence kept it out) would swap the base's tree.
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    env["LC_ALL"] = "C"
    if extra:
        env.update(extra)
    return env


@dataclass(frozen=True, slots=True)
class Completed:
    """What a finished subprocess left: its exit code and output."""

    args: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False

    @property
    def output(self) -> str:
        """stdout and stderr as text, for messages."""
        text = self.stdout.decode(errors="replace") + self.stderr.decode(errors="replace")
        return text.strip()


def _kill_group(process: Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def _drain(stream: object, sink: bytearray, keep: int | None = None) -> None:
    if stream is None:
        return
    async for chunk in stream:  # type: ignore[attr-defined]
        sink.extend(chunk)
        if keep is not None and len(sink) > 2 * keep:
            del sink[:-keep]  # only the tail: output as big as a test likes is no memory


async def _drain_lines(stream: object, on_line: Callable[[bytes], None]) -> None:
    if stream is None:
        return
    pending = b""
    async for chunk in stream:  # type: ignore[attr-defined]
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            on_line(line)
    if pending:
        on_line(pending)


async def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float | None = None,
    on_line: Callable[[bytes], None] | None = None,
    keep: int | None = None,
) -> Completed:
    """Run a command to the end, or kill its whole process group.

    Returns even when the command fails; `timed_out` says whether the deadline
    ended it. Cancellation kills the group too, then propagates. With `on_line`,
    stdout is handed over line by line as it arrives instead of being kept, so a
    large output (ruff's findings on a monorepo) is never held whole. With `keep`,
    only about the last `keep` bytes of each stream are kept (untrusted output).
    """
    argv = tuple(os.fspath(a) for a in args)
    out, err = bytearray(), bytearray()
    timed_out = False
    process = await anyio.open_process(
        argv,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        cwd=Path(cwd) if cwd is not None else None,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    try:
        with anyio.move_on_after(timeout) as scope:
            async with anyio.create_task_group() as tg:
                if on_line is None:
                    tg.start_soon(_drain, process.stdout, out, keep)
                else:
                    tg.start_soon(_drain_lines, process.stdout, on_line)
                tg.start_soon(_drain, process.stderr, err, keep)
                if stdin is not None and process.stdin is not None:
                    # A command may exit without reading all its input (ruff does on a
                    # bad config); its exit code tells, not a broken pipe.
                    with contextlib.suppress(anyio.BrokenResourceError, OSError):
                        await process.stdin.send(stdin)
                    await process.stdin.aclose()
                await process.wait()
                # Background children may hold the pipes open; they go with the group.
                _kill_group(process)
        if scope.cancelled_caught:
            timed_out = True
    finally:
        # Reached on success too: a command may leave background children behind.
        _kill_group(process)
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()
    returncode = process.returncode if process.returncode is not None else -signal.SIGKILL
    return Completed(argv, returncode, bytes(out), bytes(err), timed_out)
