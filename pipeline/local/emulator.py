"""The embedded local AWS: moto in server mode on 127.0.0.1, over HTTP.

Everything reaches it through the standard variables (``AWS_ENDPOINT_URL``,
credentials, region) that ``environment()`` returns, never through a code
path of its own: boto3, kombu and the worker subprocesses read them as they
would in AWS. The in-process ``mock_aws`` decorator is no substitute: it does
not intercept kombu's SQS polling, which goes through pycurl.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import functools
import gc
import hashlib
import io
import logging
import re
import selectors
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.request
from collections.abc import Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Self

from isal import isal_zlib

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler

#: moto accepts any credentials; fixed fake ones guarantee no request to the
#: emulator is ever signed with a user's real keys.
_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


#: botocore's optional checksums, off: on AWS an upload that declares none gets a
#: CRC32 that S3 checks, and a download of an object stored with one is checked
#: against it as it streams. Over the loopback to the emulator that guards nothing;
#: checking a 300 MB input cost the worker about 2% of its CPU. Checksums an
#: operation requires (``DeleteObjects``), and those the pipeline declares itself
#: (an output's parts), are still sent.
_CHECKSUMS = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}


def environment(endpoint_url: str, region: str) -> dict[str, str]:
    """The variables that point boto3 and kombu at ``endpoint_url``."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_SESSION_TOKEN": "",
        **_CREDENTIALS,
        **_CHECKSUMS,
    }


class Emulator:
    """moto's WSGI application on werkzeug's threaded server, as ``ThreadedMotoServer`` runs it,
    with two changes: the service behind a host name is looked up once, and an
    SDK's request reaches its handler without Flask around it (``_past_flask``).

    moto finds the service anew for every request, listing its own package
    folder on disk while holding the lock every request takes; that cost a
    request about a millisecond and serialised concurrent ones, and a small
    file makes some eighteen requests on its way from upload to notification.
    (The functions called from ``_serve`` trim what moto and werkzeug spend on
    each, without changing an answer.)

    ``separate``: in a process of its own, as a ``LocalStack`` runs its own.
    Its requests then no longer wait for the interpreter lock while the
    stack's pollers, functions and clients run Python: a small file's trip
    took less (p50 45 against 49 ms, and 55 against 68 in a busier hour,
    measured alternating with the emulator in the stack's process), for the
    same worker CPU on a 300 MB file. moto's IAM enforcement
    (``enforce``) is a setting of the whole process it runs in, so only an
    emulator apart can enforce.
    """

    def __init__(self, port: int = 0, *, separate: bool = False) -> None:
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[str] | None = None
        self._separate = separate
        self.url = ""

    def start(self) -> Self:
        if self._separate:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "pipeline.local.emulator", "--port", str(self._port)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self._process.stdout is not None  # noqa: S101
            self.url = self._process.stdout.readline().strip()
            if not self.url.startswith("http://"):
                self.stop()
                raise RuntimeError("the emulator's process did not start")
            return self
        return self._serve()

    @property
    def pid(self) -> int | None:
        """The emulator's own process, when it runs apart (``separate``)."""
        return self._process.pid if self._process is not None else None

    def enforce(self) -> None:
        """From now on, every request is checked against the IAM policies of its identity.

        Requests signed with unknown keys are refused; so is every action an
        identity's policies do not allow (moto's access control).
        """
        request = urllib.request.Request(  # noqa: S310 - the emulator's own http URL
            f"{self.url}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form's body would be parsed away
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            answer.read()

    def _serve(self) -> Self:
        # only the stack pays for moto's import
        from moto.moto_server.werkzeug_app import MotoRequestHandler  # noqa: PLC0415

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        _objects_in_memory()
        _completion_in_one_copy()
        _bodies_read_whole()
        _clock_for_queues()
        _names_converted_once()
        _handlers_listed_once()
        _headers_parsed_directly()
        _retention_read_directly()
        _ranges_sent_in_pieces()
        _identifiers_drawn_at_once()
        server = _server(_dispatcher(), self._port, MotoRequestHandler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="emulator", daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return self

    def stop(self) -> None:
        if self._process is not None:
            if self._process.stdin is not None:
                self._process.stdin.close()  # it stops when its input ends
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            for connection in list(self._server.open_connections):  # type: ignore[attr-defined]
                with contextlib.suppress(OSError):  # closed by its client meanwhile
                    connection.shutdown(socket.SHUT_RDWR)  # its thread sees the end and stops
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _server(app: Any, port: int, handler: type[WSGIRequestHandler]) -> BaseWSGIServer:
    """werkzeug's threaded server on the loopback, keeping its connections open."""
    from werkzeug.serving import make_server  # noqa: PLC0415

    server = make_server(
        "127.0.0.1", port, app, threaded=True, request_handler=_keeping_connections(handler)
    )
    server.open_connections = set()  # type: ignore[attr-defined]
    return server


_REQUEST_LOG = logging.getLogger("werkzeug")


def _keeping_connections(base: type[WSGIRequestHandler]) -> type[WSGIRequestHandler]:
    """werkzeug's request handler, keeping each connection open for the client's next request.

    werkzeug closes every connection, because ``http.server`` cannot tell where
    an unread body ends. Every request then paid for a new connection on both
    sides, and a thread for it in the emulator: kept, a 1,000-row CSV's trip from
    upload to notification took 41-43 ms at the median instead of 57-62 (runs
    alternating with the old way). Here a body of declared length is read to
    its end after the response, so the next request line is where it should be;
    a body sent in chunks still closes its connection. Nagle's algorithm is off,
    or the response's headers and body, sent apart, would wait on the client's
    delayed acknowledgement.
    """
    from werkzeug import serving, wsgi  # noqa: PLC0415

    # werkzeug discards whatever a client sends in the 10 ms after a response,
    # which on a kept connection is its next request.
    serving.selectors = types.SimpleNamespace(  # type: ignore[assignment,attr-defined]
        DefaultSelector=_NothingToDrain, EVENT_READ=selectors.EVENT_READ
    )

    class KeepingConnections(base):  # type: ignore[valid-type,misc]
        _body: wsgi.LimitedStream | None = None

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.server.open_connections.add(self.connection)
            self.wfile = _HeadersWithBody(self.connection)

        def flush_headers(self) -> None:
            headers: list[bytes] | None = getattr(self, "_headers_buffer", None)
            if headers:
                self.wfile.hold(b"".join(headers))
                headers.clear()

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if _REQUEST_LOG.isEnabledFor(logging.INFO):  # werkzeug formats it first
                super().log_request(code, size)

        def handle_expect_100(self) -> bool:
            return True  # werkzeug's run_wsgi answers 100 Continue itself: one is enough

        def finish(self) -> None:
            self.server.open_connections.discard(self.connection)
            super().finish()

        def make_environ(self) -> Any:
            environ = super().make_environ()
            if environ.get("wsgi.input_terminated"):  # chunked: its end is the dechunker's
                self.close_connection = True
                self._body = None
            else:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                self._body = wsgi.LimitedStream(environ["wsgi.input"], length)
                environ["wsgi.input"] = self._body
            return environ

        def send_header(self, keyword: str, value: str) -> None:
            closing = keyword.lower() == "connection" and value.lower() == "close"
            if closing and not self.close_connection:
                return  # werkzeug's "always close"
            super().send_header(keyword, value)

        def run_wsgi(self) -> None:
            super().run_wsgi()
            if self.close_connection or self._body is None:
                return
            try:
                self._body.exhaust()  # what the application left unread
            except Exception:  # the client went away: nothing more comes on this connection
                self.close_connection = True

    return KeepingConnections


class _HeadersWithBody(io.BufferedIOBase):
    """A connection's writer that holds a response's headers until its body's
    first bytes, or a flush, so that a small response leaves in one send.

    Sent apart, every response cost two system calls, and on each the emulator's
    thread gave up the interpreter lock and waited to get it back; the client
    woke twice to read it.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._held = b""

    def writable(self) -> bool:
        return True

    def hold(self, headers: bytes) -> None:
        self._held += headers

    def write(self, data: Any) -> int:
        size: int = memoryview(data).nbytes
        if self._held:
            held, self._held = self._held, b""
            if size <= _ONE_SEND_BYTES:
                self._sock.sendall(held + bytes(data))
                return size
            self._sock.sendall(held)
        self._sock.sendall(data)
        return size

    def flush(self) -> None:
        if self._held:
            held, self._held = self._held, b""
            self._sock.sendall(held)

    def fileno(self) -> int:
        return self._sock.fileno()


#: Bodies up to this size are sent with their headers; a larger one is not
#: copied to be joined to them.
_ONE_SEND_BYTES = 1 << 20


class _NothingToDrain:
    """A selector that never finds anything to read (see ``_keeping_connections``)."""

    def register(self, *_: object) -> None:
        pass

    def select(self, timeout: float | None = None) -> list[Any]:
        return []

    def close(self) -> None:
        pass


def _dispatcher() -> Any:
    """moto's dispatching application, remembering which service answers each host."""
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415
        DomainDispatcherApplication,
        create_backend_app,
    )

    class Dispatcher(DomainDispatcherApplication):
        def __init__(self) -> None:
            super().__init__(lambda service: _past_flask(create_backend_app(service)))
            self._backends: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            # Called with moto's lock held; the answer depends on the host alone.
            if host not in self._backends:
                self._backends[host] = super().get_backend_for_host(host)
            return self._backends[host]

    return Dispatcher()


#: What an SDK sends; anything else (OPTIONS, a browser's CORS) goes through Flask.
_SDK_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE"})


def _past_flask(app: Any) -> Any:
    """A service's Flask application, its handlers called as Flask would, without Flask around them.

    moto's Flask application only routes a request to its handler and wraps
    the answer in a response (``convert_to_flask_response``); Flask's contexts,
    signals and after-request hooks around that cost about a sixth of the
    emulator's time per request. An SDK's request goes straight to the handler
    its route names, with the same request class, URL adapter and response;
    whatever else (no route, a redirect, a handler of another kind, a
    browser's request) goes through Flask as before.
    """
    from botocore.exceptions import ClientError  # noqa: PLC0415
    from flask import Response  # noqa: PLC0415
    from moto.core.utils import convert_to_flask_response  # noqa: PLC0415
    from moto.moto_api import recorder  # noqa: PLC0415
    from werkzeug.exceptions import HTTPException  # noqa: PLC0415

    routes, views, request_class = app.url_map, app.view_functions, app.request_class
    subdomain = routes.default_subdomain or ""  # as Flask binds it (no subdomain matching)

    def serve(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] not in _SDK_METHODS or "HTTP_ORIGIN" in environ:
            return app(environ, start_response)
        try:
            endpoint, _ = routes.bind_to_environ(environ, subdomain=subdomain).match()
        except HTTPException:  # no route, or a redirect: Flask answers those
            return app(environ, start_response)
        view = views.get(endpoint)
        if not isinstance(view, convert_to_flask_response):
            return app(environ, start_response)
        request = request_class(environ)
        try:
            recorder._record_request(request)
            try:
                result = view.callback(request, request.raw_url, dict(request.headers))
            except ClientError as exc:
                result = 400, {}, exc.response["Error"]["Message"]
            status, headers, content = result if len(result) == 3 else (200, {}, result)
            response = Response(response=content, status=status, headers=headers)
            if request.method == "HEAD" and "content-length" in headers:
                response.headers["Content-Length"] = headers["content-length"]
        finally:
            request.close()
        return response(environ, start_response)

    return serve


#: Objects up to this size stay in memory; larger ones go to a temporary file.
_IN_MEMORY_BYTES = 1 << 30


def _objects_in_memory() -> None:
    """Keep each object's bytes as they came, in memory up to 1 GiB (``_Held``).

    moto keeps an object's value in a spooled file that moves to disk past
    5 MiB: every 8 MiB part of a multipart upload was written to a temporary
    file and read back to complete it (a 300 MB upload: 3.2 s, 2.3 s in memory).
    """
    from moto.s3 import models  # noqa: PLC0415

    models.tempfile = types.SimpleNamespace(SpooledTemporaryFile=_Held)  # type: ignore[attr-defined,assignment]


def _completion_in_one_copy() -> None:
    """Complete a multipart upload with one copy of its bytes, and CRC32s by ISA-L.

    moto grew a ``bytearray`` part by part, copied it whole into ``bytes``, and
    took each part's CRC32 with zlib: 0.47 s to complete a 300 MB output, all of
    it after the worker's last part, on the way to its notification. Here the
    object holds its parts (``_Parts``), joined at its first read, and ISA-L
    takes the CRC32s (the same values, ten times faster); the rest of moto's
    checks and answer are unchanged.
    """
    from moto import settings  # noqa: PLC0415
    from moto.s3 import exceptions, models, utils  # noqa: PLC0415

    def compute_checksum(body: bytes, algorithm: str, encode_base64: bool = True) -> bytes:
        if algorithm != "CRC32":
            return utils.compute_checksum(body, algorithm, encode_base64)
        digest = isal_zlib.crc32(body).to_bytes(4, "big")
        return base64.b64encode(digest) if encode_base64 else digest

    def complete(
        self: Any, body: Iterator[tuple[int, str]]
    ) -> tuple[_Parts, str, tuple[str, str, int] | None]:
        checksums = models.MultipartChecksumBuilder(
            self.metadata.get("x-amz-checksum-algorithm"),
            self.metadata.get("x-amz-checksum-type"),
        )
        values: list[bytes] = []
        md5s = bytearray()
        last = None
        for number, etag in body:
            part = self.parts.get(number)
            stored = None if part is None else part.etag.replace('"', "")
            if stored is None or stored != etag.replace('"', ""):
                raise exceptions.InvalidPart()
            if last is not None and last.contentsize < settings.S3_UPLOAD_PART_MIN_SIZE:
                raise exceptions.EntityTooSmall()
            md5s += bytes.fromhex(stored)
            values.append(part.value)
            checksums.addPart(values[-1])
            last = part
        if not values:
            raise exceptions.MalformedXML()
        etag = f"{hashlib.md5(bytes(md5s), usedforsecurity=False).hexdigest()}-{len(values)}"
        return _Parts(values), etag, checksums.build()

    models.compute_checksum = compute_checksum  # type: ignore[attr-defined]
    models.FakeMultipart.complete = complete  # type: ignore[method-assign,assignment]


def _bodies_read_whole() -> None:
    """Read a request's body into one buffer of its length, straight from the socket.

    werkzeug reads a body 64 KiB at a time, each read a new ``bytes`` appended to
    a growing ``bytearray``, then copied whole: about 10 ms of the emulator's
    interpreter lock for every 8 MiB part, while the worker waits on it. A body
    of unknown length (``_limit_is_max``) is still read werkzeug's way.
    """
    from werkzeug import wsgi  # noqa: PLC0415

    piecewise = wsgi.LimitedStream.readall

    def readall(self: wsgi.LimitedStream) -> bytes:
        if self.is_exhausted or self._limit_is_max:
            return piecewise(self)
        body = bytearray(self.limit - self._pos)
        view, filled = memoryview(body), 0
        while filled < len(body):
            count = self.readinto(view[filled:])  # type: ignore[arg-type]
            if not count:  # unreachable: a short body raises ``ClientDisconnected``
                break
            filled += count
        return bytes(view[:filled])

    wsgi.LimitedStream.readall = readall  # type: ignore[method-assign]


def _clock_for_queues() -> None:
    """moto's SQS asks the time as a datetime, turned into seconds, for every message of a
    queue on every send and receive (it counts the visible, delayed and in-flight ones
    to read one attribute): 2 us a message. ``time.time()`` is the same clock.

    A queue nobody drains (a stack's notification queue while no one listens) made
    every ``SendMessage`` to it, the SNS fan-out of each notification, slower: 10 ms
    a send at 500 messages.
    """
    from moto.core import utils  # noqa: PLC0415
    from moto.sqs import models  # noqa: PLC0415

    def unix_time(when: datetime.datetime | None = None) -> float:
        return time.time() if when is None else utils.unix_time(when)

    def unix_time_millis(when: datetime.datetime | None = None) -> float:
        return unix_time(when) * 1000.0

    models.unix_time = unix_time  # type: ignore[attr-defined,assignment]
    models.unix_time_millis = unix_time_millis  # type: ignore[attr-defined,assignment]


def _ranges_sent_in_pieces() -> None:
    """Serve a range of an object from the object's bytes, a piece at a time.

    moto slices the range out of the object before it sends a byte: a shard
    read from the middle of a 572 MB file cost the emulator 0.2-0.3 s, a copy
    into fresh memory, while the worker waited for its first byte. A piece is
    copied as it is sent, into memory the last one freed.
    """
    from moto.s3.responses import S3Response  # noqa: PLC0415

    ranged = S3Response._handle_range_header

    def handle(self: Any, request: Any, headers: dict[str, Any], content: Any) -> Any:
        if request.method != "GET" or not isinstance(content, bytes) or len(content) <= _PIECE:
            return ranged(self, request, headers, content)
        status, headers, part = ranged(self, request, headers, memoryview(content))
        if status != HTTPStatus.PARTIAL_CONTENT or not isinstance(part, memoryview):
            return status, headers, content  # not a range after all: the object as it is
        return status, headers, _pieces(part)

    S3Response._handle_range_header = handle  # type: ignore[method-assign,assignment]


_PIECE = 1 << 20


def _pieces(view: memoryview) -> Iterator[bytes]:
    for start in range(0, len(view), _PIECE):
        yield bytes(view[start : start + _PIECE])


@functools.cache  # once a process: each emulator started here would wrap it again
def _names_converted_once() -> None:
    """Remember moto's conversions of AWS names to Python ones (``camelcase_to_underscores``).

    moto converts the same few dozen names character by character on every
    request, 15 of them for a queue's attributes at every receive: about 175
    conversions for a small file's trip, 20 us each. The function is pure; the
    names it has seen are kept, a bounded number.
    """
    from moto.core import utils  # noqa: PLC0415

    converted = utils.camelcase_to_underscores
    remembered = functools.lru_cache(maxsize=4096)(converted)
    utils.camelcase_to_underscores = remembered
    for name, module in list(sys.modules.items()):  # those that imported it by name
        if (
            name.startswith("moto.")
            and getattr(module, "camelcase_to_underscores", None) is converted
        ):
            setattr(module, "camelcase_to_underscores", remembered)  # noqa: B010


@functools.cache  # once a process: each emulator started here would wrap it again
def _handlers_listed_once() -> None:
    """Remember which handlers a response class has (``method_names_from_class``).

    To find the handler of every request, moto listed its class's functions
    with ``inspect.getmembers``: 40-60 us a request, for classes that do not change.
    """
    from moto.core import responses  # noqa: PLC0415

    listed = responses.method_names_from_class  # type: ignore[attr-defined]
    responses.method_names_from_class = functools.lru_cache(maxsize=64)(listed)  # type: ignore[attr-defined]


#: A header block the email parser takes line by line: names of visible characters but
#: the colon, each value on its line (none folded onto the next, no stray CR), a blank
#: line at the end.
_PLAIN_HEADERS = re.compile(r"(?:[\x21-\x39\x3b-\x7e]+:[^\r\n]*\r?\n)*\r?\n")
_HEADER = re.compile(r"([^:\r\n]+):[ \t]*([^\r\n]*)\r?\n")


@functools.cache  # once a process: each emulator started here would wrap it again
def _headers_parsed_directly() -> None:
    """Parse HTTP headers without the email package, where its answer is known in advance.

    ``http.client.parse_headers`` (the server's requests, and the responses
    every client in this process reads) hands the header block to the email
    parser: about 45 us for an SDK's dozen headers. A block of plain
    ``Name: value`` lines becomes the message the email parser makes
    (compat32: a value's leading blanks and line end dropped); any other
    block (a folded line, a name it would refuse) still goes to it.
    """
    import http.client  # noqa: PLC0415

    parsed = http.client.parse_headers

    def parse_headers(fp: Any, _class: type[Any] = http.client.HTTPMessage) -> Any:
        raw = b"".join(http.client._read_headers(fp))  # type: ignore[attr-defined]
        block = raw.decode("iso-8859-1")
        if _PLAIN_HEADERS.fullmatch(block) is None:
            return parsed(io.BytesIO(raw), _class)
        message = _class()
        message._headers = _HEADER.findall(block)
        message.set_payload("")
        return message

    http.client.parse_headers = parse_headers  # type: ignore[assignment]


def _retention_read_directly() -> None:
    """Read a queue's retention period where moto keeps it.

    To check each message it hands out, moto built every attribute of the
    queue, counting its visible, delayed and in-flight messages, and kept one:
    about a third of the emulator's time in a ``ReceiveMessage``.
    """
    from moto.sqs import models  # noqa: PLC0415

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        period = int(self.get_queue(queue_name).message_retention_period)
        return bool(period + message.sent_timestamp / 1000 > time.time())

    models.SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[method-assign]


def _identifiers_drawn_at_once() -> None:
    """Draw moto's random identifiers in one call, not one call a character.

    Every answer carries a 52-character request id, and every message received
    a 185-character receipt handle, each drawn a character at a time with
    ``random.choice``: 20 and 70 us. ``choices`` draws from the same characters,
    with moto's own generator (a seeded moto stays repeatable), in a quarter of
    the time.
    """
    from moto.moto_api._internal import mock_random, moto_random  # noqa: PLC0415
    from moto.sqs import models  # noqa: PLC0415

    def get_random_string(
        self: Any, length: int = 20, include_digits: bool = True, lower_case: bool = False
    ) -> str:
        pool = string.ascii_letters + (string.digits if include_digits else "")
        drawn = "".join(self.choices(pool, k=length))
        return drawn.lower() if lower_case else drawn

    def generate_receipt_handle() -> str:
        return "".join(mock_random.choices(string.ascii_lowercase, k=_RECEIPT_HANDLE_LENGTH))

    moto_random.MotoRandom.get_random_string = get_random_string  # type: ignore[method-assign]
    models.generate_receipt_handle = generate_receipt_handle  # type: ignore[attr-defined]


#: moto's length, after AWS's documented maximum.
_RECEIPT_HANDLE_LENGTH = 185


class _Parts:
    """A completed upload's parts, as the object's value until it is first read."""

    def __init__(self, values: list[bytes]) -> None:
        self._values = values
        self._size = sum(len(v) for v in values)

    def __len__(self) -> int:
        return self._size

    def __bytes__(self) -> bytes:
        return b"".join(self._values)


class _Held:
    """The spooled file moto keeps an object's value in, over the bytes object written.

    moto reads an object whole to serve any range of it, and reads every part
    whole, twice, to complete a multipart upload; a spooled file in memory
    copies the bytes at each read and write. Here a whole read gives back the
    bytes written, so a part's bytes are copied once on their way to the
    object, not five times, and that once at the object's first read, not
    while its upload completes. Past 1 GiB the bytes go to a spooled file.
    """

    def __init__(self, *_: object, **__: object) -> None:
        # moto's own limit (5 MiB unless S3_DEFAULT_KEY_BUFFER_SIZE says) is not kept
        self._limit = _IN_MEMORY_BYTES
        self._data: bytes | _Parts = b""
        self._position = 0
        self._file: Any = None  # past the limit: a spooled file
        self.closed = False

    def write(self, data: bytes | _Parts) -> int:
        fresh = self._file is None and not self._data and not self._position
        if fresh and len(data) <= self._limit:
            # no copy of a bytes object, nor yet of a completed upload's parts
            self._data = data if isinstance(data, _Parts) else bytes(data)
            self._position = len(data)
            return len(data)
        if self._file is None:
            self._file = tempfile.SpooledTemporaryFile(self._limit)  # noqa: SIM115 - kept open
            self._file.write(self._bytes())
            self._file.seek(self._position)
            self._data = b""
        return int(self._file.write(bytes(data)))

    def _bytes(self) -> bytes:
        if isinstance(self._data, _Parts):
            self._data = bytes(self._data)
        return self._data

    def read(self, size: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read of closed file")
        if self._file is not None:
            return bytes(self._file.read(size))
        data = self._bytes()
        start, length = self._position, len(data)
        end = length if size is None or size < 0 else min(length, start + size)
        self._position = max(start, end)
        if start == 0 and end == length:
            return data
        return data[start:end]

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._file is not None:
            return int(self._file.seek(offset, whence))
        base = {0: 0, 1: self._position, 2: len(self._data)}[whence]
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return int(self._file.tell()) if self._file is not None else self._position

    def truncate(self, size: int | None = None) -> int:
        if self._file is not None:
            return int(self._file.truncate(size))
        size = self._position if size is None else size
        self._data = self._bytes()[:size]
        return size

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._data, self.closed = b"", True


def _resources() -> None:
    """Give actions the resource AWS checks policies against, where moto gives ``*``.

    moto checks every SNS action, and ``sqs:CreateQueue``, against ``*``, so
    a policy that allows ``sns:Publish`` on the stack's topic (as the
    template's do) would deny it; AWS checks the topic, or the queue to be
    created, named in the request.
    """
    from moto.sns.responses import SNSResponse  # noqa: PLC0415
    from moto.sqs.responses import SQSResponse  # noqa: PLC0415

    existing = SQSResponse._determine_resource

    def queue_resource(self: Any) -> str:
        found = str(existing(self))
        name = self._get_param("QueueName")
        if found == "*" and name:
            return f"arn:aws:sqs:{self.region}:{self.current_account}:{name}"
        return found

    SQSResponse._determine_resource = queue_resource  # type: ignore[method-assign]

    def determine_resource(self: Any) -> str:
        for name in ("TopicArn", "TargetArn", "SubscriptionArn"):
            if self._get_param(name):
                return str(self._get_param(name))
        return "*"

    SNSResponse._determine_resource = determine_resource  # type: ignore[attr-defined]
    _batch_actions()
    _denials()


#: SQS authorises a batch call as the single action it repeats; moto asks for its own name.
_BATCH_ACTIONS = {
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}


def _batch_actions() -> None:
    from moto.iam.access_control import IAMRequestBase  # noqa: PLC0415

    created = IAMRequestBase.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        created(self, *args, **kwargs)
        self._action = _BATCH_ACTIONS.get(self._action, self._action)

    IAMRequestBase.__init__ = init  # type: ignore[method-assign]


def _denials() -> None:
    """Refusals worded as AWS words them: who, which action, on which resource.

    moto says only "not authorized to perform: sqs:SendMessage" (and S3 only
    "Access Denied"); the resource is what tells a template's author which
    statement is missing.
    """
    from moto.core.exceptions import AccessDeniedError, _RESTError  # noqa: PLC0415
    from moto.iam.access_control import IAMRequest, IAMRequestBase, S3IAMRequest  # noqa: PLC0415
    from moto.s3.exceptions import S3ClientError  # noqa: PLC0415

    checked = IAMRequestBase.check_action_permitted

    def check(self: Any, resource: str) -> None:
        self._resource = resource
        checked(self, resource)

    def message(self: Any) -> str:
        action, resource = self._action, getattr(self, "_resource", "*")
        return (
            f"User: {self._access_key.arn} is not authorized to perform: {action} on resource: "
            f"{resource} because no identity-based policy allows the {action} action"
        )

    def denied(self: Any) -> None:
        error = AccessDeniedError(user_arn=self._access_key.arn, action=self._action)
        _RESTError.__init__(error, "AccessDenied", message(self))  # the same error, reworded
        raise error

    def s3_denied(self: Any) -> None:
        raise S3ClientError("AccessDenied", message(self))

    IAMRequestBase.check_action_permitted = check  # type: ignore[method-assign]
    IAMRequest._raise_access_denied = denied  # type: ignore[method-assign]
    S3IAMRequest._raise_access_denied = s3_denied  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    """An emulator in a process of its own: prints its URL, serves until its input ends."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.local.emulator")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    # A terminal's Ctrl-C reaches the whole process group; the process that started
    # this one still needs it to clean up, and ends it by closing its input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _resources()
    emulator = Emulator(args.port).start()
    gc.freeze()  # moto's own objects live as long as this process (see ``LocalStack``)
    print(emulator.url, flush=True)
    sys.stdin.read()
    emulator.stop()


if __name__ == "__main__":
    main()
