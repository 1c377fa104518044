"""Generate a synthetic monorepo with lint debt, for fixbot benchmarks.

    python benchmarks/gen_monorepo.py OUT --packages N --modules M
        [--test-seconds S] [--breaking K] [--seed 0] [--verify]

Layout: flat `pkgNN/modMM.py` with `tests/pkgNN/test_modMM.py`; one commit on `main`; a
`.venv` (no pip) that sees the generating interpreter's pytest through a `.pth` file.
Each module gets ~16 violations (~10 safe fixes, ~3 unsafe, ~3 without a fix) drawn from
benchmarks/snippets.txt, one construct per function, plus one or two cascades: two rules'
violations on one line (E711 and E712; D300 and D400 on one docstring), a fix that makes
another (SIM103 then E711), a fix that rewrites the `def` line around another violation
(UP006 with W291 below it), and typing imports that UP006 leaves unused (then F401, and
UP035 goes with the import). Real code is full of these; a benchmark without them hides
what they cost. `--breaking K` plants K behaviour-changing unsafe fixes in K modules (distinct
packages when K <= N), each caught by a test. A package's tests sleep S/N seconds once, so
the suite costs about S seconds plus pytest's own overhead (~5-8 s at 30x8 on 2 vCPUs).
Prints counts from `ruff check --output-format json` as JSON; `--verify` also applies
`ruff --fix` and `--fix --unsafe-fixes` to scratch copies and runs the tests on each.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

POOL = Path(__file__).with_name("snippets.txt")

IMPORTS = "base64 bisect calendar copy csv decimal fnmatch glob hashlib heapq json math"
IMPORTS += " operator pathlib shutil statistics string textwrap uuid zlib"  # not os/sys (I001)
TESTS_PER = 4
SELECT = '["E", "F", "W", "I", "UP", "B", "SIM", "C4", "RUF", "PIE", "RET", "PERF", "D300", "D400"]'
PYPROJECT = f"""[project]
name = "synthmono"
version = "0.0.0"
requires-python = ">=3.11"

[tool.ruff]
line-length = 100
target-version = "py311"

[tool.ruff.lint]
select = {SELECT}

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
"""
CONFTEST = """import time

import pytest


@pytest.fixture(scope="package", autouse=True)
def _package_cost():
    time.sleep({seconds!r})
"""


def parse_pool() -> dict[str, list[tuple[str, str, str]]]:
    pool: dict[str, list[tuple[str, str, str]]] = {}
    for block in ("\n" + POOL.read_text()).split("\n### ")[1:]:
        head, _, rest = block.partition("\n")
        rule, kind, *more = head.split()
        src, _, test = rest.partition("\n---\n")
        src = src.replace("<WS>", "   ").replace("<LONG>", "x" * 110)
        # A cascade: "RULE,RULE cascade APPLICABILITY,APPLICABILITY [typing=NAME,NAME]".
        rule = "+".join([rule, *more]) if kind == "cascade" else rule
        pool.setdefault(kind, []).append((rule, src + "\n", test.strip("\n")))
    return pool


def cascade_counts(spec: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(rule, applicability) of each violation a cascade holds, and the typing names it needs."""
    rules, kinds, *more = spec.split("+")
    names = more[0].removeprefix("typing=").split(",") if more else []
    return list(zip(rules.split(","), kinds.split(","), strict=True)), names


def build_module(
    rng: random.Random, pool: dict, name: str, breaking: tuple | None, counts: Counter
) -> tuple[str, str]:
    """Return (module source, test source), adding the expected violations to `counts`."""
    n_f401 = rng.randint(1, 3)
    picks = [("safe", s) for s in rng.choices(pool["safe"], k=rng.randint(8, 12) - n_f401)]
    n_unsafe = rng.randint(2, 4) - (breaking is not None)
    picks += [("unsafe", s) for s in rng.choices(pool["unsafe"], k=n_unsafe)]
    picks += [("none", s) for s in rng.choices(pool["none"], k=rng.randint(2, 4))]
    if pool["cascade"]:
        picks += [("cascade", s) for s in rng.sample(pool["cascade"], k=rng.randint(1, 2))]
    if breaking is not None:
        picks.append(("unsafe", breaking))
    rng.shuffle(picks)
    imports = sorted([*rng.sample(IMPORTS.split(), n_f401), "logging"])
    counts["F401", "safe"] += n_f401
    typing = sorted(
        {n for kind, (spec, *_) in picks if kind == "cascade" for n in cascade_counts(spec)[1]}
    )
    for _ in typing:
        counts["UP035", "none"] += 1  # one per deprecated name; it goes with the import
    # A used import keeps the block (and the file's formatting) when every F401 is fixed.
    block = "".join(f"import {i}\n" for i in imports)
    block += f"from typing import {', '.join(typing)}\n" if typing else ""
    block += "\nLOG = logging.getLogger(__name__)\n"
    parts = [f'"""{name}: synthetic lint debt."""', block]
    bodies: list[str] = []
    for i, (kind, (rule, source, test_body)) in enumerate(picks):
        if kind == "cascade":
            for pair in cascade_counts(rule)[0]:
                counts[pair] += 1
        else:
            counts[rule, kind] += 1
        src, test = source, test_body
        fn = f"{rule.split('+')[0].split(',')[0].lower()}_{i}"
        for key, value in {"CLS": f"Thing{i}", "FN": fn}.items():
            src, test = src.replace(key, value), test.replace(key, value)
        parts.append(src)
        bodies.append("".join(f"    {line}\n" for line in test.split("\n")))
    tests = []  # a test per TESTS_PER snippets keeps pytest's per-test overhead small
    for j in range(0, len(bodies), TESTS_PER):
        body = "".join(bodies[j : j + TESTS_PER])
        args = "tmp_path" if "tmp_path" in body else ""
        tests.append(f"def test_part{j // TESTS_PER}({args}):\n{body}")
    pkg, mod = name.split(".")
    head = "import pytest\n\n" if any("pytest." in t for t in tests) else ""
    test_src = f'"""Tests for {name}."""\n\n{head}from {pkg} import {mod} as m\n\n\n'
    return "\n\n".join(parts), test_src + "\n\n".join(tests)


def run(cmd: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, text=True, capture_output=True, check=False, **kw)


def make_venv(out: Path) -> None:
    try:
        import pytest  # noqa: PLC0415 - only the generating interpreter needs it
    except ImportError:
        sys.exit("gen_monorepo: the generating interpreter must have pytest installed")
    run(["python3", "-m", "venv", "--without-pip", ".venv"], out).check_returncode()
    py = out / ".venv/bin/python"
    site = run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], out)
    holder = Path(pytest.__file__).resolve().parent.parent
    Path(site.stdout.strip(), "_bench_pytest.pth").write_text(f"{holder}\n")


def generate(
    out: Path, n_pkg: int, n_mod: int, seconds: float, k: int, seed: int, *, cascades: bool = True
) -> dict:
    rng, pool = random.Random(seed), parse_pool()
    if not cascades:
        pool["cascade"] = []
    if out.exists() and any(out.iterdir()):
        sys.exit(f"gen_monorepo: {out} exists and is not empty")
    if k > n_pkg * n_mod:
        sys.exit("gen_monorepo: --breaking cannot exceed the number of modules")
    pkgs = rng.sample(range(n_pkg), k) if k <= n_pkg else [i % n_pkg for i in range(k)]
    slots = rng.sample(range(n_mod * (k // n_pkg + 1)), k) if k > n_pkg else []
    planted: dict[tuple[int, int], tuple] = {}
    kinds = pool["breaking"]
    for i, p in enumerate(pkgs):
        mod = slots[i] % n_mod if slots else rng.randrange(n_mod)
        while (p, mod) in planted:
            mod = (mod + 1) % n_mod
        planted[p, mod] = kinds[i % len(kinds)]
    counts: Counter = Counter()
    (out / "tests").mkdir(parents=True)
    (out / "pyproject.toml").write_text(PYPROJECT)
    (out / ".gitignore").write_text(".venv/\n__pycache__/\n.pytest_cache/\n")
    (out / "tests/__init__.py").write_text("")
    for p in range(n_pkg):
        pkg, tdir = out / f"pkg{p:02d}", out / f"tests/pkg{p:02d}"
        pkg.mkdir()
        tdir.mkdir()
        (pkg / "__init__.py").write_text(f'"""Synthetic package pkg{p:02d}."""\n')
        (tdir / "__init__.py").write_text("")
        (tdir / "conftest.py").write_text(CONFTEST.format(seconds=round(seconds / n_pkg, 4)))
        for m in range(n_mod):
            name = f"pkg{p:02d}.mod{m:02d}"
            src, test = build_module(rng, pool, name, planted.get((p, m)), counts)
            (pkg / f"mod{m:02d}.py").write_text(src)
            (tdir / f"test_mod{m:02d}.py").write_text(test)
    make_venv(out)
    git = ["git", "-c", "user.name=gen", "-c", "user.email=gen@example.invalid"]
    env = {"GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z"}
    run(["git", "init", "-q", "-b", "main"], out).check_returncode()
    run(["git", "add", "-A"], out).check_returncode()
    run([*git, "commit", "-q", "-m", "synthetic monorepo"], out, env={**os.environ, **env})
    breaking = sorted(f"{r}:pkg{p:02d}/mod{m:02d}.py" for (p, m), (r, *_) in planted.items())
    expected = {"safe": 0, "unsafe": 0, "none": 0}
    for (_rule, kind), n in counts.items():
        expected[kind] += n
    return {"expected": expected, "breaking": breaking}


def ruff_bin() -> str:
    local = Path(sys.executable).parent / "ruff"
    return str(local) if local.exists() else shutil.which("ruff") or "ruff"


def ruff_counts(repo: Path) -> dict:
    proc = run([ruff_bin(), "check", "--no-cache", "--output-format", "json", "."], repo)
    found = json.loads(proc.stdout)
    app = Counter((v.get("fix") or {}).get("applicability") or "none" for v in found)
    rules = Counter(v["code"] for v in found)
    return {"total": len(found), **{a: app[a] for a in ("safe", "unsafe", "none")}} | {
        "by_rule": dict(sorted(rules.items()))
    }


def failing_modules(repo: Path) -> tuple[list[str], int]:
    """Run the repo's tests; return (modules with a failing test, tests that passed)."""
    xml = repo.parent / f"{repo.name}-junit.xml"
    cmd = [".venv/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}"]
    run(cmd, repo)
    bad, passed = set(), 0
    for case in ET.parse(xml).iter("testcase"):  # noqa: S314 - our own pytest's JUnit XML
        if case.find("failure") is not None or case.find("error") is not None:
            bad.add(case.get("classname", "").removeprefix("tests.").replace(".test_", "/"))
        elif case.find("skipped") is None:
            passed += 1
    return sorted(bad), passed


def verify(repo: Path, breaking: list[str]) -> dict:
    result: dict = {}
    modes = {"base": [], "safe": ["--fix"], "unsafe": ["--fix", "--unsafe-fixes"]}
    with tempfile.TemporaryDirectory(prefix="genmono-") as tmp:
        for mode, flags in modes.items():
            copy = Path(tmp, mode)
            shutil.copytree(repo, copy, symlinks=True)
            if flags:
                run([ruff_bin(), "check", "--no-cache", *flags, "."], copy)
            bad, passed = failing_modules(copy)
            result[mode] = {"failing_modules": bad, "passed": passed} | ruff_counts(copy)
            del result[mode]["by_rule"]
    want = sorted(b.split(":")[1].removesuffix(".py") for b in breaking)
    result["ok"] = not result["base"]["failing_modules"] and not result["safe"]["failing_modules"]
    result["ok"] &= result["unsafe"]["failing_modules"] == want
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--packages", type=int, required=True)
    ap.add_argument("--modules", type=int, required=True)
    ap.add_argument("--test-seconds", type=float, default=12.0)
    ap.add_argument("--breaking", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verify", action="store_true", help="prove the counts on scratch copies")
    ap.add_argument(
        "--no-cascades", action="store_true", help="no cascades: the generator before 2026-11-27"
    )
    a = ap.parse_args()
    out = a.out.resolve()
    info = generate(
        out, a.packages, a.modules, a.test_seconds, a.breaking, a.seed, cascades=not a.no_cascades
    )
    info["counts"] = ruff_counts(out)
    exp = info["expected"]
    info["counts_match"] = all(info["counts"][k] == exp[k] for k in exp)
    if a.verify:
        info["verify"] = verify(out, info["breaking"])
    print(json.dumps(info, indent=1))
    sys.exit(0 if info["counts_match"] and info.get("verify", {}).get("ok", True) else 1)


if __name__ == "__main__":
    main()
