"""The embedded emulator's variables, as every process that talks to it gets them."""

import datetime
import hashlib
import http.client
import io
import socket
import threading
import time
import types
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.core import utils
from moto.sqs import models
from werkzeug import wsgi
from werkzeug.exceptions import ClientDisconnected
from werkzeug.serving import WSGIRequestHandler

from pipeline.local import emulator
from pipeline.local.template import ACCOUNT_ID
from pipeline.stores import aws
from tests.conftest import REGION, unique


def checksum_headers(s3: Any, bucket: str) -> list[str]:
    """The checksum headers of one upload made with ``s3``."""
    sent: list[dict[str, str]] = []
    s3.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers))
    )
    s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 1000)
    return [name.lower() for name in sent[0] if name.lower().startswith("x-amz-checksum")]


def test_uploads_to_the_emulator_carry_no_optional_checksum(
    s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the loopback a CRC32 of every part guards nothing and costs the worker and
    the emulator CPU; a client without the stack's variables (on AWS) still sends one."""
    assert checksum_headers(s3, bucket) == []
    monkeypatch.delenv("AWS_REQUEST_CHECKSUM_CALCULATION")
    assert checksum_headers(aws.s3_client(REGION), bucket) == ["x-amz-checksum-crc32"]


def test_an_object_is_held_as_the_bytes_written_and_read_back_whole_without_a_copy() -> None:
    held = emulator._Held(5 * 1024 * 1024)  # moto's own limit is not kept
    body = bytes(range(256)) * 40_000  # 10 MB
    held.seek(0)
    held.truncate()
    held.write(body)
    held.seek(0)
    assert held.read() is body
    held.seek(10)
    assert held.read(5) == body[10:15]
    assert held.tell() == 15
    assert held.read() == body[15:]
    held.close()
    with pytest.raises(ValueError, match="closed"):
        held.read()


def test_an_object_past_the_memory_limit_goes_to_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulator, "_IN_MEMORY_BYTES", 1000)
    held = emulator._Held()
    body = b"x" * 600 + b"y" * 600
    held.write(body)
    held.seek(0)
    assert held.read() == body
    held.seek(0)
    held.truncate()
    held.write(b"z")
    held.seek(0)
    assert held.read() == b"z"


def _upload(s3: Any, bucket: str, parts: list[bytes], etags: dict[int, str] | None = None) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    done = [
        {"PartNumber": n, "ETag": s3.upload_part(
            Bucket=bucket, Key="m", UploadId=upload, PartNumber=n, Body=body)["ETag"]}
        for n, body in enumerate(parts, 1)
    ]  # fmt: skip
    for part in done:
        part["ETag"] = (etags or {}).get(part["PartNumber"], part["ETag"])
    s3.complete_multipart_upload(
        Bucket=bucket, Key="m", UploadId=upload, MultipartUpload={"Parts": done}
    )


def test_a_multipart_upload_reads_back_whole_and_in_ranges(s3: Any, bucket: str) -> None:
    parts = [bytes([i]) * (5 * 1024 * 1024) for i in range(2)] + [b"end"]
    _upload(s3, bucket, parts)
    whole = b"".join(parts)
    assert s3.get_object(Bucket=bucket, Key="m")["Body"].read() == whole
    ranged = s3.get_object(Bucket=bucket, Key="m", Range="bytes=5242878-5242881")
    assert ranged["Body"].read() == whole[5242878:5242882]
    digests = b"".join(hashlib.md5(p).digest() for p in parts)  # noqa: S324 - S3's ETag
    etag = s3.head_object(Bucket=bucket, Key="m")["ETag"]
    assert etag == f'"{hashlib.md5(digests).hexdigest()}-3"'  # noqa: S324


def test_a_completed_upload_is_held_as_its_parts_until_first_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Joining a 300 MB output's parts took a fifth of a second of its completion."""
    parts = [b"a" * 700, b"b" * 500]
    held = emulator._Held()
    held.write(emulator._Parts(parts))
    assert isinstance(held._data, emulator._Parts)  # nothing joined yet
    held.seek(0)
    assert held.read() == b"".join(parts)
    held.seek(699)
    assert held.read(2) == b"ab"

    monkeypatch.setattr(emulator, "_IN_MEMORY_BYTES", 1000)
    big = emulator._Held()
    big.write(emulator._Parts(parts))  # past the limit: to a file, joined
    big.seek(0)
    assert big.read() == b"".join(parts)


def test_a_completed_upload_has_its_size_before_it_is_read(s3: Any, bucket: str) -> None:
    parts = [b"x" * (5 * 1024 * 1024), b"tail"]
    _upload(s3, bucket, parts)
    assert s3.head_object(Bucket=bucket, Key="m")["ContentLength"] == 5 * 1024 * 1024 + 4
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("m", 5 * 1024 * 1024 + 4)]


@pytest.mark.parametrize(
    ("parts", "etags", "code"),
    [
        (
            [b"x" * (5 * 1024 * 1024), b"y"],
            {2: '"00000000000000000000000000000000"'},
            "InvalidPart",
        ),
        ([b"x" * 1024, b"y"], None, "EntityTooSmall"),
    ],
    ids=["wrong-etag", "small-part"],
)
def test_completing_still_refuses_what_s3_refuses(
    s3: Any, bucket: str, parts: list[bytes], etags: dict[int, str] | None, code: str
) -> None:
    with pytest.raises(ClientError) as refused:
        _upload(s3, bucket, parts, etags)
    assert aws.error_code(refused.value) == code
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_a_request_body_is_read_whole_and_a_short_one_is_a_disconnect() -> None:
    emulator._bodies_read_whole()
    body = bytes(range(256)) * 1000
    assert wsgi.LimitedStream(io.BufferedReader(io.BytesIO(body)), len(body)).readall() == body
    stream = wsgi.LimitedStream(io.BufferedReader(io.BytesIO(body[:100])), len(body))
    with pytest.raises(ClientDisconnected):
        stream.readall()
    assert wsgi.LimitedStream(io.BytesIO(body), 10).readall() == body[:10]


def test_queues_tell_the_time_by_the_system_clock_and_still_hide_messages(sqs: Any) -> None:
    """The emulator's SQS takes "now" from ``time.time()`` (moto's datetime arithmetic cost
    2 us a message of a queue, on every send); visibility timeouts work as before."""
    assert models.unix_time is not utils.unix_time
    assert abs(models.unix_time() - time.time()) < 1
    when = datetime.datetime(2026, 1, 1, 12, 30)
    assert models.unix_time(when) == utils.unix_time(when)
    assert models.unix_time_millis(when) == utils.unix_time_millis(when)

    url = sqs.create_queue(QueueName=unique("clock"))["QueueUrl"]
    try:
        sqs.send_message(QueueUrl=url, MessageBody="m")
        first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=1, WaitTimeSeconds=0)
        assert len(first.get("Messages", [])) == 1
        assert not sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages")
        time.sleep(1.2)
        again = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", [])
        assert [m["Body"] for m in again] == ["m"]
    finally:
        sqs.delete_queue(QueueUrl=url)


def _connection(url: str) -> http.client.HTTPConnection:
    host, port = url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=10)


def _get(connection: http.client.HTTPConnection, path: str, body: bytes | None = None) -> bytes:
    connection.request("GET", path, body=body)
    answer = connection.getresponse()
    assert answer.status == 200
    assert answer.getheader("Connection") != "close"
    return answer.read()


def test_a_connection_serves_request_after_request(aws_endpoint: str, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"held", ACL="public-read")
    connection = _connection(aws_endpoint)
    try:
        assert _get(connection, f"/{bucket}/k", body=b"z" * 70_000) == b"held"
        kept = connection.sock
        assert _get(connection, f"/{bucket}/k") == b"held"
        assert connection.sock is kept
    finally:
        connection.close()


def test_a_body_the_application_left_unread_is_not_taken_for_the_next_request() -> None:
    """moto reads every body; an application that does not must not leave its rest to
    be read as the next request line (why werkzeug closed every connection)."""

    def ignoring(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"].encode()
        start_response("200 OK", [("Content-Length", str(len(path)))])
        return [path]

    server = emulator._server(ignoring, 0, WSGIRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    connection = _connection(f"http://127.0.0.1:{server.server_address[1]}")
    try:
        assert _get(connection, "/first", body=b"z" * 70_000) == b"/first"
        kept = connection.sock
        assert _get(connection, "/next") == b"/next"
        assert connection.sock is kept
    finally:
        connection.close()
        server.shutdown()
        server.server_close()


def test_a_body_sent_in_chunks_is_read_and_its_connection_closed(
    aws_endpoint: str, s3: Any, bucket: str
) -> None:
    """Where a chunked body ends is the dechunker's to know: no next request is read after it."""
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    connection = _connection(aws_endpoint)
    try:
        connection.request("PUT", f"/{bucket}/c", body=iter([b"abc", b"def"]), encode_chunked=True)
        answer = connection.getresponse()
        answer.read()
        assert (answer.status, answer.getheader("Connection")) == (200, "close")
    finally:
        connection.close()
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == b"abcdef"


def test_stopping_ends_the_connections_it_kept() -> None:
    """A kept connection's thread waits for the next request; stopping must end it."""
    server = emulator.Emulator().start()
    connection = _connection(server.url)
    try:
        connection.request("GET", "/moto-api/")
        connection.getresponse().read()
        kept = connection.sock
        assert kept is not None
        server.stop()
        assert kept.recv(1) == b""  # the emulator's end of it is gone
    finally:
        connection.close()
        server.stop()


class _Recorded:
    """A socket that keeps what each ``sendall`` was given."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendall(self, data: Any) -> None:
        self.sent.append(bytes(data))


def test_a_response_s_headers_leave_with_its_body_when_it_is_small() -> None:
    sock = _Recorded()
    writer = emulator._HeadersWithBody(sock)  # type: ignore[arg-type]
    writer.hold(b"HTTP/1.1 200 OK\r\n")
    writer.hold(b"\r\n")
    assert sock.sent == []
    assert writer.write(b"body") == 4
    assert sock.sent == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    assert writer.write(memoryview(b"more")) == 4  # nothing held: straight out
    assert sock.sent[1:] == [b"more"]


def test_a_large_body_is_not_copied_to_join_its_headers() -> None:
    sock = _Recorded()
    writer = emulator._HeadersWithBody(sock)  # type: ignore[arg-type]
    large = b"x" * (emulator._ONE_SEND_BYTES + 1)
    writer.hold(b"headers")
    assert writer.write(large) == len(large)
    assert sock.sent == [b"headers", large]


def test_headers_with_no_body_leave_at_the_flush() -> None:
    sock = _Recorded()
    writer = emulator._HeadersWithBody(sock)  # type: ignore[arg-type]
    writer.flush()
    assert sock.sent == []
    writer.hold(b"HTTP/1.1 204 No Content\r\n\r\n")
    writer.flush()
    writer.flush()
    assert sock.sent == [b"HTTP/1.1 204 No Content\r\n\r\n"]


def test_a_client_that_expects_100_continue_gets_it_once_before_it_sends_the_body(
    aws_endpoint: str, s3: Any, bucket: str
) -> None:
    """The interim answer is sent at once, and once, for a body that comes only after it."""
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    host, port = aws_endpoint.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            f"PUT /{bucket}/e HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        answer = sock.recv(1024)
        assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"hello")
        while b"HTTP/1.1 200 OK\r\n" not in answer or not answer.endswith(b"\r\n\r\n"):
            answer += sock.recv(4096)
        assert answer.count(b"100 Continue") == 1
    assert s3.get_object(Bucket=bucket, Key="e")["Body"].read() == b"hello"


def test_answers_with_and_without_a_body_arrive_whole_on_a_kept_connection(
    aws_endpoint: str, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"held", ACL="public-read")
    connection = _connection(aws_endpoint)
    try:
        for _ in range(3):
            connection.request("HEAD", f"/{bucket}/k")
            head = connection.getresponse()
            assert (head.status, head.read(), head.getheader("Content-Length")) == (200, b"", "4")
            assert _get(connection, f"/{bucket}/k") == b"held"
            connection.request("GET", f"/{bucket}/missing")
            missing = connection.getresponse()
            assert missing.status == 404
            assert b"NoSuchKey" in missing.read()
    finally:
        connection.close()


def test_moto_s_name_conversions_are_remembered_and_unchanged() -> None:
    convert = utils.camelcase_to_underscores
    assert hasattr(convert, "cache_info")
    assert models.camelcase_to_underscores is convert  # imported by name before the change
    assert convert("MessageRetentionPeriod") == "message_retention_period"
    assert convert("ApproximateNumberOfMessagesNotVisible") == (
        "approximate_number_of_messages_not_visible"
    )
    assert convert("KMSMasterKeyId") == "kms_master_key_id"
    assert convert("") == ""


def test_a_message_past_its_queue_s_retention_is_not_handed_out(sqs: Any) -> None:
    """The retention check reads the period straight from the queue; it still holds."""
    name = unique("kept")
    url = sqs.create_queue(QueueName=name, Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    try:
        sqs.send_message(QueueUrl=url, MessageBody="old")
        queue = models.sqs_backends[ACCOUNT_ID][REGION].queues[name]
        (message,) = queue._messages
        message.sent_timestamp -= 61_000
        assert not sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages")
        sqs.send_message(QueueUrl=url, MessageBody="new")
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0, MaxNumberOfMessages=10)
        assert [m["Body"] for m in got.get("Messages", [])] == ["new"]
    finally:
        sqs.delete_queue(QueueUrl=url)


@pytest.mark.parametrize(
    ("asked", "first", "last"),
    [
        pytest.param("bytes=0-1048575", 0, 1048575, id="the first piece exactly"),
        pytest.param("bytes=1048575-3000000", 1048575, 3000000, id="across pieces"),
        pytest.param("bytes=2500000-", 2500000, 3145727, id="to the end"),
        pytest.param("bytes=-1500000", 1645728, 3145727, id="a suffix"),
        pytest.param("bytes=3000000-9999999", 3000000, 3145727, id="past the end"),
    ],
)
def test_a_range_of_a_large_object_is_exact(
    s3: Any, bucket: str, asked: str, first: int, last: int
) -> None:
    """Ranges of an object over a piece are sent a piece at a time; the bytes and
    headers are S3's."""
    body = bytes(range(256)) * (3 * 1024 * 4)  # 3 MiB
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    got = s3.get_object(Bucket=bucket, Key="r", Range=asked)
    assert got["Body"].read() == body[first : last + 1]
    assert got["ContentRange"] == f"bytes {first}-{last}/{len(body)}"
    assert got["ContentLength"] == last - first + 1


def test_a_range_past_a_large_object_is_refused_and_no_range_is_the_whole(
    s3: Any, bucket: str
) -> None:
    body = b"z" * (2 * 1024 * 1024)
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    with pytest.raises(ClientError, match="InvalidRange"):
        s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(body)}-")
    whole = s3.get_object(Bucket=bucket, Key="r", Range="bytes=x-y")  # unparsable: ignored
    assert whole["Body"].read() == body
    assert "ContentRange" not in whole


def test_a_range_is_cut_from_the_object_as_it_is_sent() -> None:
    from moto.s3.responses import S3Response

    body = bytes(range(256)) * 8192  # 2 MiB
    request = types.SimpleNamespace(method="GET", headers={"range": "bytes=10-"})
    status, headers, content = S3Response._handle_range_header(
        None,  # type: ignore[arg-type]
        request,
        {"content-length": str(len(body))},
        body,
    )
    assert status == 206
    assert not isinstance(content, bytes | memoryview)  # nothing copied before sending
    pieces = list(content)
    assert [len(p) for p in pieces] == [1 << 20, (1 << 20) - 10]
    assert b"".join(pieces) == body[10:]
    assert headers["content-length"] == str(len(body) - 10)


def _conversation(s3: Any, sqs: Any, bucket: str) -> list[Any]:
    """What an SDK hears back from a few S3 and SQS calls, less what differs call to call."""
    volatile = {"date", "last-modified", "x-amz-request-id", "x-amzn-requestid", "x-amz-id-2"}
    heard: list[Any] = []

    def keep(response: dict[str, Any]) -> dict[str, Any]:
        meta = response.pop("ResponseMetadata")
        headers = {
            k: v
            for k, v in meta["HTTPHeaders"].items()
            if k not in volatile and not k.startswith("access-control-")
        }
        heard.append((meta["HTTPStatusCode"], headers))
        return response

    def refused(call: Any, **kwargs: Any) -> None:
        with pytest.raises(ClientError) as error:
            call(**kwargs)
        heard.append((error.value.response["Error"]["Code"], keep(error.value.response)))

    put = keep(s3.put_object(Bucket=bucket, Key="k", Body=b"a,b\n1,2\n", ContentType="text/csv"))
    heard.append(put["ETag"])
    head = keep(s3.head_object(Bucket=bucket, Key="k"))
    heard.append((head["ContentLength"], head["ContentType"], head["ETag"]))
    heard.append(keep(s3.get_object(Bucket=bucket, Key="k", Range="bytes=2-5"))["Body"].read())
    heard.append([o["Key"] for o in keep(s3.list_objects_v2(Bucket=bucket))["Contents"]])
    refused(s3.head_object, Bucket=bucket, Key="missing")
    refused(s3.get_object, Bucket=bucket, Key="missing")
    refused(s3.create_bucket, Bucket="b1")  # too short
    queue = keep(sqs.create_queue(QueueName=unique("queue")))["QueueUrl"]
    heard.append(keep(sqs.send_message(QueueUrl=queue, MessageBody="m"))["MD5OfMessageBody"])
    heard.append([m["Body"] for m in keep(sqs.receive_message(QueueUrl=queue))["Messages"]])
    refused(sqs.get_queue_url, QueueName=unique("none"))
    keep(sqs.delete_queue(QueueUrl=queue))
    s3.delete_object(Bucket=bucket, Key="k")
    return heard


def test_an_sdk_s_request_skips_flask_and_hears_what_flask_would_have_said(
    s3: Any, sqs: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's Flask application only routes to a handler and wraps its answer; the
    emulator does that itself, and the SDK cannot tell the difference."""
    import flask

    dispatched: list[object] = []
    through = flask.Flask.full_dispatch_request
    monkeypatch.setattr(
        flask.Flask, "full_dispatch_request", lambda app: dispatched.append(app) or through(app)
    )
    direct = _conversation(s3, sqs, bucket)
    assert dispatched == []
    monkeypatch.setattr(emulator, "_SDK_METHODS", frozenset())  # everything through Flask
    assert _conversation(s3, sqs, bucket) == direct
    assert len(dispatched) > 10


def test_a_browser_s_request_still_goes_through_flask(
    aws_endpoint: str, s3: Any, bucket: str
) -> None:
    """A page fetching a report gets the CORS headers moto's Flask application adds."""
    s3.put_object(Bucket=bucket, Key="report.json", Body=b"{}", ACL="public-read")
    connection = _connection(aws_endpoint)
    connection.request("GET", f"/{bucket}/report.json", headers={"Origin": "http://page"})
    answer = connection.getresponse()
    assert (answer.status, answer.read()) == (200, b"{}")
    assert answer.getheader("Access-Control-Allow-Origin") in {"*", "http://page"}
    connection.close()


def test_moto_is_patched_once_however_many_emulators_start() -> None:
    """Each emulator started in a process runs the patches; a second must not wrap the first."""
    import http.client

    from moto.core import responses

    before = (utils.camelcase_to_underscores, responses.method_names_from_class)
    parse = http.client.parse_headers
    emulator.Emulator().start().stop()
    assert (utils.camelcase_to_underscores, responses.method_names_from_class) == before
    assert http.client.parse_headers is parse


def test_handlers_are_listed_once_a_class() -> None:
    from moto.core import responses
    from moto.s3.responses import S3Response

    listed = responses.method_names_from_class(S3Response)
    assert responses.method_names_from_class(S3Response) is listed  # remembered
    assert {"put_object", "key_response"} <= set(listed)
    assert listed == utils.method_names_from_class(S3Response)  # what moto lists


_HEADER_BLOCKS = [
    b"Host: a\r\nContent-Length: 5\r\n\r\n",
    b"Host: a\nX: b\n\n",
    b"\r\n",
    b"X-Empty:\r\nX-Padded:   v  \r\nX-Tab:\tv\r\nX-Colons: a:b:c\r\n\r\n",
    b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
    b"X: caf\xc3\xa9 \xe9\r\n\r\n",
    # what only the email parser takes as it should
    b"X-Folded: a\r\n  continued\r\nY: z\r\n\r\n",
    b"Bad Name: x\r\nY: z\r\n\r\n",
    b": nameless\r\nY: z\r\n\r\n",
    b"From nobody\r\nY: z\r\n\r\n",
    b"X: a\rb\r\n\r\n",
    b"Host: a\r\nno colon\r\nY: z\r\n\r\n",
    b"X-\x7f: del\r\n\r\n",
    b"Host: unterminated",
    b"",
]


@pytest.mark.parametrize("block", _HEADER_BLOCKS)
def test_headers_parse_as_the_email_parser_parses_them(block: bytes) -> None:
    import email.parser

    by_email = email.parser.Parser(_class=http.client.HTTPMessage).parsestr(
        block.decode("iso-8859-1")
    )
    emulator._headers_parsed_directly()  # as the emulator's process has it
    parsed = http.client.parse_headers(io.BytesIO(block))
    assert type(parsed) is http.client.HTTPMessage
    assert parsed.items() == by_email.items()
    assert parsed.get_payload() == by_email.get_payload()
    assert [type(d) for d in parsed.defects] == [type(d) for d in by_email.defects]


def test_plain_headers_skip_the_email_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    import email.parser

    emulator._headers_parsed_directly()
    monkeypatch.setattr(email.parser.Parser, "parsestr", None)  # any use fails
    parsed = http.client.parse_headers(io.BytesIO(b"Host: a\r\nX-Amz-Target: b\r\n\r\n"))
    assert parsed.items() == [("Host", "a"), ("X-Amz-Target", "b")]


def test_requests_are_not_formatted_for_a_log_that_is_off(
    aws_endpoint: str, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from werkzeug import serving

    formatted: list[str] = []
    monkeypatch.setattr(serving, "uri_to_iri", lambda path: formatted.append(path) or path)
    s3.head_bucket(Bucket=bucket)
    assert formatted == []  # werkzeug's log is at ERROR: nothing to format
    level = emulator._REQUEST_LOG.level
    emulator._REQUEST_LOG.setLevel("INFO")
    try:
        s3.head_bucket(Bucket=bucket)
    finally:
        emulator._REQUEST_LOG.setLevel(level)
    assert formatted == [f"/{bucket}"]
