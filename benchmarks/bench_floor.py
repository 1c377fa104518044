"""Time fixbot against the floor on synthetic monorepos, side by side in one run.

    python benchmarks/bench_floor.py --sizes 10x8,20x8,30x8 [--test-seconds 12]
        [--breaking 3] [--out benchmarks/out] [--fixbot-timeout 1800] [--keep] [--repeat 1]

Per size (PACKAGESxMODULES): generate the repo with gen_monorepo.py; time the floor on a
copy (the tests at base, `ruff check --fix --unsafe-fixes`, the tests on the result: the cost
of one lint and two suite runs, ignoring correctness); time `fixbot run --agents ruff` on the
repo, polling its peak RSS; read its report.json; run the tests on a worktree of its branch.
With `--repeat N`, N-1 more pairs of floor and fixbot follow, each on a fresh copy of the
repo, and the ratio is of the medians (this machine's floor moves by seconds between runs).
Writes OUT/results.json and OUT/ratio.png and prints a table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]


def sh(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, text=True, capture_output=True, check=False)


def suite(repo: Path, cwd: Path, xml: Path) -> dict[str, Any]:
    """Run the repo's suite in cwd with the repo's interpreter: seconds and JUnit outcomes."""
    t0 = time.perf_counter()
    sh([str(repo / ".venv/bin/python"), *PYTEST, f"--junitxml={xml}"], cwd)
    out: dict[str, Any] = {"seconds": round(time.perf_counter() - t0, 2)}
    out |= {"passed": 0, "failed": 0, "skipped": 0}
    for case in ET.parse(xml).iter("testcase"):  # noqa: S314 - our own pytest's JUnit XML
        bad = case.find("failure") is not None or case.find("error") is not None
        key = "failed" if bad else "skipped" if case.find("skipped") is not None else "passed"
        out[key] += 1
    return out


def floor(repo: Path, work: Path) -> dict[str, Any]:
    """Tests at base, ruff --fix --unsafe-fixes, tests on the result, on a fresh copy."""
    copy = work / "floor"
    shutil.copytree(repo, copy, symlinks=True)
    base = suite(copy, copy, work / "floor-base.xml")
    t0 = time.perf_counter()
    sh([str(BIN / "ruff"), "check", "--no-cache", "--fix", "--unsafe-fixes", "."], copy)
    lint_fix = round(time.perf_counter() - t0, 2)
    after = suite(copy, copy, work / "floor-after.xml")
    shutil.rmtree(copy)
    total = round(base["seconds"] + lint_fix + after["seconds"], 2)
    return {"total": total, "tests_base": base, "lint_fix": lint_fix, "tests_after": after}


def tree_rss_kb(root: int) -> tuple[int, int]:
    """(VmHWM of root, summed VmRSS of root and its descendants), in kB."""
    kids: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    hwm = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(entry.name), int(fields.get("PPid", "0"))
        kids.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
        if pid == root:
            hwm = int(fields.get("VmHWM", "0 kB").split()[0])
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(kids.get(pid, []))
    return hwm, total


def run_fixbot(repo: Path, report_dir: Path, timeout: float, log: Path) -> dict[str, Any]:
    cmd = [str(BIN / "fixbot"), "run", str(repo), "--agents", "ruff", "--log-format", "json"]
    cmd += ["--report-dir", str(report_dir)]
    t0 = time.perf_counter()
    with log.open("w") as fh:
        # No test run reused from an earlier benchmark run: the proof is timed whole.
        env = os.environ | {"FIXBOT_TEST_CACHE": "0"}
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    hwm = tree = 0
    timed_out = False
    while proc.poll() is None:
        h, t = tree_rss_kb(proc.pid)
        hwm, tree = max(hwm, h), max(tree, t)
        if time.perf_counter() - t0 > timeout:
            timed_out = True
            proc.send_signal(signal.SIGINT)  # fixbot cleans up its worktrees on Ctrl-C
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        time.sleep(0.5)
    return {
        "seconds": round(time.perf_counter() - t0, 2),
        "rc": proc.returncode,
        "timed_out": timed_out,
        "peak_rss_mb": round(hwm / 1024, 1),
        "peak_tree_rss_mb": round(tree / 1024, 1),
    }


def check_branch(repo: Path, branch: str, work: Path) -> dict[str, Any]:
    """Tests and ruff on a worktree of fixbot's branch."""
    wt = work / "branch-wt"
    sh(["git", "worktree", "add", "-q", "--detach", str(wt), branch], repo).check_returncode()
    try:
        tests = suite(repo, wt, work / "branch-junit.xml")
        lint = [str(BIN / "ruff"), "check", "--no-cache", "--output-format", "json", "."]
        found = json.loads(sh(lint, wt).stdout)
        return tests | {
            "ok": tests["failed"] == 0 and tests["passed"] > 0,
            "violations": len(found),
        }
    finally:
        sh(["git", "worktree", "remove", "--force", str(wt)], repo)


def again(repo: Path, work: Path, timeout: float, i: int) -> tuple[float, float]:
    """One more floor and fixbot run, on a fresh copy of the repo: their seconds."""
    copy = work / f"again-{i}"
    shutil.copytree(repo, copy, symlinks=True)
    try:
        base = floor(copy, work)["total"]
        ran = run_fixbot(copy, work / f"again-{i}-report", timeout, work / f"again-{i}.log")
        return base, ran["seconds"]
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def entropy_bound(n: int, bad: int) -> float:
    if n == 0 or bad in (0, n):
        return 0.0
    p = bad / n
    return round(-n * (p * math.log2(p) + (1 - p) * math.log2(1 - p)), 2)


def bench_size(size: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    n_pkg, n_mod = (int(x) for x in size.split("x"))
    repo = work / "repo"
    gen = [sys.executable, str(HERE / "gen_monorepo.py"), str(repo), "--packages", str(n_pkg)]
    gen += ["--modules", str(n_mod), "--test-seconds", str(args.test_seconds)]
    gen += ["--breaking", str(args.breaking), "--seed", str(args.seed)]
    gen += ["--no-cascades"] if args.no_cascades else []
    generated = json.loads(sh(gen, HERE).stdout)
    row: dict[str, Any] = {"size": size, "generated": generated, "load": [os.getloadavg()[0]]}
    row["floor"] = floor(repo, work)
    print(f"[{size}] floor {row['floor']}", flush=True)
    report_dir = work / "report"
    row["load"].append(os.getloadavg()[0])
    src = HERE.parent  # fixbot is installed editable and edited live: record what ran
    row["fixbot_source"] = {
        "head": sh(["git", "rev-parse", "--short", "HEAD"], src).stdout.strip(),
        "dirty": [ln[3:] for ln in sh(["git", "status", "--porcelain"], src).stdout.splitlines()],
    }
    row["fixbot"] = run_fixbot(repo, report_dir, args.fixbot_timeout, work / "fixbot.log")
    row["load"].append(os.getloadavg()[0])  # 1-min load before floor, before/after fixbot
    print(f"[{size}] fixbot {row['fixbot']}", flush=True)
    report_path = report_dir / "report.json"
    if not report_path.exists():
        row["error"] = sh(["tail", "-5", str(work / "fixbot.log")], work).stdout
        return row
    rep = json.loads(report_path.read_text())
    keys = ("violations_before", "violations_after", "accepted", "rejected", "dropped", "unfixed")
    row["report"] = {k: rep.get(k) for k in keys} | {
        k: rep.get(k) for k in ("timings", "proof", "tests", "by_rule", "branch")
    }
    rejected = [p for p in rep.get("patches", []) if p["status"] != "accepted"]
    row["report"]["rejected_patches"] = rejected
    n = (rep.get("accepted") or 0) + (rep.get("rejected") or 0)
    row["n_patches"], row["nhp"] = n, entropy_bound(n, rep.get("rejected") or 0)
    pairs = [(row["floor"]["total"], row["fixbot"]["seconds"])]
    pairs += [again(repo, work, args.fixbot_timeout, i) for i in range(1, args.repeat)]
    row["samples"] = {"floor": [p[0] for p in pairs], "fixbot": [p[1] for p in pairs]}
    row["floor_s"] = round(statistics.median(row["samples"]["floor"]), 2)
    row["fixbot_s"] = round(statistics.median(row["samples"]["fixbot"]), 2)
    row["ratio"] = round(row["fixbot_s"] / row["floor_s"], 2)
    counts = generated["counts"]
    row["ideal"] = {"violations_after": counts["none"] + args.breaking, "rejected": args.breaking}
    if rep.get("branch"):
        row["branch_check"] = check_branch(repo, rep["branch"], work)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    cols = "size violations floor_s fixbot_s ratio test_runs N·H(p) peak_MB fixed rejected branch"
    names = [c.replace("_", " ") for c in cols.split()]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for r in rows:
        rep, proof = r.get("report", {}), r.get("report", {}).get("proof") or {}
        fixed = sum(v.get("fixed", 0) for v in (rep.get("by_rule") or {}).values())
        br = r.get("branch_check", {})
        cells = [
            r["size"], r["generated"]["counts"]["total"],
            r.get("floor_s", r["floor"]["total"]), r.get("fixbot_s", r["fixbot"]["seconds"]),
            r.get("ratio", "-"), proof.get("test_runs", "-"), r.get("nhp", "-"),
            r["fixbot"]["peak_rss_mb"], fixed, rep.get("rejected", "-"),
            f"{br['passed']} passed, {br['failed']} failed" if br else "-",
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> str:
    pts = [(r["generated"]["counts"]["total"], r["ratio"], r["size"]) for r in rows if "ratio" in r]
    try:
        import matplotlib as mpl  # noqa: PLC0415

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        png(path, [(x, y) for x, y, _ in pts])
        return "pure-python"
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o")
    for x, y, label in pts:
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4))
    ax.set(xlabel="violations in repo", ylabel="fixbot time / floor time", ylim=(0, None))
    ax.axhline(1, color="grey", lw=0.8, ls="--")
    ax.set_title("fixbot vs floor (lint + 2 suite runs)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return "matplotlib"


def png(path: Path, pts: list[tuple[float, float]], w: int = 480, h: int = 320) -> None:
    """A bare line plot (axes from 0, no text) written with zlib + struct."""
    px = [[255] * (w * 3) for _ in range(h)]
    xmax = max((x for x, _ in pts), default=1) * 1.1 or 1
    ymax = max((y for _, y in pts), default=1) * 1.1 or 1

    def dot(x: int, y: int, rgb: tuple[int, int, int]) -> None:
        if 0 <= x < w and 0 <= y < h:
            px[y][3 * x : 3 * x + 3] = rgb

    def line(a: tuple[int, int], b: tuple[int, int], rgb: tuple[int, int, int]) -> None:
        n = max(abs(b[0] - a[0]), abs(b[1] - a[1]), 1)
        for s in range(n + 1):
            dot(a[0] + (b[0] - a[0]) * s // n, a[1] + (b[1] - a[1]) * s // n, rgb)

    line((20, h - 20), (w - 1, h - 20), (0, 0, 0))
    line((20, 0), (20, h - 20), (0, 0, 0))
    one = h - 20 - int(1 / ymax * (h - 40))  # ratio 1: the floor
    line((20, one), (w - 1, one), (160, 160, 160))
    xy = [(20 + int(x / xmax * (w - 40)), h - 20 - int(y / ymax * (h - 40))) for x, y in pts]
    for a, b in itertools.pairwise(xy):
        line(a, b, (31, 119, 180))
    for x, y in xy:
        for d in range(-3, 4):
            line((x - 3, y + d), (x + 3, y + d), (214, 39, 40))
    raw = b"".join(b"\0" + bytes(row) for row in px)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    data = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10x8,20x8,30x8")
    ap.add_argument("--test-seconds", type=float, default=12.0)
    ap.add_argument("--breaking", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--fixbot-timeout", type=float, default=1800.0)
    ap.add_argument("--keep", action="store_true", help="keep the generated repos (printed)")
    ap.add_argument("--no-cascades", action="store_true", help="generate repos without cascades")
    ap.add_argument("--repeat", type=int, default=1, help="pairs of floor and fixbot runs")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="fixbot-bench-"))
    rows = []
    for size in args.sizes.split(","):
        work = root / size
        work.mkdir()
        rows.append(bench_size(size, args, work))
        (args.out / "results.json").write_text(json.dumps(results(rows, args), indent=1))
    plotter = plot(rows, args.out / "ratio.png")
    (args.out / "results.json").write_text(json.dumps(results(rows, args, plotter), indent=1))
    print(table(rows))
    print(f"results: {args.out / 'results.json'}; plot: {args.out / 'ratio.png'} ({plotter})")
    if args.keep:
        print(f"repos kept under {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


def results(rows: list[dict[str, Any]], args: argparse.Namespace, plotter: str = "") -> dict:
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "plotter": plotter}
    params = {k: v for k, v in vars(args).items() if k != "out"}
    return {"machine": machine, "params": params, "rows": rows, "table": table(rows)}


if __name__ == "__main__":
    main()
