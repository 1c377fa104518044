"""Rules a patch must keep before anything runs: no silencing, no moving the goalposts.

A model that cannot fix a finding may hide it instead (a `# noqa`, an edited
ruff config, a deleted test); such patches never reach the linter or the tests.
See docs/architecture.md, "What proven means".
"""

from __future__ import annotations

import functools
import io
import re
import tokenize
from collections import Counter
from pathlib import PurePosixPath

# Files that steer linting or testing; a patch to any of them moves the goalposts.
CONFIG_FILES = frozenset(
    {
        "pyproject.toml",
        "ruff.toml",
        ".ruff.toml",
        "setup.cfg",
        "tox.ini",
        "pytest.ini",
        ".pre-commit-config.yaml",
        ".flake8",
        "mypy.ini",
        ".coveragerc",
        "noxfile.py",
    }
)
DETERMINISTIC_AGENTS = frozenset({"ruff", "codemod"})

_SUPPRESSION = re.compile(
    r"noqa|ruff\s*:\s*(?:noqa|ignore|disable|enable)|flake8\s*:\s*noqa|type\s*:\s*ignore"
    r"|pragma|fmt\s*:\s*(?:off|skip|on)|pylint\s*:\s*disable|pyright\s*:\s*ignore"
    r"|mypy\s*:|isort\s*:\s*skip|nosec|lgtm",
    re.IGNORECASE,
)
# Trojan Source (CVE-2021-42574): text that reads differently from how it runs.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def _comments(source: str) -> list[str]:
    try:
        return [
            tok.string
            for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.COMMENT
        ]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        # Broken code fails to compile later anyway; judge what looks like a comment.
        return re.findall(r"#[^\n\r]*", source)


# The codes after a marker: listing one more code after a noqa that had one adds one.
_CODES = re.compile(
    r"\s*[:=\[]?\s*((?:[A-Z]+[0-9]+|[a-z][a-z-]+)(?:\s*,\s*(?:[A-Z]+[0-9]+|[a-z][a-z-]+))*)"
)


def suppressions(source: str) -> Counter[str]:
    """Suppression markers in the comments of `source`, counted by kind and code."""
    return Counter(dict(_suppressions(source)))


@functools.lru_cache(maxsize=256)
def _suppressions(source: str) -> tuple[tuple[str, int], ...]:
    """`suppressions`, kept per content: a file's content before is judged against every
    candidate for it, and a candidate's again when it is proven (tokenizing dateutil's
    test modules took 0.4 s of a round's static checks)."""
    found: Counter[str] = Counter()
    if not _SUPPRESSION.search(source):
        return ()  # no marker anywhere, so none in a comment: no need to tokenize
    for comment in _comments(source):
        for match in _SUPPRESSION.finditer(comment):
            kind = re.sub(r"\s+", "", match.group(0).lower())
            found[kind] += 1
            codes = _CODES.match(comment, match.end())
            for code in re.split(r"\s*,\s*", codes.group(1)) if codes else ():
                found[f"{kind} {code}"] += 1
    return tuple(found.items())


def is_protected(path: str) -> bool:
    """Whether `path` steers linting or testing, so that no patch may touch it."""
    return PurePosixPath(path).name in CONFIG_FILES


def _file_problem(agent: str, path: str, new: bytes) -> str | None:
    name = PurePosixPath(path).name
    if name in CONFIG_FILES:
        return f"edits lint or test configuration: {path}"
    if name == "conftest.py" and agent not in DETERMINISTIC_AGENTS:
        return f"edits test configuration: {path}"
    if b"\0" in new:
        return f"binary content in {path}"
    if not path.endswith((".py", ".pyi")):
        return f"not a Python file: {path}"
    return None


def policy_problem(agent: str, path: str, old: bytes, new: bytes) -> str | None:
    """Why this change to one file is refused outright, or None."""
    if problem := _file_problem(agent, path, new):
        return problem
    old_text = old.decode("utf-8", "replace")
    new_text = new.decode("utf-8", "replace")
    added = suppressions(new_text)
    if added:
        added -= suppressions(old_text)
    if added:
        kinds = ", ".join(sorted(added))
        return f"adds a suppression comment ({kinds}) in {path}"
    if len(_BIDI.findall(new_text)) > len(_BIDI.findall(old_text)):
        return f"adds bidirectional control characters in {path}"
    return None
