"""Source text as ruff sees it: lines, positions, edits, the BOM it does not count,
and the def or class a line sits in (part of a finding's fingerprint).

ruff counts CRLF, CR and LF as line breaks (and nothing else, where
`str.splitlines` does); its columns count code points; a BOM is not counted.
"""

from __future__ import annotations

import ast
import bisect
import difflib
import functools
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

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


_SCOPE = re.compile(r"\s*(?:async\s+def|def|class)\s")


def scope_of(lines: list[str], row: int) -> str:
    """The header of the function or class around `row` ('' at module level).

    Two identical lines in one file (a bare `except:` in two functions) must not
    share a fingerprint; the enclosing def tells them apart and, like the lines
    themselves, does not move when code above is added or removed.
    """
    if not 0 < row <= len(lines):
        return ""
    line = lines[row - 1]
    indent = len(line) - len(line.lstrip())
    if indent == 0:
        return ""  # module level: nothing above encloses it (and the walk would be O(rows))
    for above in reversed(lines[: row - 1]):
        stripped = above.lstrip()
        depth = len(above) - len(stripped)
        if not stripped or depth >= indent:
            continue
        indent = depth
        if _SCOPE.match(above):
            return stripped
        if depth == 0:
            break
    return ""


def scope_table(lines: list[str]) -> list[str]:
    """`scope_of` for every row at once, in one pass (a walk per finding is O(rows) each).

    A stack holds the non-blank lines above that enclose the current one, each with
    the def or class header its children sit in.
    """
    out = [""] * len(lines)
    stack: list[tuple[int, str]] = []  # (indent, the scope of what it encloses)
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if not stripped:
            # A blank line encloses nothing; its own scope is that of its indent.
            out[i] = next((scope for depth, scope in reversed(stack) if depth < indent), "")
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        out[i] = stack[-1][1] if stack else ""
        stack.append((indent, stripped if _SCOPE.match(line) else out[i]))
    return out


@functools.lru_cache(maxsize=8)
def parse_python(source: str | bytes) -> ast.Module | None:
    """The syntax tree of a repository's source, or None where this Python cannot build it.

    The source is untrusted and parsed in fixbot's own process: besides a syntax error
    or a NUL byte, a deeply nested expression (`x = - - - ... 1`) makes CPython's
    parser raise MemoryError or RecursionError, which must not end the run.

    The last few trees are kept, shared: a test module's content at base is read again
    for every chain that edits it (40 ms for dateutil's `test_rrule.py`). No caller
    changes a tree.
    """
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def same_code(before: bytes, after: bytes) -> bool:
    """Whether two sources parse to the same syntax tree, positions aside: an edit of
    quotes, trailing commas or spacing only. False where either does not parse."""
    old, new = _code(before), _code(after)
    return old is not None and old == new


@functools.lru_cache(maxsize=32)
def _code(source: bytes) -> str | None:
    tree = parse_python(source)
    return None if tree is None else ast.dump(tree)


@dataclass(frozen=True, slots=True)
class Definition:
    """A def or class of a module: where it is, and what holds it."""

    name: str
    first: int  # its first line, decorators included (1-based)
    line: int  # the line of `def` or `class`
    last: int
    is_class: bool
    # "" directly in the module's body; a top-level class's name directly in that
    # class's body; None anywhere else (nested, or under an `if`).
    owner: str | None


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@functools.lru_cache(maxsize=256)
def definitions(source: bytes) -> tuple[Definition, ...] | None:
    """Every def and class of a source, or None where it does not parse.

    Kept per content, small: a refused chain's steps are placed again and again (each
    step's content, 45 ms a parse for dateutil's `test_tz.py`), where `parse_python`
    keeps only the last few trees. Statements are walked, not expressions: a def or
    class is always a statement.
    """
    tree = parse_python(source)
    if tree is None:
        return None
    out: list[Definition] = []
    todo: list[tuple[ast.stmt, str | None]] = [(node, "") for node in reversed(tree.body)]
    while todo:
        node, owner = todo.pop()
        inner: str | None = None
        if isinstance(node, _DEFS):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            is_class = isinstance(node, ast.ClassDef)
            last = node.end_lineno or node.lineno
            out.append(Definition(node.name, first, node.lineno, last, is_class, owner))
            inner = node.name if is_class and owner == "" else None
        for block in _blocks(node):
            todo += [(child, inner) for child in reversed(block)]
    return tuple(out)


# A line that starts a def or a class (up to its name), or decorates one.
_HEADER = re.compile(rb"[ \t]*(@|(?:async[ \t]+)?def[ \t]+[^\s(\[:]+|class[ \t]+[^\s(\[:]+)")
# Outline -> the defs of a content that had it; bounded, clearing costs only time.
Outline = tuple[tuple[int, ...], tuple[tuple[int, bytes], ...]]
_BY_OUTLINE: dict[Outline, tuple[Definition, ...] | None] = {}


def outline(content: bytes) -> Outline:
    """How far each line is indented (-1 for a blank one), and which lines open a def or
    class (by its name) or decorate one: where a content's defs begin and end.

    A header is kept up to the name: a step that annotates a def (`-> None`) or
    changes a decorator's arguments leaves every def where it was.
    """
    lines = content.splitlines()
    indents = tuple(len(line) - len(line.lstrip()) if line.strip() else -1 for line in lines)
    return indents, tuple((i, m[1]) for i, line in enumerate(lines) if (m := _HEADER.match(line)))


@functools.lru_cache(maxsize=256)
def hinted_definitions(content: bytes) -> tuple[Definition, ...] | None:
    """`definitions`, or those of an earlier content with the same outline: its defs are
    in the same places, near enough for a hint (narrowing; never test selection).

    A chain's steps mostly keep the outline (quotes, a parametrize's names: 25 of the 36
    steps of dateutil's `test_tz.py`); settling a failing chain placed its fixes in each
    step's defs, a 57 ms parse each.
    """
    shape = outline(content)
    if shape not in _BY_OUTLINE:
        if len(_BY_OUTLINE) >= 256:
            _BY_OUTLINE.clear()
        _BY_OUTLINE[shape] = definitions(content)
    return _BY_OUTLINE[shape]


def _blocks(node: ast.stmt) -> list[list[ast.stmt]]:
    """The statement lists directly under a statement (bodies, branches, handlers, cases)."""
    blocks = [getattr(node, f, None) for f in ("body", "orelse", "finalbody")]
    handlers = getattr(node, "handlers", None) or []
    cases = getattr(node, "cases", None) or []
    blocks += [h.body for h in handlers] + [c.body for c in cases]
    return [b for b in blocks if isinstance(b, list) and b and isinstance(b[0], ast.stmt)]


Opcode = tuple[str, int, int, int, int]
# Ranges this short go to difflib whole: anchoring them would cost more than it saves.
_SMALL = 64


def line_opcodes(old: Sequence[bytes], new: Sequence[bytes]) -> list[Opcode]:
    """How `new`'s lines came from `old`'s, as difflib's opcodes (equal / replace /
    delete / insert, with ranges), anchored on lines that occur once in each (patience).

    difflib alone took 50-180 ms a call on a 5,000-line test module, whose many
    blank and `)` lines each match hundreds of places; here it sees only the short
    ranges between anchors. Iterative, so no content makes it recurse deep.
    """
    out: list[Opcode] = []
    todo: list[Opcode] = [("range", 0, len(old), 0, len(new))]  # a range still to diff
    while todo:
        tag, a0, a1, b0, b1 = todo.pop()
        if tag != "range":
            out.append((tag, a0, a1, b0, b1))
            continue
        while a0 < a1 and b0 < b1 and old[a0] == new[b0]:
            out.append(("equal", a0, a0 + 1, b0, b0 + 1))
            a0, b0 = a0 + 1, b0 + 1
        tail: list[Opcode] = []
        while a0 < a1 and b0 < b1 and old[a1 - 1] == new[b1 - 1]:
            a1, b1 = a1 - 1, b1 - 1
            tail.append(("equal", a1, a1 + 1, b1, b1 + 1))
        small = a1 - a0 < _SMALL and b1 - b0 < _SMALL
        anchors = [] if small else _anchors(old, new, a0, a1, b0, b1)
        parts: list[Opcode] = []
        for i, j in anchors:
            parts += [("range", a0, i, b0, j), ("equal", i, i + 1, j, j + 1)]
            a0, b0 = i + 1, j + 1
        if anchors:
            parts.append(("range", a0, a1, b0, b1))
        else:
            matcher = difflib.SequenceMatcher(None, old[a0:a1], new[b0:b1], autojunk=False)
            parts += [
                (op, a0 + i1, a0 + i2, b0 + j1, b0 + j2)
                for op, i1, i2, j1, j2 in matcher.get_opcodes()
            ]
        todo += reversed([*parts, *reversed(tail)])
    return _merged(out)


def _anchors(
    old: Sequence[bytes], new: Sequence[bytes], a0: int, a1: int, b0: int, b1: int
) -> list[tuple[int, int]]:
    """Pairs of lines found once in each range, the longest run of them in order in both."""
    seen_old = Counter(old[a0:a1])
    seen_new = Counter(new[b0:b1])
    where_new = {new[j]: j for j in range(b0, b1) if seen_new[new[j]] == 1}
    pairs = [
        (i, where_new[old[i]])
        for i in range(a0, a1)
        if seen_old[old[i]] == 1 and old[i] in where_new
    ]
    # Longest increasing run of the new positions (patience sorting, with back links).
    tops: list[int] = []
    top_at: list[int] = []
    back: list[int] = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        at = bisect.bisect_left(tops, j)
        back[k] = top_at[at - 1] if at else -1
        if at == len(tops):
            tops.append(j)
            top_at.append(k)
        else:
            tops[at], top_at[at] = j, k
    chain, k = [], top_at[-1] if top_at else -1
    while k != -1:
        chain.append(pairs[k])
        k = back[k]
    return chain[::-1]


def _merged(ops: list[Opcode]) -> list[Opcode]:
    """Neighbouring opcodes of one kind made one; empty ones dropped."""
    out: list[Opcode] = []
    for tag, i1, i2, j1, j2 in ops:
        if i1 == i2 and j1 == j2:
            continue
        if out and out[-1][0] == tag and out[-1][2] == i1 and out[-1][4] == j1:
            out[-1] = (tag, out[-1][1], i2, out[-1][3], j2)
        else:
            out.append((tag, i1, i2, j1, j2))
    return out


@functools.lru_cache(maxsize=64)
def step_diff(before: bytes, after: bytes) -> tuple[list[Opcode], list[int]]:
    """A step's line diff and where each block begins in its result; kept, as a chain's
    steps are diffed again and again (placing a failing chain's fixes for its clues and
    for its failing tests; tracing a static refusal's culprit back step by step)."""
    ops = line_opcodes(before.splitlines(), after.splitlines())
    return ops, [op[3] for op in ops]


class RowsBack:
    """Rows of a chain's step contents, mapped back to its first content.

    Through each step's line diff: line for line in a block the step kept or rewrote
    line for line, a line it added to the line above it, else to the block's first
    line. For hints (placing a fix in the first content's defs, the one content
    parsed), never for a verdict.
    """

    def __init__(self, start: bytes) -> None:
        self._contents = [start]
        self._diffs: list[tuple[list[Opcode], list[int]]] = []

    def step(self, after: bytes) -> None:
        """The next step left `after` (diffed only when a row of it is mapped)."""
        self._contents.append(after)

    def at_start(self, row: int) -> int:
        """Where line `row` (1-based) of the latest step's content came from at the start."""
        for i in range(len(self._diffs), len(self._contents) - 1):
            self._diffs.append(step_diff(self._contents[i], self._contents[i + 1]))
        for ops, starts in reversed(self._diffs):
            at = bisect.bisect_right(starts, row - 1) - 1
            if at < 0:
                continue
            tag, i1, i2, j1, j2 = ops[at]
            if i2 - i1 == j2 - j1:
                row = i1 + (row - 1 - j1) + 1
            elif tag == "insert":
                # A line the step added: where it was added, after the line above (lines
                # appended to a def's end belong to that def, not to the one below).
                row = max(i1, 1)
            else:
                row = i1 + 1
        return row
