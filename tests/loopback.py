"""What every fake server in tests/ shares: a threaded HTTP/1.1 server on 127.0.0.1 that
keeps quiet about clients hanging up, a handler that does not log each request, and the
serving itself: a thread of its own from start to `close()`."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietServer(ThreadingHTTPServer):
    """Threads that do not outlive the tests; a client that hung up is no news."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Report what went wrong, unless the client simply went away."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class QuietHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 that writes no log line per request (tests read the fake's own
    record of requests instead)."""

    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle keep-alive connection is closed after this long
    # Headers and body go out in separate writes; with Nagle's algorithm on, each reply on
    # a kept-alive connection waits for the client's delayed ACK (about 40 ms).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: tests read the fake's record of requests instead."""


class Served:
    """A fake served on 127.0.0.1 from a thread of its own until `close()`; a context manager."""

    def _serve(self, server: QuietServer) -> None:
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def root_url(self) -> str:
        """http://127.0.0.1:PORT, the port the server got."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
