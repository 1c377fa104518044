"""agents._llm_client against a fake OpenAI server on a real 127.0.0.1 socket."""

from __future__ import annotations

import json
import logging
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import structlog
from structlog.testing import capture_logs

from fixbot.agents._llm_client import (
    BudgetExhausted,
    LlmAuthError,
    LlmClient,
    LlmFailed,
    LlmSettings,
    Reply,
    parse_retry_after,
)
from fixbot.sandbox import ServiceError
from tests.fake_openai import FakeOpenAI, Scripted
from tests.fake_openai import fake_openai as _fake_openai_fixture

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = pytest.mark.anyio
fake_openai = _fake_openai_fixture  # the fixture, under its own name

KEY = "sk-test-Sekr3t-0123456789abcdef"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx trusts the environment: no proxy of the machine's may sit in front of loopback."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def settings(fake: FakeOpenAI, **overrides: Any) -> LlmSettings:
    """Settings for the fake server, with short waits so retries stay fast."""
    base = {
        "base_url": fake.url,
        "model": "fake-model",
        "api_key": KEY,
        "timeout": 5.0,
        "retry_timeout": 5.0,
        "retry_wait_initial": 0.01,
        "retry_wait_max": 0.05,
        "retry_wait_jitter": 0.0,
    }
    return LlmSettings(**(base | overrides))


@asynccontextmanager
async def client_for(fake: FakeOpenAI, **overrides: Any) -> AsyncIterator[LlmClient]:
    """An LlmClient for the fake server, closed afterwards."""
    client = LlmClient(settings(fake, **overrides))
    try:
        yield client
    finally:
        await client.aclose()


def ask(text: str = "Fix this, please.") -> list[dict[str, str]]:
    """A system and a user message."""
    return [{"role": "system", "content": "You fix lint."}, {"role": "user", "content": text}]


async def fire(client: LlmClient, count: int) -> list[Reply | BudgetExhausted]:
    """`count` different requests at once; each outcome, a Reply or the BudgetExhausted."""
    outcomes: list[Reply | BudgetExhausted] = []

    async def one(i: int) -> None:
        try:
            outcomes.append(await client.complete(ask(f"question {i:02d}")))
        except BudgetExhausted as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(one, i)
    return outcomes


class TestReplies:
    async def test_plain_reply(self, fake_openai: FakeOpenAI) -> None:
        """A JSON reply becomes a Reply; the body holds model, messages, max_tokens, temperature."""
        fake_openai.script(Scripted.reply("fixed code", prompt_tokens=12, completion_tokens=3))
        async with client_for(fake_openai) as client:
            reply = await client.complete(ask())
        assert reply == Reply("fixed code", "stop", 12, 3, cached=False)
        (request,) = fake_openai.requests
        assert request.path == "/v1/chat/completions"
        assert request.json == {
            "model": "fake-model",
            "messages": ask(),
            "max_tokens": 2048,
            "temperature": 0.0,
        }
        assert client.usage.requests == 1
        assert (client.usage.prompt_tokens, client.usage.completion_tokens) == (12, 3)

    async def test_streamed_reply_equals_plain(self, fake_openai: FakeOpenAI) -> None:
        """SSE deltas are joined into the same Reply a plain request gets."""
        text = "```python\nimport os\n\nprint(os.sep)\n```\nDone — ünïcode too."
        fake_openai.script(Scripted.reply(text, prompt_tokens=40, completion_tokens=20))
        async with client_for(fake_openai) as plain, client_for(fake_openai, stream=True) as sse:
            assert await sse.complete(ask()) == await plain.complete(ask())
        assert [r.json.get("stream") for r in fake_openai.requests] == [True, None]
        assert fake_openai.requests[0].headers["accept"] == "text/event-stream"

    async def test_stream_without_usage_estimates_tokens(self, fake_openai: FakeOpenAI) -> None:
        """With no usage in the stream, tokens are estimated as characters // 4."""
        text = "x" * 101
        fake_openai.script(Scripted.reply(text, prompt_tokens=None, completion_tokens=None))
        async with client_for(fake_openai, stream=True, max_tokens=50) as client:
            reply = await client.complete(ask())
            assert reply.completion_tokens == 25
            assert reply.prompt_tokens == client.estimate(ask()) - 50

    async def test_length_reply_is_returned_as_such(self, fake_openai: FakeOpenAI) -> None:
        """A reply cut off by its limit comes back with finish_reason "length"."""
        fake_openai.script(Scripted.cut_off("def f(:"))
        async with client_for(fake_openai, stream=True) as client:
            reply = await client.complete(ask())
        assert (reply.text, reply.finish_reason) == ("def f(:", "length")

    async def test_max_tokens_per_call(self, fake_openai: FakeOpenAI) -> None:
        """`max_tokens=` on a call overrides the settings for that request."""
        async with client_for(fake_openai) as client:
            await client.complete(ask(), max_tokens=64)
        assert fake_openai.requests[0].json["max_tokens"] == 64


class TestAuth:
    async def test_bearer_header_sent(self, fake_openai: FakeOpenAI) -> None:
        """The key goes in `Authorization: Bearer`."""
        async with client_for(fake_openai) as client:
            await client.complete(ask())
        headers = fake_openai.requests[0].headers
        assert headers["authorization"] == f"Bearer {KEY}"
        assert "api-key" not in headers

    async def test_azure_mode(self, fake_openai: FakeOpenAI) -> None:
        """With api_version: an `api-key` header and `?api-version=`, no Bearer."""
        base = fake_openai.url + "/openai/deployments/gpt-4o/"
        async with client_for(fake_openai, base_url=base, api_version="2024-10-21") as client:
            await client.complete(ask())
        (request,) = fake_openai.requests
        assert request.path == "/v1/openai/deployments/gpt-4o/chat/completions"
        assert request.query == {"api-version": "2024-10-21"}
        assert request.headers["api-key"] == KEY
        assert "authorization" not in request.headers

    async def test_no_key_no_auth_header(self, fake_openai: FakeOpenAI) -> None:
        """A local server without a key gets no auth header at all."""
        async with client_for(fake_openai, api_key=None) as client:
            await client.complete(ask())
        assert "authorization" not in fake_openai.requests[0].headers

    @pytest.mark.parametrize("status", [401, 403])
    async def test_refused_key_is_auth_error(self, fake_openai: FakeOpenAI, status: int) -> None:
        """401/403: LlmAuthError (a ServiceError, exit 3), not retried, the key blanked out."""
        fake_openai.script(Scripted.failure(status, f"Incorrect API key provided: {KEY}."))
        async with client_for(fake_openai) as client:
            with pytest.raises(LlmAuthError) as caught:
                await client.complete(ask())
            with pytest.raises(LlmAuthError):  # known bad: nothing more is sent
                await client.complete(ask("another"))
        error = caught.value
        assert isinstance(error, ServiceError)
        assert isinstance(error, LlmFailed)
        assert error.exit_code == 3
        assert error.status == status
        assert f"HTTP {status}" in str(error)
        assert "Incorrect API key provided" in str(error)
        assert KEY not in str(error)
        assert KEY not in repr(error)
        assert len(fake_openai.requests) == 1
        assert (client.usage.retries, client.usage.failures) == (0, 1)


class TestRetries:
    async def test_429_honours_retry_after(self, fake_openai: FakeOpenAI) -> None:
        """429 with Retry-After: 0.2 is retried after at least 0.2 s, and counted."""
        fake_openai.script(Scripted.failure(429, retry_after=0.2), Scripted.reply("ok"))
        async with client_for(fake_openai) as client:
            reply = await client.complete(ask())
        assert reply.text == "ok"
        first, second = fake_openai.requests
        assert second.at - first.at >= 0.2
        assert (client.usage.requests, client.usage.retries, client.usage.failures) == (2, 1, 0)

    async def test_retry_after_past_the_deadline_gives_up(self, fake_openai: FakeOpenAI) -> None:
        """A Retry-After longer than retry_timeout ends the request at once."""
        fake_openai.script(Scripted.failure(429, retry_after=60))
        started = time.monotonic()
        async with client_for(fake_openai, retry_timeout=5) as client:
            with pytest.raises(LlmFailed, match="HTTP 429"):
                await client.complete(ask())
        assert time.monotonic() - started < 2
        assert len(fake_openai.requests) == 1

    async def test_500_then_success(self, fake_openai: FakeOpenAI) -> None:
        """A 500 is retried; the reply that follows is returned."""
        fake_openai.script(Scripted.failure(500), Scripted.failure(502), Scripted.reply("ok"))
        async with client_for(fake_openai) as client:
            assert (await client.complete(ask())).text == "ok"
        assert (client.usage.requests, client.usage.retries) == (3, 2)

    @pytest.mark.parametrize(
        ("midway", "stream"),
        [(False, False), (False, True), (True, True)],
        ids=["plain", "sse", "sse-midway"],
    )
    async def test_dropped_connection_then_success(
        self, fake_openai: FakeOpenAI, midway: bool, stream: bool
    ) -> None:
        """A connection closed before (or halfway through) the reply is retried."""
        fake_openai.script(Scripted.dropped(midway=midway), Scripted.reply("ok"))
        async with client_for(fake_openai, stream=stream) as client:
            reply = await client.complete(ask())
        assert (reply.text, reply.finish_reason) == ("ok", "stop")
        assert (client.usage.requests, client.usage.retries) == (2, 1)
        assert client.usage.completion_tokens == 5  # the half reply counted nothing

    @pytest.mark.parametrize("status", [400, 404, 422])
    async def test_client_errors_not_retried(self, fake_openai: FakeOpenAI, status: int) -> None:
        """4xx other than 429 fails at once with the service's message."""
        fake_openai.script(Scripted.failure(status, "max_tokens is too large"))
        async with client_for(fake_openai) as client:
            with pytest.raises(LlmFailed, match="max_tokens is too large") as caught:
                await client.complete(ask())
        assert not isinstance(caught.value, LlmAuthError)
        assert caught.value.status == status
        assert len(fake_openai.requests) == 1
        assert (client.usage.retries, client.usage.failures) == (0, 1)

    async def test_retries_exhausted(self, fake_openai: FakeOpenAI) -> None:
        """After the attempts run out: LlmFailed, and one failure counted."""
        fake_openai.script(Scripted.failure(503, "overloaded"))
        async with client_for(fake_openai, retry_attempts=3) as client:
            with pytest.raises(LlmFailed, match=r"HTTP 503: overloaded.*after 3 attempts") as e:
                await client.complete(ask())
        assert e.value.status == 503
        assert len(fake_openai.requests) == 3
        usage = client.usage
        assert (usage.requests, usage.retries, usage.failures) == (3, 2, 1)

    def test_parse_retry_after(self) -> None:
        """Retry-After in seconds or as an HTTP date; retry-after-ms first; junk is ignored."""
        now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
        date = format_datetime(now + timedelta(seconds=7), usegmt=True)
        assert parse_retry_after({"retry-after": "2"}) == 2.0
        assert parse_retry_after({"retry-after": "0.25"}) == 0.25
        assert parse_retry_after({"retry-after": date}, now=now) == 7.0
        assert parse_retry_after({"retry-after": "Wed, 01 Jan 2020 00:00:00 GMT"}) == 0.0
        assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
        assert parse_retry_after({"retry-after": "soon"}) is None
        assert parse_retry_after({}) is None


class TestDeadline:
    async def test_slow_reply_hits_the_deadline(self, fake_openai: FakeOpenAI) -> None:
        """A reply slower than `timeout` fails each attempt at the deadline."""
        fake_openai.script(Scripted.slow(5))
        started = time.monotonic()
        async with client_for(fake_openai, timeout=0.3, retry_attempts=2) as client:
            with pytest.raises(LlmFailed, match=r"within 0\.3 s"):
                await client.complete(ask())
        assert time.monotonic() - started < 2
        assert (client.usage.requests, client.usage.retries, client.usage.failures) == (2, 1, 1)

    async def test_trickling_stream_hits_the_deadline(self, fake_openai: FakeOpenAI) -> None:
        """A stream whose every chunk beats the read timeout still ends at the deadline."""
        fake_openai.script(Scripted("y" * 90, pace=0.05))  # 30 chunks, 1.5 s
        started = time.monotonic()
        async with client_for(
            fake_openai, stream=True, timeout=0.4, read_timeout=0.3, retry_attempts=1
        ) as client:
            with pytest.raises(LlmFailed, match=r"within 0\.4 s"):
                await client.complete(ask())
        assert time.monotonic() - started < 1.2


class TestLimits:
    async def test_token_budget_holds_under_concurrency(self, fake_openai: FakeOpenAI) -> None:
        """20 requests at once, a budget for 5: 5 are sent, 15 raise BudgetExhausted."""
        async with client_for(fake_openai, max_tokens=100) as probe:
            cost = probe.estimate(ask("question 00"))
        budget = 5 * cost + cost // 2
        # The server reports exactly what was reserved, so no reply frees room for more.
        fake_openai.script(
            Scripted.reply("ok", prompt_tokens=cost - 100, completion_tokens=100, delay=0.2)
        )
        async with client_for(fake_openai, max_tokens=100, token_budget=budget) as client:
            outcomes = await fire(client, 20)
        assert sum(isinstance(o, Reply) for o in outcomes) == 5
        assert sum(isinstance(o, BudgetExhausted) for o in outcomes) == 15
        assert len(fake_openai.requests) == client.usage.requests == 5
        assert client.usage.prompt_tokens + client.usage.completion_tokens <= budget
        assert client.usage.budget_exhausted

    async def test_max_requests_holds(self, fake_openai: FakeOpenAI) -> None:
        """max_requests=3 with 6 requests at once: 3 sent, 3 refused."""
        fake_openai.script(Scripted.reply("ok", delay=0.1))
        async with client_for(fake_openai, max_requests=3) as client:
            outcomes = await fire(client, 6)
        assert sum(isinstance(o, BudgetExhausted) for o in outcomes) == 3
        assert len(fake_openai.requests) == client.usage.requests == 3
        assert client.usage.budget_exhausted

    async def test_retries_count_against_max_requests(self, fake_openai: FakeOpenAI) -> None:
        """A retry is a request: with max_requests=1 a 500 cannot be retried."""
        fake_openai.script(Scripted.failure(500), Scripted.reply("ok"))
        async with client_for(fake_openai, max_requests=1) as client:
            with pytest.raises(BudgetExhausted):
                await client.complete(ask())
        assert len(fake_openai.requests) == client.usage.requests == 1
        assert client.usage.budget_exhausted

    async def test_concurrency_limit_holds(self, fake_openai: FakeOpenAI) -> None:
        """No more than `concurrency` requests are ever in flight."""
        fake_openai.script(Scripted.reply("ok", delay=0.15))
        async with client_for(fake_openai, concurrency=3) as client:
            outcomes = await fire(client, 10)
        assert all(isinstance(o, Reply) for o in outcomes)
        assert len(fake_openai.requests) == 10
        assert 2 <= fake_openai.max_in_flight <= 3


class TestCache:
    async def test_cache_hit_sends_nothing(self, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
        """A repeated request is answered from disk: nothing sent, no budget spent."""
        fake_openai.script(Scripted.reply("cached answer", prompt_tokens=30, completion_tokens=7))
        async with client_for(fake_openai, cache_dir=tmp_path, max_requests=1) as client:
            first = await client.complete(ask())
            second = await client.complete(ask())
            with pytest.raises(BudgetExhausted):  # a different request is a real one
                await client.complete(ask("something else"))
        assert not first.cached
        assert second == Reply("cached answer", "stop", 30, 7, cached=True)
        usage = client.usage
        assert (usage.requests, usage.cache_hits, usage.prompt_tokens) == (1, 1, 30)
        # The stream flag is not part of the key: a streaming client hits the same entry.
        async with client_for(fake_openai, cache_dir=tmp_path, stream=True) as streaming:
            assert (await streaming.complete(ask())).cached
        assert len(fake_openai.requests) == 1
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert len(files) == 1
        assert files[0].suffix == ".json"
        assert KEY not in files[0].read_text()

    async def test_length_reply_not_cached(self, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
        """A reply cut off by its length limit is never cached."""
        fake_openai.script(Scripted.cut_off("def f(:"))
        async with client_for(fake_openai, cache_dir=tmp_path) as client:
            await client.complete(ask())
            await client.complete(ask())
        assert len(fake_openai.requests) == 2
        assert client.usage.cache_hits == 0
        assert not [p for p in tmp_path.rglob("*") if p.is_file()]


class TestSecrets:
    async def test_key_never_logged_or_shown(self, fake_openai: FakeOpenAI) -> None:
        """Logs (ours and stamina's), errors and reprs never hold the key."""
        fake_openai.script(
            Scripted.failure(500, f"upstream saw key {KEY}"),
            Scripted.dropped(),
            Scripted.reply("ok"),
            Scripted.failure(400, f"bad request with {KEY}"),
            Scripted.failure(401, f"Incorrect API key provided: {KEY}"),
        )
        saved = structlog.get_config()
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
        errors: list[Exception] = []
        try:
            with capture_logs() as logs:
                async with client_for(fake_openai) as client:
                    await client.complete(ask())
                    for text in ("bad", "refused"):
                        try:
                            await client.complete(ask(text))
                        except LlmFailed as exc:
                            errors.append(exc)
        finally:
            structlog.configure(**saved)
        events = {e["event"] for e in logs}
        assert {"llm.request", "stamina.retry_scheduled", "llm.auth_failed"} <= events
        assert KEY not in json.dumps(logs, default=repr)
        assert len(errors) == 2
        for exc in errors:
            assert KEY not in str(exc)
            assert KEY not in repr(exc)
            assert KEY not in repr(exc.__cause__)
        assert KEY not in repr(client)
        assert KEY not in repr(client.settings)
        assert KEY not in str(client.settings.model_dump())
