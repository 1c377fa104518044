"""The ruff adapter: lint to `Violation`s, fix and format source held in memory.

Always the ruff fixbot installs (or one the config names), never one found on
PATH: results must not depend on what else is on the machine.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import ToolError
from ._findings import FindingsReader
from ._process import Completed, no_git_env, run
from ._text import BOM, decode
from ._wrap import (
    WRAPPED,
    config_digest,
    in_place_of,
    remember,
    same_indent,
    spans_in_formatted,
    statement_spans,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._types import Violation


def default_ruff() -> str:
    """The ruff binary installed with fixbot."""
    from ruff.__main__ import find_ruff_bin  # noqa: PLC0415 - only where needed

    return os.fspath(find_ruff_bin())


@dataclass(frozen=True, slots=True)
class LintResult:
    """Violations plus any file ruff said it failed to lint."""

    violations: list[Violation]
    failed: list[str] = field(default_factory=list)

    def by_path(self) -> dict[str, list[Violation]]:
        """Violations grouped by their repo-relative path."""
        out: dict[str, list[Violation]] = {}
        for v in self.violations:
            out.setdefault(v.path, []).append(v)
        return out

    def counters(self) -> dict[str, Counter[str]]:
        """Fingerprint multisets per path."""
        return {p: Counter(v.fingerprint for v in vs) for p, vs in self.by_path().items()}


@dataclass(frozen=True, slots=True)
class Ruff:
    """ruff bound to one checkout (the repo, or a worktree of it) and a rule selection."""

    root: Path
    select: tuple[str, ...] | None = None
    executable: str = field(default_factory=default_ruff)
    timeout: float = 600

    def _selection(self, select: Sequence[str] | None) -> list[str]:
        rules = select if select is not None else self.select
        return ["--select", ",".join(rules)] if rules else []

    def _fixing(self, select: Sequence[str] | None) -> list[str]:
        """The selection that fixes `select`'s rules and no others."""
        if select is not None and list(select) == [UNUSED_NOQA]:
            # RUF100 calls a noqa unused when its code is not enabled: with RUF100 alone
            # selected, every suppression in use would go. Under the whole selection,
            # only RUF100 may fix.
            return [*self._selection(None), "--fixable", UNUSED_NOQA]
        return self._selection(select)

    async def _run(
        self,
        args: Sequence[str],
        stdin: bytes | None = None,
        *,
        parse_errors_ok: bool = False,
        on_line: Callable[[bytes], None] | None = None,
    ) -> Completed:
        try:
            done = await run(
                [self.executable, *args],
                cwd=self.root,
                env=no_git_env({"RUFF_NO_CACHE": "true"}),
                stdin=stdin,
                timeout=self.timeout,
                on_line=on_line,
            )
        except OSError as exc:
            raise ToolError(f"cannot run ruff ({self.executable}): {exc.strerror or exc}") from None
        # `ruff format` exits 2 on a file it cannot parse too; that is the file's problem.
        parse_error = (
            parse_errors_ok
            and b"ruff failed" not in done.stderr
            and (bool(done.stdout.strip()) or b"Failed to parse" in done.stderr)
        )
        if (done.returncode == 2 and not parse_error) or done.timed_out:
            # ruff's own failure, not a finding: a bad config, a required-version mismatch...
            lines = [ln.strip() for ln in done.stderr.decode(errors="replace").splitlines()]
            lines = [ln for ln in lines if ln]
            # "Cause:" lines nest outside-in; a TOML error's reason ends the output.
            causes = [ln.removeprefix("Cause:").strip() for ln in lines if ln.startswith("Cause:")]
            if causes and "|" not in lines[-1] and not lines[-1].startswith("Cause:"):
                causes.append(lines[-1])
            first = ": ".join(causes) or (lines[0] if lines else f"exit {done.returncode}")
            if done.timed_out:
                first = f"timed out after {self.timeout:g} s"
            raise ToolError(f"ruff failed in {self.root}: {first}")
        return done

    def _check_args(self, select: Sequence[str] | None, *, ignore_noqa: bool) -> list[str]:
        # --no-fix: a repo's `fix = true` would otherwise make a lint rewrite the files.
        args = ["check", "--no-cache", "--no-fix", "--exit-zero", "--output-format", "json-lines"]
        args += self._selection(select)
        if ignore_noqa:
            args.append("--ignore-noqa")
        return args

    async def version(self) -> str:
        """ruff's version, e.g. '0.17.6'."""
        done = await self._run(["--version"])
        return done.stdout.decode().split()[-1]

    async def lint(
        self,
        paths: Sequence[str] = (),
        *,
        ignore_noqa: bool = False,
        select: Sequence[str] | None = None,
    ) -> LintResult:
        """Lint files of the checkout (all of them when `paths` is empty)."""
        args = self._check_args(select, ignore_noqa=ignore_noqa)
        commands = [[*args, "--force-exclude", "--", *c] for c in _chunks(paths)] or [args]
        # json-lines, parsed as it streams: ruff's text for 50,000 findings is never held.
        violations: list[Violation] = []
        failed: list[str] = []
        reader = FindingsReader(self.root, self._relative)
        for command in commands:
            done = await self._run(
                command, on_line=lambda line: violations.extend(reader.read((line,)))
            )
            failed += _failed_to_lint(done.stderr)
        return LintResult(violations, failed)

    async def lint_source(
        self,
        path: str,
        source: bytes,
        *,
        ignore_noqa: bool = False,
        select: Sequence[str] | None = None,
    ) -> LintResult:
        """Lint content held in memory as if it were the file at `path`."""
        args = self._check_args(select, ignore_noqa=ignore_noqa)
        args += ["--force-exclude", f"--stdin-filename={path}", "-"]
        done = await self._run(args, stdin=source)
        text, _ = decode(source)
        reader = FindingsReader(self.root, self._relative, path, text)
        failed = _failed_to_lint(done.stderr)
        return LintResult(list(reader.read(done.stdout.splitlines())), failed)

    async def fix_source(
        self,
        path: str,
        source: bytes,
        *,
        select: Sequence[str] | None = None,
        unsafe: bool = False,
    ) -> bytes:
        """ruff's own fixes (its fix loop runs to a fixed point) on content in memory."""
        args = [*fix_args(unsafe=unsafe), *self._fixing(select)]
        args += ["--force-exclude", f"--stdin-filename={path}", "-"]
        done = await self._run(args, stdin=source)
        if b"Failed to converge" in done.stderr:
            raise FixDidNotConverge(path)
        return done.stdout

    async def fix_files(self, paths: Sequence[str], rule: str, *, unsafe: bool) -> None:
        """ruff's fix loop for one rule, in place, on files of the checkout."""
        args = [*fix_args(unsafe=unsafe), *self._fixing([rule]), "--force-exclude", "--"]
        for chunk in _chunks(paths):
            await self._run([*args, *chunk])

    async def format_files(self, paths: Sequence[str]) -> None:
        """`ruff format`, in place, on files of the checkout; the BOM, which ruff drops, is kept."""
        with_bom = [p for p in paths if _starts_with_bom(self.root / p)]
        for chunk in _chunks(paths):
            await self._run(
                ["format", "--no-cache", "--force-exclude", "--", *chunk], parse_errors_ok=True
            )
        for rel in with_bom:
            file = self.root / rel
            data = file.read_bytes()
            if not data.startswith(_BOM_BYTES):
                file.write_bytes(_BOM_BYTES + data)

    async def rule_doc(self, rule: str) -> dict[str, Any]:
        """`ruff rule RULE` as JSON: its name, summary and explanation ({} if unreadable)."""
        done = await self._run(["rule", rule, "--output-format", "json"])
        try:
            data = json.loads(done.stdout)
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}

    async def format_source(self, path: str, source: bytes) -> bytes:
        """`ruff format` of content in memory; the BOM, which ruff drops, is kept."""
        text, bom = decode(source)
        args = ["format", "--no-cache", "--force-exclude", f"--stdin-filename={path}", "-"]
        done = await self._run(
            args, stdin=text.encode("utf-8", "surrogateescape"), parse_errors_ok=True
        )
        if done.returncode != 0:
            return source
        return (_BOM_BYTES if bom else b"") + done.stdout

    async def format_lines(self, path: str, source: bytes, rows: Sequence[int]) -> bytes:
        """`ruff format` of only the statements holding `rows` (1-based), in memory.

        For lines a fix made too long in a file that is not format-clean: formatting
        the whole file would rewrite code no fix touched. Two or more statements are
        taken from one run over the whole file (`_formatted_statements`); the others
        are formatted on their own (ruff takes one range per run), from the bottom up,
        and ruff's result is kept only where it changed nothing outside that
        statement: with an indentation ruff would change (two spaces, tabs) it
        reformats the whole enclosing block, and then the line stays long. How a
        statement was formatted
        is remembered by its text: a chain proposed again after a refusal meets the
        same long lines, hundreds in a big test module.
        """
        if path.endswith(".ipynb"):
            return source  # ruff formats no range of a notebook
        text, bom = decode(source)
        lines = text.encode("utf-8", "surrogateescape").splitlines(keepends=True)
        spans = statement_spans(text, rows)
        # Whether ruff formats a statement also depends on where it is (`fmt: off`).
        memo = b"fmt:" not in source and b"yapf:" not in source
        config = config_digest(self.root, path)
        todo, above = [], len(lines) + 1
        for lo, hi in sorted(set(spans.values()), reverse=True):
            if hi < above:  # not within one taken already (a header and its statement)
                todo.append((lo, hi))
                above = lo
        keys = {s: (self.executable, config, path, b"".join(lines[s[0] - 1 : s[1]])) for s in todo}
        unknown = [s for s in todo if not memo or keys[s] not in WRAPPED]
        whole = await self._formatted_statements(path, lines, unknown) if len(unknown) > 1 else {}
        changed = False
        for lo, hi in todo:  # bottom up: a statement's new lines move none above it
            made = (WRAPPED.get(keys[lo, hi]) if memo else None) or whole.get((lo, hi))
            if made is None:
                made = await self._format_range(path, lines, lo, hi)
                if made is None:
                    continue
            if memo:
                remember(keys[lo, hi], made)
            changed |= made != lines[lo - 1 : hi]
            lines[lo - 1 : hi] = made
        if not changed:
            return source
        return (_BOM_BYTES if bom else b"") + b"".join(lines)

    async def _formatted_statements(
        self, path: str, lines: list[bytes], spans: list[tuple[int, int]]
    ) -> dict[tuple[int, int], list[bytes]]:
        """Each statement's lines as `ruff format` makes them in the whole file: one run
        for them all, where `--range` takes one statement per run (286 of them in
        dateutil's `test_rrule.py`). A statement whose indentation ruff would change
        is left out, for `--range` to refuse."""
        text = b"".join(lines)  # no BOM: format_lines took it off
        formatted = await self.format_source(path, text)
        new = formatted.splitlines(keepends=True)
        where = spans_in_formatted(
            text.decode("utf-8", "surrogateescape"),
            formatted.decode("utf-8", "surrogateescape"),
            spans,
        )
        out = {}
        for (lo, hi), (first, last) in where.items():
            made = new[first - 1 : last]
            if made and same_indent(lines[lo - 1], made[0]):
                out[lo, hi] = made
        return out

    async def _format_range(
        self, path: str, lines: list[bytes], lo: int, hi: int
    ) -> list[bytes] | None:
        """Lines lo..hi as `ruff format --range` makes them, if nothing else changed."""
        args = ["format", "--no-cache", "--force-exclude", f"--range={lo}-{hi + 1}"]
        args += [f"--stdin-filename={path}", "-"]
        done = await self._run(args, stdin=b"".join(lines), parse_errors_ok=True)
        new = done.stdout.splitlines(keepends=True) if done.returncode == 0 else []
        return in_place_of(lines, new, lo, hi) if new else None

    async def unformatted(self, paths: Sequence[str]) -> set[str]:
        """Which of `paths` `ruff format --check` would change (a BOM alone does not count).

        A file ruff cannot parse or read counts too: it is not format-clean.
        """
        if not paths:
            return set()
        args = ["format", "--check", "--no-cache", "--force-exclude"]
        args += ["--output-format", "json-lines", "--"]
        out, reformat = set(), set()
        for chunk in _chunks(paths):
            done = await self._run([*args, *chunk], parse_errors_ok=True)
            for raw in done.stdout.splitlines():
                if raw.strip():
                    item = json.loads(raw)
                    rel = self._relative(item["filename"])
                    out.add(rel)
                    if item.get("code") == "unformatted":
                        reformat.add(rel)
        # ruff calls a BOM-only difference unformatted; look again without the BOM.
        for rel in reformat:
            data = (self.root / rel).read_bytes()
            if data.startswith(_BOM_BYTES) and await self.format_source(rel, data) == data:
                out.discard(rel)
        return out

    def _relative(self, filename: str) -> str:
        # ruff's paths are absolute and under the root it ran in; the general case
        # (symlinks, paths outside) takes the slow road.
        root = str(self.root)
        if filename.startswith(root + os.sep) and ".." not in filename:
            return filename[len(root) + 1 :].replace(os.sep, "/")
        path = Path(filename)
        if not path.is_absolute():
            path = self.root / path
        return Path(os.path.relpath(os.path.realpath(path), os.path.realpath(self.root))).as_posix()


UNUSED_NOQA = "RUF100"


class FixDidNotConverge(Exception):  # noqa: N818 - it reads as what happened
    """ruff's fix loop gave up on a file."""


# Files per ruff command line: far below ARG_MAX even with long paths.
_CHUNK = 500


def _chunks(paths: Sequence[str]) -> list[list[str]]:
    return [list(paths[i : i + _CHUNK]) for i in range(0, len(paths), _CHUNK)]


def fix_args(*, unsafe: bool) -> list[str]:
    """`ruff check` arguments that apply fixes and nothing else.

    Which fixes is always said outright: a repo's `unsafe-fixes = true` must not
    slip unsafe fixes into a step meant to be safe.
    """
    return [
        "check",
        "--no-cache",
        "--fix-only",
        "--exit-zero",
        "--unsafe-fixes" if unsafe else "--no-unsafe-fixes",
    ]


_BOM_BYTES = BOM.encode()


def _starts_with_bom(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(_BOM_BYTES)) == _BOM_BYTES
    except OSError:
        return False


def _failed_to_lint(stderr: bytes) -> list[str]:
    return [
        ln.strip()
        for ln in stderr.decode(errors="replace").splitlines()
        if "Failed to lint" in ln or "Failed to parse" in ln
    ]
