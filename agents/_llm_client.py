"""The model's transport: OpenAI-compatible chat completions over one pooled httpx client.

One `LlmClient` per run: a CapacityLimiter on requests in flight; hard caps (a request
is sent only if tokens used + tokens reserved in flight + this prompt + its max_tokens
fit the budget, and the request count is under its cap); stamina retries on 429, 5xx,
dropped connections and timeouts, honouring Retry-After; an overall deadline per
attempt (httpx's read timeout is per chunk); plain and SSE replies alike; an on-disk
cache of complete replies. The API key goes into one request header and nowhere else:
no log event, exception, repr or cache file holds it (docs/architecture.md).
"""

from __future__ import annotations

import itertools
import json
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path  # noqa: TC003 - pydantic resolves LlmSettings.cache_dir at run time
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import stamina
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from fixbot.sandbox import ServiceError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

from ._llm_cache import Reply, ReplyCache, cache_key

log = structlog.get_logger("fixbot")
POOL_SIZE = 16

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
AUTH_STATUS = frozenset({401, 403})
# Our own mistakes, not the network's: retrying cannot help.
_NOT_TRANSIENT = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


class LlmSettings(BaseModel):
    """Where the model is, how to talk to it, and how much it may cost."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str
    model: str
    api_key: SecretStr | None = None
    concurrency: int = Field(16, ge=1)
    max_requests: int | None = Field(None, ge=0)
    token_budget: int | None = Field(None, ge=0)
    timeout: float = Field(120.0, gt=0)  # overall deadline per attempt
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(60.0, gt=0)  # per chunk, as httpx measures it
    max_tokens: int = Field(2048, ge=1)
    temperature: float = 0.0
    stream: bool = False
    api_version: str | None = None  # Azure: ?api-version= and an `api-key` header
    retry_attempts: int = Field(5, ge=1)  # attempts in total
    retry_timeout: float = Field(120.0, gt=0)  # no new attempt after this long
    retry_wait_initial: float = Field(0.5, ge=0)
    retry_wait_max: float = Field(10.0, ge=0)
    retry_wait_jitter: float = Field(1.0, ge=0)
    cache_dir: Path | None = None


@dataclass
class Usage:
    """Counters for report.json's `llm` block; requests include retries, not cache hits."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    failures: int = 0
    cache_hits: int = 0
    budget_exhausted: bool = False


class BudgetExhausted(Exception):  # noqa: N818 - the name is the contract
    """`max_requests` or `token_budget` would be exceeded; nothing was sent."""


class LlmFailed(Exception):  # noqa: N818 - the name is the contract
    """The model gave no usable reply: the reason, and the HTTP status when there was one."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class LlmAuthError(LlmFailed, ServiceError):
    """401/403: the service refuses the key. Ends the run with exit code 3."""


class _Transient(LlmFailed):
    """A failure worth another attempt, with the server's Retry-After if it sent one."""

    def __init__(
        self, reason: str, *, status: int | None = None, wait: float | None = None
    ) -> None:
        super().__init__(reason, status=status)
        self.retry_after = wait


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or an HTTP date)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        with suppress(KeyError, ValueError):
            return max(0.0, float(headers[name]) / scale)
    try:
        when = parsedate_to_datetime(headers.get("retry-after", ""))
    except (TypeError, ValueError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def honour_retry_after(
    transient: type[Exception], timeout: float
) -> Callable[[BaseException], bool | float]:
    """stamina's `on=` hook for one retried call: retry `transient` errors, waiting what
    their `retry_after` says when they carry one, and give up at once on a wait past
    `timeout` seconds from now (rather than sleep in vain); anything else is not retried.

    Returns False (give up), True (stamina's own backoff) or the seconds to wait.
    """
    start = time.monotonic()

    def backoff(exc: BaseException) -> bool | float:
        if not isinstance(exc, transient):
            return False
        wait: float | None = getattr(exc, "retry_after", None)
        if wait is None:
            return True
        left = timeout - (time.monotonic() - start)
        return wait if wait <= left else False

    return backoff


class LlmClient:
    """Chat completions with limits, retries, deadlines, streaming and a cache."""

    def __init__(self, settings: LlmSettings, *, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.usage = Usage()
        self._url = settings.base_url.rstrip("/") + "/chat/completions"
        self._timeout = httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout)
        self._owns_client = client is None
        # One pool per POOL_SIZE requests in flight. httpcore matches every queued request
        # against every connection on each event, so one pool of hundreds of connections
        # spends its time there (measured: 45 requests/s at 64 in flight on a 2-core box,
        # 20 ms of CPU each); pools of 16 keep that cost flat. trust_env stays True:
        # proxies and CA bundles are the user's to set.
        pools = max(1, -(-settings.concurrency // POOL_SIZE))
        self._clients = (
            [client]
            if client
            else [
                httpx.AsyncClient(
                    timeout=self._timeout,
                    limits=httpx.Limits(
                        max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE
                    ),
                )
                for _ in range(pools)
            ]
        )
        self._next_pool = itertools.cycle(self._clients)
        self._limiter = anyio.CapacityLimiter(settings.concurrency)
        self._cache = ReplyCache(settings.cache_dir)
        self._reserved = 0  # tokens reserved by requests in flight
        self._auth_failed: LlmAuthError | None = None

    def __repr__(self) -> str:
        return f"LlmClient(url={self._url!r}, model={self.settings.model!r})"

    async def aclose(self) -> None:
        """Close the connection pool (only if this client made it)."""
        if self._owns_client:
            for pool in self._clients:
                await pool.aclose()

    def estimate(self, messages: list[dict[str, str]], *, max_tokens: int | None = None) -> int:
        """Tokens a request reserves against the budget: len(request JSON)//4 + max_tokens."""
        body, payload = self._body(messages, max_tokens)
        return len(payload) // 4 + body["max_tokens"]

    async def complete(
        self, messages: list[dict[str, str]], *, max_tokens: int | None = None
    ) -> Reply:
        """One chat completion; raises BudgetExhausted, LlmAuthError or LlmFailed."""
        body, payload = self._body(messages, max_tokens)
        key = cache_key(self.settings.model, body)
        if (hit := self._cache.get(key)) is not None:
            self.usage.cache_hits += 1
            return hit
        if self._auth_failed is not None:
            raise LlmAuthError(self._auth_failed.reason, status=self._auth_failed.status)
        cost = len(payload) // 4 + body["max_tokens"]
        async with self._limiter:
            reply = await self._with_retries(payload, cost)
        if reply.finish_reason != "length":
            self._cache.put(key, reply)
        return reply

    # -- one request, retried -------------------------------------------------------

    async def _with_retries(self, payload: bytes, cost: int) -> Reply:
        s = self.settings
        attempts = 0
        try:
            async for attempt in stamina.retry_context(
                on=honour_retry_after(_Transient, s.retry_timeout),
                attempts=s.retry_attempts,
                timeout=s.retry_timeout,
                wait_initial=s.retry_wait_initial,
                wait_max=s.retry_wait_max,
                wait_jitter=s.retry_wait_jitter,
            ):
                with attempt:
                    attempts = attempt.num
                    if attempts > 1:
                        self.usage.retries += 1
                    return await self._attempt(payload, cost, attempts)
        except _Transient as exc:
            self.usage.failures += 1
            tries = f"{attempts} attempt" + ("s" if attempts != 1 else "")
            raise LlmFailed(f"{exc.reason} (gave up after {tries})", status=exc.status) from exc
        except LlmFailed:
            self.usage.failures += 1
            raise
        raise AssertionError("unreachable: stamina returns or raises")

    def _reserve(self, cost: int) -> None:
        """Count a request as sent and reserve its tokens, or refuse it."""
        s, u = self.settings, self.usage
        over_requests = s.max_requests is not None and u.requests >= s.max_requests
        used = u.prompt_tokens + u.completion_tokens
        over_tokens = s.token_budget is not None and used + self._reserved + cost > s.token_budget
        if over_requests or over_tokens:
            if not u.budget_exhausted:
                log.warning("llm.budget_exhausted", requests=u.requests, tokens=used)
            u.budget_exhausted = True
            what = "max_requests" if over_requests else "token_budget"
            raise BudgetExhausted(f"the model's {what} is spent")
        u.requests += 1
        self._reserved += cost

    async def _attempt(self, payload: bytes, cost: int, attempt: int) -> Reply:
        self._reserve(cost)
        started = time.monotonic()
        seen: dict[str, int] = {}
        error: str | None = None
        try:
            with anyio.fail_after(self.settings.timeout):
                reply = await self._send(payload, seen)
        except TimeoutError as exc:
            error = f"no complete reply within {self.settings.timeout:g} s"
            raise _Transient(error) from exc
        except LlmFailed as exc:  # the service said no, or the reply is unusable
            error = exc.reason
            raise
        except _NOT_TRANSIENT as exc:
            error = self._scrub(f"{type(exc).__name__}: {exc}")
            raise LlmFailed(error) from exc
        except httpx.TransportError as exc:
            error = self._scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
            raise _Transient(error) from exc
        finally:
            self._reserved -= cost
            log.debug(
                "llm.request",
                status=seen.get("status"),
                seconds=round(time.monotonic() - started, 3),
                attempt=attempt,
                model=self.settings.model,
                error=error,
            )
        self.usage.prompt_tokens += reply.prompt_tokens
        self.usage.completion_tokens += reply.completion_tokens
        return reply

    async def _send(self, payload: bytes, seen: dict[str, int]) -> Reply:
        s = self.settings
        accept = "text/event-stream" if s.stream else "application/json"
        headers = {"Content-Type": "application/json", "Accept": accept}
        if s.api_key is not None and s.api_version:  # Azure
            headers["api-key"] = s.api_key.get_secret_value()
        elif s.api_key is not None:
            headers["Authorization"] = f"Bearer {s.api_key.get_secret_value()}"
        params = {"api-version": s.api_version} if s.api_version else None
        client = next(self._next_pool)
        request = client.build_request(
            "POST",
            self._url,
            content=payload,
            headers=headers,
            params=params,
            timeout=self._timeout,
        )
        response = await client.send(request, stream=True)
        seen["status"] = response.status_code
        try:
            if not response.is_success:
                await response.aread()
                self._refuse(response)
            if "text/event-stream" in response.headers.get("content-type", ""):
                return await self._read_stream(response, len(payload))
            await response.aread()  # also when a server ignores "stream": true
            return self._read_whole(response, len(payload))
        finally:
            await response.aclose()

    def _refuse(self, response: httpx.Response) -> None:
        """Raise the right error for a status that is not a success."""
        status = response.status_code
        try:  # the service's own words: OpenAI's error.message, else the body's start
            detail = str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            detail = response.text
        detail = self._scrub(" ".join(detail.split())[:300] or response.reason_phrase)
        if status in AUTH_STATUS:
            reason = f"the model service refused the key (HTTP {status}): {detail}"
            error = LlmAuthError(reason, status=status)
            if self._auth_failed is None:
                log.error("llm.auth_failed", status=status)
            self._auth_failed = error
            raise error
        if status in RETRY_STATUS:
            wait = parse_retry_after(response.headers)
            raise _Transient(f"HTTP {status}: {detail}", status=status, wait=wait)
        raise LlmFailed(f"HTTP {status}: {detail}", status=status)

    # -- reading replies ------------------------------------------------------------

    def _read_whole(self, response: httpx.Response, payload_len: int) -> Reply:
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            finish = choice.get("finish_reason")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LlmFailed(f"malformed reply: {response.text[:200]!r}") from exc
        return _reply(text, finish, data.get("usage"), payload_len)

    async def _read_stream(self, response: httpx.Response, payload_len: int) -> Reply:
        parts: list[str] = []
        finish: str | None = None
        usage: dict[str, Any] | None = None
        done = False
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, comments, `event:` lines
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except ValueError as exc:
                raise LlmFailed(f"malformed stream event: {data[:200]!r}") from exc
            if isinstance(chunk.get("error"), dict):
                raise LlmFailed(self._scrub(f"error in stream: {chunk['error'].get('message')}"))
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) != 0:
                    continue
                if content := (choice.get("delta") or {}).get("content"):
                    parts.append(content)
                finish = choice.get("finish_reason") or finish
        if not done and finish is None:
            raise _Transient("the stream ended before the reply did")
        return _reply("".join(parts), finish, usage, payload_len)

    def _scrub(self, text: str) -> str:
        key = self.settings.api_key.get_secret_value() if self.settings.api_key else ""
        return text.replace(key, "[redacted]") if key else text

    # -- the body and the cache -----------------------------------------------------

    def _body(
        self, messages: list[dict[str, str]], max_tokens: int | None
    ) -> tuple[dict[str, Any], bytes]:
        """The request body, and the exact bytes sent."""
        s = self.settings
        body = {"model": s.model, "messages": messages, "max_tokens": max_tokens or s.max_tokens}
        body |= {"temperature": s.temperature} | ({"stream": True} if s.stream else {})
        return body, json.dumps(body, ensure_ascii=False).encode()


def _reply(text: str, finish: str | None, usage: Any, payload_len: int) -> Reply:
    """A Reply with the server's token counts, else estimates (characters // 4)."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    return Reply(
        text=text,
        finish_reason=finish,
        prompt_tokens=prompt if isinstance(prompt, int) else payload_len // 4,
        completion_tokens=completion if isinstance(completion, int) else len(text) // 4,
    )
