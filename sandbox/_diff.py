"""Unified diffs of many contents at once, made by git's own diff.

difflib took seconds per file on a big file whose change has hundreds of hunks
(a refused step of a long chain over a 3,000-line test module), and a run can
refuse hundreds of such patches. One `git diff --no-index` over two folders
diffs them all in one process, in C. The user's git config stays out of it
(`core.autocrlf` would strip the CR of a CRLF file, a relative `diff.orderFile`
fails in the scratch folder); if git fails all the same, difflib still writes
the report: a diff never ends a finished run.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ._git import git
from ._types import sha256

if TYPE_CHECKING:
    from collections.abc import Sequence

_HEADER = re.compile(rb"^diff --git a/old/(\d+) b/new/\1$", re.MULTILINE)
_PLAIN = ("-c", "core.autocrlf=false", "-c", "core.attributesFile=/dev/null")
_ARGS = (
    *("--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", "--text"),
    *("--src-prefix=a/", "--dst-prefix=b/", "-U3"),
)
_NO_USER_CONFIG = {"GIT_CONFIG_GLOBAL": "/dev/null"}


async def unified_diffs(changes: Sequence[tuple[str, bytes, bytes]]) -> list[str]:
    """One diff per (path, before, after), named as `path` and fit for `git apply`.

    Empty where nothing changed. Contents are written once each (a refused patch
    often starts from the same content as the next), the pairs as hard links.
    """
    if not changes:
        return []
    with tempfile.TemporaryDirectory(prefix="fixbot-diff-") as tmp:
        root = Path(tmp)
        blobs, old, new = root / "blobs", root / "old", root / "new"
        for folder in (blobs, old, new):
            folder.mkdir()
        for i, (_, before, after) in enumerate(changes):
            for data, folder in ((before, old), (after, new)):
                blob = blobs / sha256(data)
                if not blob.exists():
                    blob.write_bytes(data)
                try:
                    os.link(blob, folder / str(i))
                except OSError:  # no hard links here, or too many to one blob
                    (folder / str(i)).write_bytes(data)
        done = await git(
            *_PLAIN,
            "diff",
            "--no-index",
            *_ARGS,
            "old",
            "new",
            cwd=root,
            check=False,
            env=_NO_USER_CONFIG,
        )
    if done.returncode not in (0, 1):
        return [_difflib(path, before, after) for path, before, after in changes]
    out = [""] * len(changes)
    marks = list(_HEADER.finditer(done.stdout))
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        body = done.stdout[mark.end() : following.start() if following else None]
        hunks = body.find(b"\n@@ ")
        if hunks < 0:
            continue
        i = int(mark.group(1))
        path = changes[i][0]
        text = body[hunks + 1 :].decode("utf-8", "replace")
        out[i] = f"--- a/{path}\n+++ b/{path}\n{text}"
    return out


def _difflib(path: str, before: bytes, after: bytes) -> str:
    """The same diff from difflib: slow on big files, but it needs nothing outside."""
    old = before.decode("utf-8", "replace").splitlines(keepends=True)
    new = after.decode("utf-8", "replace").splitlines(keepends=True)
    lines = difflib.unified_diff(old, new, f"a/{path}", f"b/{path}")
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
