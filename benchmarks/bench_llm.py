"""How close the LLM fan-out gets to the ideal, against a local model with a set latency.

Ideal wall time for T tasks at concurrency C with latency L per request is T*L/C:
the model's time, nothing of fixbot's. This runs the real LlmAgent (lint, region,
prompt, request, reply parsing, splice) over T bare excepts in many files, against
`python -m tests.fake_openai --latency L` in its own process, and reports achieved
throughput as a fraction of that ideal.

    python benchmarks/bench_llm.py --tasks 1024 --latency 0.2 --concurrency 16,64,256
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixbot.agents import Request, Task  # noqa: E402
from fixbot.agents._llm import LlmAgent  # noqa: E402
from fixbot.agents._llm_client import LlmClient, LlmSettings  # noqa: E402
from fixbot.sandbox import Ruff  # noqa: E402

FUNCTION = """
def f{i}(x):
    try:
        return int(x)
    except:
        return None
"""


def make_tree(root: Path, tasks: int, per_file: int) -> list[str]:
    """Files of `per_file` functions with a bare except each; `tasks` in all."""
    paths = []
    for n in range(0, tasks, per_file):
        path = f"m{n // per_file:04d}.py"
        body = "\n".join(FUNCTION.format(i=i) for i in range(n, min(tasks, n + per_file)))
        (root / path).write_text(body.lstrip())
        paths.append(path)
    (root / "pyproject.toml").write_text('[tool.ruff.lint]\nselect = ["E722"]\n')
    return paths


async def one_run(root: Path, paths: list[str], url: str, concurrency: int) -> dict[str, float]:
    ruff = Ruff(root, ("E722",))
    client = LlmClient(
        LlmSettings(base_url=url, model="bench", concurrency=concurrency, max_tokens=256)
    )
    agent = LlmAgent(client, ruff)
    contents = {p: (root / p).read_bytes() for p in paths}
    # The agent lints each file first, as in a run; the lint is part of what is timed.
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for path in paths:
            task = Task(key=path, files=(path,), violations=())
            request = Request(task=task, mode="llm", content={path: contents[path]}, root=root)
            tg.start_soon(agent.propose, request)
    wall = time.perf_counter() - start
    await client.aclose()
    return {"wall": wall, "requests": client.usage.requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1024)
    parser.add_argument("--per-file", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", default="16,64,256")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = parser.parse_args()
    # As in a run: per-request events are debug-level and filtered out.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--latency", str(args.latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = server.stdout.readline().strip()  # type: ignore[union-attr]
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            paths = make_tree(root, args.tasks, args.per_file)
            for c in (int(x) for x in args.concurrency.split(",")):
                result = anyio.run(one_run, root, paths, url, c)
                ideal = args.tasks * args.latency / c
                rows.append(
                    {
                        "tasks": args.tasks,
                        "latency_s": args.latency,
                        "concurrency": c,
                        "requests": result["requests"],
                        "ideal_s": round(ideal, 3),
                        "wall_s": round(result["wall"], 3),
                        "fraction_of_ideal": round(ideal / result["wall"], 3),
                    }
                )
    finally:
        server.terminate()
        server.wait()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "llm.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| concurrency | tasks | requests | ideal s | wall s | fraction of ideal |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['concurrency']} | {r['tasks']} | {r['requests']} | {r['ideal_s']} "
            f"| {r['wall_s']} | {r['fraction_of_ideal']:.0%} |"
        )


if __name__ == "__main__":
    main()
