"""sandbox.proof._prove: what "proven" means, against a real repo, real ruff and real pytest.

One small repo (a package of six modules, each with an unused import, and a
test per module, plus one test that already fails at base) is shared by the
module; its base test results are taken once. Each test builds its own pool
and Prover on top.
"""

from __future__ import annotations

from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from fixbot.sandbox._errors import TamperError
from fixbot.sandbox._guard import MetadataGuard
from fixbot.sandbox._impact import build_impact_map
from fixbot.sandbox._isolation import Isolation, probe_isolation
from fixbot.sandbox._ruff import Ruff, default_ruff
from fixbot.sandbox._testrun import TestCommand, resolve_test_command
from fixbot.sandbox._worktree import WorktreePool
from fixbot.sandbox.proof._bisect import Bisection, changed_scopes
from fixbot.sandbox.proof._prove import Baseline, Candidate, Prover
from tests.conftest import git, init_repo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from fixbot.sandbox._types import TestResults, Verdict

pytestmark = pytest.mark.anyio

PYPROJECT = """
[tool.ruff]
line-length = 100

[tool.ruff.lint]
select = ["F", "E", "W", "I"]

[tool.pytest.ini_options]
# The throwaway venv sees fixbot's site-packages; anyio's plugin would double startup.
addopts = "-p no:anyio"
"""
MODULES = range(1, 7)
KNOWN_BUG = "tests/test_pkg.py::test_known_bug"


def module_source(n: int) -> str:
    """pkg/mN.py at base: format-clean, one unused import (F401)."""
    return f"import os\n\n\ndef f{n}(a, b):\n    return a + b\n"


def fixed_source(n: int) -> str:
    """pkg/mN.py with its F401 fixed and nothing else changed."""
    return f"def f{n}(a, b):\n    return a + b\n"


def broken_source(n: int) -> str:
    """pkg/mN.py with F401 fixed but its function now wrong."""
    return f"def f{n}(a, b):\n    return a - b\n"


def repo_files() -> dict[str, str]:
    """The shared repo's files."""
    tests = ["from pkg import " + ", ".join(f"m{n}" for n in MODULES), ""]
    for n in MODULES:
        tests += ["", f"def test_m{n}():", f"    assert m{n}.f{n}(2, 3) == 5", ""]
    tests += ["", "def test_known_bug():", "    assert m6.f6(1, 1) == 3", ""]
    return {
        "pyproject.toml": PYPROJECT,
        "pkg/__init__.py": "",
        **{f"pkg/m{n}.py": module_source(n) for n in MODULES},
        "tests/__init__.py": "",
        "tests/test_pkg.py": "\n".join(tests),
    }


@asynccontextmanager
async def make_prover(
    repo: Path,
    root: Path,
    *,
    results: TestResults | None = None,
    isolation: Isolation | None = None,
    command: TestCommand | None = None,
    size: int = 2,
) -> AsyncIterator[Prover]:
    """A pool and a Prover at the repo's HEAD; the baseline is run unless given."""
    base = git(repo, "rev-parse", "HEAD").strip()
    command = command or resolve_test_command(repo, None)
    assert command is not None
    async with WorktreePool(repo, base, root, size=size) as pool:
        prover = Prover(
            pool=pool,
            select=None,
            ruff_executable=default_ruff(),
            python=command.python,
            isolation=isolation or Isolation(),
            test_command=command,
            baseline=Baseline(results),
            test_timeout=120,
        )
        if results is None:
            prover.baseline = Baseline(await prover.run_suite({}, counted=False))
        yield prover


async def fingerprints(repo: Path, path: str, source: bytes, rule: str) -> Counter[str]:
    """Real fingerprints of `rule`'s violations in `source`, noqa ignored as the prover does."""
    lint = await Ruff(repo).lint_source(path, source, ignore_noqa=True)
    return Counter(v.fingerprint for v in lint.violations if v.rule == rule)


async def candidate(repo: Path, n: int, after: str, *, key: str | None = None) -> Candidate:
    """A candidate for pkg/mN.py that targets its F401."""
    path = f"pkg/m{n}.py"
    before = module_source(n).encode()
    return Candidate(
        key=key or path,
        agent="ruff",
        before={path: before},
        after={path: after.encode()},
        targets=await fingerprints(repo, path, before, "F401"),
    )


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TestResults]:
    """The shared repo and its test results at base (run once, through a Prover)."""
    repo = init_repo(tmp_path_factory.mktemp("prove") / "repo", repo_files())

    async def baseline() -> TestResults:
        async with make_prover(repo, repo.parent / "wt-base") as prover:
            assert prover.baseline.results is not None
            return prover.baseline.results

    return repo, anyio.run(baseline)


@pytest.fixture
def repo(shared: tuple[Path, TestResults]) -> Path:
    """The shared repo."""
    return shared[0]


@pytest.fixture
async def prover(shared: tuple[Path, TestResults], tmp_path: Path) -> AsyncIterator[Prover]:
    """A fresh pool and Prover on the shared repo, with its base results."""
    async with make_prover(shared[0], tmp_path / "wt", results=shared[1]) as made:
        yield made


async def prove_broken_m1(
    tmp_path: Path, tests: str, *, graph: bool = False
) -> tuple[Verdict, Prover]:
    """pkg/m1.py broken (`a - b`) beside one test module: the verdict, and the prover."""
    files = {"pyproject.toml": PYPROJECT, "pkg/__init__.py": "", "pkg/m1.py": module_source(1)}
    repo = init_repo(tmp_path / "repo", files | {"tests/test_m.py": tests})
    async with make_prover(repo, tmp_path / "wt") as prover:
        if graph:
            prover.impact = await build_impact_map(repo, default_ruff())
        verdicts = await prover.prove([await candidate(repo, 1, broken_source(1))], {})
    return verdicts["pkg/m1.py"], prover


class TestBaseline:
    def test_base_results(self, shared: tuple[Path, TestResults]) -> None:
        """At base every module test passes and the known bug fails."""
        results = shared[1]
        assert results.per_test
        assert results.outcomes == {
            **{f"tests/test_pkg.py::test_m{n}": "passed" for n in MODULES},
            KNOWN_BUG: "failed",
        }
        assert Baseline(results).already_failing == {KNOWN_BUG}

    def test_targets_are_real(self, repo: Path) -> None:
        """The fingerprints used below are ruff's: one F401 per module."""
        found = anyio.run(fingerprints, repo, "pkg/m1.py", module_source(1).encode(), "F401")
        assert sum(found.values()) == 1


class TestStaticChecks:
    async def test_good_candidate_accepted(self, repo: Path, prover: Prover) -> None:
        """Removing the unused import, nothing else: proven."""
        verdicts = await prover.prove([await candidate(repo, 1, fixed_source(1))], {})
        verdict = verdicts["pkg/m1.py"]
        assert verdict.accepted, verdict
        assert verdict.reason == "proven"
        assert prover.stats.test_runs == 1

    async def test_noqa_is_policy(self, repo: Path, prover: Prover) -> None:
        """Hiding the finding with a noqa comment is refused before anything runs."""
        hidden = module_source(1).replace("import os", "import os  # noqa: F401")
        verdict = (await prover.prove([await candidate(repo, 1, hidden)], {}))["pkg/m1.py"]
        assert not verdict.accepted
        assert verdict.reason == "policy"
        assert "noqa" in verdict.detail
        assert prover.stats.test_runs == 0
        assert prover.stats.lint_runs == 0

    async def test_syntax_error_is_compile(self, repo: Path, prover: Prover) -> None:
        """A candidate that does not compile is rejected as 'compile'."""
        broken = "def f1(a, b:\n    return a + b\n"
        verdict = (await prover.prove([await candidate(repo, 1, broken)], {}))["pkg/m1.py"]
        assert not verdict.accepted
        assert verdict.reason == "compile"
        assert "SyntaxError" in verdict.detail
        assert prover.stats.test_runs == 0

    async def test_new_violation_is_lint(self, repo: Path, prover: Prover) -> None:
        """Fixing F401 but adding an unused variable (F841): 'lint', the F841 listed."""
        worse = "def f1(a, b):\n    unused = 1\n    return a + b\n"
        verdict = (await prover.prove([await candidate(repo, 1, worse)], {}))["pkg/m1.py"]
        assert not verdict.accepted
        assert verdict.reason == "lint"
        assert len(verdict.new_violations) == 1
        assert verdict.new_violations[0].startswith("F841 pkg/m1.py:2:")
        assert "new violations" in verdict.detail

    async def test_target_not_gone_is_lint(self, repo: Path, prover: Prover) -> None:
        """A change that leaves the targeted F401 in place is 'lint', not proven."""
        elsewhere = module_source(1).replace("return a + b", "return b + a")
        verdict = (await prover.prove([await candidate(repo, 1, elsewhere)], {}))["pkg/m1.py"]
        assert not verdict.accepted
        assert verdict.reason == "lint"
        remain = "targeted violation remains: F401 pkg/m1.py:1: `os` imported but unused"
        assert remain in verdict.detail
        assert verdict.new_violations == ()

    async def test_unformatting_a_clean_file_is_format(self, repo: Path, prover: Prover) -> None:
        """A format-clean file the candidate leaves unformatted is rejected as 'format'."""
        ugly = "def f1(a,b):\n    return a+b\n"
        verdict = (await prover.prove([await candidate(repo, 1, ugly)], {}))["pkg/m1.py"]
        assert not verdict.accepted
        assert verdict.reason == "format"
        assert "pkg/m1.py" in verdict.detail

    async def test_each_candidate_judged_alone(self, repo: Path, prover: Prover) -> None:
        """In one batch, each static failure stays with its own candidate."""
        cands = [
            await candidate(repo, 1, fixed_source(1)),
            await candidate(repo, 2, "def f2(a, b:\n"),
            await candidate(repo, 3, "def f3(a,b):\n    return a+b\n"),
            await candidate(repo, 4, module_source(4).replace("os", "os  # noqa")),
        ]
        verdicts = await prover.prove(cands, {})
        reasons = {key: v.reason for key, v in verdicts.items()}
        assert reasons == {
            "pkg/m1.py": "proven",
            "pkg/m2.py": "compile",
            "pkg/m3.py": "format",
            "pkg/m4.py": "policy",
        }

    async def test_checked_content_is_not_checked_again(self, repo: Path, prover: Prover) -> None:
        """The gate's candidates (no targets) skip the checks their content already passed."""
        cand = await candidate(repo, 3, fixed_source(3))
        assert (await prover.prove([cand], {}))["pkg/m3.py"].accepted
        lint_runs = prover.stats.lint_runs
        gate = replace(cand, targets=Counter(), accepted_chain=True)
        assert (await prover.prove([gate], {}))["pkg/m3.py"].accepted
        assert prover.stats.lint_runs == lint_runs
        # Only an accepted chain may skip: the same content as anything else is judged
        # (from the lint kept by content), so a target that is not there is caught.
        ghost = replace(cand, targets=Counter({"no-such-finding": 1}))
        assert not (await prover.prove([ghost], {}))["pkg/m3.py"].accepted
        # Content never checked is checked, accepted chain or not.
        broken = replace(gate, after={"pkg/m3.py": b"def f3(:\n"})
        assert (await prover.prove([broken], {}))["pkg/m3.py"].reason == "compile"
        assert prover.stats.lint_runs > lint_runs

    async def test_builds_on_accepted_ground(self, repo: Path, prover: Prover) -> None:
        """A second step is judged against the accepted content (`ground`), not base."""
        first = await candidate(repo, 1, fixed_source(1))
        assert (await prover.prove([first], {}))["pkg/m1.py"].accepted
        ground = {"pkg/m1.py": fixed_source(1).encode()}
        # The next step adds a finding that was not there before: caught against ground.
        second = Candidate(
            key="pkg/m1.py",
            agent="ruff",
            before=ground,
            after={"pkg/m1.py": b"def f1(a, b):\n    x = 1\n    return a + b\n"},
        )
        verdict = (await prover.prove([second], ground))["pkg/m1.py"]
        assert verdict.reason == "lint"
        assert verdict.new_violations[0].startswith("F841")


class TestTests:
    async def test_breaking_a_test_is_rejected(self, repo: Path, prover: Prover) -> None:
        """A candidate that breaks test_m3 is rejected as 'tests' naming that test."""
        verdict = (await prover.prove([await candidate(repo, 3, broken_source(3))], {}))[
            "pkg/m3.py"
        ]
        assert not verdict.accepted
        assert verdict.reason == "tests"
        assert verdict.failing_tests == ("tests/test_pkg.py::test_m3",)
        # It passed at base on rerun: a real failure, never excused as flaky.
        assert prover.baseline.flaky == set()
        assert prover.stats.reruns_at_base >= 1

    async def test_batch_bisects_to_the_culprits(self, repo: Path, prover: Prover) -> None:
        """Six candidates, two of which break tests: exactly those two are rejected."""
        culprits = {2, 5}
        cands = [
            await candidate(repo, n, broken_source(n) if n in culprits else fixed_source(n))
            for n in MODULES
        ]
        status = git(repo, "status", "--porcelain", "--untracked-files=all")
        verdicts = await prover.prove(cands, {})
        for n in MODULES:
            verdict = verdicts[f"pkg/m{n}.py"]
            if n in culprits:
                assert verdict.reason == "tests", verdict
                assert verdict.failing_tests == (f"tests/test_pkg.py::test_m{n}",)
            else:
                assert verdict.accepted, verdict
        # Reported, not asserted: how many suite runs the bisection took for 6 candidates.
        stats = prover.stats
        print(f"batch of 6, 2 culprits: {stats.test_runs} runs, {stats.reruns_at_base} at base")  # noqa: T201
        assert prover.stats.test_runs >= 3
        # Proving writes only into worktrees: the user's checkout is as it was.
        assert git(repo, "status", "--porcelain", "--untracked-files=all") == status
        assert (repo / "pkg" / "m2.py").read_text() == module_source(2)

    async def test_already_failing_never_blocks(self, repo: Path, prover: Prover) -> None:
        """A test failing at base may fail differently under a patch; the patch is proven."""
        source = (
            "def f6(a, b):\n    if a == b == 1:\n        raise ValueError(a)\n    return a + b\n"
        )
        verdict = (await prover.prove([await candidate(repo, 6, source)], {}))["pkg/m6.py"]
        assert verdict.accepted, verdict
        assert prover.baseline.already_failing == {KNOWN_BUG}
        assert prover.stats.reruns_at_base == 0

    async def test_a_real_failure_is_rerun_at_base_by_its_id(self, tmp_path: Path) -> None:
        """A test that passes alone at base twice is stable: its file is not rerun."""
        counter = tmp_path / "counter"
        tests = f"""
            from pathlib import Path

            from pkg import m1


            def test_count():
                with Path({str(counter)!r}).open("a") as out:
                    out.write("x")


            def test_m1():
                assert m1.f1(2, 3) == 5
        """
        verdict, prover = await prove_broken_m1(tmp_path, tests, graph=True)
        assert verdict.failing_tests == ("tests/test_m.py::test_m1",)
        assert prover.baseline.stable == {"tests/test_m.py::test_m1"}
        assert prover.stats.reruns_at_base == 2
        # The baseline and the patch's run; the reruns at base ran test_m1 alone.
        assert counter.read_text() == "xx"

    async def test_an_xfail_that_now_fails_is_no_flakiness(self, tmp_path: Path) -> None:
        """xfailed at base, failed under the patch, xfailed again at base: refused."""
        tests = """
            import pytest

            from pkg import m1


            @pytest.mark.xfail(raises=ZeroDivisionError, strict=True)
            def test_known():
                assert 1 / (m1.f1(2, 3) - 5)
        """
        verdict, prover = await prove_broken_m1(tmp_path, tests)
        assert verdict.failing_tests == ("tests/test_m.py::test_known",)
        assert not prover.baseline.flaky

    async def test_flaky_at_base_is_excused(self, tmp_path: Path) -> None:
        """A test that flips at base is excused, recorded as flaky, and the patch proven."""
        counter = tmp_path / "counter"
        flaky = f"""
            from pathlib import Path

            from pkg import m1

            COUNTER = Path({str(counter)!r})


            def test_flaky():
                runs = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
                COUNTER.write_text(str(runs))
                assert runs % 2 == 1


            def test_m1():
                assert m1.f1(2, 3) == 5
        """
        repo = init_repo(
            tmp_path / "repo",
            {
                "pyproject.toml": PYPROJECT,
                "pkg/__init__.py": "",
                "pkg/m1.py": module_source(1),
                "tests/test_flaky.py": flaky,
            },
        )
        async with make_prover(repo, tmp_path / "wt") as prover:
            assert prover.baseline.results is not None
            assert prover.baseline.results.outcomes["tests/test_flaky.py::test_flaky"] == "passed"
            verdict = (await prover.prove([await candidate(repo, 1, fixed_source(1))], {}))[
                "pkg/m1.py"
            ]
            assert verdict.accepted, verdict
            assert prover.baseline.flaky == {"tests/test_flaky.py::test_flaky"}
            assert prover.stats.reruns_at_base >= 1
            # Flaky at base does not excuse a real break of another test.
            broken = await candidate(repo, 1, broken_source(1))
            verdict = (await prover.prove([broken], {}))["pkg/m1.py"]
            assert verdict.reason == "tests"
            assert verdict.failing_tests == ("tests/test_flaky.py::test_m1",)

    async def test_interaction_is_narrowed_down(self, tmp_path: Path) -> None:
        """Two fixes good alone but not together: one is refused, the others land."""
        interplay = """
            from pkg import m1, m2, m3, m4


            def test_not_both():
                assert not (m1.f1(0, 0) == 1 and m2.f2(0, 0) == 1)


            def test_sums():
                assert m3.f3(2, 3) == 5
                assert m4.f4(2, 3) == 5
        """
        repo = init_repo(
            tmp_path / "repo",
            {
                "pyproject.toml": PYPROJECT,
                "pkg/__init__.py": "",
                **{f"pkg/m{n}.py": module_source(n) for n in range(1, 5)},
                "tests/test_interplay.py": interplay,
            },
        )
        plus_one = "def f{n}(a, b):\n    return a + b + 1 if a == b == 0 else a + b\n"
        async with make_prover(repo, tmp_path / "wt") as prover:
            cands = [await candidate(repo, n, fixed_source(n)) for n in (3, 4)]
            cands += [await candidate(repo, n, plus_one.format(n=n)) for n in (1, 2)]
            verdicts = await prover.prove(cands, {}, whole=True)
        accepted = {k for k, v in verdicts.items() if v.accepted}
        refused = {k: v for k, v in verdicts.items() if not v.accepted}
        assert len(refused) == 1, verdicts
        (key, verdict), *_ = refused.items()
        assert key in {"pkg/m1.py", "pkg/m2.py"}
        assert verdict.reason == "tests"
        assert "together" in verdict.detail
        assert {"pkg/m3.py", "pkg/m4.py"} <= accepted

    async def test_only_suspects_are_bisected(self, tmp_path: Path) -> None:
        """With the import graph, a failing batch narrows to the files that reach the failure."""
        files = {
            "pyproject.toml": PYPROJECT,
            "pkg/__init__.py": "",
            **{f"pkg/m{n}.py": module_source(n) for n in MODULES},
            **{
                f"tests/test_m{n}.py": f"from pkg import m{n}\n\n\n"
                f"def test_m{n}():\n    assert m{n}.f{n}(2, 3) == 5\n"
                for n in MODULES
            },
        }
        repo = init_repo(tmp_path / "repo", files)
        impact = await build_impact_map(repo, default_ruff())
        async with make_prover(repo, tmp_path / "wt") as prover:
            prover.impact = impact
            cands = [await candidate(repo, n, fixed_source(n)) for n in MODULES if n != 4]
            cands.append(await candidate(repo, 4, broken_source(4)))
            verdicts = await prover.prove(cands, {})
            runs = prover.stats.test_runs - prover.stats.reruns_at_base
        assert {k for k, v in verdicts.items() if not v.accepted} == {"pkg/m4.py"}
        assert verdicts["pkg/m4.py"].failing_tests == ("tests/test_m4.py::test_m4",)
        # The batch, then the one suspect alone (besides the flakiness check at base):
        # no bisection over the innocent five.
        assert runs == 2, runs

    async def test_a_changed_test_module_is_probed_apart(self, tmp_path: Path) -> None:
        """Where every module reaches every test, the failing test's own file goes first."""
        names = ", ".join(f"m{n}" for n in MODULES)
        every = f"from pkg import {names}\n\nALL = ({names})"
        files = {
            "pyproject.toml": PYPROJECT,
            "pkg/__init__.py": "",
            **{f"pkg/m{n}.py": module_source(n) for n in MODULES},
            **{
                f"tests/test_m{n}.py": f"import os\n\n{every}\n\n\n"
                f"def test_m{n}():\n    assert m{n}.f{n}(2, 3) == 5\n"
                for n in (1, 3)
            },
        }
        repo = init_repo(tmp_path / "repo", files)
        impact = await build_impact_map(repo, default_ruff())
        path = "tests/test_m3.py"
        before = files[path].encode()
        # Its F401 fixed, and its own assertion broken with it.
        after = before.replace(b"import os\n\n", b"").replace(b"== 5", b"== 6")
        async with make_prover(repo, tmp_path / "wt") as prover:
            prover.impact = impact
            cands = [await candidate(repo, n, fixed_source(n)) for n in MODULES]
            targets = await fingerprints(repo, path, before, "F401")
            cands.append(Candidate(path, "ruff", {path: before}, {path: after}, targets))
            verdicts = await prover.prove(cands, {}, whole=True)
            runs = prover.stats.test_runs - prover.stats.reruns_at_base
        assert {k for k, v in verdicts.items() if not v.accepted} == {path}
        # The batch, then the test module and the six library modules side by side;
        # halving (3, then 2, then 2) took 7.
        assert runs == 3, runs

    async def test_probed_isolation(self, shared: tuple[Path, TestResults], tmp_path: Path) -> None:
        """Under the strongest isolation this machine allows, the tests really run."""
        repo, results = shared
        command = resolve_test_command(repo, None)
        assert command is not None
        isolation = await probe_isolation()
        assert set(isolation.facts) == {
            "environment",
            "network",
            "processes",
            "filesystem",
            "limits",
        }
        async with make_prover(
            repo, tmp_path / "wt", results=results, isolation=isolation
        ) as prover:
            bad = await candidate(repo, 4, broken_source(4))
            verdict = (await prover.prove([bad], {}))["pkg/m4.py"]
        # Only the one broken test: the others ran and passed under the wrapper.
        assert verdict.reason == "tests"
        assert verdict.failing_tests == ("tests/test_pkg.py::test_m4",)

    async def test_lint_only_runs_no_tests(self, repo: Path, tmp_path: Path) -> None:
        """Without a test command, a behaviour change passes on lint alone (and says so)."""
        base = git(repo, "rev-parse", "HEAD").strip()
        async with WorktreePool(repo, base, tmp_path / "wt", size=1) as pool:
            prover = Prover(
                pool=pool,
                select=None,
                ruff_executable=default_ruff(),
                python=str(repo / ".venv" / "bin" / "python"),
                isolation=Isolation(),
                test_command=None,
                baseline=Baseline(None),
            )
            verdicts = await prover.prove([await candidate(repo, 3, broken_source(3))], {})
        assert verdicts["pkg/m3.py"].accepted
        assert prover.stats.test_runs == 0


def one_test_per_module(*, also_reach: dict[int, int] | None = None) -> dict[str, str]:
    """A repo whose tests/test_mN.py imports only pkg/mN.py (and mK where also_reach[N] = K)."""
    also_reach = also_reach or {}
    tests = {}
    for n in MODULES:
        extra = f", m{also_reach[n]}" if n in also_reach else ""
        tests[f"tests/test_m{n}.py"] = (
            f"from pkg import m{n}{extra}\n\n\ndef test_m{n}():\n    assert m{n}.f{n}(2, 3) == 5\n"
        )
    return {
        "pyproject.toml": PYPROJECT,
        "pkg/__init__.py": "",
        **{f"pkg/m{n}.py": module_source(n) for n in MODULES},
        **tests,
    }


async def prove_with_graph(
    repo: Path, where: Path, broken: set[int], *, narrowed: bool
) -> tuple[dict[str, Verdict], int]:
    """Every module's F401 fixed (those in `broken` wrongly), proven whole with the import
    graph: the verdicts, and the test runs it took besides reruns at base."""
    impact = await build_impact_map(repo, default_ruff())
    async with make_prover(repo, where) as prover:
        prover.impact = impact
        cands = [
            replace(
                await candidate(repo, n, broken_source(n) if n in broken else fixed_source(n)),
                narrowed=narrowed,
            )
            for n in MODULES
        ]
        verdicts = await prover.prove(cands, {}, whole=True)
        return verdicts, prover.stats.test_runs - prover.stats.reruns_at_base


TEST_CLASSES = """from pkg import m1


class TestBase:
    def test_one(self):
        assert m1.f1(2, 3) == 5

    def test_two(self):
        assert m1.f1(1, 1) == 2


class TestMore(TestBase):
    pass


def test_free():
    assert m1.f1(0, 0) == 0
"""


def edit_of_test_module(
    tmp_path: Path, source: str, old: bytes, new: bytes
) -> tuple[Path, Candidate]:
    """A repo whose tests/test_m.py is `source`, and the candidate that makes `old` `new` there."""
    path = "tests/test_m.py"
    files = {"pyproject.toml": PYPROJECT, "pkg/__init__.py": "", "pkg/m1.py": module_source(1)}
    repo = init_repo(tmp_path / "repo", files | {path: source})
    before = source.encode()
    after = before.replace(old, new)
    return repo, Candidate(path, "ruff", {path: before}, {path: after}, Counter())


class TestSelectionByFunction:
    """An edit inside test functions runs those tests, not their whole module."""

    async def test_an_edited_test_runs_with_its_inherited_copies_alone(
        self, tmp_path: Path
    ) -> None:
        """A broken assertion in one test: that test in each class runs, and is refused."""
        path = "tests/test_m.py"
        files = {
            "pyproject.toml": PYPROJECT,
            "pkg/__init__.py": "",
            "pkg/m1.py": module_source(1),
            path: TEST_CLASSES,
        }
        repo = init_repo(tmp_path / "repo", files)
        before = TEST_CLASSES.encode()
        after = before.replace(b"(2, 3) == 5", b"(2, 3) == 6")
        broken = Candidate(path, "ruff", {path: before}, {path: after}, Counter())
        library = await candidate(repo, 1, fixed_source(1))
        async with make_prover(repo, tmp_path / "wt") as prover:
            prover.impact = await build_impact_map(repo, default_ruff())
            assert prover.select_tests(changed_scopes([broken])) == [
                f"{path}::TestBase::test_one",
                f"{path}::TestMore::test_one",
            ]
            assert prover.tests_to_run([broken]) == 2
            # A change to what the module imports reaches every test in it.
            assert prover.select_tests(changed_scopes([broken, library])) == [path]
            assert prover.tests_to_run([broken, library]) == 5
            verdict = (await prover.prove([broken], {}))[path]
        assert verdict.reason == "tests"
        assert verdict.failing_tests == (
            f"{path}::TestBase::test_one",
            f"{path}::TestMore::test_one",
        )

    async def test_an_edit_outside_test_functions_runs_the_module(self, tmp_path: Path) -> None:
        """A changed import line is seen by every test of the module."""
        path = "tests/test_m.py"
        files = {"pyproject.toml": PYPROJECT, "pkg/__init__.py": "", "pkg/m1.py": module_source(1)}
        repo = init_repo(tmp_path / "repo", files | {path: "import os\n" + TEST_CLASSES})
        before = ("import os\n" + TEST_CLASSES).encode()
        fixed = Candidate(path, "ruff", {path: before}, {path: TEST_CLASSES.encode()}, Counter())
        async with make_prover(repo, tmp_path / "wt") as prover:
            prover.impact = await build_impact_map(repo, default_ruff())
            assert prover.select_tests(changed_scopes([fixed])) == [path]

    async def test_a_class_attribute_runs_that_class_and_its_subclasses(
        self, tmp_path: Path
    ) -> None:
        """A broken class attribute: the tests of its class and subclass run, and refuse it."""
        path = "tests/test_m.py"
        source = TEST_CLASSES.replace("class TestBase:\n", "class TestBase:\n    offset = 0\n\n")
        source = source.replace("(2, 3) == 5", "(2, 3) + self.offset == 5")
        repo, broken = edit_of_test_module(tmp_path, source, b"offset = 0", b"offset = 1")
        async with make_prover(repo, tmp_path / "wt") as prover:
            prover.impact = await build_impact_map(repo, default_ruff())
            assert prover.select_tests(changed_scopes([broken])) == [
                f"{path}::{cls}::{test}"
                for cls in ("TestBase", "TestMore")
                for test in ("test_one", "test_two")
            ]
            verdict = (await prover.prove([broken], {}))[path]
        assert verdict.failing_tests == (
            f"{path}::TestBase::test_one",
            f"{path}::TestMore::test_one",
        )

    async def test_a_class_docstring_runs_that_class(self, tmp_path: Path) -> None:
        """D400 on a class docstring: that class's tests run (a framework may read it)."""
        path = "tests/test_m.py"
        source = TEST_CLASSES.replace(
            "class TestMore(TestBase):\n", 'class TestMore(TestBase):\n    """More"""\n'
        )
        repo, fixed = edit_of_test_module(tmp_path, source, b'"More"', b'"More."')
        async with make_prover(repo, tmp_path / "wt") as prover:
            prover.impact = await build_impact_map(repo, default_ruff())
            assert prover.select_tests(changed_scopes([fixed])) == [
                f"{path}::TestMore::test_one",
                f"{path}::TestMore::test_two",
            ]
            assert (await prover.prove([fixed], {}))[path].accepted

    async def test_a_test_relying_on_the_one_before_is_not_excused_as_flaky(
        self, tmp_path: Path
    ) -> None:
        """Rerun at base in its whole file, a test that needs the one before it passes
        there: breaking it is a problem, not flakiness (alone, it failed at base too)."""
        path = "tests/test_m.py"
        source = ORDERED.replace('STATE["x"] == 1', 'STATE["x"] == 2').encode()
        repo = init_repo(tmp_path / "repo", {"pyproject.toml": PYPROJECT, path: ORDERED})
        async with make_prover(repo, tmp_path / "wt") as prover:
            prover.impact = await build_impact_map(repo, default_ruff())
            problems = await prover.test_problems({path: source}, [path])
            assert problems == {f"{path}::test_a": "failed"}
            assert not prover.baseline.flaky

    async def test_an_edit_of_a_test_that_reads_shared_state_runs_its_module(
        self, tmp_path: Path
    ) -> None:
        """test_a reads what test_setup writes: its edit runs the whole module."""
        path = "tests/test_m.py"
        repo = init_repo(tmp_path / "repo", {"pyproject.toml": PYPROJECT, path: ORDERED})
        before = ORDERED.encode()
        after = before.replace(b"[1, 2] == [1, 2]", b"[1, 2] == [1, 2]  # same")
        edit = Candidate(path, "ruff", {path: before}, {path: after}, Counter())
        async with make_prover(repo, tmp_path / "wt") as prover:
            prover.impact = await build_impact_map(repo, default_ruff())
            assert prover.select_tests(changed_scopes([edit])) == [path]


HIDDEN_ORDER = """import builtins


def test_setup():
    setattr(builtins, "_fixbot_seen", 1)


def test_a():
    assert getattr(builtins, "_fixbot_seen", 0) == 1
    assert [1, 2] == [1, 2]
"""


class TestHiddenOrder:
    """A test that relies on the one before it through state no name shows."""

    async def test_its_narrowed_failure_is_judged_again_in_its_whole_file(
        self, tmp_path: Path
    ) -> None:
        """Alone it fails at base too: the file runs whole, the harmless edit passes, and
        the file is never narrowed again; an edit that really breaks it is refused."""
        path = "tests/test_m.py"
        repo = init_repo(tmp_path / "repo", {"pyproject.toml": PYPROJECT, path: HIDDEN_ORDER})
        before = HIDDEN_ORDER.encode()
        harmless = before.replace(b"[1, 2] == [1, 2]", b"[1, 2] == [1, 2]  # same")
        breaking = harmless.replace(b", 0) == 1", b", 0) == 2")
        edit = Candidate(path, "ruff", {path: before}, {path: harmless}, Counter())
        async with make_prover(repo, tmp_path / "wt") as prover:
            prover.impact = await build_impact_map(repo, default_ruff())
            assert prover.select_tests(changed_scopes([edit])) == [f"{path}::test_a"]
            assert (await prover.prove([edit], {}))[path].accepted
            assert prover.baseline.needs_file == {f"{path}::test_a"}
            assert not prover.baseline.flaky
            assert prover.select_tests(changed_scopes([edit])) == [path]
            bad = Candidate(path, "ruff", {path: before}, {path: breaking}, Counter())
            verdict = (await prover.prove([bad], {}))[path]
        assert verdict.failing_tests == (f"{path}::test_a",)


ORDERED = """STATE = {}


def test_setup():
    STATE["x"] = 1


def test_a():
    assert STATE["x"] == 1
    assert [1, 2] == [1, 2]
"""


class TestPinnedBlame:
    """A candidate its caller narrows down is refused from the batch run, when the graph pins it."""

    async def test_pinned_candidate_needs_no_run_of_its_own(self, tmp_path: Path) -> None:
        """The batch's failing test reaches only m4: m4 is refused after that one run."""
        repo = init_repo(tmp_path / "repo", one_test_per_module())
        verdicts, runs = await prove_with_graph(repo, tmp_path / "wt", {4}, narrowed=True)
        assert {k for k, v in verdicts.items() if not v.accepted} == {"pkg/m4.py"}
        assert verdicts["pkg/m4.py"].failing_tests == ("tests/test_m4.py::test_m4",)
        # The batch alone, besides the flakiness check at base.
        assert runs == 1, runs

    async def test_pinned_single_fixes_each_run_alone_at_once(self, tmp_path: Path) -> None:
        """Two single fixes, each pinned by its own failing test: each runs alone, side by side."""
        repo = init_repo(tmp_path / "repo", one_test_per_module())
        verdicts, runs = await prove_with_graph(repo, tmp_path / "wt", {2, 4}, narrowed=False)
        assert {k for k, v in verdicts.items() if not v.accepted} == {"pkg/m2.py", "pkg/m4.py"}
        assert verdicts["pkg/m2.py"].failing_tests == ("tests/test_m2.py::test_m2",)
        # The batch, then m2 and m4 each alone: no run of the two together, no halving.
        assert runs == 3, runs

    @staticmethod
    async def flags_together(tmp_path: Path, *, probe: bool, **prove: Any) -> dict[str, Verdict]:
        """m1 and m2 each set a flag their tests fail on only when both are set (state the
        graph cannot see); m3 and m4 are harmless. The verdicts on the four."""
        check = (
            "import builtins\n\nfrom pkg import m{n}\n\n\ndef test_m{n}():\n"
            "    assert not (getattr(builtins, 'FLAG1', 0) and getattr(builtins, 'FLAG2', 0))\n"
        )
        files = one_test_per_module()
        files |= {f"tests/test_m{n}.py": check.format(n=n) for n in (1, 2)}
        repo = init_repo(tmp_path / "repo", files)
        impact = await build_impact_map(repo, default_ruff())
        flagged = "import builtins\n\nbuiltins.FLAG{n} = 1\n\n\ndef f{n}(a, b):\n    return a + b\n"
        async with make_prover(repo, tmp_path / "wt") as prover:
            prover.impact = impact
            cands = [await candidate(repo, n, flagged.format(n=n)) for n in (1, 2)]
            cands += [await candidate(repo, n, fixed_source(n)) for n in (3, 4)]
            return await prover.prove([replace(c, probe=probe) for c in cands], {}, **prove)

    async def test_pinned_fixes_that_pass_alone_are_proven_together(self, tmp_path: Path) -> None:
        """Two pinned fixes failing only together (state the graph cannot see): one stands."""
        verdicts = await self.flags_together(tmp_path, probe=False, whole=True)
        refused = {k: v for k, v in verdicts.items() if not v.accepted}
        assert len(refused) == 1, verdicts
        (key, verdict), *_ = refused.items()
        assert key in {"pkg/m1.py", "pkg/m2.py"}
        assert "together" in verdict.detail
        assert verdicts["pkg/m3.py"].accepted
        assert verdicts["pkg/m4.py"].accepted

    async def test_probes_that_fail_only_together_are_both_proven(self, tmp_path: Path) -> None:
        """The same fixes as probes: each passed a run of its own half, and a probe's pass
        lands nothing, so neither is refused for the other (their chains meet later)."""
        verdicts = await self.flags_together(tmp_path, probe=True, whole=True)
        assert all(v.accepted for v in verdicts.values()), verdicts

    async def test_broken_test_modules_beside_a_library_change_each_run_alone(
        self, tmp_path: Path
    ) -> None:
        """Two test modules break their own tests beside a change every test reaches: each
        module runs alone at once, beside the library change, and is refused."""
        repo = init_repo(tmp_path / "repo", one_test_per_module())
        impact = await build_impact_map(repo, default_ruff())
        cands = [
            Candidate(
                "pkg/__init__.py",
                "ruff",
                {"pkg/__init__.py": b""},
                {"pkg/__init__.py": b'"""The package."""\n'},
                Counter(),
            )
        ]
        for n in (2, 4):
            path = f"tests/test_m{n}.py"
            before = (repo / path).read_bytes()
            after = before.replace(b"== 5", b"== 6")
            cands.append(Candidate(path, "ruff", {path: before}, {path: after}, Counter()))
        async with make_prover(repo, tmp_path / "wt") as prover:
            prover.impact = impact
            verdicts = await prover.prove(cands, {}, whole=True)
            runs = prover.stats.test_runs - prover.stats.reruns_at_base
        assert {k for k, v in verdicts.items() if not v.accepted} == {
            "tests/test_m2.py",
            "tests/test_m4.py",
        }
        assert verdicts["tests/test_m4.py"].failing_tests == ("tests/test_m4.py::test_m4",)
        # The batch; then the library change, and each test module alone, side by side.
        assert runs == 4, runs

    async def test_a_part_runs_only_the_tests_the_rest_of_its_batch_reached(
        self, tmp_path: Path
    ) -> None:
        """After a batch run, a part of it runs the tests that the files it leaves out reach."""
        repo = init_repo(tmp_path / "repo", one_test_per_module())
        async with make_prover(repo, tmp_path / "wt") as prover:
            prover.impact = await build_impact_map(repo, default_ruff())
            everything = ["pkg/__init__.py"]
            assert prover.select_tests(everything) == [f"tests/test_m{n}.py" for n in MODULES]
            taken_back = ["tests/test_m2.py", "pkg/m4.py"]
            assert prover.select_tests(everything, taken_back) == [
                "tests/test_m2.py",
                "tests/test_m4.py",
            ]
            # What the part reaches and what it leaves out meet nowhere: nothing runs.
            assert prover.select_tests(["pkg/m1.py"], taken_back) == []
            # Where the graph cannot say what the files left out reach, the part's own.
            assert prover.select_tests(["pkg/m1.py"], ["pyproject.toml"]) == ["tests/test_m1.py"]

    async def test_shared_reach_is_confirmed_alone(self, tmp_path: Path) -> None:
        """When m5 also reaches the failing test, nothing is pinned: m4 is found by own runs."""
        repo = init_repo(tmp_path / "repo", one_test_per_module(also_reach={4: 5}))
        verdicts, runs = await prove_with_graph(repo, tmp_path / "wt", {4}, narrowed=True)
        assert {k for k, v in verdicts.items() if not v.accepted} == {"pkg/m4.py"}
        assert verdicts["pkg/m5.py"].accepted
        # The batch, the two suspects together, then each alone.
        assert runs >= 3, runs


class TestWholeRuns:
    """The whole suite at base runs beside the first round; a tree that passed it is not rerun."""

    async def test_a_tree_that_passed_whole_is_not_run_again(
        self, repo: Path, prover: Prover
    ) -> None:
        """The gate on exactly the tree a last round proved whole reuses that run."""
        cands = [await candidate(repo, n, fixed_source(n)) for n in (1, 2)]
        first = await prover.prove(cands, {}, whole=True)
        assert all(v.accepted for v in first.values())
        assert (prover.stats.test_runs, prover.stats.reused_runs) == (1, 0)
        # The same tree, as the gate sees it (each file's chain against base): reused.
        again = await prover.prove(cands, {}, whole=True)
        assert all(v.accepted for v in again.values())
        assert (prover.stats.test_runs, prover.stats.reused_runs) == (1, 1)
        # A different tree runs: one more file changed.
        more = [*cands, await candidate(repo, 3, fixed_source(3))]
        await prover.prove(more, {}, whole=True)
        assert (prover.stats.test_runs, prover.stats.reused_runs) == (2, 1)
        # And a tree that failed is never taken for proven.
        broken = [await candidate(repo, 5, broken_source(5))]
        assert (await prover.prove(broken, {}, whole=True))["pkg/m5.py"].reason == "tests"
        assert (await prover.prove(broken, {}, whole=True))["pkg/m5.py"].reason == "tests"

    async def test_baseline_runs_beside_the_first_round(self, tmp_path: Path) -> None:
        """The run at base and a candidate's run meet: each test waits for the other to start."""
        marks = tmp_path / "marks"
        marks.mkdir()
        meet = f"""
            import time
            from pathlib import Path

            from pkg import m1

            MARKS = Path({str(marks)!r})


            def test_meet():
                # m1 still imports os at base, not once its F401 is fixed.
                me, other = ("base", "patched") if hasattr(m1, "os") else ("patched", "base")
                (MARKS / me).touch()
                deadline = time.monotonic() + 60
                while not (MARKS / other).exists():
                    assert time.monotonic() < deadline, "the other run never started"
                    time.sleep(0.05)
        """
        repo = init_repo(
            tmp_path / "repo",
            {
                "pyproject.toml": PYPROJECT,
                "pkg/__init__.py": "",
                "pkg/m1.py": module_source(1),
                "tests/test_meet.py": meet,
            },
        )
        command = resolve_test_command(repo, None)
        assert command is not None
        base = git(repo, "rev-parse", "HEAD").strip()
        checked: list[TestResults] = []
        async with WorktreePool(repo, base, tmp_path / "wt", size=3) as pool:
            prover = Prover(
                pool=pool,
                select=None,
                ruff_executable=default_ruff(),
                python=command.python,
                isolation=Isolation(),
                test_command=command,
                baseline=Baseline(None),
                test_timeout=120,
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(prover.establish_baseline, checked.append)
                cand = await candidate(repo, 1, fixed_source(1))
                verdicts = await prover.prove([cand], {}, whole=True)
        assert checked[0].outcomes == {"tests/test_meet.py::test_meet": "passed"}
        assert verdicts["pkg/m1.py"].accepted, verdicts
        # The run at base is the baseline, not a proof's run.
        assert prover.stats.test_runs == 1


class TestGuard:
    """Where no fence keeps tests out, the git folder is checked after every run."""

    async def test_a_cancelled_run_is_checked_too(self, tmp_path: Path) -> None:
        """A run cancelled halfway (a run ahead proved wrong) still has its plant found."""
        planting = (
            "import pathlib, subprocess, time\n\n\ndef test_plant():\n"
            "    common = subprocess.run(['git', 'rev-parse', '--git-common-dir'],"
            " capture_output=True, text=True, check=True).stdout.strip()\n"
            "    hook = pathlib.Path(common, 'hooks', 'post-checkout')\n"
            "    hook.parent.mkdir(parents=True, exist_ok=True)\n"
            "    hook.write_text('#!/bin/sh\\necho planted\\n')\n"
            "    time.sleep(60)\n"
        )
        repo = init_repo(tmp_path / "repo", {"pyproject.toml": PYPROJECT, "tests/test_p.py": ""})
        hook = repo / ".git" / "hooks" / "post-checkout"
        async with make_prover(repo, tmp_path / "wt", results=None) as prover:
            prover.guard = MetadataGuard(repo / ".git")
            files = {"tests/test_p.py": planting.encode()}
            with pytest.RaisesGroup(pytest.RaisesExc(TamperError, match="git metadata")):
                await cancel_when(hook.exists, prover.run_suite(files))
        assert not hook.exists()


async def cancel_when(ready: Callable[[], bool], work: Awaitable[object]) -> None:
    """Start `work`, and cancel it as soon as `ready()` (checked for up to a minute)."""

    async def run() -> None:
        await work

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        for _ in range(1200):
            if ready():
                break
            await anyio.sleep(0.05)
        tg.cancel_scope.cancel()


class TestBisectionOrder:
    """A failing part is narrowed as soon as its own run says so."""

    async def test_a_failing_part_is_narrowed_while_the_other_still_runs(self) -> None:
        """The test modules' part is split beside the library's run, not after it ends."""
        paths = ["tests/test_a.py", "tests/test_b.py", "pkg/x.py", "pkg/y.py"]
        cands = [Candidate(p, "ruff", {p: b""}, {p: b"x = 1\n"}) for p in paths]
        problems = {"tests/test_a.py::t": "failed", "tests/test_b.py::u": "failed"}
        deeper = anyio.Event()

        async def test_problems(
            files: dict[str, bytes],
            changed: set[str],
            also: dict[str, str],
            reverted: set[str] | None = None,
        ) -> dict[str, str]:
            if set(changed) == {"pkg/x.py", "pkg/y.py"}:
                await deeper.wait()  # the library's long run: it ends once the split began
                return {}
            if len(changed) == 1:
                deeper.set()
            return {t: s for t, s in also.items() if t.split("::")[0] in changed}

        with anyio.fail_after(20):  # a deadlock guard: waiting for the other part never ends
            verdicts = await Bisection(None, test_problems).bisect(cands, {}, problems)
        assert {k for k, v in verdicts.items() if not v.accepted} == set(paths[:2])
