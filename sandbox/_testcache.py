"""Test runs remembered across runs: a verdict is reused only where it would come out the same.

A run of the repo's tests is a function of the tree it runs on, the command, the
tests selected and the environment that runs them. Its outcomes are kept under
`.git/fixbot/cache/tests`, keyed by exactly those: the base tree, the content of
every file written on top of it, the selection, the command, and what is
installed in the interpreter's environment. So a run killed halfway and started
again, or tomorrow's run on an unchanged repo, proposes the same patches,
proves the same batches, and finds their test runs already made.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ._testrun import TIMED_OUT
from ._types import TestResults, sha256

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


def environment_of(python: str) -> str:
    """What is installed beside the interpreter: its site-packages, by name and mtime."""
    digest = hashlib.sha256(os.path.realpath(python).encode())
    venv = Path(python).parent.parent
    for site in sorted(venv.glob("lib/python*/site-packages")):
        with contextlib.suppress(OSError):
            for entry in sorted(os.scandir(site), key=lambda e: e.name):
                digest.update(f"{entry.name}:{entry.stat().st_mtime_ns}\n".encode())
    return digest.hexdigest()


class TestCache:
    """Outcomes of test runs, on disk, keyed by everything they depend on."""

    __test__ = False

    def __init__(self, folder: Path, salt: Mapping[str, object]) -> None:
        self.folder = folder
        self.salt = json.dumps(salt, sort_keys=True)

    def _path(self, files: Mapping[str, bytes], node_ids: Sequence[str] | None) -> Path:
        key = {
            "salt": self.salt,
            "files": sorted((p, sha256(d)) for p, d in files.items()),
            "tests": None if node_ids is None else sorted(node_ids),
        }
        return self.folder / f"{sha256(json.dumps(key).encode())}.json"

    def get(self, files: Mapping[str, bytes], node_ids: Sequence[str] | None) -> TestResults | None:
        """The outcomes of this very run, if it was made before."""
        try:
            return TestResults.model_validate_json(self._path(files, node_ids).read_bytes())
        except (OSError, ValueError):
            return None

    def put(
        self, files: Mapping[str, bytes], node_ids: Sequence[str] | None, results: TestResults
    ) -> None:
        """Keep a run's outcomes (not one stopped by a time-out or a limit: not its verdict)."""
        if results.limit or TIMED_OUT in results.output:
            return
        self._write(self._path(files, node_ids), results.model_dump_json())

    def _flakiness_path(self) -> Path:
        return self.folder / f"flakiness-{sha256(self.salt.encode())}.json"

    def flakiness(self) -> tuple[set[str], set[str]]:
        """Tests decided flaky, and stable, at this base in this environment before."""
        try:
            data = json.loads(self._flakiness_path().read_text())
            return set(data["flaky"]), set(data["stable"])
        except (OSError, ValueError, KeyError, TypeError):
            return set(), set()

    def keep_flakiness(self, flaky: set[str], stable: set[str]) -> None:
        """Keep the flakiness decisions for the next run at the same base."""
        data = {"flaky": sorted(flaky), "stable": sorted(stable)}
        self._write(self._flakiness_path(), json.dumps(data))

    def _write(self, path: Path, text: str) -> None:
        # Whole or not at all: a run killed mid-write leaves no half entry to misread.
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(path)
