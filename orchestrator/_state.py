"""Where a run keeps its things: under the repo's shared .git folder, with a lock.

`$(git rev-parse --git-common-dir)/fixbot/` works the same from a linked
worktree or a submodule. One run per repository at a time; whatever a killed
run left (worktrees, half-written files) is swept by the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import stat
from pathlib import Path
from typing import Self

from fixbot.sandbox import RepoError


def _fast_tmp() -> Path | None:
    # Worktrees on tmpfs are created in a tenth of the time (docs/architecture.md).
    shm = Path("/dev/shm")  # noqa: S108 - a per-user folder is made below it, never a fixed file
    if shm.is_dir() and os.access(shm, os.W_OK):
        usage = shutil.disk_usage(shm)
        if usage.free > 2 * 1024**3:
            return shm
    return None


def worktree_root(home: Path, configured: str | None) -> Path:
    """The folder that holds this repo's worktrees (stable, so a later run can sweep it)."""
    if configured:
        return Path(configured).expanduser().resolve()
    tag = hashlib.sha1(str(home).encode(), usedforsecurity=False).hexdigest()[:12]
    fast = _fast_tmp()
    if fast is None:
        return home / "worktrees"
    folder = fast / f"fixbot-{os.getuid()}-{tag}"
    # The name is predictable on a shared tmpfs: another user could make it first (or a
    # link by that name) and swap a worktree for a link while fixbot cleans it up.
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        return home / "worktrees"
    if st.st_mode & 0o077:
        folder.chmod(0o700)  # ours, made before folders were private
    return folder


class RunLock:
    """An exclusive lock on the repo's fixbot folder, held for a whole run."""

    def __init__(self, home: Path) -> None:
        self.path = home / "run.lock"
        self._fd: int | None = None

    def __enter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RepoError(f"another fixbot run holds {self.path}; wait for it to end") from None
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def new_run_dir(home: Path, run_id: str) -> Path:
    """A fresh folder for this run's report and rejected patches.

    What a killed run left is swept first (the run lock is held): its private temp
    folders, and its run folder if nothing was written to it.
    """
    runs = home / "runs"
    for old in runs.iterdir() if runs.is_dir() else ():
        shutil.rmtree(old / "tmp", ignore_errors=True)
        with contextlib.suppress(OSError):
            old.rmdir()  # only when empty
    path, copies = runs / run_id, 1
    while path.exists():  # two runs in one second, at one base
        copies += 1
        path = runs / f"{run_id}-{copies}"
    path.mkdir(parents=True)
    return path
