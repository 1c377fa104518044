"""Publishing: the fixbot branch pushed to a real bare remote, night after night."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import commit_all, fixbot, git, init_repo, report_of
from fake_forge import FakeForge
from fake_forge import fake_forge as _fake_forge
from git_http import GitHttp

from fixbot.orchestrator._forge import basic_auth
from fixbot.orchestrator._publish import (
    END,
    START,
    LeftAlone,
    Remote,
    github_repository,
    pr_body,
    push,
    same_tree,
)
from fixbot.sandbox import git as async_git

if TYPE_CHECKING:
    from collections.abc import Iterator

fake_forge = _fake_forge  # a plain import of the fixture trips ruff's F401/F811
BRANCH = "fixbot/nightly"
FILES = {
    "pkg/__init__.py": "",
    "pkg/core.py": "import os\nimport sys\n\n\ndef add(a, b):\n    return a + b\n",
    "pyproject.toml": '[tool.ruff.lint]\nselect = ["F401"]\n',
}


def remote_tip(remote: Path, branch: str = BRANCH) -> str | None:
    """The branch's sha in the bare remote, or None."""
    out = git(remote, "for-each-ref", "--format=%(objectname)", f"refs/heads/{branch}")
    return out.strip() or None


@pytest.fixture
def nightly(tmp_path: Path) -> tuple[Path, Path]:
    """A repo with two F401 fixes to land, and a bare remote `origin` it was pushed to."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(remote, "config", "core.logAllRefUpdates", "always")
    repo = init_repo(tmp_path / "repo", FILES, venv=False)
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")
    return repo, remote


def run_nightly(repo: Path, *extra: str) -> object:
    """One night's `fixbot run --push`, lint-only so it is quick."""
    return fixbot("run", repo, "--push", "--branch", BRANCH, "--test-cmd", "", *extra)


class TestPush:
    """`--push` against a real bare remote."""

    def test_first_night_pushes_the_branch(self, nightly: tuple[Path, Path]) -> None:
        """The proven branch reaches the remote, and the report says so."""
        repo, remote = nightly
        done = run_nightly(repo)
        assert done.returncode == 0, done.stderr
        local = git(repo, "rev-parse", f"refs/heads/{BRANCH}").strip()
        assert remote_tip(remote) == local
        assert report_of(repo)["published"]["pushed"] == "yes"
        assert git(remote, "show", f"{BRANCH}:pkg/core.py").startswith("def add")

    def test_a_night_with_nothing_new_changes_nothing(self, nightly: tuple[Path, Path]) -> None:
        """The same base twice: the second night pushes nothing."""
        repo, remote = nightly
        assert run_nightly(repo).returncode == 0
        moves = git(remote, "reflog", "show", "--format=%H", f"refs/heads/{BRANCH}")
        done = run_nightly(repo)
        assert done.returncode == 0, done.stderr
        assert git(remote, "reflog", "show", "--format=%H", f"refs/heads/{BRANCH}") == moves
        assert report_of(repo)["published"]["pushed"] == "no"

    def test_a_new_base_updates_the_branch(self, nightly: tuple[Path, Path]) -> None:
        """main moved on: the branch is rebuilt on it and force-pushed with the lease."""
        repo, remote = nightly
        assert run_nightly(repo).returncode == 0
        first = remote_tip(remote)
        (repo / "pkg" / "more.py").write_text("import json\n")
        base = commit_all(repo, "more")
        git(repo, "push", "-q", "origin", "main")
        done = run_nightly(repo)
        assert done.returncode == 0, done.stderr
        assert remote_tip(remote) not in {None, first}
        assert git(remote, "rev-parse", f"{BRANCH}~1").strip() in {
            base,
            git(remote, "rev-parse", f"{BRANCH}~2").strip(),
        }
        assert git(remote, "merge-base", "--is-ancestor", base, BRANCH) == ""

    def test_a_person_s_commit_is_left_alone(
        self, nightly: tuple[Path, Path], tmp_path: Path
    ) -> None:
        """A reviewer pushed to the branch: one line, exit 0, their commit stays."""
        repo, remote = nightly
        assert run_nightly(repo).returncode == 0
        clone = tmp_path / "reviewer"
        git(tmp_path, "clone", "-q", "-b", BRANCH, str(remote), str(clone))
        (clone / "NOTES.md").write_text("review notes\n")
        theirs = commit_all(clone, "a reviewer's commit")
        git(clone, "push", "-q", "origin", BRANCH)
        (repo / "pkg" / "more.py").write_text("import json\n")
        commit_all(repo, "more")
        done = run_nightly(repo)
        assert done.returncode == 0, done.stderr
        lines = [ln for ln in done.stderr.splitlines() if "left alone" in ln]
        assert len(lines) == 1
        assert theirs[:12] in lines[0]
        assert remote_tip(remote) == theirs

    def test_a_person_s_amend_is_theirs(self, nightly: tuple[Path, Path], tmp_path: Path) -> None:
        """A reviewer amends fixbot's commit (fixbot stays author): left alone all the same."""
        repo, remote = nightly
        assert run_nightly(repo).returncode == 0
        clone = tmp_path / "reviewer"
        git(tmp_path, "clone", "-q", "-b", BRANCH, str(remote), str(clone))
        (clone / "pkg" / "core.py").write_text(
            '"""Reviewed."""\n\n\ndef add(a, b):\n    return a + b\n'
        )
        git(clone, "commit", "-q", "-a", "--amend", "--no-edit")
        git(clone, "push", "-q", "-f", "origin", BRANCH)
        theirs = remote_tip(remote)
        (repo / "pkg" / "more.py").write_text("import json\n")
        commit_all(repo, "more")
        done = run_nightly(repo)
        assert done.returncode == 0, done.stderr
        assert "left alone" in done.stderr
        assert remote_tip(remote) == theirs

    @pytest.mark.parametrize("where", ["local", "remote"])
    def test_someone_else_s_branch_is_never_moved(
        self, nightly: tuple[Path, Path], where: str
    ) -> None:
        """A branch that only points into people's history (a release branch) is not fixbot's,
        even with no commit of its own: named by mistake, it is left as it is."""
        repo, remote = nightly
        main = git(repo, "rev-parse", "main").strip()
        if where == "local":
            git(repo, "branch", "release", main)
        else:
            git(repo, "push", "-q", "origin", f"{main}:refs/heads/release")
        (repo / "pkg" / "more.py").write_text("import json\n")
        commit_all(repo, "more")
        done = fixbot("run", repo, "--push", "--branch", "release", "--test-cmd", "")
        if where == "local":
            assert done.returncode == 2
            assert "has commits that are not fixbot's" in done.stderr
            assert git(repo, "rev-parse", "release").strip() == main
        else:
            assert done.returncode == 0, done.stderr
            assert "left alone" in done.stderr
        assert remote_tip(remote, "release") in {None, main}

    def test_no_such_remote_is_bad_input(self, nightly: tuple[Path, Path]) -> None:
        """--remote that does not exist: exit 2 and one line, before any work."""
        repo, _ = nightly
        done = run_nightly(repo, "--remote", "upstream")
        assert done.returncode == 2
        assert "no remote named 'upstream'" in done.stderr
        assert not (repo / ".git" / "fixbot" / "runs").exists()

    def test_open_pr_needs_a_token(self, nightly: tuple[Path, Path]) -> None:
        """--open-pr without GITHUB_TOKEN: exit 2, one line naming the variable."""
        repo, _ = nightly
        done = fixbot("run", repo, "--open-pr", "--test-cmd", "", env={"GITHUB_TOKEN": ""})
        assert done.returncode == 2
        assert "GITHUB_TOKEN" in done.stderr
        assert "Traceback" not in done.stderr


class TestLease:
    """The force-push never overwrites what fixbot did not see."""

    @pytest.mark.anyio
    async def test_a_stale_lease_leaves_the_branch(self, nightly: tuple[Path, Path]) -> None:
        """A lease on a tip the remote no longer has: LeftAlone, the remote unchanged."""
        repo, remote = nightly
        main = git(repo, "rev-parse", "main").strip()
        git(repo, "push", "-q", "origin", f"{main}:refs/heads/{BRANCH}")
        ours = git(repo, "commit-tree", "-p", main, "-m", "fixbot's", f"{main}^{{tree}}").strip()
        with pytest.raises(LeftAlone, match="moved while fixbot ran"):
            # fixbot saw `ours` there; the remote has `main`.
            await push(repo, Remote("origin", str(remote), None), BRANCH, ours, ours)
        assert remote_tip(remote) == main

    @pytest.mark.anyio
    async def test_same_tree(self, nightly: tuple[Path, Path]) -> None:
        """Two commits with one tree are the same night's work."""
        repo, _ = nightly
        head = git(repo, "rev-parse", "HEAD").strip()
        tree = git(repo, "rev-parse", "HEAD^{tree}").strip()
        other = (await async_git("commit-tree", tree, "-m", "x", cwd=repo, env={
            "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a",
            "GIT_COMMITTER_EMAIL": "a@b"})).stdout.decode().strip()  # fmt: skip
        assert await same_tree(repo, head, other)


class TestHelpers:
    """Small pure parts of publishing."""

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("https://github.com/octo/repo.git", "octo/repo"),
            ("https://github.com/octo/repo", "octo/repo"),
            ("git@github.com:octo/repo.git", "octo/repo"),
            ("https://gitlab.com/octo/repo.git", None),
            ("/srv/git/repo.git", None),
        ],
    )
    def test_repository_from_the_remote(self, url: str, expected: str | None) -> None:
        """owner/name is read from GitHub remotes only."""
        assert github_repository(url, "https://github.com") == expected

    def test_body_is_cut_to_the_limit(self) -> None:
        """A long report is cut on a line, says so, and points at the whole report."""
        report = "".join(f"| row {i} |\n" for i in range(10_000))
        body = pr_body(report, 1_000, "https://ci.example/run/1")
        assert len(body) <= 1_000
        assert body.endswith("The whole report: https://ci.example/run/1\n" + END)
        assert "| row 0 |\n" in body
        assert pr_body("short\n", 1_000, None) == f"{START}\nshort\n{END}"

    def test_people_s_words_outside_the_markers_are_kept(self) -> None:
        """Notes above and below fixbot's block stay; a body without markers stays above."""
        current = f"Reviewer notes\n\n{START}\nold report\n{END}\n\nMore notes\n"
        body = pr_body("new report\n", 1_000, None, current)
        assert body == f"Reviewer notes\n\n{START}\nnew report\n{END}\n\nMore notes\n"
        assert pr_body("r\n", 1_000, None, "All mine").startswith("All mine\n\n" + START)

    def test_remote_env_holds_the_header_only_for_its_server(self) -> None:
        """The token goes into a header scoped to the remote's server, never its URL."""
        remote = Remote("origin", "https://github.com/o/r.git", "Basic abc")
        env = remote.env()
        config = {
            (env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"])
            for i in range(int(env["GIT_CONFIG_COUNT"]))
        }
        key = "http.https://github.com/o/r.git.extraHeader"
        assert (key, "Authorization: Basic abc") in config
        assert (key, "") in config  # resets CI's own
        assert ("http.followRedirects", "false") in config
        assert ("protocol.allow", "never") in config
        assert env["GIT_CONFIG_GLOBAL"] == os.devnull
        assert Remote("origin", "/srv/r.git", None).env() == {}
        assert Remote("o", "http://u:pw@[::1]:8080/r", None).shown == "http://[::1]:8080/r"
        assert Remote("o", "https://u:pw@h.example/r", None).shown == "https://h.example/r"


TOKEN = "ghp_canary_push_9c4e"  # noqa: S105 - a canary, searched for afterwards


@pytest.fixture
def git_http(tmp_path: Path) -> Iterator[GitHttp]:
    """A smart-HTTP git server that wants GitHub's token header, with one bare repo."""
    root = tmp_path / "served"
    root.mkdir()
    git(root, "init", "-q", "--bare", "-b", "main", "repo.git")
    git(root / "repo.git", "config", "http.receivepack", "true")
    server = GitHttp(root, basic_auth("x-access-token", TOKEN)).start()
    yield server
    server.stop()


class TestTokenPush:
    """GITHUB_TOKEN reaches the push as a header, and nothing else of fixbot's keeps it."""

    def test_push_over_https_carries_the_token_in_a_header_only(
        self, tmp_path: Path, git_http: GitHttp
    ) -> None:
        """The server gets the header; .git, the report, the logs and argv-visible config don't."""
        repo = init_repo(tmp_path / "repo", FILES, venv=False)
        url = f"{git_http.url}/repo.git"
        git(repo, "remote", "add", "origin", url)
        env = {"GITHUB_TOKEN": TOKEN, "GITHUB_SERVER_URL": git_http.url}
        done = fixbot("run", repo, "--push", "--branch", BRANCH, "--test-cmd", "", env=env)
        assert done.returncode == 0, done.stderr
        served = git_http.root / "repo.git"
        assert remote_tip(served) == git(repo, "rev-parse", BRANCH).strip()
        assert git_http.requests
        assert all(r.get("Authorization") for r in git_http.requests)
        for path in (repo / ".git").rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path
        assert TOKEN not in done.stdout + done.stderr
        assert git(repo, "remote", "get-url", "origin").strip() == url

    def test_a_redirect_elsewhere_gets_no_token(self, tmp_path: Path, git_http: GitHttp) -> None:
        """The forge's URL answers 302 to another server: the push stops, the header stays."""
        front = GitHttp(
            tmp_path, "unused", redirect_to=git_http.url.replace("127.0.0.1", "localhost")
        ).start()
        try:
            repo = init_repo(tmp_path / "repo", FILES, venv=False)
            git(repo, "remote", "add", "origin", f"{front.url}/repo.git")
            env = {"GITHUB_TOKEN": TOKEN, "GITHUB_SERVER_URL": front.url}
            done = fixbot("run", repo, "--push", "--branch", BRANCH, "--test-cmd", "", env=env)
        finally:
            front.stop()
        assert done.returncode == 3, done.stderr
        assert not any("Authorization" in r for r in git_http.requests)

    def test_a_header_persisted_by_ci_checkout_is_replaced(
        self, tmp_path: Path, git_http: GitHttp
    ) -> None:
        """actions/checkout leaves an extraheader in .git/config: one Authorization is sent."""
        repo = init_repo(tmp_path / "repo", FILES, venv=False)
        git(repo, "remote", "add", "origin", f"{git_http.url}/repo.git")
        git(repo, "config", f"http.{git_http.url}/.extraheader", "AUTHORIZATION: basic stale")
        # actions/checkout may key its header on the repository's own URL, too.
        git(repo, "config", f"http.{git_http.url}/repo.git.extraheader", "AUTHORIZATION: basic x")
        env = {"GITHUB_TOKEN": TOKEN, "GITHUB_SERVER_URL": git_http.url}
        done = fixbot("run", repo, "--push", "--branch", BRANCH, "--test-cmd", "", env=env)
        assert done.returncode == 0, done.stderr
        assert remote_tip(git_http.root / "repo.git") is not None

    def test_a_wrong_token_is_a_service_failure(self, tmp_path: Path, git_http: GitHttp) -> None:
        """The server refuses the token: exit 3 and one line, nothing leaked."""
        repo = init_repo(tmp_path / "repo", FILES, venv=False)
        git(repo, "remote", "add", "origin", f"{git_http.url}/repo.git")
        env = {"GITHUB_TOKEN": "ghp_wrong_1234", "GITHUB_SERVER_URL": git_http.url}
        done = fixbot("run", repo, "--push", "--branch", BRANCH, "--test-cmd", "", env=env)
        assert done.returncode == 3, done.stderr
        assert "ghp_wrong_1234" not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert len([ln for ln in done.stderr.splitlines() if ln.startswith("fixbot: error")]) == 1


def pr_env(fake: FakeForge) -> dict[str, str]:
    """The variables a GitHub Actions job gives fixbot, pointed at the fake API."""
    return {
        "GITHUB_TOKEN": fake.token,
        "GITHUB_API_URL": fake.github_api,
        "GITHUB_REPOSITORY": fake.github_repo,
    }


def writes(fake: FakeForge) -> list[tuple[str, str]]:
    """The API calls that changed something."""
    return [(method, path) for method, path in fake.calls() if method != "GET"]


class TestOpenPr:
    """`--open-pr`: one pull request, opened once and updated night after night."""

    def test_nights_leave_one_pr(self, nightly: tuple[Path, Path], fake_forge: FakeForge) -> None:
        """Night 1 opens it; a night with nothing new writes nothing; a new base updates it."""
        repo, remote = nightly
        env = pr_env(fake_forge)
        args = ("run", repo, "--open-pr", "--branch", BRANCH, "--test-cmd", "")
        done = fixbot(*args, env=env)
        assert done.returncode == 0, done.stderr
        assert writes(fake_forge) == [("POST", "/repos/owner/name/pulls")]
        (pull,) = fake_forge.reviews.values()
        assert pull.branch == BRANCH
        assert pull.base == "main"
        assert pull.body.startswith(f"{START}\n## fixbot: proven lint fixes")
        published = report_of(repo)["published"]
        assert published["review"] == "opened"
        assert published["url"] in done.stdout

        assert fixbot(*args, env=env).returncode == 0
        assert len(writes(fake_forge)) == 1  # nothing new: no push, no API write

        (repo / "pkg" / "more.py").write_text("import json\n")
        commit_all(repo, "more")
        git(repo, "push", "-q", "origin", "main")
        assert fixbot(*args, env=env).returncode == 0
        assert writes(fake_forge)[1:] == [("PATCH", f"/repos/owner/name/pulls/{pull.number}")]
        assert len(fake_forge.reviews) == 1
        assert remote_tip(remote) == git(repo, "rev-parse", BRANCH).strip()
        sent = next(r for r in fake_forge.requests if r.method == "PATCH")
        assert sent.headers["authorization"] == f"Bearer {fake_forge.token}"

    def test_a_person_s_notes_in_the_body_survive_an_update(
        self, nightly: tuple[Path, Path], fake_forge: FakeForge
    ) -> None:
        """A reviewer wrote above fixbot's block; the next night's PATCH keeps it."""
        repo, _ = nightly
        args = ("run", repo, "--open-pr", "--branch", BRANCH, "--test-cmd", "")
        assert fixbot(*args, env=pr_env(fake_forge)).returncode == 0
        (pull,) = fake_forge.reviews.values()
        pull.body = "Please look at core.py first.\n\n" + pull.body
        (repo / "pkg" / "more.py").write_text("import json\n")
        commit_all(repo, "more")
        assert fixbot(*args, env=pr_env(fake_forge)).returncode == 0
        sent = [r for r in fake_forge.requests if r.method == "PATCH"][-1].json["body"]
        assert sent.startswith(f"Please look at core.py first.\n\n{START}\n## fixbot")

    def test_a_review_the_api_failed_to_open_is_opened_next_night(
        self, nightly: tuple[Path, Path], fake_forge: FakeForge
    ) -> None:
        """Night 1 pushed, then the API failed; night 2, nothing new: no push, the PR opens."""
        repo, remote = nightly
        args = ("run", repo, "--open-pr", "--branch", BRANCH, "--test-cmd", "")
        fake_forge.fail_next(401)
        assert fixbot(*args, env=pr_env(fake_forge)).returncode == 3
        pushed = remote_tip(remote)
        assert pushed is not None
        assert not fake_forge.reviews
        done = fixbot(*args, env=pr_env(fake_forge))
        assert done.returncode == 0, done.stderr
        assert writes(fake_forge) == [("POST", "/repos/owner/name/pulls")]
        assert remote_tip(remote) == pushed
        assert report_of(repo)["published"]["pushed"] == "no"

    def test_a_refused_token_exits_3(
        self, nightly: tuple[Path, Path], fake_forge: FakeForge
    ) -> None:
        """401 from the API: exit 3, one line, the token nowhere in the output."""
        repo, _ = nightly
        env = {**pr_env(fake_forge), "GITHUB_TOKEN": "ghp_not_it_77"}
        done = fixbot("run", repo, "--open-pr", "--branch", BRANCH, "--test-cmd", "", env=env)
        assert done.returncode == 3, done.stderr
        errors = [ln for ln in done.stderr.splitlines() if ln.startswith("fixbot: error")]
        assert len(errors) == 1
        assert "401" in errors[0]
        assert "ghp_not_it_77" not in done.stdout + done.stderr

    def test_rate_limit_is_waited_out(
        self, nightly: tuple[Path, Path], fake_forge: FakeForge
    ) -> None:
        """A 429 with Retry-After is retried after the wait, and the PR opens."""
        repo, _ = nightly
        fake_forge.fail_next(429, {"Retry-After": "1"})
        done = fixbot("run", repo, "--open-pr", "--branch", BRANCH, "--test-cmd", "",
                      env=pr_env(fake_forge))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert len(fake_forge.reviews) == 1
        first, second = fake_forge.requests[:2]
        assert (first.path, second.path) == (second.path, first.path)
        assert second.at - first.at >= 0.9


class TestGitLab:
    """Inside GitLab CI the same run opens a merge request through GitLab's API."""

    def test_merge_request_opened_then_updated(
        self, nightly: tuple[Path, Path], fake_forge: FakeForge
    ) -> None:
        """GITLAB_CI picks GitLab: one MR, with PRIVATE-TOKEN; a new base updates it."""
        repo, _ = nightly
        env = {
            "GITLAB_CI": "true",
            "GITLAB_TOKEN": fake_forge.token,
            "CI_API_V4_URL": fake_forge.gitlab_api,
            "CI_PROJECT_ID": str(fake_forge.gitlab_project_id),
            "CI_SERVER_URL": fake_forge.url,
        }
        args = ("run", repo, "--open-pr", "--branch", BRANCH, "--test-cmd", "")
        done = fixbot(*args, env=env)
        assert done.returncode == 0, done.stderr
        project = f"/api/v4/projects/{fake_forge.gitlab_project_id}"
        assert writes(fake_forge) == [("POST", f"{project}/merge_requests")]
        (mr,) = fake_forge.reviews.values()
        assert (mr.branch, mr.base) == (BRANCH, "main")
        (repo / "pkg" / "more.py").write_text("import json\n")
        commit_all(repo, "more")
        assert fixbot(*args, env=env).returncode == 0
        assert writes(fake_forge)[1:] == [("PUT", f"{project}/merge_requests/{mr.number}")]
        assert all(r.headers.get("private-token") == fake_forge.token for r in fake_forge.requests)


def test_a_shallow_clone_is_refused(nightly: tuple[Path, Path], tmp_path: Path) -> None:
    """--push from a shallow clone: one line naming the fix, before any work."""
    repo, remote = nightly
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow))
    git(shallow, "remote", "set-url", "origin", str(remote))
    done = run_nightly(shallow)
    assert done.returncode == 2
    assert "this clone is shallow" in done.stderr
    assert remote_tip(remote) is None
