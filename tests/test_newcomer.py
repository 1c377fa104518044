"""A newcomer's first hour and a CI job's every night: versions, config, output, determinism."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import commit_all, fixbot, git, init_repo, make_venv, report_of

FILES = {
    "pkg/__init__.py": "",
    "pkg/core.py": "import os\n\n\ndef add(a, b):\n    return a + b\n",
    "tests/test_core.py": (
        "from pkg.core import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    ),
    "pyproject.toml": (
        '[tool.ruff.lint]\nselect = ["F401", "E722"]\n'
        "[tool.pytest.ini_options]\npythonpath = ['.']\n"
    ),
}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repo with one F401 fix and a test."""
    return init_repo(tmp_path / "repo", FILES)


class TestVersion:
    """`fixbot --version`, `-V` and `fixbot version`."""

    @pytest.mark.parametrize("args", [["--version"], ["-V"], ["version"]])
    def test_prints_fixbot_and_ruff(self, args: list[str]) -> None:
        """Each prints fixbot's version and ruff's, and exits 0."""
        done = fixbot(*args)
        assert done.returncode == 0, done.stderr
        assert re.fullmatch(r"fixbot \S+ \(ruff 0\.17\.\d+\)\n", done.stdout)


class TestConfig:
    """Configuration found the way ruff finds its own."""

    def test_root_config_from_a_subfolder(self, repo: Path) -> None:
        """Run on pkg/, the top level's [tool.fixbot] still applies."""
        with (repo / "pyproject.toml").open("a") as f:
            f.write("[tool.fixbot]\nbranch = 'from-root'\ntest-cmd = ''\n")
        commit_all(repo, "config")
        done = fixbot("run", repo / "pkg")
        assert done.returncode == 0, done.stderr
        assert report_of(repo)["branch"] == "from-root"

    def test_config_file_flag(self, repo: Path, tmp_path: Path) -> None:
        """--config names another file: a fixbot.toml's top level is read."""
        other = tmp_path / "fixbot.toml"
        other.write_text("branch = 'from-file'\ntest-cmd = ''\n")
        done = fixbot("run", repo, "--config", other)
        assert done.returncode == 0, done.stderr
        assert report_of(repo)["branch"] == "from-file"
        done = fixbot("run", repo, "--config", tmp_path / "missing.toml")
        assert done.returncode == 2
        assert "--config: no such file" in done.stderr

    def test_error_text_is_printed_as_is(self, repo: Path) -> None:
        """`[tool.fixbot]` in an error survives: no markup eats it."""
        with (repo / "pyproject.toml").open("a") as f:
            f.write("[tool.fixbot]\nbogus = 1\n")
        done = fixbot("run", repo)
        assert done.returncode == 2
        assert f"unknown key 'bogus' in [tool.fixbot] of {repo / 'pyproject.toml'}" in done.stderr

    def test_unknown_variable_is_a_warning(self, repo: Path) -> None:
        """FIXBOT_VERSION of a pipeline's own: one warning line, and the run goes on."""
        done = fixbot("run", repo, "--test-cmd", "", "--dry-run", env={"FIXBOT_VERSION": "0.1"})
        assert done.returncode == 0, done.stderr
        assert "warning: unknown environment variable FIXBOT_VERSION ignored" in done.stderr

    @pytest.mark.parametrize("var", ["FIXBOT_LLM_BASE_URL", "FIXBOT_LLM_MODEL"])
    def test_half_configured_model_warns(self, repo: Path, var: str) -> None:
        """A model URL without a name (or the reverse): said in the log and in the report."""
        value = "http://127.0.0.1:9/v1" if var.endswith("URL") else "m"
        done = fixbot("run", repo, "--test-cmd", "", "--dry-run", env={var: value})
        assert done.returncode == 0, done.stderr
        assert "so no model is used" in done.stderr
        assert any("so no model is used" in n for n in report_of(repo)["notices"])


class TestOutput:
    """What a pipe, a CI log and a script get."""

    def test_piped_output_is_readable_and_unwrapped(self, repo: Path) -> None:
        """No JSON by default, no colour in a pipe, and no summary line cut at 80 columns."""
        env = {"FIXBOT_LOG_FORMAT": "", "COLUMNS": "80"}
        done = fixbot(
            "run", repo, "-v", "--test-cmd", "", "--branch", "a-rather-long-name", env=env
        )
        assert done.returncode == 0, done.stderr
        assert not [ln for ln in done.stderr.splitlines() if ln.startswith("{")]
        assert "stage.start" in done.stderr
        assert not ANSI.search(done.stdout + done.stderr)
        report_line = next(ln for ln in done.stdout.splitlines() if ln.startswith("report: "))
        assert report_line.endswith("report.md")
        assert any(len(ln) > 80 for ln in done.stdout.splitlines())

    def test_json_logs_on_request(self, repo: Path) -> None:
        """--log-format json: every log line is a JSON object."""
        done = fixbot("run", repo, "-v", "--test-cmd", "", "--dry-run", "--log-format", "json")
        logs = [ln for ln in done.stderr.splitlines() if ln.strip()]
        assert logs
        assert all(json.loads(ln)["event"] for ln in logs)

    def test_color_always_and_no_color(self, repo: Path) -> None:
        """--color always colours the logs; NO_COLOR, even then, does not."""
        args = ("run", repo, "-v", "--test-cmd", "", "--dry-run", "--log-format", "console")
        assert ANSI.search(fixbot(*args, "--color", "always").stderr)
        assert not ANSI.search(fixbot(*args, "--color", "never").stderr)

    def test_quiet(self, repo: Path) -> None:
        """-q: no table, one line of numbers and the report."""
        done = fixbot("run", repo, "-q", "--test-cmd", "", "--dry-run")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert len(lines) == 2
        assert lines[0].startswith("violations 1 -> 0")

    def test_diff_and_accepted_patch(self, repo: Path) -> None:
        """--diff --dry-run prints what would land; the run folder keeps accepted.patch."""
        done = fixbot("run", repo, "--diff", "--dry-run", "--test-cmd", "")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("--- a/pkg/core.py\n+++ b/pkg/core.py\n")
        assert "-import os\n" in done.stdout
        runs = sorted((repo / ".git" / "fixbot" / "runs").iterdir())
        assert (runs[-1] / "accepted.patch").read_text() == done.stdout
        check = git(repo, "apply", "--check", str(runs[-1] / "accepted.patch"))
        assert check == ""

    def test_exit_non_zero_on_fix(self, repo: Path) -> None:
        """A fix landed: exit 1 with --exit-non-zero-on-fix; nothing to fix: exit 0."""
        args = ("run", repo, "--test-cmd", "", "--dry-run", "--exit-non-zero-on-fix")
        assert fixbot(*args).returncode == 1
        (repo / "pkg" / "core.py").write_text("def add(a, b):\n    return a + b\n")
        commit_all(repo, "clean")
        assert fixbot(*args).returncode == 0


class TestDeterminism:
    """The same base, config and fixes give the same commits on any machine."""

    def test_two_clones_at_different_paths(self, repo: Path, tmp_path: Path) -> None:
        """Clones at other paths, tests run by a python3 from PATH at other paths: one sha."""
        shas, messages = [], []
        for name in ("one", "deeper/two"):
            clone = tmp_path / name / "clone"
            git(tmp_path, "clone", "-q", str(repo), str(clone))
            shutil.rmtree(clone / ".venv", ignore_errors=True)
            tools = make_venv(tmp_path / name / "tools")
            env = {"PATH": f"{tools / 'bin'}{os.pathsep}{os.environ['PATH']}"}
            done = fixbot("run", clone, "--branch", "det", env=env)
            assert done.returncode == 0, done.stderr
            assert report_of(clone)["tests"]["mode"] == "tests"
            shas.append(git(clone, "rev-parse", "det").strip())
            messages.append(git(clone, "log", "-1", "--format=%B", "det"))
        assert shas[0] == shas[1]
        assert str(tmp_path) not in messages[0]
        assert "python3 -m pytest" in messages[0]
