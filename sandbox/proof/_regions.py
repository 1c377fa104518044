"""Where an edit of a test module lies, past its functions: in a top-level class's own body.

`edited_functions` (`_scope.py`) names the functions an edit changed. Where text
outside them changed too, it asks here before giving up on the whole module. An
edit in a top-level class's own body (an attribute, a nested class, its docstring)
reaches that class's tests and those of the classes of the module that inherit from
it, and nothing else, when:
- nothing else in the module names any of them (a helper that reads a docstring, a
  test that builds the class), and nothing looks classes up without naming them
  (`__subclasses__`);
- creating them runs no code of theirs or of their bases that could reach past them:
  no call, walrus, `global` or store into another object in the class bodies or in
  the defaults and decorator arguments of their methods, no metaclass or class
  keywords, no `__init_subclass__`, no decorator but a mark, a fixture or a builtin
  descriptor, and bases that are `object`, a `...TestCase` or classes of the module
  that pass these same checks;
- their methods, though unchanged, write no module state (`_scope._Shape.shares_state`
  is asked about all of them): a `setup_class` that copies an attribute into
  `os.environ` carries the edit to every later test.

A docstring is code here like any other text: a framework may read it (a pydantic
model's description, a helper's `doc_of(cls)`). Spans are 0-based line slices, a
class's with its decorators, as `_scope._spans_of`.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

from fixbot.sandbox._text import definitions

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

Span = tuple[int, int]

# Class-level code that runs when the module is imported and may reach past the class.
_RUNS = (
    ast.Call,
    ast.NamedExpr,
    ast.Global,
    ast.Nonlocal,
    ast.Await,
    ast.Yield,
    ast.YieldFrom,
    ast.AugAssign,
    ast.Delete,
)


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
    sides = []
    for source, functions in zip((before, after), spans, strict=True):
        sides.append((source.splitlines(keepends=True), dict(functions) | _class_spans(source)))
    (old_lines, old_regions), (new_lines, new_regions) = sides
    if old_regions.keys() != new_regions.keys():
        return None

    def same(hollow: set[str]) -> bool:
        old = skeleton(old_lines, old_regions, hollow)
        return old is not None and old == skeleton(new_lines, new_regions, hollow)

    classes = {k.removeprefix("class ") for k in old_regions if k.startswith("class ")}
    outside = {q for q in changed if q.partition(".")[0] not in classes}
    if not same(outside | {f"class {c}" for c in classes}):
        return None  # module-level code changed
    edited = set()
    for name in sorted(classes):
        others = {f"class {c}" for c in classes - {name}}
        inside = {q for q in changed if q.partition(".")[0] == name}
        if not same(outside | others | inside):
            edited.add(name)
    if not edited:
        return set()
    return _reach(edited, trees, (before, after))


def _class_spans(source: bytes) -> dict[str, Span]:
    """`class C` -> each top-level class's span, decorators included."""
    return {
        f"class {d.name}": (d.first - 1, d.last)
        for d in definitions(source) or ()
        if d.is_class and d.owner == ""
    }


def _reach(
    edited: set[str], trees: tuple[ast.Module, ast.Module], sources: tuple[bytes, bytes]
) -> set[str] | None:
    """The edited classes and the module's classes that inherit from them; None when
    another test could see an edited class (the module docstring's rules)."""
    reached: set[str] = set()
    for tree, source in zip(trees, sources, strict=True):
        if b"__subclasses__" in source:
            return None
        classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        bases = {
            name: [b.id for b in node.bases if isinstance(b, ast.Name)]
            for name, node in classes.items()
        }
        closure = set(edited)
        while grown := {n for n, b in bases.items() if n not in closure and closure & set(b)}:
            closure |= grown
        if not all(_plain(classes[name], classes, set()) for name in closure):
            return None
        for name in closure:
            said = len(re.findall(rb"\b" + re.escape(name.encode()) + rb"\b", source))
            if said != 1 + sum(b.count(name) for b in bases.values()):
                return None
        reached |= closure
    return reached


def _plain(node: ast.ClassDef, classes: Mapping[str, ast.ClassDef], seen: set[str]) -> bool:
    """Whether creating the class runs no code that could reach past it, its bases' included."""
    if node.name in seen:
        return True
    seen.add(node.name)
    if node.keywords or _runs_code(node):
        return False
    if any(isinstance(m, ast.FunctionDef) and m.name == "__init_subclass__" for m in node.body):
        return False
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id in classes:
            if not _plain(classes[base.id], classes, seen):
                return False
        elif not _harmless_base(base):
            return False
    return True


def _harmless_base(base: ast.expr) -> bool:
    """`object`, or a `TestCase` (unittest's, Django's...): no metaclass of its own."""
    name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
    return name == "object" or name.endswith("TestCase")


def _runs_code(node: ast.ClassDef) -> bool:
    """Whether a class's own body (its methods' bodies aside) runs code when imported,
    past the decorators a test class wears (`_harmless`)."""
    todo: list[ast.AST] = [node]
    while todo:
        item = todo.pop()
        decorators = getattr(item, "decorator_list", ())
        if any(not _harmless(d) for d in decorators):
            return True
        # A mark's arguments run at import too (`parametrize("x", cases())`).
        todo += [a for d in decorators if isinstance(d, ast.Call) for a in (*d.args, *d.keywords)]
        if isinstance(item, ast.ClassDef):
            if item.keywords:
                return True  # a metaclass, or arguments for __init_subclass__
            todo += [*item.bases, *item.body]
        elif isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            todo += [*item.args.defaults, *(d for d in item.args.kw_defaults if d)]
        elif isinstance(item, ast.Lambda):
            continue
        elif isinstance(item, _RUNS) or _stores_into(item):
            return True
        else:
            todo += ast.iter_child_nodes(item)
    return False


def _stores_into(node: ast.AST) -> bool:
    """`CONFIG["mode"] = ...`, `os.environ.x = ...`: a store into another object."""
    targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
    return isinstance(node, (ast.Assign, ast.AnnAssign)) and any(
        not isinstance(t, ast.Name) for t in targets if t is not None
    )


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
