"""The checks that need no tests: compile, lint and format, judged file by file.

One compile run, one lint and one format check cover a whole batch; each
candidate is judged on its own files. What a file's content lints to is kept,
keyed by its hash, so the content a later candidate starts from is known.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ._judge import lint_problem
from ._process import repo_env, run
from ._types import Verdict, sha256

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._isolation import Isolation
    from ._prove import Candidate, ProofStats
    from ._ruff import Ruff
    from ._types import Violation
    from ._worktree import Worktree

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


class StaticChecks:
    """Compile, lint and format checks of a batch, for the Prover."""

    python: str
    isolation: Isolation
    stats: ProofStats
    _lint: dict[tuple[str, str], tuple[Violation, ...]]
    _clean: dict[tuple[str, str], bool]
    _passed: set[tuple[str, str]]  # (path, hash) of content that passed every check here

    def _ruff(self, tree: Worktree) -> Ruff:
        raise NotImplementedError

    async def _static(
        self, tree: Worktree, cands: Sequence[Candidate], ground: Mapping[str, bytes]
    ) -> dict[str, Verdict]:
        ruff = self._ruff(tree)
        tree.write(ground)
        out: dict[str, Verdict] = {}
        for cand in cands:
            moved = [p for p, d in cand.before.items() if sha256(tree.read(p)) != sha256(d)]
            if moved:
                out[cand.key] = rejected(cand, "conflict", "changed under it: " + ", ".join(moved))
        cands = [c for c in cands if c.key not in out and not self._checked(c)]
        if not cands:
            return out
        await self._learn_before(tree, ruff, cands)
        for cand in cands:
            tree.write(cand.after)
        paths = sorted(p for c in cands for p in c.after)
        broken = await self._compile(tree, paths)
        lint = await ruff.lint(paths, ignore_noqa=True)
        self.stats.lint_runs += 1
        after = lint.by_path()
        unformatted = await ruff.unformatted(paths)
        for cand in cands:
            lint_detail, fresh = lint_problem(
                [v for p, d in cand.before.items() for v in self._lint[(p, sha256(d))]],
                [v for p in cand.after for v in after.get(p, [])],
                cand.targets,
            )
            problem = _first(
                [
                    ("compile", "; ".join(broken[p] for p in cand.after if p in broken)),
                    ("lint", "; ".join(f for f in lint.failed if any(p in f for p in cand.after))),
                    ("lint", lint_detail),
                    (
                        "format",
                        ", ".join(
                            p
                            for p, d in cand.before.items()
                            if self._clean.get((p, sha256(d))) and p in unformatted
                        ),
                    ),
                ]
            )
            if problem:
                reason, detail = problem
                if reason == "format":
                    detail = f"no longer ruff-format clean: {detail}"
                out[cand.key] = rejected(cand, reason, detail, fresh if reason == "lint" else ())
                continue
            for path, data in cand.after.items():
                key = (path, sha256(data))
                self._lint[key] = tuple(after.get(path, []))
                self._clean[key] = path not in unformatted
                self._passed.add(key)
        return out

    def _checked(self, cand: Candidate) -> bool:
        """Whether an accepted chain (the gate's candidate) has only content that passed here.

        Each check reads one file at a time, and every step to that content kept
        its file compiling, format-clean if it was, and without a new finding of any
        rule: so the content holds against the base too, and needs no second look.
        """
        return cand.accepted_chain and all(
            (path, sha256(data)) in self._passed for path, data in cand.after.items()
        )

    async def _learn_before(self, tree: Worktree, ruff: Ruff, cands: Sequence[Candidate]) -> None:
        """Lint (noqa ignored) and format state of the content each candidate replaces."""
        missing = sorted(
            {p for c in cands for p, d in c.before.items() if (p, sha256(d)) not in self._lint}
        )
        if not missing:
            return
        lint = await ruff.lint(missing, ignore_noqa=True)
        self.stats.lint_runs += 1
        found = lint.by_path()
        unformatted = await ruff.unformatted(missing)
        for path in missing:
            key = (path, sha256(tree.read(path)))
            self._lint[key] = tuple(found.get(path, []))
            self._clean[key] = path not in unformatted

    async def _compile(self, tree: Worktree, paths: Sequence[str]) -> dict[str, str]:
        done = await run(
            [*self.isolation.wrapper, self.python, "-I", "-c", _COMPILE, *paths],
            cwd=tree.path,
            env=repo_env(),
            timeout=300,
        )
        try:
            return json.loads(done.stdout or b"{}")
        except json.JSONDecodeError:
            return dict.fromkeys(paths, done.output[-500:] or "the interpreter failed")


def rejected(
    cand: Candidate, reason: str, detail: str, new_violations: tuple[str, ...] = ()
) -> Verdict:
    return Verdict(
        patch_id=cand.key,
        accepted=False,
        reason=reason,
        detail=detail,
        new_violations=new_violations,
    )


def _first(checks: list[tuple[str, str]]) -> tuple[str, str] | None:
    return next(((r, d) for r, d in checks if d), None)
