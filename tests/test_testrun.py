"""sandbox._testrun: finding the repo's test command and running it per test.

The repos are real folders with real venvs; the tests run real pytest processes.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from fixbot.sandbox._errors import TestCommandError
from fixbot.sandbox._isolation import Limits, find_pids_cgroup, probe_isolation
from fixbot.sandbox._process import repo_env, run
from fixbot.sandbox._testrun import (
    TestCommand,
    find_python,
    parse_junit,
    resolve_test_command,
    run_tests,
)
from tests.conftest import PYTEST_ONLY

if TYPE_CHECKING:
    from fixbot.sandbox._types import TestResults


SAMPLE_TESTS = """
import pytest


def test_pass():
    pass


def test_fail():
    assert 1 == 2


@pytest.mark.skip(reason="not today")
def test_skip():
    pass


@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert 1 == 2


@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    assert n == 1


class TestGroup:
    def test_method(self):
        pass


@pytest.fixture
def broken():
    raise RuntimeError("setup fails")


def test_setup_error(broken):
    pass
"""

SAMPLE_OUTCOMES = {
    "tests/test_sample.py::test_pass": "passed",
    "tests/test_sample.py::test_fail": "failed",
    "tests/test_sample.py::test_skip": "skipped",
    "tests/test_sample.py::test_xfail": "xfailed",
    "tests/test_sample.py::test_param[1]": "passed",
    "tests/test_sample.py::test_param[2]": "failed",
    "tests/test_sample.py::TestGroup::test_method": "passed",
    "tests/test_sample.py::test_setup_error": "error",
}


def write(root: Path, files: dict[str, str]) -> Path:
    """Write dedented `files` under `root`; returns root."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


PYTEST_CONFIG = "[tool.pytest.ini_options]\n"


def make_venv(where: Path, *paths: Path) -> Path:
    """A real venv at `where` that can import pytest and `paths` (via .pth files)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", where], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = where / "lib" / version / "site-packages"
    (site / "zz_pytest.pth").write_text(f"{PYTEST_ONLY}\n")
    for number, path in enumerate(paths):
        # What an editable install from another checkout leaves behind.
        (site / f"editable_{number}.pth").write_text(f"{path}\n")
    return where


def fake_python(directory: Path, name: str = "python3") -> Path:
    """An executable named like an interpreter; find_python only looks, never runs."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def run_sync(command: TestCommand, worktree: Path, **kwargs: Any) -> TestResults:
    """run_tests, from synchronous test code."""
    return anyio.run(functools.partial(run_tests, command, worktree, **kwargs))


def pytest_command(repo: Path) -> TestCommand:
    """The detected pytest command of a repo that has one."""
    command = resolve_test_command(repo, None)
    assert command is not None
    return command


def sample_repo(root: Path) -> Path:
    """A repo with a venv, pytest config and tests of every outcome."""
    write(
        root,
        {
            "pyproject.toml": "[tool.pytest.ini_options]\naddopts = '-q'\n",
            "tests/test_sample.py": SAMPLE_TESTS,
        },
    )
    make_venv(root / ".venv")
    return root


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_repo(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def sample_run(sample: Path) -> TestResults:
    return run_sync(pytest_command(sample), sample)


@pytest.fixture
def clean_path(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PATH holding just one folder, outside the repo, with a python3 that is not fixbot's."""
    bin_dir = tmp_path_factory.mktemp("elsewhere") / "bin"
    fake_python(bin_dir)
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


class TestFindPython:
    @pytest.mark.usefixtures("clean_path")
    def test_prefers_dot_venv(self, tmp_path: Path) -> None:
        """The repo's .venv wins over venv/ and over PATH."""
        fake_python(tmp_path / "venv" / "bin", "python")
        expected = fake_python(tmp_path / ".venv" / "bin", "python")
        assert find_python(tmp_path) == str(expected)

    @pytest.mark.usefixtures("clean_path")
    def test_venv_folder_when_no_dot_venv(self, tmp_path: Path) -> None:
        """venv/ is used when there is no .venv."""
        expected = fake_python(tmp_path / "venv" / "bin", "python")
        assert find_python(tmp_path) == str(expected)

    def test_python3_on_path_without_a_venv(self, tmp_path: Path, clean_path: Path) -> None:
        """Without a venv, the first python3 on PATH."""
        assert find_python(tmp_path) == str(clean_path / "python3")

    def test_skips_fixbots_own_bin(
        self, tmp_path: Path, clean_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """fixbot's own bin folder comes first on PATH but is skipped."""
        own_bin = Path(sys.prefix) / "bin"
        assert (own_bin / "python3").exists()
        monkeypatch.setenv("PATH", os.pathsep.join([str(own_bin), str(clean_path)]))
        assert find_python(tmp_path) == str(clean_path / "python3")

    def test_skips_a_link_to_fixbots_own_bin(
        self, tmp_path: Path, clean_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A PATH folder that is a symlink into fixbot's prefix is skipped too."""
        link = tmp_path / "linked-bin"
        link.symlink_to(Path(sys.prefix) / "bin")
        monkeypatch.setenv("PATH", os.pathsep.join([str(link), str(clean_path)]))
        assert find_python(tmp_path) == str(clean_path / "python3")

    def test_skips_relative_path_entries(
        self, tmp_path: Path, clean_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A "." on PATH never picks a python3 out of the current folder."""
        here = tmp_path / "cwd"
        fake_python(here)
        monkeypatch.chdir(here)
        monkeypatch.setenv("PATH", os.pathsep.join([".", str(clean_path)]))
        assert find_python(tmp_path) == str(clean_path / "python3")

    def test_only_fixbots_interpreter_is_an_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With nothing but fixbot's interpreter, one clear error line."""
        monkeypatch.setenv("PATH", str(Path(sys.prefix) / "bin"))
        with pytest.raises(TestCommandError) as caught:
            find_python(tmp_path)
        assert "\n" not in str(caught.value)
        assert "python3" in str(caught.value)


class TestResolveTestCommand:
    @pytest.mark.parametrize(
        ("name", "text"),
        [
            ("pytest.ini", "[pytest]\n"),
            ("pyproject.toml", "[tool.pytest.ini_options]\naddopts = '-q'\n"),
            ("setup.cfg", "[metadata]\nname = x\n\n[tool:pytest]\naddopts = -q\n"),
            ("tox.ini", "[tox]\nenvlist = py\n\n[pytest]\naddopts = -q\n"),
        ],
    )
    def test_pytest_config_is_detected(
        self, tmp_path: Path, clean_path: Path, name: str, text: str
    ) -> None:
        """Each kind of pytest config makes pytest the detected command."""
        write(tmp_path, {name: text})
        command = resolve_test_command(tmp_path, None)
        assert command == TestCommand(
            argv=(str(clean_path / "python3"), "-m", "pytest"),
            source="detected",
            python=str(clean_path / "python3"),
            is_pytest=True,
            display="python3 -m pytest",  # no machine path: commit messages quote it
        )

    @pytest.mark.parametrize("folder", ["tests", "test"])
    @pytest.mark.usefixtures("clean_path")
    def test_tests_folder_is_detected(self, tmp_path: Path, folder: str) -> None:
        """A tests/ or test/ folder at the root is enough."""
        (tmp_path / folder).mkdir()
        command = resolve_test_command(tmp_path, None)
        assert command is not None
        assert command.source == "detected"
        assert command.is_pytest

    @pytest.mark.usefixtures("clean_path")
    def test_nothing_to_detect_is_lint_only(self, tmp_path: Path) -> None:
        """Config files without a pytest section, and no tests folder: None."""
        write(
            tmp_path,
            {
                "pyproject.toml": "[tool.ruff]\nline-length = 100\n",
                "setup.cfg": "[flake8]\nmax-line-length = 100\n",
                "tox.ini": "[tox]\nenvlist = py\n",
                "pkg/tests.py": "",
            },
        )
        assert resolve_test_command(tmp_path, None) is None

    @pytest.mark.parametrize("configured", ["", "   "])
    def test_empty_command_is_lint_only(self, tmp_path: Path, configured: str) -> None:
        """An empty command means lint-only even where tests exist."""
        (tmp_path / "tests").mkdir()
        assert resolve_test_command(tmp_path, configured) is None

    @pytest.mark.usefixtures("clean_path")
    def test_pytest_runs_under_the_repo_python(self, tmp_path: Path) -> None:
        """`pytest -x` becomes the repo venv's `python -m pytest -x`."""
        python = fake_python(tmp_path / ".venv" / "bin", "python")
        command = resolve_test_command(tmp_path, "pytest -x")
        assert command == TestCommand(
            argv=(str(python), "-m", "pytest", "-x"),
            source="flag",
            python=str(python),
            is_pytest=True,
            display=".venv/bin/python -m pytest -x",
        )

    @pytest.mark.parametrize("interpreter", ["python", "python3", "python3.11"])
    def test_python_m_pytest_runs_under_the_repo_python(
        self, tmp_path: Path, clean_path: Path, interpreter: str
    ) -> None:
        """`python -m pytest ...` is rewritten the same way; source passes through."""
        command = resolve_test_command(tmp_path, f"{interpreter} -m pytest -q 'a b'", "config")
        assert command is not None
        assert command.argv == (str(clean_path / "python3"), "-m", "pytest", "-q", "a b")
        assert command.source == "config"
        assert command.is_pytest

    @pytest.mark.usefixtures("clean_path")
    def test_named_interpreter_means_the_checkout(self, tmp_path: Path) -> None:
        """A relative interpreter path is taken from the user's checkout."""
        command = resolve_test_command(tmp_path, "env/bin/python -m pytest -q")
        assert command is not None
        expected = str(tmp_path.resolve() / "env" / "bin" / "python")
        assert command.argv == (expected, "-m", "pytest", "-q")
        assert command.python == expected
        assert command.is_pytest

    def test_other_commands_are_kept(self, tmp_path: Path, clean_path: Path) -> None:
        """`make test` runs as written and cannot select tests."""
        command = resolve_test_command(tmp_path, " make test ")
        assert command == TestCommand(
            argv=("make", "test"),
            source="flag",
            python=str(clean_path / "python3"),
            is_pytest=False,
            display="make test",
        )

    def test_unparsable_command_is_an_error(self, tmp_path: Path) -> None:
        """Unbalanced quotes are a user error, not a crash."""
        with pytest.raises(TestCommandError, match="cannot parse"):
            resolve_test_command(tmp_path, "pytest 'oops")


def junit(*cases: str) -> bytes:
    """A pytest-shaped JUnit document holding `cases`."""
    body = "".join(cases)
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="pytest">{body}</testsuite></testsuites>'
    ).encode()


class TestParseJunit:
    def test_every_status(self) -> None:
        """failure, error, skip, xfail and plain cases map to their statuses."""
        xml = junit(
            '<testcase classname="t.test_a" name="test_ok" file="t/test_a.py"/>',
            '<testcase classname="t.test_a" name="test_bad" file="t/test_a.py">'
            '<failure message="assert False">boom</failure></testcase>',
            '<testcase classname="t.test_a" name="test_err" file="t/test_a.py">'
            '<error message="failed on setup">x</error></testcase>',
            '<testcase classname="t.test_a" name="test_skip" file="t/test_a.py">'
            '<skipped type="pytest.skip" message="no">t/test_a.py:9: no</skipped></testcase>',
            '<testcase classname="t.test_a" name="test_xf" file="t/test_a.py">'
            '<skipped type="pytest.xfail" message=""/></testcase>',
        )
        assert parse_junit(xml).outcomes == {
            "t/test_a.py::test_ok": "passed",
            "t/test_a.py::test_bad": "failed",
            "t/test_a.py::test_err": "error",
            "t/test_a.py::test_skip": "skipped",
            "t/test_a.py::test_xf": "xfailed",
        }

    def test_classes_and_parameters(self) -> None:
        """Class names become :: parts; dots inside parameters stay."""
        xml = junit(
            '<testcase classname="t.test_a.TestY" name="test_z[1.5-a.b]" file="t/test_a.py"/>',
            '<testcase classname="t.test_a.TestY.TestIn" name="test_n" file="t/test_a.py"/>',
        )
        assert set(parse_junit(xml).outcomes) == {
            "t/test_a.py::TestY::test_z[1.5-a.b]",
            "t/test_a.py::TestY::TestIn::test_n",
        }

    def test_collection_error_is_keyed_by_file(self) -> None:
        """A module that fails to import is one error under its path."""
        xml = junit(
            '<testcase classname="" name="t.sub.test_b" file="t/sub/test_b.py">'
            '<error message="collection failure">ImportError</error></testcase>'
        )
        assert parse_junit(xml).outcomes == {"t/sub/test_b.py": "error"}

    def test_inherited_test_keeps_its_own_module(self) -> None:
        """`file` names the base class's module; the id uses the test's own."""
        inherited = (
            '<testcase classname="t.test_child.TestChild" name="test_inh" file="t/base.py"/>'
        )
        sibling = '<testcase classname="t.test_child" name="test_own" file="t/test_child.py"/>'
        expected = "t/test_child.py::TestChild::test_inh"
        assert expected in parse_junit(junit(inherited, sibling)).outcomes
        assert expected in parse_junit(junit(inherited)).outcomes

    def test_without_file_attribute(self) -> None:
        """xunit2-style cases (no `file`) fall back to the classname."""
        xml = junit(
            '<testcase classname="t.test_x.TestY" name="test_z[1]"/>',
            '<testcase classname="t.test_x" name="test_a"/>',
        )
        assert parse_junit(xml).outcomes == {
            "t/test_x.py::TestY::test_z[1]": "passed",
            "t/test_x.py::test_a": "passed",
        }

    def test_doctests_keep_their_ids(self) -> None:
        """Doctest ids (text file, module function) come out as pytest writes them."""
        xml = junit(
            '<testcase classname="docs.guide.txt" name="guide.txt" file="docs/guide.txt"/>',
            '<testcase classname="pkg.mod" name="pkg.mod.f" file="pkg/mod.py"/>',
        )
        assert set(parse_junit(xml).outcomes) == {
            "docs/guide.txt::guide.txt",
            "pkg/mod.py::pkg.mod.f",
        }

    def test_repeated_case_keeps_the_worst(self) -> None:
        """A failed call and a teardown error on one test: counted once, as error."""
        case = '<testcase classname="t.test_a" name="test_td" file="t/test_a.py">{}</testcase>'
        xml = junit(case.format('<failure message="x"/>'), case.format('<error message="td"/>'))
        assert parse_junit(xml).outcomes == {"t/test_a.py::test_td": "error"}

    def test_broken_xml_raises(self) -> None:
        """A truncated file is a parse error for the caller to handle."""
        with pytest.raises(ET.ParseError):
            parse_junit(b"<testsuites><testsuite><testcase")


class TestRunTests:
    def test_every_outcome_by_node_id(self, sample_run: TestResults) -> None:
        """Each test's outcome is read from JUnit, keyed by pytest's node id."""
        assert sample_run.outcomes == SAMPLE_OUTCOMES
        assert sample_run.per_test
        assert sample_run.returncode == 1
        assert sample_run.seconds > 0
        assert "2 failed" in sample_run.output
        assert len(sample_run.output) <= 4000

    def test_failures_are_reported_by_node_id(self, sample_run: TestResults) -> None:
        """Failing tests and errors keep their report: the message and the traceback's tail."""
        failures = sample_run.failures
        assert set(failures) == {t for t, s in SAMPLE_OUTCOMES.items() if s in {"failed", "error"}}
        assert "assert 1 == 2" in failures["tests/test_sample.py::test_fail"]
        assert "setup fails" in failures["tests/test_sample.py::test_setup_error"]
        assert ", in broken\n" in failures["tests/test_sample.py::test_setup_error"]

    def test_reports_are_native_tracebacks_from_the_test_on(self, sample_run: TestResults) -> None:
        """Python's own traceback (cheap to write), cut to the test's frames: pytest's and
        pluggy's own are not the test's, and a long report is kept by its tail."""
        report = sample_run.failures["tests/test_sample.py::test_fail"]
        assert "Traceback (most recent call last):" in report
        frames = [line for line in report.splitlines() if line.startswith('  File "')]
        assert frames
        assert frames[0].endswith(", in test_fail")
        assert not any("_pytest" in f or "pluggy" in f for f in frames)

    @pytest.mark.usefixtures("sample_run")
    def test_worktree_is_left_clean(self, sample: Path) -> None:
        """No JUnit file, pytest cache or bytecode is written into the worktree."""
        left = {
            path.relative_to(sample).as_posix()
            for path in sample.rglob("*")
            if ".venv" not in path.relative_to(sample).parts
        }
        assert left == {"pyproject.toml", "tests", "tests/test_sample.py"}

    def test_node_ids_select_tests(self, sample: Path) -> None:
        """Only the given node ids run."""
        wanted = [
            "tests/test_sample.py::TestGroup::test_method",
            "tests/test_sample.py::test_param[2]",
        ]
        results = run_sync(pytest_command(sample), sample, node_ids=wanted)
        assert results.outcomes == {wanted[0]: "passed", wanted[1]: "failed"}

    def test_a_node_id_starting_with_a_dash_is_not_an_option(self, tmp_path: Path) -> None:
        """A test folder named `-x` is selected as a path, not read as pytest's `-x`."""
        write(tmp_path, {"pyproject.toml": PYTEST_CONFIG, "-x/test_a.py": "def test_a(): pass\n"})
        make_venv(tmp_path / ".venv")
        results = run_sync(pytest_command(tmp_path), tmp_path, node_ids=["-x/test_a.py::test_a"])
        assert results.outcomes == {"-x/test_a.py::test_a": "passed"}

    def test_a_selection_too_long_for_a_command_line_runs_its_files(self, sample: Path) -> None:
        """30,000 ids are 2.4 MB, past the kernel's limit: their files run, and the ids too."""
        wanted = [f"tests/test_sample.py::test_param[{n}-{'x' * 60}]" for n in range(30_000)]
        results = run_sync(
            pytest_command(sample), sample, node_ids=[*wanted, "tests/test_sample.py::test_pass"]
        )
        passing = "tests/test_sample.py::test_pass"
        assert results.outcomes[passing] == "passed"

    def test_empty_selection_runs_nothing(self, sample: Path) -> None:
        """An empty list of node ids is an empty result, not the whole suite."""
        results = run_sync(pytest_command(sample), sample, node_ids=[])
        assert results.outcomes == {}
        assert results.per_test

    def test_collection_error_is_an_error_outcome(self, tmp_path: Path) -> None:
        """A test module that cannot be imported shows up as an error."""
        write(tmp_path, {"tests/test_ok.py": "def test_ok():\n    pass\n"})
        write(tmp_path, {"tests/test_broken.py": "import no_such_module_here\n"})
        make_venv(tmp_path / ".venv")
        results = run_sync(pytest_command(tmp_path), tmp_path)
        # pytest stops after a collection error, so test_ok never runs.
        assert results.outcomes == {"tests/test_broken.py": "error"}
        assert results.returncode == 2
        assert "no_such_module_here" in results.output

    def test_no_tests_collected(self, tmp_path: Path) -> None:
        """pytest's exit code 5 gives empty, per-test outcomes."""
        write(tmp_path, {"tests/test_empty.py": "def helper():\n    pass\n"})
        make_venv(tmp_path / ".venv")
        results = run_sync(pytest_command(tmp_path), tmp_path)
        assert results.returncode == 5
        assert results.outcomes == {}
        assert results.per_test

    @pytest.mark.parametrize(("code", "status"), [("1", "failed"), ("0", "passed")])
    def test_other_command_is_judged_by_exit_code(
        self, sample: Path, code: str, status: str
    ) -> None:
        """A command that does not run pytest gives one outcome, per_test False."""
        command = resolve_test_command(sample, f"sh -c 'exit {code}'")
        assert command is not None
        results = run_sync(command, sample)
        assert results.outcomes == {f"sh -c 'exit {code}'": status}
        assert not results.per_test
        assert results.returncode == int(code)

    def test_pytest_behind_another_command(self, sample: Path) -> None:
        """pytest started by a script still reports per test (and `python` is the venv's)."""
        script = "sh -c 'python -m pytest tests/test_sample.py::test_pass'"
        command = resolve_test_command(sample, script)
        assert command is not None
        assert not command.is_pytest
        results = run_sync(command, sample)
        assert results.outcomes == {"tests/test_sample.py::test_pass": "passed"}
        assert results.per_test

    def test_timeout_leaves_tests_missing(self, tmp_path: Path) -> None:
        """A run killed at its deadline reports no outcome for unfinished tests."""
        write(
            tmp_path,
            {"tests/test_slow.py": "import time\n\n\ndef test_slow():\n    time.sleep(60)\n"},
        )
        make_venv(tmp_path / ".venv")
        results = run_sync(pytest_command(tmp_path), tmp_path, timeout=1.5)
        assert results.outcomes == {}
        assert results.returncode < 0
        assert "timed out" in results.output

    def test_timeout_of_other_command_is_a_failure(self, sample: Path) -> None:
        """A non-pytest command killed at its deadline counts as failed."""
        command = resolve_test_command(sample, "sleep 60")
        assert command is not None
        results = run_sync(command, sample, timeout=0.3)
        assert results.outcomes == {"sleep 60": "failed"}
        assert not results.per_test

    def test_missing_program_is_a_test_command_error(self, sample: Path) -> None:
        """A command that cannot start is one clear error."""
        command = resolve_test_command(sample, "no-such-program-fixbot --x")
        assert command is not None
        with pytest.raises(TestCommandError, match="no-such-program-fixbot"):
            run_sync(command, sample)


class TestWorktreeCodeIsTested:
    @pytest.fixture
    def layout(self, tmp_path: Path) -> tuple[Path, Path]:
        """A checkout installed (.pth) into its venv, and a worktree with changed code."""
        checkout, worktree = tmp_path / "checkout", tmp_path / "worktree"
        venv = checkout / ".venv"
        test_file = f"""
            import os
            import sys

            import shadowpkg

            VENV = {str(venv)!r}
            WORKTREE = {str(worktree)!r}


            def test_imports_worktree():
                assert shadowpkg.VALUE == "worktree", shadowpkg.__file__


            def test_runs_in_repo_venv():
                assert os.path.realpath(sys.prefix) == os.path.realpath(VENV)
                assert os.environ["VIRTUAL_ENV"] == VENV
                assert os.environ["PATH"].split(os.pathsep)[0] == VENV + "/bin"
                assert os.environ["PYTHONPATH"].split(os.pathsep) == [WORKTREE + "/src", WORKTREE]
                assert "FIXBOT_TEST_SECRET" not in os.environ
        """
        for root, value in ((checkout, "checkout"), (worktree, "worktree")):
            write(
                root,
                {
                    "pyproject.toml": "[tool.pytest.ini_options]\n",
                    "src/shadowpkg/__init__.py": f"VALUE = {value!r}\n",
                    "tests/test_which.py": test_file,
                },
            )
        make_venv(venv, checkout / "src")
        return checkout, worktree

    def test_without_pythonpath_the_checkout_shadows(self, layout: tuple[Path, Path]) -> None:
        """Control: the venv alone imports the checkout's copy, even from the worktree."""
        checkout, worktree = layout
        code = "import shadowpkg; print(shadowpkg.VALUE)"
        done = anyio.run(
            functools.partial(
                run, [checkout / ".venv/bin/python", "-c", code], cwd=worktree, env=repo_env()
            )
        )
        assert done.stdout.decode().strip() == "checkout"

    def test_worktree_copy_is_imported(
        self, layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """run_tests imports the worktree's code, in the repo's venv, without fixbot's secrets."""
        monkeypatch.setenv("FIXBOT_TEST_SECRET", "hunter2")
        checkout, worktree = layout
        results = run_sync(pytest_command(checkout), worktree)
        assert results.outcomes == {
            "tests/test_which.py::test_imports_worktree": "passed",
            "tests/test_which.py::test_runs_in_repo_venv": "passed",
        }, results.output


class TestLimits:
    """A run past a resource limit is stopped by the kernel and says which limit it hit."""

    def limited(self, tmp_path: Path, body: str, limits: Limits) -> TestResults:
        repo = write(tmp_path / "r", {"tests/test_hog.py": f"def test_hog():\n{body}"})
        make_venv(repo / ".venv")
        isolation = anyio.run(functools.partial(probe_isolation, limits=limits))
        return run_sync(pytest_command(repo), repo, isolation=isolation, timeout=60)

    @pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) is needed")
    def test_cpu_time(self, tmp_path: Path) -> None:
        """A test that spins is killed at its CPU time, and the run names the limit."""
        results = self.limited(tmp_path, "    while True:\n        pass\n", Limits(cpu_seconds=1))
        assert results.limit == "CPU time"
        assert results.outcomes.get("tests/test_hog.py::test_hog") != "passed"

    @pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) is needed")
    def test_memory(self, tmp_path: Path) -> None:
        """A test that allocates past its memory limit fails with MemoryError, named as such."""
        body = "    hoard = bytearray(4 * 2**30)\n    assert hoard\n"
        results = self.limited(tmp_path, body, Limits(memory_mib=1024))
        assert results.limit == "memory"
        assert results.outcomes["tests/test_hog.py::test_hog"] == "failed"

    def test_processes(self, tmp_path: Path) -> None:
        """A test that forks past the process limit is refused forks (even as root: a cgroup)."""
        body = (
            "    import os, time\n"
            "    children = []\n"
            "    for _ in range(80):\n"
            "        try:\n"
            "            pid = os.fork()\n"
            "        except OSError:\n"
            "            break\n"
            "        if pid == 0:\n"
            "            time.sleep(30)\n"
            "            os._exit(0)\n"
            "        children.append(pid)\n"
            "    assert len(children) < 80, 'forked past the limit'\n"
        )
        isolation_limits = Limits(processes=40)
        results = self.limited(tmp_path, body, isolation_limits)
        if os.geteuid() == 0 and find_pids_cgroup() is None:
            pytest.skip("root, and no writable pids cgroup: nothing can hold the count")
        assert results.outcomes["tests/test_hog.py::test_hog"] == "passed", results.output
