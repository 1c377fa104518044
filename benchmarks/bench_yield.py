"""Fixes landed on real repos: fixbot against blind `ruff check --fix`, side by side in one run.

    python benchmarks/bench_yield.py [REPO ...] [--select RULES] [--out benchmarks/yield.json]
        [--timeout 1800] [--pytest-args NAME=ARGS] [--bin /work/main/.venv/bin]

Per repo (default: the /tmp/trial/* checkouts below that exist), one broad rule set: blind
ruff in a fresh worktree of HEAD (`--fix`, and in another `--fix --unsafe-fixes`), counting
violations before and after and running the suite on the result; `fixbot run --agents ruff`
onto the branch fixbot/bench-yield, then the suite on a worktree of that branch; the floor
(the suite at base, the unsafe fix, and the suite on its result). Suites run with the
repo's `.venv/bin/python -m pytest`, importing the worktree's code (PYTHONPATH, as fixbot
does), with the checkout's git-ignored generated files (a hatch-vcs `_version.py`, a built
extension) copied in. ruff and fixbot come from --bin, so any python with matplotlib can run
this and draw the plot. Prints a table per repo; writes the JSON and a grouped-bar PNG beside
it (fixbot logs and reports stay in the printed /tmp folder).
`--pytest-args tomlkit=--ignore=tests/test_toml_tests.py` is the default: that file needs a
git submodule (toml-test) that the mirror does not carry.

Make the trial checkouts (mirrors of public repos at /work/.mirror/<owner>+<name>/repo):

    mkdir -p /tmp/trial && cd /tmp/trial
    for m in pallets+itsdangerous jazzband+prettytable pypa+packaging pytest-dev+pluggy \\
             hukkin+tomli jd+tenacity pallets+markupsafe python-poetry+tomlkit \\
             dateutil+dateutil; do
        n=${m#*+}; git clone -q /work/.mirror/$m/repo $n
        echo .venv/ >> $n/.git/info/exclude; python3 -m venv $n/.venv
    done
    pipi() { (cd $1 && shift && .venv/bin/python -m pip install -q "$@"); }
    pipi itsdangerous -e . pytest freezegun;  pipi prettytable -e '.[tests]'
    pipi packaging -e . pytest hypothesis pretend tomli_w 'pip>=21.1' coverage
    pipi pluggy -e . pytest;  pipi tomli -e . pytest;  pipi tenacity -e '.[test]'
    pipi markupsafe -e . pytest;  pipi tomlkit -e . 'pytest<8' PyYAML
    pipi dateutil -e . 'pytest<8' pytest-cov hypothesis freezegun six

dateutil's suite has 40 tests that fail at base (they need a zoneinfo tarball the
repository does not carry); they count as failing before, for blind ruff as for fixbot.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

HERE = Path(__file__).resolve().parent
TRIAL = Path("/tmp/trial")  # noqa: S108 - the documented place of the checkouts
RULES = (
    "E,F,W,B,UP,SIM,C4,RUF,PIE,RET,PERF,I,PT,PL,EM,D,ANN,Q,FURB,TRY,ARG,FBT,N,COM,ISC,G,LOG,"
    "FA,TC,PTH,A,FLY,PGH"
)
BRANCH = "fixbot/bench-yield"
GENERATED = (".py", ".pyi", ".so", ".pyd")
PYTEST_ARGS = {"tomlkit": "--ignore=tests/test_toml_tests.py"}
BIN = HERE.parent / ".venv" / "bin"  # --bin


def sh(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, check=False)


def generated_files(repo: Path) -> list[str]:
    """Git-ignored code files in tracked package folders: a worktree lacks them."""
    packages = {str(Path(p).parent) for p in sh(["git", "ls-files", "*.py"], repo).stdout.split()}
    ignored = ["git", "ls-files", "--others", "--ignored", "--exclude-standard", "--directory"]
    return [
        p
        for p in sh(ignored, repo).stdout.splitlines()
        if p.endswith(GENERATED) and str(Path(p).parent) in packages and (repo / p).is_file()
    ]


@contextlib.contextmanager
def worktree(repo: Path, ref: str, root: Path) -> Iterator[Path]:
    """A detached worktree of `ref` with the generated files; removed however the block ends."""
    path = Path(tempfile.mkdtemp(prefix="wt-", dir=root)) / "tree"
    sh(["git", "worktree", "add", "-q", "--detach", str(path), ref], repo).check_returncode()
    try:
        for rel in generated_files(repo):
            if (path / rel).parent.is_dir() and not (path / rel).exists():
                shutil.copy2(repo / rel, path / rel)
        yield path
    finally:
        sh(["git", "worktree", "remove", "--force", str(path)], repo)
        sh(["git", "worktree", "prune"], repo)
        shutil.rmtree(path.parent, ignore_errors=True)


def suite(
    repo: Path, tree: Path, extra: list[str], xml: Path, *, cold: bool = False
) -> dict[str, Any]:
    """The repo's suite in `tree` with the repo's interpreter: seconds, exit code, outcomes.
    `cold`: none of the repo's own bytecode that an earlier run in `tree` wrote, and none
    written (as fixbot's runs have it; the venv's packages keep theirs)."""
    argv = [str(repo / ".venv/bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    path = os.pathsep.join(str(p) for p in (tree / "src", tree) if p.is_dir())
    env = os.environ | {"PYTHONPATH": path}
    if cold:
        for cache in [p for p in tree.rglob("__pycache__") if ".venv" not in p.parts]:
            shutil.rmtree(cache, ignore_errors=True)
        env |= {"PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.perf_counter()
    done = sh([*argv, *extra, f"--junitxml={xml}"], tree, env)
    out: dict[str, Any] = {"seconds": round(time.perf_counter() - t0, 2), "rc": done.returncode}
    out |= {"passed": 0, "failed": 0, "skipped": 0}
    failing = []
    for case in ET.parse(xml).iter("testcase") if xml.is_file() else ():  # noqa: S314 - ours
        bad = case.find("failure") is not None or case.find("error") is not None
        out["failed" if bad else "skipped" if case.find("skipped") is not None else "passed"] += 1
        failing += [f"{case.get('classname')}::{case.get('name')}"] * bad
    out["failing"] = sorted(failing)
    out["green"] = done.returncode == 0 and out["passed"] > 0
    if not out["green"]:
        out["tail"] = done.stdout[-1500:]
    return out


def count(tree: Path, select: str) -> int:
    cmd = [str(BIN / "ruff"), "check", "--no-cache", "--select", select, "--exit-zero", "."]
    done = sh([*cmd, "--output-format", "json-lines", "--no-fix"], tree)
    if done.returncode != 0:
        raise RuntimeError(f"ruff failed in {tree}: {done.stderr[-500:]}")
    return sum(1 for line in done.stdout.splitlines() if line.strip())


def blind(repo: Path, args: argparse.Namespace, extra: list[str], work: Path, unsafe: bool):
    """ruff --fix (--unsafe-fixes) in a fresh worktree of HEAD; the suite at base and after."""
    tag = "unsafe" if unsafe else "safe"
    with worktree(repo, "HEAD", work) as tree:
        out: dict[str, Any] = {"before": count(tree, args.select)}
        if not unsafe:  # the suite at base, once per repo: the floor's two runs and a check
            out["base_tests"] = suite(repo, tree, extra, work / "junit-base.xml")
            # As fixbot runs it (Python's tracebacks, cheaper to write), for the floor's twin.
            native = [*extra, "--tb=native"]
            xml = work / "junit-base-native.xml"
            out["base_native_tb"] = suite(repo, tree, native, xml, cold=True)
        fix = [str(BIN / "ruff"), "check", "--no-cache", "--select", args.select, "--exit-zero"]
        t0 = time.perf_counter()
        sh([*fix, "--fix", "--unsafe-fixes" if unsafe else "--no-unsafe-fixes", "."], tree)
        out["fix_seconds"] = round(time.perf_counter() - t0, 2)
        out["after"] = count(tree, args.select)
        out["landed"] = out["before"] - out["after"]
        out["tests"] = suite(repo, tree, extra, work / f"junit-{tag}.xml")
        if unsafe:
            native = [*extra, "--tb=native"]
            xml = work / "junit-unsafe-native.xml"
            out["tests_native_tb"] = suite(repo, tree, native, xml, cold=True)
    return out


def run_fixbot(repo: Path, args: argparse.Namespace, extra: list[str], work: Path):
    """`fixbot run` onto BRANCH, timed; its report digested and its branch's suite run."""
    sh(["git", "branch", "-D", BRANCH], repo)
    cmd = [str(BIN / "fixbot"), "run", str(repo), "--agents", "ruff", "--select", args.select]
    cmd += ["--branch", BRANCH, "--report-dir", str(work / "report"), "--log-format", "json"]
    if extra:
        cmd += ["--test-cmd", shlex.join([".venv/bin/python", "-m", "pytest", *extra])]
    log, src = work / "fixbot.log", HERE.parent  # fixbot is edited live: record what ran
    dirty = sh(["git", "status", "--porcelain", "--untracked-files=no"], src).stdout
    out: dict[str, Any] = {
        "head": os.environ.get("FIXBOT_BENCH_LABEL")
        or sh(["git", "rev-parse", "--short", "HEAD"], src).stdout.strip(),
        "dirty": [] if os.environ.get("FIXBOT_BENCH_LABEL") else dirty.splitlines(),
    }
    t0 = time.perf_counter()
    with log.open("w") as fh:
        # No test run reused from an earlier benchmark run: the proof is timed whole.
        env = os.environ | {"FIXBOT_TEST_CACHE": "0"}
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    timed_out = False
    try:
        while proc.poll() is None and not timed_out:
            timed_out = time.perf_counter() - t0 > args.timeout
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fixbot removes its worktrees on Ctrl-C
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    out |= {"seconds": round(time.perf_counter() - t0, 2), "rc": proc.returncode}
    out |= {"timed_out": timed_out, "log": str(log), "log_problems": log_problems(log)}
    report = work / "report" / "report.json"
    if not report.is_file():
        return out | {"error": log.read_text()[-2000:]}
    rep = json.loads(report.read_text())
    proof, patches = rep.get("proof") or {}, rep.get("patches") or []
    rejected = [p for p in patches if p["status"] == "rejected"]
    lint = [p for p in rejected if p["reason"] == "lint"]
    nhp = proof.get("entropy_bound", 0.0)
    keys = ("violations_before", "violations_after", "accepted", "rejected", "dropped", "unfixed")
    out |= {k: rep.get(k) for k in (*keys, "branch", "tests", "proof", "timings", "by_rule")}
    out |= {
        "before": rep["violations_before"],
        "after": rep["violations_after"],
        "landed": rep["violations_before"] - rep["violations_after"],
        "statuses": dict(Counter(p["status"] for p in patches)),
        "rejected_by_reason": dict(Counter(p["reason"] for p in rejected)),
        "lint_refusals": {"patches": len(lint), "fixes": sum(p.get("fixes", 0) for p in lint)},
        # Findings landed fixes revealed (fixbot's `land-revealed`), by rule.
        "revealed": {k: c["revealed"] for k, c in rep["by_rule"].items() if c.get("revealed")},
        "test_runs": proof.get("test_runs"),
        "nhp": nhp,
        "bound": round(1.5 * nhp + 3, 2),
        "refused_patches": [p for p in patches if p["status"] != "accepted"],
    }
    if rep.get("branch"):
        with worktree(repo, rep["branch"], work) as tree:
            out["branch_tests"] = suite(repo, tree, extra, work / "junit-branch.xml")
            out["branch_violations"] = count(tree, args.select)
    return out


def log_problems(log: Path) -> list[str]:
    """Warnings, errors and tracebacks in fixbot's JSON log."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {"level": "error", "event": line} if "Traceback" in line else {}
        if isinstance(entry, dict) and entry.get("level") in {"warning", "error", "critical"}:
            found.append(json.dumps(entry)[:600])
    return found[:20]


def bench_repo(repo: Path, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"{repo.name}-", dir=root))
    extra = shlex.split(args.pytest_args.get(repo.name, ""))
    if sh([str(repo / ".venv/bin/python"), "-c", "import pytest_randomly"], repo).returncode == 0:
        extra += ["-p", "no:randomly"]
    row: dict[str, Any] = {"repo": str(repo), "name": repo.name, "pytest_extra": extra}
    row["commit"] = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    try:
        row["blind_safe"] = blind(repo, args, extra, work, unsafe=False)
        row["blind_unsafe"] = blind(repo, args, extra, work, unsafe=True)
        print(f"[{repo.name}] blind done, fixbot running (log in {work})", flush=True)
        row["fixbot"] = run_fixbot(repo, args, extra, work)
        base, unsafe = row["blind_safe"]["base_tests"], row["blind_unsafe"]
        # As bench_floor.py's: the suite at base, the fix, the suite on what it made. A fixed
        # suite can be slower (PT009's asserts are rewritten by pytest: dateutil 6.4 -> 7.2 s).
        fixed = unsafe["tests"]["seconds"]
        row["floor"] = round(base["seconds"] + unsafe["fix_seconds"] + fixed, 2)
        # The same with pytest writing Python's tracebacks, as fixbot has it do (--tb=native).
        native = row["blind_safe"]["base_native_tb"]["seconds"] + unsafe["fix_seconds"]
        row["floor_native_tb"] = round(native + unsafe["tests_native_tb"]["seconds"], 2)
        # The definition before 2026-12-07 (the suite at base twice), for the older tables.
        row["floor_base_twice"] = round(unsafe["fix_seconds"] + 2 * base["seconds"], 2)
        row["ratio"] = round(row["fixbot"]["seconds"] / row["floor"], 2)
    except Exception:  # noqa: BLE001 - one repo's failure is recorded, the others still run
        row["error"] = traceback.format_exc()
    return row


def green(tests: dict[str, Any] | None, base: dict[str, Any]) -> str:
    """yes/NO, with the counts and how many tests fewer than at base ran (a lost parametrize)."""
    if not tests:
        return "-"
    ran = [sum(t.get(k, 0) for k in ("passed", "failed", "skipped")) for t in (base, tests)]
    notes = [f"{tests['passed']} passed"] + [f"{tests['failed']} failed"] * bool(tests["failed"])
    notes += [f"{ran[0] - ran[1]} fewer than base"] * (ran[0] > ran[1])
    # A suite that fails at base (dateutil's 40) is green when it fails no more than there.
    new = set(tests.get("failing", ())) - set(base.get("failing", ()))
    as_base = "failing" in tests and not new and ran[1] >= ran[0] and tests["passed"] > 0
    verdict = "yes" if tests["green"] else "yes, as at base" if as_base else "NO"
    return f"{verdict} ({', '.join(notes)})"


def table(r: dict[str, Any]) -> str:
    s, u, f = r.get("blind_safe", {}), r.get("blind_unsafe", {}), r.get("fixbot", {})
    base = s.get("base_tests", {})
    head = f"### {r['name']} ({r['commit'][:10]}; {base.get('passed', '?')} tests pass at base"
    head += f" in {base.get('seconds', '?')} s; fixbot {f.get('head', '?')}"
    lines = [head + (" + uncommitted edits)" if f.get("dirty") else ")"), ""]
    if "error" in r:
        return "\n".join([*lines, "```", r["error"].strip()[-800:], "```"])

    def arrow(d: dict[str, Any]) -> str:
        return f"{d.get('before', '-')} → {d.get('after', '-')}"

    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(f.get("rejected_by_reason", {}).items()))
    lint = f.get("lint_refusals", {})
    wall = f"{f.get('seconds')} s, rc {f.get('rc')}" + (" TIMED OUT" if f.get("timed_out") else "")
    cells = [
        ("", "fixbot", "blind --fix", "blind --fix --unsafe-fixes"),
        ("violations before → after", arrow(f), arrow(s), arrow(u)),
        ("fixes landed", f.get("landed", "-"), s.get("landed"), u.get("landed")),
        ("suite green after", green(f.get("branch_tests"), base), green(s["tests"], base),
         green(u["tests"], base)),
        ("patches accepted / rejected", f"{f.get('accepted')} / {f.get('rejected')}", "-", "-"),
        ("rejected by reason", reasons or "-", "-", "-"),
        ("lint refusals: patches / fixes", f"{lint.get('patches')} / {lint.get('fixes')}",
         "-", "-"),
        ("findings revealed by landed fixes",
         ", ".join(f"{k}: {n}" for k, n in f.get("revealed", {}).items()) or "-", "-", "-"),
        ("test runs vs N·H(p), 1.5·N·H(p)+3",
         f"{f.get('test_runs')} vs {f.get('nhp')}, {f.get('bound')}", "1", "1"),
        ("seconds", (f"{wall}; floor {r.get('floor')}, ratio {r.get('ratio')}; "
                     f"floor with --tb=native {r.get('floor_native_tb')}"),
         f"ruff {s['fix_seconds']}, suite {s['tests']['seconds']}",
         f"ruff {u['fix_seconds']}, suite {u['tests']['seconds']}"),
    ]  # fmt: skip
    body = ["| " + " | ".join(str(c) for c in row) + " |" for row in cells]
    return "\n".join([*lines, body[0], "|---|---|---|---|", *body[1:]])


def plot(rows: list[dict[str, Any]], path: Path) -> str:
    rows = [r for r in rows if "error" not in r]
    try:
        import matplotlib as mpl  # noqa: PLC0415

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return f"matplotlib is not importable in {sys.executable}: no plot"
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows)), 4))
    series = [("fixbot", "fixbot"), ("blind --fix", "blind_safe")]
    series.append(("blind --fix --unsafe-fixes", "blind_unsafe"))
    for i, (label, key) in enumerate(series):
        xs = [n + (i - 1) * 0.27 for n in range(len(rows))]
        ax.bar(xs, [r[key].get("landed") or 0 for r in rows], width=0.27, label=label)
    ax.set_xticks(range(len(rows)), [r["name"] for r in rows], rotation=20)
    ax.set(ylabel="fixes landed (violations before - after)")
    ax.set_title("fixes landed: fixbot vs blind ruff")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return f"plot: {path}"


def main() -> None:
    global BIN  # noqa: PLW0603 - set once from the command line
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repos", nargs="*", type=Path)
    ap.add_argument("--select", default=RULES)
    ap.add_argument("--out", type=Path, default=HERE / "yield.json", help="the PNG goes beside")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per fixbot run")
    ap.add_argument("--pytest-args", action="append", default=[], metavar="NAME=ARGS")
    ap.add_argument("--bin", type=Path, default=BIN, help="where fixbot and ruff are")
    args = ap.parse_args()
    args.pytest_args = PYTEST_ARGS | dict(a.split("=", 1) for a in args.pytest_args)
    BIN = args.bin
    names = "itsdangerous prettytable packaging pluggy tomli tenacity markupsafe tomlkit dateutil"
    repos = [p.resolve() for p in args.repos] or [
        TRIAL / n for n in names.split() if (TRIAL / n / ".venv").is_dir()
    ]
    meta = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "ruff": sh([str(BIN / "ruff"), "--version"], HERE).stdout.strip(),
        "params": {k: str(v) for k, v in vars(args).items()},
    }
    root = Path(tempfile.mkdtemp(prefix="fixbot-yield-"))
    rows: list[dict[str, Any]] = []
    for repo in repos:
        rows.append(bench_repo(repo, args, root))
        print(table(rows[-1]) + "\n", flush=True)
        tables = [table(r) for r in rows]
        args.out.write_text(json.dumps(meta | {"rows": rows, "tables": tables}, indent=1))
    print(plot(rows, args.out.with_suffix(".png")))
    print(f"results: {args.out}; fixbot logs and reports under {root}")


if __name__ == "__main__":
    main()
