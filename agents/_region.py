"""The code region a model sees for one violation, and how its reply goes back in.

The model never writes line numbers or diffs (prior agents found both the
commonest way LLM edits fail). It gets the smallest enclosing function, class
or statement, with its original indentation, and returns that region rewritten;
fixbot splices it back, restoring the file's line endings and BOM.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from fixbot.sandbox import decode, encode, parse_python

MAX_REGION_LINES = 120
_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE)
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


@dataclass(frozen=True, slots=True)
class Region:
    """Lines `start`..`end` (1-based, inclusive) of a file, as the model sees them."""

    start: int
    end: int
    text: str  # '\n' line endings, original indentation, ends with '\n'

    @property
    def indent(self) -> str:
        """The indentation of the region's first non-blank line."""
        for line in self.text.splitlines():
            if line.strip():
                return line[: len(line) - len(line.lstrip())]
        return ""


def _lines(text: str) -> list[str]:
    return _LINE.findall(text)


def _span(node: ast.AST) -> tuple[int, int]:
    start = node.lineno  # type: ignore[attr-defined]
    for deco in getattr(node, "decorator_list", []):
        start = min(start, deco.lineno)
    return start, node.end_lineno or start  # type: ignore[attr-defined]


def find_region(content: bytes, row: int, end_row: int) -> Region | None:
    """The smallest function, class or statement holding rows `row`..`end_row`."""
    return find_regions(content, [(row, end_row)])[0]


def find_regions(content: bytes, spans: list[tuple[int, int]]) -> list[Region | None]:
    """`find_region` for many violations of one file, parsing it once."""
    text, _ = decode(content)
    lines = _lines(text)
    tree = parse_python(text)
    if tree is None:
        return [None] * len(spans)
    statements = [_span(node) for node in ast.walk(tree) if isinstance(node, ast.stmt)]
    scopes = {
        _span(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    return [_region(lines, statements, scopes, row, end_row) for row, end_row in spans]


def _region(
    lines: list[str],
    statements: list[tuple[int, int]],
    scopes: set[tuple[int, int]],
    row: int,
    end_row: int,
) -> Region:
    best: tuple[int, int] | None = None
    best_scope: tuple[int, int] | None = None
    for start, end in statements:
        if not (start <= row and end_row <= end):
            continue
        size = end - start
        if best is None or size < best[1] - best[0]:
            best = (start, end)
        if (start, end) in scopes and (best_scope is None or size < best_scope[1] - best_scope[0]):
            best_scope = (start, end)
    # The enclosing function or class gives the model context, unless it is huge.
    chosen = best_scope if best_scope and best_scope[1] - best_scope[0] < MAX_REGION_LINES else best
    if chosen is None:
        chosen = (row, end_row)
    start, end = chosen
    body = "".join(_normalise(line) for line in lines[start - 1 : end])
    return Region(start, end, body)


def _normalise(line: str) -> str:
    return line.rstrip("\r\n") + "\n"


def extract_code(reply: str) -> str | None:
    """The first fenced python block of a reply, or None."""
    match = _FENCE.search(reply)
    if match is None:
        return None
    code = match.group(1)
    return code if code.endswith("\n") else code + "\n"


def _reindent(code: str, indent: str) -> str | None:
    lines = code.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        return None
    have = first[: len(first) - len(first.lstrip())]
    if have == indent:
        return code
    # A model often dedents a method it was shown; shift it back if that is all it did.
    if not all(not ln.strip() or ln.startswith(have) for ln in lines):
        return None
    return "".join((indent + ln[len(have) :] if ln.strip() else "") + "\n" for ln in lines)


def splice(content: bytes, region: Region, new_text: str) -> bytes | None:
    """The file with `region` replaced by `new_text`, or None if it does not fit back."""
    fitted = _reindent(new_text, region.indent)
    if fitted is None or fitted == region.text:
        return None
    text, bom = decode(content)
    lines = _lines(text)
    old = lines[region.start - 1 : region.end]
    if "".join(_normalise(ln) for ln in old) != region.text:
        return None  # the file moved under us
    ending = next((m for ln in old if (m := ln[len(ln.rstrip("\r\n")) :])), "\n")
    last_had_ending = old[-1] != old[-1].rstrip("\r\n")
    new_lines = [ln + ending for ln in fitted.splitlines()]
    if not last_had_ending and new_lines:
        new_lines[-1] = new_lines[-1].rstrip("\r\n")
    return encode("".join([*lines[: region.start - 1], *new_lines, *lines[region.end :]]), bom)
