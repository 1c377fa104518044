"""Which tests of a test module an edit of that module can change: the ones it edits.

A fix inside `def test_x` (PT009 turning `self.assertEqual(a, b)` into `assert a == b`)
changes what `test_x` does, and nothing else in its module, when the module outside
that function is the same text before and after, and nothing else names `test_x`. The
import graph selects test *files*; in a module of 500 tests that edits one, this
narrows the run to the tests it edited (docs/architecture.md, "Test selection").

The answer is one-sided, like the graph's: every doubt ends in `None` ("the whole
module"). The final gate runs the whole suite on the merged tree all the same.
"""

from __future__ import annotations

import ast
import functools
import re
from typing import TYPE_CHECKING

from fixbot.sandbox._text import parse_python

from ._judge import test_file

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


@functools.lru_cache(maxsize=256)
def edited_functions(before: bytes, after: bytes) -> frozenset[str] | None:
    """The names of the functions an edit changed, or None when it reaches past them.

    Functions are the module's own and its top-level classes' methods, each with its
    decorators. None when the edit changes anything outside them, renames, adds or
    removes one, or when a changed function's name appears anywhere else in the
    module (a helper another test calls, a fixture a test asks for).
    """
    if before == after:
        return frozenset()
    old, new = _spans(before), _spans(after)
    if old is None or new is None or old.keys() != new.keys():
        return None
    old_lines, new_lines = before.splitlines(keepends=True), after.splitlines(keepends=True)
    changed = {
        qual
        for qual, (start, end) in old.items()
        if old_lines[start:end] != new_lines[new[qual][0] : new[qual][1]]
    }
    if _skeleton(old_lines, old, changed) != _skeleton(new_lines, new, changed):
        return None
    names = frozenset(qual.rpartition(".")[2] for qual in changed)
    for name in names:
        # Each def of the name says it once; one word more is a use (a call, a fixture
        # argument, a subclass's override calling it) that this edit also reaches.
        defs = sum(qual.rpartition(".")[2] == name for qual in old)
        word = re.compile(rb"\b" + re.escape(name.encode()) + rb"\b")
        if len(word.findall(before)) != defs or len(word.findall(after)) != defs:
            return None
    return names


def _spans(source: bytes) -> dict[str, tuple[int, int]] | None:
    """Qualified name -> (first line, end) as 0-based slice bounds, decorators included."""
    if (tree := parse_python(source)) is None:
        return None
    spans: dict[str, tuple[int, int]] = {}
    for node in tree.body:
        members = node.body if isinstance(node, ast.ClassDef) else [node]
        prefix = f"{node.name}." if isinstance(node, ast.ClassDef) else ""
        for member in members:
            if not isinstance(member, _FUNCTIONS) or member.end_lineno is None:
                continue
            qual = prefix + member.name
            if qual in spans:
                return None  # a name defined twice: which one runs is not ours to guess
            first = min([member.lineno, *(d.lineno for d in member.decorator_list)])
            spans[qual] = (first - 1, member.end_lineno)
    return spans


def _skeleton(
    lines: list[bytes], spans: dict[str, tuple[int, int]], hollow: Collection[str]
) -> list[bytes]:
    """The module's lines with the `hollow` functions each cut down to its name."""
    cuts = sorted((spans[q][0], spans[q][1], q) for q in hollow)
    out: list[bytes] = []
    at = 0
    for start, end, qual in cuts:
        if start < at:
            return [b"overlap"]  # cannot happen for parsed spans; never equal by chance
        out += lines[at:start]
        out.append(b"\0" + qual.encode())
        at = end
    return out + lines[at:]


def ids_named(node_ids: Iterable[str], path: str, names: Collection[str]) -> set[str]:
    """The ids, parameters dropped, of `path`'s tests whose function is one of `names`.

    A method's name is matched in every class of the module, so a subclass's
    inherited copy of an edited test runs too.
    """
    found = set()
    for node_id in node_ids:
        if test_file(node_id) != path:
            continue
        base = node_id.split("[", 1)[0]
        last = base.rpartition("::")[2]
        # `module.test_x` is the doctest in test_x's docstring (--doctest-modules).
        if last in names or last.rpartition(".")[2] in names:
            found.add(base)
    return found


def cleared(
    path: str,
    start: bytes,
    steps: Sequence[tuple[Mapping[str, int], bytes]],
    failing: Collection[str],
) -> set[str]:
    """The fixes a failing run of a chain in a test module points away from.

    `steps` are the chain's steps from `start`: the row of each fix (by identity) in
    the content the step began from, and the content it left. A fix lying in a test
    function none of whose tests failed is cleared, where every failing test is in
    that module: the tests it edits passed in this very run. A fix outside the test
    functions (an import) is never cleared. This is a hint for narrowing, not a
    verdict: what it clears is held and proven again with the rest.
    """
    if not steps or not failing or any(test_file(t) != path for t in failing):
        return set()
    failed = {_function_of(t) for t in failing}
    out: set[str] = set()
    content = start
    for rows, after in steps:
        spans = _spans(content) or {}
        for identity, row in rows.items():
            names = {q.rpartition(".")[2] for q, (a, b) in spans.items() if a < row <= b}
            if names and not names & failed:
                out.add(identity)
        content = after
    return out


def _function_of(node_id: str) -> str:
    """The name of the function a test id runs (`file::Class::test_x[1]` -> test_x)."""
    last = node_id.split("[", 1)[0].rpartition("::")[2]
    return last.rpartition(".")[2]
