"""Formatting only the statements a fix made too long: where they are, and what is kept.

`Ruff.format_lines` formats the whole file once and takes just those statements from
it, or runs `ruff format --range` once per statement; this module finds each
statement's lines with `ast`, pairs them with the formatted file's, tells whether
ruff's output kept to them, and remembers what a statement became (a chain proposed
again meets the same lines).
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import hashlib
from typing import TYPE_CHECKING

from ._text import parse_python

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

# (ruff, config digest, path, a statement's text) -> the lines ruff made of it.
WRAPPED: dict[tuple[str, str, str, bytes], list[bytes]] = {}
WRAPPED_SIZE = 20_000


def remember(key: tuple[str, str, str, bytes], lines: list[bytes]) -> None:
    """Keep what a statement became; the memory is emptied when it grows past its size."""
    if len(WRAPPED) > WRAPPED_SIZE:
        WRAPPED.clear()
    WRAPPED[key] = lines


def statement_spans(text: str, rows: Iterable[int]) -> dict[int, tuple[int, int]]:
    """For each row, the lines (first, last) of the statement holding it.

    A simple statement, or a compound one's header (`if ...:` up to its body);
    the smallest that holds the row. A row in none (a blank line, a comment, an
    `else:`), or in a file this Python cannot parse, has no entry.
    """
    tree = parse_python(text)
    if tree is None:
        return {}
    wanted = sorted(set(rows))
    out: dict[int, tuple[int, int]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt) or isinstance(node, ast.Match):
            continue
        lo, hi = _span(node)
        # Only the rows within the statement: a module of 1,300 statements and 285 rows
        # to wrap took 90 ms a call, each statement against each row.
        for row in wanted[bisect.bisect_left(wanted, lo) : bisect.bisect_right(wanted, hi)]:
            if row not in out or hi - lo < out[row][1] - out[row][0]:
                out[row] = (lo, hi)
    return out


def _span(node: ast.stmt) -> tuple[int, int]:
    """A statement's lines (first, last); a compound statement's header only."""
    lo, hi = node.lineno, node.end_lineno or node.lineno
    body = getattr(node, "body", None)
    if isinstance(body, list) and body and body[0].lineno > lo:
        hi = body[0].lineno - 1
    return lo, hi


def spans_in_formatted(
    text: str, formatted: str, spans: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], tuple[int, int]]:
    """Where each statement (its lines in `text`) lies in `formatted`, the whole file as
    `ruff format` made it.

    Formatting changes no statement, so the two files' statements pair up in walk
    order; where they do not (a different count or kind), nothing is paired.
    """
    old_tree, new_tree = parse_python(text), parse_python(formatted)
    if old_tree is None or new_tree is None:
        return {}
    old = [n for n in ast.walk(old_tree) if isinstance(n, ast.stmt)]
    new = [n for n in ast.walk(new_tree) if isinstance(n, ast.stmt)]
    if len(old) != len(new) or any(type(a) is not type(b) for a, b in zip(old, new, strict=True)):
        return {}
    wanted = set(spans)
    rows = text.encode("utf-8", "surrogateescape").splitlines()
    edges: dict[int, list[ast.stmt]] = {}
    for node in old:
        for row in {node.lineno, node.end_lineno or node.lineno}:
            edges.setdefault(row, []).append(node)
    out = {}
    for a, b in zip(old, new, strict=True):
        if isinstance(a, ast.Match) or (span := _span(a)) not in wanted:
            continue
        # Alone on its lines: `x = 1; y = call(...)` is two statements on one line, and
        # y's formatted lines in place of that line would drop x. A block that only ends
        # there (the def whose last statement this is: dateutil's test methods each end
        # with their `assertEqual`, 282 of 285 statements to wrap in `test_rrule.py`)
        # holds no code of its own on those lines.
        own = {id(n) for n in ast.walk(a)}
        # And first on its line: `else: x = call(...)` would lose its `else:`.
        starts_line = not rows[span[0] - 1][: a.col_offset].strip()
        if starts_line and all(
            id(n) in own or _ends_around(n, a, span[0])
            for row in range(span[0], span[1] + 1)
            for n in edges.get(row, ())
        ):
            out[span] = _span(b)
    return out


def _ends_around(block: ast.stmt, node: ast.stmt, first: int) -> bool:
    """Whether `block` begins above `first`, the node's first line, and holds the node
    (by position: `x = f(a,` / `b); y = g()` ends on y's line but does not hold it)."""
    if block.lineno >= first or block.end_lineno is None or block.end_col_offset is None:
        return False
    ends = (block.end_lineno, block.end_col_offset)
    return ends >= (node.end_lineno or node.lineno, node.end_col_offset or 0)


def same_indent(old: bytes, new: bytes) -> bool:
    """Whether two lines begin with the same indentation."""
    return old[: len(old) - len(old.lstrip())] == new[: len(new) - len(new.lstrip())]


def in_place_of(old: list[bytes], new: list[bytes], lo: int, hi: int) -> list[bytes] | None:
    """What `new` holds in place of `old`'s lines lo..hi (1-based), if nothing else changed."""
    after = len(old) - hi
    if len(new) < lo - 1 + after or new[: lo - 1] != old[: lo - 1]:
        return None
    if after and new[len(new) - after :] != old[hi:]:
        return None
    return new[lo - 1 : len(new) - after]


def config_digest(root: Path, path: str) -> str:
    """The config files ruff could read for `path`, by content: the same in every
    worktree of one base (no patch may edit them), different for another repo."""
    digest = hashlib.sha256()
    folder = (root / path).parent
    while True:
        for name in ("pyproject.toml", "ruff.toml", ".ruff.toml"):
            with contextlib.suppress(OSError):
                digest.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
        if folder in (root, folder.parent):
            return digest.hexdigest()
        folder = folder.parent
