"""The ruff agent over many files at once: one ruff process per rule, in a scratch worktree.

Proposing file by file costs two or three ruff processes per rule per file
(about 15 ms each): minutes on a monorepo. Here every file of the batch is
written into one scratch worktree (so ruff finds the repo's config as usual),
and each rule is fixed across all of them by one `ruff check --fix-only`; the
files it changed become that rule's steps. A format pass follows each rule for
files that were format-clean, and a lint of the files it changed finds what the
fix uncovered (an import left unused); the loop goes on until nothing is left.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING

import anyio

from fixbot.sandbox import Ruff, carry_origins, sha256, with_identity

from ._ruff_steps import (
    STEPS_KEPT,
    apply_fixes,
    gone_of,
    grouped,
    made_too_long,
    step_order,
    wanted,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from fixbot.sandbox import LintCache, Patch, Violation, Worktree

    from ._protocol import Request
    from ._ruff_steps import StepMaker


async def _lint(ruff: Ruff, paths: list[str]) -> dict[str, list[Violation]]:
    # No paths would mean the whole checkout to ruff.
    return {p: [] for p in paths} | (await ruff.lint(paths)).by_path() if paths else {}


async def _lint_all(
    ruff: Ruff, tree: Worktree, paths: list[str], shared: LintCache | None
) -> dict[str, list[Violation]]:
    """Lint with noqa ignored, as the proof does, and share what it finds with the proof.

    A lint is a function of ruff, the config, the path and the content: the proof
    then finds the content between this chain's steps linted already.
    """
    if not paths:
        return {}
    result = await ruff.lint(paths, ignore_noqa=True)
    found: dict[str, list[Violation]] = {p: [] for p in paths} | result.by_path()
    if shared is not None:
        for path in paths:
            if not any(path in f for f in result.failed):
                shared[(path, sha256(tree.read(path)))] = tuple(found[path])
    return {p: [with_identity(v, v.fingerprint) for v in vs] for p, vs in found.items()}


Todo = dict[tuple[tuple[int, str], bool], dict[str, list["Violation"]]]


def _todo(
    agent: StepMaker,
    requests: dict[str, Request],
    present: dict[str, list[Violation]],
    blocked: dict[str, set[str]],
) -> Todo:
    """(order, unsafe) -> file -> the violations a step of that rule would fix there.

    `blocked` holds, per file, what is never offered: fixes that failed, and
    findings a `# noqa` suppresses (the lint here ignores noqa, as the proof's does).
    """
    todo: Todo = defaultdict(lambda: defaultdict(list))
    for path, found in present.items():
        request = requests[path]
        for v in found:
            # Uncovered by an earlier step, or asked for by the mode (and the request).
            if (
                v.identity not in blocked[path]
                and agent.allowed(v, request.mode)
                and (v.uncovered or wanted(v, request))
            ):
                todo[(step_order(v), v.applicability == "unsafe")][path].append(v)
    return todo


def _ruff_fixes_just(
    chosen: list[Violation], found: list[Violation], unsafe: bool, suppressed: set[str]
) -> bool:
    """Whether ruff's own fix of the rule in this file fixes exactly `chosen`: every
    finding of the rule it would fix (noqa honoured) is chosen."""
    rule = chosen[0].rule
    takes = {"safe", "unsafe"} if unsafe else {"safe"}
    ids = {v.identity for v in chosen}
    return all(
        v.identity in ids or v.identity in suppressed
        for v in found
        if v.rule == rule and v.applicability in takes
    )


async def _wrap_long_lines(
    ruff: Ruff,
    tree: Worktree,
    paths: list[str],
    files: dict[str, list[Violation]],
    present: dict[str, list[Violation]],
    after: dict[str, list[Violation]],
) -> list[str]:
    """Format the lines this step made too long, in files not format-clean; the files changed.

    Files side by side, two at a time: one file's ranges take a ruff process each.
    """
    out = []
    limiter = anyio.CapacityLimiter(2)

    async def wrap(path: str, rows: list[int]) -> None:
        async with limiter:
            data = tree.read(path)
            wrapped = await ruff.format_lines(path, data, rows)
        if wrapped != data:
            tree.write({path: wrapped})
            out.append(path)

    async with anyio.create_task_group() as tg:
        for path in paths:
            fixed = gone_of(files[path], present[path], after[path])
            if rows := made_too_long(present[path], after[path], fixed):
                tg.start_soon(wrap, path, rows)
    return sorted(out)


async def propose_many(
    agent: StepMaker,
    requests: list[Request],
    scratch: Callable[[], AbstractAsyncContextManager[Worktree]],
) -> list[list[Patch]]:
    """Chains of one-rule steps for every request, in the requests' order.

    Rules go one at a time, the first in step order among what is left anywhere:
    each is fixed across every file that has it, and those files are linted again
    at once, so the next step's targets are found in the content it starts from
    (what the proof checks them against) and what a fix uncovered is fixed next.
    A request may hold fixes back (`blocked`), ask for some only (`wanted`) or in
    groups (`groups`, one step each, as `RuffAgent.propose` takes them): where a
    step takes only some of a rule's fixes in a file, their edits are applied from
    ruff's JSON instead of ruff's fix loop. A step already taken (a chain proposed
    again after a static refusal) is not computed again.
    """
    by_path = {r.task.files[0]: r for r in requests}
    paths = sorted(by_path)
    current = {p: by_path[p].content[p] for p in paths}
    chains: dict[str, list[Patch]] = defaultdict(list)
    blocked: dict[str, set[str]] = {p: set(by_path[p].blocked) for p in paths}
    suppressed: dict[str, set[str]] = defaultdict(set)
    visits: Counter[tuple[str, tuple[tuple[int, str], bool], int]] = Counter()
    async with scratch() as tree:
        tree.write(current)
        ruff = Ruff(tree.path, agent.select, agent.ruff_executable)
        clean = set(paths) - await ruff.unformatted(paths)
        present = await _lint_all(ruff, tree, paths, agent.lint_cache)
        # Only a file that says "noqa" or "ruff:" can suppress a finding.
        marked = [p for p in paths if b"noqa" in current[p] or b"ruff:" in current[p]]
        honoured = await _lint(ruff, marked)
        for path in marked:
            # Findings a noqa suppresses were never asked for: never offered.
            kept = Counter(v.fingerprint for v in honoured[path])
            suppressed[path] = {v.fingerprint for v in present[path] if kept[v.fingerprint] == 0}
            blocked[path] |= suppressed[path]
        while todo := _todo(agent, by_path, present, blocked):
            key, todo_files = min(todo.items())
            (_, rule), unsafe = key
            files: dict[str, list[Violation]] = {}
            for path, found in todo_files.items():
                chosen, group = grouped(found, by_path[path].groups)
                visits[path, key, group] += 1
                if visits[path, key, group] > agent.max_iterations:
                    # Bounded, as ruff's own fix loop is: a rule that keeps coming back stops.
                    blocked[path] |= {v.identity for v in chosen}
                else:
                    files[path] = chosen
            if not files:
                continue
            targets = sorted(files)
            after, whole = await _step(
                agent, ruff, tree, (rule, unsafe), files, present, clean, suppressed
            )
            for path in targets:
                fixed = gone_of(files[path], present[path], after.get(path, present[path]))
                if path in whole or not fixed:
                    # What ruff's fix loop left in place is never offered again. Edits
                    # applied from the JSON wait their turn where they overlap (the
                    # import PT027 adds for each fix): the next step finds them again.
                    left = {v.identity for v in files[path]} - {v.identity for v in fixed}
                    blocked[path] |= left
                if path not in after:
                    continue
                if not fixed:
                    tree.write({path: current[path]})  # a change that fixed nothing asked for
                    continue
                request, chain = by_path[path], chains[path]
                new = tree.read(path)
                chain.append(
                    agent.step(
                        path, request, len(chain) + 1, rule, tuple(fixed), current[path], new, chain
                    )
                )
                current[path] = new
                present[path] = carry_origins(present[path], after[path], fixed, len(chain))
    return [chains.get(r.task.files[0], []) for r in requests]


async def _step(
    agent: StepMaker,
    ruff: Ruff,
    tree: Worktree,
    fixing: tuple[str, bool],
    files: dict[str, list[Violation]],
    present: dict[str, list[Violation]],
    clean: set[str],
    suppressed: dict[str, set[str]],
) -> tuple[dict[str, list[Violation]], set[str]]:
    """One rule's fixes in every file of `files`, left in the tree: the lint of each file
    the step changed, and the files where ruff's own fix loop took all it asked for (in
    the others the chosen fixes' edits were applied). One ruff process for the rule's
    fix, one format, one lint."""
    rule, unsafe = fixing
    before = {p: tree.read(p) for p in files}
    whole = {p for p in files if _ruff_fixes_just(files[p], present[p], unsafe, suppressed[p])}
    memo = {
        p: (rule, unsafe, p in clean, sha256(before[p]), *sorted(v.fingerprint for v in files[p]))
        for p in files
    }
    after: dict[str, list[Violation]] = {}
    for path in [p for p in files if (p, memo[p]) in agent.steps_taken]:
        data, found = agent.steps_taken[path, memo[path]]
        tree.write({path: data})
        if data != before[path]:
            after[path] = found
    todo = [p for p in files if (p, memo[p]) not in agent.steps_taken]
    await ruff.fix_files([p for p in todo if p in whole], rule, unsafe=unsafe)
    tree.write({p: apply_fixes(before[p], files[p]) for p in todo if p not in whole})
    await ruff.format_files([p for p in todo if p in clean])
    changed = [p for p in todo if tree.read(p) != before[p]]
    fresh = await _lint_all(ruff, tree, changed, agent.lint_cache)
    unclean = [p for p in changed if p not in clean]
    if wrapped := await _wrap_long_lines(ruff, tree, unclean, files, present, fresh):
        fresh |= await _lint_all(ruff, tree, wrapped, agent.lint_cache)
    if len(agent.steps_taken) > STEPS_KEPT:
        agent.steps_taken.clear()
    for path in todo:
        agent.steps_taken[path, memo[path]] = (tree.read(path), fresh.get(path, present[path]))
    return after | fresh, whole
