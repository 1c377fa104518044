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

from ._judge import test_file, test_id

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


# A test that reads line numbers sees an edit above them move them.
_LINE_NUMBERS = re.compile(
    rb"lineno|currentframe|_getframe|getframeinfo|getsource|linecache|extract_stack|inspect\."
)
_BY_NAME = frozenset({"getattr", "hasattr", "setattr", "delattr"})
_STORES = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)


@functools.lru_cache(maxsize=256)
def edited_functions(before: bytes, after: bytes) -> frozenset[str] | None:
    """The names of the functions an edit changed, or None when it reaches past them.

    Functions are the module's own and its top-level classes' methods, each with its
    decorators. None when the edit changes anything outside them, renames, adds or
    removes one, or when another test could see the change:
    - a changed function's name appears anywhere else in the module (a helper another
      test calls, a fixture a test asks for);
    - a changed function writes module state (a global, `STATE["x"] = 1`, a class
      attribute, `REGISTRY.append(...)`) or reads state another function writes (a test
      that relies on the one before it);
    - the module looks at code from afar: line numbers (an edit above moves them), a
      name built at run time (`getattr(self, "test_" + name)`), `globals()`.
    """
    if before == after:
        return frozenset()
    if _LINE_NUMBERS.search(before) or _LINE_NUMBERS.search(after):
        return None
    old_tree, new_tree = parse_python(before), parse_python(after)
    if old_tree is None or new_tree is None:
        return None
    old, new = _functions(old_tree), _functions(new_tree)
    if old is None or new is None or old.keys() != new.keys():
        return None
    changed = _changed(before, after, old, new)
    if (
        changed is None
        or _looks_up_names(old_tree, old)
        or _looks_up_names(new_tree, new)
        or _shares_state(old_tree, old, changed)
        or _shares_state(new_tree, new, changed)
    ):
        return None
    names = frozenset(qual.rpartition(".")[2] for qual in changed)
    return None if any(_named_elsewhere(n, old, before, after) for n in names) else names


def _named_elsewhere(name: str, functions: Mapping[str, Function], *sources: bytes) -> bool:
    """Whether a source says `name` more often than its defs do.

    Each def of the name says it once; one word more is a use (a call, a fixture
    argument, a subclass's override calling it) that an edit of it also reaches.
    """
    defs = sum(qual.rpartition(".")[2] == name for qual in functions)
    word = re.compile(rb"\b" + re.escape(name.encode()) + rb"\b")
    return any(len(word.findall(source)) != defs for source in sources)


Function = ast.FunctionDef | ast.AsyncFunctionDef


def _changed(
    before: bytes, after: bytes, old: Mapping[str, Function], new: Mapping[str, Function]
) -> set[str] | None:
    """The functions whose text changed, or None when text outside them changed too."""
    old_lines, new_lines = before.splitlines(keepends=True), after.splitlines(keepends=True)
    old_spans, new_spans = _spans_of(old), _spans_of(new)
    changed = {
        qual
        for qual, (start, end) in old_spans.items()
        if old_lines[start:end] != new_lines[new_spans[qual][0] : new_spans[qual][1]]
    }
    if _skeleton(old_lines, old_spans, changed) != _skeleton(new_lines, new_spans, changed):
        return None
    return changed


def _functions(tree: ast.Module) -> dict[str, Function] | None:
    """Qualified name -> the module's functions and its top-level classes' methods."""
    found: dict[str, Function] = {}
    for node in tree.body:
        members = node.body if isinstance(node, ast.ClassDef) else [node]
        prefix = f"{node.name}." if isinstance(node, ast.ClassDef) else ""
        for member in members:
            if not isinstance(member, _FUNCTIONS) or member.end_lineno is None:
                continue
            qual = prefix + member.name
            if qual in found:
                return None  # a name defined twice: which one runs is not ours to guess
            found[qual] = member
    return found


def _spans_of(functions: Mapping[str, Function]) -> dict[str, tuple[int, int]]:
    """Qualified name -> (first line, end) as 0-based slice bounds, decorators included."""
    return {
        qual: (min([f.lineno, *(d.lineno for d in f.decorator_list)]) - 1, f.end_lineno or 0)
        for qual, f in functions.items()
    }


@functools.lru_cache(maxsize=256)
def _spans(source: bytes) -> dict[str, tuple[int, int]] | None:
    """The spans of a source's functions (`_spans_of`), or None when it cannot say.

    Kept (callers only read them): a failing chain's steps are placed again each time
    it, or a part of it, fails (40 parses of dateutil's `test_rrule.py` per chain).
    """
    if (tree := parse_python(source)) is None or (functions := _functions(tree)) is None:
        return None
    return _spans_of(functions)


def _looks_up_names(tree: ast.Module, functions: Mapping[str, Function]) -> bool:
    """Whether the module may reach a function by a name it builds, or by its namespace:
    `getattr(self, "test_" + name)`, `getattr(cls, "test_a")`, `globals()`, `__dict__`.

    `getattr(dt, "fold", 0)`, with a constant that names no function here, is not.
    """
    names = {qual.rpartition(".")[2] for qual in functions}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "__dict__":
            return True
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        if node.func.id in {"globals", "vars"}:
            return True
        if node.func.id in _BY_NAME and len(node.args) >= 2:
            attr = node.args[1]
            if not isinstance(attr, ast.Constant) or attr.value in names:
                return True
    return False


def _shares_state(tree: ast.Module, functions: Mapping[str, Function], edited: set[str]) -> bool:
    """Whether an edited function writes module state, or reads state another writes."""
    bound = _module_names(tree)
    assigned = {
        t.id
        for node in tree.body
        if isinstance(node, _STORES)
        for t in _targets(node)
        if isinstance(t, ast.Name)
    }
    written_elsewhere: set[str] = set()
    for qual, function in functions.items():
        writes = _writes(function, bound, assigned)
        if qual in edited and writes:
            return True
        if qual not in edited:
            written_elsewhere |= writes
    return any(
        isinstance(n, ast.Name) and n.id in written_elsewhere
        for qual in edited
        for n in ast.walk(functions[qual])
    )


def _module_names(tree: ast.Module) -> set[str]:
    """Every name the module binds at its top level."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (*_FUNCTIONS, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).partition(".")[0] for a in node.names}
        elif isinstance(node, _STORES):
            names |= {t.id for t in _targets(node) if isinstance(t, ast.Name)}
    return names


def _writes(function: Function, bound: set[str], assigned: set[str]) -> set[str]:
    """The module-level names a function may change the state behind ("*": any)."""
    out: set[str] = set()
    for node in ast.walk(function):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            out |= {*node.names, "*"}
        elif isinstance(node, _STORES):
            out |= _stored(node, bound)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            root = _root(node.func.value)
            if root in assigned:
                out.add(root)  # `REGISTRY.append(...)`: a module-level object's method
            elif root == "cls":
                out.add("*")
    return out


def _stored(node: ast.stmt, bound: set[str]) -> set[str]:
    """The module-level names whose state a store changes (`STATE["x"] = 1`)."""
    out: set[str] = set()
    for target in _targets(node):
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            root = _root(target)
            if root in bound:
                out.add(root)
            elif root == "type" or (root in {"cls", "self"} and _through_class(target)):
                out.add("*")  # a class attribute every test of the class sees
    return out


def _targets(node: ast.stmt) -> list[ast.expr]:
    if isinstance(node, (ast.Assign, ast.Delete)):
        return node.targets
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return [node.target]
    return []


def _root(node: ast.expr) -> str | None:
    """The name an attribute, subscript or call chain starts from."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _through_class(node: ast.expr) -> bool:
    """Whether a chain from `self`/`cls` reaches a class attribute (`self.__class__.x`)."""
    if _root(node) == "cls":
        return True
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        if isinstance(node, ast.Attribute) and node.attr == "__class__":
            return True
        node = node.func if isinstance(node, ast.Call) else node.value
    return False


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
    """The ids, parameters dropped, of `path`'s tests whose function is one of `names`;
    none unless every name has a test (an edited `setup_method`, autouse fixture or
    helper class reaches tests that do not bear its name).

    A method's name is matched in every class of the module, so a subclass's
    inherited copy of an edited test runs too.
    """
    found = set()
    matched = set()
    for node_id in node_ids:
        if test_file(node_id) == path and (name := _function_of(node_id)) in names:
            found.add(test_id(node_id))
            matched.add(name)
    return found if matched >= set(names) else set()


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
    """The name of the function a test id runs (`file::Class::test_x[1]` -> test_x;
    `file::module.test_x` is the doctest in test_x's docstring, --doctest-modules)."""
    last = test_id(node_id).rpartition("::")[2]
    return last.rpartition(".")[2]
