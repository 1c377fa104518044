"""CODEOWNERS in GitHub's syntax: who owns a path, so that their review is requested.

GitHub reads the first of `.github/CODEOWNERS`, `CODEOWNERS` and `docs/CODEOWNERS`;
each line is a gitignore-style pattern and its owners, and the last matching line
wins (a line with no owners unassigns). Patterns: `*` stays within a folder, `**`
crosses folders, a leading `/` anchors to the top, a trailing `/` means a folder,
a pattern without a `/` before its end matches at any depth, and `docs/*` owns
the files directly in docs/ only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

LOCATIONS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")


@dataclass(frozen=True, slots=True)
class CodeOwners:
    """The rules of one CODEOWNERS file, in file order."""

    rules: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def parse(cls, text: str) -> CodeOwners:
        """Rules from the file's text; comments and blank lines skipped."""
        rules = []
        for raw in text.splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            pattern, *owners = line.replace("\\ ", "\0").split()
            rules.append((pattern.replace("\0", " "), tuple(owners)))
        return cls(tuple(rules))

    @classmethod
    def find(cls, root: Path) -> CodeOwners | None:
        """The repository's CODEOWNERS (at the base), if it has one."""
        for rel in LOCATIONS:
            path = root / rel
            if path.is_file():
                return cls.parse(path.read_text(encoding="utf-8", errors="replace"))
        return None

    def owners(self, path: str) -> tuple[str, ...]:
        """The owners of a repo-relative POSIX path (empty: nobody)."""
        for pattern, owners in reversed(self.rules):
            if _compile(pattern).search(path):
                return owners
        return ()


@cache
def _compile(pattern: str) -> re.Pattern[str]:
    anchored = pattern.startswith("/") or "/" in pattern.rstrip("/")
    folder = pattern.endswith("/")
    body = pattern.strip("/")
    out = []
    i = 0
    while i < len(body):
        if body.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif body.startswith("**", i):
            out.append(".*")
            i += 2
        elif body[i] == "*":
            out.append("[^/]*")
            i += 1
        elif body[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(body[i]))
            i += 1
    start = "^" if anchored else "(?:^|/)"
    # A folder pattern owns everything under it, and so does a name that is a folder;
    # `docs/*` owns the folder's own files only (GitHub's documented exception).
    end = "/" if folder else "$" if body.endswith("/*") else "(?:$|/)"
    return re.compile(start + "".join(out) + end)
