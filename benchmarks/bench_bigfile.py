"""One big file: fixbot against ruff's own fix loop on 20,000 lines of cascading findings.

    python benchmarks/bench_bigfile.py [--blocks 3333] [--bin .venv/bin]

The file holds `from typing import List` and BLOCKS functions, each with an E711
(`x == None`, an unsafe fix) and a UP006 (`List[int]` in its `def` line, which the
fix rewrites: the enclosing scope of the E711 below it). UP006 leaves the typing
import unused (F401 next), and UP035 goes with it. Timed side by side in one run:
`ruff check --fix --unsafe-fixes` on a copy, and `fixbot run --dry-run --test-cmd ''`
(lint-only proof, so the time is fixbot's own). Prints both and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SELECT = "E711,UP006,F401,UP035"


def make(repo: Path, blocks: int) -> None:
    lines = ["from typing import List", "", ""]
    for i in range(blocks):
        lines += [f"def f{i}(x: List[int]):", "    if x == None:", "        return 1"]
        lines += ["    return 2", "", ""]
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "pkg" / "big.py").write_text("\n".join(lines).rstrip() + "\n")
    (repo / "pyproject.toml").write_text('[project]\nname = "big"\nversion = "0"\n')
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        [*git, "commit", "-qm", "big"],
    ):
        subprocess.run(cmd, cwd=repo, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=3333)
    ap.add_argument("--bin", type=Path, default=Path(sys.executable).parent)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fixbot-bigfile-") as tmp:
        repo = Path(tmp) / "repo"
        make(repo, args.blocks)
        copy = Path(tmp) / "copy.py"
        copy.write_bytes((repo / "pkg" / "big.py").read_bytes())
        ruff = [str(args.bin / "ruff"), "check", "--no-cache", "--select", SELECT, "--isolated"]
        t0 = time.perf_counter()
        subprocess.run(
            [*ruff, "--fix", "--unsafe-fixes", "--exit-zero", "-q", str(copy)], check=True
        )
        ruff_s = time.perf_counter() - t0
        cmd = [str(args.bin / "fixbot"), "run", str(repo), "--agents", "ruff", "--select", SELECT]
        cmd += ["--dry-run", "--test-cmd", "", "--log-format", "json"]
        env = os.environ | {"FIXBOT_TEST_CACHE": "0"}
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        fixbot_s = time.perf_counter() - t0
        report = next((repo / ".git" / "fixbot" / "runs").iterdir()) / "report.json"
        data = json.loads(report.read_text()) if report.exists() else {}
    print(f"lines: {args.blocks * 6 + 3}; violations: {data.get('violations_before')}")
    print(f"ruff --fix --unsafe-fixes: {ruff_s:.2f} s")
    print(f"fixbot (lint-only proof): {fixbot_s:.2f} s, rc {done.returncode}, ")
    print(f"  violations after: {data.get('violations_after')}, accepted {data.get('accepted')}")
    print(f"ratio: {fixbot_s / ruff_s:.1f}x")


if __name__ == "__main__":
    main()
