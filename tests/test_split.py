"""--split-by: one branch and one PR per rule, folder or code owner, each green alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import checkout_tests, fixbot, git, init_repo, report_of
from fake_forge import FakeForge
from fake_forge import fake_forge as _fake_forge

from fixbot.orchestrator._codeowners import CodeOwners
from fixbot.orchestrator._split import Group, _distinct_slugs, changed_lines, hunks_onto

fake_forge = _fake_forge  # a plain import of the fixture trips ruff's F401/F811

FILES = {
    "api/__init__.py": "",
    "api/views.py": (
        "import os\n\n\ndef view(x):\n    if x == None:\n        return []\n    return [x]\n"
    ),
    "core/__init__.py": "",
    "core/calc.py": "import sys\n\n\ndef double(xs):\n    return [x * 2 for x in xs]\n",
    "tests/test_all.py": (
        "from api.views import view\nfrom core.calc import double\n\n\n"
        "def test_view():\n    assert view(None) == []\n    assert view(1) == [1]\n\n\n"
        "def test_double():\n    assert double([1]) == [2]\n"
    ),
    ".github/CODEOWNERS": "* @alice\n/core/ @bob @owner/reviewers\n",
    "pyproject.toml": (
        '[tool.ruff.lint]\nselect = ["F401", "E711"]\n'
        "[tool.pytest.ini_options]\npythonpath = ['.']\n"
    ),
}


class TestCodeOwners:
    """GitHub's CODEOWNERS syntax, as its documentation's examples read."""

    TEXT = """
# comment
*       @global-owner1 @global-owner2
*.js    @js-owner #This is an inline comment.
*.go docs@example.com
/build/logs/ @doctocat
docs/*  docs@example.com
apps/ @octocat
/docs/ @doctocat
/scripts/ @doctocat @octocat
**/logs @octocat
/apps/github
"""

    @pytest.mark.parametrize(
        ("path", "owners"),
        [
            ("README.md", ("@global-owner1", "@global-owner2")),
            ("src/app.js", ("@js-owner",)),
            ("main.go", ("docs@example.com",)),
            ("build/logs/x.txt", ("@octocat",)),  # `**/logs` comes later
            ("build/x.txt", ("@global-owner1", "@global-owner2")),
            ("docs/getting-started.md", ("@doctocat",)),
            ("src/apps/x.py", ("@octocat",)),
            ("deep/logs/app.log", ("@octocat",)),
            ("apps/github/x.py", ()),
            ("scripts/run.sh", ("@doctocat", "@octocat")),
        ],
    )
    def test_last_match_wins(self, path: str, owners: tuple[str, ...]) -> None:
        """The last matching line names the owners; a line without owners unassigns."""
        assert CodeOwners.parse(self.TEXT).owners(path) == owners

    def test_folder_star_owns_direct_files_only(self) -> None:
        """`docs/*` owns docs/a.md, not docs/sub/b.md."""
        rules = CodeOwners.parse("* @all\ndocs/* @docs\n")
        assert rules.owners("docs/a.md") == ("@docs",)
        assert rules.owners("docs/sub/b.md") == ("@all",)


def test_group_names_never_share_a_branch() -> None:
    """`pkg/x` and `pkg-x`, `.` and `root`: distinct branches; odd owners make safe names."""
    groups = [Group(k, []) for k in ("pkg/x", "pkg-x", ".", "root", "@a/../../b", "@x.lock")]
    _distinct_slugs(groups)
    slugs = [g.slug for g in groups]
    assert len(set(slugs)) == len(slugs)
    assert all(re.fullmatch(r"[a-z0-9-]+", s) for s in slugs)
    assert Group("@" + "o" * 200, []).slug == "o" * 40


class TestHunksOnto:
    """A rule's step placed on content another rule's step has not touched."""

    def test_next_to_another_rule_s_change(self) -> None:
        """A change on the line after one another rule removed: it applies."""
        base = b"import a\nimport b\nx = f(1)\n"
        theirs = b"import a\nimport b\nx = f(1, strict=True)\n"
        assert hunks_onto(b"import b\nx = f(1)\n", base, theirs) == (
            b"import b\nx = f(1, strict=True)\n"
        )

    def test_old_lines_missing_or_twice(self) -> None:
        """The lines to replace are gone, or stand twice: None, never a guess."""
        base, theirs = b"x = 1\n", b"x = 2\n"
        assert hunks_onto(b"y = 1\n", base, theirs) is None
        assert hunks_onto(b"x = 1\nx = 1\n", base, theirs) is None


def test_changed_lines() -> None:
    """Added plus removed lines."""
    assert changed_lines(b"a\nb\nc\n", b"a\nB\nc\nd\n") == 3


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Two folders, two rules, two owners, and a test of both."""
    return init_repo(tmp_path / "repo", FILES)


class TestSplitRuns:
    """Real runs with --split-by."""

    def test_by_rule_each_branch_holds_its_rule_and_passes(
        self, repo: Path, tmp_path: Path
    ) -> None:
        """F401 and E711 land on branches of their own; each is green; each keeps the other."""
        done = fixbot("run", repo, "--branch", "lint", "--split-by", "rule")
        assert done.returncode == 0, done.stderr
        groups = {g["group"]: g for g in report_of(repo)["published"]["groups"]}
        assert set(groups) == {"E711", "F401"}
        assert groups["F401"]["branch"] == "lint-f401"
        f401 = git(repo, "show", "lint-f401:api/views.py")
        assert "import os" not in f401
        assert "x == None" in f401
        e711 = git(repo, "show", "lint-e711:api/views.py")
        assert "import os" in e711
        assert "x is None" in e711
        assert git(repo, "diff", "--stat", "main", "lint-e711", "--", "core").strip() == ""
        for k, branch in enumerate(("lint-f401", "lint-e711")):
            result = checkout_tests(repo, branch, tmp_path / f"check-{k}")
            assert result.returncode == 0, result.stdout

    def test_by_codeowners_asks_the_owners(self, repo: Path, fake_forge: FakeForge) -> None:
        """One PR per owner set, each asking its owners (users and teams) to review."""
        env = {
            "GITHUB_TOKEN": fake_forge.token,
            "GITHUB_API_URL": fake_forge.github_api,
            "GITHUB_REPOSITORY": fake_forge.github_repo,
        }
        remote = repo.parent / "remote.git"
        git(repo.parent, "init", "-q", "--bare", str(remote))
        git(repo, "remote", "add", "origin", str(remote))
        args = ("run", repo, "--branch", "nightly", "--split-by", "codeowners", "--open-pr")
        done = fixbot(*args, env=env)
        assert done.returncode == 0, done.stderr
        pulls = {p.branch: p for p in fake_forge.reviews.values()}
        assert set(pulls) == {"nightly-alice", "nightly-bob-owner-reviewers"}
        assert pulls["nightly-alice"].reviewers == ["alice"]
        assert (pulls["nightly-bob-owner-reviewers"].reviewers,
                pulls["nightly-bob-owner-reviewers"].teams) == (["bob"], ["reviewers"])  # fmt: skip
        assert "This pull request holds the fixes of" in pulls["nightly-alice"].body
        heads = git(remote, "for-each-ref", "--format=%(refname:short)").split()
        assert sorted(heads) == ["nightly-alice", "nightly-bob-owner-reviewers"]
        # The next night, with nothing new, writes nothing.
        before = len([r for r in fake_forge.requests if r.method != "GET"])
        assert fixbot(*args, env=env).returncode == 0
        assert len([r for r in fake_forge.requests if r.method != "GET"]) == before

    def test_size_cap_cuts_a_group_into_parts(self, repo: Path) -> None:
        """--pr-max-lines 2: the directory groups are cut file by file into parts."""
        (repo / "api" / "more.py").write_text("import json\nimport re\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "more")
        done = fixbot("run", repo, "--branch", "lint", "--split-by", "directory",
                      "--pr-max-lines", "2")  # fmt: skip
        assert done.returncode == 0, done.stderr
        branches = sorted(g["branch"] for g in report_of(repo)["published"]["groups"])
        assert branches == ["lint-api-1", "lint-api-2", "lint-core"]

    def test_publishing_settings_are_checked_before_any_work(self, repo: Path) -> None:
        """--open-pr without a token, split: exit 2 and not one branch written."""
        git(repo, "remote", "add", "origin", str(repo.parent / "remote.git"))
        done = fixbot("run", repo, "--branch", "lint", "--split-by", "directory", "--open-pr",
                      env={"GITHUB_TOKEN": ""})  # fmt: skip
        assert done.returncode == 2
        assert "GITHUB_TOKEN" in done.stderr
        assert git(repo, "branch", "--list", "lint*") == ""

    def test_by_rule_a_step_takes_the_step_that_fixes_what_it_uncovered(
        self, tmp_path: Path
    ) -> None:
        """UP006 leaves `List` unused; F401's step that removes it goes into UP006's PR."""
        repo = init_repo(
            tmp_path / "cascade",
            {
                "pkg/__init__.py": "",
                "pkg/a.py": (
                    "from typing import List\n\n\ndef f(x: List[int]) -> int:\n    return len(x)\n"
                ),
                "pyproject.toml": (
                    '[project]\nname = "c"\nrequires-python = ">=3.11"\n'
                    '[tool.ruff.lint]\nselect = ["F401", "UP006", "UP035"]\n'
                ),
            },
            venv=False,
        )
        done = fixbot("run", repo, "--branch", "c", "--split-by", "rule", "--test-cmd", "")
        assert done.returncode == 0, done.stderr
        groups = {g["group"]: g for g in report_of(repo)["published"]["groups"]}
        assert "branch" in groups["UP006"]
        fixed = git(repo, "show", f"{groups['UP006']['branch']}:pkg/a.py")
        assert "list[int]" in fixed
        assert "typing" not in fixed
