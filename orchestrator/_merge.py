"""Accepted patches become commits on the fixbot branch; the user's checkout is never touched.

Commits are written with `git fast-import` straight into the object store:
no index, no work tree, no HEAD is involved. They carry fixbot's identity and
the base commit's date, so the same base, config and fixes give the same shas.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fixbot.sandbox import RepoError, checked_out_branches, git, ls_tree_modes

if TYPE_CHECKING:
    from pathlib import Path

    from ._job import PatchRecord

TRAILER = "Fixbot-Proof:"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who fixbot's commits are by, and when (the base commit's time)."""

    name: str
    email: str
    when: str  # "<unix seconds> +0000"

    def env(self) -> dict[str, str]:
        """Environment for git commands that write refs or commits."""
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name,
            "GIT_COMMITTER_EMAIL": self.email,
        }


async def base_identity(repo: Path, base: str, name: str, email: str) -> Identity:
    """fixbot's identity, dated like the base commit."""
    done = await git("show", "-s", "--format=%ct", base, cwd=repo)
    return Identity(name, email, f"{done.stdout.decode().strip()} +0000")


async def check_branch(repo: Path, branch: str, identity: Identity, *, force: bool) -> str | None:
    """The branch's current sha, if it may be replaced; RepoError if it may not."""
    done = await git("check-ref-format", "--branch", branch, cwd=repo, check=False)
    if done.returncode != 0 or branch.startswith(("refs/", "@")):
        raise RepoError(f"not a valid branch name: {branch!r}")
    # `origin/main` or a tag's name as a branch would shadow them in the user's commands.
    for other in (f"refs/remotes/{branch}", f"refs/tags/{branch}"):
        clash = await git("rev-parse", "--verify", "--quiet", other, cwd=repo, check=False)
        if clash.returncode == 0:
            raise RepoError(f"branch name {branch!r} is already {other}: choose another")
    ref = f"refs/heads/{branch}"
    where = (await checked_out_branches(repo)).get(ref)
    if where is not None:
        raise RepoError(
            f"branch {branch!r} is checked out at {where}; "
            "fixbot never rewrites a checked-out branch"
        )
    done = await git("rev-parse", "--verify", "--quiet", ref, cwd=repo, check=False)
    if done.returncode != 0:
        return None
    current = done.stdout.decode().strip()
    if force:
        return current
    # Commits on the branch that no other ref has: each must be one of fixbot's own.
    # A reviewer's commit pushed to the PR branch and fetched is still not fixbot's.
    others = (f"--exclude={branch}", "--branches", "--tags", f"--exclude=*/{branch}", "--remotes")
    foreign = await foreign_commit(repo, current, others, identity)
    if foreign is not None:
        raise RepoError(
            f"branch {branch!r} has commits that are not fixbot's (e.g. {foreign[:12]}); "
            "pass --force to replace it, or choose another --branch"
        )
    return current


async def foreign_commit(
    repo: Path, tip: str, exclude: tuple[str, ...], identity: Identity
) -> str | None:
    """A commit that makes the branch at `tip` not fixbot's, if there is one.

    The tip itself must be one of fixbot's commits: a branch that merely points into
    someone's history (`main`, a release branch named by mistake) is not fixbot's to
    move, even with no commit of its own. Then every commit reachable from `tip` but
    not from `exclude` (`git log --not` arguments) must be fixbot's too. fixbot's: its
    author and its committer are fixbot's identity, and it carries the trailer, so a
    person's amend (they become the committer) counts as theirs.
    """
    fmt = "--format=%H%x00%ae%x00%ce%x00%B%x01"
    head = await git("log", "-1", fmt, tip, cwd=repo)
    rest = await git("log", fmt, tip, "--not", *exclude, cwd=repo)
    for entry in (head.stdout + rest.stdout).decode(errors="replace").split("\x01"):
        if not entry.strip():
            continue
        sha, author, committer, body = entry.strip().split("\x00", 3)
        if author != identity.email or committer != identity.email or TRAILER not in body:
            return sha
    return None


def commit_groups(
    records: list[PatchRecord],
) -> list[tuple[tuple[int, int, int, str], list[PatchRecord]]]:
    """Accepted patches grouped by (round, pass, kind, rule): an order every chain keeps.

    Within a file's chain, steps go safe before unsafe and by rule; a step that
    goes back in that order (a fix that uncovered another) starts a new pass.
    """
    groups: dict[tuple[int, int, int, str], list[PatchRecord]] = defaultdict(list)
    by_file: dict[str, list[PatchRecord]] = defaultdict(list)
    for rec in records:
        by_file[rec.patch.files[0]].append(rec)
    for chain in by_file.values():
        passes, last, last_round = 0, (-1, ""), -1
        for rec in chain:
            rnd = rec.patch.round
            order = (int(rec.patch.kind != "safe"), rec.patch.rules[0])
            if rnd != last_round:
                passes, last_round = 0, rnd
            elif order <= last:
                passes += 1
            last = order
            groups[(rnd, passes, *order)].append(rec)
    return sorted(groups.items())


def _message(rule: str, recs: list[PatchRecord], proof: str) -> str:
    name = next((v.name for r in recs for v in r.patch.targets if v.rule == rule), rule)
    fixed = sum(len(r.patch.targets) for r in recs)
    files = len({r.patch.files[0] for r in recs})
    kinds = sorted({r.patch.kind for r in recs})
    how = (
        " and ".join(f"ruff {k} fix" for k in kinds)
        if recs[0].patch.agent == "ruff"
        else recs[0].patch.agent
    )
    return (
        f"fix({rule}): {name}, {fixed} fixed in {files} file{'s' * (files != 1)}\n\n"
        f"Fixed by: {how}.\n"
        f"Proven: {proof}\n\n"
        f"{TRAILER} {fixed} violation(s) of {rule}, every patch proven before it landed\n"
    )


async def write_commits(
    repo: Path,
    base: str,
    records: list[PatchRecord],
    identity: Identity,
    proof: str,
    ref: str,
) -> str:
    """Write one commit per rule group on top of `base` into `ref`; return the tip."""
    groups = commit_groups(records)
    paths = sorted({r.patch.files[0] for r in records})
    modes = await ls_tree_modes(repo, base, paths)
    stream = bytearray()
    for i, ((*_, rule), recs) in enumerate(groups):
        message = _message(rule, recs, proof).encode()
        stream += f"commit {ref}\n".encode()
        stream += f"author {identity.name} <{identity.email}> {identity.when}\n".encode()
        stream += f"committer {identity.name} <{identity.email}> {identity.when}\n".encode()
        stream += b"data %d\n%s\n" % (len(message), message)
        if i == 0:
            stream += f"from {base}\n".encode()
        last_in_group: dict[str, bytes] = {}
        for rec in recs:
            last_in_group[rec.patch.files[0]] = rec.patch.changes[0].new
        for path, content in sorted(last_in_group.items()):
            stream += b"M %s inline %s\n" % (modes.get(path, "100644").encode(), _quoted(path))
            stream += b"data %d\n%s\n" % (len(content), content)
    stream += b"done\n"
    await git(
        "fast-import",
        "--quiet",
        "--force",
        "--done",
        cwd=repo,
        stdin=bytes(stream),
        env=identity.env(),
    )
    done = await git("rev-parse", ref, cwd=repo)
    return done.stdout.decode().strip()


def _quoted(path: str) -> bytes:
    """A path as fast-import reads a quoted one: C-style, control characters in octal
    (a newline in a name would otherwise end the command), other bytes as they are."""
    out = bytearray(b'"')
    for byte in path.encode("utf-8", "surrogateescape"):
        if byte in b'"\\':
            out += b"\\" + bytes([byte])
        elif byte < 0x20 or byte == 0x7F:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    return bytes(out + b'"')


async def write_branch(
    repo: Path,
    base: str,
    records: list[PatchRecord],
    identity: Identity,
    proof: str,
    branch: str,
    old: str | None,
) -> str:
    """Commits for `records` on `base`, then the branch moved to them from `old`; the tip.

    The commits are built on a scratch ref of their own, removed whatever happens.
    """
    staging = f"refs/fixbot/staging/{branch}"
    try:
        tip = await write_commits(repo, base, records, identity, proof, staging)
        await move_branch(repo, branch, tip, old)
    finally:
        await git("update-ref", "-d", staging, cwd=repo, check=False)
    return tip


async def move_branch(repo: Path, branch: str, sha: str, old: str | None) -> None:
    """Point the branch at `sha`, only if nobody moved it since we looked."""
    await git("update-ref", "-m", "fixbot run", f"refs/heads/{branch}", sha, old or "", cwd=repo)
