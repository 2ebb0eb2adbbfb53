"""The embedded local AWS: moto in server mode on 127.0.0.1, over HTTP.

Everything reaches it through the standard variables (``AWS_ENDPOINT_URL``,
credentials, region) that ``environment()`` returns, never through a code
path of its own: boto3, kombu and the worker subprocesses read them as they
would in AWS. The in-process ``mock_aws`` decorator is no substitute: it does
not intercept kombu's SQS polling, which goes through pycurl.
"""

from __future__ import annotations

import logging
from typing import Self

#: moto accepts any credentials; fixed fake ones guarantee no request to the
#: emulator is ever signed with a user's real keys.
_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def environment(endpoint_url: str, region: str) -> dict[str, str]:
    """The variables that point boto3 and kombu at ``endpoint_url``."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_SESSION_TOKEN": "",
        **_CREDENTIALS,
    }


class Emulator:
    def __init__(self, port: int = 0) -> None:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - only the stack pays for moto

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.url = ""

    def start(self) -> Self:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
