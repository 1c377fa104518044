"""structlog set up once: readable lines by default (a terminal, CI, a pipe), JSON when asked.

No secret is bound to a logger; as a second line of defence a processor blanks
known secret keys and any known secret value before rendering, and tracebacks
never show locals (docs/architecture.md).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from collections.abc import Iterable, MutableMapping

    from structlog.typing import Processor

_SECRET_KEYS = frozenset(
    {
        "api_key",
        "authorization",
        "token",
        "llm_api_key",
        "github_token",
        "gitlab_token",
        "private-token",
        "password",
    }
)


class Redact:
    """Blank secret-looking keys and exact secret values in every event."""

    __slots__ = ("_values",)

    def __init__(self, secrets: Iterable[str]) -> None:
        self._values = tuple(s for s in secrets if s and len(s) >= 4)

    def __call__(
        self, _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Redact in place and pass the event on."""
        for key, value in list(event.items()):
            if key.lower() in _SECRET_KEYS:
                event[key] = "[redacted]"
            elif isinstance(value, str) and self._values:
                for secret in self._values:
                    value = value.replace(secret, "[redacted]")  # noqa: PLW2901
                event[key] = value
        return event


class StderrLogger:
    """Writes each line to whatever sys.stderr is *now*: while the live status line runs,
    that is rich's proxy, which prints the line above the status instead of through it."""

    def msg(self, message: str) -> None:
        """Write one rendered event."""
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


def configure(
    log_format: str = "auto",
    secrets: Iterable[str] = (),
    level: int = logging.INFO,
    *,
    colors: bool = False,
) -> None:
    """Configure structlog for this process."""
    json_out = log_format == "json"
    renderer: Any
    if json_out:
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
        exc: Processor = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=colors,
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
        )
        exc = structlog.processors.StackInfoRenderer()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            exc,
            Redact(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: StderrLogger(),
        cache_logger_on_first_use=False,
    )
