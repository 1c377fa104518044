"""The git metadata and the user's checkout, watched where no fence keeps tests out.

Under bubblewrap a test cannot write outside its worktree. Where that fence is
missing, a test could plant `core.fsmonitor`, a filter or a hook in the shared
git folder, and the next git command fixbot runs would run it, outside every
namespace. So fixbot's own git commands override what can run a program
(`GIT_HARDENING`), and `MetadataGuard` checks the metadata after every test
run: a change is put back byte for byte and stops the run. `Fingerprint` makes
"your checkout was not touched" a measured claim rather than an assertion.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ._errors import TamperError

MARKER = "fixbot-wt-"  # how the name of each of fixbot's own worktrees begins
# `-c` on the command line outranks every config file: what a planted config could
# make git run is switched off for fixbot's own commands.
GIT_HARDENING = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.untrackedCache=false",
    "-c",
    "credential.helper=",
    "-c",
    "core.pager=cat",
    "-c",
    "diff.external=",
    "-c",
    "protocol.ext.allow=never",
    # A submodule's folder is the tests' to fill: git must never look inside it (a
    # repository a test made there runs its own filters when `status` recurses).
    "-c",
    "submodule.recurse=false",
    "-c",
    "diff.ignoreSubmodules=all",
    "-c",
    "status.submoduleSummary=false",
)
# What in the shared git folder can make git run a program, or moves the user's work.
# refs/replace, grafts, alternates and shallow change what a commit holds: a test that
# replaced the base's tree would have fixbot's commits carry files nobody proved.
_WATCHED_FILES = (
    "config",
    "info/attributes",
    "packed-refs",
    "commondir",
    "shallow",
    "objects/info/alternates",
    "objects/info/grafts",
)
_WATCHED_DIRS = ("hooks", "info", "refs/heads", "refs/tags", "refs/replace")


def _snapshot(common: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    paths = [common / f for f in _WATCHED_FILES]
    for folder in _WATCHED_DIRS:
        root = common / folder
        if root.is_dir():
            paths += [Path(d, f) for d, _, files in os.walk(root) for f in files]
    worktrees = common / "worktrees"
    if worktrees.is_dir():
        for name in ("config.worktree", "commondir", "gitdir"):
            paths += list(worktrees.glob(f"*/{name}"))
    for path in paths:
        try:
            out[path.relative_to(common).as_posix()] = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
    return out


class MetadataGuard:
    """The watched part of a repository's git folder, as it was at the start."""

    def __init__(self, common: Path) -> None:
        self.common = common
        self.before = _snapshot(common)

    def changed(self) -> list[str]:
        """The watched files added, removed or changed since the snapshot."""
        now = _snapshot(self.common)
        for key in now.keys() - self.before.keys():
            # fixbot adds worktrees of its own as it goes: their records are adopted as
            # they appear, and watched from then on.
            if key.startswith(f"worktrees/{MARKER}"):
                self.before[key] = now[key]
        return sorted(
            k for k in self.before.keys() | now.keys() if self.before.get(k) != now.get(k)
        )

    def restore(self, paths: list[str]) -> None:
        """Put the watched files back as they were (and remove the ones that are new).

        Not refs: a ref that moved may be the user's own commit, made meanwhile in their
        checkout; a moved ref is only named. What can make git run a program is put back.
        """
        for rel in paths:
            if (rel.startswith("refs/") and not rel.startswith("refs/replace/")) or (
                rel == "packed-refs"
            ):
                continue
            target = self.common / rel
            if rel in self.before:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self.before[rel])
            else:
                target.unlink(missing_ok=True)

    def check(self) -> None:
        """Raise TamperError (after putting everything back) if a test changed the metadata."""
        changed = self.changed()
        if changed:
            self.restore(changed)
            raise TamperError(
                "a test run changed the repository's git metadata ("
                + ", ".join(changed[:5])
                + "); it was put back, and the run stops: its tests are not trusted"
            )

    def put_back(self) -> None:
        """Restore whatever changed (all but refs) since the snapshot; at the end of a run."""
        self.restore(self.changed())


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """Every file of a checkout (but its .git) by path, size and change time.

    The change time (ctime), not the modification time: a write that puts the size
    and mtime back (`os.utime`) still moves it, and nothing short of root's clock can
    set it.
    """

    files: frozenset[tuple[str, int, int]]

    @classmethod
    def of(cls, root: Path) -> Fingerprint:
        """Take the fingerprint of the checkout at `root`."""
        out = set()
        for folder, dirs, files in os.walk(root):
            if folder == str(root):
                dirs[:] = [d for d in dirs if d != ".git"]
            for name in files:
                path = Path(folder, name)
                try:
                    st = path.lstat()
                except OSError:
                    continue
                out.add((path.relative_to(root).as_posix(), st.st_size, st.st_ctime_ns))
        return cls(frozenset(out))

    def changed(self, other: Fingerprint) -> list[str]:
        """Paths that differ between two fingerprints."""
        return sorted({p for p, _, _ in self.files ^ other.files})
