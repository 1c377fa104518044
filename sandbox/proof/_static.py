"""The checks that need no tests: compile, lint and format, judged file by file.

One compile run, one lint and one format check cover a whole batch, plus one
lint per depth of the longest chain for the content between steps; each
candidate is judged on its own files, a chain step by step (`_chain.py`). What
a file's content lints to is kept, keyed by its hash, so the content a later
candidate starts from is known.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING

from fixbot.sandbox._process import repo_env, run
from fixbot.sandbox._ruff import LintResult, Ruff
from fixbot.sandbox._types import Fault, Step, Verdict, sha256

from ._chain import ChainProblem, describe, judge_chain

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from fixbot.sandbox._isolation import Isolation
    from fixbot.sandbox._types import LintCache, Violation
    from fixbot.sandbox._worktree import Worktree

    from ._candidate import Candidate, ProofStats

_COMPILE = """
import json, sys
bad = {}
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as f:
            compile(f.read(), path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        bad[path] = f"{type(e).__name__}: {e}"
print(json.dumps(bad))
"""


REVEALING_AGENTS = frozenset({"ruff", "codemod"})


class StaticChecks:
    """Compile, lint and format checks of a batch: a part of the Prover."""

    def __init__(
        self,
        *,
        select: tuple[str, ...] | None,
        ruff_executable: str,
        python: str,
        isolation: Isolation,
        stats: ProofStats,
        lint_cache: LintCache | None = None,
        reveal: bool = True,
    ) -> None:
        self.select = select
        # Whether a fix may trade its finding for one it revealed (`_chain.revealed`): only
        # a deterministic agent's, whose rewrite is a known transformation. What is new on
        # the lines a model rewrote is the model's own doing.
        self.reveal = reveal
        # What the fixes of a candidate that passed revealed (step, finding), by `_digest`.
        self.revealed: dict[str, tuple[tuple[int, str], ...]] = {}
        self.ruff_executable = ruff_executable
        self.python = python
        self.isolation = isolation
        self.stats = stats
        # What content lints to (noqa ignored), by (path, hash); the ruff agent adds to it.
        self.lint: LintCache = lint_cache if lint_cache is not None else {}
        self.clean: dict[tuple[str, str], bool] = {}
        self.passed: set[tuple[str, str]] = set()  # (path, hash) that passed every check
        self.ok: set[str] = set()  # digests of candidates that passed every check

    def _ruff(self, tree: Worktree) -> Ruff:
        return Ruff(tree.path, self.select, self.ruff_executable)

    async def check(
        self, tree: Worktree, cands: Sequence[Candidate], ground: Mapping[str, bytes]
    ) -> dict[str, Verdict]:
        ruff = self._ruff(tree)
        tree.write(ground)
        out: dict[str, Verdict] = {}
        for cand in cands:
            moved = [p for p, d in cand.before.items() if tree.read(p) != d]
            if moved:
                out[cand.key] = rejected(cand, "conflict", "changed under it: " + ", ".join(moved))
        cands = [c for c in cands if c.key not in out and not self._checked(c)]
        if not cands:
            return out
        await self._learn_before(tree, ruff, cands)
        await self._learn_steps(tree, ruff, cands)
        for cand in cands:
            tree.write(cand.after)
        paths = sorted(p for c in cands for p in c.after)
        broken = await self._compile(tree, paths)
        missing = [p for p in paths if (p, sha256(tree.read(p))) not in self.lint]
        lint = await ruff.lint(missing, ignore_noqa=True) if missing else LintResult([])
        self.stats.lint_runs += bool(missing)
        after = lint.by_path()
        for path in missing:
            self.lint[(path, sha256(tree.read(path)))] = tuple(after.get(path, []))
        unformatted = await ruff.unformatted(paths)
        for cand in cands:
            verdict = self._judge(cand, broken, lint.failed, unformatted)
            if verdict is not None:
                out[cand.key] = verdict
                continue
            for path, data in cand.after.items():
                key = (path, sha256(data))
                self.clean[key] = path not in unformatted
                self.passed.add(key)
            self.ok.add(_digest(cand))
        return out

    def _judge(
        self,
        cand: Candidate,
        broken: Mapping[str, str],
        failed: Sequence[str],
        unformatted: set[str],
    ) -> Verdict | None:
        """One candidate's static refusal, or None when it passes."""
        chain, shown = self._chain_problem(cand)
        problem = _first(
            [
                ("compile", "; ".join(broken[p] for p in cand.after if p in broken)),
                ("lint", "; ".join(f for f in failed if any(p in f for p in cand.after))),
                ("lint", chain.detail if chain else ""),
                (
                    "format",
                    ", ".join(
                        p
                        for p, d in cand.before.items()
                        if self.clean.get((p, sha256(d))) and p in unformatted
                    ),
                ),
            ]
        )
        if not problem:
            if shown:
                self.revealed[_digest(cand)] = tuple(
                    (int((v.origin or "+0")[1:]), describe(v)) for v in shown
                )
            return None
        reason, detail = problem
        if reason == "format":
            detail = f"no longer ruff-format clean: {detail}"
        # A chain's lint refusal is pinned on the steps at fault; any other static
        # refusal on the chain's last step, which left the content.
        if chain is not None and detail == chain.detail:
            return rejected(cand, reason, detail, chain.fresh, chain.faults)
        return rejected(cand, reason, detail, (), (Fault(blame=_last(cand), detail=detail),))

    def revealed_of(self, cand: Candidate) -> tuple[tuple[int, str], ...]:
        """The findings a candidate that passed here revealed, each with its step."""
        return self.revealed.get(_digest(cand), ())

    def _chain_problem(self, cand: Candidate) -> tuple[ChainProblem | None, tuple[Violation, ...]]:
        """Why lint refuses a candidate's chains, or what they revealed."""

        def lint_of(path: str, data: bytes) -> tuple[Violation, ...]:
            return self.lint[(path, sha256(data))]

        by_path: dict[str, list[Step]] = {}
        steps = steps_of(cand, lint_of)
        for step in steps:
            by_path.setdefault(step.path, []).append(step)
        named = Counter(v.fingerprint for step in steps for v in step.targets)
        # The gate's targets only say where its fixes went: one found on content a
        # chain's earlier step made is not in the base, and needs no finding there.
        ghosts = sorted(
            (Counter(cand.targets) - named) if not cand.steps and not cand.accepted_chain else ()
        )
        if ghosts:
            detail = "targeted violation not found in the content it starts from: " + ", ".join(
                ghosts
            )
            return ChainProblem(detail, (), (Fault(blame=tuple(ghosts), detail=detail),)), ()
        shown: list[Violation] = []
        for chain in by_path.values():
            reveal = self.reveal and cand.agent in REVEALING_AGENTS
            problem, found = judge_chain(chain, lint_of, reveal=reveal)
            if problem is not None:
                return problem, ()
            shown += found
        return None, tuple(shown)

    def _checked(self, cand: Candidate) -> bool:
        """Whether an accepted chain (the gate's candidate) has only content that passed here.

        Each check reads one file at a time, and every step to that content kept
        its file compiling, format-clean if it was, and without a new finding of any
        rule but one a fix revealed: so the content holds against the base too, and
        needs no second look. Content not seen here (a merge of shards' bundles, a
        group of `--split-by`) is judged from the base in one step, its accepted
        fixes' findings as targets.
        """
        if _digest(cand) in self.ok:
            return True  # this very chain passed here (checked before its round's tests)
        return cand.accepted_chain and all(
            (path, sha256(data)) in self.passed for path, data in cand.after.items()
        )

    async def _learn_before(self, tree: Worktree, ruff: Ruff, cands: Sequence[Candidate]) -> None:
        """Lint (noqa ignored) and format state of the content each candidate replaces."""
        missing = sorted(
            {p for c in cands for p, d in c.before.items() if (p, sha256(d)) not in self.lint}
        )
        if not missing:
            return
        lint = await ruff.lint(missing, ignore_noqa=True)
        self.stats.lint_runs += 1
        found = lint.by_path()
        unformatted = await ruff.unformatted(missing)
        for path in missing:
            key = (path, sha256(tree.read(path)))
            self.lint[key] = tuple(found.get(path, []))
            self.clean[key] = path not in unformatted

    async def _learn_steps(self, tree: Worktree, ruff: Ruff, cands: Sequence[Candidate]) -> None:
        """Lint (noqa ignored) the content between the steps of every chain.

        One lint per depth covers every chain of the batch: the k-th steps of
        different files are written side by side. Content seen before is not linted again.
        """
        layers: list[dict[str, bytes]] = []
        for cand in cands:
            for depth, step in enumerate(cand.steps[:-1]):
                if len(layers) <= depth:
                    layers.append({})
                if (step.path, sha256(step.after)) not in self.lint:
                    layers[depth][step.path] = step.after
        for layer in layers:
            if not layer:
                continue
            tree.write(layer)
            found = (await ruff.lint(sorted(layer), ignore_noqa=True)).by_path()
            self.stats.lint_runs += 1
            for path, data in layer.items():
                self.lint[(path, sha256(data))] = tuple(found.get(path, []))

    async def _compile(self, tree: Worktree, paths: Sequence[str]) -> dict[str, str]:
        with self.isolation.private_tmp() as tmp:
            done = await run(
                self.isolation.command([self.python, "-I", "-c", _COMPILE, *paths], tree.path, tmp),
                cwd=tree.path,
                env=repo_env({"TMPDIR": str(tmp)}),
                timeout=300,
            )
        try:
            return json.loads(done.stdout or b"{}")
        except json.JSONDecodeError:
            return dict.fromkeys(paths, done.output[-500:] or "the interpreter failed")


def steps_of(
    cand: Candidate, lint_of: Callable[[str, bytes], Sequence[Violation]]
) -> tuple[Step, ...]:
    """A candidate's steps; one per file (from `before` to `after`) where it names none."""
    if cand.steps:
        return cand.steps
    out = []
    wanted = Counter(cand.targets)
    for path, before in cand.before.items():
        targets = []
        for v in lint_of(path, before):
            if wanted[v.fingerprint] > 0:
                wanted[v.fingerprint] -= 1
                targets.append(v)
        out.append(Step(path, before, cand.after[path], tuple(targets)))
    return tuple(out)


def _digest(cand: Candidate) -> str:
    """What a static verdict depends on: the contents, the steps and their targets."""
    parts = [cand.agent]  # what a fix may reveal depends on who made it
    parts += [f"{p}:{sha256(d)}>{sha256(cand.after[p])}" for p, d in sorted(cand.before.items())]
    parts += [f"{fp}*{n}" for fp, n in sorted(cand.targets.items())]
    for step in cand.steps:
        parts.append(f"{step.path}:{sha256(step.before)}>{sha256(step.after)}")
        parts += sorted(v.fingerprint for v in step.targets)
    return sha256("\n".join(parts).encode())


def _last(cand: Candidate) -> tuple[str, ...]:
    if not cand.steps:
        return ()
    return tuple(sorted({v.identity for v in cand.steps[-1].targets if not v.uncovered}))


def rejected(
    cand: Candidate,
    reason: str,
    detail: str,
    new_violations: tuple[str, ...] = (),
    faults: tuple[Fault, ...] = (),
) -> Verdict:
    return Verdict(
        patch_id=cand.key,
        accepted=False,
        reason=reason,
        detail=detail,
        new_violations=new_violations,
        faults=faults,
    )


def _first(checks: list[tuple[str, str]]) -> tuple[str, str] | None:
    return next(((r, d) for r, d in checks if d), None)
