"""Publishing: push the fixbot branch and open or update its one pull request.

Night after night the branch has one name and one review. What is on the
remote is looked at before anything is proven: a branch a person has pushed to
is left alone (one line, exit 0), since forcing over it would throw their work
away. A night whose branch has the same tree as the remote's changes nothing:
no push, no API write. A push is a force-push with a lease on the tip fixbot saw,
so a commit pushed while fixbot ran is never overwritten either.

The token reaches `git push` as an `http.<server>.extraHeader` set through
git's GIT_CONFIG_* variables, only for the forge's own server and only in that
process's environment: never on a command line, in .git/config, in a remote
URL or in a log. Hooks are off for fixbot's git (`GIT_HARDENING`) and the push
is `--no-verify`, so no program of the repository's sees it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog

from fixbot.sandbox import ConfigError, ServiceError, git

from ._forge import Forge, GitHub, Review
from ._merge import foreign_commit

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from ._config import Config
    from ._merge import Identity

log = structlog.get_logger("fixbot")
REMOTE_REFS = "refs/fixbot/remote"


class LeftAlone(Exception):  # noqa: N818 - not an error: the run ends here, on purpose
    """The run stops without publishing, for a reason worth one line (exit 0)."""


@dataclass(frozen=True, slots=True)
class Remote:
    """A remote, its URL, and the header its pushes carry (if it is the forge's)."""

    name: str
    url: str
    header: str | None

    def env(self) -> dict[str, str]:
        """git's environment for talking to this remote: the token only in a header."""
        if self.header is None:
            return {}
        parts = urlsplit(self.shown)
        # Keyed on the whole URL: a header a CI checkout persisted for this very
        # repository's URL would otherwise be the more specific one, and win.
        url = self.shown
        settings = [
            # An empty value first empties the list: a header persisted by CI's checkout
            # (actions/checkout's extraheader) would make two Authorization headers.
            (f"http.{url}.extraHeader", ""),
            (f"http.{url}.extraHeader", f"Authorization: {self.header}"),
            # git sends its extra headers on after a redirect, to wherever it leads.
            ("http.followRedirects", "false"),
            # Only this scheme: an insteadOf that turns the URL into a local or ssh
            # remote would hand the header's variables to that side's hooks.
            ("protocol.allow", "never"),
            (f"protocol.{parts.scheme}.allow", "always"),
            ("push.recurseSubmodules", "no"),
        ]
        env = {"GIT_CONFIG_COUNT": str(len(settings))}
        for i, (key, value) in enumerate(settings):
            env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
        # The user's global config is a test's to write where no fence keeps it out
        # (a pushInsteadOf, a trace2 target): with the token in play, none is read.
        env["GIT_CONFIG_GLOBAL"] = os.devnull
        # A proxy the user's environment names is theirs (fixbot's own git drops these):
        # behind one, the push could not reach the forge at all.
        for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "no_proxy", "NO_PROXY"):
            if name in os.environ:
                env[name] = os.environ[name]
        return env

    @property
    def target(self) -> str:
        """What git is told to talk to: the URL without credentials when fixbot's token
        authenticates (GitLab CI's origin carries the job's own token, which may not
        push), else the remote's name."""
        return self.shown if self.header else self.name

    @property
    def shown(self) -> str:
        """The URL without any credentials it may carry, for messages."""
        return _without_credentials(self.url)


@dataclass(slots=True)
class RemoteState:
    """What the remote held for the branch when fixbot looked."""

    tip: str | None  # None: no such branch on the remote yet


def make_forge(
    config: Config, environ: Mapping[str, str], remote_url: str, *, required: bool
) -> Forge | None:
    """GitLab inside GitLab CI or when asked for, else GitHub; None when there is no
    token and no review to open (a push to a remote of the user's own keys)."""
    kind = config.forge
    if kind == "auto":
        kind = "gitlab" if environ.get("GITLAB_CI") == "true" else "github"
    if not required and not (config.gitlab_token if kind == "gitlab" else config.github_token):
        return None
    if kind == "gitlab":
        from ._gitlab import GitLab  # noqa: PLC0415 - only GitLab's users need it

        token = config.gitlab_token.get_secret_value() if config.gitlab_token else ""
        api, project = environ.get("CI_API_V4_URL", ""), environ.get("CI_PROJECT_ID", "")
        if not (token and api and project):
            raise ConfigError(
                "publishing to GitLab needs GITLAB_TOKEN, CI_API_V4_URL and CI_PROJECT_ID"
            )
        server = environ.get("CI_SERVER_URL", "https://gitlab.com")
        return GitLab(api_url=api, project=project, token=token, server_url=server)
    token = config.github_token.get_secret_value() if config.github_token else ""
    if not token:
        raise ConfigError("--push and --open-pr need GITHUB_TOKEN (a token that may push)")
    server = environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    repository = environ.get("GITHUB_REPOSITORY") or github_repository(remote_url, server)
    if not repository and required:
        raise ConfigError(
            f"cannot tell the GitHub repository from {_without_credentials(remote_url)!r}:"
            " set GITHUB_REPOSITORY"
        )
    return GitHub(
        api_url=config.github_api_url, repository=repository or "", token=token, server_url=server
    )


def github_repository(url: str, server: str) -> str | None:
    """`owner/name` from an HTTPS or SSH remote URL on `server`, else None."""
    host = urlsplit(server).hostname or ""
    if url.startswith(f"git@{host}:"):
        path = url.split(":", 1)[1]
    else:
        parts = urlsplit(url)
        if parts.hostname != host:
            return None
        path = parts.path
    path = path.strip("/").removesuffix(".git")
    return path if path.count("/") == 1 else None


async def find_remote(repo: Path, name: str) -> str:
    """The remote's push URL, or a ConfigError naming it."""
    done = await git("remote", "get-url", "--push", name, cwd=repo, check=False)
    if done.returncode != 0:
        raise ConfigError(f"no remote named {name!r} to push to (set --remote)")
    return done.stdout.decode().strip()


async def look(
    repo: Path, remote: Remote, branch: str, base: str, identity: Identity
) -> RemoteState:
    """The remote branch's tip, fetched; LeftAlone if a person has committed to it."""
    ref = f"refs/heads/{branch}"
    env = remote.env()
    done = await git("ls-remote", "--heads", remote.target, ref, cwd=repo, env=env, check=False)
    if done.returncode != 0:
        raise ServiceError(f"cannot read {remote.shown}: {_last_line(done.stderr)}")
    lines = [ln.split() for ln in done.stdout.decode().splitlines() if ln.strip()]
    tip = next((sha for sha, name in lines if name == ref), None)
    if tip is None:
        return RemoteState(None)
    fetched = await git(
        "fetch", "--no-tags", "--no-write-fetch-head", "--quiet", remote.target,
        f"+{ref}:{REMOTE_REFS}/{branch}", cwd=repo, env=env, check=False,
    )  # fmt: skip
    if fetched.returncode != 0:
        why = _last_line(fetched.stderr)
        raise ServiceError(f"cannot fetch {branch!r} from {remote.shown}: {why}")
    person = await foreign_commit(repo, tip, (base,), identity)
    if person is not None:
        raise LeftAlone(
            f"{remote.name}/{branch} has a commit that is not fixbot's ({person[:12]}): "
            "left alone, nothing pushed (delete that branch to start afresh)"
        )
    return RemoteState(tip)


async def same_tree(repo: Path, one: str, other: str) -> bool:
    """Whether two commits hold the same tree."""
    done = await git("rev-parse", f"{one}^{{tree}}", f"{other}^{{tree}}", cwd=repo)
    trees = done.stdout.decode().split()
    return trees[0] == trees[1]


async def push(repo: Path, remote: Remote, branch: str, tip: str, lease: str | None) -> None:
    """Force-push `tip` to the branch with a lease on what fixbot saw there."""
    ref = f"refs/heads/{branch}"
    done = await git(
        "push", "--porcelain", "--no-verify", f"--force-with-lease={ref}:{lease or ''}",
        remote.target, f"{tip}:{ref}", cwd=repo, env=remote.env(), check=False, timeout=600,
    )  # fmt: skip
    if done.returncode == 0:
        return
    if b"stale info" in done.stdout + done.stderr:
        raise LeftAlone(
            f"{remote.name}/{branch} moved while fixbot ran: left alone, nothing pushed"
        )
    raise ServiceError(f"git push to {remote.shown} failed: {_last_line(done.stderr)}")


START, END = "<!-- fixbot:report -->", "<!-- /fixbot:report -->"


def pr_body(report_md: str, limit: int, full_report_url: str | None, current: str = "") -> str:
    """report.md between fixbot's markers, cut to the forge's limit with a pointer to the
    whole report; what people wrote outside the markers of `current` is kept."""
    before, after = "", ""
    if START in current and END in current:
        before = current.split(START, 1)[0]
        after = current.rsplit(END, 1)[1]
    elif current.strip():
        before = current.rstrip() + "\n\n"  # theirs, markers and all gone: kept above
    room = limit - len(before) - len(after) - len(START) - len(END) - 2
    if len(report_md) > room:
        where = f" The whole report: {full_report_url}" if full_report_url else ""
        tail = f"\n\n… cut to fit the description's limit of {limit} characters.{where}\n"
        report_md = report_md[: max(room - len(tail) - 1, 0)].rsplit("\n", 1)[0] + tail
    return f"{before}{START}\n{report_md}{END}{after}"


def report_url(environ: Mapping[str, str]) -> str | None:
    """Where this CI job's artifacts are listed (GitHub Actions, GitLab CI), if anywhere."""
    server, repository, run = (
        environ.get("GITHUB_SERVER_URL"),
        environ.get("GITHUB_REPOSITORY"),
        environ.get("GITHUB_RUN_ID"),
    )
    if server and repository and run:
        return f"{server.rstrip('/')}/{repository}/actions/runs/{run}"
    return environ.get("CI_JOB_URL") or None


def title_for(accepted: int, branch: str) -> str:
    """The review's title; the same branch keeps the same review, whatever the count."""
    return f"fixbot: {accepted} proven lint fix{'es' * (accepted != 1)} ({branch})"


@dataclass(slots=True)
class Publisher:
    """One run's publishing: a look at the remote first, the push and the review last."""

    repo: Path
    config: Config
    branch: str
    base: str
    identity: Identity
    environ: Mapping[str, str]
    reviewers: tuple[str, ...] = ()  # asked for on a new review (CODEOWNERS' owners)
    remote: Remote | None = None
    forge: Forge | None = None
    state: RemoteState | None = None

    async def prepare(self, *, branch_too: bool = True) -> None:
        """Find the remote and the forge; LeftAlone if a person has pushed to the branch
        (`branch_too`: with --split-by the groups' branches are looked at one by one)."""
        shallow = await git("rev-parse", "--is-shallow-repository", cwd=self.repo)
        if shallow.stdout.strip() == b"true":
            # Whose commits are on the remote branch is told from history: a shallow
            # clone would take the base of an earlier night for a person's commit.
            raise ConfigError(
                "publishing needs the repository's whole history, and this clone is shallow:"
                " `git fetch --unshallow` (in GitHub Actions, checkout with fetch-depth: 0)"
            )
        url = await find_remote(self.repo, self.config.remote)
        self.forge = make_forge(self.config, self.environ, url, required=self.config.open_pr)
        header = self.forge.push_header(url) if self.forge else None
        self.remote = Remote(self.config.remote, url, header)
        if branch_too:
            self.state = await look(self.repo, self.remote, self.branch, self.base, self.identity)

    async def publish(self, tip: str | None, *, accepted: int, report_md: str) -> dict[str, object]:
        """Push and open or update the review; what was done, for the report."""
        if self.remote is None or self.state is None:
            raise RuntimeError("Publisher.prepare() was not called")  # a bug, not bad input
        if tip is None:
            log.info("publish.skipped", reason="nothing landed")
            return {"pushed": "no", "why": "nothing landed"}
        forge = None if not self.config.open_pr else self.forge
        if self.state.tip is not None and await same_tree(self.repo, tip, self.state.tip):
            log.info("publish.skipped", reason="the remote branch has the same tree")
            why = f"{self.remote.name}/{self.branch} already has these fixes"
            done: dict[str, object] = {"pushed": "no", "why": why}
            # An earlier night pushed, then failed to open its review (the API was down):
            # opening it now finishes that night's work. An open review is left as it is.
            if forge is not None:
                review = await forge.find_open(self.branch)
                if review is None:
                    done |= await self._review(forge, None, accepted, report_md)
                else:
                    done["url"], done["review"] = review.url, "unchanged"
            return done
        await push(self.repo, self.remote, self.branch, tip, self.state.tip)
        log.info("publish.pushed", remote=self.remote.shown, branch=self.branch, tip=tip)
        done = {"pushed": "yes", "remote": self.remote.shown, "tip": tip}
        if forge is not None:
            done |= await self._review(
                forge, await forge.find_open(self.branch), accepted, report_md
            )
        return done

    async def _review(
        self, forge: Forge, review: Review | None, accepted: int, report_md: str
    ) -> dict[str, object]:
        """Open the branch's review, or update the open one."""
        title = title_for(accepted, self.branch)
        current = review.body if review is not None else ""
        body = pr_body(report_md, forge.body_limit, report_url(self.environ), current)
        if review is None:
            target = self.config.pr_base or await forge.default_branch()
            review = await forge.open(
                branch=self.branch,
                base=target,
                title=title,
                body=body,
                # Users and teams (@name, @org/team); an e-mail owner cannot be asked.
                reviewers=[r[1:] for r in self.reviewers if r.startswith("@")],
            )
            action = "opened"
        else:
            review = await forge.update(review, title=title, body=body)
            action = "updated"
        log.info("publish.review", action=action, url=review.url)
        return {"review": action, "url": review.url}

    async def aclose(self) -> None:
        """Close the forge's HTTP client."""
        if self.forge is not None:
            await self.forge.aclose()


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme and parts.hostname and "@" in parts.netloc:
        return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
    return url


def _last_line(stderr: bytes) -> str:
    lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "no output"


def environ() -> Mapping[str, str]:
    """The process environment (a seam for tests that pass their own)."""
    return os.environ
