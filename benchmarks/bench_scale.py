"""Scale: worktree overhead per use on a 50,000-file repo, and planning 50,000 violations.

    python benchmarks/bench_scale.py [--files 50000] [--violation-files 5000]

1. A repo of `--files` small files (100 per folder). One pooled worktree is used
   `--uses` times: write 3 files, hand it back (reset). Reported: seconds per use
   (the target is at most 0.3 s), next to creating a fresh worktree.
2. A repo of `--violation-files` files with 10 violations each: ruff's lint (streamed)
   and planning into tasks; seconds and peak memory of this process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixbot.agents import Router, RuffAgent  # noqa: E402
from fixbot.orchestrator._plan import make_plan  # noqa: E402
from fixbot.sandbox import Ruff, WorktreePool, default_ruff, run  # noqa: E402

DEBT = """import os
import sys
import json


def f{n}(x):
    if x == None:
        return "%s" % x
    l = [i for i in x]
    try:
        return l[0]
    except:
        return dict()
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", *args],
        cwd=repo, check=True, capture_output=True,
    )  # fmt: skip


def make_repo(root: Path, files: int, body: str) -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    for n in range(files):
        folder = root / f"pkg{n // 100:04d}"
        folder.mkdir(exist_ok=True)
        (folder / f"m{n % 100:02d}.py").write_text(body.format(n=n))
    (root / "pyproject.toml").write_text(
        '[tool.ruff.lint]\nselect = ["F", "E", "UP", "C4", "SIM"]\n'
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


async def worktree_overhead(repo: Path, uses: int) -> dict[str, float]:
    head = (await run(["git", "rev-parse", "HEAD"], cwd=repo)).stdout.decode().strip()
    shm = Path("/dev/shm")  # noqa: S108 - where fixbot puts worktrees on Linux, as in a run
    where = shm if shm.is_dir() else Path(tempfile.gettempdir())
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        async with WorktreePool(repo, head, Path(tmp) / "pool", size=1) as pool:
            start = time.perf_counter()
            async with pool.use():
                pass
            create = time.perf_counter() - start
            files = ["pkg0000/m00.py", "pkg0250/m50.py", "pkg0499/m99.py"]
            times = []
            for i in range(uses):
                start = time.perf_counter()
                async with pool.use() as tree:
                    tree.write({f: f"x = {i}\n".encode() for f in files})
                times.append(time.perf_counter() - start)
    times.sort()
    return {
        "create_s": round(create, 3),
        "use_median_s": round(times[len(times) // 2], 4),
        "use_max_s": round(times[-1], 4),
    }


async def plan_scale(repo: Path) -> dict[str, float]:
    ruff = Ruff(repo, None, default_ruff())
    start = time.perf_counter()
    lint = await ruff.lint()
    linted = time.perf_counter() - start
    router = Router([RuffAgent(default_ruff(), None, modes=("fix",))])
    plan = make_plan(lint.violations, router)
    total = time.perf_counter() - start
    return {
        "violations": len(plan.violations),
        "tasks": len(plan.tasks),
        "lint_s": round(linted, 2),
        "lint_and_plan_s": round(total, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--violation-files", type=int, default=5_000)
    parser.add_argument("--uses", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        big = make_repo(Path(tmp) / "big", args.files, "X = {n}\n")
        results["repo_files"] = args.files
        results["repo_setup_s"] = round(time.perf_counter() - start, 1)
        results["worktree"] = anyio.run(worktree_overhead, big, args.uses)
        debt = make_repo(Path(tmp) / "debt", args.violation_files, DEBT)
        results["plan"] = anyio.run(plan_scale, debt)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
