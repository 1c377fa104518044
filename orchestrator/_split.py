"""Reviewable pull requests: the accepted fixes split by rule, folder or code owner.

Each group becomes a branch of its own, `<branch>-<group>`, with its own final
gate, so that each PR is green on its own, whichever of them is merged first.
Split by folder or owner, a file goes whole to one group. Split by rule, a file's
chain is taken apart: each of the rule's steps is replayed onto the base with a
three-way merge (`git merge-file`); a step that does not apply without the steps
of other rules before it waits for a later night. A group over the size cap (in
changed lines) is cut, file by file, into parts.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import structlog

from fixbot.agents import Task
from fixbot.sandbox import FileChange, RepoError, ServiceError, git, sha256

from ._codeowners import CodeOwners
from ._gate import final_gate
from ._job import Job, PatchRecord
from ._merge import check_branch, write_branch
from ._publish import LeftAlone, Publisher, environ

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from fixbot.sandbox import Prover, Worktree

    from ._config import Config, SplitBy
    from ._merge import Identity

log = structlog.get_logger("fixbot")


@dataclass(slots=True)
class Group:
    """One PR's worth of accepted fixes (copies of the run's records)."""

    key: str
    records: list[PatchRecord]
    reviewers: tuple[str, ...] = ()
    part: int = 0  # 1, 2... when the size cap cut the group
    key_suffix: str = ""  # tells apart groups whose names make the same slug
    dropped: list[str] = field(default_factory=list)  # steps left for a later night

    @property
    def slug(self) -> str:
        """The group's name in a branch: lower case, letters, digits and dashes, short."""
        name = re.sub(r"[^a-z0-9]+", "-", self.key.lower()).strip("-")[:40].strip("-")
        name = (name or "root") + (f"-{self.key_suffix}" if self.key_suffix else "")
        return f"{name}-{self.part}" if self.part else name

    @property
    def files(self) -> list[str]:
        """The files the group changes."""
        return sorted({r.patch.files[0] for r in self.records})

    def final(self) -> dict[str, bytes]:
        """Each file's content once the group's fixes are applied."""
        return {r.patch.files[0]: r.patch.changes[0].new for r in self.records}


def _copy(record: PatchRecord, content: bytes | None = None) -> PatchRecord:
    patch = record.patch
    if content is not None:
        change = FileChange(path=patch.files[0], old_sha=sha256(record.before), new=content)
        patch = patch.model_copy(update={"changes": (change,)})
    return PatchRecord(patch, record.status, record.verdict, record.before)


def group(records: Sequence[PatchRecord], by: SplitBy, owners: CodeOwners | None) -> list[Group]:
    """The accepted records by rule, folder or owners (in the order they were decided)."""
    groups: dict[str, Group] = {}
    for record in records:
        if record.status != "accepted":
            continue
        path = record.patch.files[0]
        reviewers: tuple[str, ...] = ()
        if by == "rule":
            key = record.patch.rules[0]
        elif by == "directory":
            key = PurePosixPath(path).parent.as_posix()
        else:
            found = owners.owners(path) if owners else ()
            key, reviewers = (" ".join(found) or "unowned"), found
        groups.setdefault(key, Group(key, [], reviewers)).records.append(_copy(record))
    if by == "rule":
        accepted = [r for r in records if r.status == "accepted"]
        for g in groups.values():
            g.records = _with_cascades(g.records, accepted)
    return [groups[k] for k in sorted(groups)]


def _with_cascades(mine: list[PatchRecord], accepted: list[PatchRecord]) -> list[PatchRecord]:
    """A rule's steps, and the later steps of their chains that fix only what they
    uncovered (the import SIM105 adds, sorted by I001's step): without those, the rule's
    own steps leave a new finding, and its PR's gate would refuse them."""
    chain = {(r.patch.files[0], r.patch.round, r.patch.step): r for r in accepted}
    taken = {(r.patch.files[0], r.patch.round, r.patch.step) for r in mine}
    grown = True
    while grown:
        grown = False
        for key, record in chain.items():
            path, rnd, _ = key
            targets = record.patch.targets
            if key in taken or not targets:
                continue
            sources = {t.origin for t in targets}
            if all(o and o.startswith("+") and (path, rnd, int(o[1:])) in taken for o in sources):
                taken.add(key)
                grown = True
    order = {id(r): i for i, r in enumerate(accepted)}
    picked = [chain[k] for k in taken if k in chain]
    picked.sort(key=lambda r: order[id(r)])
    return [_copy(r) for r in picked]


async def replay_rule(group_: Group, base_of: Callable[[str], bytes], scratch: Path) -> None:
    """Rebuild a rule's steps on the base without the other rules' steps."""
    current: dict[str, bytes] = {}
    kept = []
    for record in group_.records:
        path = record.patch.files[0]
        now = current.get(path, base_of(path))
        after = record.patch.changes[0].new
        merged = (
            after if record.before == now else await _merge3(now, record.before, after, scratch)
        )
        if merged is None:
            group_.dropped.append(f"{record.patch.id} ({path}): needs another rule's fix first")
            continue
        kept.append(_copy(PatchRecord(record.patch, record.status, record.verdict, now), merged))
        current[path] = merged
    group_.records = kept


async def _merge3(ours: bytes, base: bytes, theirs: bytes, scratch: Path) -> bytes | None:
    """`theirs`' change from `base` applied to `ours`, or None on a conflict."""
    scratch.mkdir(parents=True, exist_ok=True)
    names = []
    for name, data in (("ours", ours), ("base", base), ("theirs", theirs)):
        (scratch / name).write_bytes(data)
        names.append(str(scratch / name))
    done = await git("merge-file", "-p", "--quiet", *names, cwd=scratch, check=False)
    return done.stdout if done.returncode == 0 else hunks_onto(ours, base, theirs)


def hunks_onto(ours: bytes, base: bytes, theirs: bytes) -> bytes | None:
    """`theirs`' hunks from `base`, each placed where its old lines stand in `ours`.

    git merge-file calls two changes on adjacent lines a conflict; a one-rule step
    next to another rule's line (two imports, a call and its argument) is not one.
    Each hunk's old lines must be found in `ours` exactly once, after the previous
    hunk's, or None. Whatever comes out still passes its group's own gate.
    """
    old, new = base.splitlines(keepends=True), theirs.splitlines(keepends=True)
    mine = ours.splitlines(keepends=True)
    out: list[bytes] = []
    at = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(
        None, old, new, autojunk=False
    ).get_opcodes():
        if tag == "equal":
            continue
        # Anchor a pure insertion on the line before it (or the start of the file).
        anchor = old[max(i1 - 1, 0) : i2] if i1 == i2 else old[i1:i2]
        starts = [
            k for k in range(at, len(mine) - len(anchor) + 1) if mine[k : k + len(anchor)] == anchor
        ]
        if len(starts) != 1 and anchor:
            return None
        k = starts[0] if anchor else 0
        if i1 == i2:
            split = k + (1 if i1 > 0 else 0)
            out += mine[at:split] + new[j1:j2]
            at = split
        else:
            out += mine[at:k] + new[j1:j2]
            at = k + (i2 - i1)
    return b"".join(out + mine[at:])


def changed_lines(before: bytes, after: bytes) -> int:
    """Lines added plus lines removed."""
    diff = difflib.ndiff(before.decode(errors="replace").splitlines(),
                         after.decode(errors="replace").splitlines())  # fmt: skip
    return sum(1 for line in diff if line[:1] in {"+", "-"})


def cap(groups: list[Group], max_lines: int | None, base_of: Callable[[str], bytes]) -> list[Group]:
    """Groups over `max_lines` changed lines cut into parts, whole files at a time."""
    if max_lines is None:
        return groups
    out = []
    for g in groups:
        final = g.final()
        sizes = {p: changed_lines(base_of(p), final[p]) for p in g.files}
        if sum(sizes.values()) <= max_lines:
            out.append(g)
            continue
        parts: list[list[str]] = [[]]
        load = 0
        for path in g.files:
            if parts[-1] and load + sizes[path] > max_lines:
                parts.append([])
                load = 0
            parts[-1].append(path)
            load += sizes[path]
        if len(parts) == 1:  # one file over the cap alone: it cannot be cut
            out.append(g)
            continue
        for k, paths in enumerate(parts, 1):
            records = [r for r in g.records if r.patch.files[0] in paths]
            out.append(Group(g.key, records, g.reviewers, part=k, dropped=list(g.dropped)))
    return out


def _distinct_slugs(groups: list[Group]) -> None:
    """Two groups whose names read alike (`pkg/x` and `pkg-x`) get a hash each: one
    branch must never carry two groups, the second push replacing the first."""
    seen: dict[str, int] = {}
    for g in groups:
        seen[g.slug] = seen.get(g.slug, 0) + 1
    for g in groups:
        if seen[g.slug] > 1:
            digest = hashlib.sha256(g.key.encode()).hexdigest()[:6]
            g.key_suffix = digest


async def gate_group(g: Group, prover: Prover, reference: Worktree) -> None:
    """The group's own final gate: what fails there is left out of its PR."""
    jobs = []
    for path in g.files:
        records = [r for r in g.records if r.patch.files[0] == path]
        task = Task(key=path, files=(path,), violations=())
        jobs.append(Job(task, [], records[-1].patch.changes[0].new, records=records))
    await final_gate(prover, jobs, reference)
    g.dropped += [
        f"{r.patch.id} ({r.patch.files[0]}): {r.verdict.reason}: {r.verdict.detail[:200]}"
        for j in jobs
        for r in j.records
        if r.status != "accepted"
    ]
    g.records = [r for j in jobs for r in j.records if r.status == "accepted"]


@dataclass(slots=True)
class Landing:
    """Where the groups go: the repository, the base, who commits, and how it was proven."""

    repo: Path
    base: str
    identity: Identity
    proof: str
    prefix: str  # the run's branch; groups are <prefix>-<slug>

    async def write(self, g: Group, *, force: bool) -> tuple[str, str] | str:
        """The group's branch and tip, or why it was not written."""
        branch = f"{self.prefix}-{g.slug}"
        if not g.records:
            return "no fix of it holds on its own (see left_for_later)"
        try:
            old = await check_branch(self.repo, branch, self.identity, force=force)
            tip = await write_branch(
                self.repo, self.base, g.records, self.identity, self.proof, branch, old
            )
        except RepoError as exc:
            return str(exc)
        return branch, tip


async def land_split(
    groups: list[Group],
    landing: Landing,
    config: Config,
    environ: dict[str, str],
    report_md: str,
) -> dict[str, object]:
    """Write each group's branch and, when asked, push it and open or update its PR."""
    done: list[dict[str, object]] = []
    for g in groups:
        entry: dict[str, object] = {"group": g.key, "files": len(g.files), "fixes": _fixes(g)}
        if g.dropped:
            entry["left_for_later"] = g.dropped
        written = await landing.write(g, force=config.force)
        if isinstance(written, str):
            entry["skipped"] = written
            log.warning("split.skipped", group=g.key, why=written)
            done.append(entry)
            continue
        branch, tip = written
        entry["branch"] = branch
        if config.push or config.open_pr:
            entry.update(await _publish(g, branch, tip, landing, config, environ, report_md))
        done.append(entry)
    return {"split_by": config.split_by, "groups": done}


def failures(published: dict[str, object]) -> list[str]:
    """The groups whose publishing failed, a line each."""
    groups = published.get("groups", [])
    assert isinstance(groups, list)  # noqa: S101 - land_split's own shape
    return [f"{g['group']}: {g['failed']}" for g in groups if "failed" in g]


async def _publish(
    g: Group,
    branch: str,
    tip: str,
    landing: Landing,
    config: Config,
    environ: dict[str, str],
    report_md: str,
) -> dict[str, object]:
    publisher = Publisher(
        landing.repo, config, branch, landing.base, landing.identity, environ, g.reviewers
    )
    try:
        await publisher.prepare()
        head = (
            f"This pull request holds the fixes of **{g.key}**"
            f"{f' (part {g.part})' if g.part else ''}: {_fixes(g)} in {len(g.files)} file(s)."
            " The report below covers the whole run.\n\n"
        )
        return dict(await publisher.publish(tip, accepted=_fixes(g), report_md=head + report_md))
    except LeftAlone as exc:
        log.warning("split.left_alone", group=g.key, why=str(exc))
        return {"pushed": "no", "why": str(exc)}
    except ServiceError as exc:
        # One group's failure (a refused push, the API down) leaves the others to go on;
        # the run still ends with exit 3 (see land_split).
        log.warning("split.failed", group=g.key, why=str(exc))
        return {"pushed": "no", "failed": str(exc)}
    finally:
        await publisher.aclose()


def _fixes(g: Group) -> int:
    return sum(len(r.patch.targets) for r in g.records)


async def split_and_land(
    records: Sequence[PatchRecord],
    config: Config,
    prover: Prover,
    reference: Worktree,
    landing: Landing,
    report_md: str,
    scratch: Path,
) -> dict[str, object]:
    """Group, rebuild (by rule), cap, gate, write and publish: the whole of --split-by."""
    by = config.split_by
    owners = CodeOwners.find(reference.path) if by == "codeowners" else None
    groups = group(records, by, owners)
    if by == "rule":
        for g in groups:
            await replay_rule(g, reference.read, scratch)
    groups = cap(groups, config.pr_max_lines, reference.read)
    _distinct_slugs(groups)
    for g in groups:
        await gate_group(g, prover, reference)
    return await land_split(groups, landing, config, dict(environ()), report_md)
