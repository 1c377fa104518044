"""A fake GitHub and GitLab on one real 127.0.0.1 socket, holding one repository's reviews.

Publishing talks to a forge the tests cannot reach, so this speaks the part of
each REST API fixbot uses, with the checks the real ones make: the token in the
right header (401 otherwise), the required fields of a body (GitLab: 400, GitHub:
422), one open review per branch (GitLab: 409, GitHub: 422), 404 for another
project or an unencoded project path. Every request is recorded; `fail_next`
scripts failures (a 429 with Retry-After, a 403, 500s forever) ahead of the routes.

GitLab's API lives under `/api/v4` (`fake.gitlab_api`), GitHub's at the root
(`fake.github_api`, like api.github.com). Both forges share `reviews`, numbered
from 1: a test may seed one with `add_review` and read what the client did there.

In a test:

    from tests.fake_forge import FakeForge
    from tests.fake_forge import fake_forge as _fixture

    fake_forge = _fixture  # a plain import of the fixture trips ruff's F401/F811

    async def test_x(fake_forge: FakeForge):
        fake_forge.token = "s3cret"
        fake_forge.fail_next(429, {"Retry-After": "0"})
        ...  # GitLab(fake_forge.gitlab_api, "group/name", "s3cret")
        assert [r.method for r in fake_forge.requests] == ["GET", "GET"]

To add routes: write a handler `(fake, call) -> Reply` and list it, with its
method and a path pattern, in that forge's table (`GITLAB.routes`, `GITHUB.routes`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from tests.loopback import QuietHandler, QuietServer, Served

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str  # as sent, percent-encoding kept, without the query
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any  # the decoded body, None when there was none
    at: float  # time.monotonic() when it arrived


@dataclass(frozen=True)
class Reply:
    """What the server answers: a status, a JSON body and extra headers."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class FakeReview:
    """A pull or merge request, in neither forge's words."""

    number: int
    branch: str
    base: str
    title: str
    body: str
    state: str = "open"  # open, closed or merged
    reviewers: list[str] = field(default_factory=list)  # user names
    teams: list[str] = field(default_factory=list)  # GitHub team slugs
    remove_source_branch: bool | None = None  # GitLab only


@dataclass(frozen=True)
class Call:
    """A request that reached a route: its path parameters decoded."""

    params: dict[str, str]
    query: dict[str, str]
    json: Any


DEFAULT_KEY = "s3cret"
_NOT_JSON = "<a body that is not JSON>"  # Recorded.json for such a body

Handler = Callable[["FakeForge", Call], Reply]


@dataclass(frozen=True)
class Route:
    """A method and a path pattern (`{name}` matches one encoded segment) of one forge."""

    method: str
    pattern: str
    handler: Handler

    def match(self, path: str) -> dict[str, str] | None:
        """The decoded parameters when `path` fits the pattern."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.pattern)
        found = re.fullmatch(regex, path)
        return None if found is None else {k: unquote(v) for k, v in found.groupdict().items()}


@dataclass(frozen=True)
class Api:
    """One forge's API: where it lives, how it checks the token, and its routes."""

    name: str
    prefix: str
    authorized: Callable[[Mapping[str, str], str], bool]  # (lower-case headers, token)
    unauthorized: Reply
    not_found: Reply
    routes: list[Route]


@dataclass
class _Failure:
    reply: Reply
    times: int | None  # None: every request from now on


class FakeForge(Served):
    """The server: start it, point a forge at `.gitlab_api` or `.github_api`, read `.requests`."""

    def __init__(self, *, port: int = 0) -> None:
        self.token = DEFAULT_KEY  # the only token both APIs accept
        self.default_branch = "main"
        self.gitlab_project_id = 42
        self.gitlab_project_path = "group/name"
        self.github_repo = "owner/name"
        self.users: dict[str, int] = {"alice": 101, "bob": 102}  # user name -> id
        self.teams: set[str] = {"reviewers"}  # GitHub team slugs of the repository's owner
        self.reviews: dict[int, FakeReview] = {}
        self.requests: list[Recorded] = []
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        server = _Server(("127.0.0.1", port), _Handler)
        server.fake = self
        self._serve(server)

    @property
    def url(self) -> str:
        """The server's base URL, as a forge's `server_url`."""
        return self.root_url

    def calls(self) -> list[tuple[str, str]]:
        """(method, path) of every request seen, in order."""
        return [(r.method, r.path) for r in self.requests]

    @property
    def gitlab_api(self) -> str:
        """GitLab's `CI_API_V4_URL` on this server."""
        return self.url + GITLAB.prefix

    @property
    def github_api(self) -> str:
        """GitHub's `GITHUB_API_URL` on this server."""
        return self.url + GITHUB.prefix

    def fail_next(
        self,
        status: int,
        headers: Mapping[str, str] | None = None,
        *,
        body: Any = None,
        times: int | None = 1,
    ) -> None:
        """Answer the next `times` requests (None: all of them) with `status`, whatever they ask.

        Queued failures are used in order; the body defaults to `{"message": "429 Too Many
        Requests"}` and the like.
        """
        if body is None:
            body = {"message": f"{status} {HTTPStatus(status).phrase}"}
        with self._lock:
            self._failures.append(_Failure(Reply(status, body, dict(headers or {})), times))

    def add_review(
        self, branch: str, *, base: str = "main", title: str = "a title", body: str = "", **kw: Any
    ) -> FakeReview:
        """Seed a review (open unless `state=` says otherwise) as if opened earlier."""
        with self._lock:
            return self._add(branch, base, title, body, **kw)

    def _add(self, branch: str, base: str, title: str, body: str, **kw: Any) -> FakeReview:
        number = max(self.reviews, default=0) + 1
        review = FakeReview(number, branch, base, title, body, **kw)
        self.reviews[number] = review
        return review

    def _answer(self, record: Recorded) -> Reply:
        with self._lock:
            self.requests.append(record)
            if (scripted := self._scripted()) is not None:
                return scripted
            if record.json is _NOT_JSON:
                return Reply(400, {"message": "400 Bad request - the body is not JSON"})
            api = GITLAB if record.path.startswith(GITLAB.prefix + "/") else GITHUB
            if not api.authorized(record.headers, self.token):
                return api.unauthorized
            return self._route(api, record)

    def _scripted(self) -> Reply | None:
        if not self._failures:
            return None
        failure = self._failures[0]
        if failure.times is not None:
            failure.times -= 1
            if failure.times <= 0:
                self._failures.pop(0)
        return failure.reply

    def _route(self, api: Api, record: Recorded) -> Reply:
        other_method = False
        for route in api.routes:
            params = route.match(record.path)
            if params is None:
                continue
            if route.method != record.method:
                other_method = True
                continue
            try:
                return route.handler(self, Call(params, record.query, record.json))
            except Exception as exc:  # noqa: BLE001 - a broken handler answers 500, visibly
                return Reply(500, {"message": f"{api.name} fake: handler raised {exc!r}"})
        if other_method:
            return Reply(405, {"message": "405 Method Not Allowed"})
        return api.not_found


# GitLab: https://docs.gitlab.com/api/merge_requests/, /api/projects/, /api/users/


def _gitlab_authorized(headers: Mapping[str, str], token: str) -> bool:
    return bool(token) and headers.get("private-token") == token


def _gitlab_project(fake: FakeForge, call: Call) -> Reply | None:
    """None when the route's project is this fake's (by id or by path), else its 404."""
    if call.params["project"] in {str(fake.gitlab_project_id), fake.gitlab_project_path}:
        return None
    return Reply(404, {"message": "404 Project Not Found"})


def _gitlab_mr(fake: FakeForge, review: FakeReview) -> dict[str, Any]:
    state = {"open": "opened"}.get(review.state, review.state)
    reviewers = [{"id": fake.users.get(n, 0), "username": n} for n in review.reviewers]
    return {
        "id": 1000 + review.number,
        "iid": review.number,
        "project_id": fake.gitlab_project_id,
        "source_project_id": fake.gitlab_project_id,
        "target_project_id": fake.gitlab_project_id,
        "title": review.title,
        "description": review.body,
        "state": state,
        "source_branch": review.branch,
        "target_branch": review.base,
        "reviewers": reviewers,
        "force_remove_source_branch": review.remove_source_branch,
        "web_url": f"{fake.url}/{fake.gitlab_project_path}/-/merge_requests/{review.number}",
    }


def _gitlab_missing(*names: str) -> Reply:
    return Reply(400, {"error": ", ".join(f"{n} is missing" for n in names)})


def gitlab_get_project(fake: FakeForge, call: Call) -> Reply:
    """GET /projects/:id."""
    if (wrong := _gitlab_project(fake, call)) is not None:
        return wrong
    return Reply(
        200,
        {
            "id": fake.gitlab_project_id,
            "path_with_namespace": fake.gitlab_project_path,
            "default_branch": fake.default_branch,
            "web_url": f"{fake.url}/{fake.gitlab_project_path}",
        },
    )


def gitlab_list_mrs(fake: FakeForge, call: Call) -> Reply:
    """GET /projects/:id/merge_requests?state=&source_branch=&target_branch=."""
    if (wrong := _gitlab_project(fake, call)) is not None:
        return wrong
    state = call.query.get("state", "all")
    if state not in {"opened", "closed", "locked", "merged", "all"}:
        return Reply(400, {"error": "state does not have a valid value"})
    found = [
        _gitlab_mr(fake, r)
        for r in sorted(fake.reviews.values(), key=lambda r: -r.number)  # newest first
        if state in {"all", {"open": "opened"}.get(r.state, r.state)}
        and call.query.get("source_branch", r.branch) == r.branch
        and call.query.get("target_branch", r.base) == r.base
    ]
    return Reply(200, found)


def gitlab_create_mr(fake: FakeForge, call: Call) -> Reply:
    """POST /projects/:id/merge_requests (source_branch, target_branch, title required)."""
    if (wrong := _gitlab_project(fake, call)) is not None:
        return wrong
    body = call.json if isinstance(call.json, dict) else {}
    required = ("source_branch", "target_branch", "title")
    if missing := [n for n in required if not isinstance(body.get(n), str) or not body[n]]:
        return _gitlab_missing(*missing)
    ids = body.get("reviewer_ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        return Reply(400, {"error": "reviewer_ids is invalid"})
    if not isinstance(body.get("description", ""), str):
        return Reply(400, {"error": "description is invalid"})
    for review in fake.reviews.values():
        if review.state == "open" and (review.branch, review.base) == (
            body["source_branch"],
            body["target_branch"],
        ):
            message = "Another open merge request already exists for this source branch"
            return Reply(409, {"message": [f"{message}: !{review.number}"]})
    names = {i: n for n, i in fake.users.items()}
    review = fake._add(
        body["source_branch"],
        body["target_branch"],
        body["title"],
        body.get("description", ""),
        reviewers=[names[i] for i in ids if i in names],
        remove_source_branch=body.get("remove_source_branch"),
    )
    return Reply(201, _gitlab_mr(fake, review))


def gitlab_update_mr(fake: FakeForge, call: Call) -> Reply:
    """PUT /projects/:id/merge_requests/:iid (at least one attribute)."""
    if (wrong := _gitlab_project(fake, call)) is not None:
        return wrong
    review = fake.reviews.get(int(call.params["iid"])) if call.params["iid"].isdigit() else None
    if review is None:
        return Reply(404, {"message": "404 Not found"})
    body = call.json if isinstance(call.json, dict) else {}
    known = ("title", "description", "target_branch", "state_event", "remove_source_branch")
    if not any(n in body for n in known):
        missing = f"{', '.join(known)} are missing, at least one parameter must be provided"
        return Reply(400, {"error": missing})
    review.title = body.get("title", review.title)
    review.body = body.get("description", review.body)
    review.base = body.get("target_branch", review.base)
    events = {"close": "closed", "reopen": "open"}
    review.state = events.get(body.get("state_event", ""), review.state)
    return Reply(200, _gitlab_mr(fake, review))


def gitlab_list_users(fake: FakeForge, call: Call) -> Reply:
    """GET /users?username= (matched without regard to case)."""
    name = call.query.get("username")
    users = [(n, i) for n, i in fake.users.items() if name is None or n.lower() == name.lower()]
    found = [{"id": i, "username": n, "name": n.title(), "state": "active"} for n, i in users]
    return Reply(200, found)


GITLAB = Api(
    name="GitLab",
    prefix="/api/v4",
    authorized=_gitlab_authorized,
    unauthorized=Reply(401, {"message": "401 Unauthorized"}),
    not_found=Reply(404, {"error": "404 Not Found"}),
    routes=[
        Route("GET", "/api/v4/projects/{project}", gitlab_get_project),
        Route("GET", "/api/v4/projects/{project}/merge_requests", gitlab_list_mrs),
        Route("POST", "/api/v4/projects/{project}/merge_requests", gitlab_create_mr),
        Route("PUT", "/api/v4/projects/{project}/merge_requests/{iid}", gitlab_update_mr),
        Route("GET", "/api/v4/users", gitlab_list_users),
    ],
)


# GitHub: https://docs.github.com/rest/pulls/pulls, /rest/pulls/review-requests, /rest/repos


def _github_authorized(headers: Mapping[str, str], token: str) -> bool:
    scheme, _, given = headers.get("authorization", "").partition(" ")
    return bool(token) and scheme.lower() in {"bearer", "token"} and given == token


def _github_repo(fake: FakeForge, call: Call) -> Reply | None:
    """None when the route's repository is this fake's, else GitHub's 404."""
    if f"{call.params['owner']}/{call.params['repo']}".lower() == fake.github_repo.lower():
        return None
    return _GITHUB_NOT_FOUND


def _github_pull(fake: FakeForge, review: FakeReview) -> dict[str, Any]:
    owner = fake.github_repo.partition("/")[0]
    return {
        "number": review.number,
        "html_url": f"{fake.url}/{fake.github_repo}/pull/{review.number}",
        "state": "open" if review.state == "open" else "closed",
        "merged": review.state == "merged",
        "title": review.title,
        "body": review.body,
        "head": {"ref": review.branch, "label": f"{owner}:{review.branch}"},
        "base": {"ref": review.base, "label": f"{owner}:{review.base}"},
        "requested_reviewers": [{"login": n, "id": fake.users.get(n, 0)} for n in review.reviewers],
        "requested_teams": [{"slug": t} for t in review.teams],
    }


def _github_invalid(field_name: str, code: str = "missing_field") -> Reply:
    error = {"resource": "PullRequest", "field": field_name, "code": code}
    return Reply(422, {"message": "Validation Failed", "errors": [error]})


def _github_review(fake: FakeForge, call: Call) -> FakeReview | None:
    number = call.params["number"]
    return fake.reviews.get(int(number)) if number.isdigit() else None


def github_get_repo(fake: FakeForge, call: Call) -> Reply:
    """GET /repos/{owner}/{repo}."""
    if (wrong := _github_repo(fake, call)) is not None:
        return wrong
    return Reply(
        200,
        {
            "full_name": fake.github_repo,
            "default_branch": fake.default_branch,
            "html_url": f"{fake.url}/{fake.github_repo}",
        },
    )


def github_list_pulls(fake: FakeForge, call: Call) -> Reply:
    """GET /repos/{owner}/{repo}/pulls?state=&head=owner:branch&base=."""
    if (wrong := _github_repo(fake, call)) is not None:
        return wrong
    state = call.query.get("state", "open")
    if state not in {"open", "closed", "all"}:
        return Reply(422, {"message": "Validation Failed", "errors": [{"field": "state"}]})
    owner = fake.github_repo.partition("/")[0]
    head = call.query.get("head")
    found = [
        _github_pull(fake, r)
        for r in sorted(fake.reviews.values(), key=lambda r: -r.number)
        if state in {"all", "open" if r.state == "open" else "closed"}
        # `head` is `user:ref-name`; a bare branch name matches nothing here.
        and (head is None or head.lower() == f"{owner}:{r.branch}".lower())
        and call.query.get("base", r.base) == r.base
    ]
    return Reply(200, found)


def github_create_pull(fake: FakeForge, call: Call) -> Reply:
    """POST /repos/{owner}/{repo}/pulls (title, head and base required)."""
    if (wrong := _github_repo(fake, call)) is not None:
        return wrong
    body = call.json if isinstance(call.json, dict) else {}
    for name in ("title", "head", "base"):
        if not isinstance(body.get(name), str) or not body[name]:
            return _github_invalid(name)
    owner = fake.github_repo.partition("/")[0]
    branch = body["head"].removeprefix(f"{owner}:")
    if any(r.state == "open" and r.branch == branch for r in fake.reviews.values()):
        error = {
            "resource": "PullRequest",
            "code": "custom",
            "message": f"A pull request already exists for {owner}:{branch}.",
        }
        return Reply(422, {"message": "Validation Failed", "errors": [error]})
    review = fake._add(branch, body["base"], body["title"], body.get("body") or "")
    return Reply(201, _github_pull(fake, review))


def github_update_pull(fake: FakeForge, call: Call) -> Reply:
    """PATCH /repos/{owner}/{repo}/pulls/{number}."""
    if (wrong := _github_repo(fake, call)) is not None:
        return wrong
    if (review := _github_review(fake, call)) is None:
        return _GITHUB_NOT_FOUND
    body = call.json if isinstance(call.json, dict) else {}
    if body.get("state") not in {None, "open", "closed"}:
        return _github_invalid("state", "invalid")
    review.title = body.get("title", review.title)
    review.body = body.get("body", review.body)
    review.base = body.get("base", review.base)
    review.state = body.get("state", review.state)
    return Reply(200, _github_pull(fake, review))


def github_request_reviewers(fake: FakeForge, call: Call) -> Reply:
    """POST /repos/{owner}/{repo}/pulls/{number}/requested_reviewers (collaborators only)."""
    if (wrong := _github_repo(fake, call)) is not None:
        return wrong
    if (review := _github_review(fake, call)) is None:
        return _GITHUB_NOT_FOUND
    body = call.json if isinstance(call.json, dict) else {}
    users, teams = body.get("reviewers", []), body.get("team_reviewers", [])
    if not isinstance(users, list) or not isinstance(teams, list) or not (users or teams):
        return _github_invalid("reviewers", "invalid")
    if any(u not in fake.users for u in users) or any(t not in fake.teams for t in teams):
        message = (
            "Reviews may only be requested from collaborators. One or more of the users or teams"
            f" you specified is not a collaborator of the {fake.github_repo} repository."
        )
        return Reply(422, {"message": message})
    review.reviewers += [u for u in users if u not in review.reviewers]
    review.teams += [t for t in teams if t not in review.teams]
    return Reply(201, _github_pull(fake, review))


_GITHUB_NOT_FOUND = Reply(
    404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
)

GITHUB = Api(
    name="GitHub",
    prefix="",
    authorized=_github_authorized,
    unauthorized=Reply(
        401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
    ),
    not_found=_GITHUB_NOT_FOUND,
    routes=[
        Route("GET", "/repos/{owner}/{repo}", github_get_repo),
        Route("GET", "/repos/{owner}/{repo}/pulls", github_list_pulls),
        Route("POST", "/repos/{owner}/{repo}/pulls", github_create_pull),
        Route("PATCH", "/repos/{owner}/{repo}/pulls/{number}", github_update_pull),
        Route(
            "POST",
            "/repos/{owner}/{repo}/pulls/{number}/requested_reviewers",
            github_request_reviewers,
        ),
    ],
)


class _Server(QuietServer):
    fake: FakeForge


class _Handler(QuietHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server calls it so
        """Answer a GET."""
        self._serve()

    def do_POST(self) -> None:  # noqa: N802 - http.server calls it so
        """Answer a POST."""
        self._serve()

    def do_PUT(self) -> None:  # noqa: N802 - http.server calls it so
        """Answer a PUT."""
        self._serve()

    def do_PATCH(self) -> None:  # noqa: N802 - http.server calls it so
        """Answer a PATCH."""
        self._serve()

    def do_DELETE(self) -> None:  # noqa: N802 - http.server calls it so
        """Answer a DELETE."""
        self._serve()

    def _serve(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = _NOT_JSON
        url = urlsplit(self.path)
        record = Recorded(
            self.command,
            url.path,
            dict(parse_qsl(url.query, keep_blank_values=True)),
            {k.lower(): v for k, v in self.headers.items()},
            body,
            time.monotonic(),
        )
        self._send(self.server.fake._answer(record))

    def _send(self, reply: Reply) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def fake_forge() -> Iterator[FakeForge]:
    """A fake GitHub and GitLab on 127.0.0.1 that accept the token `fake_forge.token`."""
    with FakeForge() as fake:
        yield fake
