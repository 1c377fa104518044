"""What stayed unfixed, in the forms CI systems show: annotations, Code Quality, plain JSON.

report.json speaks to fixbot's own tools; a CI system only shows findings it can
read. GitHub Actions turns workflow commands printed on stdout into annotations
on the diff, and reads a step's summary and outputs from the files its runner
names in the environment; GitLab shows a Code Quality report in the merge request
and tells new findings from old ones by their fingerprints. Everything here is a
pure rendering or an append to a file the runner gave us: no network, no token.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fixbot.sandbox import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from fixbot.sandbox import Violation

Format = Literal["github", "gitlab", "json"]

# What GitHub accepts as an output name; anything else would break the file's syntax.
_OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def render_unfixed(violations: Sequence[Violation], fmt: Format) -> str:
    """The violations left after a run, in `fmt`, ordered by path, line, column and rule.

    `github`: one `::warning` workflow command per line; `gitlab`: a Code Quality
    report (JSON); `json`: a list of {rule, path, line, column, message}. Empty
    input gives an empty string for `github` and an empty list otherwise.
    """
    ordered = sorted(violations, key=_position)
    if fmt == "github":
        return "".join(_annotation(v) + "\n" for v in ordered)
    if fmt == "gitlab":
        return _dump(_code_quality(ordered))
    if fmt == "json":
        return _dump(
            [
                {
                    "rule": v.rule,
                    "path": v.path,
                    "line": v.location.row,
                    "column": v.location.column,
                    "message": v.message,
                }
                for v in ordered
            ]
        )
    raise ValueError(f"unknown CI format {fmt!r}: use github, gitlab or json")


def publish_to_github_actions(
    environ: Mapping[str, str], *, summary: str, outputs: Mapping[str, str]
) -> list[str]:
    """Append `summary` to the step summary and `outputs` to the step's outputs.

    Only inside GitHub Actions (GITHUB_ACTIONS == "true"); a file whose variable
    is unset or empty is skipped, as is an empty summary or no outputs. Returns
    the paths written, in that order. Raises ConfigError (one line) when a named
    file cannot be written, and ValueError for an output name GitHub's syntax
    cannot carry (a bug of the caller's, caught before any file is touched).
    """
    if environ.get("GITHUB_ACTIONS") != "true":
        return []
    # Rendered before anything is written: a bad output name fails with no file touched.
    rendered = "".join(_output(k, v) for k, v in outputs.items())
    written: list[str] = []
    summary_path = environ.get("GITHUB_STEP_SUMMARY")
    if summary_path and summary:
        # The runner concatenates what a step appends; a final newline keeps the
        # next append (ours or the step's own) from running on into our last line.
        _append("GITHUB_STEP_SUMMARY", summary_path, summary.rstrip("\n") + "\n")
        written.append(summary_path)
    output_path = environ.get("GITHUB_OUTPUT")
    if output_path and rendered:
        _append("GITHUB_OUTPUT", output_path, rendered)
        written.append(output_path)
    return written


def _position(v: Violation) -> tuple[Any, ...]:
    # A notebook's rows count from its cell, so the cell goes before the row; the
    # message and end break the remaining ties so that equal input gives equal output.
    return (
        v.path,
        v.cell or 0,
        v.location.row,
        v.location.column,
        v.rule,
        v.message,
        v.end_location.row,
        v.end_location.column,
    )


def _described(v: Violation) -> str:
    # Without the cell, a notebook's line number points nowhere a reader can find.
    return f"cell {v.cell}: {v.message}" if v.cell is not None else v.message


def _annotation(v: Violation) -> str:
    properties = {
        "file": v.path,
        "line": v.location.row,
        "col": v.location.column,
        "endLine": v.end_location.row,
        "endColumn": v.end_location.column,
        "title": f"fixbot {v.rule}",
    }
    joined = ",".join(f"{k}={_escape_property(str(val))}" for k, val in properties.items())
    return f"::warning {joined}::{_escape_data(f'{v.rule} {_described(v)}')}"


def _escape_data(text: str) -> str:
    # As @actions/core's escapeData: `%` first, or the escapes themselves get escaped.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    # As escapeProperty: `:` ends the properties and `,` separates them.
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _code_quality(ordered: list[Violation]) -> list[dict[str, Any]]:
    seen: Counter[tuple[str, str, str]] = Counter()
    issues = []
    for v in ordered:
        # GitLab matches findings across pipelines by fingerprint and shows only the
        # first of equal ones, so it must survive line shifts and still be unique:
        # what the finding is (its identity, else its message), plus which of
        # identical findings in one file it is, counted in position order.
        key = (v.rule, v.path, _identity(v))
        seen[key] += 1
        digest = hashlib.sha256(usedforsecurity=False)
        for part in (*key, str(seen[key])):
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
        issues.append(
            {
                "description": f"{v.rule}: {_described(v)}",
                "check_name": v.rule,
                "fingerprint": digest.hexdigest(),
                "severity": "minor",
                "location": {"path": v.path, "lines": {"begin": v.location.row}},
            }
        )
    return issues


def _identity(v: Violation) -> str:
    # A finding a fix uncovered has an origin of "+N" (the step), which says nothing
    # about what it is; its own fingerprint does. Violations built without a
    # fingerprint fall back to the message, never to where they are.
    if v.uncovered:
        return v.fingerprint or v.message
    return v.identity or v.message


def _dump(data: list[dict[str, Any]]) -> str:
    return json.dumps(data, indent=2) + "\n"


def _output(name: str, value: str) -> str:
    if not _OUTPUT_NAME.fullmatch(name):
        raise ValueError(f"not a GitHub Actions output name: {name!r}")
    # The heredoc form takes any value, newlines included, so long as the delimiter
    # is not one of its lines: a random one, drawn again in the unlikely case.
    delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
    while delimiter in value:
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


def _append(variable: str, path: str, text: str) -> None:
    try:
        # newline="\n": the runner reads "\n" on every OS; no "\r" must slip in.
        with Path(path).open("a", encoding="utf-8", newline="\n") as file:
            file.write(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {variable} file {path}: {exc.strerror or exc}") from None
