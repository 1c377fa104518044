"""A fake OpenAI chat-completions server on a real 127.0.0.1 socket, scripted per request.

The model provider is the one remote service the tests cannot reach, so this speaks its
wire protocol (docs/architecture.md): `POST .../chat/completions`, a JSON reply or, when the request
asks for `"stream": true`, server-sent events ending in `data: [DONE]`. A `responder`
(request JSON -> `Scripted`) decides each reply: content and usage, a delay, an error
status with Retry-After, a dropped connection, a reply cut off at its length limit.

In a test:

    from tests.fake_openai import FakeOpenAI, Scripted
    from tests.fake_openai import fake_openai as _fixture

    fake_openai = _fixture  # a plain import of the fixture trips ruff's F401/F811

    def test_x(fake_openai: FakeOpenAI):
        fake_openai.script(Scripted.failure(500), Scripted.reply("hi"))
        ...  # point a client at fake_openai.url
        assert len(fake_openai.requests) == 2

For benchmarks, a standalone server that echoes the user's fenced code block:

    python -m tests.fake_openai --latency 0.2 --port 0
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.loopback import QuietHandler, QuietServer, Served

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

FENCED = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Scripted:
    """What the server does with one request."""

    content: str = "ok"
    status: int = 200
    finish_reason: str | None = "stop"
    prompt_tokens: int | None = 10  # None: send no `usage` at all
    completion_tokens: int | None = 5
    delay: float = 0.0  # seconds before the first byte
    pace: float = 0.0  # seconds between streamed deltas (a slow trickle)
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str = "scripted error"  # error.message when status is not 200
    drop: Literal["before", "midway"] | None = None  # close the socket: no reply / half a reply
    chunk: int = 3  # characters per streamed delta

    @classmethod
    def reply(
        cls,
        content: str,
        *,
        prompt_tokens: int | None = 10,
        completion_tokens: int | None = 5,
        delay: float = 0.0,
    ) -> Scripted:
        """A normal reply (streamed when the request asks for it)."""
        return cls(
            content, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, delay=delay
        )

    @classmethod
    def cut_off(cls, content: str) -> Scripted:
        """A reply stopped by its length limit."""
        return cls(content, finish_reason="length")

    @classmethod
    def slow(cls, delay: float, content: str = "ok") -> Scripted:
        """A reply that starts only after `delay` seconds."""
        return cls(content, delay=delay)

    @classmethod
    def failure(
        cls, status: int, message: str = "scripted error", *, retry_after: float | str | None = None
    ) -> Scripted:
        """An error status with an OpenAI-style error body, and Retry-After if given."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return cls(status=status, error=message, headers=headers)

    @classmethod
    def dropped(cls, *, midway: bool = False) -> Scripted:
        """Close the connection: before any response, or (midway) after the first chunk."""
        return cls("a reply that never ends " * 4, drop="midway" if midway else "before")


Responder = Callable[[dict[str, Any]], Scripted]


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any
    at: float  # time.monotonic() when it arrived


def echo(request: dict[str, Any], fixed: str | None = None) -> Scripted:
    """Reply with the last user message's fenced code block unchanged (or `fixed`)."""
    if fixed is None:
        users = [m for m in request.get("messages", []) if m.get("role") == "user"]
        found = FENCED.search(users[-1].get("content", "")) if users else None
        if found:
            return Scripted.reply(f"```python\n{found.group(1)}```")
    return Scripted.reply(fixed or "ok")


class FakeOpenAI(Served):
    """The server: start it, point a client at `.url`, script it, read `.requests`."""

    def __init__(self, responder: Responder = echo, *, latency: float = 0.0, port: int = 0):
        self.latency = latency
        self.requests: list[Recorded] = []
        self.max_in_flight = 0
        self.in_flight = 0
        self._responder = responder
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        server = _Server(("127.0.0.1", port), _Handler)
        server.fake = self
        self._serve(server)

    @property
    def url(self) -> str:
        """The base URL, as a client's `base_url`."""
        return f"{self.root_url}/v1"

    def script(self, first: Responder | Scripted, *then: Scripted) -> None:
        """A responder, or actions taken in order (the last one repeats)."""
        if not isinstance(first, Scripted):
            self._responder = first
            return
        queue = [first, *then]

        def next_action(_request: dict[str, Any]) -> Scripted:
            with self._lock:
                return queue.pop(0) if len(queue) > 1 else queue[0]

        self._responder = next_action

    def close(self) -> None:
        """Stop serving; wake handlers that are sleeping through a delay."""
        self._stopping.set()
        super().close()

    @contextmanager
    def _counting(self) -> Iterator[None]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def _decide(self, request: Recorded) -> Scripted:
        with self._lock:
            self.requests.append(request)
        try:
            return self._responder(request.json if isinstance(request.json, dict) else {})
        except Exception as exc:  # noqa: BLE001 - a broken responder answers 500, visibly
            return Scripted.failure(500, f"responder raised {exc!r}")


class _Server(QuietServer):
    # socketserver's default listen backlog is 5: with hundreds of clients connecting at
    # once the kernel drops SYNs and each retry costs a second.
    request_queue_size = 1024

    fake: FakeOpenAI


class _Handler(QuietHandler):
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - http.server calls it so
        """Record the request, then do what the script says."""
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        url = urlsplit(self.path)
        record = Recorded(
            url.path,
            dict(parse_qsl(url.query)),
            {k.lower(): v for k, v in self.headers.items()},
            body,
            time.monotonic(),
        )
        with fake._counting():
            action = fake._decide(record)
            if action.delay or fake.latency:
                fake._stopping.wait(action.delay or fake.latency)
            if not url.path.endswith("/chat/completions"):
                self._json(404, {"error": {"message": f"no route {url.path}"}}, {})
            elif action.drop == "before":
                self.close_connection = True  # the socket closes with nothing sent
            elif action.status != 200:
                error = {"message": action.error, "type": "scripted", "code": action.status}
                self._json(action.status, {"error": error}, action.headers)
            elif isinstance(body, dict) and body.get("stream"):
                self._stream(action, body)
            else:
                self._json(200, _completion(action, body), action.headers)

    def _json(self, status: int, data: Any, headers: Mapping[str, str]) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, action: Scripted, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body.get("model"),
        }

        def event(data: Any) -> None:
            text = (
                "data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n"
            ).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(text), text))
            self.wfile.flush()

        event({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        text = action.content
        for start in range(0, len(text), max(1, action.chunk)):
            delta = {"content": text[start : start + action.chunk]}
            event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            if action.pace:
                self.server.fake._stopping.wait(action.pace)
            if action.drop == "midway":
                self.close_connection = True  # half a reply, then the socket closes
                return
        event(
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": action.finish_reason}]}
        )
        if (usage := _usage(action)) is not None:
            event({**base, "choices": [], "usage": usage})
        event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")


def _usage(action: Scripted) -> dict[str, int] | None:
    if action.prompt_tokens is None or action.completion_tokens is None:
        return None
    total = action.prompt_tokens + action.completion_tokens
    return {
        "prompt_tokens": action.prompt_tokens,
        "completion_tokens": action.completion_tokens,
        "total_tokens": total,
    }


def _completion(action: Scripted, body: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": action.content}
    data = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model") if isinstance(body, dict) else None,
        "choices": [{"index": 0, "message": message, "finish_reason": action.finish_reason}],
    }
    if (usage := _usage(action)) is not None:
        data["usage"] = usage
    return data


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A fake OpenAI server on 127.0.0.1; echoes fenced code until scripted otherwise."""
    with FakeOpenAI() as fake:
        yield fake


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; print the base URL first."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_openai",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--reply", help="a fixed reply instead of echoing the code block")
    args = parser.parse_args(argv)
    with FakeOpenAI(
        lambda request: echo(request, args.reply), latency=args.latency, port=args.port
    ) as fake:
        sys.stdout.write(fake.url + "\n")
        sys.stdout.flush()
        with suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
