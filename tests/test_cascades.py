"""Cascades: chains of ruff fixes where one step's fix meets another's, proven step by step.

Real code is full of them: a fix that leaves an import unused, two fixes on one
line, a fix that rewrites the `def` line around another finding. For each class,
the ruff agent's chain (proposed file by file and in a batch) must pass the
prover's static checks and leave no more findings than blind `ruff check --fix
--unsafe-fixes`. Before chains were judged step by step, each of these was
refused with "targeted violation(s) remain".
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from fixbot.agents import Request, RuffAgent, Task
from fixbot.sandbox import Candidate, Isolation, Prover, Ruff, Step
from fixbot.sandbox._ruff import default_ruff
from fixbot.sandbox._worktree import WorktreePool
from fixbot.sandbox.proof._judge import Baseline
from tests.conftest import checkout_tests, fixbot, git, init_repo
from tests.test_cli import report_of

if TYPE_CHECKING:
    from pathlib import Path

    from fixbot.sandbox import Patch, Verdict

pytestmark = pytest.mark.anyio

# Each class: the rules selected, and a file at base.
CASES = {
    "typing-imports": (
        ("F401", "UP006", "UP035"),
        (
            "import os\nfrom typing import Dict, List\n\n\n"
            "def g(rows: List[int]) -> Dict[str, int]:\n    return {str(r): r for r in rows}\n"
        ),
    ),
    "nested-annotations": (
        ("F401", "UP006", "UP035"),
        (
            "from typing import List, Tuple\n\n\n"
            "def pairs(rows: List[Tuple[str, int]]) -> List[str]:\n"
            "    return [k for k, _ in rows]\n"
        ),
    ),
    "docstring-one-line": (
        ("D300", "D400"),
        "def f(x):\n    'Return the value doubled'\n    return x * 2\n",
    ),
    "isort-after-unused-import": (
        ("F401", "I001"),
        "import sys\nimport os\nimport json\n\nprint(sys.argv, json)\n",
    ),
    "two-rules-one-line": (
        ("E711", "E712"),
        "def f(x, y):\n    return x == None or y == True\n",
    ),
    # dateutil's test_tz.py: I001 rewrites an import below a neighbour it was above, and
    # its E402 moves with it: the same finding, though no longer between the same ones.
    "import-sorted-past-its-neighbour": (
        ("I001", "E402"),
        (
            'import sys\n\nIS_WIN = sys.platform.startswith("win")\n\nimport pytest\n\n'
            "# pkg imports\nfrom pkg.relativedelta import relativedelta, SU, TH\n"
            "from pkg.parser import parse\nfrom pkg import tz as tz\nfrom pkg import zoneinfo\n\n"
            "print(IS_WIN, pytest, relativedelta, SU, TH, parse, tz, zoneinfo)\n"
        ),
    ),
    # tenacity's wait.py: COM812's comma makes the formatter split a signature one
    # parameter per line, and `min`'s A002 there reads like the two further down.
    "signature-split-makes-a-twin": (
        ("COM812", "A002", "E741"),
        (
            "class Wait:\n    def __init__(\n        self, min: TimeUnitType = 0, max: TimeUnitType"
            " = 1, jitter: TimeUnitType = 2, n: int = 1\n    ) -> None:\n"
            "        l = [min, max, jitter, n]\n        self.span = l\n\n\n"
            "class Other:\n    def __init__(\n        self,\n        min: TimeUnitType = 0,\n"
            "        step: int = 1,\n    ) -> None:\n        self.min, self.step = min, step\n\n\n"
            "class Third:\n    def __init__(\n        self,\n        min: TimeUnitType = 0,\n"
            "        stop: int = 1,\n    ) -> None:\n        I = [min, stop]\n"
            "        self.all = I\n"
        ),
    ),
    "def-line-rewritten": (
        ("UP006", "W291", "F401", "UP035"),
        "from typing import List\n\n\ndef g(rows: List[int]) -> int:\n    return len(rows)   \n",
    ),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, tuple[str, ...], bytes]:
    """A committed repo holding one cascade class in pkg/a.py."""
    select, source = CASES[request.param]
    files = {"pyproject.toml": "[tool.ruff]\nline-length = 100\n", "pkg/a.py": source}
    return init_repo(tmp_path / "repo", files, venv=False), select, source.encode()


def chain_candidate(path: str, start: bytes, chain: list[Patch]) -> Candidate:
    """The candidate the fan-out builds from a chain: one step per patch."""
    befores = [start, *(p.changes[0].new for p in chain[:-1])]
    return Candidate(
        key=path,
        agent="ruff",
        before={path: start},
        after={path: chain[-1].changes[0].new},
        targets=Counter(v.fingerprint for p in chain for v in p.targets),
        steps=tuple(
            Step(path, b, p.changes[0].new, p.targets) for b, p in zip(befores, chain, strict=True)
        ),
    )


async def blind_left(repo: Path, select: tuple[str, ...], source: bytes) -> int:
    """What `ruff check --fix --unsafe-fixes` leaves of the selection in the file."""
    ruff = Ruff(repo, select)
    fixed = await ruff.fix_source("pkg/a.py", source, unsafe=True)
    return len((await ruff.lint_source("pkg/a.py", fixed)).violations)


async def static_verdicts(
    pool: WorktreePool, select: tuple[str, ...], candidate: Candidate
) -> dict[str, Verdict]:
    """The prover's compile, lint and format verdicts on one candidate (none: it passed)."""
    prover = Prover(
        pool=pool,
        select=select,
        ruff_executable=default_ruff(),
        python="python3",
        isolation=Isolation(),
        test_command=None,
        baseline=Baseline(None),
    )
    return await prover.check_static([candidate], {})


@pytest.mark.parametrize("batch", [False, True], ids=["per-file", "batch"])
async def test_chain_is_proven_and_matches_ruff(
    case: tuple[Path, tuple[str, ...], bytes], tmp_path: Path, batch: bool
) -> None:
    """Every step's targets are in the content it starts from; the chain passes lint whole."""
    repo, select, source = case
    path = "pkg/a.py"
    agent = RuffAgent(default_ruff(), select, modes=("fix",))
    ruff = Ruff(repo, select)
    found = (await ruff.lint_source(path, source)).violations
    request = Request(
        task=Task(key=path, files=(path,), violations=tuple(found)),
        mode="fix",
        content={path: source},
        root=repo,
    )
    base = git(repo, "rev-parse", "HEAD").strip()
    async with WorktreePool(repo, base, tmp_path / "wt", size=2) as pool:
        if batch:
            (chain,) = await agent.propose_many([request], pool.use)
        else:
            chain = await agent.propose(request)
        assert chain, "nothing proposed"
        verdicts = await static_verdicts(pool, select, chain_candidate(path, source, chain))
    assert verdicts == {}
    end = chain[-1].changes[0].new
    left = len((await ruff.lint_source(path, end)).violations)
    assert left <= await blind_left(repo, select, source)
    # A fix is named by its finding's identity at base, whatever an earlier step did
    # to its line (UP035 may also go with the import line F401 removes, fixed by none).
    fixed = {v.identity for p in chain for v in p.targets if not v.uncovered}
    assert fixed
    assert fixed <= {v.fingerprint for v in found}


async def test_a_long_chain_is_not_cut_inside_a_cascade(tmp_path: Path) -> None:
    """dateutil's test_tz.py: its chain was cut at 40 steps, right after TRY201 made `e`
    unused, and the step that would fix F841 next never came: refused as a new finding.
    Chains are bounded per rule, as ruff's fix loop is, not by their length."""
    select = ("E401", "E703", "W291", "TRY201", "F841")
    source = (
        "import os, sys\n\nx = 1;\n\n\ndef f(path):   \n    try:\n        return os.stat(path)\n"
        "    except OSError as e:\n        if sys.platform == 'win32':\n            raise e\n"
        "        return None\n"
    )
    files = {"pyproject.toml": "[tool.ruff]\nline-length = 100\n", "pkg/a.py": source}
    repo = init_repo(tmp_path / "repo", files, venv=False)
    path = "pkg/a.py"
    found = (await Ruff(repo, select).lint_source(path, source.encode())).violations
    # One visit per rule: the old bound of 4 * max_iterations steps stopped at TRY201.
    agent = RuffAgent(default_ruff(), select, modes=("fix",), max_iterations=1)
    request = Request(
        task=Task(key=path, files=(path,), violations=tuple(found)),
        mode="fix",
        content={path: source.encode()},
        root=repo,
    )
    chain = await agent.propose(request)
    assert [p.rules for p in chain][-2:] == [("TRY201",), ("F841",)]
    base = git(repo, "rev-parse", "HEAD").strip()
    async with WorktreePool(repo, base, tmp_path / "wt", size=1) as pool:
        candidate = chain_candidate(path, source.encode(), chain)
        assert await static_verdicts(pool, select, candidate) == {}


async def test_a_long_line_made_far_away_is_new_though_only_twins_lie_between(
    tmp_path: Path,
) -> None:
    """PT009 joins an assertion into a line no formatter can shorten, and shortens another
    line nine rows below; between them lie only twin findings (two identical lines). The
    twins still tell where rows went: the long line is new, not the one that went."""
    select = ("PT009", "E501")
    source = (
        "import unittest\n\nfrom pkg.pair import pair\n\n"
        'WORD = "a-string-far-far-too-long-for-any-formatter-to-wrap-it-whatever-it-does"\n\n\n'
        "class TestPair(unittest.TestCase):\n    def test_word(self):\n"
        "        self.assertEqual(pair(WORD, 0)[0],\n"
        '                         "a-string-far-far-too-long-for-any-formatter-to-wrap-it-whatever'
        '-it-does")\n\n    def test_twins(self):\n'
        + '        x = "a-twin-string-far-far-too-long-for-any-formatter-to-wrap-it-whatever"\n'
        * 2
        + "        return x\n\n    def test_short(self):\n"
        "        self.assertEqual(pair(1, 2), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])\n"
    )
    files = {"pyproject.toml": "[tool.ruff]\nline-length = 70\n", "pkg/a.py": source}
    repo = init_repo(tmp_path / "repo", files, venv=False)
    path = "pkg/a.py"
    found = (await Ruff(repo, select).lint_source(path, source.encode())).violations
    request = Request(
        task=Task(key=path, files=(path,), violations=tuple(found)),
        mode="unsafe",
        content={path: source.encode()},
        root=repo,
    )
    chain = await RuffAgent(default_ruff(), select).propose(request)
    base = git(repo, "rev-parse", "HEAD").strip()
    async with WorktreePool(repo, base, tmp_path / "wt", size=1) as pool:
        verdict = (
            await static_verdicts(pool, select, chain_candidate(path, source.encode(), chain))
        )[path]
    assert (verdict.reason, verdict.new_violations) == (
        "lint",
        ("E501 pkg/a.py:12: Line too long (88 > 70)",),
    )


CASCADE_REPO = {
    "pyproject.toml": """
        [tool.ruff.lint]
        select = ["F401", "UP006", "UP035", "D300", "D400", "E711", "SIM103", "E401", "I001"]
        [tool.pytest.ini_options]
        pythonpath = ["."]
    """,
    "pkg/__init__.py": "",
    "pkg/a.py": """
        import os
        from typing import Dict, List


        def f(x):
            'Return the value doubled'
            return x * 2


        def g(rows: List[int]) -> Dict[str, int]:
            return {str(r): r for r in rows}
    """,
    "pkg/b.py": """
        def is_none(x):
            if x == None:
                return True
            return False
    """,
    "pkg/c.py": """
        import os, json
        from typing import List


        def dump(x: List[int]) -> str:
            return json.dumps(x)
    """,
    "tests/test_pkg.py": """
        from pkg.a import f, g
        from pkg.b import is_none
        from pkg.c import dump


        def test_all():
            assert f(2) == 4
            assert g([1]) == {"1": 1}
            assert is_none(None)
            assert not is_none(0)
            assert dump([1]) == "[1]"
    """,
}


CASCADE_SELECT = ("F401", "UP006", "UP035", "D300", "D400", "E711", "SIM103", "E401", "I001")


def test_run_lands_what_blind_ruff_lands(tmp_path: Path) -> None:
    """`fixbot run` on the cascades a new user meets first: every fix lands, none is refused."""
    repo = init_repo(tmp_path / "r", CASCADE_REPO)
    blind = tmp_path / "blind"
    shutil.copytree(repo, blind, ignore=shutil.ignore_patterns(".git", ".venv"))
    ruff = [default_ruff(), "check", "--no-cache", "--select", ",".join(CASCADE_SELECT)]
    fix = [*ruff, "--fix", "--unsafe-fixes", "--exit-zero", "-q", "."]
    subprocess.run(fix, cwd=blind, check=True)
    left = subprocess.run(
        [*ruff, "--statistics", "--exit-zero", "--output-format", "json", "."],
        cwd=blind, capture_output=True, text=True, check=True,
    )  # fmt: skip
    blind_left = sum(item["count"] for item in json.loads(left.stdout or "[]"))
    done = fixbot("run", repo, "--agents", "ruff", "--branch", "lint")
    assert done.returncode == 0, done.stderr
    report = report_of(repo)
    assert report["violations_before"] == 14
    assert report["violations_after"] <= blind_left
    assert (report["rejected"], report["dropped"]) == (0, 0)
    assert checkout_tests(repo, "lint", tmp_path / "check").returncode == 0


LAMBDAS = {
    "pyproject.toml": """
        [tool.ruff.lint]
        select = ["E731", "D103"]
        [tool.pytest.ini_options]
        pythonpath = ["."]
    """,
    "pkg/__init__.py": "",
    "pkg/a.py": '''
        """Module."""

        double = lambda x: x * 2


        def calc(v):
            """Calc."""
            inc = lambda x: x + 1
            dec = lambda x: x - 1
            neg = lambda x: -x
            return neg(dec(inc(v)))
    ''',
    "tests/test_a.py": '''
        """Tests."""

        from pkg.a import calc, double


        def test_a():
            """Both."""
            assert calc(3) == -3
            assert double(2) == 4
    ''',
}


def test_lint_refusal_is_narrowed_without_a_test_run(tmp_path: Path) -> None:
    """One E731 fix makes a public def with no docstring: it alone is refused, naming D103.

    The refused step fixed all four lambdas; it is narrowed to one fix per step by
    static checks alone, so the tests run once, on the three good fixes. (With
    `land-revealed` off: the D103 was there all along, on a lambda, where it hid.)
    """
    repo = init_repo(tmp_path / "r", LAMBDAS)
    done = fixbot("run", repo, "--agents", "ruff", "--dry-run", env={"FIXBOT_LAND_REVEALED": "0"})
    assert done.returncode == 0, done.stderr
    report = report_of(repo)
    assert report["by_rule"]["E731"]["landed"] == 3
    assert report["by_rule"]["E731"]["refused"] == {"lint": 1}
    (refused,) = [p for p in report["patches"] if p["status"] == "rejected"]
    assert (
        refused["detail"] == "new violations: D103 pkg/a.py:4: Missing docstring in public function"
    )
    assert report["proof"]["rounds"] == 1
    assert report["proof"]["test_runs"] == 1


MAGIC_16 = "Magic value used in comparison, consider replacing `16` with a constant variable"


class TestRevealedFindings:
    """A fix that trades its finding for one it revealed lands, and the report says so."""

    def test_a_lambda_made_a_def_lands_with_its_missing_docstring_named(
        self, tmp_path: Path
    ) -> None:
        """E731 makes `double` a def, whose missing docstring D103 now sees: all four land."""
        repo = init_repo(tmp_path / "r", LAMBDAS)
        done = fixbot("run", repo, "--agents", "ruff", "--dry-run")
        assert done.returncode == 0, done.stderr
        report = report_of(repo)
        assert report["by_rule"]["E731"]["landed"] == 4
        assert report["by_rule"]["E731"]["refused"] == {}
        assert report["by_rule"]["D103"]["revealed"] == 1
        (shown,) = [p["revealed"] for p in report["patches"] if p["revealed"]]
        assert shown == ["D103 pkg/a.py:4: Missing docstring in public function"]
        said = (repo / ".git/fixbot").glob("runs/*/report.md")
        text = next(iter(said)).read_text()
        assert "Revealed by landed fixes: E731 revealing D103 (1)." in text
        assert report["proof"]["test_runs"] == 1
        assert "violations 4 -> 1 (1 revealed by landed fixes) in " in done.stdout

    def test_pt009_lands_and_plr2004_sees_the_magic_value(self, tmp_path: Path) -> None:
        """`self.assertEqual(f(), 16)` becomes `assert f() == 16`: PLR2004 reports the 16,
        which was there before. The step of the file's chain that revealed it names it;
        the others (UP006, F401) do not. (A line the fix made too long is still refused:
        `TestLinesAFixMadeTooLong`.)"""
        files = {
            "pyproject.toml": """
                [tool.ruff.lint]
                select = ["PT009", "PLR2004", "UP006", "F401"]
                [tool.pytest.ini_options]
                pythonpath = ["."]
            """,
            "tests/test_a.py": """
                import unittest
                from typing import List


                def f() -> List[int]:
                    return 16


                class T(unittest.TestCase):
                    def test_f(self):
                        self.assertEqual(f(), 16)
            """,
        }
        repo = init_repo(tmp_path / "r", files)
        done = fixbot("run", repo, "--agents", "ruff", "--branch", "lint")
        assert done.returncode == 0, done.stderr
        report = report_of(repo)
        assert report["by_rule"]["PT009"]["landed"] == 1
        assert report["by_rule"]["PLR2004"]["revealed"] == 1
        assert report["accepted"] == 3
        (shown,) = [(p["rules"], p["revealed"]) for p in report["patches"] if p["revealed"]]
        assert shown == (["PT009"], ["PLR2004 tests/test_a.py:10: " + MAGIC_16])
        assert "        assert f() == 16\n" in git(repo, "show", "lint:tests/test_a.py")
        assert checkout_tests(repo, "lint", tmp_path / "check").returncode == 0

    def test_more_findings_than_fixes_is_no_trade(self, tmp_path: Path) -> None:
        """A PT009 fix in an `except` block shows PT017 and PLR2004: two for one is
        refused, naming both."""
        files = {
            "pyproject.toml": '[tool.ruff.lint]\nselect = ["PT009", "PT017", "PLR2004"]\n',
            "test_a.py": (
                "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_f(self):\n"
                "        try:\n            int('x')\n        except ValueError as e:\n"
                "            self.assertEqual(len(e.args), 7)\n"
            ),
        }
        repo = init_repo(tmp_path / "r", files, venv=False)
        done = fixbot("run", repo, "--agents", "ruff", "--test-cmd", "", "--dry-run")
        assert done.returncode == 0, done.stderr
        report = report_of(repo)
        assert report["by_rule"]["PT009"]["refused"] == {"lint": 1}
        (refused,) = report["patches"]
        assert refused["detail"].startswith("new violations: PT017 test_a.py:9: ")
        assert "; PLR2004 test_a.py:9: " in refused["detail"]


class TestTheProofsOwnLint:
    """What lint says of a fix is the proof's lint of the file, never a lint made otherwise."""

    @staticmethod
    def lint_only(root: Path, select: str, file: str, source: str) -> dict:
        """One file and `select`, run with lint-only proof onto the branch `lint`: the report."""
        files = {"pyproject.toml": f"[tool.ruff.lint]\nselect = {select}\n", file: source}
        repo = init_repo(root, files, venv=False)
        done = fixbot("run", repo, "--agents", "ruff", "--test-cmd", "", "--branch", "lint")
        assert done.returncode == 0, done.stderr
        return report_of(repo)

    def test_an_upper_case_noqa_hides_nothing(self, tmp_path: Path) -> None:
        """`# NOQA` on the typing import: the UP006 fix that leaves it unused is refused."""
        report = self.lint_only(
            tmp_path / "r",
            '["UP006", "F401"]\n[tool.ruff]\ntarget-version = "py39"',
            "a.py",
            "from typing import List  # NOQA\n\n\n"
            "def f(x: List[int]) -> List[int]:\n    return x\n",
        )
        (patch,) = report["patches"]
        assert (patch["status"], patch["reason"]) == ("rejected", "lint")
        assert "F401" in patch["detail"]

    def test_a_file_at_the_top_is_judged_as_a_file(self, tmp_path: Path) -> None:
        """ruff reads INP001 into a top-level file on stdin, never in the file: no refusal."""
        report = self.lint_only(
            tmp_path / "r",
            '["F401", "INP001"]',
            "tool.py",
            "import os  # noqa: E402\nimport sys\n\nprint(sys.argv)\n",
        )
        assert [(p["rules"], p["status"]) for p in report["patches"]] == [(["F401"], "accepted")]
        assert report["violations_after"] == 0

    def test_a_noqa_in_use_survives_the_unused_noqa_fix(self, tmp_path: Path) -> None:
        """RUF100 is fixed under the whole selection: `# noqa: F401` in use stays."""
        root = tmp_path / "r"
        report = self.lint_only(
            root,
            '["RUF100", "F401"]',
            "a.py",
            "import os  # noqa: F401\nimport sys  # noqa: E501\n\nx = sys\n",
        )
        assert report["violations_after"] == 0
        fixed = git(root, "show", "lint:a.py")
        assert fixed == "import os  # noqa: F401\nimport sys\n\nx = sys\n"


LONG_LINES = {
    "pyproject.toml": """
        [tool.ruff]
        line-length = 70
        [tool.ruff.lint]
        select = ["PT009", "E501"]
        [tool.pytest.ini_options]
        pythonpath = ["."]
    """,
    "pkg/__init__.py": "",
    "pkg/pair.py": "def pair(a, b):\n    return [a,b]\n",
    "tests/test_pair.py": """
        import unittest

        from pkg.pair import pair

        UNTOUCHED = [1,2]
        WORD = "a-string-far-far-too-long-for-any-formatter-to-wrap-it-whatever-it-does"


        class TestPair(unittest.TestCase):
            def test_pair(self):
                self.assertEqual(pair("first value", "second value"),
                                 ["first value", "second value"])

            def test_short(self):
                self.assertEqual(pair(1,2), [1, 2])

            def test_word(self):
                self.assertEqual(pair(WORD, 0)[0],
                                 "a-string-far-far-too-long-for-any-formatter-to-wrap-it-whatever-it-does")
    """,
}


class TestLinesAFixMadeTooLong:
    """PT009 joins a multi-line assertEqual into one line: the formatter wraps just that line."""

    def test_the_long_line_is_wrapped_and_nothing_else_is_touched(self, tmp_path: Path) -> None:
        """Two fixes land, wrapped where needed; one whose line cannot be wrapped is refused."""
        repo = init_repo(tmp_path / "r", LONG_LINES)
        done = fixbot("run", repo, "--agents", "ruff", "--branch", "lint")
        assert done.returncode == 0, done.stderr
        report = report_of(repo)
        assert report["by_rule"]["PT009"]["landed"] == 2
        assert report["by_rule"]["PT009"]["refused"] == {"lint": 1}
        (refused,) = [p for p in report["patches"] if p["status"] == "rejected"]
        assert refused["detail"].startswith("new violations: E501 tests/test_pair.py:")
        fixed = git(repo, "show", "lint:tests/test_pair.py")
        assert (
            '        assert pair("first value", "second value") == [\n'
            '            "first value",\n'
            '            "second value",\n'
            "        ]\n"
        ) in fixed
        # The file was not format-clean, and stays as it was where no fix went.
        assert "\nUNTOUCHED = [1,2]\n" in fixed
        assert checkout_tests(repo, "lint", tmp_path / "check").returncode == 0

    async def test_the_per_file_agent_wraps_them_too(self, tmp_path: Path) -> None:
        """A chain proposed again after a refusal takes the same shape."""
        repo = init_repo(tmp_path / "r", LONG_LINES, venv=False)
        path = "tests/test_pair.py"
        content = (repo / path).read_bytes()
        found = (await Ruff(repo).lint_source(path, content)).violations
        task = Task(key=path, files=(path,), violations=tuple(found))
        agent = RuffAgent(default_ruff(), ("PT009", "E501"))
        chain = await agent.propose(
            Request(task=task, mode="unsafe", content={path: content}, root=repo)
        )
        after = chain[-1].changes[0].new.decode()
        assert '        assert pair("first value", "second value") == [\n' in after
        assert "\nUNTOUCHED = [1,2]\n" in after
