"""agents._ruff_agent: ruff's own fixes as chains of one-rule patches, with the real ruff."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pytest

from fixbot.agents import Request, RuffAgent, Task
from fixbot.sandbox import sha256
from fixbot.sandbox._ruff import Ruff, default_ruff
from fixbot.sandbox._text import BOM

if TYPE_CHECKING:
    from pathlib import Path

    from fixbot.sandbox import Patch, Violation

pytestmark = pytest.mark.anyio

SELECT = ("E711", "F401", "F841", "I001", "UP006", "W291")
PATH = "pkg/mod.py"

# Safe fixes: I001, UP006 (List -> list, which then leaves the typing import unused:
# a new F401), W291. Unsafe: F841 and E711.
MIXED = (
    "import sys\n"
    "import os\n"
    "from typing import List\n"
    "\n"
    "\n"
    "def f(x):\n"
    "    y = 1\n"
    "    if x == None:\n"
    "        return os.sep\n"
    "    values: List[int] = []\n"
    "    return values, sys.argv   \n"
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A repo folder whose ruff config the agent discovers."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")
    return tmp_path


@pytest.fixture
def agent() -> RuffAgent:
    """The agent with the pinned ruff and this module's selection."""
    return RuffAgent(default_ruff(), SELECT)


async def lint(root: Path, content: bytes) -> list[Violation]:
    """ruff's findings in `content`, as the agent sees them."""
    return (await Ruff(root, SELECT).lint_source(PATH, content)).violations


async def request(
    root: Path,
    content: bytes,
    mode: str = "safe",
    *,
    wanted: frozenset[str] | None = None,
    blocked: frozenset[str] = frozenset(),
) -> Request:
    """A request for pkg/mod.py holding `content`."""
    (root / PATH).write_bytes(content)
    task = Task(key=PATH, files=(PATH,), violations=tuple(await lint(root, content)))
    return Request(
        task=task,
        mode=mode,
        content={PATH: content},
        root=root,
        wanted=wanted,
        blocked=blocked,
    )


def assert_chain(patches: list[Patch], start: bytes) -> bytes:
    """Each patch has one rule, builds on the one before, and names its parent; the end."""
    content = start
    for i, patch in enumerate(patches):
        assert patch.parent == (patches[i - 1].id if i else None)
        assert len(patch.rules) == 1
        assert patch.agent == "ruff"
        assert patch.files == (PATH,)
        assert {v.rule for v in patch.targets} == set(patch.rules)
        (change,) = patch.changes
        assert change.path == PATH
        assert change.old_sha == sha256(content)
        assert change.new != content
        content = change.new
    assert len({p.id for p in patches}) == len(patches)
    return content


class TestSafeMode:
    async def test_fixes_every_safe_fix(self, root: Path, agent: RuffAgent) -> None:
        """A chain of one-rule steps that leaves no safe fix; unsafe ones stay."""
        start = MIXED.encode()
        patches = await agent.propose(await request(root, start))
        end = assert_chain(patches, start)
        left = await lint(root, end)
        assert [v.rule for v in left if v.applicability == "safe"] == []
        assert sorted(v.rule for v in left) == ["E711", "F841"]
        assert {p.kind for p in patches} == {"safe"}
        # Fixed in rule order, the F401 that UP006 caused right after it.
        assert [p.rules[0] for p in patches] == ["I001", "UP006", "F401", "W291"]
        assert end == (
            b"import os\nimport sys\n\n\ndef f(x):\n    y = 1\n    if x == None:\n"
            b"        return os.sep\n    values: list[int] = []\n    return values, sys.argv\n"
        )

    async def test_steps_are_by_rule(self, root: Path, agent: RuffAgent) -> None:
        """Both unused imports go in one F401 step; targets are the violations it removed."""
        start = b"import os\nimport sys\n\nX = 1\n"
        patches = await agent.propose(await request(root, start))
        assert [p.rules for p in patches] == [("F401",)]
        assert len(patches[0].targets) == 2
        # The file was format-clean, so the step is formatted as the proof will want it,
        # and the next step's targets are found in exactly that content.
        assert patches[0].changes[0].new == b"X = 1\n"
        assert patches[0].id == f"{PATH}@safe.1.1"

    async def test_nothing_to_fix(self, root: Path, agent: RuffAgent) -> None:
        """A clean file, or one with only unsafe fixes in safe mode: no patches."""
        assert await agent.propose(await request(root, b"X = 1\n")) == []
        only_unsafe = b"def f():\n    y = 1\n"
        assert await agent.propose(await request(root, only_unsafe)) == []


class TestUnsafeMode:
    async def test_fixes_unsafe_ones(self, root: Path, agent: RuffAgent) -> None:
        """After the safe stage, unsafe mode fixes F841 and E711 too."""
        safe = await agent.propose(await request(root, MIXED.encode()))
        after_safe = safe[-1].changes[0].new
        patches = await agent.propose(await request(root, after_safe, mode="unsafe"))
        end = assert_chain(patches, after_safe)
        assert await lint(root, end) == []
        assert {p.rules[0] for p in patches} == {"E711", "F841"}
        assert {p.kind for p in patches} == {"unsafe"}
        assert b"x is None" in end

    async def test_cascade_is_followed(self, root: Path, agent: RuffAgent) -> None:
        """Removing an unused variable leaves its import unused: F401 is fixed in the same chain."""
        start = b"import os\n\n\ndef f():\n    sep = os.sep\n    return 1\n"
        before = await lint(root, start)
        assert [v.rule for v in before] == ["F841"]
        wanted = frozenset(v.fingerprint for v in before)
        patches = await agent.propose(await request(root, start, mode="unsafe", wanted=wanted))
        end = assert_chain(patches, start)
        assert [p.rules for p in patches] == [("F841",), ("F401",)]
        assert end == b"def f():\n    return 1\n"
        assert await lint(root, end) == []


class TestWantedAndBlocked:
    async def test_wanted_limits_to_fingerprints(self, root: Path, agent: RuffAgent) -> None:
        """Only the wanted F401 is fixed; the other of the same rule is left alone."""
        start = b"import os\nimport sys\n\nX = 1\n"
        found = {v.message: v for v in await lint(root, start)}
        os_import = found["`os` imported but unused"]
        patches = await agent.propose(
            await request(root, start, wanted=frozenset({os_import.fingerprint}))
        )
        assert len(patches) == 1
        assert [v.fingerprint for v in patches[0].targets] == [os_import.fingerprint]
        end = assert_chain(patches, start)
        assert end == b"import sys\n\nX = 1\n"

    async def test_blocked_never_fixed(self, root: Path, agent: RuffAgent) -> None:
        """A blocked fingerprint is left as it is; everything else is still fixed."""
        start = b"import os\nimport sys\n\nX = 1   \n"
        found = {v.message: v for v in await lint(root, start)}
        blocked = found["`sys` imported but unused"].fingerprint
        patches = await agent.propose(await request(root, start, blocked=frozenset({blocked})))
        end = assert_chain(patches, start)
        assert end == b"import sys\n\nX = 1\n"
        assert [p.rules for p in patches] == [("F401",), ("W291",)]
        assert all(v.fingerprint != blocked for p in patches for v in p.targets)
        assert Counter(v.fingerprint for v in await lint(root, end)) == Counter({blocked: 1})

    async def test_everything_blocked(self, root: Path, agent: RuffAgent) -> None:
        """With every fix blocked there is nothing to propose."""
        start = b"import os\n\nX = 1\n"
        blocked = frozenset(v.fingerprint for v in await lint(root, start))
        assert await agent.propose(await request(root, start, blocked=blocked)) == []


class TestEncoding:
    async def test_crlf_and_bom_kept(self, root: Path, agent: RuffAgent) -> None:
        """A file with a BOM and CRLF line endings keeps both through every step."""
        start = (BOM + MIXED.replace("\n", "\r\n")).encode()
        patches = await agent.propose(await request(root, start))
        assert len(patches) >= 3
        for patch in patches:
            new = patch.changes[0].new
            assert new.startswith(BOM.encode()), patch.id
            assert new.count(b"\n") == new.count(b"\r\n"), patch.id
        end = assert_chain(patches, start)
        assert [v.rule for v in await lint(root, end) if v.applicability == "safe"] == []

    async def test_crlf_and_bom_kept_for_one_wanted_fix(self, root: Path, agent: RuffAgent) -> None:
        """The one-by-one path (edits from ruff's JSON) keeps the BOM and CRLF too."""
        start = (BOM + "import os\r\nimport sys\r\n\r\nX = 1\r\n").encode()
        found = {v.message: v for v in await lint(root, start)}
        wanted = frozenset({found["`sys` imported but unused"].fingerprint})
        patches = await agent.propose(await request(root, start, wanted=wanted))
        end = assert_chain(patches, start)
        assert end == (BOM + "import os\r\n\r\nX = 1\r\n").encode()
