"""agents._ruff_batch: ruff's fixes for many files at once, in a scratch worktree of a real repo.

The batch must give every file the chain that proposing file by file gives (after the
run's format pass for format-clean files), with one ruff process per rule instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fixbot.agents import Request, RuffAgent, Task
from fixbot.sandbox import Ruff, sha256
from fixbot.sandbox._ruff import default_ruff
from fixbot.sandbox._worktree import WorktreePool
from tests.conftest import git, init_repo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from fixbot.sandbox import Patch

pytestmark = pytest.mark.anyio

SELECT = ("E711", "E722", "F401", "F841", "I001", "UP006", "W291")

# What each file holds when the batch is asked (a.py differs from the committed base,
# as a file with accepted fixes does), and the rules its chain fixes, in order.
CONTENT = {
    # Safe F401 and I001: one pass, in rule order.
    "pkg/a.py": "import sys\nimport os\nimport json\n\nprint(sys.argv, json)\n",
    # Safe F401, then the unsafe F841 leaves `os` unused: an F401 in a second pass.
    "pkg/b.py": (
        "import os\nimport re\nimport sys\n\n\ndef f():\n    x = os.sep\n    return sys.argv\n"
    ),
    # Safe W291 before unsafe E711; not format-clean (the trailing blanks).
    "pkg/c.py": "def g(x):   \n    return x == None\n",
    # UP006 leaves the typing import unused: F401 in a second pass.
    "pkg/d.py": "from typing import List\n\n\ndef h() -> List[int]:\n    return []\n",
    # Format-clean; ruff's F401 fix leaves a leading blank line the format pass removes.
    "pkg/e.py": "import os\n\nX = 1\n",
    # Nothing ruff can fix (E722), and nothing at all.
    "pkg/f.py": "def k():\n    try:\n        pass\n    except:\n        pass\n",
    "pkg/g.py": "Y = 2\n",
}
BASE = CONTENT | {"pkg/a.py": "import sys\n\nprint(sys.argv)\n"}
CHAINS = {
    "pkg/a.py": ["F401", "I001"],
    "pkg/b.py": ["F401", "F841", "F401"],
    "pkg/c.py": ["W291", "E711"],
    "pkg/d.py": ["UP006", "F401"],
    "pkg/e.py": ["F401"],
    "pkg/f.py": [],
    "pkg/g.py": [],
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed repo of several files with mixed violations."""
    files = {"pyproject.toml": "[tool.ruff]\nline-length = 100\n", "pkg/__init__.py": "", **BASE}
    return init_repo(tmp_path / "repo", files, venv=False)


@pytest.fixture
async def pool(repo: Path, tmp_path: Path) -> AsyncIterator[WorktreePool]:
    """One scratch worktree at the base commit."""
    base = git(repo, "rev-parse", "HEAD").strip()
    async with WorktreePool(repo, base, tmp_path / "wt", size=1) as pool:
        yield pool


@pytest.fixture
def agent() -> RuffAgent:
    """The ruff agent in the combined 'fix' mode."""
    return RuffAgent(default_ruff(), SELECT, modes=("fix",))


async def requests_for(repo: Path, paths: list[str]) -> list[Request]:
    """One 'fix' request per file, holding CONTENT."""
    ruff = Ruff(repo, SELECT)
    out = []
    for path in paths:
        data = CONTENT[path].encode()
        found = (await ruff.lint_source(path, data)).violations
        task = Task(key=path, files=(path,), violations=tuple(found))
        out.append(Request(task=task, mode="fix", content={path: data}, root=repo))
    return out


def final(chain: list[Patch], start: bytes) -> bytes:
    """The content at the end of a chain, checking that each step builds on the last."""
    content = start
    for i, step in enumerate(chain):
        assert step.parent == (chain[i - 1].id if i else None)
        (change,) = step.changes
        assert change.old_sha == sha256(content)
        assert change.new != content
        content = change.new
    return content


@pytest.fixture
async def batch(
    repo: Path, pool: WorktreePool, agent: RuffAgent
) -> tuple[list[Request], list[list[Patch]]]:
    """The requests for every file (in reverse path order) and the batch's chains."""
    requests = await requests_for(repo, sorted(CONTENT, reverse=True))
    return requests, await agent.propose_many(requests, pool.use)


class TestProposeMany:
    async def test_chains_in_request_order(
        self, batch: tuple[list[Request], list[list[Patch]]]
    ) -> None:
        """One chain per request, in the requests' order; each step names its file."""
        requests, chains = batch
        assert len(chains) == len(requests)
        for request, chain in zip(requests, chains, strict=True):
            assert all(step.files == request.task.files for step in chain)

    async def test_steps_in_order(self, batch: tuple[list[Request], list[list[Patch]]]) -> None:
        """Safe before unsafe, then by rule, in each pass; what a fix uncovered comes after."""
        requests, chains = batch
        got = {
            r.task.files[0]: [s.rules[0] for s in chain]
            for r, chain in zip(requests, chains, strict=True)
        }
        assert got == CHAINS

    async def test_one_rule_per_step(self, batch: tuple[list[Request], list[list[Patch]]]) -> None:
        """Each step fixes one rule, and its targets are violations of that rule."""
        _, chains = batch
        for chain in chains:
            for step in chain:
                assert len(step.rules) == 1
                assert step.targets
                assert {v.rule for v in step.targets} == set(step.rules)
                assert step.agent == "ruff"
        kinds = {s.rules[0]: s.kind for chain in chains for s in chain}
        assert kinds["F841"] == kinds["E711"] == "unsafe"
        assert kinds["I001"] == kinds["W291"] == kinds["UP006"] == "safe"

    async def test_targets_are_gone(
        self, repo: Path, batch: tuple[list[Request], list[list[Patch]]]
    ) -> None:
        """Every fixable violation is gone at the end of each chain; unfixable ones stay."""
        requests, chains = batch
        ruff = Ruff(repo, SELECT)
        for request, chain in zip(requests, chains, strict=True):
            path = request.task.files[0]
            end = final(chain, request.content[path])
            left = (await ruff.lint_source(path, end)).violations
            assert [v.rule for v in left] == (["E722"] if path == "pkg/f.py" else [])

    async def test_same_as_per_file(
        self, repo: Path, agent: RuffAgent, batch: tuple[list[Request], list[list[Patch]]]
    ) -> None:
        """Each file ends as `propose` leaves it, formatted where the file was format-clean."""
        requests, chains = batch
        ruff = Ruff(repo, SELECT)
        for request, chain in zip(requests, chains, strict=True):
            path = request.task.files[0]
            start = request.content[path]
            alone = await agent.propose(request)
            assert [s.rules for s in alone] == [s.rules for s in chain]
            expected = final(alone, start)
            if await ruff.format_source(path, start) == start:
                expected = await ruff.format_source(path, expected)
            assert final(chain, start) == expected, path
        # Both format a format-clean file after each step: the import's blank line goes.
        (e_request,) = [r for r in requests if r.task.files == ("pkg/e.py",)]
        (e_alone,) = await agent.propose(e_request)
        assert e_alone.changes[0].new == b"X = 1\n"
        (e_chain,) = chains[requests.index(e_request)]
        assert e_chain.changes[0].new == b"X = 1\n"

    async def test_format_clean_stays_clean(
        self, repo: Path, batch: tuple[list[Request], list[list[Patch]]]
    ) -> None:
        """A file that was ruff-format clean is clean after every step; others are not formatted."""
        requests, chains = batch
        ruff = Ruff(repo, SELECT)
        clean = 0
        for request, chain in zip(requests, chains, strict=True):
            path = request.task.files[0]
            start = request.content[path]
            if await ruff.format_source(path, start) != start:
                assert path == "pkg/c.py"
                # Not clean at the start: fixed, never formatted (the indent stays as it was).
                assert final(chain, start) == b"def g(x):\n    return x is None\n"
                continue
            for step in chain:
                new = step.changes[0].new
                assert await ruff.format_source(path, new) == new, step.id
                clean += 1
        assert clean == 8

    async def test_nothing_to_fix(self, batch: tuple[list[Request], list[list[Patch]]]) -> None:
        """Files with nothing ruff can fix get an empty chain."""
        requests, chains = batch
        empty = {r.task.files[0] for r, chain in zip(requests, chains, strict=True) if not chain}
        assert empty == {"pkg/f.py", "pkg/g.py"}

    async def test_scratch_reset_afterwards(
        self, repo: Path, pool: WorktreePool, batch: tuple[list[Request], list[list[Patch]]]
    ) -> None:
        """The pool's next user finds the base commit's content, not the batch's."""
        assert batch[1]
        async with pool.use() as tree:
            for path, text in BASE.items():
                assert tree.read(path) == text.encode(), path
            assert git(tree.path, "status", "--porcelain", "--untracked-files=all") == ""
        # The user's checkout was never the scratch tree.
        assert git(repo, "status", "--porcelain") == ""

    async def test_mode_safe_only_safe_fixes(self, repo: Path, pool: WorktreePool) -> None:
        """In mode 'safe' no unsafe fix is applied, and nothing it would uncover."""
        agent = RuffAgent(default_ruff(), SELECT)
        requests = [
            Request(task=r.task, mode="safe", content=r.content, root=r.root)
            for r in await requests_for(repo, ["pkg/b.py", "pkg/c.py"])
        ]
        chains = await agent.propose_many(requests, pool.use)
        assert [[s.rules[0] for s in chain] for chain in chains] == [["F401"], ["W291"]]
        assert all(s.kind == "safe" for chain in chains for s in chain)


async def test_noqa_is_honoured(repo: Path, pool: WorktreePool, agent: RuffAgent) -> None:
    """A finding a `# noqa` suppresses is never fixed, though the lint (as the proof's)
    ignores noqa; its lints are shared with the proof, keyed by content."""
    shared: dict = {}
    agent.lint_cache = shared
    path = "pkg/a.py"
    data = b"import os  # noqa: F401\nimport sys\n\nX = 1\n"
    task = Task(key=path, files=(path,), violations=())
    request = Request(task=task, mode="fix", content={path: data}, root=repo)
    (chain,) = await agent.propose_many([request], pool.use)
    assert [p.rules for p in chain] == [("F401",)]
    assert chain[-1].changes[0].new == b"import os  # noqa: F401\n\nX = 1\n"
    lint = await Ruff(repo, SELECT).lint_source(path, chain[-1].changes[0].new, ignore_noqa=True)
    assert shared[(path, sha256(chain[-1].changes[0].new))] == tuple(lint.violations)


# Files as a round after refusals finds them (in place of two files of the repo).
NARROWED = {
    # Three F401 (two of them in groups of their own), W291, and an unsafe E711.
    "pkg/f.py": "import os\nimport re\nimport json\n\n\ndef f(x):   \n    return x == None\n",
    # UP006 leaves the typing import unused; F401 on `sys` too.
    "pkg/g.py": ("from typing import List\nimport sys\n\n\ndef h() -> List[int]:\n    return []\n"),
}


class TestWhatARequestHoldsBack:
    """Requests narrowed down (fixes blocked, some wanted, fixes in groups) get, in a batch,
    the chains `propose` gives them file by file, as a chain proposed again does."""

    async def narrowed(self, repo: Path) -> list[Request]:
        ruff = Ruff(repo, SELECT)
        out = []
        for path, text in NARROWED.items():
            data = text.encode()
            found = (await ruff.lint_source(path, data)).violations
            by = {(v.rule, v.location.row): v.fingerprint for v in found}
            task = Task(key=path, files=(path,), violations=tuple(found))
            if path == "pkg/f.py":
                narrowing = {
                    "blocked": frozenset({by["E711", 7]}),
                    "groups": (frozenset({by["F401", 1]}), frozenset({by["F401", 2]})),
                }
            else:
                narrowing = {"wanted": frozenset({by["UP006", 5]})}
            out.append(Request(task=task, mode="fix", content={path: data}, root=repo, **narrowing))
        return out

    async def test_same_as_per_file(self, repo: Path, pool: WorktreePool, agent: RuffAgent) -> None:
        """Blocked fixes stay, unwanted ones are not asked for, groups go step by step."""
        requests = await self.narrowed(repo)
        chains = await agent.propose_many(requests, pool.use)
        ruff = Ruff(repo, SELECT)
        for request, chain in zip(requests, chains, strict=True):
            path = request.task.files[0]
            start = request.content[path]
            alone = await agent.propose(request)
            assert [s.rules for s in chain] == [s.rules for s in alone], path
            assert [{v.identity for v in s.targets} for s in chain] == [
                {v.identity for v in s.targets} for s in alone
            ]
            expected = final(alone, start)
            if await ruff.format_source(path, start) == start:
                expected = await ruff.format_source(path, expected)
            assert final(chain, start) == expected, path
        m, n = chains
        assert [s.rules[0] for s in m] == ["F401", "F401", "F401", "W291"]
        assert b"x == None" in final(m, requests[0].content["pkg/f.py"])
        # `sys` was not wanted; the import UP006 left unused goes (uncovered, not asked for).
        assert [s.rules[0] for s in n] == ["UP006", "F401"]
        assert b"import sys" in final(n, requests[1].content["pkg/g.py"])

    async def test_a_step_taken_before_is_not_taken_again(
        self, repo: Path, pool: WorktreePool, agent: RuffAgent, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Proposed again, the same chains come from the steps remembered: no ruff fix runs."""
        requests = await self.narrowed(repo)
        first = await agent.propose_many(requests, pool.use)
        fixes: list[object] = []
        real = Ruff.fix_files

        async def counted(self: Ruff, paths: list[str], rule: str, *, unsafe: bool) -> None:
            fixes.append((tuple(paths), rule))
            await real(self, paths, rule, unsafe=unsafe)

        monkeypatch.setattr(Ruff, "fix_files", counted)
        again = await agent.propose_many(requests, pool.use)
        assert [[s.changes for s in c] for c in again] == [[s.changes for s in c] for c in first]
        assert not [f for f in fixes if f[0]]

    async def test_fixes_whose_edits_overlap_wait_their_turn(
        self, repo: Path, pool: WorktreePool
    ) -> None:
        """With one PT027 held back, the others are applied from the JSON, one a step: each
        adds `import pytest`, so their edits overlap. None is dropped for waiting."""
        select = ("PT027",)
        path = "pkg/f.py"
        data = (
            b"import unittest\n\n\nclass T(unittest.TestCase):\n    def test_a(self):\n"
            b"        with self.assertRaises(ValueError):\n            int('a')\n"
            b"        with self.assertRaises(TypeError):\n            int(None)\n"
            b"        with self.assertRaises(KeyError):\n            {}['k']\n"
        )
        found = (await Ruff(repo, select).lint_source(path, data)).violations
        assert len(found) == 3
        request = Request(
            task=Task(key=path, files=(path,), violations=tuple(found)),
            mode="fix",
            content={path: data},
            root=repo,
            blocked=frozenset({found[0].fingerprint}),
        )
        agent = RuffAgent(default_ruff(), select, modes=("fix",))
        (chain,) = await agent.propose_many([request], pool.use)
        alone = await agent.propose(request)
        assert [len(s.targets) for s in chain] == [len(s.targets) for s in alone] == [1, 1]
        end = final(chain, data)
        assert end == final(alone, data)
        assert end.count(b"pytest.raises") == 2
        assert b"self.assertRaises(ValueError)" in end
