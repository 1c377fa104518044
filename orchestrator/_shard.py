"""One run split across CI matrix jobs: a plan of file-disjoint shards, a bundle per shard.

`fixbot plan` lints the base once and deals its files into N shards, the
costliest first onto the lightest shard (longest-processing-time), a file's cost
being its violations plus one for the file itself. Each matrix job runs
`fixbot run --plan plan.json --shard K --bundle-out DIR`: it proves its shard's
files only and writes what it accepted, with the verdicts, into DIR/bundle.json.
`fixbot merge DIR...` takes the bundles back, runs the final gate on them all
together, writes the branch and publishes. A bundle proven from another base,
plan, fixbot or ruff is refused with one line: its proof says nothing of this run.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from fixbot.sandbox import ConfigError, Patch, Verdict, sha256

from ._job import PatchRecord

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from ._job import Job

FORMAT = 1
PLAN_KIND = "fixbot-plan"
BUNDLE_KIND = "fixbot-bundle"
BUNDLE_FILE = "bundle.json"


def fixbot_version() -> str:
    """The installed fixbot's version."""
    try:
        return metadata.version("fixbot")
    except metadata.PackageNotFoundError:
        return "unknown"


def deal(cost: Mapping[str, int], shards: int) -> list[list[str]]:
    """Files into `shards` file-disjoint lists of about equal cost (each list sorted)."""
    heap = [(0, k) for k in range(shards)]
    out: list[list[str]] = [[] for _ in range(shards)]
    for path in sorted(cost, key=lambda p: (-cost[p], p)):
        load, k = heapq.heappop(heap)
        out[k].append(path)
        heapq.heappush(heap, (load + cost[path], k))
    return [sorted(paths) for paths in out]


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """plan.json: the base, the versions that made it, the scope, and the shards."""

    base: str
    versions: dict[str, str]
    select: list[str] | None
    exclude: list[str]
    shards: list[list[str]]
    digest: str = ""  # sha256 of the file, which bundles quote

    def write(self, path: Path) -> None:
        """Write plan.json."""
        data = {
            "kind": PLAN_KIND,
            "format": FORMAT,
            "base": self.base,
            "versions": self.versions,
            "select": self.select,
            "exclude": self.exclude,
            "shards": [{"shard": k, "paths": p} for k, p in enumerate(self.shards, 1)],
        }
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> ShardPlan:
        """Read a plan, or a ConfigError naming what is wrong with it."""
        data, raw = _read_json(path, PLAN_KIND, "plan")
        try:
            shards = [list(map(str, s["paths"])) for s in data["shards"]]
            return cls(
                base=str(data["base"]),
                versions={str(k): str(v) for k, v in data["versions"].items()},
                select=data["select"],
                exclude=list(data["exclude"]),
                shards=shards,
                digest=hashlib.sha256(raw).hexdigest(),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"not a fixbot plan: {path} (missing {exc})") from None

    def paths_of(self, shard: int) -> list[str]:
        """The files of shard `shard` (1-based), or a ConfigError."""
        if not 1 <= shard <= len(self.shards):
            raise ConfigError(f"--shard {shard}: the plan has shards 1 to {len(self.shards)}")
        return self.shards[shard - 1]


def check_versions(what: str, versions: dict[str, str], ruff: str) -> None:
    """A plan or bundle made by another fixbot or ruff proves nothing here."""
    mine = {"fixbot": fixbot_version(), "ruff": ruff}
    for tool, version in mine.items():
        if versions.get(tool) != version:
            raise ConfigError(
                f"{what} was made by {tool} {versions.get(tool)}, this is {tool} {version}:"
                " make the plan, the shards and the merge with one install"
            )


@dataclass(frozen=True, slots=True)
class Bundle:
    """What one shard proved: its accepted patches with their verdicts."""

    plan: str  # the plan's digest
    base: str
    versions: dict[str, str]
    shard: int
    shards: int
    paths: list[str]
    select: list[str] | None
    exclude: list[str]
    records: list[PatchRecord]
    # Whether the shard's tests ran inside bubblewrap's fence: unfenced, they could
    # have rewritten this very file after fixbot wrote it.
    fenced: bool = False
    where: Path | None = None

    def write(self, folder: Path) -> Path:
        """Write DIR/bundle.json (and make DIR)."""
        folder.mkdir(parents=True, exist_ok=True)
        data = {
            "kind": BUNDLE_KIND,
            "format": FORMAT,
            "plan": self.plan,
            "base": self.base,
            "versions": self.versions,
            "shard": self.shard,
            "shards": self.shards,
            "paths": self.paths,
            "select": self.select,
            "exclude": self.exclude,
            "fenced": self.fenced,
            "records": [_record_out(r) for r in self.records],
        }
        path = folder / BUNDLE_FILE
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: Path) -> Bundle:
        """Read DIR/bundle.json, or a ConfigError naming what is wrong."""
        path = folder / BUNDLE_FILE if folder.is_dir() else folder
        data, _ = _read_json(path, BUNDLE_KIND, "bundle")
        try:
            return cls(
                plan=str(data["plan"]),
                base=str(data["base"]),
                versions={str(k): str(v) for k, v in data["versions"].items()},
                shard=int(data["shard"]),
                shards=int(data["shards"]),
                paths=list(map(str, data["paths"])),
                select=data["select"],
                exclude=list(data["exclude"]),
                fenced=data.get("fenced") is True,
                records=[_record_in(r) for r in data["records"]],
                where=path,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"not a fixbot bundle: {path} ({type(exc).__name__}: {exc})"
            ) from None


def check_bundles(bundles: Sequence[Bundle], ruff: str) -> list[str]:
    """Refuse bundles that do not belong together; warnings for shards that are missing."""
    if not bundles:
        raise ConfigError("fixbot merge needs at least one bundle folder")
    first = bundles[0]
    for b in bundles:
        check_versions(f"bundle {b.where}", b.versions, ruff)
        if b.base != first.base:
            raise ConfigError(
                f"bundle {b.where} was proven on {b.base[:12]}, bundle {first.where} on"
                f" {first.base[:12]}: merge bundles of one plan"
            )
        if b.plan != first.plan:
            raise ConfigError(f"bundle {b.where} comes from another plan than {first.where}")
    seen: dict[int, Path | None] = {}
    for b in bundles:
        if b.shard in seen:
            raise ConfigError(f"shard {b.shard} twice: {seen[b.shard]} and {b.where}")
        seen[b.shard] = b.where
    _check_disjoint(bundles)
    missing = sorted(set(range(1, first.shards + 1)) - set(seen))
    if not missing:
        return []
    return [f"shard(s) {', '.join(map(str, missing))} missing: their files stay as they are"]


def replay(jobs: Sequence[Job], bundles: Sequence[Bundle]) -> int:
    """Put the bundles' records on the merge's jobs, which propose nothing more; the most
    rounds a shard took.

    A bundle is an artifact anyone with access to the CI run could have replaced, and
    the merge's gate sees only each file's last content: so each file's accepted steps
    must chain from the base (a job's content starts as the base's), step by step, or
    the bundle is refused.
    """
    by_path = {job.path: job for job in jobs}
    for job in jobs:
        job.stop()
    rounds = 0
    for bundle in bundles:
        for record in bundle.records:
            path = record.patch.files[0]
            owner = by_path.get(path)
            if owner is None:
                raise ConfigError(
                    f"bundle {bundle.where} changes {path}, which has nothing to fix at"
                    f" {bundle.base[:12]} under this merge's rules"
                )
            if record.status == "accepted":
                _check_step(bundle, record, owner.content)
                owner.content = record.patch.changes[0].new
            owner.records.append(record)
            rounds = max(rounds, record.patch.round)
    return rounds


def _check_step(bundle: Bundle, record: PatchRecord, current: bytes) -> None:
    patch = record.patch
    change = patch.changes[0] if len(patch.changes) == 1 else None
    if (
        len(patch.files) != 1
        or change is None
        or change.path != patch.files[0]
        or record.before != current
        or change.old_sha != sha256(current)
    ):
        raise ConfigError(
            f"bundle {bundle.where}: patch {patch.id} does not follow from the content"
            f" before it in {patch.files[0]}: refused, it was not proven as it stands"
        )


def _check_disjoint(bundles: Sequence[Bundle]) -> None:
    owners: dict[str, int] = {}
    for b in bundles:
        for rec in b.records:
            path = rec.patch.files[0]
            if owners.setdefault(path, b.shard) != b.shard:
                raise ConfigError(f"{path} is in shards {owners[path]} and {b.shard}")


def _read_json(path: Path, kind: str, what: str) -> tuple[dict[str, Any], bytes]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(f"not a fixbot {what}: {path} (not JSON)") from None
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise ConfigError(f"not a fixbot {what}: {path}")
    if data.get("format") != FORMAT:
        raise ConfigError(
            f"the {what} {path} has format {data.get('format')}, this fixbot reads {FORMAT}"
        )
    return data, raw


# Bytes travel as base64: a file's content need not be UTF-8.
def _to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _record_out(record: PatchRecord) -> dict[str, Any]:
    return {
        "patch": _to_json(record.patch.model_dump(mode="python")),
        "verdict": record.verdict.model_dump(mode="json"),
        "before": _to_json(record.before),
        "status": record.status,
    }


def _record_in(data: dict[str, Any]) -> PatchRecord:
    return PatchRecord(
        patch=Patch.model_validate(_from_json(data["patch"])),
        status=str(data["status"]),
        verdict=Verdict.model_validate(data["verdict"]),
        before=_from_json(data["before"]),
    )
