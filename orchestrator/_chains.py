"""The fixes of a chain: what it was asked for, where they lie, how a group is split.

Pure functions over a job's chains of patches (orchestrator/_job.py narrows with them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fixbot.sandbox import RowsBack, hinted_definitions, same_code

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fixbot.sandbox import Definition, Patch, Violation


def split_targets(targets: list[Violation]) -> list[frozenset[str]]:
    """Two groups to try one after the other, the likelier-good one first.

    Safe fixes almost never change behaviour, so a failing mix is split into its
    safe and its unsafe fixes first; after that, halves in rule order.
    """
    unique = sorted({v.identity: v for v in targets}.values(), key=lambda v: (v.rule, v.identity))
    safe = [v.identity for v in unique if v.applicability == "safe"]
    rest = [v.identity for v in unique if v.applicability != "safe"]
    if safe and rest:
        return [frozenset(safe), frozenset(rest)]
    fps = [v.identity for v in unique]
    half = len(fps) // 2
    return [frozenset(fps[:half]), frozenset(fps[half:])]


def new_content(patch: Patch) -> bytes:
    """What the patch leaves in its one file."""
    return patch.changes[0].new


def asked_of(chain: list[Patch], group: frozenset[str] | None) -> list[Violation]:
    """The chain's fixes that were asked for (`group`, or all when None).

    Only those are narrowed: a chain also fixes what its own steps uncovered (an
    import left unused), and those come back with every retry.
    """
    return [
        v
        for p in chain
        for v in p.targets
        if not v.uncovered and (group is None or v.identity in group)
    ]


def suspected(chain: list[Patch], start: bytes, clues: set[str]) -> set[str]:
    """The fixes of a chain that lie in a function or class the clues name."""
    if not clues:
        return set()
    found: set[str] = set()
    # Placed in the first content's defs (rows mapped back): the one content parsed.
    scopes, rows_back = _scopes(start), RowsBack(start)
    for patch in chain:
        for v in patch.targets:
            row = rows_back.at_start(v.location.row)
            if any(first <= row <= last and name in clues for first, last, name in scopes):
                found.add(v.identity)
        rows_back.step(patch.changes[0].new)
    return found


def cosmetic(chain: list[Patch], start: bytes, among: set[str]) -> set[str]:
    """The fixes of `among` that leave the def or class around them the same syntax tree
    (quotes, a trailing comma, spacing): short of reading line numbers or its own
    source, no test tells such a fix apart, so a failure is not pinned on it.
    dateutil's failing test held 14 fixes, most of them Q000 in its parametrize list;
    the culprit was its PT014.
    """
    found, content = set(), start
    for patch in chain:
        new = new_content(patch)
        for v in patch.targets:
            if v.identity in among and _same_around(content, new, v.location.row):
                found.add(v.identity)
        content = new
    return found


def _same_around(before: bytes, after: bytes, row: int) -> bool:
    """Whether the innermost def or class holding `row` of `before` is the same code in
    `after`. Only that one is compared as code; the defs are paired in order, and a step
    that adds or drops one is never the same. Where they are comes from
    `hinted_definitions` (a hint, as this is): a step that keeps the outline, as quotes
    and commas do, reads no content again (a whole test module: 75 ms a side)."""
    old, new = hinted_definitions(before), hinted_definitions(after)
    if old is None or new is None or len(old) != len(new):
        return False
    holding = [i for i, d in enumerate(old) if d.first <= row <= d.last]
    if not holding:
        return False
    # Statements are walked outside in: the last def that holds the row is the innermost.
    i = holding[-1]
    return same_code(_text_of(before, old[i]), _text_of(after, new[i]))


def _text_of(source: bytes, d: Definition) -> bytes:
    lines = source.splitlines(keepends=True)[d.first - 1 : d.last]
    # An indented def parses as the body of an `if`.
    return b"".join(lines) if not lines[0][:1].isspace() else b"if True:\n" + b"".join(lines)


def failed_functions(path: str, failing_tests: Iterable[str]) -> set[str]:
    """The names of the test functions of `path` that failed (`file::Class::test[1]` ->
    test; `file::module.test`, a doctest, -> test)."""
    out = set()
    for node_id in failing_tests:
        file, _, rest = node_id.partition("::")
        if file == path and rest:
            out.add(rest.split("[", 1)[0].rpartition("::")[2].rpartition(".")[2])
    return out


def _scopes(content: bytes) -> list[tuple[int, int, str]]:
    """Every function and class of the source: its first and last line, and its name.

    The first line is its first decorator's: a test's parametrize list is that test's
    (dateutil's PT014 fix there made cases "no longer collected", and was found only by
    halving). A hint, so from `hinted_definitions`: a content with the outline of one
    read before is not parsed again.
    """
    return [(d.first, d.last, d.name) for d in hinted_definitions(content) or ()]


def fixing(chain: list[Patch], identities: set[str]) -> list[Patch]:
    """The steps of a chain that fix any of `identities`, with only those targets."""
    out = []
    for patch in chain:
        mine = tuple(v for v in patch.targets if v.identity in identities)
        if mine:
            out.append(patch.model_copy(update={"targets": mine}))
    return out or chain[-1:]
