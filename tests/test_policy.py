"""sandbox._policy: what a patch may never do, judged on the bytes before and after."""

from __future__ import annotations

from collections import Counter

import pytest

from fixbot.sandbox import _policy
from fixbot.sandbox._policy import policy_problem, suppressions

BASE = b"import os\n\n\ndef f():\n    return os.sep\n"

# Each form a model could use to hide a finding instead of fixing it.
SUPPRESSIONS = [
    "# noqa",
    "# noqa: F401",
    "# NOQA:E501",
    "# ruff: noqa",
    "# ruff: noqa: F401",
    "# ruff: ignore[F401]",
    "# type: ignore",
    "# type: ignore[attr-defined]",
    "# pragma: no cover",
    "# fmt: off",
    "# fmt: skip",
    "# pylint: disable=unused-import",
    "# pyright: ignore",
    "# flake8: noqa",
    "# nosec",
    "# isort: skip",
]


def with_comment(comment: str) -> bytes:
    """BASE with `comment` at the end of its first line."""
    return BASE.replace(b"import os\n", f"import os  {comment}\n".encode(), 1)


class TestSuppressions:
    def test_counts_markers_by_kind(self):
        """Each marker is counted under a normalised kind."""
        source = "import os  # noqa: F401\nimport sys  # NOQA\nx = 1  # type:  ignore\n"
        assert suppressions(source) == Counter({"noqa": 2, "noqa F401": 1, "type:ignore": 1})

    def test_ruff_file_level_forms(self):
        """`ruff: noqa` and `ruff: ignore` are their own kinds."""
        source = "# ruff: noqa: F401\nimport os  # ruff : ignore[F401]\n"
        assert suppressions(source) == Counter(
            {"ruff:noqa": 1, "ruff:noqa F401": 1, "ruff:ignore": 1, "ruff:ignore F401": 1}
        )

    def test_string_literals_are_not_comments(self):
        """The word noqa inside strings, docstrings and f-strings is not a marker."""
        source = 'x = "# noqa"\ny = f"{x} # type: ignore"\n"""# fmt: off"""\n'
        assert suppressions(source) == Counter()

    def test_broken_source_still_judged(self):
        """Source that does not tokenize is judged by what looks like comments."""
        assert suppressions("def f(:\n    x = '''  # noqa\n") == Counter({"noqa": 1})

    def test_plain_comments_are_fine(self):
        """Ordinary comments are not suppressions."""
        assert suppressions("x = 1  # the answer\n# a note about typing\n") == Counter()


class TestSuppressionsKept:
    def test_a_content_is_tokenized_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Judged twice (a static check, then the proof), old and new are read once each,
        and what a caller does with the counts changes nothing kept."""
        read = []
        real = _policy._comments
        monkeypatch.setattr(_policy, "_comments", lambda s: read.append(s) or real(s))
        old = "x = 1  # noqa: E501 unique-old\n"
        new = "x = 1  # noqa: E501 unique-old\ny = 2  # noqa: F401\n"
        first = policy_problem("llm", "a.py", old.encode(), new.encode())
        assert first == policy_problem("llm", "a.py", old.encode(), new.encode())
        assert first is not None
        assert "noqa F401" in first
        assert read == [new, old]
        counted = suppressions(new)
        counted.clear()
        assert suppressions(new)["noqa"] == 2


class TestSuppressionPolicy:
    @pytest.mark.parametrize("comment", SUPPRESSIONS)
    def test_added_suppression_is_refused(self, comment):
        """Adding any suppression form is refused."""
        problem = policy_problem("llm", "pkg/a.py", BASE, with_comment(comment))
        assert problem is not None
        assert problem.startswith("adds a suppression comment")
        assert "pkg/a.py" in problem

    @pytest.mark.parametrize("agent", ["ruff", "llm"])
    def test_refused_for_every_agent(self, agent):
        """The deterministic agents may not add suppressions either."""
        assert policy_problem(agent, "a.py", BASE, with_comment("# noqa: F401")) is not None

    @pytest.mark.parametrize("comment", SUPPRESSIONS)
    def test_kept_suppression_is_fine(self, comment):
        """A suppression already present and kept is not a new one."""
        old = with_comment(comment)
        new = old.replace(b"return os.sep", b"return os.sep + os.sep")
        assert policy_problem("llm", "a.py", old, new) is None

    def test_removed_suppression_is_fine(self):
        """Removing a suppression is allowed."""
        assert policy_problem("llm", "a.py", with_comment("# noqa: F401"), BASE) is None

    def test_second_copy_of_an_existing_kind_is_refused(self):
        """A file that had one noqa may not gain another."""
        old = with_comment("# noqa: F401")
        new = old + b"import sys  # noqa: F401\n"
        assert policy_problem("llm", "a.py", old, new) is not None

    def test_noqa_in_string_literal_is_not_refused(self):
        """The word noqa inside a string is data, not a comment."""
        new = BASE + b'MESSAGE = "add # noqa to silence it"\n'
        assert policy_problem("llm", "a.py", BASE, new) is None

    def test_crlf_and_bom_sources(self):
        """Suppressions are found in BOM and CRLF files too."""
        old = b"\xef\xbb\xbf" + BASE.replace(b"\n", b"\r\n")
        new = old.replace(b"import os\r\n", b"import os  # noqa\r\n")
        assert policy_problem("llm", "a.py", old, new) is not None
        assert policy_problem("llm", "a.py", old, old + b"x = 1\r\n") is None

    def test_ordinary_change_is_fine(self):
        """A plain code change passes."""
        assert policy_problem("llm", "a.py", BASE, BASE.replace(b"os.sep", b"os.linesep")) is None


class TestConfigFiles:
    @pytest.mark.parametrize(
        "path",
        [
            "pyproject.toml",
            "sub/ruff.toml",
            "deep/er/.ruff.toml",
            "setup.cfg",
            "pkg/tox.ini",
            "pytest.ini",
            ".pre-commit-config.yaml",
            "sub/.flake8",
            "noxfile.py",
        ],
    )
    @pytest.mark.parametrize("agent", ["ruff", "llm"])
    def test_config_at_any_depth_is_refused(self, path, agent):
        """Lint and test configuration is off limits at any depth, to every agent."""
        problem = policy_problem(agent, path, b"x = 1\n", b"x = 2\n")
        assert problem == f"edits lint or test configuration: {path}"

    @pytest.mark.parametrize("agent", ["ruff", "codemod"])
    def test_conftest_allowed_for_deterministic_agents(self, agent):
        """ruff's own fixes may touch conftest.py."""
        assert policy_problem(agent, "tests/conftest.py", BASE, BASE + b"x = 1\n") is None

    def test_conftest_refused_for_llm(self):
        """A model may not edit conftest.py, at any depth."""
        for path in ("conftest.py", "tests/unit/conftest.py"):
            problem = policy_problem("llm", path, BASE, BASE + b"x = 1\n")
            assert problem == f"edits test configuration: {path}"

    def test_similar_names_are_not_config(self):
        """A Python file merely named like a config file is ordinary code."""
        assert policy_problem("llm", "pkg/pyproject_toml.py", BASE, BASE + b"x = 1\n") is None


class TestContent:
    def test_binary_content_is_refused(self):
        """Content with a NUL byte is binary and refused."""
        problem = policy_problem("ruff", "a.py", BASE, BASE + b"\x00")
        assert problem == "binary content in a.py"

    def test_added_bidi_controls_are_refused(self):
        """Added bidirectional control characters (Trojan Source) are refused."""
        for char in ("\u202e", "\u2066", "\u200f"):
            new = BASE + f's = "user{char}admin"\n'.encode()
            problem = policy_problem("llm", "a.py", BASE, new)
            assert problem == "adds bidirectional control characters in a.py"

    def test_existing_bidi_controls_kept_is_fine(self):
        """A file that already had bidi characters may keep them."""
        old = BASE + 's = "\u202e"\n'.encode()
        assert policy_problem("llm", "a.py", old, old + b"x = 1\n") is None

    @pytest.mark.parametrize("path", ["README.md", "data/x.json", "script.sh", "a.pyc", "py"])
    def test_non_python_file_is_refused(self, path):
        """Only Python source may be changed."""
        assert policy_problem("ruff", path, b"a\n", b"b\n") == f"not a Python file: {path}"

    def test_stub_files_are_python(self):
        """A .pyi stub is Python source."""
        assert policy_problem("llm", "pkg/a.pyi", b"x: int\n", b"x: str\n") is None


class TestWidenedSuppression:
    """Adding a code to an existing suppression is a new suppression."""

    def test_widening_noqa_is_refused(self):
        """`# noqa: E501` -> `# noqa: E501, F401` is refused."""
        old = b"import os  # noqa: E501\n"
        new = b"import os  # noqa: E501, F401\n"
        assert "F401" in (policy_problem("llm", "a.py", old, new) or "")

    def test_same_codes_kept_is_fine(self):
        """An unchanged suppression on a changed line passes."""
        old = b"x = 1  # noqa: E501\n"
        new = b"x = 2  # noqa: E501\n"
        assert policy_problem("llm", "a.py", old, new) is None

    def test_ruff_ignore_codes_counted(self):
        """`# ruff: ignore[E501]` -> `# ruff: ignore[E501, F401]` is refused."""
        old = b"x = 1  # ruff: ignore[E501]\n"
        new = b"x = 1  # ruff: ignore[E501, F401]\n"
        assert policy_problem("llm", "a.py", old, new) is not None
