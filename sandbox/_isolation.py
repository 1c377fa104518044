"""How the repo's code is fenced in: probed once per run, reported as it is.

The repo's tests (and the interpreter that compiles a patch) are untrusted.
The strongest rung this machine allows is chosen, by trying it:

1. bubblewrap: new network, PID, IPC and UTS namespaces and a mount namespace in
   which the whole filesystem is read-only except the test's worktree and a
   private temp folder. The git metadata, the user's checkout and fixbot's state
   cannot be written; /proc is fresh, so fixbot's environment cannot be read.
2. unshare: network and PID namespaces with a fresh /proc, every process killed
   with the run; the filesystem is not fenced (the run checks the git metadata
   and fingerprints the checkout instead, and says so).
3. nothing but an allow-listed environment and process-group kills.

On every rung, resource limits (rlimits through `prlimit`) bound memory, CPU
time, file size and processes; `isolation` in the report says what held.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ._process import repo_env, run

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

# `ip` brings the namespace's own loopback up so tests can still run local servers.
_UNSHARE = (
    "--net",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount-proc",
    "--",
    "sh",
    "-c",
    'ip link set lo up 2>/dev/null; exec "$@"',
    "sh",
)
# Its loopback comes up by itself; --die-with-parent is the parent-death signal that
# takes the tests down with a fixbot killed by SIGKILL. /tmp stays read-only like the
# rest (no tmpfs over it: the repo and its venv may live there); TMPDIR points at the
# private temp folder.
_BWRAP = (
    "--die-with-parent",
    "--new-session",
    # As root, bubblewrap would keep every capability: a test could remount / read-write.
    "--cap-drop",
    "ALL",
    "--unshare-net",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    # Root without capabilities may still write sysctls (core_pattern runs a program).
    "--ro-bind",
    "/proc/sys",
    "/proc/sys",
    # Host services listen on sockets here (dbus, docker): no way to reach them.
    "--tmpfs",
    "/run",
)
# A read-only / still shows a home's stores of credentials: a test that read one
# could carry it out in a test id into a report, and on into a PR. Each is hidden.
_SECRET_FILES = (
    ".git-credentials",
    ".netrc",
    ".pypirc",
    ".npmrc",
    ".docker/config.json",
    ".config/git/credentials",
    ".config/gh/hosts.yml",
)
_SECRET_DIRS = (".ssh", ".aws", ".gnupg", ".kube", ".azure", ".config/gcloud", ".config/gh")
Sandbox = Literal["bwrap", "unshare", "none"]
MiB = 1024 * 1024


@functools.cache
def _hidden_secrets() -> tuple[str, ...]:
    """bubblewrap arguments that blank the homes' credential stores that exist."""
    homes = {Path.home(), Path(os.environ.get("HOME", "/root")), Path("/root")}
    # An empty file of our own to lay over each: /dev/null would be a device node on a
    # nodev mount, which reads as "permission denied", and tells the test it is there.
    folder = Path(tempfile.mkdtemp(prefix="fixbot-empty-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    empty = folder / "empty"
    empty.touch(mode=0o444)
    out: list[str] = []
    for home in sorted(homes):
        for rel in _SECRET_DIRS:
            if (home / rel).is_dir() and not (home / rel).is_symlink():
                out += ["--tmpfs", str(home / rel)]
        for rel in _SECRET_FILES:
            path = home / rel
            if (
                path.is_file()
                and not path.is_symlink()
                and not any(path.is_relative_to(home / d) for d in _SECRET_DIRS)
            ):
                out += ["--ro-bind", str(empty), str(path)]
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits on every process that runs the repo's code (None: no limit)."""

    memory_mib: int | None = None  # address space per process
    processes: int | None = None
    cpu_seconds: int | None = None
    file_size_mib: int | None = None

    def prefix(self) -> tuple[str, ...]:
        """A `prlimit` command prefix that sets them, or () when none is set."""
        prlimit = shutil.which("prlimit")
        args = [
            f"--as={self.memory_mib * MiB}" if self.memory_mib else "",
            f"--nproc={self.processes}" if self.processes else "",
            # A soft limit under the hard one: SIGXCPU (named in the report), not SIGKILL.
            f"--cpu={self.cpu_seconds}:{self.cpu_seconds + 10}" if self.cpu_seconds else "",
            f"--fsize={self.file_size_mib * MiB}" if self.file_size_mib else "",
        ]
        args = [a for a in args if a]
        if prlimit is None or not args:
            return ()
        return (prlimit, *args, "--")

    def describe(self, *, cgroup: bool = False) -> str:
        """The limits in words, for the report (`cgroup`: processes held by a pids cgroup)."""
        if not self.prefix():
            return "none (prlimit not found)" if shutil.which("prlimit") is None else "none"
        parts = [
            f"memory {self.memory_mib} MiB per process" if self.memory_mib else "",
            f"{self.processes} processes" if self.processes else "",
            f"CPU {self.cpu_seconds} s" if self.cpu_seconds else "",
            f"files up to {self.file_size_mib} MiB" if self.file_size_mib else "",
        ]
        text = ", ".join(p for p in parts if p)
        if self.processes and cgroup:
            text += " (processes held by a pids cgroup)"
        elif self.processes and os.geteuid() == 0:
            # The kernel does not hold root to RLIMIT_NPROC.
            text += " (the process limit does not bind root: no writable pids cgroup)"
        return text


def default_limits(workers: int, test_timeout: float) -> Limits:
    """The run's share of the machine: its memory split between the worktrees proving
    at once, CPU time of twice the test timeout on every core, and generous files."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MiB
    except (ValueError, OSError):
        memory = 8192
    return Limits(
        memory_mib=max(2048, memory // max(1, workers)),
        processes=512,
        cpu_seconds=max(60, int(test_timeout * 2 * (os.cpu_count() or 1))),
        file_size_mib=4096,
    )


@dataclass(frozen=True, slots=True)
class Isolation:
    """How processes that run the repo's code are started, and what that gives."""

    sandbox: Sandbox = "none"
    facts: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    # Where private temp folders are made (under the run's folder); None: the system's.
    scratch: Path | None = None
    launcher: tuple[str, ...] = ()  # bwrap, or unshare (with its flags)
    # A writable pids cgroup to hold each run's processes (rlimits on processes do not
    # bind root); None where there is none.
    pids: Path | None = None

    @property
    def fences_files(self) -> bool:
        """Whether the repo's code sees everything but its worktree read-only."""
        return self.sandbox == "bwrap"

    def command(self, argv: Sequence[str], worktree: Path, tmp: Path) -> list[str]:
        """`argv` run inside the fence, in `worktree`, with `tmp` its only other writable place."""
        return [*self._cgroup(tmp), *self._fenced(argv, worktree, tmp)]

    def _cgroup(self, tmp: Path) -> list[str]:
        """A prefix that moves the run into its own pids cgroup (made by `private_tmp`)."""
        group = self._group(tmp)
        if group is None or not group.is_dir():
            return []
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(group)]

    def _group(self, tmp: Path) -> Path | None:
        return None if self.pids is None else self.pids / f"fixbot-{os.getpid()}-{tmp.name}"

    def _fenced(self, argv: Sequence[str], worktree: Path, tmp: Path) -> list[str]:
        limited = [*self.limits.prefix(), *argv]
        if self.sandbox == "bwrap":
            return [
                *self.launcher,
                *_BWRAP,
                *_hidden_secrets(),
                "--bind",
                str(worktree),
                str(worktree),
                "--bind",
                str(tmp),
                str(tmp),
                "--chdir",
                str(worktree),
                "--",
                *limited,
            ]
        if self.sandbox == "unshare":
            return [*self.launcher, *_UNSHARE, *limited]
        return limited

    @contextlib.contextmanager
    def private_tmp(self) -> Iterator[Path]:
        """A fresh temp folder for one run of the repo's code, removed afterwards."""
        if self.scratch is not None:
            self.scratch.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="fixbot-tmp-", dir=self.scratch))
        group = self._make_group(folder)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            if group is not None:
                _remove_group(group)

    def _make_group(self, tmp: Path) -> Path | None:
        group = self._group(tmp)
        if group is None or not self.limits.processes:
            return None
        try:
            group.mkdir()
            (group / "pids.max").write_text(f"{self.limits.processes}\n")
        except OSError:
            return None
        return group


def _remove_group(group: Path) -> None:
    """Remove a run's cgroup once its processes (killed with their group) are gone."""
    for _ in range(50):
        try:
            group.rmdir()
        except OSError:
            time.sleep(0.01)
        else:
            return


def find_pids_cgroup() -> Path | None:
    """This process's pids cgroup, if a child can be made in it (cgroup v1 or v2)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            base = Path("/sys/fs/cgroup/pids") / path.lstrip("/")
        elif controllers == "":
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
        else:
            continue
        probe = base / f"fixbot-probe-{os.getpid()}"
        try:
            probe.mkdir()
        except OSError:
            continue
        usable = (probe / "pids.max").exists()
        _remove_group(probe)
        if usable:
            return base
    return None


_PLAIN_FACTS = {
    "environment": "allow-listed",
    "network": "host (no namespace available)",
    "processes": "process group killed on timeout",
    "filesystem": "not fenced: git metadata checked after every test run, checkout fingerprinted",
}
_UNSHARE_FACTS = {
    "environment": "allow-listed",
    "network": "own namespace (no host network; own loopback)",
    "processes": "own PID namespace, fresh /proc; all killed with the run",
    "filesystem": "not fenced: git metadata checked after every test run, checkout fingerprinted",
}
_BWRAP_FACTS = {
    "environment": "allow-listed",
    "network": "own namespace (no host network; own loopback)",
    "processes": "own PID namespace, fresh /proc; all killed with the run or with fixbot",
    "filesystem": "read-only (bubblewrap) but for the worktree and a private temp folder",
}


async def probe_isolation(
    *, limits: Limits | None = None, scratch: Path | None = None
) -> Isolation:
    """Find the strongest isolation that works here, by trying it (about 10 ms each)."""
    limits = limits or Limits()
    pids = find_pids_cgroup() if limits.processes else None
    candidates: list[Isolation] = []
    if bwrap := shutil.which("bwrap"):
        candidates.append(Isolation("bwrap", _BWRAP_FACTS, limits, scratch, (bwrap,), pids))
    if unshare := shutil.which("unshare"):
        candidates += [
            Isolation("unshare", _UNSHARE_FACTS, limits, scratch, launcher, pids)
            for launcher in ((unshare,), (unshare, "--map-root-user"))
        ]
    for isolation in candidates:
        with isolation.private_tmp() as tmp:
            # fixbot's own interpreter, never the repo's: a repo's python that lied
            # about its PID would talk fixbot down to no fence at all.
            argv = isolation.command(
                [sys.executable, "-c", "import os; print(os.getpid())"], tmp, tmp
            )
            done = await run(argv, cwd=tmp, env=repo_env(), timeout=10)
        # PID 1 (unshare's fork) or 2 (bwrap's init is 1): either way, a PID namespace.
        if done.returncode == 0 and done.stdout.strip() in {b"1", b"2"}:
            return _with_limits(isolation)
    return _with_limits(Isolation("none", _PLAIN_FACTS, limits, scratch, (), pids))


def _with_limits(isolation: Isolation) -> Isolation:
    limits = isolation.limits.describe(cgroup=isolation.pids is not None)
    return dataclasses.replace(isolation, facts={**isolation.facts, "limits": limits})
