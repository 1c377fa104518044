"""What a native traceback leaves out: the lines of each function before the one it failed on.

pytest's long report showed each frame's function from its `def` to the failing line,
and the clues (`Prover.mentioned`) read the names there: the generated monorepo's
failing `assert seen == [1, -1, 2]` is explained by `m.c419_9(..., seen)` a line
above it. fixbot's runs write Python's own tracebacks (`--tb=native`, far cheaper to
write), which show only the failing line; those lines are read here from the content
that was tested, for the frames in the repo's own files.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from fixbot.sandbox._git import git
from fixbot.sandbox._testrun import NATIVE_FRAME

from ._judge import mentioned_names

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from pathlib import Path

# How far above a failing line its `def` is looked for.
_MOST_LINES_UP = 2000


def repo_frames(report: str) -> list[tuple[str, int, str]]:
    """The frames of a native traceback in the repo's own files: path, line, function."""
    out = []
    for line in report.splitlines():
        if (m := NATIVE_FRAME.match(line)) is None:
            continue
        path = PurePosixPath(m[1])
        # Relative: in the worktree (its prefix is cut when the report is read).
        if not path.is_absolute() and ".." not in path.parts and m[3].isidentifier():
            out.append((str(path), int(m[2]), m[3]))
    return out


async def context_names(
    report: str,
    files: Mapping[str, bytes],
    at_base: Callable[[str], Awaitable[bytes | None]],
) -> set[str]:
    """The names on the lines of each repo frame's function above the line it failed on,
    read from the tested content (`files`, else the file at base)."""
    names: set[str] = set()
    for path, row, function in repo_frames(report):
        content = files[path] if path in files else await at_base(path)
        if content is None:
            continue
        lines = content.decode("utf-8", "replace").splitlines()[: max(row - 1, 0)]
        header = re.compile(rf"\s*(?:async\s+)?def\s+{re.escape(function)}\b")
        for i in range(len(lines) - 1, max(len(lines) - _MOST_LINES_UP, 0) - 1, -1):
            if header.match(lines[i]):
                names |= mentioned_names("\n".join(lines[i:]))
                break
    return names


class BaseFiles:
    """Files' content at base, read from git as asked for (None: not there), and kept."""

    def __init__(self, repo: Path, base: str) -> None:
        self.repo, self.base = repo, base
        self._kept: dict[str, bytes | None] = {}

    async def __call__(self, path: str) -> bytes | None:
        if path not in self._kept:
            done = await git("cat-file", "blob", f"{self.base}:{path}", cwd=self.repo, check=False)
            self._kept[path] = done.stdout if done.returncode == 0 else None
        return self._kept[path]
