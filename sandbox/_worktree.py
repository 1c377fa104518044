"""A pool of git worktrees at the base commit, created once and reset between uses.

Creating a worktree costs seconds on a large repo and resetting the few files a
patch touched costs milliseconds (docs/architecture.md, "Facts about the tools"), so worktrees are
reused. They live under one folder per run; whatever a killed run left there is
removed by the next run (`sweep`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Self

import anyio

from ._errors import RepoError
from ._git import common_dir, git
from ._guard import MARKER

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from ._process import Completed


class UnsafePathError(RepoError):
    """A patch names a path fixbot will not write."""


def check_path(root: Path, rel: str, *, exists: bool = True) -> Path:
    """Resolve a repo-relative path, refusing anything that leaves the tree.

    No absolute paths, no '..', nothing in .git, and nothing through a symlink
    (git's own rule since 2015: never touch a file beyond a symbolic link). With
    `exists`, the path must be an existing regular file.
    """
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or ".git" in pure.parts:
        raise UnsafePathError(f"path outside the repository: {rel!r}")
    target = root.joinpath(*pure.parts)
    probe = root
    for part in pure.parts:
        probe = probe / part
        if probe.is_symlink():
            raise UnsafePathError(f"path goes through a symlink: {rel!r}")
    if exists and not target.is_file():
        raise UnsafePathError(f"not an existing regular file: {rel!r}")
    return target


class Worktree:
    """One checkout of the base commit that patches are written into."""

    def __init__(
        self,
        path: Path,
        base: str = "HEAD",
        gitdir: Path | None = None,
        refill: _Refill | None = None,
    ) -> None:
        self.path = path
        self.base = base
        # The worktree's own folder in the shared .git: named outright in every git
        # command, so a `.git` file a test rewrote is never read (it could name another
        # git folder whose config runs a filter, or a `core.worktree` to wipe).
        self._gitdir = gitdir
        self._refill = refill  # puts the generated files back after a clean
        self._touched: set[str] = set()

    def write(self, files: Mapping[str, bytes]) -> None:
        """Write whole files; only existing regular files inside the tree."""
        for rel, data in files.items():
            target = check_path(self.path, rel)
            self._touched.add(rel)
            target.write_bytes(data)

    def read(self, rel: str) -> bytes:
        """The current content of a file of the worktree."""
        return check_path(self.path, rel).read_bytes()

    @property
    def gitdir(self) -> Path:
        """The worktree's own folder in the shared .git."""
        if self._gitdir is None:
            self._gitdir = _gitdir_of(self.path)
        return self._gitdir

    async def _git(self, *args: str) -> Completed:
        """git on this worktree, by its own git folder: never through its `.git` file,
        nor with the user's global config (a filter there would run here)."""
        return await git(
            f"--git-dir={self.gitdir}", f"--work-tree={self.path}", *args,
            cwd=self.path, env={"GIT_CONFIG_GLOBAL": os.devnull},
        )  # fmt: skip

    async def reset(self) -> None:
        """Back to the base commit: the touched files, then whatever tests left."""
        _restore_dotgit(self.path, self.gitdir)
        if self._touched:
            await self._git("checkout", "-q", "--force", self.base, "--", *sorted(self._touched))
            self._touched.clear()
        # Tests may create or change files too, or even commit or switch branches
        # (which leaves the status clean), or leave ignored files behind (a cache, a
        # file as big as they like): all go, but for the generated files put back.
        status = await self._git(
            "status", "--porcelain=v2", "--branch", "--ignored", "--ignore-submodules=all", "-z"
        )
        entries = [e for e in status.stdout.split(b"\0") if e]
        head = next((e.split()[-1] for e in entries if e.startswith(b"# branch.oid ")), b"")
        moved = b"# branch.head (detached)" not in entries or head.decode() != self.base
        generated = self._refill.paths if self._refill is not None else ()
        kept = {b"! " + rel.encode() for rel in generated}
        if moved or any(not e.startswith(b"#") and e not in kept for e in entries):
            await self._git("checkout", "-q", "--force", "--detach", self.base)
            await self._git("clean", "-q", "-ffdx")
            if self._refill is not None:
                self._refill(self.path)


def _gitdir_of(path: Path) -> Path:
    """A linked worktree's own git folder, from its `.git` file (read before any test ran)."""
    text = (path / ".git").read_text().strip()
    return Path(text.removeprefix("gitdir:").strip())


def _restore_dotgit(path: Path, gitdir: Path) -> None:
    """The worktree's `.git` file as git wrote it, whatever a test made of it (a folder,
    a link, a FIFO that would block whoever opens it: looked at, never opened)."""
    dotgit = path / ".git"
    try:
        mode = dotgit.lstat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        shutil.rmtree(dotgit)
    elif mode is not None:
        dotgit.unlink()
    dotgit.write_text(f"gitdir: {gitdir}\n")


# What an install generates next to a package's code and the package imports: a
# version file (setuptools-scm, hatch-vcs) or an extension built in place.
GENERATED_SUFFIXES = (".py", ".pyi", ".so", ".pyd")
MAX_GENERATED = 500


async def generated_files(repo: Path) -> list[str]:
    """Git-ignored files in the checkout's package folders that the code may import.

    A worktree holds only what git tracks, so `from ._version import __version__`
    fails there though it works in the user's checkout. Whole ignored folders
    (`.venv/`, `build/`, caches) are listed by git as one entry and skipped.
    """
    tracked = await git("ls-files", "-z", "--", "*.py", cwd=repo)
    packages = {str(PurePosixPath(p).parent) for p in tracked.stdout.decode().split("\0") if p}
    ignored = await git(
        "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory", cwd=repo
    )
    found = [
        p
        for p in ignored.stdout.decode().split("\0")
        if p.endswith(GENERATED_SUFFIXES)
        and str(PurePosixPath(p).parent) in packages
        and "__pycache__" not in p
        and (repo / p).is_file()
        and not (repo / p).is_symlink()
    ]
    return sorted(found)[:MAX_GENERATED]


class WorktreePool:
    """Up to `size` worktrees of `repo` at `base`, handed out one user at a time.

    Each gets a copy of the checkout's `generated` files (see `generated_files`),
    and its submodules, cloned offline from the checkout's own (`submodules`).
    """

    def __init__(
        self, repo: Path, base: str, root: Path, size: int, generated: Sequence[str] = ()
    ) -> None:
        self.repo = repo
        self.base = base
        self.root = root
        self.size = max(1, size)
        self.generated = tuple(generated)
        self._free: list[Worktree] = []
        self._all: list[Worktree] = []
        self._slots = anyio.Semaphore(self.size)
        self._create_lock = anyio.Lock()
        self._created = 0
        # path -> the commit the base records; and the ones the checkout lacks.
        self.submodules: dict[str, str] = {}
        self.missing_submodules: list[str] = []

    async def __aenter__(self) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        listed = await git("ls-tree", "-r", "-z", self.base, cwd=self.repo)
        for entry in listed.stdout.split(b"\0"):
            meta, _, path = entry.partition(b"\t")
            if meta.startswith(b"160000 commit "):
                rel = path.decode()
                if (self.repo / rel / ".git").exists():
                    self.submodules[rel] = meta.split()[2].decode()
                else:
                    self.missing_submodules.append(rel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.close()

    async def close(self) -> None:
        """Remove every worktree of the pool; safe to call twice."""
        for tree in self._all:
            await git("worktree", "remove", "--force", tree.path, cwd=self.repo, check=False)
            shutil.rmtree(tree.path, ignore_errors=True)
        self._all.clear()
        self._free.clear()
        # Only fixbot's own folders go: the root may be a folder the user named.
        for child in self.root.glob(f"{MARKER}*"):
            shutil.rmtree(child, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.root.rmdir()  # only when empty
        await forget_own(self.repo, self.root)

    @asynccontextmanager
    async def use(self) -> AsyncIterator[Worktree]:
        """A clean worktree at base, reset when the caller is done."""
        async with self._slots:
            tree = self._free.pop() if self._free else await self._create()
            try:
                yield tree
            finally:
                with anyio.CancelScope(shield=True):
                    try:
                        await tree.reset()
                    except RepoError:
                        # A worktree we cannot reset is not reused.
                        self._all.remove(tree)
                        await git(
                            "worktree", "remove", "--force", tree.path, cwd=self.repo, check=False
                        )
                    else:
                        self._free.append(tree)

    async def _create(self) -> Worktree:
        async with self._create_lock:
            # A counter, not len(self._all): a dropped worktree's folder may still be there.
            self._created += 1
            path = self.root / f"{MARKER}{self._created}-{os.getpid()}"
            await git(
                "-c", "checkout.workers=0", "worktree", "add", "--detach", "--force",
                path, self.base, cwd=self.repo,
            )  # fmt: skip
            head = await git("rev-parse", "HEAD", cwd=path)
            refill = _Refill(self.repo, self.generated)
            refill(path)
            for rel, commit in self.submodules.items():
                # A clone of the checkout's own submodule, offline; never `git submodule
                # update`, which would fetch, and write the shared config.
                await git(
                    "-c", "protocol.file.allow=always", "clone", "-q", "--no-checkout",
                    "--shared", self.repo / rel, path / rel, cwd=path,
                )  # fmt: skip
                await git("checkout", "-q", "--detach", commit, cwd=path / rel)
            tree = Worktree(path, head.stdout.decode().strip(), _gitdir_of(path), refill)
            self._all.append(tree)
            return tree


class _Refill:
    """Copies the checkout's generated files (see `generated_files`) into a worktree."""

    def __init__(self, repo: Path, paths: Sequence[str]) -> None:
        self.repo = repo
        self.paths = tuple(paths)

    def __call__(self, tree: Path) -> None:
        for rel in self.paths:
            try:
                target = check_path(tree, rel, exists=False)  # never through a link
            except UnsafePathError:
                continue
            if target.parent.is_dir() and not target.exists():
                shutil.copy2(self.repo / rel, target)


async def sweep(repo: Path, root: Path) -> int:
    """Remove worktrees that an earlier, killed run left under `root`; return how many."""
    done = await git("worktree", "list", "--porcelain", cwd=repo)
    removed = 0
    for line in done.stdout.decode().splitlines():
        if not line.startswith("worktree "):
            continue
        path = Path(line.removeprefix("worktree "))
        if path.name.startswith(MARKER) and root in path.parents:
            await git("worktree", "remove", "--force", path, cwd=repo, check=False)
            removed += 1
    # Folders git no longer knows of (a run killed while creating one) go too; only
    # fixbot's own, whatever else the folder holds.
    leftovers = [c for c in root.iterdir() if c.name.startswith(MARKER)] if root.exists() else []
    for child in leftovers:
        shutil.rmtree(child, ignore_errors=True)
    removed += len(leftovers)
    await forget_own(repo, root)
    return removed


async def forget_own(repo: Path, root: Path) -> None:
    """Drop git's record of fixbot's worktrees under `root` whose folder is gone.

    Never `git worktree prune`: it also forgets the user's own worktrees whose
    folder is missing for a while (an unmounted drive), and they lose them.
    """
    admin = await common_dir(repo) / "worktrees"
    if not admin.is_dir():
        return
    for entry in admin.iterdir():
        try:
            gitdir = Path((entry / "gitdir").read_text().strip())
        except OSError:
            continue
        folder = gitdir.parent
        if folder.name.startswith(MARKER) and root in folder.parents and not folder.exists():
            shutil.rmtree(entry, ignore_errors=True)
