"""GitHub pull requests through the real client against a fake GitHub on a real socket."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
import stamina

from fixbot.orchestrator._forge import ForgeAuthError, ForgeError, GitHub, Review, basic_auth
from tests.fake_forge import FakeForge
from tests.fake_forge import fake_forge as _fake_forge_fixture

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio
fake_forge = _fake_forge_fixture  # the fixture, under its own name

KEY = "ghs_Sekr3t0123456789abcdef"  # the token
WRONG_KEY = "ghs_not-this-one"
BRANCH = "fixbot/ruff"
PULLS = "/repos/owner/name/pulls"


def make(fake: FakeForge, repository: str = "owner/name", token: str = KEY) -> GitHub:
    """A GitHub client for the fake, retrying three times with short waits."""
    forge = GitHub(api_url=fake.github_api, repository=repository, token=token, server_url=fake.url)
    forge.http.attempts = 3
    forge.http.wait_initial = 0.01
    return forge


@pytest.fixture
async def github(fake_forge: FakeForge) -> AsyncIterator[GitHub]:
    """A client for the fake's repository `owner/name`, with the token the fake expects."""
    fake_forge.token = KEY
    forge = make(fake_forge)
    try:
        yield forge
    finally:
        await forge.aclose()


class TestPushHeader:
    """Which remotes `git push` sends the token to."""

    forge = GitHub(
        api_url="https://api.github.com",
        repository="owner/name",
        token=KEY,
        server_url="https://github.com",
    )

    def test_same_server(self) -> None:
        """A remote on github.com gets Basic auth with user x-access-token."""
        header = self.forge.push_header("https://github.com/owner/name.git")
        assert header == basic_auth("x-access-token", KEY)

    @pytest.mark.parametrize(
        "remote",
        [
            "https://gitlab.com/owner/name.git",
            "https://github.com.evil.test/owner/name.git",
            "http://github.com/owner/name.git",
            "git@github.com:owner/name.git",
        ],
        ids=["other-host", "suffixed-host", "http", "scp-like"],
    )
    def test_other_remote(self, remote: str) -> None:
        """Another host or scheme, or SSH: no header."""
        assert self.forge.push_header(remote) is None


class TestRepository:
    """The repository's default branch."""

    async def test_default_branch(self, github: GitHub, fake_forge: FakeForge) -> None:
        """GET /repos/{owner}/{repo} answers the default branch."""
        fake_forge.default_branch = "trunk"
        assert await github.default_branch() == "trunk"
        assert fake_forge.calls() == [("GET", "/repos/owner/name")]

    async def test_unknown_repository(self, fake_forge: FakeForge) -> None:
        """A repository the server does not have is a ForgeError, not an auth error."""
        fake_forge.token = KEY
        forge = make(fake_forge, repository="owner/other")
        try:
            with pytest.raises(ForgeError, match="HTTP 404") as caught:
                await forge.default_branch()
        finally:
            await forge.aclose()
        assert not isinstance(caught.value, ForgeAuthError)


class TestFindOpen:
    """Finding the open pull request of a branch."""

    async def test_none(self, github: GitHub, fake_forge: FakeForge) -> None:
        """No pull request: None, asked with state=open and head=owner:branch."""
        assert await github.find_open(BRANCH) is None
        (request,) = fake_forge.requests
        assert (request.method, request.path) == ("GET", PULLS)
        assert request.query["state"] == "open"
        assert request.query["head"] == f"owner:{BRANCH}"

    async def test_found(self, github: GitHub, fake_forge: FakeForge) -> None:
        """The open one is found by number and URL; closed ones and other branches are not."""
        fake_forge.add_review(BRANCH, state="closed")
        fake_forge.add_review("someone/else")
        wanted = fake_forge.add_review(BRANCH)
        assert await github.find_open(BRANCH) == Review(
            number=wanted.number,
            url=f"{fake_forge.url}/owner/name/pull/{wanted.number}",
            branch=BRANCH,
        )


class TestOpen:
    """Opening a pull request."""

    async def test_open_then_find(self, github: GitHub, fake_forge: FakeForge) -> None:
        """POST sends title, head, base and body, and no reviewer request when none are asked."""
        review = await github.open(
            branch=BRANCH, base="main", title="Fix lint", body="Details", reviewers=[]
        )
        (request,) = fake_forge.requests
        assert (request.method, request.path) == ("POST", PULLS)
        assert request.json == {
            "title": "Fix lint",
            "head": BRANCH,
            "base": "main",
            "body": "Details",
        }
        stored = fake_forge.reviews[review.number]
        assert (stored.branch, stored.base, stored.title, stored.body) == (
            BRANCH,
            "main",
            "Fix lint",
            "Details",
        )
        assert await github.find_open(BRANCH) == review

    async def test_reviewers(self, github: GitHub, fake_forge: FakeForge) -> None:
        """Users and `org/team` teams are requested in one call after the POST."""
        review = await github.open(
            branch=BRANCH, base="main", title="t", body="b", reviewers=["alice", "owner/reviewers"]
        )
        assert fake_forge.calls() == [
            ("POST", PULLS),
            ("POST", f"{PULLS}/{review.number}/requested_reviewers"),
        ]
        assert fake_forge.requests[-1].json == {
            "reviewers": ["alice"],
            "team_reviewers": ["reviewers"],
        }
        stored = fake_forge.reviews[review.number]
        assert (stored.reviewers, stored.teams) == (["alice"], ["reviewers"])

    async def test_not_a_collaborator(self, github: GitHub, fake_forge: FakeForge) -> None:
        """GitHub's 422 for a reviewer who is not a collaborator leaves the PR open, unasked."""
        review = await github.open(
            branch=BRANCH, base="main", title="t", body="b", reviewers=["ghost"]
        )
        assert fake_forge.requests[-1].path.endswith(f"/pulls/{review.number}/requested_reviewers")
        (stored,) = fake_forge.reviews.values()
        assert (stored.branch, stored.reviewers) == (BRANCH, [])

    async def test_already_open(self, github: GitHub, fake_forge: FakeForge) -> None:
        """An open request for the branch (GitHub's 422, as after a POST that timed out and
        was retried): the open one is found and returned, never a second."""
        existing = fake_forge.add_review(BRANCH)
        review = await github.open(branch=BRANCH, base="main", title="t", body="b", reviewers=[])
        assert review.number == existing.number
        assert len(fake_forge.reviews) == 1


class TestUpdate:
    """Refreshing an open pull request."""

    async def test_update(self, github: GitHub, fake_forge: FakeForge) -> None:
        """PATCH sends title and body to the pull request's number."""
        seeded = fake_forge.add_review(BRANCH, title="old", body="old body")
        found = await github.find_open(BRANCH)
        assert found is not None
        updated = await github.update(found, title="new", body="new body")
        assert (updated.number, updated.url, updated.body) == (found.number, found.url, "new body")
        request = fake_forge.requests[-1]
        assert (request.method, request.path) == ("PATCH", f"{PULLS}/{seeded.number}")
        assert request.json == {"title": "new", "body": "new body"}
        assert (seeded.title, seeded.body) == ("new", "new body")


class TestAuth:
    """The token: where it goes, and what a refusal does."""

    async def test_token_header_only(self, github: GitHub, fake_forge: FakeForge) -> None:
        """Every request carries the Bearer token and API version, and the token nowhere else."""
        await github.open(branch=BRANCH, base="main", title="t", body="b", reviewers=["alice"])
        await github.find_open(BRANCH)
        assert len(fake_forge.requests) == 3
        for request in fake_forge.requests:
            assert request.headers["authorization"] == f"Bearer {KEY}"
            assert request.headers["accept"] == "application/vnd.github+json"
            assert request.headers["x-github-api-version"] == "2022-11-28"
            assert KEY not in request.path + repr(request.query) + repr(request.json)

    async def test_wrong_token(self, fake_forge: FakeForge) -> None:
        """GitHub's 401 is a ForgeAuthError at once, without retrying."""
        fake_forge.token = KEY
        forge = make(fake_forge, token=WRONG_KEY)
        try:
            with pytest.raises(ForgeAuthError, match="Bad credentials"):
                await forge.default_branch()
        finally:
            await forge.aclose()
        assert len(fake_forge.requests) == 1

    async def test_forbidden(self, github: GitHub, fake_forge: FakeForge) -> None:
        """A 403 that is no rate limit is a ForgeAuthError at once."""
        fake_forge.fail_next(403, body={"message": "Resource not accessible by integration"})
        with pytest.raises(ForgeAuthError, match="not accessible"):
            await github.find_open(BRANCH)
        assert len(fake_forge.requests) == 1


class TestRetries:
    """Rate limits and server errors."""

    async def test_primary_rate_limit(self, github: GitHub, fake_forge: FakeForge) -> None:
        """A 403 with no requests remaining waits for the reset, then succeeds."""
        reset = str(int(time.time()) - 1)  # already past: no wait
        fake_forge.fail_next(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
        assert await github.default_branch() == "main"
        assert fake_forge.calls() == [("GET", "/repos/owner/name")] * 2

    async def test_secondary_rate_limit(self, github: GitHub, fake_forge: FakeForge) -> None:
        """A 403 with Retry-After (a secondary rate limit) is retried."""
        fake_forge.fail_next(403, {"Retry-After": "0"})
        assert await github.find_open(BRANCH) is None
        assert len(fake_forge.requests) == 2

    async def test_too_many_requests(self, github: GitHub, fake_forge: FakeForge) -> None:
        """A 429 with Retry-After: 0 is retried, and the retry succeeds."""
        fake_forge.fail_next(429, {"Retry-After": "0"})
        assert await github.default_branch() == "main"
        assert len(fake_forge.requests) == 2

    async def test_server_error_forever(self, github: GitHub, fake_forge: FakeForge) -> None:
        """500 on every attempt ends in a ForgeError after the instance's three attempts."""
        fake_forge.fail_next(500, times=None)
        # stamina's test mode drops the waits (and their jitter) but keeps our attempts.
        with (
            stamina.set_testing(True, attempts=100, cap=True),
            pytest.raises(ForgeError, match="gave up") as caught,
        ):
            await github.default_branch()
        assert not isinstance(caught.value, ForgeAuthError)
        assert len(fake_forge.requests) == 3


class TestRedirectsAndTeams:
    """What the API answers that fixbot must not take for success."""

    async def test_a_redirect_is_an_error(self, github: GitHub, fake_forge: FakeForge) -> None:
        """A 302 is neither followed (the token would go along) nor a success."""
        fake_forge.fail_next(302, {"Location": "https://evil.example/x"})
        with pytest.raises(ForgeError, match=r"HTTP 302 to https://evil\.example/x"):
            await github.default_branch()
        assert len(fake_forge.requests) == 1

    async def test_only_the_owner_s_teams_are_asked(
        self, github: GitHub, fake_forge: FakeForge
    ) -> None:
        """`otherorg/reviewers` is not this owner's `reviewers` team."""
        await github.open(
            branch=BRANCH,
            base="main",
            title="t",
            body="b",
            reviewers=["alice", "otherorg/reviewers", "owner/reviewers"],
        )
        assert fake_forge.requests[-1].json == {
            "reviewers": ["alice"],
            "team_reviewers": ["reviewers"],
        }
