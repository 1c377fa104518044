"""orchestrator._ci: what stayed unfixed, rendered for GitHub, GitLab and plain JSON, and
published to a GitHub Actions step's summary and outputs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import fixbot, init_repo

from fixbot.orchestrator._ci import publish_to_github_actions, render_unfixed
from fixbot.sandbox import ConfigError, Location, Violation


def finding(
    rule: str = "F401",
    path: str = "pkg/m.py",
    row: int = 1,
    column: int = 1,
    message: str = "`os` imported but unused",
    fp: str = "",
) -> Violation:
    """A finding of `rule` at `row`:`column`, its fingerprint given outright."""
    return Violation(
        code=rule,
        name=rule.lower(),
        message=message,
        path=path,
        location=Location(row, column),
        end_location=Location(row, column + 2),
        fingerprint=fp or f"fp-{rule}-{path}-{message}",
    )


def parse_workflow_command(line: str) -> tuple[str, dict[str, str], str]:
    """Split `::name k=v,k=v::data` and undo GitHub's escaping, as the runner does."""

    def unescape(text: str) -> str:
        for escaped, plain in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ",")):
            text = text.replace(escaped, plain)
        return text.replace("%25", "%")

    assert line.startswith("::")
    head, data = line[2:].split("::", 1)
    name, _, props = head.partition(" ")
    pairs = dict(p.split("=", 1) for p in props.split(",")) if props else {}
    return name, {k: unescape(v) for k, v in pairs.items()}, unescape(data)


def parse_github_output(text: str) -> dict[str, str]:
    """Read a GITHUB_OUTPUT file as the runner does: `name=value` or `name<<DELIM` blocks."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            assert delimiter, "a heredoc needs a delimiter"
            body: list[str] = []
            while lines[i] != delimiter:  # IndexError: the delimiter never came
                body.append(lines[i])
                i += 1
            i += 1
            out[name] = "\n".join(body)
        else:
            name, value = line.split("=", 1)
            out[name] = value
    return out


def actions_env(tmp_path: Path) -> dict[str, str]:
    """The variables a GitHub Actions runner sets, pointing at files under `tmp_path`."""
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
    }


class TestGithubFormat:
    def test_one_warning_per_violation_with_location(self) -> None:
        """Each violation becomes one `::warning` command naming file, range and rule."""
        v = finding(row=3, column=5)
        (line,) = render_unfixed([v], "github").splitlines()
        assert line == (
            "::warning file=pkg/m.py,line=3,col=5,endLine=3,endColumn=7,"
            "title=fixbot F401::F401 `os` imported but unused"
        )

    def test_message_and_path_are_escaped(self) -> None:
        """`%`, newlines, `,` and `:` are escaped as GitHub's toolkit escapes them."""
        v = finding(path="odd:dir,x/m%.py", message="100% wrong,\r\nsee: here")
        text = render_unfixed([v], "github")
        assert text.count("\n") == 1
        line = text.rstrip("\n")
        assert "file=odd%3Adir%2Cx/m%25.py," in line
        assert line.endswith("::F401 100%25 wrong,%0D%0Asee: here")
        name, props, data = parse_workflow_command(line)
        assert (name, props["file"], props["title"]) == ("warning", v.path, "fixbot F401")
        assert data == f"F401 {v.message}"

    def test_notebook_cell_is_named(self) -> None:
        """A notebook's rows count from its cell, so the message says which cell."""
        v = finding(path="nb.ipynb")
        nb = dataclasses.replace(v, cell=2)
        assert render_unfixed([nb], "github").rstrip().endswith("::F401 cell 2: " + v.message)

    def test_nothing_unfixed_prints_nothing(self) -> None:
        """No violations: no commands at all."""
        assert render_unfixed([], "github") == ""


class TestGitlabFormat:
    def test_every_required_field(self) -> None:
        """Each issue has description, check_name, fingerprint, severity and location."""
        issues = json.loads(render_unfixed([finding(row=4), finding("E501", row=9)], "gitlab"))
        assert [i["check_name"] for i in issues] == ["F401", "E501"]
        for issue in issues:
            assert set(issue) >= {"description", "check_name", "fingerprint", "severity"}
            assert issue["severity"] == "minor"
            assert issue["check_name"] in issue["description"]
            assert isinstance(issue["fingerprint"], str)
            assert issue["fingerprint"]
            assert issue["location"]["path"] == "pkg/m.py"
        assert [i["location"]["lines"]["begin"] for i in issues] == [4, 9]

    def test_fingerprints_unique_and_stable(self) -> None:
        """Fingerprints differ between findings, even identical ones, and repeat across calls."""
        twins = [finding(row=2, fp="same"), finding(row=8, fp="same")]
        violations = [*twins, finding("E501", row=2), finding(path="other.py", row=2)]
        first = [i["fingerprint"] for i in json.loads(render_unfixed(violations, "gitlab"))]
        again = [i["fingerprint"] for i in json.loads(render_unfixed(violations[::-1], "gitlab"))]
        assert len(set(first)) == len(first) == 4
        assert first == again

    def test_fingerprint_survives_a_line_shift(self) -> None:
        """The same finding two lines lower keeps its fingerprint: lines are not its identity."""
        (before,) = json.loads(render_unfixed([finding(row=3, fp="x")], "gitlab"))
        (after,) = json.loads(render_unfixed([finding(row=5, fp="x")], "gitlab"))
        assert before["fingerprint"] == after["fingerprint"]

    def test_fingerprint_follows_the_chain_identity(self) -> None:
        """A finding whose line a fix rewrote keeps the fingerprint of where its chain began."""
        (base,) = json.loads(render_unfixed([finding(fp="p")], "gitlab"))
        rewritten = dataclasses.replace(finding(fp="p2"), origin="p")
        (after,) = json.loads(render_unfixed([rewritten], "gitlab"))
        assert base["fingerprint"] == after["fingerprint"]

    def test_nothing_unfixed_is_an_empty_report(self) -> None:
        """No violations: an empty list GitLab still accepts."""
        assert json.loads(render_unfixed([], "gitlab")) == []


class TestJsonFormat:
    def test_plain_objects(self) -> None:
        """Each violation is {rule, path, line, column, message} and nothing else."""
        (entry,) = json.loads(render_unfixed([finding(row=7, column=3)], "json"))
        assert entry == {
            "rule": "F401",
            "path": "pkg/m.py",
            "line": 7,
            "column": 3,
            "message": "`os` imported but unused",
        }

    def test_unknown_format_is_refused(self) -> None:
        """A format fixbot does not know is a ValueError, not an empty report."""
        with pytest.raises(ValueError, match="unknown CI format"):
            render_unfixed([finding()], "sarif")  # type: ignore[arg-type]


class TestOrdering:
    def test_path_line_column_rule(self) -> None:
        """Every format orders by path, then line, column and rule, whatever the input order."""
        expected = [
            ("a.py", 2, 1, "E501"),
            ("a.py", 2, 1, "F401"),
            ("a.py", 2, 4, "E501"),
            ("a.py", 10, 1, "E501"),
            ("b.py", 1, 1, "F401"),
        ]
        shuffled = [expected[i] for i in (4, 1, 3, 0, 2)]
        violations = [finding(rule, path, row, col) for path, row, col, rule in shuffled]
        plain = json.loads(render_unfixed(violations, "json"))
        assert [(e["path"], e["line"], e["column"], e["rule"]) for e in plain] == expected
        gitlab = json.loads(render_unfixed(violations, "gitlab"))
        assert [(i["location"]["path"], i["check_name"]) for i in gitlab] == [
            (path, rule) for path, _, _, rule in expected
        ]
        github = [
            parse_workflow_command(x)[1]
            for x in render_unfixed(violations, "github").split("\n")
            if x
        ]
        assert [(p["file"], int(p["line"]), int(p["col"])) for p in github] == [
            (path, row, col) for path, row, col, _ in expected
        ]


class TestPublishToGithubActions:
    def test_outputs_read_back_by_a_parser(self, tmp_path: Path) -> None:
        """GITHUB_OUTPUT holds heredoc blocks a parser of GitHub's syntax reads back exactly."""
        env = actions_env(tmp_path)
        (tmp_path / "output").write_text("earlier=kept\n")
        outputs = {
            "unfixed": "3",
            "report": "line one\nline two: with = and <<\n\nlast\n",
            "empty": "",
        }
        written = publish_to_github_actions(env, summary="## fixbot", outputs=outputs)
        assert written == [env["GITHUB_STEP_SUMMARY"], env["GITHUB_OUTPUT"]]
        parsed = parse_github_output((tmp_path / "output").read_text(encoding="utf-8"))
        assert parsed == {"earlier": "kept", **outputs}

    def test_delimiter_is_random(self, tmp_path: Path) -> None:
        """Two writes of one value use different delimiters, so a value cannot guess one."""
        env = actions_env(tmp_path)
        for _ in range(2):
            publish_to_github_actions(env, summary="", outputs={"x": "v"})
        heads = [x for x in (tmp_path / "output").read_text().splitlines() if "<<" in x]
        assert len(heads) == 2
        assert heads[0] != heads[1]

    def test_summary_is_appended(self, tmp_path: Path) -> None:
        """The markdown summary goes after what the step wrote before, ending in a newline."""
        env = actions_env(tmp_path)
        (tmp_path / "summary.md").write_text("# before\n")
        publish_to_github_actions(env, summary="## fixbot\n\n| a | b |", outputs={})
        text = (tmp_path / "summary.md").read_text()
        assert text == "# before\n## fixbot\n\n| a | b |\n"
        assert not (tmp_path / "output").exists()

    @pytest.mark.parametrize("actions", [None, "false", "1"])
    def test_nothing_written_outside_actions(self, tmp_path: Path, actions: str | None) -> None:
        """Without GITHUB_ACTIONS=true no file is touched, even where the others are set."""
        env = actions_env(tmp_path)
        if actions is None:
            del env["GITHUB_ACTIONS"]
        else:
            env["GITHUB_ACTIONS"] = actions
        assert publish_to_github_actions(env, summary="s", outputs={"a": "b"}) == []
        assert list(tmp_path.iterdir()) == []

    def test_missing_variables_are_skipped(self, tmp_path: Path) -> None:
        """A missing or empty file variable skips that file and raises nothing."""
        env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": ""}
        assert publish_to_github_actions(env, summary="s", outputs={"a": "b"}) == []
        env["GITHUB_OUTPUT"] = str(tmp_path / "output")
        assert publish_to_github_actions(env, summary="s", outputs={"a": "b"}) == [
            env["GITHUB_OUTPUT"]
        ]

    def test_unwritable_summary_is_a_config_error(self, tmp_path: Path) -> None:
        """A GITHUB_STEP_SUMMARY that cannot be written ends in one clear ConfigError line."""
        env = actions_env(tmp_path)
        # A folder, not a file: unwritable even for root, unlike a chmod.
        env["GITHUB_STEP_SUMMARY"] = str(tmp_path)
        with pytest.raises(ConfigError, match="cannot write GITHUB_STEP_SUMMARY") as caught:
            publish_to_github_actions(env, summary="s", outputs={})
        assert "\n" not in str(caught.value)
        assert str(tmp_path) in str(caught.value)

    def test_bad_output_name_writes_nothing(self, tmp_path: Path) -> None:
        """An output name the syntax cannot carry is refused before any file is touched."""
        env = actions_env(tmp_path)
        with pytest.raises(ValueError, match="output name"):
            publish_to_github_actions(env, summary="s", outputs={"a<<b": "v"})
        assert list(tmp_path.iterdir()) == []


class TestInARun:
    """`fixbot run` in a CI job: annotations, step summary and outputs, the exit code."""

    FILES: ClassVar[dict[str, str]] = {
        "pkg/__init__.py": "",
        "pkg/core.py": (
            "import os\n\n\ndef f(x):\n    try:\n        return x\n    except:\n        pass\n"
        ),
        "pyproject.toml": '[tool.ruff.lint]\nselect = ["F401", "E722"]\n',
    }

    def test_github_actions(self, tmp_path: Path) -> None:
        """One annotation for the bare except; the summary is report.md; outputs name the branch."""
        repo = init_repo(tmp_path / "repo", self.FILES, venv=False)
        summary, outputs = tmp_path / "summary.md", tmp_path / "outputs.txt"
        env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_OUTPUT": str(outputs),
        }
        done = fixbot(
            "run", repo, "--test-cmd", "", "--branch", "lint", "--output-format", "github", env=env
        )
        assert done.returncode == 0, done.stderr
        annotations = [ln for ln in done.stdout.splitlines() if ln.startswith("::warning ")]
        assert len(annotations) == 1
        # Lines as they are on the branch, once F401's fix has landed above.
        assert "file=pkg/core.py,line=4" in annotations[0]
        assert "E722" in annotations[0]
        assert summary.read_text().startswith("## fixbot: proven lint fixes")
        written = parse_github_output(outputs.read_text())
        assert written["branch"] == "lint"
        assert written["accepted"] == "1"
        assert written["report"].endswith("report.md")

    def test_gitlab_code_quality_file_and_fail_on_unfixed(self, tmp_path: Path) -> None:
        """--output-file gets the Code Quality JSON; --fail-on-unfixed exits 1 for the debt."""
        repo = init_repo(tmp_path / "repo", self.FILES, venv=False)
        out = tmp_path / "gl-code-quality-report.json"
        args = ("run", repo, "--test-cmd", "", "--dry-run", "--output-format", "gitlab")
        done = fixbot(*args, "--output-file", out, "--fail-on-unfixed")
        assert done.returncode == 1, done.stderr
        report = json.loads(out.read_text())
        assert [r["check_name"] for r in report] == ["E722"]
        assert fixbot(*args, "--output-file", out).returncode == 0
