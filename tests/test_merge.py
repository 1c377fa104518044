"""orchestrator._merge: accepted patches become deterministic commits on the fixbot branch.

Real repos in tmp dirs; the commits are read back with git itself.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import TYPE_CHECKING

import pytest

from fixbot.orchestrator._job import PatchRecord
from fixbot.orchestrator._merge import (
    TRAILER,
    Identity,
    base_identity,
    check_branch,
    commit_groups,
    move_branch,
    write_commits,
)
from fixbot.sandbox import FileChange, Patch, RepoError, Verdict, sha256
from fixbot.sandbox._ruff import Ruff
from tests.conftest import commit_all, fixbot, git, init_repo, write_files

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

BASE_TIME = "1700000000"
NAME, EMAIL = "fixbot", "fixbot@example.invalid"
PROOF = "ruff clean; 7 tests still pass"
REF = "refs/fixbot/staging/test"

# pkg/a.py: F401 then F841; pkg/b.py: F401 only; bin/tool.py (executable): F401.
A0 = "import os\nimport sys\n\n\ndef f():\n    unused = 1\n    return sys.argv\n"
A1 = "import sys\n\n\ndef f():\n    unused = 1\n    return sys.argv\n"
A2 = "import sys\n\n\ndef f():\n    return sys.argv\n"
B0 = "import os\nimport re\n\nX = 1\n"
B1 = "X = 1\n"
T0 = "#!/usr/bin/env python3\nimport os\n\nprint(1)\n"
T1 = "#!/usr/bin/env python3\n\nprint(1)\n"


def git_env(repo: Path, *args: str, env: dict[str, str]) -> str:
    """git with extra environment (dates, identities)."""
    return subprocess.run(
        ["git", *args], cwd=repo, env={**os.environ, **env}, check=True,
        capture_output=True, text=True,
    ).stdout  # fmt: skip


def user_state(repo: Path) -> tuple[str, ...]:
    """HEAD, branch, index, status and the content of the user's dirty files."""
    return (
        git(repo, "rev-parse", "HEAD"),
        git(repo, "symbolic-ref", "HEAD"),
        git(repo, "ls-files", "-s"),
        git(repo, "status", "--porcelain", "--untracked-files=all"),
        (repo / "pkg" / "a.py").read_text(),
        (repo / "notes.txt").read_text(),
    )


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repo whose base commit has a fixed date, an executable file, and a dirty checkout."""
    # The machine's own git identity must not matter to fixbot's commits.
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Machine User\n\temail = me@machine\n")
    monkeypatch.setenv("HOME", str(home))
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write_files(root, {"pkg/__init__.py": "", "pkg/a.py": A0, "pkg/b.py": B0, "bin/tool.py": T0})
    (root / "bin" / "tool.py").chmod(0o755)
    git(root, "add", "-A")
    dated = {"GIT_AUTHOR_DATE": "1600000000 +0200", "GIT_COMMITTER_DATE": f"{BASE_TIME} +0200"}
    git_env(root, "commit", "-q", "-m", "base", env=dated)
    # The user's work in progress.
    (root / "pkg" / "b.py").write_text("X = 'staged'\n")
    git(root, "add", "pkg/b.py")
    (root / "pkg" / "a.py").write_text("# my unsaved edit\n")
    (root / "notes.txt").write_text("untracked\n")
    return root


@pytest.fixture
def base(repo: Path) -> str:
    """The base commit."""
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
async def identity(repo: Path, base: str) -> Identity:
    """fixbot's identity dated like the base."""
    return await base_identity(repo, base, NAME, EMAIL)


async def record(
    repo: Path, path: str, before: str, after: str, rule: str, step: str, kind: str = "safe"
) -> PatchRecord:
    """An accepted record whose targets are ruff's real violations of `rule` in `before`."""
    lint = await Ruff(repo).lint_source(path, before.encode(), select=["F401", "F841"])
    targets = tuple(v for v in lint.violations if v.rule == rule)
    assert targets, (path, rule)
    rnd, number = (int(n) for n in step.split("."))
    patch = Patch(
        id=f"{path}@{kind}.{step}",
        round=rnd,
        step=number,
        agent="ruff",
        kind=kind,
        rules=(rule,),
        files=(path,),
        targets=targets,
        changes=(FileChange(path=path, old_sha=sha256(before.encode()), new=after.encode()),),
    )
    verdict = Verdict(patch_id=patch.id, accepted=True, reason="proven")
    return PatchRecord(patch, "accepted", verdict, before.encode())


@pytest.fixture
async def records(repo: Path) -> list[PatchRecord]:
    """Accepted chains: a.py F401 then F841, b.py F401 (two imports), tool.py F401."""
    return [
        await record(repo, "pkg/a.py", A0, A1, "F401", "1.1"),
        await record(repo, "pkg/a.py", A1, A2, "F841", "1.2", kind="unsafe"),
        await record(repo, "pkg/b.py", B0, B1, "F401", "1.1"),
        await record(repo, "bin/tool.py", T0, T1, "F401", "1.1"),
    ]


async def commits(repo: Path, base: str, records: list[PatchRecord], ref: str = REF) -> str:
    """Write the records' commits into `ref`; return the tip."""
    identity = await base_identity(repo, base, NAME, EMAIL)
    return await write_commits(repo, base, records, identity, PROOF, ref)


def show(repo: Path, rev: str, path: str) -> str:
    """A file's content at a commit."""
    return git(repo, "show", f"{rev}:{path}")


class TestWriteCommits:
    async def test_identity_and_date(
        self, repo: Path, base: str, records: list[PatchRecord]
    ) -> None:
        """Commits are by fixbot (not the machine's user), dated at the base's commit time."""
        tip = await commits(repo, base, records)
        log = git(repo, "log", "--format=%an|%ae|%cn|%ce|%at|%ct", f"{base}..{tip}")
        lines = log.splitlines()
        assert len(lines) == 2
        assert set(lines) == {f"{NAME}|{EMAIL}|{NAME}|{EMAIL}|{BASE_TIME}|{BASE_TIME}"}
        assert git(repo, "rev-parse", REF).strip() == tip

    async def test_deterministic(self, repo: Path, base: str, records: list[PatchRecord]) -> None:
        """The same base, records and proof give the same sha, into any ref, every time."""
        first = await commits(repo, base, records)
        again = await commits(repo, base, records, ref="refs/fixbot/staging/other")
        assert first == again
        assert await commits(repo, base, records) == first

    async def test_one_commit_per_rule(
        self, repo: Path, base: str, records: list[PatchRecord]
    ) -> None:
        """F401 for three files, then F841: two commits, each message naming rule and count."""
        tip = await commits(repo, base, records)
        subjects = git(repo, "log", "--reverse", "--format=%s", f"{base}..{tip}").splitlines()
        assert subjects == [
            "fix(F401): unused-import, 4 fixed in 3 files",
            "fix(F841): unused-variable, 1 fixed in 1 file",
        ]
        for rev in (tip, f"{tip}~1"):
            body = git(repo, "log", "-1", "--format=%B", rev)
            assert f"Proven: {PROOF}" in body
            trailers = git(repo, "log", "-1", "--format=%(trailers:key=Fixbot-Proof)", rev)
            assert trailers.startswith(TRAILER)
        assert "ruff safe fix" in git(repo, "log", "-1", "--format=%B", f"{tip}~1")
        assert "ruff unsafe fix" in git(repo, "log", "-1", "--format=%B", tip)

    async def test_content_of_each_commit(
        self, repo: Path, base: str, records: list[PatchRecord]
    ) -> None:
        """The F401 commit holds each file's F401 step; the tip holds the last step."""
        tip = await commits(repo, base, records)
        assert show(repo, f"{tip}~1", "pkg/a.py") == A1
        assert show(repo, f"{tip}~1", "pkg/b.py") == B1
        assert show(repo, f"{tip}~1", "bin/tool.py") == T1
        assert show(repo, tip, "pkg/a.py") == A2
        changed = git(repo, "diff", "--name-only", base, tip).split()
        assert sorted(changed) == ["bin/tool.py", "pkg/a.py", "pkg/b.py"]
        assert git(repo, "rev-parse", f"{tip}~2").strip() == base

    async def test_file_mode_kept(self, repo: Path, base: str, records: list[PatchRecord]) -> None:
        """An executable file stays 100755; the others stay 100644."""
        tip = await commits(repo, base, records)
        modes = {
            line.split("\t")[1]: line.split()[0]
            for line in git(repo, "ls-tree", "-r", tip).splitlines()
        }
        assert modes["bin/tool.py"] == "100755"
        assert modes["pkg/a.py"] == "100644"
        assert git(repo, "diff", "--summary", base, tip) == ""

    async def test_unusual_paths(self, repo: Path) -> None:
        """Paths with spaces, quotes and non-ASCII letters land where they belong."""
        paths = ["pkg/with space.py", 'pkg/quo"te.py', "pkg/café.py"]
        write_files(repo, dict.fromkeys(paths, B0))
        git(repo, "add", *paths)
        git(repo, "commit", "-q", "-m", "more files", "--", *paths)
        new_base = git(repo, "rev-parse", "HEAD").strip()
        recs = [await record(repo, p, B0, B1, "F401", "1.1") for p in paths]
        tip = await commits(repo, new_base, recs)
        for path in paths:
            assert show(repo, tip, path) == B1
        assert git(repo, "diff", "--name-only", "-z", new_base, tip).split("\0")[:-1] == sorted(
            paths, key=str.encode
        )

    async def test_checkout_untouched(
        self, repo: Path, base: str, records: list[PatchRecord]
    ) -> None:
        """Writing commits and moving the branch leave HEAD, index and files as they were."""
        before = user_state(repo)
        tip = await commits(repo, base, records)
        await move_branch(repo, "fixbot/today", tip, None)
        assert user_state(repo) == before


class TestCommitGroups:
    async def test_chain_order_is_kept(self, repo: Path) -> None:
        """A file fixed F841 then F401 gets a later F401 pass; every chain stays in order."""
        c0 = "import os\n\n\ndef g():\n    x = os.sep\n"
        c1 = "import os\n\n\ndef g():\n    pass\n"
        c2 = "def g():\n    pass\n"
        write_files(repo, {"pkg/c.py": c0})
        git(repo, "add", "pkg/c.py")
        git(repo, "commit", "-q", "-m", "c", "--", "pkg/c.py")
        base = git(repo, "rev-parse", "HEAD").strip()
        recs = [
            await record(repo, "pkg/a.py", A0, A1, "F401", "1.1"),
            await record(repo, "pkg/c.py", c0, c1, "F841", "1.1", kind="unsafe"),
            await record(repo, "pkg/a.py", A1, A2, "F841", "1.2", kind="unsafe"),
            await record(repo, "pkg/c.py", c1, c2, "F401", "1.2"),
            await record(repo, "pkg/b.py", B0, B1, "F401", "2.1"),
        ]
        groups = commit_groups(recs)
        assert [(key, sorted(r.patch.id for r in rs)) for key, rs in groups] == [
            ((1, 0, 0, "F401"), ["pkg/a.py@safe.1.1"]),
            ((1, 0, 1, "F841"), ["pkg/a.py@unsafe.1.2", "pkg/c.py@unsafe.1.1"]),
            ((1, 1, 0, "F401"), ["pkg/c.py@safe.1.2"]),
            ((2, 0, 0, "F401"), ["pkg/b.py@safe.2.1"]),
        ]
        # Written out, every commit holds a state each file's chain went through.
        tip = await commits(repo, base, recs)
        states = [
            (show(repo, f"{tip}~{n}", "pkg/a.py"), show(repo, f"{tip}~{n}", "pkg/c.py"))
            for n in range(4, -1, -1)
        ]
        assert states == [(A0, c0), (A1, c0), (A2, c1), (A2, c2), (A2, c2)]
        assert show(repo, tip, "pkg/b.py") == B1


class TestCheckBranch:
    @pytest.mark.parametrize("name", ["refs/heads/main", "@", "origin/main", "v1"])
    async def test_names_that_would_mislead(
        self, repo: Path, identity: Identity, name: str
    ) -> None:
        """A ref path, `@`, or a name a remote-tracking branch or tag already has: refused."""
        head = git(repo, "rev-parse", "HEAD").strip()
        git(repo, "update-ref", "refs/remotes/origin/main", head)
        git(repo, "tag", "v1")
        with pytest.raises(RepoError):
            await check_branch(repo, name, identity, force=True)

    async def test_new_branch(self, repo: Path, identity: Identity) -> None:
        """A branch that does not exist yet: None, nothing to replace."""
        assert await check_branch(repo, "fixbot/2024-01-01", identity, force=False) is None

    async def test_fixbot_only_branch_is_replaceable(
        self, repo: Path, base: str, records: list[PatchRecord], identity: Identity
    ) -> None:
        """A branch of fixbot's own commits on top of base: its sha, to replace."""
        tip = await commits(repo, base, records)
        await move_branch(repo, "fixbot/x", tip, None)
        assert await check_branch(repo, "fixbot/x", identity, force=False) == tip
        # Also once it has been pushed and fetched back.
        git(repo, "update-ref", "refs/remotes/origin/fixbot/x", tip)
        assert await check_branch(repo, "fixbot/x", identity, force=False) == tip

    async def test_someone_elses_commit(
        self, repo: Path, base: str, records: list[PatchRecord], identity: Identity
    ) -> None:
        """A person's commit on the branch: RepoError, unless --force."""
        tip = await commits(repo, base, records)
        theirs = git(repo, "commit-tree", "-p", tip, "-m", "review fixup", f"{tip}^{{tree}}")
        git(repo, "update-ref", "refs/heads/fixbot/x", theirs.strip())
        with pytest.raises(RepoError, match="not fixbot's"):
            await check_branch(repo, "fixbot/x", identity, force=False)
        assert await check_branch(repo, "fixbot/x", identity, force=True) == theirs.strip()

    async def test_someone_elses_commit_also_on_the_remote(
        self, repo: Path, base: str, records: list[PatchRecord], identity: Identity
    ) -> None:
        """A reviewer's commit pushed to the PR branch and pulled still counts as theirs."""
        tip = await commits(repo, base, records)
        theirs = git(repo, "commit-tree", "-p", tip, "-m", "review fixup", f"{tip}^{{tree}}")
        git(repo, "update-ref", "refs/heads/fixbot/x", theirs.strip())
        git(repo, "update-ref", "refs/remotes/origin/fixbot/x", theirs.strip())
        with pytest.raises(RepoError, match="not fixbot's"):
            await check_branch(repo, "fixbot/x", identity, force=False)

    async def test_impostor_without_trailer(
        self, repo: Path, base: str, identity: Identity
    ) -> None:
        """A commit under fixbot's email but without the proof trailer is not fixbot's."""
        env = {"GIT_AUTHOR_NAME": NAME, "GIT_AUTHOR_EMAIL": EMAIL}
        sha = git_env(repo, "commit-tree", "-p", base, "-m", "manual", f"{base}^{{tree}}", env=env)
        git(repo, "update-ref", "refs/heads/fixbot/x", sha.strip())
        with pytest.raises(RepoError):
            await check_branch(repo, "fixbot/x", identity, force=False)

    async def test_checked_out_in_main_worktree(
        self, repo: Path, base: str, records: list[PatchRecord], identity: Identity
    ) -> None:
        """The branch checked out in the user's own checkout: refused even with force."""
        tip = await commits(repo, base, records)
        await move_branch(repo, "fixbot/x", tip, None)
        git(repo, "symbolic-ref", "HEAD", "refs/heads/fixbot/x")
        for force in (False, True):
            with pytest.raises(RepoError, match="checked out"):
                await check_branch(repo, "fixbot/x", identity, force=force)

    async def test_checked_out_in_linked_worktree(
        self, repo: Path, base: str, records: list[PatchRecord], identity: Identity, tmp_path: Path
    ) -> None:
        """The branch checked out in a linked worktree: refused even with force."""
        tip = await commits(repo, base, records)
        await move_branch(repo, "fixbot/x", tip, None)
        git(repo, "worktree", "add", "-q", str(tmp_path / "linked"), "fixbot/x")
        for force in (False, True):
            with pytest.raises(RepoError, match="checked out"):
                await check_branch(repo, "fixbot/x", identity, force=force)

    @pytest.mark.parametrize("name", ["bad..name", "-leading", "has space", "x.lock", "a~1", ""])
    async def test_invalid_name(self, repo: Path, identity: Identity, name: str) -> None:
        """A name git would refuse is a RepoError naming it."""
        with pytest.raises(RepoError, match="not a valid branch name"):
            await check_branch(repo, name, identity, force=True)


class TestMoveBranch:
    async def test_moves_only_from_the_expected_sha(
        self, repo: Path, base: str, records: list
    ) -> None:
        """The branch moves from the sha we checked; if someone moved it meanwhile, it fails."""
        tip = await commits(repo, base, records)
        await move_branch(repo, "fixbot/x", base, None)
        await move_branch(repo, "fixbot/x", tip, base)
        assert git(repo, "rev-parse", "fixbot/x").strip() == tip
        with pytest.raises(RepoError):
            await move_branch(repo, "fixbot/x", base, base)
        assert git(repo, "rev-parse", "fixbot/x").strip() == tip

    async def test_new_branch_only_if_still_new(self, repo: Path, base: str, records: list) -> None:
        """old=None creates the branch, and fails if it appeared meanwhile."""
        tip = await commits(repo, base, records)
        await move_branch(repo, "fixbot/x", base, None)
        with pytest.raises(RepoError):
            await move_branch(repo, "fixbot/x", tip, None)


async def test_base_identity(repo: Path, base: str) -> None:
    """The identity carries the base commit's committer time, in UTC."""
    identity = await base_identity(repo, base, NAME, EMAIL)
    assert identity == Identity(NAME, EMAIL, f"{BASE_TIME} +0000")
    assert identity.env()["GIT_COMMITTER_EMAIL"] == EMAIL


class TestConvertedOnCheckout:
    """A file .gitattributes converts on checkout is never patched: its blob would change."""

    def test_a_filtered_file_keeps_its_blob(self, tmp_path: Path) -> None:
        """A git-crypt-like filter: the plaintext never reaches a commit."""
        repo = init_repo(
            tmp_path / "repo",
            {
                "pkg/__init__.py": "",
                "pkg/plain.py": "import os\n",
                "pyproject.toml": '[tool.ruff.lint]\nselect = ["F401"]\n',
            },
            venv=False,
        )
        git(repo, "config", "filter.crypt.clean", "base64")
        git(repo, "config", "filter.crypt.smudge", "base64 -d")
        (repo / ".gitattributes").write_text("pkg/secret.py filter=crypt\n")
        (repo / "pkg" / "secret.py").write_text('import sys\nKEY = "sk-live-PLAINTEXT"\n')
        commit_all(repo, "a secret")
        stored = git(repo, "rev-parse", "HEAD:pkg/secret.py").strip()
        done = fixbot("run", repo, "--branch", "fx", "--test-cmd", "")
        assert done.returncode == 0, done.stderr
        assert git(repo, "rev-parse", "fx:pkg/secret.py").strip() == stored
        assert "import os" not in git(repo, "show", "fx:pkg/plain.py")
        runs = repo / ".git" / "fixbot" / "runs"
        report = json.loads(next(runs.glob("*/report.json")).read_text())
        assert report["not_attempted"] == {"converted on checkout": 1}


class TestOddNames:
    """File names git allows and fast-import must be told carefully."""

    @pytest.mark.parametrize(
        "name", ["new\nline.py", 'quote"d.py', "tab\tbed.py", "ü.py", "-dash.py"]
    )
    def test_fixed_file_with_an_odd_name(self, tmp_path: Path, name: str) -> None:
        """A newline, a quote, a tab or a non-ASCII letter: the fix lands under that name."""
        repo = init_repo(
            tmp_path / "repo",
            {"pyproject.toml": '[tool.ruff.lint]\nselect = ["F401"]\n'},
            venv=False,
        )
        (repo / name).write_text("import os\n")
        commit_all(repo, "odd")
        done = fixbot("run", repo, "--branch", "fx", "--test-cmd", "")
        assert done.returncode == 0, done.stderr
        listed = git(repo, "ls-tree", "-z", "--name-only", "fx").split("\0")
        assert name in listed
        assert not list((repo / ".git").glob("fast_import_crash_*"))
