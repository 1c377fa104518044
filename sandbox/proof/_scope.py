"""Which tests of a test module an edit of that module can change: the ones it edits.

A fix inside `def test_x` (PT009 turning `self.assertEqual(a, b)` into `assert a == b`)
changes what `test_x` does, and nothing else in its module, when the module outside
that function is the same text before and after, and nothing else names `test_x`. The
import graph selects test *files*; in a module of 500 tests that edits one, this
narrows the run to the tests it edited (docs/architecture.md, "Batches and their cost").
An edit of a top-level class's own body reaches the tests of that class and of its
subclasses in the module (`_regions.py`).

The answer is one-sided, like the graph's: every doubt ends in `None` ("the whole
module"). The final gate runs the whole suite on the merged tree all the same.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fixbot.sandbox._text import (
    Definition,
    RowsBack,
    definitions,
    hinted_definitions,
    parse_python,
)

from ._judge import test_file, test_id
from ._regions import classes_edited, skeleton

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
    decorators. A top-level class whose own body the edit changed is named as
    `class_scope(name)`, with its subclasses (`classes_edited`). None when the edit
    changes anything else outside them, renames, adds or removes one, or when another
    test could see the change:
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
    old = _shape(before)
    readable = old is not None and not old.looks_up_names and not _LINE_NUMBERS.search(after)
    new_spans = _spans(after) if readable else None
    if old is None or new_spans is None or old.spans.keys() != new_spans.keys():
        return None
    placed = _changed(before, after, old.spans, new_spans)
    if placed is None:
        return None
    changed, classes = placed
    # Outside the changed functions the sides differ only in class bodies that run no
    # code (`_regions`): what the functions share is the old side's but for them.
    new = old.with_functions(
        _functions(parse_python(after) or ast.Module(body=[], type_ignores=[])) or {}, changed
    )
    # An edited class's methods see the edit though their text is the same.
    seeing = changed | {q for q in old.spans if q.partition(".")[0] in classes}
    if new.looks_up_names or old.shares_state(seeing) or new.shares_state(seeing):
        return None
    # A function of a class whose own body changed is run by that class's tests.
    names = {q.rpartition(".")[2] for q in changed if q.partition(".")[0] not in classes}
    if any(_named_elsewhere(n, old.spans, before, after) for n in names):
        return None
    return frozenset(names | {class_scope(c) for c in classes})


def class_scope(name: str) -> str:
    """How `edited_functions` says "every test of class `name`" (no function has `::`)."""
    return f"{name}::"


@dataclass(frozen=True, slots=True)
class _Shape:
    """What `edited_functions` reads of one side of an edit. Kept per source: one side
    is most often the content a job's chain started from, asked about again and again."""

    spans: dict[str, tuple[int, int]]
    looks_up_names: bool
    bound: frozenset[str]  # every name the module binds at its top level
    assigned: frozenset[str]  # the names a module-level assignment binds
    writes: dict[str, frozenset[str]]  # function -> module-level names it may change
    reads: dict[str, frozenset[str]]  # function -> every name it says

    def shares_state(self, edited: set[str]) -> bool:
        """Whether an edited function writes module state, or reads state another writes."""
        if any(self.writes[q] for q in edited):
            return True
        elsewhere = set().union(*(w for q, w in self.writes.items() if q not in edited))
        return any(self.reads[q] & elsewhere for q in edited)

    def with_functions(self, functions: Mapping[str, Function], edited: set[str]) -> _Shape:
        """The same module with the `edited` functions as `functions` has them."""
        mine = {q: functions[q] for q in edited}
        names = {q.rpartition(".")[2] for q in self.spans}
        return _Shape(
            spans=self.spans,
            looks_up_names=self.looks_up_names or _looks_up_names(mine.values(), names),
            bound=self.bound,
            assigned=self.assigned,
            writes=self.writes
            | {q: _writes(f, self.bound, self.assigned) for q, f in mine.items()},
            reads=self.reads | {q: _names_in(f) for q, f in mine.items()},
        )


@functools.lru_cache(maxsize=64)
def _shape(source: bytes) -> _Shape | None:
    """A source's functions and what they share, or None when it cannot say (it does not
    parse, defines a name twice, or reads line numbers, which an edit above moves)."""
    if _LINE_NUMBERS.search(source):
        return None
    if (spans := _spans(source)) is None or (tree := parse_python(source)) is None:
        return None
    functions = _functions(tree) or {}
    bound = frozenset(_module_names(tree))
    assigned = frozenset(
        t.id
        for node in tree.body
        if isinstance(node, _STORES)
        for t in _targets(node)
        if isinstance(t, ast.Name)
    )
    return _Shape(
        spans=spans,
        looks_up_names=_looks_up_names([tree], {q.rpartition(".")[2] for q in functions}),
        bound=bound,
        assigned=assigned,
        writes={q: _writes(f, bound, assigned) for q, f in functions.items()},
        reads={q: _names_in(f) for q, f in functions.items()},
    )


def _names_in(node: ast.AST) -> frozenset[str]:
    return frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))


def _named_elsewhere(name: str, functions: Collection[str], *sources: bytes) -> bool:
    """Whether a source says `name` more often than its defs do.

    Each def of the name says it once; one word more is a use (a call, a fixture
    argument, a subclass's override calling it) that an edit of it also reaches.
    """
    defs = sum(qual.rpartition(".")[2] == name for qual in functions)
    word = re.compile(rb"\b" + re.escape(name.encode()) + rb"\b")
    return any(len(word.findall(source)) != defs for source in sources)


Function = ast.FunctionDef | ast.AsyncFunctionDef


def _changed(
    before: bytes,
    after: bytes,
    old_spans: dict[str, tuple[int, int]],
    new_spans: dict[str, tuple[int, int]],
) -> tuple[set[str], set[str]] | None:
    """The functions whose text changed, and the classes whose tests an edit of their own
    body reaches (`classes_edited`); None when it reaches the whole module."""
    old_lines, new_lines = before.splitlines(keepends=True), after.splitlines(keepends=True)
    changed = {
        qual
        for qual, (start, end) in old_spans.items()
        if old_lines[start:end] != new_lines[new_spans[qual][0] : new_spans[qual][1]]
    }
    kept = skeleton(old_lines, old_spans, changed)
    if kept is not None and kept == skeleton(new_lines, new_spans, changed):
        return changed, set()
    old_tree, new_tree = parse_python(before), parse_python(after)
    if old_tree is None or new_tree is None:
        return None
    classes = classes_edited(before, after, (old_tree, new_tree), (old_spans, new_spans), changed)
    return None if classes is None else (changed, classes)


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
    """The spans of a source's functions (as `_spans_of` gives them), or None when it
    cannot say (it does not parse, or defines a name twice).

    Kept (callers only read them): a failing chain's steps are placed again each time
    it, or a part of it, fails (40 parses of dateutil's `test_rrule.py` per chain).
    """
    return _spans_of_defs(definitions(source))


def _spans_of_defs(defs: tuple[Definition, ...] | None) -> dict[str, tuple[int, int]] | None:
    """`_spans`, from a module's defs."""
    if defs is None:
        return None
    spans: dict[str, tuple[int, int]] = {}
    for d in defs:
        if d.is_class or d.owner is None:
            continue
        qual = f"{d.owner}.{d.name}" if d.owner else d.name
        if qual in spans:
            return None  # a name defined twice: which one runs is not ours to guess
        spans[qual] = (d.first - 1, d.last)
    return spans


def _looks_up_names(nodes: Iterable[ast.AST], names: Collection[str]) -> bool:
    """Whether code may reach a function by a name it builds, or by its namespace:
    `getattr(self, "test_" + name)`, `getattr(cls, "test_a")`, `globals()`, `__dict__`.

    `getattr(dt, "fold", 0)`, with a constant that names no function here, is not.
    """
    for node in (n for top in nodes for n in ast.walk(top)):
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


def _writes(
    function: Function, bound: Collection[str], assigned: Collection[str]
) -> frozenset[str]:
    """The module-level names a function may change the state behind ("*": any)."""
    out: set[str] = set()
    for node in ast.walk(function):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            out |= {*node.names, "*"}
        elif isinstance(node, _STORES):
            out |= _stored(node, bound)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            root = _root(node.func.value)
            if root is not None and root in assigned:
                out.add(root)  # `REGISTRY.append(...)`: a module-level object's method
            elif root == "cls":
                out.add("*")
    return frozenset(out)


def _stored(node: ast.stmt, bound: Collection[str]) -> set[str]:
    """The module-level names whose state a store changes (`STATE["x"] = 1`)."""
    out: set[str] = set()
    for target in _targets(node):
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            root = _root(target)
            if root is not None and root in bound:
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


def ids_named(node_ids: Iterable[str], path: str, names: Collection[str]) -> set[str]:
    """The ids, parameters dropped, of `path`'s tests whose function is one of `names`,
    or whose class is (`class_scope`); none unless every function named has a test (an
    edited `setup_method`, autouse fixture or helper class reaches tests that do not
    bear its name).

    A method's name is matched in every class of the module, so a subclass's
    inherited copy of an edited test runs too.
    """
    functions = {n for n in names if not n.endswith("::")}
    classes = {n.removesuffix("::") for n in names} - functions
    found = set()
    matched = set()
    for node_id in node_ids:
        if test_file(node_id) != path:
            continue
        if (name := _function_of(node_id)) in functions:
            found.add(test_id(node_id))
            matched.add(name)
        elif classes and classes & set(_first_part(node_id).split(".")):
            found.add(test_id(node_id))
    return found if matched >= functions else set()


def _first_part(node_id: str) -> str:
    """What follows the file in a node id: a class, a test, or a doctest's dotted name."""
    return test_id(node_id).split("::")[1] if "::" in node_id else ""


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

    Each fix is placed in `start`'s defs, its row mapped back through the steps
    before its own (their line diffs): `start` is the one content parsed. Parsing
    each step's content took a second when settling dateutil's `test_tz.py`.
    """
    if not steps or not failing or any(test_file(t) != path for t in failing):
        return set()
    failed = {_function_of(t) for t in failing}
    spans = _spans_of_defs(hinted_definitions(start)) or {}
    out: set[str] = set()
    rows_back = RowsBack(start)
    for rows, after in steps:
        for identity, row in rows.items():
            at = rows_back.at_start(row)
            names = {q.rpartition(".")[2] for q, (a, b) in spans.items() if a < at <= b}
            if names and not names & failed:
                out.add(identity)
        rows_back.step(after)
    return out


def _function_of(node_id: str) -> str:
    """The name of the function a test id runs (`file::Class::test_x[1]` -> test_x;
    `file::module.test_x` is the doctest in test_x's docstring, --doctest-modules)."""
    last = test_id(node_id).rpartition("::")[2]
    return last.rpartition(".")[2]
