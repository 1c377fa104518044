"""The ruff agent over many files at once: one ruff process per rule, in a scratch worktree.

Proposing file by file costs two or three ruff processes per rule per file
(about 15 ms each): minutes on a monorepo. Here every file of the batch is
written into one scratch worktree (so ruff finds the repo's config as usual),
and each rule is fixed across all of them by one `ruff check --fix-only`; the
files it changed become that rule's steps. A format pass follows each rule for
files that were format-clean. A final lint per pass finds what the fixes
uncovered (an import left unused), and the loop goes on until nothing is left.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from sandbox import Ruff
from sandbox._ruff import fix_args

from ._ruff_agent import WANTED, step_order

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from contextlib import AbstractAsyncContextManager

    from sandbox import Patch, Violation, Worktree

    from ._protocol import Request
    from ._ruff_agent import RuffAgent

# Files per ruff command line: far below ARG_MAX even with long paths.
CHUNK = 500


def _chunks(paths: Sequence[str]) -> list[list[str]]:
    return [list(paths[i : i + CHUNK]) for i in range(0, len(paths), CHUNK)]


async def _fix(ruff: Ruff, rule: str, unsafe: bool, paths: list[str]) -> None:
    args = [*fix_args(unsafe=unsafe), "--select", rule]
    for chunk in _chunks(paths):
        await ruff._run([*args, "--force-exclude", "--", *chunk])  # noqa: SLF001


async def _format(ruff: Ruff, paths: list[str]) -> None:
    for chunk in _chunks(paths):
        await ruff._run(  # noqa: SLF001
            ["format", "--no-cache", "--force-exclude", "--", *chunk], parse_errors_ok=True
        )


async def _lint(ruff: Ruff, paths: list[str]) -> dict[str, list[Violation]]:
    found: dict[str, list[Violation]] = {p: [] for p in paths}
    for chunk in _chunks(paths):
        found.update((await ruff.lint(chunk)).by_path())
    return found


Todo = dict[tuple[tuple[bool, str], bool], dict[str, list["Violation"]]]


def _todo(
    agent: RuffAgent,
    mode: str,
    present: dict[str, list[Violation]],
    start: dict[str, Counter[str]],
) -> Todo:
    """(order, unsafe) -> file -> the violations a step of that rule would fix there."""
    todo: Todo = defaultdict(lambda: defaultdict(list))
    for path, found in present.items():
        new = Counter(v.fingerprint for v in found) - start[path]
        for v in found:
            # Uncovered by an earlier step (new) or asked for by the mode.
            if agent.allowed(v, mode) and (
                new[v.fingerprint] > 0 or v.applicability in WANTED[mode]
            ):
                todo[(step_order(v), v.applicability == "unsafe")][path].append(v)
    return todo


async def propose_many(
    agent: RuffAgent,
    requests: list[Request],
    scratch: Callable[[], AbstractAsyncContextManager[Worktree]],
) -> list[list[Patch]]:
    """Chains of one-rule steps for every request, in the requests' order."""
    mode = requests[0].mode
    by_path = {r.task.files[0]: r for r in requests}
    paths = sorted(by_path)
    current = {p: by_path[p].content[p] for p in paths}
    chains: dict[str, list[Patch]] = defaultdict(list)
    async with scratch() as tree:
        tree.write(current)
        ruff = Ruff(tree.path, agent.select, agent.ruff_executable)
        clean = set(paths) - await ruff.unformatted(paths)
        present = await _lint(ruff, paths)
        start = {p: Counter(v.fingerprint for v in vs) for p, vs in present.items()}
        for _ in range(agent.max_iterations):
            todo = _todo(agent, mode, present, start)
            if not todo:
                break
            steps: list[tuple[str, str, list[Violation], bytes, bytes]] = []
            for ((_, rule), unsafe), files in sorted(todo.items()):
                targets = sorted(files)
                before = {p: current[p] for p in targets}
                await _fix(ruff, rule, unsafe, targets)
                await _format(ruff, [p for p in targets if p in clean])
                for path in targets:
                    after = tree.read(path)
                    if after != before[path]:
                        steps.append((path, rule, files[path], before[path], after))
                        current[path] = after
            if not steps:
                break
            changed = sorted({s[0] for s in steps})
            present.update(await _lint(ruff, changed))
            for path, rule, wanted, before, after in steps:
                still = Counter(v.fingerprint for v in present[path])
                fixed = tuple(v for v in wanted if still[v.fingerprint] == 0)
                request, chain = by_path[path], chains[path]
                chain.append(
                    agent.step(path, request, len(chain) + 1, rule, fixed, before, after, chain)
                )
    return [chains.get(r.task.files[0], []) for r in requests]
