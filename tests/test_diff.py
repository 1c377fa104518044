"""sandbox._diff: many unified diffs in one git process, each fit for `git apply`."""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING

import anyio

from fixbot.sandbox import unified_diffs

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def _applies(tmp_path: Path, path: str, before: bytes, after: bytes, diff: str) -> None:
    """`diff` turns `before` into exactly `after` under `git apply`."""
    target = tmp_path / "repo" / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(before)
    (tmp_path / "change.diff").write_text(diff, encoding="utf-8")
    subprocess.run(
        ["git", "apply", "--unsafe-paths", str(tmp_path / "change.diff")],
        cwd=tmp_path / "repo",
        check=True,
        capture_output=True,
        env=os.environ | {"GIT_CONFIG_GLOBAL": "/dev/null"},
    )
    assert target.read_bytes() == after


class TestUnifiedDiffs:
    def test_each_diff_names_its_path_and_applies(self, tmp_path: Path) -> None:
        """Hundreds of hunks in one file, and a second file: both apply exactly."""
        before = b"".join(f"value_{i} = {i}\n".encode() for i in range(3000))
        after = before.replace(b"0 = ", b"0 = -")
        small = (b"a\nb\n", b"a\nB\n")
        diffs = anyio.run(unified_diffs, [("pkg/big.py", before, after), ("small.py", *small)])
        assert diffs[0].startswith("--- a/pkg/big.py\n+++ b/pkg/big.py\n@@ ")
        assert diffs[0].count("\n@@ ") > 100
        _applies(tmp_path / "one", "pkg/big.py", before, after, diffs[0])
        _applies(tmp_path / "two", "small.py", *small, diffs[1])

    def test_unchanged_content_has_an_empty_diff(self) -> None:
        """A pair with nothing changed gives "", and the others keep their places."""
        diffs = anyio.run(
            unified_diffs, [("a.py", b"x\n", b"x\n"), ("b.py", b"x\n", b"y\n"), ("c.py", b"", b"")]
        )
        assert diffs[0] == ""
        assert diffs[2] == ""
        assert diffs[1] == "--- a/b.py\n+++ b/b.py\n@@ -1 +1 @@\n-x\n+y\n"

    def test_a_missing_final_newline_and_shared_contents(self, tmp_path: Path) -> None:
        """git's no-newline marker survives; two pairs from one content are both right."""
        start = b"one\ntwo"
        changes = [("f.py", start, b"one\ntwo\n"), ("f.py", start, b"ONE\ntwo")]
        diffs = anyio.run(unified_diffs, changes)
        assert "\\ No newline at end of file" in diffs[0]
        for i, (path, before, after) in enumerate(changes):
            _applies(tmp_path / str(i), path, before, after, diffs[i])

    def test_nothing_to_diff(self) -> None:
        """No pairs, no git process."""
        assert anyio.run(unified_diffs, []) == []

    def test_the_users_git_config_stays_out(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """core.autocrlf would strip a CRLF file's CR; a relative orderFile would fail."""
        home = tmp_path / "home"
        home.mkdir()
        (home / ".gitconfig").write_text(
            "[core]\n\tautocrlf = input\n[diff]\n\torderFile = .gitorder\n"
        )
        monkeypatch.setenv("HOME", str(home))
        before, after = b"import os\r\nx = 1\r\n", b"x = 1\r\n"
        (diff,) = anyio.run(unified_diffs, [("a.py", before, after)])
        assert "-import os\r\n" in diff
        _applies(tmp_path, "a.py", before, after, diff)

    def test_a_git_that_fails_still_gives_the_diffs(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A broken git on PATH: difflib writes the same diffs, the run goes on."""
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "git").write_text("#!/bin/sh\nexit 128\n")
        (bin_dir / "git").chmod(0o755)
        real = os.environ["PATH"]
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{real}")
        (diff,) = anyio.run(unified_diffs, [("b.py", b"x\n", b"y\n")])
        assert diff == "--- a/b.py\n+++ b/b.py\n@@ -1 +1 @@\n-x\n+y\n"
