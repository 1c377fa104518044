"""ruff's JSON findings read into `Violation`s, cheaply for content linted again and again.

A chain lints its file after every one-rule step, and the proof lints the same
contents again: a big test module's thousand findings were read (JSON decoded,
fingerprinted) hundreds of times over a run, most of them unchanged by the step
between. A finding is a pure function of its JSON line, its path, the lines it
covers and the def or class around it, so those four are the key it is kept
under: the same line in a file changed elsewhere is the same `Violation`,
which is immutable and shared. Both caches are bounded; clearing one costs
only time.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ._text import decode, scope_of, scope_table, split_lines
from ._types import Edit, Fix, Location, Violation, fingerprint

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path

# Each bound is far above one run's distinct findings on a big repo, and far below
# what would matter for memory (a kept finding and its JSON line: about a kilobyte).
_MAX_FINDINGS = 100_000
_MAX_FILES = 64

# JSON line -> where it points (file, first and last row, whether in a notebook cell);
# (path, JSON line, covered lines, scope) -> the finding.
_places: dict[bytes, tuple[str, int, int, bool]] = {}
_built: dict[tuple[str, bytes, tuple[str, ...], str], Violation] = {}
# A file's content -> its lines and the scope of each line.
_sources: dict[str | bytes, tuple[list[str], list[str]]] = {}


def _keep(cache: dict[Any, Any], limit: int, key: object, value: object) -> None:
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value


def lines_and_scopes(content: str | bytes) -> tuple[list[str], list[str]]:
    """A file's lines as ruff numbers them, and the def or class header around each."""
    found = _sources.get(content)
    if found is None:
        text = content if isinstance(content, str) else decode(content)[0]
        lines = split_lines(text)
        found = (lines, scope_table(lines))
        _keep(_sources, _MAX_FILES, content, found)
    return found


class FindingsReader:
    """Reads the findings of one lint, which ruff sorts by file: each file's lines and
    scopes are looked up once while its findings stream past.

    `path` and `text` name content linted from stdin; otherwise each file is read
    from `root` as its first finding arrives.
    """

    def __init__(
        self,
        root: Path,
        relative: Callable[[str], str],
        path: str | None = None,
        text: str | None = None,
    ) -> None:
        self.root = root
        self.relative = relative
        self.stdin_path = path
        self.path: str | None = None
        self.lines: list[str] = []
        self.scopes: list[str] = []
        if path is not None and text is not None:
            self.path = path
            self.lines, self.scopes = lines_and_scopes(text)

    def read(self, raw_lines: Iterable[bytes]) -> Iterator[Violation]:
        """The findings of ruff's json-lines output, one per non-blank line."""
        for raw in raw_lines:
            if not raw.strip():
                continue
            item = None
            place = _places.get(raw)
            if place is None:
                item = json.loads(raw)
                place = _place(item)
                _keep(_places, _MAX_FINDINGS, raw, place)
            filename, row, end, in_cell = place
            rel = self.stdin_path or self.relative(filename)
            if rel != self.path:
                self.path = rel
                self.lines, self.scopes = _read_source(self.root / rel)
            region, scope = _where(row, end, in_cell, self.lines, self.scopes)
            key = (rel, raw, region, scope)
            violation = _built.get(key)
            if violation is None:
                violation = _build(item or json.loads(raw), rel, region, scope)
                _keep(_built, _MAX_FINDINGS, key, violation)
            yield violation


def _read_source(path: Path) -> tuple[list[str], list[str]]:
    try:
        return lines_and_scopes(path.read_bytes())
    except OSError:
        return [], []


def _place(item: dict[str, Any]) -> tuple[str, int, int, bool]:
    """Where a finding points: its file, first and last row, whether in a notebook cell."""
    row, end = int(item["location"]["row"]), int(item["end_location"]["row"])
    return item["filename"], row, end, item.get("cell") is not None


def _where(
    row: int, end: int, in_cell: bool, lines: list[str], scopes: list[str] | None
) -> tuple[tuple[str, ...], str]:
    """The lines a finding covers and the def or class around it: what its fingerprint reads."""
    region = tuple(lines[row - 1 : max(end, row)]) if not in_cell else ()
    if not region:
        return region, ""
    if scopes is not None and row <= len(scopes):
        return region, scopes[row - 1]
    return region, scope_of(lines, row)


def _location(data: dict[str, int]) -> Location:
    return Location(row=int(data["row"]), column=int(data["column"]))


def violation_from_json(
    item: dict[str, Any], path: str, lines: list[str], scopes: list[str] | None = None
) -> Violation:
    """Build a `Violation` from one object of ruff's JSON output.

    ruff's schema is known and fixed (docs/architecture.md, "Facts about the
    tools"): plain dataclasses, built without validation.
    """
    _, row, end, in_cell = _place(item)
    region, scope = _where(row, end, in_cell, lines, scopes)
    return _build(item, path, region, scope)


def _build(item: dict[str, Any], path: str, region: tuple[str, ...], scope: str) -> Violation:
    fix = item.get("fix")
    rule = item.get("code") or item["name"]
    return Violation(
        code=item.get("code"),
        name=item["name"],
        message=item["message"],
        path=path,
        location=_location(item["location"]),
        end_location=_location(item["end_location"]),
        fix=Fix(
            applicability=fix["applicability"],
            message=fix.get("message"),
            edits=tuple(
                Edit(
                    content=e["content"],
                    location=_location(e["location"]),
                    end_location=_location(e["end_location"]),
                )
                for e in fix["edits"]
            ),
        )
        if fix
        else None,
        cell=item.get("cell"),
        noqa_row=item.get("noqa_row"),
        fingerprint=fingerprint(rule, path, item["message"], list(region), scope),
    )
