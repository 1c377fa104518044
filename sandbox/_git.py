"""git commands that change things or take time, run through the sandbox runner.

gitpython reads; these write (worktrees, commits, refs) and can be cancelled.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import RepoError
from ._guard import GIT_HARDENING
from ._process import Completed, no_git_env, run

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping, Sequence


class GitError(RepoError):
    """A git command failed."""


async def git(
    *args: str | os.PathLike[str],
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    check: bool = True,
    timeout: float = 600,
) -> Completed:
    """Run git, hardened and with no secret in its environment; raise GitError on failure."""
    done = await run(
        ["git", *GIT_HARDENING, *args],
        cwd=cwd,
        env=no_git_env(env),
        stdin=stdin,
        timeout=timeout,
    )
    if check and (done.returncode != 0 or done.timed_out):
        cmd = " ".join(done.args[1 + len(GIT_HARDENING) :])
        msg = done.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"git {cmd} failed: {msg[-1] if msg else done.returncode}")
    return done


async def rev_parse(repo: Path, ref: str) -> str:
    """The full sha of `ref`'s commit, or a RepoError naming the ref."""
    done = await git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=repo, check=False)
    if done.returncode != 0:
        raise RepoError(f"not a commit in {repo}: {ref!r}")
    return done.stdout.decode().strip()


async def toplevel(path: Path) -> Path:
    """The root of the work tree holding `path`, or a RepoError."""
    if not path.exists():
        raise RepoError(f"no such directory: {path}")
    if not path.is_dir():
        raise RepoError(f"not a directory: {path}")
    done = await git("rev-parse", "--show-toplevel", cwd=path, check=False)
    if done.returncode != 0:
        bare = await git("rev-parse", "--is-bare-repository", cwd=path, check=False)
        if bare.stdout.strip() == b"true":
            raise RepoError(
                f"a bare repository has no checkout to fix: {path} "
                "(clone it, or add a worktree with `git worktree add`, and run fixbot there)"
            )
        raise RepoError(f"not a git repository: {path}")
    return Path(done.stdout.decode().strip())


async def common_dir(repo: Path) -> Path:
    """The repository's shared .git folder (the same for every linked worktree)."""
    done = await git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=repo)
    return Path(done.stdout.decode().strip())


async def checked_out_branches(repo: Path) -> dict[str, Path]:
    """Branch ref -> the worktree that has it checked out."""
    done = await git("worktree", "list", "--porcelain", cwd=repo)
    out: dict[str, Path] = {}
    current: Path | None = None
    for line in done.stdout.decode().splitlines():
        if line.startswith("worktree "):
            current = Path(line.removeprefix("worktree "))
        elif line.startswith("branch ") and current is not None:
            out[line.removeprefix("branch ")] = current
    return out


async def ls_tree_modes(repo: Path, commit: str, paths: Sequence[str]) -> dict[str, str]:
    """The file mode (e.g. '100644') of each path at `commit`."""
    if not paths:
        return {}
    done = await git("ls-tree", "-z", commit, "--", *paths, cwd=repo)
    out = {}
    for entry in done.stdout.split(b"\0"):
        if entry:
            meta, path = entry.split(b"\t", 1)
            out[path.decode()] = meta.split()[0].decode()
    return out


async def converted_files(repo: Path, commit: str, checked_out: Mapping[str, bytes]) -> set[str]:
    """Of `checked_out` (path -> the bytes a worktree of `commit` holds), the files whose
    bytes are not their blob: a .gitattributes filter (git-crypt), eol or ident converted
    them on checkout. fixbot writes blobs as is, so such a file is never patched: its
    commit would carry the converted (for git-crypt, decrypted) bytes.
    """
    if not checked_out:
        return set()
    done = await git("ls-tree", "-r", "-z", "--full-tree", commit, cwd=repo)
    blobs: dict[str, str] = {}
    for entry in done.stdout.split(b"\0"):
        if entry:
            meta, name = entry.split(b"\t", 1)
            blobs[name.decode(errors="surrogateescape")] = meta.split()[2].decode()
    out: set[str] = set()
    for path, data in checked_out.items():
        blob = blobs.get(path)
        if blob is None:
            continue
        algorithm = hashlib.sha256 if len(blob) == 64 else hashlib.sha1
        if algorithm(b"blob %d\0" % len(data) + data).hexdigest() != blob:
            out.add(path)
    return out
