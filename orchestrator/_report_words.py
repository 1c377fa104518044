"""What report.md says in words: why a fix was refused, why a rule is left, and what
landed fixes revealed or refused ones would have added."""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._report import Report

# Static refusals: the fix may be right, but lint (or compile, or format) could not
# confirm it. Kept apart from a test catching a change of behaviour.
STATIC = ("lint", "compile", "format")
REFUSALS = (
    ("Not landed: a test caught a behaviour change", ("tests",)),
    ("Not landed: lint could not confirm the fix", STATIC),
    ("Not landed: other reasons", ()),
)
STATIC_WORDS = {
    "lint": "lint could not confirm the fix",
    "compile": "lint could not confirm the fix: the file no longer compiled",
    "format": "lint could not confirm the fix: the file was no longer ruff-format clean",
}
CAUSES = {
    "tests": "a test caught a behaviour change",
    "limit": "a test hit its time or memory limit",
    "policy": "it breaks fixbot's policy (a `# noqa`, or a file fixbot may not change)",
    "undecided": "the run stopped before it was decided",
}
NOT_ATTEMPTED = {
    "notebook": "not attempted (notebook): fixbot does not fix notebooks yet",
    "symlink": "not attempted (symlink): the file it points at is fixed instead",
    "lint or test configuration": (
        "not attempted (lint or test configuration): fixbot never changes these files"
    ),
    "unparsable file": "not attempted (unparsable file): fix its syntax error first",
    "converted on checkout": (
        "not attempted (converted on checkout): a .gitattributes filter, eol or ident"
        " changes this file on checkout, and fixbot commits the bytes it proved"
    ),
}
NO_FIX = "no automatic fix; set FIXBOT_LLM_BASE_URL and FIXBOT_LLM_MODEL to let a model try"
NO_FIX_MODEL = "no automatic fix, and the model proposed nothing usable (reasons below)"
NO_FIX_UNROUTED = "no automatic fix, and the model was not given it (see llm-select, llm-ignore)"
NOT_LANDED = "ruff offers a fix, but none was proven in this run"


def revealed_lines(report: Report) -> list[str]:
    """What the landed fixes revealed, and how to refuse such fixes instead."""
    trades = revealed_trades(report)
    if not trades:
        return []
    top = ", ".join(f"{fixed} revealing {new} ({n})" for (fixed, new), n in trades[:5])
    top += f", and {len(trades) - 5} more (see report.json)" if len(trades) > 5 else ""
    return [
        "",
        (
            f"Revealed by landed fixes: {top}. Each is of another rule than its fix, "
            "has no automatic fix, and lies on the lines its fix rewrote, in place of "
            "the finding that fix took away; most were in the code already, in a form "
            "their rule does not see (`self.assertEqual(x, 16)` becoming "
            "`assert x == 16` shows PLR2004 its magic value). They count among the "
            'violations after (column "revealed"). To refuse such fixes instead, set '
            "`land-revealed = false` under `[tool.fixbot]`."
        ),
    ]


def revealed_trades(report: Report) -> list[tuple[tuple[str, str], int]]:
    """(rules fixed, rule revealed) -> findings, most first, over the landed patches."""
    trades: Counter[tuple[str, str]] = Counter()
    for p in report.patches:
        for shown in p.revealed:
            trades[", ".join(p.rules), shown.split(" ", 1)[0]] += 1
    return trades.most_common()


NEW_FINDING = re.compile(r"new violations: ([A-Z]+[0-9]+) ")


def trade_lines(report: Report) -> list[str]:
    """What most lint refusals would have added, and what a reader can do about it."""
    trades: Counter[tuple[str, str]] = Counter()
    for p in report.patches:
        found = NEW_FINDING.search(p.detail) if p.status != "accepted" else None
        if found and p.reason in STATIC:
            trades[", ".join(p.rules), found.group(1)] += 1
    if not trades:
        return []
    top = ", ".join(f"{fixed} adding {new} ({n})" for (fixed, new), n in trades.most_common(5))
    but = ", but one finding it revealed (above)," if revealed_trades(report) else ""
    said = (
        f"What these fixes would have added: {top}. fixbot lands a fix only when nothing"
        f" new appears{but}. Where such findings are acceptable, tell ruff so"
        " (`per-file-ignores`) and run again."
    )
    return [said, ""]
