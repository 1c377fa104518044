"""How a run narrows a file whose chain broke a test down to its culprit (real pytest)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from fixbot.agents import RuffAgent, Stage, Task
from fixbot.orchestrator._fanout import FanOut
from fixbot.orchestrator._job import Job
from fixbot.sandbox import FileChange, Location, Patch, Violation, sha256
from fixbot.sandbox._impact import build_impact_map
from fixbot.sandbox._ruff import Ruff, default_ruff
from tests.conftest import checkout_tests, fixbot, init_repo, report_of
from tests.test_prove import make_prover

if TYPE_CHECKING:
    from pathlib import Path

    from fixbot.sandbox.proof._prove import Candidate

# Four unsafe fixes in four functions; only the E711 in `is_missing` changes what a
# test sees (`Anything() == None` is true, `Anything() is None` is not).
REPO = {
    "pyproject.toml": """\
[tool.ruff.lint]
select = ["E711", "E712", "RUF015", "C416"]
[tool.pytest.ini_options]
pythonpath = ["."]
""",
    "pkg/__init__.py": "",
    "pkg/m.py": """\
class Anything:
    def __eq__(self, other):
        return True


def is_missing(x):
    return x == None


def is_on(flag):
    return flag == True


def first(xs):
    return [x for x in xs][0]


def copied(xs):
    return [x for x in xs]
""",
    "tests/test_m.py": """\
from pkg import m


def test_is_missing():
    assert m.is_missing(m.Anything())


def test_others():
    assert m.is_on(True)
    assert m.first([3, 4]) == 3
    assert m.copied((1, 2)) == [1, 2]
""",
}


def test_the_function_a_failing_test_names_is_probed_first(tmp_path: Path) -> None:
    """The failing test's report names `is_missing`: its fix runs alone, the other three
    together beside it; the culprit is refused, the rest land, in two probe runs not four."""
    repo = init_repo(tmp_path / "r", REPO)
    # One worktree proving: no run ahead, whose pass could cut the other probe short.
    done = fixbot("run", repo, "--agents", "ruff", "--branch", "lint", "--jobs", "1")
    assert done.returncode == 0, done.stderr
    report = report_of(repo)
    (refused,) = [p for p in report["patches"] if p["status"] != "accepted"]
    assert refused["rules"] == ["E711"]
    assert refused["reason"] == "tests"
    assert report["violations_after"] == 1
    # The first chain, two reruns at base (not flaky), the two probes, the last chain.
    assert report["proof"]["test_runs"] == 6, report["proof"]
    assert checkout_tests(repo, "lint", tmp_path / "check").returncode == 0


# The failing test names `check`, whose E712 fix is harmless; the culprit is the E711 in
# `missing`, which `check` calls and no report line names.
MISLEADING = {
    **REPO,
    "pkg/m.py": """\
class Anything:
    def __eq__(self, other):
        return True


def check(x, strict=True):
    if strict == True:
        return missing(x)
    return False


def missing(x):
    return x == None


def first(xs):
    return [x for x in xs][0]
""",
    "tests/test_m.py": """\
from pkg import m


def test_check():
    assert m.check(m.Anything())


def test_first():
    assert m.first([3, 4]) == 3
""",
}


def run_with_log(repo: Path) -> tuple[str, list[tuple[list[str], str]]]:
    """fixbot onto branch `lint`, one violation left: its JSON log, and the rules and
    reason of each refused patch."""
    done = fixbot("run", repo, "--agents", "ruff", "--branch", "lint", "--log-format", "json")
    assert done.returncode == 0, done.stderr
    report = report_of(repo)
    assert report["violations_after"] == 1
    refused = [p for p in report["patches"] if p["status"] != "accepted"]
    return done.stderr, [(p["rules"], p["reason"]) for p in refused]


def test_a_wrong_clue_costs_a_round_never_a_verdict(tmp_path: Path) -> None:
    """The clue points at `check`: its fix passes alone, the others fail together, so each
    of those is tried alone next; only the E711 is refused, and the run ahead is dropped."""
    repo = init_repo(tmp_path / "r", MISLEADING)
    log, refused = run_with_log(repo)
    assert refused == [(["E711"], "tests")]
    assert '"tests.ahead"' in log  # the guess was made, and was wrong
    assert checkout_tests(repo, "lint", tmp_path / "check").returncode == 0


# One failing test calls two functions with unsafe fixes: `copied` on a line that
# passed, `has` on the line that failed, whose SIM118 fix breaks it (a row's keys() are
# not what iterating it gives).
TWO_SUSPECTS = {
    **REPO,
    "pkg/m.py": """\
class Row:
    def __init__(self, names, values):
        self.names, self.values = names, values

    def keys(self):
        return self.names

    def __iter__(self):
        return iter(self.values)


def copied(xs):
    return [x for x in xs]


def has(row, name):
    return name in row.keys()


def is_on(flag):
    return flag == True
""",
    "tests/test_m.py": """\
from pkg import m


def test_row():
    assert m.copied((1, 2)) == [1, 2]
    assert m.has(m.Row(["sku"], [1]), "sku")


def test_others():
    assert m.is_on(True)
""",
}


def test_the_line_that_failed_names_the_culprit_among_two_suspects(tmp_path: Path) -> None:
    """Both fixes in the failing test's functions are probed alone, and the one its failing
    line calls is guessed the culprit: the last round's whole suite runs beside the
    probes, and is not run again."""
    files = {
        **TWO_SUSPECTS,
        "pyproject.toml": REPO["pyproject.toml"].replace('"C416"]', '"C416", "SIM118"]'),
    }
    repo = init_repo(tmp_path / "r", files)
    log, refused = run_with_log(repo)
    assert refused == [(["SIM118"], "tests")]
    assert '"tests.ahead"' in log
    assert '"tests.reused"' in log  # the guess was right: its run was the last
    assert checkout_tests(repo, "lint", tmp_path / "check").returncode == 0


def mod_repo(select: str, module: str, tests: str) -> dict[str, str]:
    """A flat repo: mod.py and its tests, with `select`."""
    return {
        "pyproject.toml": f"[tool.ruff.lint]\nselect = {select}\n"
        '[tool.pytest.ini_options]\npythonpath = ["."]\n',
        "mod.py": module,
        "tests/test_mod.py": tests,
    }


def outcome(repo: Path) -> list[tuple[list[str], str, str, int]]:
    """Each patch of the latest run: its rules, status, reason and fixes."""
    return sorted(
        (p["rules"], p["status"], p["reason"], p["fixes"]) for p in report_of(repo)["patches"]
    )


def e712(name: str, effect: str) -> str:
    return f"def {name}(x):\n    if x == True:\n        {effect}\n    return 1\n\n\n"


def three_fixes(fc: str, fc_args: str) -> tuple[str, str]:
    """mod.py and its tests: `fa`'s E712 fix breaks test_a (the clue names `fa`), `fb`'s
    hits a memory limit in test_b once `fa` passes, and `fc` is the given one, which
    test_c calls with True, then False, and `fc_args` after each."""
    module = e712("fa", 'raise ValueError("broken")') + e712("fb", "raise MemoryError") + fc
    tests = (
        "from mod import fa, fc\nfrom mod import fb as g\n\n\n"
        "def test_a():\n    assert fa(2) == 1\n\n\n"
        "def test_b():\n    assert fa(2) == 1\n    assert g(2) == 1\n\n\n"
        f'def test_c():\n    assert fc(True{fc_args}) == "yes"\n'
        f'    assert fc(False{fc_args}) == "no"\n'
    )
    return module, tests


def dry_run(repo: Path) -> None:
    """`fixbot run REPO --agents ruff --dry-run`, which must succeed."""
    done = fixbot("run", repo, "--agents", "ruff", "--dry-run")
    assert done.returncode == 0, done.stderr


def test_a_group_refused_for_a_limit_never_refuses_its_good_fix(tmp_path: Path) -> None:
    """The clue names `fa`; `fb`'s fix then hits a memory limit, `fc`'s is good: it lands."""
    fc = 'def fc(x):\n    if x == True:\n        return "yes"\n    return "no"\n'
    repo = init_repo(tmp_path / "r", mod_repo('["E712"]', *three_fixes(fc, "")))
    dry_run(repo)
    assert outcome(repo) == [
        (["E712"], "accepted", "proven", 1),
        (["E712"], "rejected", "limit", 1),
        (["E712"], "rejected", "tests", 1),
    ]


def test_no_fix_is_lost_when_a_chain_and_a_group_fail_in_one_round(tmp_path: Path) -> None:
    """Four E711 (two break a test) and five E712 (one does): every good fix lands."""
    weird = (
        "class Weird:\n    def __eq__(self, other):\n        return True\n\n"
        "    __hash__ = object.__hash__\n\n\n"
    )
    none = 'def a{}(x):\n    if x == None:\n        return "none"\n    return "some"\n\n\n'
    true = 'def e{}(x):\n    if x == True:\n        return "t"\n    return "f"\n\n\n'
    module = weird + "".join(none.format(n) for n in range(1, 5))
    module = (module + "".join(true.format(n) for n in range(1, 6))).rstrip() + "\n"
    tests = (
        "from mod import Weird, a1, a3, a4, e1, e2, e3, e4\n"
        "from mod import a2 as hb\nfrom mod import e5 as hz\n\n\n"
        'def check_first():\n    assert hz(2) == "f"\n\n\n'
        'def check_a():\n    assert a1(Weird()) == "none"\n\n\n'
        "def test_a():\n    check_first()\n    check_a()\n\n\n"
        'def test_b():\n    assert hb(Weird()) == "none"\n\n\n'
        "def test_rest():\n    for f in (a3, a4):\n"
        '        assert f(None) == "none"\n        assert f(1) == "some"\n'
        "    for f in (e1, e2, e3, e4):\n"
        '        assert f(True) == "t"\n        assert f(False) == "f"\n'
    )
    repo = init_repo(tmp_path / "r", mod_repo('["E711", "E712"]', module, tests))
    dry_run(repo)
    assert report_of(repo)["violations_after"] == 3
    landed = {(tuple(r), f) for r, status, _, f in outcome(repo) if status == "accepted"}
    assert landed == {(("E711",), 2), (("E712",), 4)}


def test_a_fix_that_passed_its_probe_is_never_lost(tmp_path: Path) -> None:
    """`fc`'s E712 passes alone, beside a safe E713 on its line: both land, none vanishes."""
    fc = 'def fc(x, y):\n    if x == True and not 1 in y:\n        return "yes"\n    return "no"\n'
    repo = init_repo(tmp_path / "r", mod_repo('["E712", "E713"]', *three_fixes(fc, ", []")))
    dry_run(repo)
    assert report_of(repo)["violations_after"] == 2  # fa's and fb's E712, each refused
    assert sorted((r, s) for r, s, _, _ in outcome(repo)) == [
        (["E712"], "accepted"),
        (["E712"], "rejected"),
        (["E712"], "rejected"),
        (["E713"], "accepted"),
    ]


@pytest.mark.anyio
async def test_no_chain_is_proposed_beside_the_jobs_own_probes(tmp_path: Path) -> None:
    """A job with probes this round waits to propose its next chain until they are settled."""
    repo = init_repo(
        tmp_path / "r",
        {"pyproject.toml": '[tool.ruff.lint]\nselect = ["E712"]\n', "m.py": "y = x == True\n"},
        venv=False,
    )
    ruff = Ruff(repo, None, default_ruff())
    agent = RuffAgent(default_ruff(), None, modes=("fix",))
    job = Job(Task("m.py", ("m.py",), ()), [Stage(agent, "fix")], (repo / "m.py").read_bytes())
    fan = FanOut(prover=None, root=repo, ruff=ruff, jobs=[job])  # type: ignore[arg-type]
    job.probes = [frozenset({"a probe of this round"})]
    await fan._propose(job, anyio.CapacityLimiter(1))
    assert job.pending == []
    job.probes = []
    await fan._propose(job, anyio.CapacityLimiter(1))
    assert [p.rules for p in job.pending] == [("E712",)]


MANY_AND_ONE = """import pytest


@pytest.mark.parametrize("i", range(30))
def test_many(i):
    assert i >= 0


def test_one():
    assert 1
"""
TWO = "def test_y1():\n    assert 1\n\n\ndef test_y2():\n    assert 1\n"


def edited(
    job: Job, old: str, new: str, fingerprint: str, target: Violation | None = None
) -> list[Patch]:
    """A one-step chain of `job`'s file with `old` made `new`, fixing `fingerprint` (a
    made-up finding), or `target` when given (a real one, whose rule the step fixes)."""
    target = target or Violation(
        code="E000",
        name="e",
        message="m",
        path=job.path,
        location=Location(1, 1),
        end_location=Location(1, 2),
        fingerprint=fingerprint,
    )
    content = job.content.replace(old.encode(), new.encode())
    change = FileChange(path=job.path, old_sha=sha256(job.content), new=content)
    return [
        Patch(
            id=fingerprint,
            agent="ruff",
            kind="safe",
            files=(job.path,),
            targets=(target,),
            rules=(target.code,),
            changes=(change,),
        )
    ]


@pytest.mark.anyio
async def test_the_probes_running_the_most_tests_start_first(tmp_path: Path) -> None:
    """Of a round's sets of probes, the one with a 30-test probe takes a worktree first,
    though it is the second of each file's probes (a quick suspect is the first)."""
    files = {"pyproject.toml": "[tool.pytest.ini_options]\n", "tests/test_x.py": MANY_AND_ONE}
    repo = init_repo(tmp_path / "r", files | {"tests/test_y.py": TWO})
    agent = RuffAgent(default_ruff(), None, modes=("fix",))
    jobs = [
        Job(Task(p, (p,), ()), [Stage(agent, "fix")], (repo / p).read_bytes())
        for p in ("tests/test_x.py", "tests/test_y.py")
    ]
    x, y = jobs
    x.probe_pending = [
        (frozenset({"one"}), edited(x, "assert 1", "assert 2", "one")),
        (frozenset({"many"}), edited(x, "i >= 0", "i > -1", "many")),
    ]
    x.suspects = {"one"}
    y.probe_pending = [
        (frozenset({"y1"}), edited(y, "assert 1\n\n", "assert 2\n\n", "y1")),
        (frozenset({"y2"}), edited(y, "assert 1\n", "assert 3\n", "y2")),
    ]
    async with make_prover(repo, tmp_path / "wt", size=3) as prover:
        prover.impact = await build_impact_map(repo, default_ruff())
        started: list[list[str]] = []
        prove = prover.prove

        async def recorded(cands: list[Candidate], *args: object, **kwargs: Any) -> Any:
            started.append(sorted(c.key for c in cands))
            return await prove(cands, *args, **kwargs)

        prover.prove = recorded  # type: ignore[method-assign]
        fan = FanOut(prover=prover, root=repo, ruff=Ruff(repo, None, default_ruff()), jobs=jobs)
        await fan._prove_round([], jobs)
    assert started == [
        ["tests/test_x.py#probe1", "tests/test_y.py#probe1"],
        ["tests/test_x.py#probe0", "tests/test_y.py#probe0"],
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("pointed", "suspect"),
    [
        # No failing line to tell them apart: no culprit is guessed, and each is proven as
        # a suspect (a batch of its own: a failure needs no second run).
        (set(), [True, True]),
        # The failing line points at one: only that guessed culprit is; the other is
        # expected to pass and may share a batch.
        ({"one"}, [True, False]),
    ],
)
async def test_a_suspect_probed_alone_is_a_batch_of_its_own_unless_another_is_guessed(
    tmp_path: Path, pointed: set[str], suspect: list[bool]
) -> None:
    """Two suspects probed alone: which of them is proven as a suspect."""
    files = {"pyproject.toml": "[tool.pytest.ini_options]\n", "tests/test_x.py": MANY_AND_ONE}
    repo = init_repo(tmp_path / "r", files)
    agent = RuffAgent(default_ruff(), None, modes=("fix",))
    (x,) = jobs = [
        Job(
            Task("tests/test_x.py", ("tests/test_x.py",), ()),
            [Stage(agent, "fix")],
            (repo / "tests/test_x.py").read_bytes(),
        )
    ]
    x.probe_pending = [
        (frozenset({"one"}), edited(x, "assert 1", "assert 2", "one")),
        (frozenset({"many"}), edited(x, "i >= 0", "i > -1", "many")),
    ]
    x.suspects = {"one", "many"}
    x.pointed = pointed
    assert x.guessed_culprit() == (frozenset(pointed) or None)
    async with make_prover(repo, tmp_path / "wt", size=3) as prover:
        seen: list[tuple[str, bool]] = []
        prove = prover.prove

        async def recorded(cands: list[Candidate], *args: object, **kwargs: Any) -> Any:
            seen.extend((c.key, c.suspect) for c in cands)
            return await prove(cands, *args, **kwargs)

        prover.prove = recorded  # type: ignore[method-assign]
        fan = FanOut(prover=prover, root=repo, ruff=Ruff(repo, None, default_ruff()), jobs=jobs)
        await fan._prove_round([], jobs)
    keys = ["tests/test_x.py#probe0", "tests/test_x.py#probe1"]
    assert sorted(seen) == list(zip(keys, suspect, strict=True))
