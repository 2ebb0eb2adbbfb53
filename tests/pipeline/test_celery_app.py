"""The Celery app's settings and the one change to kombu's event loop."""

from __future__ import annotations

import gc

import pytest
from celery import signals
from kombu.asynchronous.hub import Hub

from pipeline.worker import app as celery_app
from pipeline.worker import main


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


def test_a_ready_worker_keeps_its_startup_out_of_the_collectors_way() -> None:
    """Connected to ``worker_ready``: a full collection no longer walks celery, boto3,
    Arrow and polars in the middle of a file."""
    assert main._startup_kept in [ref() for _, ref in signals.worker_ready.receivers]
    try:
        signals.worker_ready.send(sender=None)
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
