"""Judging outcomes against the base: which tests got worse, what lint says.

Pure functions and plain values, so each rule of "proven" (docs/architecture.md,
Verification) can be read and tested on its own.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fixbot.sandbox._testrun import NATIVE_FRAME

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Sequence

    from fixbot.sandbox._types import TestResults, Violation


def test_file(node_id: str) -> str:
    """The file part of a pytest node id."""
    return node_id.split("::", 1)[0]


def test_id(node_id: str) -> str:
    """A node id without its parameters (`file::Class::test`), as a selection names it."""
    return node_id.split("[", 1)[0]


@dataclass(slots=True)
class Baseline:
    """The repo's tests at base; tests failing or flaky there never count against a patch."""

    results: TestResults | None
    flaky: set[str] = field(default_factory=set)
    stable: set[str] = field(default_factory=set)  # failed under a patch, passed twice at base
    # Tests that pass in their file at base but fail alone there (they rely on a test
    # before them): their files are never narrowed to single tests (`Prover.select_tests`).
    needs_file: set[str] = field(default_factory=set)
    alone_checked: set[str] = field(default_factory=set)

    @property
    def already_failing(self) -> set[str]:
        """Tests that did not pass at base."""
        if self.results is None:
            return set()
        return {t for t, s in self.results.outcomes.items() if s in {"failed", "error"}}

    @property
    def test_files(self) -> set[str]:
        """The files the tests collected at base live in."""
        return {test_file(t) for t in (self.results.outcomes if self.results else ())}

    def count(self, selection: Collection[str] | None) -> int:
        """How many of the tests collected at base a selection (test files and ids without
        parameters, as `Prover.select_tests` gives; None for all) runs."""
        outcomes = self.results.outcomes if self.results else {}
        if selection is None:
            return len(outcomes)
        chosen = set(selection)
        return sum(1 for t in outcomes if test_file(t) in chosen or test_id(t) in chosen)

    def problems(
        self, results: TestResults, within: Collection[str] | None = None
    ) -> dict[str, str]:
        """Test id -> what got worse than at base (only tests `within` selects, if given).

        `within` holds test files and ids without parameters (`file::Class::test`), as
        pytest was given them.
        """
        if self.results is None:
            return {}
        chosen = None if within is None else set(within)
        out = {}
        for test, before in self.results.outcomes.items():
            if test in self.flaky or before in {"failed", "error"}:
                continue
            if chosen is not None and test_file(test) not in chosen and test_id(test) not in chosen:
                continue
            after = results.outcomes.get(test)
            if after is None:
                out[test] = "no longer collected"
            elif (before == "passed" and after != "passed") or (
                before in {"skipped", "xfailed"} and after in {"failed", "error"}
            ):
                out[test] = after
        return out


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFINITION = re.compile(
    rb"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE
)


def mentioned_names(report: str) -> set[str]:
    """The identifiers a failure report names: functions called, frames passed through."""
    return set(_IDENTIFIER.findall(report))


# pytest's long report marks the line each frame was on with ">" and the error with "E";
# the other lines are context (the test's earlier statements).
_POINTED_LINE = re.compile(r"^[>E](?:\s.*)?$", re.MULTILINE)


def pointed_names(report: str) -> set[str]:
    """The identifiers on the lines a failure report points at, and in its message (the
    report's first line): what the test was doing when it failed, not what it did before.

    In pytest's long report those are the `>` and `E` lines; in a native traceback
    (fixbot's runs, `--tb=native`), each frame's line and the exception. A report
    with neither points at nothing.
    """
    message, _, rest = report.partition("\n")
    pointed = [line[1:] for line in _POINTED_LINE.findall(rest)] or native_pointed(rest)
    if not pointed:
        return set()
    return set(_IDENTIFIER.findall(message)) | {
        name for line in pointed for name in _IDENTIFIER.findall(line)
    }


def native_pointed(report: str) -> list[str]:
    """The lines a native traceback points at: each frame's source line, and the lines
    of the exception after the last frame."""
    lines = report.splitlines()
    frames = [i for i, line in enumerate(lines) if NATIVE_FRAME.match(line)]
    if not frames:
        return []
    out = [lines[i + 1] for i in frames if i + 1 < len(lines) and lines[i + 1].startswith("    ")]
    tail = lines[frames[-1] + 1 :]
    return out + [line for line in tail if line[:1] not in {"", " "}]


def defined_names(contents: Iterable[bytes]) -> set[str]:
    """The names of the functions and classes that source code defines (at any depth)."""
    return {m.decode() for content in contents for m in _DEFINITION.findall(content)}


def lint_problem(
    before: Sequence[Violation], after: Sequence[Violation], targets: Counter[str]
) -> tuple[str, tuple[str, ...]]:
    """What lint says against a change ("" when the targets are gone and nothing is new),
    and the new findings.

    Targets are matched by fingerprint. New findings are counted per rule: a fix
    that rewrites a line can change the fingerprint of an untouched neighbour (an
    import block's I001 after an import goes), which is a rewording, not a new
    finding, so per rule the count must fall by at least the targets it fixed.
    """
    have_before = Counter(v.fingerprint for v in before)
    have_after = Counter(v.fingerprint for v in after)
    remaining = sum(
        n - max(0, have_before[fp] - have_after[fp]) for fp, n in targets.items() if n > 0
    )
    if remaining > 0:
        return f"{remaining} targeted violation(s) remain", ()
    rule_of = {v.fingerprint: v.rule for v in (*before, *after)}
    allowed = Counter(v.rule for v in before)
    for fp, n in targets.items():  # summed per rule: several targets may share one
        allowed[rule_of.get(fp, fp)] -= max(n, 0)
    grew = {r for r, n in Counter(v.rule for v in after).items() if n > allowed[r]}
    if not grew:
        return "", ()
    fresh = tuple(
        f"{v.rule} {v.path}:{v.location.row}: {v.message}"
        for v in after
        if v.rule in grew and have_after[v.fingerprint] > have_before[v.fingerprint]
    )
    return "new violations: " + "; ".join(fresh or sorted(grew)), fresh


def entropy_bound(n: int, failures: int) -> float:
    """N·H(p): the fewest test runs any scheme needs on average to sort N patches."""
    if n == 0 or failures in {0, n}:
        return 0.0
    p = failures / n
    return n * -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
