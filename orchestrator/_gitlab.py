"""GitLab merge requests behind the same `Forge` protocol as GitHub's pull requests.

A run in GitLab CI publishes the same way as one in GitHub Actions: one merge
request per branch, found again and refreshed on the next run. GitLab's REST API
v4 differs from GitHub's in the details this module keeps out of the rest of
fixbot: the token travels in `PRIVATE-TOKEN`, a project is named by its numeric
id or its URL-encoded `group/name` path, a review is numbered by its `iid`, and
reviewers are user ids, so names are looked up first. Requests, retries and
errors are `ForgeHttp`'s, as for GitHub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import structlog

from ._forge import ForgeAuthError, ForgeError, ForgeHttp, Review, _field, basic_auth, same_server

log = structlog.get_logger("fixbot")


@dataclass(slots=True)
class GitLab:
    """Merge requests through GitLab's REST API v4 (`CI_API_V4_URL`)."""

    api_url: str  # e.g. https://gitlab.com/api/v4
    project: str  # CI_PROJECT_ID: a numeric id or a `group/name` path
    token: str = field(repr=False)
    server_url: str = "https://gitlab.com"
    name: str = "GitLab"
    body_limit: int = 1_000_000  # GitLab refuses descriptions over 1,048,576 characters
    http: ForgeHttp = field(init=False, repr=False)  # its headers hold the token

    def __post_init__(self) -> None:
        self.http = ForgeHttp(self.api_url, {"PRIVATE-TOKEN": self.token})

    @property
    def _project(self) -> str:
        # A path's slashes are encoded too: `group%2Fname`, as GitLab requires.
        return f"projects/{quote(self.project, safe='')}"

    def push_header(self, remote_url: str) -> str | None:
        """GitLab takes a personal, project or group access token as user `oauth2`'s password."""
        if not same_server(remote_url, self.server_url):
            return None
        return basic_auth("oauth2", self.token)

    async def default_branch(self) -> str:
        """The project's default branch."""
        data = await self.http.call("GET", self._project)
        branch = _field(data, "default_branch", "GET project")
        if not isinstance(branch, str) or not branch:
            raise ForgeError("GET project: the project has no default branch (is it empty?)")
        return branch

    async def find_open(self, branch: str) -> Review | None:
        """The open merge request from `branch` of this project (not of a fork)."""
        data = await self.http.call(
            "GET",
            f"{self._project}/merge_requests",
            params={"state": "opened", "source_branch": branch, "per_page": "20"},
        )
        if not isinstance(data, list):
            raise ForgeError("GET merge_requests: the reply is not a list")
        for request in data:
            if (
                isinstance(request, dict)
                and request.get("source_branch") == branch
                and request.get("source_project_id") == request.get("target_project_id")
            ):
                return _review(request, branch)
        return None

    async def open(
        self, *, branch: str, base: str, title: str, body: str, reviewers: list[str]
    ) -> Review:
        """POST a merge request that deletes its branch once merged, with `reviewers` as users.

        Names are looked up first (GitLab wants user ids); a name that is not a user,
        and a group (`org/team`, which GitLab cannot ask to review), is skipped and logged.
        """
        payload: dict[str, Any] = {
            "source_branch": branch,
            "target_branch": base,
            "title": title,
            "description": body,
            "remove_source_branch": True,
        }
        if reviewer_ids := await self._user_ids(reviewers):
            payload["reviewer_ids"] = reviewer_ids
        try:
            data = await self.http.call("POST", f"{self._project}/merge_requests", json=payload)
        except ForgeAuthError:
            raise
        except ForgeError as exc:
            # A POST that timed out may have opened it: retried, GitLab says 409.
            if "HTTP 409" in str(exc) and (found := await self.find_open(branch)):
                return found
            raise
        return _review(data, branch)

    async def update(self, review: Review, *, title: str, body: str) -> Review:
        """PUT the merge request's title and description."""
        data = await self.http.call(
            "PUT",
            f"{self._project}/merge_requests/{review.number}",
            json={"title": title, "description": body},
        )
        return _review(data, review.branch)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    async def _user_ids(self, names: list[str]) -> list[int]:
        ids: list[int] = []
        for raw in names:
            name = raw.strip().removeprefix("@")
            if not name or "/" in name:
                log.warning("forge.reviewer_skipped", reviewer=raw, reason="not a GitLab user name")
                continue
            try:
                found = await self.http.call("GET", "users", params={"username": name})
            except ForgeAuthError:
                raise
            except ForgeError as exc:
                # The merge request stands without this reviewer.
                log.warning("forge.reviewer_skipped", reviewer=raw, reason=str(exc))
                continue
            user_id = _user_id(found, name)
            if user_id is None:
                log.warning("forge.reviewer_skipped", reviewer=raw, reason="no such user")
            elif user_id not in ids:
                ids.append(user_id)
        return ids


def _user_id(data: Any, name: str) -> int | None:
    if not isinstance(data, list):
        raise ForgeError("GET users: the reply is not a list")
    for user in data:
        # GitLab matches user names without regard to case.
        if isinstance(user, dict) and str(user.get("username", "")).lower() == name.lower():
            return int(_field(user, "id", "GET users"))
    return None


def _review(data: Any, branch: str) -> Review:
    return Review(
        number=int(_field(data, "iid", "merge request")),
        url=str(_field(data, "web_url", "merge request")),
        branch=branch,
        body=str(data.get("description") or ""),
    )
