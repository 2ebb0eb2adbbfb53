"""The Celery app's settings and the one change to kombu's event loop."""

from __future__ import annotations

import pytest
from kombu.asynchronous.hub import Hub

from pipeline.worker import app as celery_app


def test_the_event_loop_naps_briefly_while_no_socket_is_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kombu sleeps min(timeout, 0.1 s) with no socket registered; after each task a solo
    worker has none until its next receive connects, so that sleep delayed every next file."""
    naps: list[float] = []
    monkeypatch.setattr(celery_app.time, "sleep", naps.append)
    hub = Hub()
    try:
        loop = hub.create_loop()
        next(loop)
    finally:
        hub.close()

    assert naps == [celery_app.NAP_SECONDS]
