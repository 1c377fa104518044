"""sandbox._ruff and fingerprints: the real pinned ruff on small repos in tmp dirs."""

from __future__ import annotations

import ast
import re
import subprocess
import textwrap
from typing import TYPE_CHECKING

import anyio
import pytest

from fixbot.sandbox._errors import ToolError
from fixbot.sandbox._findings import violation_from_json
from fixbot.sandbox._ruff import LintResult, Ruff, default_ruff
from fixbot.sandbox._text import (
    BOM,
    apply_edits,
    decode,
    definitions,
    encode,
    parse_python,
    scope_of,
    scope_table,
    split_lines,
)
from fixbot.sandbox._types import Edit, Location, Violation, fingerprint, fingerprints
from fixbot.sandbox._wrap import WRAPPED
from tests.conftest import ROOT

if TYPE_CHECKING:
    from pathlib import Path

ROOT_CONFIG = """
[tool.ruff]
line-length = 100
extend-exclude = ["gen_*.py"]

[tool.ruff.lint]
select = ["F", "E"]
"""

BOM_BYTES = BOM.encode()


def make_repo(root: Path, files: dict[str, str | bytes], config: str = ROOT_CONFIG) -> Path:
    """A folder with a ruff config and `files` (str is dedented, bytes written as is)."""
    files = {"pyproject.toml": config, **files}
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"))
    return root


def rules(violations: list[Violation]) -> list[str]:
    """The rules of `violations`, in ruff's order."""
    return [v.rule for v in violations]


def only(result: LintResult, rule: str) -> Violation:
    """The single violation of `rule` in `result`."""
    found = [v for v in result.violations if v.rule == rule]
    assert len(found) == 1, result.violations
    return found[0]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty repo folder with the standard config (select F and E)."""
    return make_repo(tmp_path / "repo", {})


class TestSplitLines:
    def test_all_three_line_breaks(self):
        """\\r\\n, \\r and \\n each end a line, \\r\\n counting once."""
        assert split_lines("a\r\nb\rc\nd") == ["a", "b", "c", "d"]

    def test_trailing_break_gives_empty_last_line(self):
        """A final line break leaves an empty last line, as ruff numbers rows."""
        assert split_lines("a\n") == ["a", ""]

    def test_other_unicode_breaks_are_not_line_breaks(self):
        """Form feed, vertical tab and U+2028 do not split (str.splitlines would)."""
        text = "a\fb\vc\x1cd\u2028e\x85f"
        assert split_lines(text) == [text]


class TestDecodeEncode:
    def test_bom_is_stripped_and_reported(self):
        """decode drops the BOM and says it was there."""
        assert decode(BOM_BYTES + b"x = 1\n") == ("x = 1\n", True)
        assert decode(b"x = 1\n") == ("x = 1\n", False)

    def test_round_trip_of_bom_crlf_and_bad_bytes(self):
        """encode(decode(b)) gives back the same bytes, invalid UTF-8 included."""
        for data in (BOM_BYTES + b"a = 1\r\nb = 2\r\n", b"s = '\xff\xfe'\n", b"\r\r\n"):
            text, bom = decode(data)
            assert encode(text, bom) == data


class TestDefinitions:
    SOURCE = b"""import sys


@decorated
def top():
    def inner():
        pass


class Case:
    x = 1

    def method(self):
        pass

    class Nested:
        def deep(self):
            pass


if sys.version_info > (3,):
    def under_if():
        pass
"""

    def test_every_def_and_class_with_where_it_sits(self):
        """Names, lines (decorators in `first`) and owners: the module, a top-level
        class, or nothing (nested, or under an `if`)."""
        found = {
            (d.name, d.first, d.line, d.last, d.is_class, d.owner)
            for d in definitions(self.SOURCE) or ()
        }
        assert found == {
            ("top", 4, 5, 7, False, ""),
            ("inner", 6, 6, 7, False, None),
            ("Case", 10, 10, 18, True, ""),
            ("method", 13, 13, 14, False, "Case"),
            ("Nested", 16, 16, 18, True, "Case"),
            ("deep", 17, 17, 18, False, None),
            ("under_if", 22, 22, 23, False, None),
        }

    def test_what_does_not_parse_has_none(self):
        """None, not an empty table: the caller cannot place anything."""
        assert definitions(b"def broken(:\n") is None


class TestApplyEdits:
    @pytest.mark.anyio
    async def test_unicode_columns_remove_exactly_the_import(self, repo):
        """Columns count code points: the F401 fix after 'é😀' removes 'import os' only."""
        source = 's = "é😀"; import os\n'
        result = await Ruff(repo).lint_source("u.py", source.encode(), select=["F401"])
        violation = only(result, "F401")
        assert violation.location == Location(row=1, column=18)
        assert violation.fix is not None
        assert violation.fix.edits[0].location == Location(row=1, column=11)
        assert apply_edits(source, violation.fix.edits) == 's = "é😀"; \n'

    @pytest.mark.anyio
    async def test_bom_and_crlf_round_trip(self, repo):
        """A BOM+CRLF file fixed through decode/apply_edits/encode keeps both."""
        data = BOM_BYTES + b"import os\r\nimport sys\r\nprint(sys)\r\n"
        result = await Ruff(repo).lint_source("b.py", data, select=["F401"])
        violation = only(result, "F401")
        assert violation.location == Location(row=1, column=8)  # the BOM is not counted
        text, bom = decode(data)
        assert violation.fix is not None
        fixed = encode(apply_edits(text, violation.fix.edits), bom)
        assert fixed == BOM_BYTES + b"import sys\r\nprint(sys)\r\n"

    def test_edits_apply_in_position_order(self):
        """Edits given out of order are applied by position."""
        edits = [
            Edit(
                content="B",
                location=Location(row=2, column=1),
                end_location=Location(row=2, column=2),
            ),
            Edit(
                content="A",
                location=Location(row=1, column=1),
                end_location=Location(row=1, column=2),
            ),
        ]
        assert apply_edits("a\r\nb\n", edits) == "A\r\nB\n"

    def test_overlapping_edits_are_refused(self):
        """Two edits of one fix that overlap raise rather than corrupt the text."""
        edits = [
            Edit(
                content="",
                location=Location(row=1, column=1),
                end_location=Location(row=1, column=4),
            ),
            Edit(
                content="",
                location=Location(row=1, column=2),
                end_location=Location(row=1, column=5),
            ),
        ]
        with pytest.raises(ValueError, match="overlapping"):
            apply_edits("abcdef\n", edits)

    def test_insertion_at_end_of_file(self):
        """An edit starting past the last line appends."""
        edit = Edit(
            content="x\n",
            location=Location(row=3, column=1),
            end_location=Location(row=3, column=1),
        )
        assert apply_edits("a\nb\n", [edit]) == "a\nb\nx\n"


class TestViolationFromJson:
    ITEM = {  # noqa: RUF012 - a read-only sample of ruff's JSON schema
        "cell": None,
        "code": "F401",
        "end_location": {"column": 10, "row": 1},
        "filename": "/abs/a.py",
        "fix": {
            "applicability": "safe",
            "edits": [
                {
                    "content": "",
                    "end_location": {"column": 1, "row": 2},
                    "location": {"column": 1, "row": 1},
                }
            ],
            "message": "Remove unused import: `os`",
        },
        "location": {"column": 8, "row": 1},
        "message": "`os` imported but unused",
        "name": "unused-import",
        "noqa_row": 1,
        "severity": "error",
        "url": "https://docs.astral.sh/ruff/rules/unused-import",
    }

    def test_fields_are_kept(self):
        """Code, name, locations, the fix and noqa_row are carried over."""
        v = violation_from_json(self.ITEM, "a.py", ["import os", ""])
        assert (v.code, v.name, v.rule, v.path) == ("F401", "unused-import", "F401", "a.py")
        assert v.location == Location(row=1, column=8)
        assert v.end_location == Location(row=1, column=10)
        assert v.noqa_row == 1
        assert v.applicability == "safe"
        assert v.fix is not None
        assert v.fix.edits[0].end_location == Location(row=2, column=1)
        assert v.fingerprint == fingerprint(
            "F401", "a.py", "`os` imported but unused", ["import os"]
        )

    def test_null_code_falls_back_to_name(self):
        """A rule without a code is known by its name, in `rule` and the fingerprint."""
        item = {**self.ITEM, "code": None, "fix": None}
        v = violation_from_json(item, "a.py", ["import os"])
        assert v.code is None
        assert v.rule == "unused-import"
        assert v.applicability is None
        assert v.fingerprint == fingerprint("unused-import", "a.py", v.message, ["import os"])

    def test_notebook_cell_does_not_read_file_lines(self):
        """Cell-relative rows do not index the file's lines; the fingerprint ignores them."""
        item = {**self.ITEM, "cell": 2}
        a = violation_from_json(item, "n.ipynb", ["{", '"cells": []'])
        b = violation_from_json(item, "n.ipynb", ["something else"])
        assert a.cell == 2
        assert a.fingerprint == b.fingerprint


class TestScope:
    """Identical lines in different functions get different fingerprints."""

    @pytest.mark.anyio
    async def test_two_bare_excepts(self, tmp_path):
        """A bare except in two functions: two fingerprints, each stable when code moves."""
        body = "def a():\n    try:\n        pass\n    except:\n        pass\n\n\n"
        body += body.replace("def a", "def b")
        ruff = Ruff(tmp_path, ("E722",))
        first = await ruff.lint_source("m.py", body.encode())
        moved = await ruff.lint_source("m.py", ("x = 1\n\n\n" + body).encode())
        fps = [v.fingerprint for v in first.violations]
        assert len(set(fps)) == 2
        assert [v.fingerprint for v in moved.violations] == fps

    def test_scope_of(self):
        """The nearest enclosing def or class header, '' at module level."""
        lines = ["class A:", "    def f(self):", "        if x:", "            y = 1", "z = 2"]
        assert scope_of(lines, 4) == "def f(self):"
        assert scope_of(lines, 2) == "class A:"
        assert scope_of(lines, 5) == ""

    def test_scope_table_is_scope_of_for_every_row(self):
        """The one-pass table gives what the walk up gives, on every row of real files."""
        for path in sorted((ROOT / "sandbox").glob("*.py")) + sorted((ROOT / "tests").glob("*.py")):
            lines = split_lines(path.read_text())
            assert scope_table(lines) == [scope_of(lines, r) for r in range(1, len(lines) + 1)]


class TestFingerprint:
    def test_strips_indentation(self):
        """Leading and trailing whitespace of the range's lines does not count."""
        assert fingerprint("F401", "a.py", "m", ["    import os  "]) == fingerprint(
            "F401", "a.py", "m", ["import os"]
        )

    def test_every_part_counts(self):
        """Rule, path, message and line content each change the fingerprint."""
        base = fingerprint("F401", "a.py", "m", ["x"])
        assert (
            len(
                {
                    base,
                    fingerprint("F811", "a.py", "m", ["x"]),
                    fingerprint("F401", "b.py", "m", ["x"]),
                    fingerprint("F401", "a.py", "n", ["x"]),
                    fingerprint("F401", "a.py", "m", ["y"]),
                }
            )
            == 5
        )

    def test_parts_do_not_run_together(self):
        """Moving text between parts gives a different fingerprint."""
        assert fingerprint("F4", "01a.py", "m", []) != fingerprint("F401", "a.py", "m", [])

    @pytest.mark.anyio
    async def test_stable_when_lines_shift_down(self, repo):
        """Lines inserted above a finding leave its fingerprint unchanged."""
        ruff = Ruff(repo)
        before = only(await ruff.lint_source("a.py", b"import os\n"), "F401")
        after = only(await ruff.lint_source("a.py", b'"""Doc."""\n\nx = 1\nimport os\n'), "F401")
        assert after.location.row == 4
        assert after.fingerprint == before.fingerprint

    @pytest.mark.anyio
    async def test_stable_when_reindented(self, repo):
        """Moving a finding into a deeper block of the same function keeps its fingerprint."""
        ruff = Ruff(repo)
        before = only(await ruff.lint_source("a.py", b"def f():\n    import os\n"), "F401")
        source = b"def f():\n    if True:\n        import os\n"
        after = only(await ruff.lint_source("a.py", source), "F401")
        assert after.fingerprint == before.fingerprint

    @pytest.mark.anyio
    async def test_two_findings_on_one_line_differ(self, repo):
        """Two findings on the same line have different fingerprints."""
        result = await Ruff(repo).lint_source("a.py", b"import os, sys\n", select=["F401"])
        assert len(result.violations) == 2
        assert len({v.fingerprint for v in result.violations}) == 2

    @pytest.mark.anyio
    async def test_identical_findings_count_twice(self, repo):
        """Two findings alike in every way count twice in the multiset."""
        result = await Ruff(repo).lint_source("a.py", b"x = 1; y = 2; z = 3\n", select=["E702"])
        assert list(fingerprints(result.violations).values()) == [2]
        assert result.counters() == {"a.py": fingerprints(result.violations)}

    @pytest.mark.anyio
    async def test_file_and_stdin_agree(self, repo):
        """Linting the file on disk and the same bytes in memory give the same fingerprints."""
        data = BOM_BYTES + b"import os\r\n\r\nx = 1; y = 2\r\n"
        (repo / "pkg").mkdir()
        (repo / "pkg" / "m.py").write_bytes(data)
        ruff = Ruff(repo)
        on_disk = await ruff.lint(["pkg/m.py"])
        in_memory = await ruff.lint_source("pkg/m.py", data)
        assert on_disk.counters() == in_memory.counters()
        assert sum(on_disk.counters()["pkg/m.py"].values()) == 2


@pytest.mark.anyio
class TestLint:
    async def test_code_and_name(self, repo):
        """A violation has ruff's code and name; `rule` is the code."""
        (repo / "a.py").write_text("import os\n")
        v = only(await Ruff(repo).lint(), "F401")
        assert v.code == "F401"
        assert v.name == "unused-import"
        assert v.message == "`os` imported but unused"

    async def test_name_only_rule_in_preview(self, tmp_path):
        """In preview a syntax error has no code: `rule` is its name."""
        config = ROOT_CONFIG.replace("[tool.ruff]", "[tool.ruff]\npreview = true")
        repo = make_repo(tmp_path, {"bad.py": "x = (\n"}, config)
        v = only(await Ruff(repo).lint(["bad.py"]), "invalid-syntax")
        assert v.code is None
        assert v.name == "invalid-syntax"

    async def test_paths_are_repo_relative_posix(self, repo):
        """Paths are relative to the checkout with forward slashes, whole-repo or by path."""
        make_repo(repo, {"pkg/sub/m.py": "import os\n", "top.py": "import sys\n"})
        ruff = Ruff(repo)
        everything = await ruff.lint()
        assert sorted(v.path for v in everything.violations) == ["pkg/sub/m.py", "top.py"]
        named = await ruff.lint(["pkg/sub/m.py"])
        assert [v.path for v in named.violations] == ["pkg/sub/m.py"]

    async def test_paths_relative_through_a_symlinked_root(self, repo, tmp_path):
        """A checkout reached through a symlink still yields repo-relative paths."""
        make_repo(repo, {"pkg/m.py": "import os\n"})
        link = tmp_path / "link"
        link.symlink_to(repo)
        result = await Ruff(link).lint(["pkg/m.py"])
        assert [v.path for v in result.violations] == ["pkg/m.py"]

    async def test_nested_config_closest_wins(self, repo):
        """A nested pyproject replaces the root's config for files under it."""
        long_line = "x = " + "1 + " * 20 + "1\n"
        nested = '[tool.ruff]\nline-length = 40\n\n[tool.ruff.lint]\nselect = ["E501"]\n'
        make_repo(repo, {"sub/pyproject.toml": nested, "sub/m.py": "import os\n" + long_line})
        (repo / "top.py").write_text("import os\n" + long_line)
        result = (await Ruff(repo).lint()).by_path()
        assert rules(result["sub/m.py"]) == ["E501"]  # no F401: the root's select is gone
        assert rules(result["top.py"]) == ["F401"]  # 85 columns fit the root's 100

    async def test_select_overrides_config(self, repo):
        """The run's selection replaces the config's, and a call's replaces the run's."""
        (repo / "a.py").write_text("import os\nx = 1; y = 2\n")
        assert rules((await Ruff(repo).lint()).violations) == ["F401", "E702"]
        ruff = Ruff(repo, select=("E702",))
        assert rules((await ruff.lint()).violations) == ["E702"]
        assert rules((await ruff.lint(select=["F401"])).violations) == ["F401"]
        assert rules((await ruff.lint_source("a.py", b"import os\n")).violations) == []

    async def test_ignore_noqa_reveals_hidden_findings(self, repo):
        """A finding hidden by `# noqa` or `# ruff: ignore` shows with ignore_noqa."""
        (repo / "a.py").write_text("import os  # noqa: F401\nimport sys  # ruff: ignore[F401]\n")
        ruff = Ruff(repo)
        assert (await ruff.lint(["a.py"])).violations == []
        revealed = await ruff.lint(["a.py"], ignore_noqa=True)
        assert rules(revealed.violations) == ["F401", "F401"]
        data = (repo / "a.py").read_bytes()
        assert (await ruff.lint_source("a.py", data)).violations == []
        assert len((await ruff.lint_source("a.py", data, ignore_noqa=True)).violations) == 2

    async def test_excluded_file_is_skipped_even_when_named(self, repo):
        """An excluded file named explicitly is not linted (--force-exclude)."""
        make_repo(repo, {"gen_models.py": "import os\n", "a.py": "import sys\n"})
        ruff = Ruff(repo)
        result = await ruff.lint(["gen_models.py", "a.py"])
        assert [v.path for v in result.violations] == ["a.py"]
        assert [v.path for v in (await ruff.lint()).violations] == ["a.py"]
        assert (await ruff.lint_source("gen_models.py", b"import os\n")).violations == []

    async def test_missing_path_is_reported_as_failed(self, repo):
        """A path ruff cannot read shows in `failed` when E902 is not selected."""
        (repo / "a.py").write_text("import os\n")
        result = await Ruff(repo).lint(["nope.py", "a.py"], select=["F"])
        assert rules(result.violations) == ["F401"]
        assert len(result.failed) == 1
        assert "Failed to lint nope.py" in result.failed[0]

    async def test_missing_path_with_e902_selected_is_a_violation(self, repo):
        """With E902 selected, a missing file is a finding instead of a warning."""
        result = await Ruff(repo).lint(["nope.py"], select=["E902"])
        assert result.failed == []
        assert [(v.rule, v.path) for v in result.violations] == [("E902", "nope.py")]

    async def test_clean_file_has_nothing(self, repo):
        """A clean file gives no violations and no failures."""
        (repo / "a.py").write_text("x = 1\n")
        assert await Ruff(repo).lint(["a.py"]) == LintResult([], [])

    async def test_stdin_uses_the_config_of_its_path(self, repo):
        """In-memory content is linted under the nested config of the path it claims."""
        nested = '[lint]\nselect = ["E702"]\n'
        make_repo(repo, {"sub/ruff.toml": nested})
        ruff = Ruff(repo)
        source = b"import os\nx = 1; y = 2\n"
        assert rules((await ruff.lint_source("sub/m.py", source)).violations) == ["E702"]
        assert rules((await ruff.lint_source("m.py", source)).violations) == ["F401", "E702"]


@pytest.mark.anyio
class TestFixSource:
    async def test_keeps_bom_and_crlf(self, repo):
        """ruff's fixes on content in memory keep a BOM and CRLF line endings."""
        data = BOM_BYTES + b"import os\r\nimport sys\r\n\r\nprint(sys)\r\n"
        fixed = await Ruff(repo).fix_source("a.py", data, select=["F401"])
        assert fixed == BOM_BYTES + b"import sys\r\n\r\nprint(sys)\r\n"

    async def test_unsafe_fixes_only_when_asked(self, repo):
        """An unsafe fix (F841) is applied only with unsafe=True."""
        data = b"def f():\n    x = 1\n    return 2\n"
        ruff = Ruff(repo)
        assert await ruff.fix_source("a.py", data, select=["F841"]) == data
        assert await ruff.fix_source("a.py", data, select=["F841"], unsafe=True) == (
            b"def f():\n    return 2\n"
        )

    async def test_only_selected_rules_are_fixed(self, repo):
        """Fixes outside the selection are left alone."""
        data = b"import os\nx = f'a'\n"
        assert await Ruff(repo).fix_source("a.py", data, select=["F541"]) == b"import os\nx = 'a'\n"

    async def test_excluded_path_is_returned_unchanged(self, repo):
        """Content claiming an excluded path comes back as it was."""
        data = b"import os\n"
        assert await Ruff(repo).fix_source("gen_x.py", data, select=["F401"]) == data


def count_runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """The ruff processes a Ruff starts from now on, as a list that fills as they run."""
    runs: list[tuple[object, ...]] = []
    real = Ruff._run

    async def counted(self, *args, **kwargs):
        runs.append(args)
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(Ruff, "_run", counted)
    return runs


@pytest.mark.anyio
class TestFormatSource:
    async def test_keeps_bom(self, repo):
        """The BOM ruff format drops is put back; CRLF is kept."""
        data = BOM_BYTES + b"x=1\r\ny = [1,2]\r\n"
        formatted = await Ruff(repo).format_source("a.py", data)
        assert formatted == BOM_BYTES + b"x = 1\r\ny = [1, 2]\r\n"

    async def test_without_bom_adds_none(self, repo):
        """A file without a BOM does not gain one."""
        assert await Ruff(repo).format_source("a.py", b"x=1\n") == b"x = 1\n"

    async def test_unparsable_source_is_returned_unchanged(self, repo):
        """Source ruff cannot parse comes back untouched instead of failing the run."""
        data = b"def f(:\n    pass\n"
        assert await Ruff(repo).format_source("a.py", data) == data

    async def test_format_lines_touches_only_those_lines(self, repo):
        """Rows 2 and 4 are formatted (bottom up), row 3 and the BOM are kept as they were."""
        data = BOM_BYTES + b"a=1\nb=[1,2]\nc=[3,4]\nd=[5,6]\n"
        formatted = await Ruff(repo).format_lines("a.py", data, [4, 2])
        assert formatted == BOM_BYTES + b"a=1\nb = [1, 2]\nc=[3,4]\nd = [5, 6]\n"

    async def test_format_lines_of_a_notebook_is_no_error(self, repo):
        """ruff formats no range of a notebook: its content comes back as it was."""
        data = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'
        assert await Ruff(repo).format_lines("a.ipynb", data, [1]) == data

    async def test_a_lone_line_is_wrapped_once(self, repo, monkeypatch):
        """The same long line elsewhere is wrapped from memory, exactly as ruff wraps it."""
        long = b"value = call(" + b", ".join(b"argument_%d" % i for i in range(12)) + b")\n"
        ruff = Ruff(repo)
        first = await ruff.format_lines("a.py", b"x=1\n" + long, [2])
        assert first.startswith(b"x=1\nvalue = call(\n")
        runs = count_runs(monkeypatch)
        second = await ruff.format_lines("a.py", b"y=2\n\n" + long + b"z=3\n", [3])
        assert runs == []
        assert second == b"y=2\n\n" + first.removeprefix(b"x=1\n") + b"z=3\n"

    async def test_many_statements_take_one_run_and_read_as_ranges_would(self, repo, monkeypatch):
        """Three long statements (one the last of a method, which ends on its line): one
        `ruff format` run, and the same lines as three `--range` runs make, the rest of
        the file untouched."""
        long = b"call(" + b", ".join(b"argument_%d" % i for i in range(12)) + b")"
        data = (
            b"x=1\nvalue = " + long + b"\n\n\nclass T:\n    def a(self):\n"
            b"        y={'a':1}\n        other = " + long + b"\n\n\nlast = " + long + b"\n"
        )
        rows = [2, 8, 11]
        ruff = Ruff(repo)
        WRAPPED.clear()
        by_range = data
        for row in sorted(rows, reverse=True):
            by_range = await ruff.format_lines("a.py", by_range, [row])
        assert by_range.startswith(b"x=1\nvalue = call(\n")
        assert b"        y={'a':1}\n        other = call(\n" in by_range
        assert b"\nlast = call(\n" in by_range
        WRAPPED.clear()
        runs = count_runs(monkeypatch)
        assert await ruff.format_lines("a.py", data, rows) == by_range
        assert len(runs) == 1

    async def test_a_statement_sharing_its_line_is_formatted_as_a_range(self, repo):
        """`x=1; value = call(...)`: the line's other statement is kept."""
        long = b"call(" + b", ".join(b"argument_%d" % i for i in range(12)) + b")"
        data = b"x=1; value = " + long + b"\nlast = " + long + b"\n"
        formatted = await Ruff(repo).format_lines("a.py", data, [1, 2])
        assert formatted.startswith(b"x = 1\nvalue = call(\n")
        assert formatted.count(b"argument_11") == 2

    async def test_a_statement_ending_on_the_line_is_kept_too(self, repo):
        """`x = f(a,` / `b); value = call(...)`: x ends on value's line without holding it,
        so value's lines are not taken from the whole file's formatting (that would drop
        `b);`), and `--range` refuses to touch x: the line stays as it was."""
        long = b"call(" + b", ".join(b"argument_%d" % i for i in range(12)) + b")"
        data = b"x = f(a,\n  b); value = " + long + b"\nlast = " + long + b"\n"
        formatted = await Ruff(repo).format_lines("a.py", data, [2, 3])
        assert formatted.count(b"argument_11") == 2
        assert formatted.startswith(b"x = f(a,\n  b); value = call(argument_0, ")
        assert b"\nlast = call(\n" in formatted

    async def test_a_statement_after_a_clause_keeps_its_clause(self, repo):
        """`else: x = call(...)`, indented as ruff would indent x (8 spaces a level, where
        ruff indents 4): its line holds `else:`, so x is not taken from the whole file's
        formatting (that dropped the `else:`, and x ran whatever c was)."""
        long = b"call(" + b", ".join(b"argument_%d" % i for i in range(12)) + b")"
        data = b"def f(c):\n        if c:\n                pass\n        else: x = " + long
        data += b"\n        y = " + long + b"\n"
        formatted = await Ruff(repo).format_lines("a.py", data, [4, 5])
        assert ast.dump(ast.parse(formatted)) == ast.dump(ast.parse(data))

    async def test_a_statement_begun_above_ends_the_wrapping(self, repo):
        """Row 5 closes a call begun on row 2, formatted whole into one line: row 3 now
        holds a line no fix touched, and it is not formatted."""
        data = b"y=0\nvalue = call(a,\n  b,\n  c,\n  d)\nz=[1,2]\n"
        formatted = await Ruff(repo).format_lines("a.py", data, [3, 5])
        assert formatted == b"y=0\nvalue = call(a, b, c, d)\nz=[1,2]\n"

    async def test_a_block_ruff_would_reindent_is_left_alone(self, repo):
        """Two-space indentation: ruff would reformat the whole class, so nothing changes."""
        long = b"    value = call(" + b", ".join(b"argument_%d" % i for i in range(12)) + b")\n"
        data = b"class T:\n  def a(self):\n    x = {'a':1}\n\n  def b(self):\n" + long
        assert await Ruff(repo).format_lines("a.py", data, [6]) == data

    async def test_fmt_off_is_honoured_whatever_was_wrapped_before(self, repo):
        """The same long line, wrapped outside `# fmt: off` and left as it is inside."""
        long = b"value = call(" + b", ".join(b"argument_%d" % i for i in range(12)) + b")\n"
        ruff = Ruff(repo)
        wrapped = await ruff.format_lines("a.py", long, [1])
        assert wrapped != long
        data = b"# fmt: off\n" + long + b"# fmt: on\n" + long
        assert await ruff.format_lines("a.py", data, [2, 4]) == data.removesuffix(long) + wrapped

    async def test_format_lines_of_unparsable_source(self, repo):
        """Source ruff cannot parse comes back untouched."""
        data = b"def f(:\n    x=1\n"
        assert await Ruff(repo).format_lines("a.py", data, [2]) == data


@pytest.mark.anyio
class TestUnformatted:
    async def test_bom_only_difference_does_not_count(self, repo):
        """A formatted file whose only 'difference' is its BOM is clean."""
        (repo / "bom.py").write_bytes(BOM_BYTES + b"x = 1\n")
        assert await Ruff(repo).unformatted(["bom.py"]) == set()

    async def test_badly_formatted_files_count(self, repo):
        """Badly formatted files are reported by repo-relative path, clean ones not."""
        make_repo(
            repo,
            {
                "clean.py": b"x = 1\n",
                "pkg/ugly.py": b"x=1\n",
                "bom_ugly.py": BOM_BYTES + b"x=1\n",
                "with space.py": b"y  =  2\n",
            },
        )
        found = await Ruff(repo).unformatted(
            ["clean.py", "pkg/ugly.py", "bom_ugly.py", "with space.py"]
        )
        assert found == {"pkg/ugly.py", "bom_ugly.py", "with space.py"}

    async def test_unparsable_file_counts_without_failing(self, repo):
        """A file ruff cannot parse is not format-clean, and the others are still judged."""
        make_repo(repo, {"broken.py": b"x = (\n", "ugly.py": b"x=1\n", "clean.py": b"x = 1\n"})
        found = await Ruff(repo).unformatted(["broken.py", "ugly.py", "clean.py"])
        assert found == {"broken.py", "ugly.py"}

    async def test_excluded_file_is_skipped(self, repo):
        """An excluded file is not judged (--force-exclude)."""
        (repo / "gen_x.py").write_bytes(b"x=1\n")
        assert await Ruff(repo).unformatted(["gen_x.py"]) == set()

    async def test_no_paths_no_work(self, repo):
        """No paths means an empty answer."""
        assert await Ruff(repo).unformatted([]) == set()


@pytest.mark.anyio
class TestToolError:
    @pytest.fixture
    def pinned(self, tmp_path: Path) -> Path:
        """A repo whose ruff config requires a ruff version nobody has."""
        config = ROOT_CONFIG.replace("[tool.ruff]", '[tool.ruff]\nrequired-version = "==0.1.0"')
        return make_repo(tmp_path, {"a.py": "import os\n"}, config)

    async def test_required_version_mismatch_on_lint(self, pinned):
        """A required-version mismatch is a ToolError with one readable line."""
        with pytest.raises(ToolError) as caught:
            await Ruff(pinned).lint()
        message = str(caught.value)
        assert "\n" not in message
        assert "Required version `==0.1.0` does not match" in message

    async def test_required_version_mismatch_everywhere(self, pinned):
        """Every ruff call fails the same way, not with findings or empty output."""
        ruff = Ruff(pinned)
        calls = [
            ruff.lint_source("a.py", b"import os\n"),
            ruff.fix_source("a.py", b"import os\n"),
            ruff.format_source("a.py", b"x=1\n"),
            ruff.unformatted(["a.py"]),
        ]
        for call in calls:
            with pytest.raises(ToolError, match="Required version"):
                await call

    async def test_large_stdin_still_gives_tool_error(self, pinned):
        """ruff quitting before reading a big input is still a ToolError, not a pipe error."""
        with pytest.raises(ToolError, match="Required version"):
            await Ruff(pinned).lint_source("a.py", b"x = 1\n" * 200_000)

    async def test_bad_config_file(self, tmp_path):
        """A config ruff cannot parse is a one-line ToolError that says why."""
        repo = make_repo(tmp_path, {"a.py": "x = 1\n"}, "[tool.ruff\n")
        with pytest.raises(ToolError, match="Failed to parse") as caught:
            await Ruff(repo).lint()
        message = str(caught.value)
        assert "\n" not in message
        assert "line 1, column 11" in message
        assert "unclosed table" in message

    async def test_bad_config_is_not_taken_for_a_parse_error(self, tmp_path):
        """format calls, which tolerate unparsable source, still fail on a broken config."""
        repo = make_repo(tmp_path, {"a.py": "x=1\n"}, "[tool.ruff\n")
        ruff = Ruff(repo)
        with pytest.raises(ToolError, match="unclosed table"):
            await ruff.format_source("a.py", b"x=1\n")
        with pytest.raises(ToolError, match="unclosed table"):
            await ruff.unformatted(["a.py"])

    async def test_bad_nested_config_names_file_and_reason(self, repo):
        """A broken nested config names that file and ruff's reason on one line."""
        make_repo(repo, {"sub/ruff.toml": '[tool.ruff.lint]\nselect = ["E"]\n'})
        with pytest.raises(ToolError) as caught:
            await Ruff(repo).lint_source("sub/m.py", b"x = 1\n")
        message = str(caught.value)
        assert "\n" not in message
        assert "sub/ruff.toml" in message
        assert "unknown field `tool`" in message

    async def test_hung_ruff_times_out(self, repo, tmp_path):
        """A ruff that never answers (here a real script that sleeps) is a ToolError."""
        hung = tmp_path / "hung-ruff"
        hung.write_text("#!/bin/sh\nsleep 20\n")
        hung.chmod(0o755)
        with pytest.raises(ToolError, match=r"timed out after 0\.5 s"):
            await Ruff(repo, executable=str(hung), timeout=0.5).lint()

    async def test_unknown_selector(self, repo):
        """An unknown rule in the selection is a ToolError naming it."""
        with pytest.raises(ToolError, match="XYZ999"):
            await Ruff(repo, select=("XYZ999",)).lint()


class TestVersion:
    def test_version_is_the_pinned_ruff(self, repo):
        """version() is the bare version of the bundled ruff, in the 0.17 series."""
        version = anyio.run(Ruff(repo).version)
        assert re.fullmatch(r"0\.17\.\d+", version)
        cli = subprocess.run(
            [default_ruff(), "--version"], capture_output=True, text=True, check=True
        )
        assert cli.stdout.split() == ["ruff", version]


class TestRepoConfigCannotWrite:
    """A repo's ruff config never turns a lint into a rewrite."""

    @pytest.mark.anyio
    async def test_fix_true_in_config_is_not_applied(self, tmp_path):
        """`fix = true` (as pallets projects set it) leaves the files untouched by lint."""
        (tmp_path / "pyproject.toml").write_text(
            '[tool.ruff]\nfix = true\n[tool.ruff.lint]\nselect = ["F401"]\n'
        )
        (tmp_path / "m.py").write_text("import os\n")
        ruff = Ruff(tmp_path)
        result = await ruff.lint()
        assert [v.rule for v in result.violations] == ["F401"]
        assert (tmp_path / "m.py").read_text() == "import os\n"
        assert [v.rule for v in (await ruff.lint_source("m.py", b"import os\n")).violations] == [
            "F401"
        ]

    @pytest.mark.anyio
    async def test_unsafe_fixes_true_in_config_stays_out_of_safe_fixes(self, tmp_path):
        """`unsafe-fixes = true` in the repo does not make a safe fix step apply unsafe fixes."""
        (tmp_path / "pyproject.toml").write_text(
            '[tool.ruff]\nunsafe-fixes = true\n[tool.ruff.lint]\nselect = ["E711"]\n'
        )
        source = b"def f(x):\n    return x == None\n"
        ruff = Ruff(tmp_path)
        assert await ruff.fix_source("m.py", source) == source
        assert b"is None" in await ruff.fix_source("m.py", source, unsafe=True)


@pytest.mark.anyio
class TestParsePython:
    def test_a_hostile_nesting_is_no_crash(self):
        """A deeply nested expression makes the parser raise MemoryError: None, not a crash."""
        deep = "x = " + "-" * 200_000 + "1\n"
        assert parse_python(deep) is None
        assert parse_python("x = 1\n") is not None

    def test_a_source_read_again_is_not_parsed_again(self):
        """The same text gives the same tree, kept from the last parse (a few are kept)."""
        source = "def f():\n    return 1\n"
        first = parse_python(source)
        assert parse_python(source) is first
        for n in range(16):
            parse_python(f"x = {n}\n")
        assert parse_python(source) is not first

    async def test_format_lines_of_such_a_file_leaves_it(self, repo):
        """The statement finder sees no statement there, so nothing is formatted."""
        data = ("x = " + "-" * 200_000 + "1\n").encode()
        assert await Ruff(repo).format_lines("a.py", data, [1]) == data
