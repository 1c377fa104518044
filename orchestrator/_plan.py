"""Turn violations into file-disjoint tasks, cheap and sure ones first."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from fixbot.agents import Router, Task
from fixbot.sandbox import is_protected

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Sequence

    from fixbot.sandbox import Violation


def in_scope(path: str, paths: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether a repo-relative path is under one of `paths` and matches no `exclude` glob."""
    pure = PurePosixPath(path)
    if paths and not any(
        p in {".", ""} or pure == PurePosixPath(p) or PurePosixPath(p) in pure.parents
        for p in paths
    ):
        return False
    candidates = [path, *(str(parent) + "/" for parent in pure.parents if str(parent) != ".")]
    return not any(
        fnmatch.fnmatchcase(c, pattern) or fnmatch.fnmatchcase(c.rstrip("/"), pattern.rstrip("/"))
        for pattern in exclude
        for c in candidates
    )


@dataclass(slots=True)
class Plan:
    """The tasks of a run, plus what was found and why some of it is not attempted."""

    violations: list[Violation]
    tasks: list[Task]
    skipped: dict[str, str] = field(default_factory=dict)  # fingerprint -> reason


def make_plan(
    violations: Iterable[Violation],
    router: Router,
    *,
    paths: Sequence[str] = (),
    exclude: Sequence[str] = (),
    symlinks: Collection[str] = (),
    converted: Collection[str] = (),
) -> Plan:
    """One task per file with something an agent can fix, ordered by cost and certainty.

    A file reached through a symlink is left alone (`symlinks`): a patch may not
    write through one, and the file it points at has a task of its own. So is a file
    that .gitattributes converts on checkout (`converted`: see `converted_files`).
    """
    kept: list[Violation] = []
    by_file: dict[str, list[Violation]] = {}
    skipped: dict[str, str] = {}
    for v in violations:
        if not in_scope(v.path, paths, exclude):
            continue
        kept.append(v)
        if v.cell is not None or v.path.endswith(".ipynb"):
            # Notebook fixing is not built yet: report these unfixed, plainly.
            skipped[v.fingerprint] = "notebook"
            continue
        if v.path in symlinks:
            skipped[v.fingerprint] = "symlink"
            continue
        if v.path in converted:
            skipped[v.fingerprint] = "converted on checkout"
            continue
        if is_protected(v.path):
            # Lint and test configuration (noxfile.py, tox.ini...): a patch to it is
            # refused by policy anyway, one fix at a time; none is proposed.
            skipped[v.fingerprint] = "lint or test configuration"
            continue
        if v.code in {"invalid-syntax", "E902"} or v.name in {"syntax-error", "io-error"}:
            skipped[v.fingerprint] = "unparsable file"
            continue
        by_file.setdefault(v.path, []).append(v)
    tasks = []
    for path, found in by_file.items():
        task = Task(key=path, files=(path,), violations=tuple(found))
        stages = router.stages_for(task)
        if stages:
            tasks.append((router.stages.index(stages[0]), -len(found), path, task))
    tasks.sort(key=lambda t: t[:3])
    return Plan(violations=kept, tasks=[t[-1] for t in tasks], skipped=skipped)
