"""Unified diffs of many contents at once, made by git's own diff.

difflib took seconds per file on a big file whose change has hundreds of hunks
(a refused step of a long chain over a 3,000-line test module), and a run can
refuse hundreds of such patches. One `git diff --no-index` over two folders
diffs them all in one process, in C.
"""

from __future__ import annotations

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
                os.link(blob, folder / str(i))
        args = ["--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", "--text"]
        args += ["--src-prefix=a/", "--dst-prefix=b/", "-U3"]
        done = await git("diff", "--no-index", *args, "old", "new", cwd=root, check=False)
    if done.returncode not in (0, 1):
        msg = done.stderr.decode(errors="replace").strip()
        raise OSError(f"git diff --no-index failed: {msg or done.returncode}")
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
