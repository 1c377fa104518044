"""GitLab merge requests through the real client against a fake GitLab on a real socket."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest
import stamina

from fixbot.orchestrator._forge import ForgeAuthError, ForgeError, Review, basic_auth
from fixbot.orchestrator._gitlab import GitLab
from fixbot.orchestrator._publish import Remote
from tests.fake_forge import FakeForge
from tests.fake_forge import fake_forge as _fake_forge_fixture

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio
fake_forge = _fake_forge_fixture  # the fixture, under its own name

KEY = "glpat-Sekr3t-0123456789"  # the token
WRONG_KEY = "glpat-not-this-one"
BRANCH = "fixbot/ruff"


def make(fake: FakeForge, project: str = "group/name", token: str = KEY) -> GitLab:
    """A GitLab client for the fake, retrying three times with short waits."""
    forge = GitLab(api_url=fake.gitlab_api, project=project, token=token, server_url=fake.url)
    forge.http.attempts = 3
    forge.http.wait_initial = 0.01
    return forge


@pytest.fixture
async def gitlab(fake_forge: FakeForge) -> AsyncIterator[GitLab]:
    """A client for the fake's project `group/name`, with the token the fake expects."""
    fake_forge.token = KEY
    forge = make(fake_forge)
    try:
        yield forge
    finally:
        await forge.aclose()


MRS = "/api/v4/projects/group%2Fname/merge_requests"


class TestPushHeader:
    """Which remotes `git push` sends the token to."""

    forge = GitLab(
        api_url="https://gitlab.example.com/api/v4",
        project="group/name",
        token=KEY,
        server_url="https://gitlab.example.com",
    )

    def test_same_server(self) -> None:
        """A remote on the server gets Basic auth with user oauth2 and the token."""
        header = self.forge.push_header("https://gitlab.example.com/group/name.git")
        assert header == basic_auth("oauth2", KEY)

    @pytest.mark.parametrize(
        "remote",
        [
            "https://gitlab.com/group/name.git",
            "https://gitlab.example.com.evil.test/group/name.git",
            "http://gitlab.example.com/group/name.git",
            "https://gitlab.example.com:8443/group/name.git",
            "git@gitlab.example.com:group/name.git",
            "ssh://git@gitlab.example.com/group/name.git",
        ],
        ids=["other-host", "suffixed-host", "http", "other-port", "scp-like", "ssh"],
    )
    def test_other_remote(self, remote: str) -> None:
        """Another host, scheme or port, or SSH, never gets the token."""
        assert self.forge.push_header(remote) is None

    def test_url_with_credentials(self) -> None:
        """GitLab CI's origin carries the job token; fixbot's token goes to the server
        instead, and the push goes to the URL without the job's credentials."""
        url = "https://gitlab-ci-token:job-token@gitlab.example.com/group/name.git"
        header = self.forge.push_header(url)
        assert header == basic_auth("oauth2", KEY)
        remote = Remote("origin", url, header)
        assert remote.target == "https://gitlab.example.com/group/name.git"
        assert "job-token" not in str(remote.env())
        assert remote.env()["GIT_CONFIG_KEY_0"] == f"http.{remote.target}.extraHeader"

    def test_repr_hides_the_token(self) -> None:
        """The client's repr shows neither the token nor the headers holding it."""
        assert KEY not in repr(self.forge)


class TestProject:
    """How the project is named in paths, and its default branch."""

    async def test_default_branch(self, gitlab: GitLab, fake_forge: FakeForge) -> None:
        """GET projects/:id answers the default branch."""
        fake_forge.default_branch = "trunk"
        assert await gitlab.default_branch() == "trunk"
        (request,) = fake_forge.requests
        assert (request.method, request.path) == ("GET", "/api/v4/projects/group%2Fname")

    async def test_nested_path_is_encoded(self, fake_forge: FakeForge) -> None:
        """Every slash of a subgroup path is percent-encoded into one segment."""
        fake_forge.token = KEY
        fake_forge.gitlab_project_path = "group/sub group/name"
        forge = make(fake_forge, project="group/sub group/name")
        try:
            assert await forge.default_branch() == "main"
            assert await forge.find_open(BRANCH) is None
        finally:
            await forge.aclose()
        assert fake_forge.calls() == [
            ("GET", "/api/v4/projects/group%2Fsub%20group%2Fname"),
            ("GET", "/api/v4/projects/group%2Fsub%20group%2Fname/merge_requests"),
        ]

    async def test_numeric_id(self, fake_forge: FakeForge) -> None:
        """A numeric CI_PROJECT_ID is used as is."""
        fake_forge.token = KEY
        forge = make(fake_forge, project=str(fake_forge.gitlab_project_id))
        try:
            assert await forge.default_branch() == "main"
        finally:
            await forge.aclose()
        assert fake_forge.calls() == [("GET", "/api/v4/projects/42")]

    async def test_unknown_project(self, fake_forge: FakeForge) -> None:
        """A project the server does not have is a ForgeError, not an auth error."""
        fake_forge.token = KEY
        forge = make(fake_forge, project="group/other")
        try:
            with pytest.raises(ForgeError, match="HTTP 404") as caught:
                await forge.default_branch()
        finally:
            await forge.aclose()
        assert not isinstance(caught.value, ForgeAuthError)
        assert len(fake_forge.requests) == 1

    async def test_empty_project(self, gitlab: GitLab, fake_forge: FakeForge) -> None:
        """A project without a default branch (an empty one) is a ForgeError."""
        fake_forge.default_branch = None  # type: ignore[assignment]
        with pytest.raises(ForgeError, match="no default branch"):
            await gitlab.default_branch()


class TestFindOpen:
    """Finding the open merge request of a branch."""

    async def test_none(self, gitlab: GitLab, fake_forge: FakeForge) -> None:
        """No merge request: None, asked with state=opened and the source branch."""
        assert await gitlab.find_open(BRANCH) is None
        (request,) = fake_forge.requests
        assert (request.method, request.path) == ("GET", MRS)
        assert request.query["state"] == "opened"
        assert request.query["source_branch"] == BRANCH

    async def test_found(self, gitlab: GitLab, fake_forge: FakeForge) -> None:
        """The open one is found by iid and web URL; closed, merged and other branches are not."""
        fake_forge.add_review(BRANCH, state="closed")
        fake_forge.add_review(BRANCH, state="merged")
        fake_forge.add_review("someone/else")
        wanted = fake_forge.add_review(BRANCH)
        found = await gitlab.find_open(BRANCH)
        assert found == Review(
            number=wanted.number,
            url=f"{fake_forge.url}/group/name/-/merge_requests/{wanted.number}",
            branch=BRANCH,
        )


class TestOpen:
    """Opening a merge request."""

    async def test_open_then_find(self, gitlab: GitLab, fake_forge: FakeForge) -> None:
        """POST sends the documented fields; the new request is then found."""
        review = await gitlab.open(
            branch=BRANCH, base="main", title="Fix lint", body="Details", reviewers=[]
        )
        assert review.branch == BRANCH
        assert review.url.endswith(f"/group/name/-/merge_requests/{review.number}")
        (request,) = fake_forge.requests
        assert (request.method, request.path) == ("POST", MRS)
        assert request.json == {
            "source_branch": BRANCH,
            "target_branch": "main",
            "title": "Fix lint",
            "description": "Details",
            "remove_source_branch": True,
        }
        stored = fake_forge.reviews[review.number]
        assert (stored.branch, stored.base, stored.title, stored.body) == (
            BRANCH,
            "main",
            "Fix lint",
            "Details",
        )
        assert stored.remove_source_branch is True
        assert await gitlab.find_open(BRANCH) == review

    async def test_reviewers_resolved(self, gitlab: GitLab, fake_forge: FakeForge) -> None:
        """User names become reviewer_ids; unknown users and groups are skipped."""
        fake_forge.users = {"Alice": 7, "bob": 8}
        await gitlab.open(
            branch=BRANCH,
            base="main",
            title="t",
            body="b",
            reviewers=["alice", "@bob", "ghost", "@org/team", "org/team", "bob"],
        )
        lookups = [r.query["username"] for r in fake_forge.requests if r.path == "/api/v4/users"]
        assert lookups == ["alice", "bob", "ghost", "bob"]
        (post,) = [r for r in fake_forge.requests if r.method == "POST"]
        assert post.json["reviewer_ids"] == [7, 8]
        assert fake_forge.reviews[1].reviewers == ["Alice", "bob"]

    async def test_no_known_reviewer(self, gitlab: GitLab, fake_forge: FakeForge) -> None:
        """When no name is a user, the request is opened without reviewer_ids."""
        await gitlab.open(branch=BRANCH, base="main", title="t", body="b", reviewers=["ghost"])
        assert fake_forge.calls() == [("GET", "/api/v4/users"), ("POST", MRS)]
        assert "reviewer_ids" not in fake_forge.requests[-1].json

    async def test_already_open(self, gitlab: GitLab, fake_forge: FakeForge) -> None:
        """An open request for the branch (GitLab's 409, as after a POST that timed out and
        was retried): the open one is found and returned, never a second."""
        existing = fake_forge.add_review(BRANCH)
        review = await gitlab.open(branch=BRANCH, base="main", title="t", body="b", reviewers=[])
        assert review.number == existing.number
        assert len(fake_forge.reviews) == 1


class TestUpdate:
    """Refreshing an open merge request."""

    async def test_update(self, gitlab: GitLab, fake_forge: FakeForge) -> None:
        """PUT sends title and description to the request's iid."""
        seeded = fake_forge.add_review(BRANCH, title="old", body="old body")
        found = await gitlab.find_open(BRANCH)
        assert found is not None
        updated = await gitlab.update(found, title="new", body="new body")
        assert (updated.number, updated.url, updated.body) == (found.number, found.url, "new body")
        request = fake_forge.requests[-1]
        assert (request.method, request.path) == ("PUT", f"{MRS}/{seeded.number}")
        assert request.json == {"title": "new", "description": "new body"}
        assert (seeded.title, seeded.body) == ("new", "new body")

    async def test_missing(self, gitlab: GitLab) -> None:
        """Updating a request the server does not have is a ForgeError."""
        gone = Review(number=99, url="http://x", branch=BRANCH)
        with pytest.raises(ForgeError, match="HTTP 404"):
            await gitlab.update(gone, title="t", body="b")


class TestAuth:
    """The token: where it goes, and what a refusal does."""

    async def test_token_header_only(self, gitlab: GitLab, fake_forge: FakeForge) -> None:
        """Every request carries PRIVATE-TOKEN, and the token appears nowhere else."""
        await gitlab.open(branch=BRANCH, base="main", title="t", body="b", reviewers=["alice"])
        await gitlab.find_open(BRANCH)
        assert len(fake_forge.requests) == 3
        for request in fake_forge.requests:
            assert request.headers["private-token"] == KEY
            assert "authorization" not in request.headers
            assert request.headers["user-agent"] == "fixbot"
            assert KEY not in request.path + repr(request.query) + repr(request.json)

    async def test_wrong_token(self, fake_forge: FakeForge) -> None:
        """GitLab's 401 is a ForgeAuthError at once, without retrying."""
        fake_forge.token = KEY
        forge = make(fake_forge, token=WRONG_KEY)
        try:
            with pytest.raises(ForgeAuthError, match="401"):
                await forge.find_open(BRANCH)
        finally:
            await forge.aclose()
        assert len(fake_forge.requests) == 1

    async def test_forbidden(self, gitlab: GitLab, fake_forge: FakeForge) -> None:
        """A 403 without a rate limit is a ForgeAuthError at once."""
        fake_forge.fail_next(403)
        with pytest.raises(ForgeAuthError, match="403"):
            await gitlab.default_branch()
        assert len(fake_forge.requests) == 1


class TestRetries:
    """Rate limits and server errors."""

    async def test_rate_limit_retried(self, gitlab: GitLab, fake_forge: FakeForge) -> None:
        """A 429 with Retry-After: 0 is retried, and the retry succeeds."""
        fake_forge.fail_next(429, {"Retry-After": "0"})
        assert await gitlab.default_branch() == "main"
        assert fake_forge.calls() == [("GET", "/api/v4/projects/group%2Fname")] * 2

    async def test_retry_after_honoured(self, gitlab: GitLab, fake_forge: FakeForge) -> None:
        """The retry waits as long as Retry-After says."""
        fake_forge.fail_next(429, {"Retry-After": "0.3"})
        await gitlab.default_branch()
        first, second = fake_forge.requests
        assert second.at - first.at >= 0.3

    async def test_write_retried(self, gitlab: GitLab, fake_forge: FakeForge) -> None:
        """A POST that met a 502 is sent again and opens one request."""
        fake_forge.fail_next(502, {"Retry-After": "0"})
        await gitlab.open(branch=BRANCH, base="main", title="t", body="b", reviewers=[])
        assert fake_forge.calls() == [("POST", MRS)] * 2
        assert len(fake_forge.reviews) == 1

    async def test_server_error_forever(self, gitlab: GitLab, fake_forge: FakeForge) -> None:
        """500 on every attempt ends in a ForgeError after the instance's three attempts."""
        fake_forge.fail_next(500, times=None)
        # stamina's test mode drops the waits (and their jitter) but keeps our attempts.
        with (
            stamina.set_testing(True, attempts=100, cap=True),
            pytest.raises(ForgeError, match="gave up") as caught,
        ):
            await gitlab.find_open(BRANCH)
        assert not isinstance(caught.value, ForgeAuthError)
        assert len(fake_forge.requests) == 3


class TestFakeGitLab:
    """The fake itself refuses what GitLab refuses, so the tests above can fail."""

    @staticmethod
    def send(fake: FakeForge, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request to the fake's GitLab API with the right token unless told otherwise."""
        headers = kw.pop("headers", {"PRIVATE-TOKEN": fake.token})
        return httpx.request(method, fake.gitlab_api + path, headers=headers, **kw)

    def test_required_fields(self, fake_forge: FakeForge) -> None:
        """A merge request without title and target branch is a 400 naming both."""
        reply = self.send(
            fake_forge, "POST", "/projects/42/merge_requests", json={"source_branch": BRANCH}
        )
        assert reply.status_code == 400
        assert reply.json() == {"error": "target_branch is missing, title is missing"}
        assert fake_forge.reviews == {}

    def test_update_needs_an_attribute(self, fake_forge: FakeForge) -> None:
        """A PUT that changes nothing is a 400."""
        fake_forge.add_review(BRANCH)
        reply = self.send(fake_forge, "PUT", "/projects/42/merge_requests/1", json={})
        assert reply.status_code == 400

    def test_unencoded_path(self, fake_forge: FakeForge) -> None:
        """A project path with bare slashes matches no route: 404."""
        reply = self.send(fake_forge, "GET", "/projects/group/name")
        assert reply.status_code == 404

    def test_wrong_token(self, fake_forge: FakeForge) -> None:
        """A wrong or missing PRIVATE-TOKEN is GitLab's 401 body."""
        for headers in ({"PRIVATE-TOKEN": "nope"}, {"Authorization": f"Bearer {fake_forge.token}"}):
            reply = self.send(fake_forge, "GET", "/projects/42", headers=headers)
            assert (reply.status_code, reply.json()) == (401, {"message": "401 Unauthorized"})

    def test_failures_in_order(self, fake_forge: FakeForge) -> None:
        """Scripted failures answer the next requests in order, then the routes answer."""
        fake_forge.fail_next(429, {"Retry-After": "7"})
        fake_forge.fail_next(503, times=2)
        replies = [self.send(fake_forge, "GET", "/projects/42") for _ in range(4)]
        assert [r.status_code for r in replies] == [429, 503, 503, 200]
        assert replies[0].headers["retry-after"] == "7"
        assert replies[0].json() == {"message": "429 Too Many Requests"}
