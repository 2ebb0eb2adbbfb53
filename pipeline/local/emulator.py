"""The embedded local AWS: moto in server mode on 127.0.0.1, over HTTP.

Everything reaches it through the standard variables (``AWS_ENDPOINT_URL``,
credentials, region) that ``environment()`` returns, never through a code
path of its own: boto3, kombu and the worker subprocesses read them as they
would in AWS. The in-process ``mock_aws`` decorator is no substitute: it does
not intercept kombu's SQS polling, which goes through pycurl.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

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
    """moto's WSGI application on werkzeug's threaded server, as ``ThreadedMotoServer`` runs it,
    with one change: the service behind a host name is looked up once.

    moto finds it anew for every request, listing its own package folder on
    disk while holding the lock every request takes; that cost a request about
    a millisecond and serialised concurrent ones, and a small file makes a
    dozen requests on its way from upload to notification.
    """

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> Self:
        # only the stack pays for moto's import
        from moto.moto_server.werkzeug_app import MotoRequestHandler  # noqa: PLC0415
        from werkzeug.serving import make_server  # noqa: PLC0415

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        handler = MotoRequestHandler
        server = make_server(
            "127.0.0.1", self._port, _dispatcher(), threaded=True, request_handler=handler
        )
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="emulator", daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _dispatcher() -> Any:
    """moto's dispatching application, remembering which service answers each host."""
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415
        DomainDispatcherApplication,
        create_backend_app,
    )

    class Dispatcher(DomainDispatcherApplication):
        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self._backends: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            # Called with moto's lock held; the answer depends on the host alone.
            if host not in self._backends:
                self._backends[host] = super().get_backend_for_host(host)
            return self._backends[host]

    return Dispatcher()
