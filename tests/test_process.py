"""sandbox._process: real subprocesses, real process groups, real signals."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio
import pytest

from fixbot.sandbox._process import ALLOWED_ENV, no_git_env, repo_env, run

# Started in the background by the command under test: its pid goes to `pidfile`.
GRANDCHILD = 'sleep 20 & echo $! > "$1"; wait'


def alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie waiting to be reaped counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_dead(pid: int, seconds: float = 5) -> bool:
    """Poll until `pid` is gone (SIGKILL is delivered asynchronously); True if it went."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def read_pid(path: Path) -> int:
    """The pid a command wrote to `path`."""
    return int(path.read_text().strip())


@pytest.fixture
def reaper():
    """Pids a test started; any still alive at the end are killed so nothing leaks."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, 9)


@pytest.mark.anyio
class TestRunOutput:
    async def test_exit_code_and_both_streams(self):
        """The exit code, stdout and stderr come back separately."""
        done = await run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert done.returncode == 3
        assert done.stdout == b"out\n"
        assert done.stderr == b"err\n"
        assert not done.timed_out
        assert done.args == ("sh", "-c", "echo out; echo err >&2; exit 3")

    async def test_success_is_zero(self):
        """A command that succeeds reports exit code 0."""
        done = await run(["true"])
        assert done.returncode == 0
        assert done.stdout == b""

    async def test_output_joins_and_strips(self):
        """`output` is stdout then stderr as text, stripped."""
        done = await run(["sh", "-c", "echo out; echo err >&2"])
        assert done.output == "out\nerr"

    async def test_output_survives_invalid_utf8(self):
        """Bytes that are not UTF-8 are replaced in `output`, kept in `stdout`."""
        done = await run(["printf", r"\377ok"])
        assert done.stdout == b"\xffok"
        assert done.output == "\ufffdok"

    async def test_pathlike_args_and_cwd(self, tmp_path: Path):
        """Path arguments are accepted and the command runs in `cwd`."""
        (tmp_path / "f.txt").write_text("hi")
        done = await run(["cat", Path("f.txt")], cwd=tmp_path)
        assert done.stdout == b"hi"
        assert done.args == ("cat", "f.txt")

    async def test_env_is_exactly_what_was_given(self):
        """An explicit env replaces the inherited environment."""
        done = await run(["/usr/bin/env"], env={"ONLY": "this"})
        assert done.stdout == b"ONLY=this\n"

    async def test_large_output_does_not_deadlock(self):
        """Output bigger than a pipe buffer on both streams is read in full."""
        script = "import sys; sys.stdout.write('a' * 300000); sys.stderr.write('b' * 300000)"
        with anyio.fail_after(20):
            done = await run([sys.executable, "-c", script])
        assert done.stdout == b"a" * 300000
        assert done.stderr == b"b" * 300000


@pytest.mark.anyio
class TestRunStreaming:
    async def test_lines_are_handed_over_as_they_come(self):
        """With on_line, stdout arrives line by line and is not also kept."""
        seen: list[bytes] = []
        script = "import sys\nfor i in range(3000): print(f'line {i}')\nprint('tail', end='')"
        done = await run([sys.executable, "-c", script], on_line=seen.append)
        assert seen[:2] == [b"line 0", b"line 1"]
        assert seen[-1] == b"tail"
        assert len(seen) == 3001
        assert done.stdout == b""
        assert done.returncode == 0


@pytest.mark.anyio
class TestRunStdin:
    async def test_stdin_is_delivered(self):
        """Bytes given as stdin reach the command."""
        done = await run(["cat"], stdin=b"hello\x00world")
        assert done.stdout == b"hello\x00world"

    async def test_large_stdin_round_trips(self):
        """Stdin bigger than a pipe buffer is written while output is read."""
        data = os.urandom(1 << 20)
        with anyio.fail_after(20):
            done = await run(["cat"], stdin=data)
        assert done.stdout == data

    async def test_no_stdin_means_end_of_file(self):
        """Without stdin the command reads end-of-file at once instead of hanging."""
        with anyio.fail_after(10):
            done = await run(["cat"])
        assert done.returncode == 0
        assert done.stdout == b""

    async def test_command_that_ignores_large_stdin(self):
        """A command that exits without reading its input still reports its exit code."""
        with anyio.fail_after(10):
            done = await run(["sh", "-c", "exit 4"], stdin=b"x" * (4 << 20))
        assert done.returncode == 4
        assert not done.timed_out


@pytest.mark.anyio
class TestRunKillsTheGroup:
    async def test_timeout_kills_child_and_background_grandchild(self, tmp_path, reaper):
        """On timeout the whole process group dies, a background grandchild included."""
        pidfile = tmp_path / "pid"
        with anyio.fail_after(20):
            done = await run(["sh", "-c", GRANDCHILD, "sh", pidfile], timeout=1)
        grandchild = read_pid(pidfile)
        reaper.append(grandchild)
        assert done.timed_out
        assert done.returncode == -9
        assert wait_dead(grandchild)

    async def test_output_before_timeout_is_kept(self):
        """What a command printed before its deadline is returned."""
        done = await run(["sh", "-c", "echo partial; sleep 20"], timeout=1)
        assert done.timed_out
        assert done.stdout == b"partial\n"

    async def test_background_child_does_not_hold_up_return(self, tmp_path, reaper):
        """A command that leaves a child holding the pipes returns when it exits."""
        pidfile = tmp_path / "pid"
        with anyio.fail_after(20):
            done = await run(["sh", "-c", 'sleep 20 & echo $! > "$1"; echo done', "sh", pidfile])
        child = read_pid(pidfile)
        reaper.append(child)
        assert done.returncode == 0
        assert not done.timed_out
        assert done.stdout == b"done\n"
        assert wait_dead(child)

    async def test_detached_background_child_is_killed_too(self, tmp_path, reaper):
        """A leftover child with its output redirected away is killed on success."""
        pidfile = tmp_path / "pid"
        script = 'sleep 20 >/dev/null 2>&1 & echo $! > "$1"'
        with anyio.fail_after(20):
            done = await run(["sh", "-c", script, "sh", pidfile])
        child = read_pid(pidfile)
        reaper.append(child)
        assert done.returncode == 0
        assert wait_dead(child)

    async def test_cancellation_kills_group_and_propagates(self, tmp_path, reaper):
        """Cancelling the caller (move_on_after) kills the child and its grandchild."""
        pidfile = tmp_path / "pid"
        script = 'echo $$ > "$1.parent"; sleep 20 & echo $! > "$1"; wait'
        finished = False
        with anyio.fail_after(20), anyio.move_on_after(1) as scope:
            await run(["sh", "-c", script, "sh", pidfile])
            finished = True
        assert scope.cancelled_caught
        assert not finished
        child, grandchild = read_pid(Path(f"{pidfile}.parent")), read_pid(pidfile)
        reaper.extend([child, grandchild])
        assert wait_dead(child)
        assert wait_dead(grandchild)

    async def test_child_leads_its_own_session(self):
        """The child is started in a new session, so its group can be killed alone."""
        done = await run([sys.executable, "-c", "import os; print(os.getsid(0) == os.getpid())"])
        assert done.stdout == b"True\n"


class TestRepoEnv:
    @pytest.mark.parametrize("secret", ["FIXBOT_LLM_API_KEY", "GITHUB_TOKEN", "OPENAI_API_KEY"])
    def test_secrets_are_dropped(self, monkeypatch, secret):
        """A token in fixbot's environment never reaches the repo's code."""
        monkeypatch.setenv(secret, "s3cr3t")
        env = repo_env()
        assert secret not in env
        assert "s3cr3t" not in env.values()

    def test_path_is_kept(self, monkeypatch):
        """PATH passes through unchanged."""
        monkeypatch.setenv("PATH", "/opt/x/bin:/usr/bin:/bin")
        assert repo_env()["PATH"] == "/opt/x/bin:/usr/bin:/bin"

    def test_missing_path_falls_back_to_default(self, monkeypatch):
        """Without PATH the child still gets the OS default search path."""
        monkeypatch.delenv("PATH")
        assert repo_env()["PATH"] == os.defpath

    def test_only_allowed_keys_and_fixed_python_settings(self, monkeypatch):
        """Nothing outside the allow-list, plus no bytecode and a fixed hash seed."""
        monkeypatch.setenv("SOME_RANDOM_SETTING", "1")
        env = repo_env()
        assert set(env) <= {*ALLOWED_ENV, "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED"}
        assert env["PYTHONDONTWRITEBYTECODE"] == "1"
        assert env["PYTHONHASHSEED"] == "0"

    def test_extra_is_added(self, monkeypatch):
        """`extra` entries are added and win over inherited ones."""
        monkeypatch.setenv("HOME", "/home/someone")
        env = repo_env({"HOME": "/tmp/elsewhere", "CI": "1"})
        assert env["HOME"] == "/tmp/elsewhere"
        assert env["CI"] == "1"

    @pytest.mark.anyio
    async def test_secret_invisible_to_a_real_child(self, monkeypatch):
        """A child run with repo_env cannot read the secret; it still finds commands."""
        monkeypatch.setenv("GITHUB_TOKEN", "s3cr3t")
        done = await run(
            ["sh", "-c", 'echo "${GITHUB_TOKEN-unset}"; command -v sh'], env=repo_env()
        )
        lines = done.stdout.decode().splitlines()
        assert lines[0] == "unset"
        assert lines[1].endswith("/sh")


class TestNoGitEnv:
    def test_git_dir_and_index_dropped(self, monkeypatch):
        """GIT_DIR, GIT_INDEX_FILE and GIT_WORK_TREE from a hook are removed."""
        monkeypatch.setenv("GIT_DIR", "/elsewhere/.git")
        monkeypatch.setenv("GIT_INDEX_FILE", "/elsewhere/index")
        monkeypatch.setenv("GIT_WORK_TREE", "/elsewhere")
        env = no_git_env()
        assert "GIT_DIR" not in env
        assert "GIT_INDEX_FILE" not in env
        assert "GIT_WORK_TREE" not in env

    def test_ssh_settings_kept_and_secrets_dropped(self, monkeypatch):
        """Transport settings survive; anything not allow-listed (a token) does not."""
        monkeypatch.setenv("GIT_SSH_COMMAND", "ssh -i key")
        monkeypatch.setenv("PATH", "/usr/bin:/bin")
        monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
        monkeypatch.setenv("FIXBOT_LLM_API_KEY", "sk-secret")
        env = no_git_env()
        assert env["GIT_SSH_COMMAND"] == "ssh -i key"
        assert env["PATH"] == "/usr/bin:/bin"
        assert "GITHUB_TOKEN" not in env
        assert "FIXBOT_LLM_API_KEY" not in env

    def test_git_never_prompts(self):
        """Prompts and the system config are off, and the locale is fixed."""
        env = no_git_env({"EXTRA": "1"})
        assert env["GIT_TERMINAL_PROMPT"] == "0"
        assert env["GIT_CONFIG_NOSYSTEM"] == "1"
        assert env["LC_ALL"] == "C"
        assert env["EXTRA"] == "1"

    @pytest.mark.anyio
    async def test_real_git_ignores_a_stray_git_dir(self, monkeypatch, tmp_path):
        """git run with no_git_env acts on the repo in cwd, not on a stray GIT_DIR."""
        repo = tmp_path / "repo"
        repo.mkdir()
        assert (await run(["git", "init", "-q", repo])).returncode == 0
        monkeypatch.setenv("GIT_DIR", str(tmp_path / "nowhere"))
        stray = await run(["git", "rev-parse", "--absolute-git-dir"], cwd=repo)
        assert stray.returncode != 0
        done = await run(["git", "rev-parse", "--absolute-git-dir"], cwd=repo, env=no_git_env())
        assert done.returncode == 0
        assert Path(done.stdout.decode().strip()) == (repo / ".git").resolve()
