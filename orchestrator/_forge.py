"""Where pull requests live: one `Forge` protocol, GitHub's REST API behind it.

A forge opens, finds and updates one review (a GitHub pull request, a GitLab
merge request) per branch, and says how `git push` authenticates to its server.
Every request goes through `ForgeHttp`: the token in one header and nowhere
else, stamina retries on rate limits and 5xx (honouring Retry-After), and 401
or 403 ending the run with exit 3 (`ForgeAuthError`).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

import httpx
import stamina
import structlog

from fixbot.agents import honour_retry_after, parse_retry_after
from fixbot.sandbox import ServiceError

if TYPE_CHECKING:
    from collections.abc import Mapping

log = structlog.get_logger("fixbot")
USER_AGENT = "fixbot"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class ForgeError(ServiceError):
    """The forge's API failed or answered what fixbot cannot use (exit 3)."""


class ForgeAuthError(ForgeError):
    """401 or 403 (not a rate limit): the token is missing, wrong or lacks a permission."""


class _TransientError(ForgeError):
    def __init__(self, message: str, wait: float | None) -> None:
        super().__init__(message)
        self.retry_after = wait


@dataclass(frozen=True, slots=True)
class Review:
    """An open pull or merge request."""

    number: int
    url: str
    branch: str
    body: str = ""  # its description as it stands (people may have written in it)


class Forge(Protocol):
    """What publishing needs from GitHub or GitLab."""

    name: str
    body_limit: int  # the most characters a description may have

    def push_header(self, remote_url: str) -> str | None:
        """The `Authorization` header `git push` sends to this remote, if it is ours."""
        ...

    async def default_branch(self) -> str:
        """The branch a review targets when none is configured."""
        ...

    async def find_open(self, branch: str) -> Review | None:
        """The open review whose source is `branch`, if any."""
        ...

    async def open(
        self, *, branch: str, base: str, title: str, body: str, reviewers: list[str]
    ) -> Review:
        """Open a review of `branch` into `base`, asking `reviewers` to review it."""
        ...

    async def update(self, review: Review, *, title: str, body: str) -> Review:
        """Refresh an open review's title and description."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP client."""
        ...


@dataclass(slots=True)
class ForgeHttp:
    """JSON over httpx with the token in one header, retried on rate limits and 5xx."""

    base_url: str
    headers: dict[str, str] = field(repr=False)  # the token is in one of them
    attempts: int = 5
    timeout: float = 120.0  # seconds of retrying, waits included
    wait_initial: float = 1.0
    wait_jitter: float = 1.0
    client: httpx.AsyncClient = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.client = httpx.AsyncClient(
            base_url=self.base_url.rstrip("/") + "/",
            headers={"User-Agent": USER_AGENT, **self.headers},
            timeout=httpx.Timeout(30.0, connect=10.0),
            follow_redirects=False,
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        ok_missing: bool = False,
    ) -> Any:
        """The decoded JSON reply (None for 404 when `ok_missing`), after retries."""
        try:
            async for attempt in stamina.retry_context(
                on=honour_retry_after(_TransientError, self.timeout),
                attempts=self.attempts,
                timeout=self.timeout,
                wait_initial=self.wait_initial,
                wait_max=30.0,
                wait_jitter=self.wait_jitter,
            ):
                with attempt:
                    return await self._once(method, path, json, params, ok_missing=ok_missing)
        except _TransientError as exc:
            raise ForgeError(f"{exc} (gave up after retrying)") from None
        raise AssertionError("unreachable: stamina returns or raises")

    async def _once(
        self,
        method: str,
        path: str,
        body: Any,
        params: Mapping[str, str] | None,
        *,
        ok_missing: bool,
    ) -> Any:
        what = f"{method} {path.split('?', maxsplit=1)[0]}"
        try:
            response = await self.client.request(method, path.lstrip("/"), json=body, params=params)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise _TransientError(f"{what}: {type(exc).__name__}", None) from None
        except httpx.HTTPError as exc:
            raise ForgeError(f"{what}: {type(exc).__name__}") from None
        _refuse(what, response)
        if response.status_code == 404 and ok_missing:
            return None
        if response.status_code >= 400:
            raise ForgeError(f"{what}: HTTP {response.status_code} ({_message(response)})")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ForgeError(f"{what}: the reply is not JSON") from None

    async def aclose(self) -> None:
        """Close the pooled client."""
        await self.client.aclose()


def _refuse(what: str, response: httpx.Response) -> None:
    """Raise for a rate limit or 5xx (retried), a refused token, or a redirect."""
    status = response.status_code
    wait = parse_retry_after(response.headers)
    limited = response.headers.get("x-ratelimit-remaining") == "0"
    if status in RETRY_STATUS or (status == 403 and (limited or wait is not None)):
        if wait is None and limited:
            wait = _until_reset(response.headers)
        raise _TransientError(f"{what}: HTTP {status}", wait)
    if status in {401, 403}:
        raise ForgeAuthError(f"{what}: HTTP {status} ({_message(response)}); check the token")
    if 300 <= status < 400:
        # Not followed (the token would go along), and not a success either.
        raise ForgeError(f"{what}: HTTP {status} to {response.headers.get('location', '?')}")


def _until_reset(headers: Mapping[str, str]) -> float | None:
    try:
        return max(0.0, float(headers["x-ratelimit-reset"]) - time.time())
    except (KeyError, ValueError):
        return None


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase
    text = data.get("message") if isinstance(data, dict) else None
    return " ".join(str(text or response.reason_phrase).split())[:200]


def basic_auth(user: str, token: str) -> str:
    """An `Authorization: Basic` header value, as git's HTTP transport sends it."""
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


def same_server(remote_url: str, server_url: str) -> bool:
    """Whether an HTTP(S) remote lives on `server_url` (scheme, host and port alike);
    credentials in the remote's URL are not sent where fixbot's token goes."""
    remote, server = urlsplit(remote_url), urlsplit(server_url)
    return remote.scheme in {"http", "https"} and (
        remote.scheme,
        remote.hostname,
        remote.port,
    ) == (server.scheme, server.hostname, server.port)


@dataclass(slots=True)
class GitHub:
    """Pull requests through GitHub's REST API (`GITHUB_API_URL`)."""

    api_url: str
    repository: str  # owner/name
    token: str = field(repr=False)
    server_url: str = "https://github.com"
    name: str = "GitHub"
    body_limit: int = 65_536
    http: ForgeHttp = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.http = ForgeHttp(
            self.api_url,
            {
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )

    @property
    def _repo(self) -> str:
        owner, _, name = self.repository.partition("/")
        return f"repos/{quote(owner, safe='')}/{quote(name, safe='')}"

    def push_header(self, remote_url: str) -> str | None:
        """GitHub takes a token as the password of any user name over HTTPS."""
        if not same_server(remote_url, self.server_url):
            return None
        return basic_auth("x-access-token", self.token)

    async def default_branch(self) -> str:
        """The repository's default branch."""
        data = await self.http.call("GET", self._repo)
        return str(_field(data, "default_branch", "GET repository"))

    async def find_open(self, branch: str) -> Review | None:
        """The open pull request from `branch` in this repository."""
        owner = self.repository.partition("/")[0]
        data = await self.http.call(
            "GET",
            f"{self._repo}/pulls",
            params={"state": "open", "head": f"{owner}:{branch}", "per_page": "10"},
        )
        if not isinstance(data, list):
            raise ForgeError("GET pulls: the reply is not a list")
        for pull in data:
            if isinstance(pull, dict) and pull.get("head", {}).get("ref") == branch:
                return _review(pull, branch)
        return None

    async def open(
        self, *, branch: str, base: str, title: str, body: str, reviewers: list[str]
    ) -> Review:
        """POST a pull request, then request reviewers (a team as `org/team`)."""
        try:
            data = await self.http.call(
                "POST",
                f"{self._repo}/pulls",
                json={"title": title, "head": branch, "base": base, "body": body},
            )
        except ForgeAuthError:
            raise
        except ForgeError as exc:
            # A POST that timed out may have opened it: retried, GitHub says 422.
            if "HTTP 422" in str(exc) and (found := await self.find_open(branch)):
                return found
            raise
        review = _review(data, branch)
        owner = self.repository.partition("/")[0].lower()
        users = [r for r in reviewers if "/" not in r]
        # Only the repository owner's teams can review; another org's would be misread.
        teams = [r.split("/", 1)[1] for r in reviewers if r.lower().startswith(f"{owner}/")]
        if users or teams:
            try:
                await self.http.call(
                    "POST",
                    f"{self._repo}/pulls/{review.number}/requested_reviewers",
                    json={"reviewers": users, "team_reviewers": teams},
                )
            except ForgeAuthError:
                raise
            except ForgeError as exc:
                # An owner who is not a collaborator any more: the PR stands without them.
                log.warning("forge.reviewers_refused", pull=review.number, why=str(exc))
        return review

    async def update(self, review: Review, *, title: str, body: str) -> Review:
        """PATCH the pull request's title and body."""
        data = await self.http.call(
            "PATCH", f"{self._repo}/pulls/{review.number}", json={"title": title, "body": body}
        )
        return _review(data, review.branch)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()


def _field(data: Any, key: str, what: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise ForgeError(f"{what}: the reply has no {key!r}")
    return data[key]


def _review(data: Any, branch: str) -> Review:
    return Review(
        number=int(_field(data, "number", "pull request")),
        url=str(_field(data, "html_url", "pull request")),
        branch=branch,
        body=str(data.get("body") or ""),
    )
