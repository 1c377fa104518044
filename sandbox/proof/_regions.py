"""Where an edit of a test module lies, past its functions: in a class's own body, or in a
docstring only.

`edited_functions` (`_scope.py`) names the functions an edit changed. Where text
outside them changed too, it asks here, before giving up on the whole module:
- a docstring of the module or of a top-level class changes only `__doc__`, which no
  test reads unless the module says so (`__doc__`, `getdoc`, `doctest`, `help(`, a
  `>>>` example): such an edit reaches no test;
- an edit in a top-level class's own body (an attribute, a nested class, a class
  docstring that is read) reaches that class's tests and those of the classes of the
  module that inherit from it, and nothing else, when nothing else in the module names
  any of them and the body runs no code of its own (no call, no walrus, no `global`).

Spans are 0-based line slices, a class's with its decorators, as `_scope._spans_of`.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

Span = tuple[int, int]

_READS_DOCS = re.compile(rb"__doc__|getdoc|doctest|pydoc|>>>|\bhelp\(")
# Class-level code that runs when the module is imported and may reach past the class.
_RUNS = (ast.Call, ast.NamedExpr, ast.Global, ast.Nonlocal, ast.Await, ast.Yield, ast.YieldFrom)


def skeleton(
    lines: list[bytes], spans: Mapping[str, Span], hollow: Collection[str]
) -> list[bytes] | None:
    """The module's lines with each `hollow` span cut down to its name; None if two overlap."""
    cuts = sorted((spans[q][0], spans[q][1], q) for q in hollow)
    out: list[bytes] = []
    at = 0
    for start, end, qual in cuts:
        if start < at:
            return None
        out += lines[at:start]
        out.append(b"\0" + qual.encode())
        at = end
    return out + lines[at:]


def classes_edited(
    before: bytes,
    after: bytes,
    trees: tuple[ast.Module, ast.Module],
    spans: tuple[Mapping[str, Span], Mapping[str, Span]],
    changed: set[str],
) -> set[str] | None:
    """The top-level classes whose own body an edit changed, with the module's classes that
    inherit from them; None when it changed module-level code or another test may see it.

    `spans` are each side's function spans and `changed` the functions whose text
    changed (their tests are found by name).
    """
    reads_docs = bool(_READS_DOCS.search(before) or _READS_DOCS.search(after))
    sides = []
    for source, tree, functions in zip((before, after), trees, spans, strict=True):
        lines = source.splitlines(keepends=True)
        regions = dict(functions) | _class_regions(tree, lines, docs=not reads_docs)
        sides.append((lines, regions))
    (old_lines, old_regions), (new_lines, new_regions) = sides
    if old_regions.keys() != new_regions.keys():
        return None  # a docstring only one side can hollow: code, as far as we can tell

    def same(hollow: set[str]) -> bool:
        old = skeleton(old_lines, old_regions, hollow)
        return old is not None and old == skeleton(new_lines, new_regions, hollow)

    classes = {k.removeprefix("class ") for k in old_regions if k.startswith("class ")}
    outside = {q for q in changed if q.partition(".")[0] not in classes}
    module_doc = {"doc"} & old_regions.keys()
    if not same(outside | {f"class {c}" for c in classes} | module_doc):
        return None  # module-level code changed
    edited = set()
    for name in sorted(classes):
        others = {f"class {c}" for c in classes - {name}}
        inside = {q for q in changed if q.partition(".")[0] == name}
        doc = {f"doc {name}"} & old_regions.keys()
        if not same(outside | others | inside | module_doc | doc):
            edited.add(name)
    if not edited:
        return set()
    return _reach(edited, trees, (before, after))


def _class_regions(tree: ast.Module, lines: list[bytes], *, docs: bool) -> dict[str, Span]:
    """`class C` -> each top-level class's span; with `docs`, `doc C` -> its docstring's and
    `doc` -> the module's, where the docstring has its lines to itself."""
    regions: dict[str, Span] = {}
    if docs and (span := _docstring(tree.body, lines, after_line=0)):
        regions["doc"] = span
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or node.end_lineno is None:
            continue
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
        regions[f"class {node.name}"] = (start, node.end_lineno)
        ends = [b.end_lineno for b in node.bases] + [k.end_lineno for k in node.keywords]
        header = max([node.lineno, *(end or 0 for end in ends)])
        if docs and (span := _docstring(node.body, lines, after_line=header)):
            regions[f"doc {node.name}"] = span
    return regions


def _docstring(body: list[ast.stmt], lines: list[bytes], after_line: int) -> Span | None:
    """The span of a body's docstring, when no other code shares its lines."""
    if not body or not isinstance(first := body[0], ast.Expr):
        return None
    if not isinstance(first.value, ast.Constant) or not isinstance(first.value.value, str):
        return None
    end = first.end_lineno or 0
    if first.lineno <= after_line or (len(body) > 1 and body[1].lineno <= end):
        return None
    if lines[first.lineno - 1][: first.col_offset].strip():
        return None
    tail = lines[end - 1][first.end_col_offset or 0 :].strip()
    if tail and not tail.startswith(b"#"):
        return None
    return first.lineno - 1, end


def _reach(
    edited: set[str], trees: tuple[ast.Module, ast.Module], sources: tuple[bytes, bytes]
) -> set[str] | None:
    """The edited classes and the module's classes that inherit from them; None when
    another test could see an edited class: a body that runs code, or a name said
    anywhere but in its own def and its subclasses' bases."""
    reached: set[str] = set()
    for tree, source in zip(trees, sources, strict=True):
        classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        if any(_runs_code(classes[name]) for name in edited):
            return None
        bases = {
            name: [b.id for b in node.bases if isinstance(b, ast.Name)]
            for name, node in classes.items()
        }
        closure = set(edited)
        while grown := {n for n, b in bases.items() if n not in closure and closure & set(b)}:
            closure |= grown
        for name in closure:
            said = len(re.findall(rb"\b" + re.escape(name.encode()) + rb"\b", source))
            if said != 1 + sum(b.count(name) for b in bases.values()):
                return None
        reached |= closure
    return reached


def _runs_code(node: ast.ClassDef) -> bool:
    """Whether a class's own body (its methods' bodies aside) runs code when imported,
    past the decorators a test class wears (`_HARMLESS`)."""
    todo: list[ast.AST] = [node]
    while todo:
        item = todo.pop()
        if isinstance(item, ast.ClassDef):
            if item.keywords:
                return True  # a metaclass, or arguments for __init_subclass__
            todo += [*item.bases, *item.body]
        elif isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            todo += [*item.args.defaults, *(d for d in item.args.kw_defaults if d)]
        elif isinstance(item, ast.Lambda):
            continue
        elif isinstance(item, _RUNS):
            return True
        else:
            todo += ast.iter_child_nodes(item)
        decorators = getattr(item, "decorator_list", ())
        if any(not _harmless(d) for d in decorators):
            return True
    return False


def _harmless(decorator: ast.expr) -> bool:
    """A mark (`@pytest.mark.x(...)`, `@unittest.skipIf(...)`), a fixture, or a builtin
    descriptor: it changes the decorated test, and nothing past it."""
    node = decorator.func if isinstance(decorator, ast.Call) else decorator
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return False
    path = [node.id, *reversed(parts)]
    if len(path) == 1:
        return path[0] in {"staticmethod", "classmethod", "property"}
    if path[0] == "unittest":
        return path[-1].startswith(("skip", "expectedFailure"))
    return path[0] == "pytest" and (path[1] == "mark" or path[1:] == ["fixture"])
