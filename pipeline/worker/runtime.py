"""What a worker process keeps between files: its settings, clients and loaded models.

Sharding and the file loop both take a ``WorkerRuntime``; it lives here, below
both, so neither imports the other's module for it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from pipeline.scoring.engine.cache import ModelCache
from pipeline.settings import Settings
from pipeline.stores import aws
from pipeline.stores.ledger import Ledger
from pipeline.stores.model_store import ModelStore
from pipeline.worker.backoff import with_retries
from pipeline.worker.protection import Protection

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

T = TypeVar("T")


@dataclass
class WorkerRuntime:
    """What a worker process keeps between files: clients and loaded models."""

    settings: Settings
    s3: S3Client
    sns: SNSClient
    sqs: SQSClient
    store: ModelStore
    models: ModelCache
    ledger: Ledger
    protection: Protection
    #: Reads small inputs early (see ``PREFETCH_BYTES``), with one try; None: never.
    prefetch_s3: S3Client | None = None
    prefetcher: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="prefetch")
    )
    #: Ledger requests made beside others on a small file's path (the run's claim).
    beside: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="beside")
    )

    @classmethod
    def create(cls, settings: Settings) -> WorkerRuntime:
        s3 = aws.s3_client()
        store = ModelStore(s3, settings.model_bucket)
        return cls(
            settings=settings,
            s3=s3,
            sns=aws.sns_client(),
            sqs=aws.sqs_client(),
            store=store,
            models=ModelCache(
                store,
                settings.predict_engine,
                settings.engine_recheck_seconds,
                compile_seconds=settings.compile_timeout_seconds,
            ),
            ledger=Ledger(s3, settings.output_bucket),
            protection=Protection(
                settings.busy_file, settings.ecs_agent_uri, settings.job_timeout_seconds
            ),
            prefetch_s3=aws.s3_client(retried=False),
        )

    def retrying(self, action: Callable[[], T]) -> T:
        return with_retries(action, self.settings.retry_attempts, self.settings.retry_base_seconds)
