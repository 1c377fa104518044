"""`fixbot run` end to end: real git repos, real ruff, real pytest, fixbot as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixbot.orchestrator._state import worktree_root
from tests.conftest import (
    ROOT,
    checkout_tests,
    commit_all,
    fixbot,
    git,
    init_repo,
    report_of,
    write_files,
)

SMALL = {
    "pyproject.toml": """
        [tool.ruff.lint]
        select = ["F", "E"]
    """,
    "pkg/__init__.py": "",
    "pkg/core.py": """
        import os
        import sys


        class Always:
            def __eq__(self, other):
                return True


        def is_missing(x):
            return x == None


        def safe(x):
            try:
                return int(x)
            except:
                return None
    """,
    "tests/test_core.py": """
        from pkg.core import Always, is_missing, safe


        def test_missing():
            assert is_missing(Always())


        def test_safe():
            assert safe("3") == 3
    """,
}

REPORT_KEYS = {
    "base", "branch", "versions", "selection", "violations_before", "violations_after",
    "accepted", "rejected", "dropped", "unfixed", "by_rule", "patches", "tests", "timings",
    "llm", "isolation",
}  # fmt: skip


def snapshot(repo: Path) -> dict[str, str]:
    """What a user would notice changing: HEAD, branch, index, work tree, worktrees."""
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "-q", "HEAD"),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all", "--ignored=no"),
        "diff": git(repo, "diff"),
        "cached": git(repo, "diff", "--cached"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
    }


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "small", SMALL)


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line fixbot prints (JSON log lines aside)."""
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("fixbot: error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


class TestBadInput:
    """Bad input: one clear line, exit code 2, nothing changed, never a traceback."""

    def test_not_a_directory(self, tmp_path: Path) -> None:
        """A path that does not exist."""
        done = fixbot("run", tmp_path / "nope")
        assert done.returncode == 2
        assert "not a directory" in last_line(done)
        assert "Traceback" not in done.stderr

    def test_not_a_git_repo(self, tmp_path: Path) -> None:
        """A plain folder."""
        done = fixbot("run", tmp_path)
        assert done.returncode == 2
        assert "not a git repository" in last_line(done)
        assert "Traceback" not in done.stderr

    def test_bad_ref(self, small: Path) -> None:
        """--base names no commit."""
        before = snapshot(small)
        done = fixbot("run", small, "--base", "no-such-ref")
        assert done.returncode == 2
        assert "no-such-ref" in last_line(done)
        assert snapshot(small) == before

    def test_unknown_config_key(self, small: Path) -> None:
        """An unknown [tool.fixbot] key names the key and the file."""
        (small / "pyproject.toml").write_text("[tool.fixbot]\nmax-patch = 3\n")
        done = fixbot("run", small)
        assert done.returncode == 2
        assert "max-patch" in last_line(done)
        assert "pyproject.toml" in last_line(done)

    def test_test_command_that_cannot_run(self, small: Path) -> None:
        """A configured test command that fails at base is exit 2, with its output."""
        done = fixbot("run", small, "--test-cmd", "python -m pytest tests/missing_test.py")
        assert done.returncode == 2, done.stderr
        assert "test command" in last_line(done)
        assert "missing_test.py" in done.stderr
        assert git(small, "branch", "--list", "fixbot/*") == ""

    def test_bad_rule_selector(self, small: Path) -> None:
        """ruff's own refusal becomes one line."""
        done = fixbot("run", small, "--select", "NOPE999")
        assert done.returncode == 2
        assert "ruff failed" in last_line(done)
        assert "Traceback" not in done.stderr

    def test_checked_out_branch_is_never_rewritten(self, small: Path) -> None:
        """--branch naming the checked-out branch is refused, even with --force."""
        done = fixbot("run", small, "--branch", "main", "--force")
        assert done.returncode == 2
        assert "checked out" in last_line(done)


class TestRun:
    """A whole run on a small repo."""

    def test_fixes_land_and_checkout_is_untouched(self, small: Path) -> None:
        """Proven fixes land on the branch; the behaviour-changing one does not."""
        (small / "pkg" / "core.py").write_text((small / "pkg" / "core.py").read_text() + "# mine\n")
        (small / "notes.txt").write_text("untracked work\n")
        git(small, "add", "notes.txt")
        before = snapshot(small)
        done = fixbot("run", small, "--branch", "lint")
        assert done.returncode == 0, done.stderr
        assert snapshot(small) == before
        assert (small / "notes.txt").read_text() == "untracked work\n"
        fixed = git(small, "show", "lint:pkg/core.py")
        assert "import os" not in fixed
        assert "x == None" in fixed  # E711's unsafe fix breaks test_missing
        report = report_of(small)
        assert set(report) >= REPORT_KEYS
        assert report["branch"] == "lint"
        assert report["by_rule"]["F401"] == {
            "found": 2, "fixed": 2, "rejected": 0, "unfixed": 0,
            "offered": 2, "landed": 2, "refused": {}, "revealed": 0,
        }  # fmt: skip
        assert report["by_rule"]["E711"]["rejected"] == 1
        assert report["by_rule"]["E722"]["unfixed"] == 1
        assert report["tests"]["mode"] == "tests"
        assert report["tests"]["passed_before"] == 2
        rejected = [p for p in report["patches"] if p["status"] == "rejected"]
        assert [p["reason"] for p in rejected] == ["tests"]
        assert "test_missing" in rejected[0]["detail"]
        diffs = list((small / ".git" / "fixbot" / "runs").glob("*/rejected/*.diff"))
        assert len(diffs) == 1
        assert "+    return x is None" in diffs[0].read_text()

    def test_branch_passes_its_tests(self, small: Path, tmp_path: Path) -> None:
        """The branch, checked out on its own, passes every test."""
        assert fixbot("run", small, "--branch", "lint").returncode == 0
        done = checkout_tests(small, "lint", tmp_path / "check")
        assert done.returncode == 0, done.stdout

    def test_nothing_left_behind(self, small: Path) -> None:
        """No worktree, worktree folder or staging ref survives a run."""
        assert fixbot("run", small).returncode == 0
        assert git(small, "worktree", "list").count("\n") == 1
        assert git(small, "for-each-ref", "refs/fixbot") == ""
        root = worktree_root(small / ".git" / "fixbot", None)
        assert not root.exists() or not list(root.iterdir())

    def test_rerun_is_deterministic(self, small: Path) -> None:
        """The same base and fixes give the same commits; fixbot replaces its own branch."""
        assert fixbot("run", small, "--branch", "lint").returncode == 0
        first = git(small, "rev-parse", "lint")
        assert fixbot("run", small, "--branch", "lint").returncode == 0
        assert git(small, "rev-parse", "lint") == first
        message = git(small, "log", "-1", "--format=%an <%ae>%n%B", "lint")
        assert message.startswith("fixbot <fixbot@users.noreply.github.com>")
        assert "Fixbot-Proof:" in message

    def test_foreign_commits_protect_a_branch(self, small: Path) -> None:
        """A branch with someone else's commit is refused, and --force replaces it."""
        git(small, "checkout", "-q", "-b", "lint")
        write_files(small, {"mine.txt": "a colleague's work\n"})
        commit_all(small, "not fixbot's")
        git(small, "checkout", "-q", "main")
        done = fixbot("run", small, "--branch", "lint")
        assert done.returncode == 2
        assert "not fixbot's" in last_line(done)
        assert fixbot("run", small, "--branch", "lint", "--force").returncode == 0
        assert "Fixbot-Proof:" in git(small, "log", "-1", "--format=%B", "lint")

    def test_dry_run_writes_no_branch(self, small: Path) -> None:
        """--dry-run proves and reports, and writes no branch."""
        done = fixbot("run", small, "--dry-run")
        assert done.returncode == 0, done.stderr
        assert git(small, "branch", "--list", "fixbot/*") == ""
        report = report_of(small)
        assert report["branch"] is None
        assert report["violations_after"] == report["violations_before"] - 2

    def test_clean_run_runs_the_suite_once(self, tmp_path: Path) -> None:
        """When no fix breaks a test, the one whole-suite run on the merged tree is the gate."""
        files = {
            "pkg/__init__.py": "",
            "pkg/core.py": "import os\n\n\ndef add(a, b):\n    return a + b\n",
            "tests/test_core.py": "from pkg.core import add\n\n\ndef test_add():\n"
            "    assert add(2, 3) == 5\n",
        }
        repo = init_repo(tmp_path / "r", files)
        done = fixbot("run", repo, "--select", "F401", "--branch", "lint")
        assert done.returncode == 0, done.stderr
        report = report_of(repo)
        assert report["accepted"] == 1
        # Besides the baseline: one run, on exactly the tree that landed, reused as the gate.
        assert (report["proof"]["test_runs"], report["proof"]["reused_runs"]) == (1, 1)
        assert checkout_tests(repo, "lint", tmp_path / "check").returncode == 0

    def test_generated_version_file_is_importable(self, tmp_path: Path) -> None:
        """A git-ignored _version.py written at install time (hatch-vcs) is there for the tests."""
        files = {
            ".gitignore": ".venv/\npkg/_version.py\n",
            "pkg/__init__.py": "from ._version import __version__\n",
            "pkg/core.py": "import os\n\n\ndef add(a, b):\n    return a + b\n",
            "tests/test_core.py": "from pkg import __version__\nfrom pkg.core import add\n\n\n"
            "def test_add():\n    assert add(2, 3) == 5\n    assert __version__\n",
        }
        repo = init_repo(tmp_path / "r", files)
        (repo / "pkg" / "_version.py").write_text("__version__ = '1.0'\n")
        done = fixbot("run", repo, "--select", "F401", "--dry-run")
        assert done.returncode == 0, done.stderr
        report = report_of(repo)
        assert report["accepted"] == 1
        assert report["tests"]["passed_before"] == 1

    def test_lint_only_says_so(self, tmp_path: Path) -> None:
        """Without tests, proof is lint-only and the report says it plainly."""
        repo = init_repo(tmp_path / "r", {"m.py": "import os\n"}, venv=False)
        done = fixbot("run", repo, "--select", "F401", "--report-dir", tmp_path / "out")
        assert done.returncode == 0, done.stderr
        report = json.loads((tmp_path / "out" / "report.json").read_text())
        assert report["tests"]["mode"] == "lint-only"
        assert "lint only" in (tmp_path / "out" / "report.md").read_text()
        assert "LINT ONLY" in done.stdout

    def test_notebooks_are_reported_not_attempted(self, tmp_path: Path) -> None:
        """A notebook's violations are counted unfixed with reason 'notebook'; it is left alone."""
        cell = {"cell_type": "code", "execution_count": None, "id": "a1", "metadata": {}}
        notebook = {
            "cells": [{**cell, "outputs": [], "source": ["import os\n", "print(1)\n"]}],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        repo = init_repo(
            tmp_path / "r",
            {"m.py": "import sys\n", "n.ipynb": json.dumps(notebook, indent=1) + "\n"},
            venv=False,
        )
        done = fixbot("run", repo, "--select", "F401", "--branch", "lint")
        assert done.returncode == 0, done.stderr
        report = report_of(repo)
        assert report["not_attempted"] == {"notebook": 1}
        counts = report["by_rule"]["F401"]
        assert (counts["found"], counts["fixed"], counts["rejected"], counts["unfixed"]) == (
            2,
            1,
            0,
            1,
        )
        assert git(repo, "diff", "--stat", "main", "lint", "--", "n.ipynb") == ""

    def test_scope_and_max_patches(self, small: Path) -> None:
        """Paths, --exclude and --max-patches narrow the run."""
        write_files(small, {"other.py": "import json\n"})
        commit_all(small, "other")
        done = fixbot("run", small, "pkg", "--max-patches", "1", "--dry-run")
        assert done.returncode == 0, done.stderr
        report = report_of(small)
        assert report["accepted"] == 1
        assert all(p["files"] == ["pkg/core.py"] for p in report["patches"])
        done = fixbot("run", small, "--exclude", "pkg/*", "--dry-run")
        report = report_of(small)
        assert {p["files"][0] for p in report["patches"]} == {"other.py"}


class TestInterrupts:
    """Ctrl-C and kill -9: nothing of the user's changes, nothing is left running."""

    def slow_repo(self, tmp_path: Path) -> Path:
        # In its own worktree: the only place (besides its temp folder) a test may write.
        test = """
            import pathlib
            import time


            def test_slow():
                pathlib.Path("started").write_text("")
                time.sleep(60)  # fixbot-slow-marker
        """
        repo = init_repo(tmp_path / "r", {"m.py": "import os\n", "tests/test_slow.py": test})
        self.worktrees = worktree_root(repo / ".git" / "fixbot", None)
        return repo

    def start(self, repo: Path) -> subprocess.Popen[str]:
        env = {**os.environ, "FIXBOT_LOG_FORMAT": "json"}
        return subprocess.Popen(
            [sys.executable, "-m", "fixbot", "run", str(repo)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def wait_for_tests(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(self.worktrees.glob("*/started")):
                return
            time.sleep(0.1)
        pytest.fail("the test suite never started")

    @pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "hangup"])
    def test_interrupt_cleans_up(self, tmp_path: Path, sig: signal.Signals) -> None:
        """SIGINT, or SIGHUP (a closed terminal, a dropped SSH session), mid-run: exit 130,
        worktrees removed, the suite's processes killed."""
        repo = self.slow_repo(tmp_path)
        before = snapshot(repo)
        proc = self.start(repo)
        self.wait_for_tests()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert snapshot(repo) == before
        time.sleep(0.2)
        assert not subprocess.run(
            ["pgrep", "-f", str(repo)], capture_output=True, check=False
        ).stdout

    @pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is installed by .ci/run")
    def test_kill_9_takes_the_tests_with_it(self, tmp_path: Path) -> None:
        """fixbot killed with SIGKILL: the sandbox's parent-death signal ends the suite too."""
        repo = self.slow_repo(tmp_path)
        proc = self.start(repo)
        self.wait_for_tests()
        proc.kill()
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            # The suite's command line names its JUnit file, under the run's folder.
            alive = subprocess.run(
                ["pgrep", "-f", str(repo)], capture_output=True, check=False
            ).stdout
            if not alive:
                break
            time.sleep(0.1)
        assert not alive

    def test_next_run_sweeps_what_a_killed_run_left(self, tmp_path: Path) -> None:
        """kill -9 leaves worktrees; the next run removes them."""
        repo = self.slow_repo(tmp_path)
        proc = self.start(repo)
        self.wait_for_tests()
        proc.kill()
        proc.communicate(timeout=30)
        # A SIGKILLed run cannot clean up; its test processes die with their namespace or here.
        subprocess.run(["pkill", "-9", "-f", "fixbot-slow-marker"], check=False)
        assert "fixbot-wt-" in git(repo, "worktree", "list")
        (repo / "tests" / "test_slow.py").unlink()
        commit_all(repo, "no slow test")
        done = fixbot("run", repo, "--test-cmd", "")
        assert done.returncode == 0, done.stderr
        assert "fixbot-wt-" not in git(repo, "worktree", "list")


class TestReuse:
    """Test runs survive the run that made them, and are reused only where they hold."""

    def test_unchanged_repo_reuses_every_test_run(self, tmp_path: Path) -> None:
        """The next run on an unchanged repo makes no test run; a changed file makes new ones."""
        repo = init_repo(tmp_path / "r", SMALL)
        first = fixbot("run", repo, "--dry-run")
        assert first.returncode == 0, first.stderr
        made = report_of(repo)["proof"]
        assert made["test_runs"] > 0
        assert made["cached_runs"] == 0
        again = fixbot("run", repo, "--dry-run")
        assert again.returncode == 0, again.stderr
        reused = report_of(repo)
        assert reused["proof"]["test_runs"] == 0
        assert reused["proof"]["cached_runs"] >= 2  # the baseline and the round at least
        assert reused["violations_after"] == report_of(repo)["violations_after"]
        (repo / "pkg" / "__init__.py").write_text("X = 1\n")
        commit_all(repo, "a new base tree")
        third = fixbot("run", repo, "--dry-run")
        assert third.returncode == 0, third.stderr
        assert report_of(repo)["proof"]["test_runs"] > 0

    def test_cache_can_be_turned_off(self, tmp_path: Path) -> None:
        """FIXBOT_TEST_CACHE=0 proves everything again."""
        repo = init_repo(tmp_path / "r", SMALL)
        assert fixbot("run", repo, "--dry-run").returncode == 0
        done = fixbot("run", repo, "--dry-run", env={"FIXBOT_TEST_CACHE": "0"})
        assert done.returncode == 0, done.stderr
        assert report_of(repo)["proof"]["cached_runs"] == 0


def test_unknown_fixbot_variable_warns_and_runs(tmp_path: Path) -> None:
    """FIXBOT_VERSION=0.1.0 in a CI job's environment: one warning line, and the run goes on."""
    repo = init_repo(tmp_path / "r", SMALL)
    done = fixbot("run", repo, "--dry-run", env={"FIXBOT_VERSION": "0.1.0"})
    assert done.returncode == 0, done.stderr
    warnings = [ln for ln in done.stderr.splitlines() if ln.startswith("fixbot: warning:")]
    assert len(warnings) == 1
    assert warnings[0].startswith("fixbot: warning: unknown environment variable FIXBOT_VERSION")


def test_worktree_root_someone_else_made_is_not_used(tmp_path: Path) -> None:
    """The shared tmpfs folder of fixbot's predictable name is private (0700); a link by
    that name (another user's trap) is passed over for the repo's own git folder."""
    home = tmp_path / "home" / ".git" / "fixbot"
    first = worktree_root(home, None)
    if first == home / "worktrees":
        pytest.skip("no usable tmpfs on this machine")
    assert (first.stat().st_mode & 0o777) == 0o700
    first.rmdir()
    first.symlink_to(tmp_path)
    try:
        assert worktree_root(home, None) == home / "worktrees"
    finally:
        first.unlink()


class TestExit:
    """How the process ends: at once, after the exit handlers and with its output."""

    SCRIPT = (
        "import atexit, sys\n"
        "from fixbot.orchestrator.cli import main\n"
        "atexit.register(lambda: print('handler ran', flush=True))\n"
        "class Held:\n"
        "    def __del__(self): print('torn down', flush=True)\n"
        "held = Held()  # freed only by an interpreter teardown\n"
        "sys.argv = ['fixbot', *sys.argv[1:]]\n"
        "main()\n"
        "print('not reached')\n"
    )

    def _main(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", self.SCRIPT, *args],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip

    def test_success_runs_handlers_and_flushes(self) -> None:
        """--version: its line, then the exit handlers, then exit code 0, with no teardown."""
        done = self._main("--version")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0].startswith("fixbot ")
        assert done.stdout.splitlines()[-1] == "handler ran"
        assert "not reached" not in done.stdout
        assert "torn down" not in done.stdout

    def test_bad_input_keeps_its_code(self) -> None:
        """An unknown option still exits 2 with click's message, handlers run."""
        done = self._main("run", "--no-such-option")
        assert done.returncode == 2
        assert "No such option: --no-such-option" in done.stderr
        assert done.stdout.strip() == "handler ran"
