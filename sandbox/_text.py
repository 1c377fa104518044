"""Source text as ruff sees it: lines, positions, edits, and the BOM it does not count.

ruff counts CRLF, CR and LF as line breaks (and nothing else, where
`str.splitlines` does); its columns count code points; a BOM is not counted.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._types import Edit, Location

BOM = "\ufeff"
# ruff counts \r\n, \r and \n as line breaks, and nothing else (str.splitlines does).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """Lines as ruff numbers them, without their line breaks."""
    return _LINE_BREAK.split(text)


def line_starts(text: str) -> list[int]:
    """Offset of the start of each line, as ruff numbers rows."""
    return [0] + [m.end() for m in _LINE_BREAK.finditer(text)]


def offset_of(starts: list[int], text: str, loc: Location) -> int:
    """Turn a 1-based row and code-point column into an index into `text`."""
    if loc.row - 1 >= len(starts):
        return len(text)
    return min(starts[loc.row - 1] + loc.column - 1, len(text))


def apply_edits(source: str, edits: Iterable[Edit]) -> str:
    """Apply one fix's edits to source text that has no BOM (ruff does not count it)."""
    starts = line_starts(source)
    spans = sorted(
        (offset_of(starts, source, e.location), offset_of(starts, source, e.end_location), e)
        for e in edits
    )
    out, pos = [], 0
    for start, end, edit in spans:
        if start < pos:
            msg = "overlapping edits in one fix"
            raise ValueError(msg)
        out += [source[pos:start], edit.content]
        pos = end
    out.append(source[pos:])
    return "".join(out)


def decode(data: bytes) -> tuple[str, bool]:
    """Source text without its BOM, and whether it had one."""
    text = data.decode("utf-8", "surrogateescape")
    if text.startswith(BOM):
        return text[1:], True
    return text, False


def encode(text: str, bom: bool) -> bytes:
    """The inverse of `decode`."""
    return ((BOM if bom else "") + text).encode("utf-8", "surrogateescape")
