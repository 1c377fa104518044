"""The errors fixbot raises on purpose.

A user can cause every one of these; each ends a run as one clear line (see
`orchestrator.cli`). Anything else that escapes is a bug and shows a traceback.

    FixbotError                 exit 2: bad input, nothing was changed
    ├── ConfigError             an unknown key, a bad value, a bad flag
    ├── RepoError               not a git repo, a bad ref, a branch we may not touch
    ├── ToolError               ruff or git cannot run as needed (required-version, bad config)
    ├── TestCommandError        the test command cannot run at base
    └── TamperError             a test run changed the git metadata (put back; the run stops)
    ServiceError                exit 3: a remote service failed (push, PR API, a model)
"""

from __future__ import annotations


class FixbotError(Exception):
    """A problem the user can fix; ends the run with exit code 2."""

    exit_code = 2


class ConfigError(FixbotError):
    """A configuration key or value is wrong."""


class RepoError(FixbotError):
    """The repository, a ref or a branch is not usable as asked."""


class ToolError(FixbotError):
    """ruff or git refused to run the way fixbot needs."""


class TestCommandError(FixbotError):
    """The configured or detected test command cannot run at base."""

    __test__ = False  # not a pytest test class


class TamperError(FixbotError):
    """The repo's code changed what it must not (git metadata); the run stops."""


class ServiceError(FixbotError):
    """An external service failed; exit code 3."""

    exit_code = 3
