"""A fault-injecting HTTP proxy between the workers and the emulator.

It forwards every request to the emulator unchanged, counts requests by
method and path, and answers the ones a rule picks with an S3-style error
instead, so a test can make S3 fail the way AWS does (503 SlowDown) for a real
worker subprocess, and count how often the worker tried.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

#: (method, path) -> True to fail the request
Rule = Callable[[str, str], bool]

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self._upstream = urlsplit(upstream)
        self.requests: Counter[tuple[str, str]] = Counter()
        self.failed: Counter[tuple[str, str]] = Counter()
        self.rules: list[Rule] = []
        #: (method, path) -> seconds to hold the request before forwarding it
        self.delays: list[Callable[[str, str], float]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                # The client may go away (a worker killed or stopped mid-request).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._relay()

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = self.path.split("?", 1)[0]
                proxy.requests[(self.command, path)] += 1
                if any(rule(self.command, path) for rule in proxy.rules):
                    proxy.failed[(self.command, path)] += 1
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN)))
                    self.end_headers()
                    self.wfile.write(SLOW_DOWN)
                    return
                delay = max((d(self.command, path) for d in proxy.delays), default=0.0)
                if delay:
                    time.sleep(delay)
                upstream = http.client.HTTPConnection(
                    proxy._upstream.hostname, proxy._upstream.port, timeout=120
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in {"transfer-encoding", "connection", "content-length"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def gets(self, key_part: str) -> int:
        """GET requests whose path contains ``key_part`` (failed ones included)."""
        return sum(
            n for (method, path), n in self.requests.items() if method == "GET" and key_part in path
        )
