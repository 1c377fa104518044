"""report.md: the pull request's body, rendered from the Report.

A reader of the pull request sees only this text: every rule links to ruff's
documentation, every rule left unfixed says why in words they can act on, long
tables fold, and nothing names a path on the machine that ran fixbot.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._report_words import (
    CAUSES,
    NO_FIX,
    NO_FIX_MODEL,
    NO_FIX_UNROUTED,
    NOT_ATTEMPTED,
    NOT_LANDED,
    REFUSALS,
    STATIC,
    STATIC_WORDS,
    revealed_lines,
    revealed_trades,
    trade_lines,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from ._report import Report, RuleCounts, RuleInfo

# GitHub refuses descriptions over 65,536 characters; the rest is room for a split's heading.
BODY_LIMIT = 60_000
FOLD_AT = 15  # tables with more rows than this are folded into <details>
NOTE_ROOM = 600  # kept free for <details> wrappers and the line saying what was cut
REASONS_SHOWN = 10
DOCS = "https://docs.astral.sh/ruff/rules/{}/"
NO_DOCS = frozenset({"invalid-syntax"})  # ruff's pseudo-rules without a page
KEBAB = re.compile(r"[a-z]+(?:-[a-z0-9]+)*")

# What a reader cannot reach: the run's folder and absolute paths on the machine.
RUN_FOLDER = re.compile(r"\S*\.git/fixbot/\S*")
ABSOLUTE = re.compile(r"(?<![\w/.:~-])/(?:[^\s/|`'\"<>()\[\]{},;:]+/)+")


def reason_words(reason: str) -> str:
    """A refusal reason (`tests`, `lint`, `gate: tests`...) as a sentence a reader can act on."""
    base = reason.removeprefix("gate: ")
    if reason != base:
        cause = CAUSES.get(base) or STATIC_WORDS.get(base) or base
        return f"the final gate dropped the fix: {cause}"
    if base in STATIC_WORDS:
        return STATIC_WORDS[base]
    return f"the fix was refused: {CAUSES.get(base, base)}"


def why_unfixed(c: RuleCounts, info: RuleInfo | None, report: Report) -> str:
    """Why a rule's violations are left, each reason with its count when there are several."""
    parts: list[tuple[int | None, str]] = []
    if c.rejected:
        commonest = sorted(c.refused, key=lambda r: (-c.refused[r], r))
        words = list(dict.fromkeys(reason_words(r) for r in commonest))
        parts += [(c.rejected if len(words) == 1 else None, w) for w in words]
    rest = c.unfixed
    for reason, count in sorted((info.not_attempted if info else {}).items()):
        n = min(count, rest)
        if n:
            parts.append((n, NOT_ATTEMPTED.get(reason, f"not attempted ({reason})")))
            rest -= n
    no_fix = min(rest, max(0, c.found - c.offered))
    if no_fix:
        llm = report.llm
        ran = llm.requests or llm.cache_hits or llm.failures or llm.estimated_requests
        said = NO_FIX if not ran else NO_FIX_MODEL if report.unfixed_reasons else NO_FIX_UNROUTED
        parts.append((no_fix, said))
    if rest - no_fix > 0:
        parts.append((rest - no_fix, NOT_LANDED))
    if len(parts) == 1:
        return parts[0][1]
    return "<br>".join(f"{n}: {w}" if n else w for n, w in parts)


def rule_cell(rule: str, info: RuleInfo | None) -> str:
    """The rule's code and name, linked to its page in ruff's documentation."""
    name = info.name if info and info.name else rule if KEBAB.fullmatch(rule) else ""
    if not name or name in NO_DOCS:
        return rule
    label = rule if rule == name else f"{rule} {name}"
    return f"[{label}]({DOCS.format(name)})"


def public(text: str) -> str:
    """Text fit for a table cell a stranger reads: one line, no pipes, no machine paths."""
    text = RUN_FOLDER.sub("(fixbot's run folder)", text)
    text = ABSOLUTE.sub("…/", text)
    return text.replace("|", "\\|").replace("\n", " ")


@dataclass(slots=True)
class Table:
    """A markdown table under an optional heading, folded when long."""

    heading: list[str]
    columns: list[str]
    rows: list[str]
    summary: str  # what <summary> says, e.g. "120 rules"
    total: int = 0  # rows before any were cut

    def lines(self, rows: list[str]) -> list[str]:
        """The table with only `rows`; a line in its place when none are kept."""
        if not rows:
            return [*self.heading, f"{self.total:,} {self.summary}, left out here."]
        table = [*self.columns, *rows]
        if len(rows) <= FOLD_AT:
            return [*self.heading, *table]
        return [
            *self.heading,
            f"<details><summary>{len(rows):,} {self.summary}</summary>",
            "",
            *table,
            "",
            "</details>",
        ]


def head_lines(report: Report) -> list[str]:
    """The title, versions, totals and how the fixes were proven."""
    t = report.tests
    proof = (
        f"`{t.command}`: {t.passed_before} tests passed at base and still pass"
        + (f"; {t.already_failing} already failing at base" if t.already_failing else "")
        + (f"; {t.flaky} flaky at base (not held against any patch)" if t.flaky else "")
        if t.mode == "tests"
        else "**lint only**: no test command was configured or detected, "
        "so behaviour was not checked by tests"
    )
    versions = report.versions
    return [
        "## fixbot: proven lint fixes",
        "",
        (
            f"Made by fixbot `{versions.get('fixbot') or 'unknown'}` with ruff "
            f"`{versions.get('ruff') or 'unknown'}` from base `{report.base[:12]}`; "
            f"rules: {report.selection.get('description')}."
        ),
        "",
        *[f"> **Warning:** {n}" for n in report.notices],
        *([""] if report.notices else []),
        f"- violations: {report.violations_before} before, {report.violations_after} after",
        (
            f"- patches: {report.accepted} accepted, {report.rejected} rejected, "
            f"{report.dropped} dropped by the final gate"
        ),
        (
            "- proof: ruff (noqa ignored) finds the targeted violations gone and nothing new"
            + (" but what a fix revealed (below)" if revealed_trades(report) else "")
            + f"; every touched file compiles; {proof}."
        ),
        f"- isolation of test runs: {', '.join(f'{k}: {v}' for k, v in report.isolation.items())}",
    ]


def rule_table(report: Report) -> tuple[Table, list[int]]:
    """One row per rule, and the order in which rows are kept when the body must shrink."""
    rows, left = [], []
    for rule, c in report.by_rule.items():
        info = report.rule_info.get(rule)
        tests, lint = c.refused.get("tests", 0), sum(c.refused.get(r, 0) for r in STATIC)
        other = sum(c.refused.values()) - tests - lint
        why = why_unfixed(c, info, report) if c.unfixed + c.rejected else ""
        rows.append(
            f"| {rule_cell(rule, info)} | {c.found} | {c.fixed} | {c.unfixed + c.rejected} | "
            f"{c.revealed} | {c.offered} | {c.landed} | {tests} | {lint} | {other} | {why} |"
        )
        left.append((c.unfixed + c.rejected, c.found))
    table = Table(
        heading=[""],
        columns=[
            (
                "| rule | found | fixed | unfixed | revealed | fixes offered | landed | "
                "refused: tests | refused: lint | refused: other | why unfixed |"
            ),
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ],
        rows=rows,
        summary="rules",
        total=len(rows),
    )
    return table, sorted(range(len(rows)), key=lambda i: left[i], reverse=True)


def note_lines(report: Report) -> list[str]:
    """What the model proposed nothing for, and what no agent was given."""
    lines = []
    if report.unfixed_reasons:
        reasons = sorted(report.unfixed_reasons.items(), key=lambda kv: -kv[1])
        why = ", ".join(f"{n} ({public(r)[:200]})" for r, n in reasons[:REASONS_SHOWN])
        more = len(reasons) - REASONS_SHOWN
        why += f", and {more} other reasons (see report.json)" if more > 0 else ""
        lines += ["", f"The model proposed nothing for: {why}."]
    if report.not_attempted:
        skipped = ", ".join(f"{n} ({why})" for why, n in sorted(report.not_attempted.items()))
        lines += ["", f"Not attempted: {skipped}."]
    return lines + revealed_lines(report)


@dataclass(slots=True)
class Refusal:
    """One row of a refusal table: identical patches counted once."""

    cells: str  # file and rules
    reason: str
    detail: str
    count: int = 1

    def row(self, *, detail: bool) -> str:
        """The row, with the verdict's detail or without it."""
        said = f"{self.reason}: {self.detail}" if detail and self.detail else self.reason
        return f"{self.cells} | {said} | {self.count} |"


def refusal_tables(report: Report) -> list[tuple[Table, list[Refusal]]]:
    """A table per kind of refusal; the same patch, file and reason shown once, counted."""
    out = []
    for title, reasons in REFUSALS:
        rows: dict[tuple[str, str, str], Refusal] = {}
        for p in report.patches:
            known = any(p.reason in r for _, r in REFUSALS)
            if p.status == "accepted" or not (p.reason in reasons or (not reasons and not known)):
                continue
            cells = f"| `{public(p.files[0]) if p.files else '?'}` | {', '.join(p.rules)}"
            key = (cells, p.reason, public(p.detail)[:300])
            if key in rows:
                rows[key].count += 1
            else:
                rows[key] = Refusal(*key)
        if rows:
            said = trade_lines(report) if reasons == STATIC else []
            table = Table(
                heading=["", f"### {title}", "", *said],
                columns=["| file | rules | reason | patches |", "| --- | --- | --- | ---: |"],
                rows=[],
                summary="refused patches",
                total=len(rows),
            )
            out.append((table, list(rows.values())))
    return out


def render_markdown(report: Report, *, limit: int = BODY_LIMIT) -> str:
    """The PR body: what was fixed, what was refused and why, and how it was proven.

    Kept under `limit` characters: the refusals' details go first, then their rows,
    then the rules with the fewest violations left; a last line says what was cut.
    """
    rules, keep_order = rule_table(report)
    refusals = refusal_tables(report)
    cut: list[str] = []

    def body(rule_rows: list[str], refusal_rows: list[list[str]]) -> str:
        lines = [*head_lines(report), *rules.lines(rule_rows), *note_lines(report)]
        if refusals:
            lines += [
                "",
                (
                    "Each patch not landed is kept as a diff headed by its verdict in the "
                    "run's rejected/ folder, for a person to take over."
                ),
            ]
        for (table, _), rows in zip(refusals, refusal_rows, strict=True):
            lines += table.lines(rows)
        if cut:
            lines += [
                "",
                (
                    f"_Left out to keep this under {limit:,} characters: {'; '.join(cut)}. "
                    "The run's report.json has everything._"
                ),
            ]
        return "\n".join(lines) + "\n"

    full = [[r.row(detail=True) for r in rows] for _, rows in refusals]
    text = body(rules.rows, full)
    if len(text) <= limit:
        return text
    bare = [[r.row(detail=False) for r in rows] for _, rows in refusals]
    detailed = sum(1 for _, rows in refusals for r in rows if r.detail)
    cut.append(f"the details of {detailed:,} refused patches")
    # Refusal rows, in order, while they fit beside every rule.
    room = limit - NOTE_ROOM - len(body(rules.rows, [[] for _ in refusals]))
    kept = [fit(rows, range(len(rows)), room - used) for rows, used in _running(bare)]
    if kept != bare:
        total = sum(len(rows) for rows in bare)
        cut.append(f"{total - sum(map(len, kept)):,} of {total:,} rows of refused patches")
    text = body(rules.rows, kept)
    if len(text) <= limit:
        return text
    # The rules with the most violations left, in the table's order, as many as fit.
    room = limit - NOTE_ROOM - len(body([], kept))
    rows = fit(rules.rows, keep_order, room)
    cut.append(
        f"{rules.total - len(rows):,} of {rules.total:,} rules (those with the fewest "
        "violations left)"
    )
    text = body(rows, kept)
    if len(text) > limit:  # the head alone is too long: cut at a line
        tail = "\n\n_Cut to fit; the run's report.json has everything._\n"
        text = text[: limit - len(tail)].rsplit("\n", 1)[0] + tail
    return text


def fit(rows: list[str], order: range | list[int], room: int) -> list[str]:
    """The rows taken in `order` while they fit in `room` characters, in their own order."""
    kept: list[int] = []
    for i in order:
        if len(rows[i]) + 1 > room:
            break
        room -= len(rows[i]) + 1
        kept.append(i)
    return [rows[i] for i in sorted(kept)]


def _running(tables: list[list[str]]) -> list[tuple[list[str], int]]:
    """Each table with the characters the tables before it take."""
    out, used = [], 0
    for rows in tables:
        out.append((rows, used))
        used += sum(len(r) + 1 for r in rows)
    return out


def write_reports(report: Report, folder: Path, secrets: Sequence[str] = ()) -> tuple[Path, Path]:
    """report.json and report.md into `folder`, with every known secret blanked.

    A test's id or output reaches the report (and report.md a PR): a test that read a
    token somewhere must not see it published. Blanking is the second line; the first
    is that no test can reach one (docs/architecture.md, "Containment").
    """
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "report.json", folder / "report.md"
    texts = {
        json_path: json.dumps(report.model_dump(mode="json"), indent=2) + "\n",
        md_path: render_markdown(report),
    }
    # Shorter than 4 characters would blank ordinary words.
    secrets = [secret for secret in secrets if len(secret) >= 4]
    for path, text in texts.items():
        path.write_text(functools.reduce(_blank, secrets, text), encoding="utf-8")
    return json_path, md_path


def _blank(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]")
