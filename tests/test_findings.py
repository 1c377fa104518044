"""sandbox._findings: ruff's JSON findings read into Violations, with the real pinned ruff."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from fixbot.sandbox import _findings
from fixbot.sandbox._ruff import Ruff, default_ruff

if TYPE_CHECKING:
    from pathlib import Path

    from fixbot.sandbox._types import Violation

CONFIG = "[tool.ruff.lint]\nselect = ['E711', 'F401']\n"


def lint(root: Path, path: str, source: str) -> list[Violation]:
    """`source` linted as the file at `path`, from stdin."""
    ruff = Ruff(root, None, default_ruff())
    return anyio.run(ruff.lint_source, path, source.encode()).violations


def lint_files(root: Path, files: dict[str, str]) -> list[Violation]:
    """`files` written under `root` and linted in one ruff run."""
    for path, source in files.items():
        (root / path).write_text(source)
    ruff = Ruff(root, None, default_ruff())
    return anyio.run(ruff.lint, sorted(files)).violations


class TestFindingsReader:
    def test_an_unchanged_finding_is_the_same_object(self, tmp_path: Path) -> None:
        """A finding whose JSON line, lines and scope are unchanged is not built again."""
        (tmp_path / "pyproject.toml").write_text(CONFIG)
        first = lint(tmp_path, "a.py", "def f(x):\n    return x == None\n\n\nY = 1\n")
        again = lint(tmp_path, "a.py", "def f(x):\n    return x == None\n\n\nY = 2\n")
        assert [v.rule for v in first] == ["E711"]
        assert again[0] is first[0]

    @pytest.mark.parametrize(
        ("one", "other"),
        [
            # The enclosing def: ruff's line alone does not say it.
            ("def f(x):\n    return x == None\n", "def g(x):\n    return x == None\n"),
            # The lines the finding covers.
            ("import os\n", "import os  # why\n"),
        ],
        ids=["scope", "lines"],
    )
    def test_same_json_line_elsewhere_is_another_finding(
        self, tmp_path: Path, one: str, other: str
    ) -> None:
        """What a fingerprint reads beyond ruff's JSON line is part of the key."""
        (tmp_path / "pyproject.toml").write_text(CONFIG)
        (first,) = lint(tmp_path, "a.py", one)
        (second,) = lint(tmp_path, "a.py", other)
        assert first.location == second.location
        assert first.fingerprint != second.fingerprint

    def test_files_of_one_lint_keep_their_own_lines(self, tmp_path: Path) -> None:
        """Findings streaming past file by file are read against their own file."""
        (tmp_path / "pyproject.toml").write_text(CONFIG)
        found = lint_files(
            tmp_path, {"a.py": "def f(x):\n    return x == None\n", "b.py": "import os\n"}
        )
        by_path = {v.path: v for v in found}
        assert by_path["a.py"].rule == "E711"
        assert by_path["b.py"].rule == "F401"
        same = lint(tmp_path, "b.py", "import os\n")
        assert same[0].fingerprint == by_path["b.py"].fingerprint

    def test_caches_are_bounded(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Past its bound a cache starts again; what is read stays right."""
        monkeypatch.setattr(_findings, "_MAX_FINDINGS", 2)
        monkeypatch.setattr(_findings, "_MAX_FILES", 1)
        (tmp_path / "pyproject.toml").write_text(CONFIG)
        source = "".join(f"import m{i}\n" for i in range(5))
        found = lint(tmp_path, "a.py", source)
        assert len({v.fingerprint for v in found}) == 5
        assert len(_findings._built) <= 2
        assert len(_findings._places) <= 2
        assert len(_findings._sources) <= 1
        assert [v.fingerprint for v in lint(tmp_path, "a.py", source)] == [
            v.fingerprint for v in found
        ]
