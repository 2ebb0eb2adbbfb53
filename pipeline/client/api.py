"""The pipeline from Python: publish models, submit files, wait for their notifications.

A ``Client`` talks to one stack, local or deployed, with boto3 alone: a
client install has no Celery, LightGBM or moto. It is made from the stack's
outputs: a running ``LocalStack``'s, the file ``pipeline dev`` writes, or a
deployed stack's CloudFormation outputs. A local stack's endpoint and its
fake credentials go to the client's own boto3 session, never to the process
environment, so a client and the caller's other AWS code leave each other alone.

Notifications reach a client through a queue of its own, subscribed to the
topic the first time it needs one and removed by ``close()`` (or the end of a
``with`` block): the stack's notification queue belongs to its consumers, and
a client never takes anything from it.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import os
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self, Unpack, overload

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pipeline import naming
from pipeline.client.consumer import Subscription
from pipeline.client.rescores import RescoreTally, parse_target, rescore
from pipeline.client.retries import retry
from pipeline.client.status import Status, deployed_status, local_status
from pipeline.errors import UnknownModel
from pipeline.functions import task_messages
from pipeline.functions.intake import MODEL_ALIAS_METADATA, MODEL_VERSION_METADATA, IntakeRuntime
from pipeline.messages import (
    CompileRequest,
    ModelRef,
    Notification,
    ObjectRef,
    OutputRef,
    Progress,
    ScoreRequest,
)
from pipeline.options import OptionArguments, ScoreOptions
from pipeline.quality import QualityPolicy, QualityReport
from pipeline.settings import Settings
from pipeline.shadow import ShadowReport
from pipeline.stores import aws
from pipeline.stores.ledger import Ledger
from pipeline.stores.model_store import ModelStore, ModelVersion, Pin

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

    from pipeline.local.stack import LocalStack

#: Where ``pipeline dev`` writes the running local stack's outputs.
DEFAULT_OUTPUTS = Path(".pipeline/outputs.json")

#: The emulator takes any credentials; these fixed ones guarantee a request to
#: it is never signed with a user's real keys.
LOCAL_ACCESS_KEY = "testing"

PathOrBytes = str | os.PathLike[str] | bytes


class StackNotFound(LookupError):
    """No stack where the client was told to look: no outputs file, no such deployed stack."""


class NotificationTimeout(TimeoutError):
    """A file's notification did not arrive in time (the file may still be running)."""


@dataclass(frozen=True)
class Submission:
    """A file uploaded for scoring: which object, and which version of it (its ETag)."""

    bucket: str
    key: str
    etag: str

    def answered_by(self, notification: Notification) -> bool:
        return notification.is_for(self.key, self.etag)


class Client:
    """One stack's pipeline: models, files, notifications and status."""

    def __init__(self, outputs: Mapping[str, str], *, session: boto3.Session | None = None) -> None:
        self.outputs = dict(outputs)
        self._endpoint = self.outputs.get("EndpointUrl") or None
        if session is None:
            # A local stack that enforces IAM gives its users' identity in the outputs.
            local = self._endpoint is not None
            key = self.outputs.get("ClientAccessKeyId") or (LOCAL_ACCESS_KEY if local else None)
            secret = self.outputs.get("ClientSecretAccessKey") or (
                LOCAL_ACCESS_KEY if local else None
            )
            session = boto3.Session(
                aws_access_key_id=key,
                aws_secret_access_key=secret,
                region_name=self.outputs.get("Region"),
            )
        self._session = session
        self.s3: S3Client = self.aws("s3")
        self.sqs: SQSClient = self.aws("sqs")
        self.sns: SNSClient = self.aws("sns")
        self._subscription: Subscription | None = None
        self._closer: weakref.finalize[Any, Any] | None = None

    # ---- making one ----------------------------------------------------------------

    @classmethod
    def from_local(cls, stack: LocalStack) -> Client:
        """A client of a ``LocalStack`` running in this process."""
        return cls(stack.outputs)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str] = DEFAULT_OUTPUTS) -> Client:
        """A client of the local stack whose outputs ``pipeline dev`` wrote to ``path``."""
        path = Path(path)
        if not path.is_file():
            raise StackNotFound(f"no stack outputs at {path}: start one with 'pipeline dev' first")
        outputs: dict[str, str] = json.loads(path.read_text())
        return cls(outputs)

    @classmethod
    def from_stack(
        cls, name: str, *, profile: str | None = None, region: str | None = None
    ) -> Client:
        """A client of a deployed stack, found by its CloudFormation name."""
        try:
            session = boto3.Session(profile_name=profile, region_name=region)
            cloudformation: CloudFormationClient = session.client(
                "cloudformation", config=aws.CONFIG
            )
            described = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        except (ClientError, BotoCoreError) as exc:
            raise StackNotFound(f"cannot read stack {name!r}: {exc}") from exc
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
        return cls({**outputs, "StackName": name}, session=session)

    def aws(self, service: str) -> Any:
        """A boto3 client of this stack's account and endpoint, for any service."""
        make: Any = self._session.client
        return make(service, endpoint_url=self._endpoint, config=aws.CONFIG)

    def output(self, name: str) -> str:
        """One of the stack's outputs; ``StackNotFound`` if it has none of that name."""
        try:
            return self.outputs[name]
        except KeyError:
            stack = self.outputs.get("StackName", "the stack")
            raise StackNotFound(
                f"{stack} has no output {name}: not a pipeline stack, or one from an older template"
            ) from None

    @functools.cached_property
    def models(self) -> ModelStore:
        """The stack's model versions."""
        return ModelStore(self.s3, self.output("ModelBucketName"))

    @functools.cached_property
    def ledger(self) -> Ledger:
        """Every job's outcome and progress, in the output bucket."""
        return Ledger(self.s3, self.output("OutputBucketName"))

    @property
    def is_local(self) -> bool:
        return self._endpoint is not None

    @property
    def settings(self) -> Settings:
        """The settings the stack's functions get from the template, from its outputs."""
        return Settings(
            input_bucket=self.output("InputBucketName"),
            output_bucket=self.output("OutputBucketName"),
            model_bucket=self.output("ModelBucketName"),
            notification_topic_arn=self.output("NotificationTopicArn"),
            task_queue_url=self.output("TaskQueueUrl"),
        )

    # ---- models ----------------------------------------------------------------------

    def publish_model(
        self,
        model: PathOrBytes,
        *,
        name: str,
        baseline: str | os.PathLike[str] | None = None,
        max_psi: float | None = None,
        max_missing: float | None = None,
        on_quality: Literal["warn", "fail"] = "warn",
        **options: Unpack[OptionArguments],
    ) -> ModelVersion:
        """Store a LightGBM text model as the next version of ``name``, and have it compiled.

        ``options`` (``columns``, ``drop_columns``, ``scores``, ``threshold``,
        ``num_iteration``, ``max_bad_rows``) are the version's defaults for its
        files (each file's metadata overrides them key by key; see ``submit``). Files are scored
        with LightGBM until its compiled forest passed the exactness gate;
        nothing waits for that. ``InvalidModel`` says why a file is not a whole
        LightGBM text model, ``BadOption`` why the model cannot honour an option.

        ``baseline``: a sample of training data (CSV, Parquet, JSON lines) that
        each file's quality report compares with (made here with LightGBM: the
        ``worker`` install). ``max_psi`` and ``max_missing`` are limits on a
        file's report; past one, ``on_quality="fail"`` fails the file (code
        ``quality``), ``"warn"`` only warns.
        """
        if not naming.MODEL_NAME.match(name):
            raise ValueError(f"model name {name!r} is not valid: {naming.MODEL_NAME_RULE}")
        defaults = ScoreOptions.of(**options)
        policy = QualityPolicy(max_psi=max_psi, max_missing=max_missing, on_quality=on_quality)
        data, source = _read(model)
        sample = None
        if baseline is not None:
            from pipeline.client.baselines import baseline_from_file  # noqa: PLC0415

            sample = baseline_from_file(data, Path(os.fspath(baseline)))
        version = self.models.publish(name, data, source, defaults, quality=policy, baseline=sample)
        self.request_compile(version)
        return version

    def request_compile(self, version: ModelVersion) -> None:
        """Send a version's compile job (publishing does; again is harmless: one compile runs)."""
        request = CompileRequest(model=version.ref)
        task_messages.send(
            self.sqs,
            self.output("TaskQueueUrl"),
            task_messages.COMPILE_TASK,
            request.model_dump(mode="json"),
        )

    def set_alias(self, name: str, alias: str, version: int) -> ModelRef:
        """Point ``alias`` of model ``name`` at ``version``; the next file that uses it gets it.

        ``champion`` is the version an upload with no pin gets (else the latest).
        """
        return self.models.set_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> int:
        """Remove an alias; the version it named."""
        return self.models.delete_alias(name, alias)

    def aliases(self, name: str) -> dict[str, int]:
        """Each alias of model ``name`` and the version it names."""
        return self.models.routing(name).aliases

    def set_shadow(
        self, name: str, version: int | None = None, *, alias: str | None = None
    ) -> ModelRef:
        """Score every file for ``name`` with this version too, and compare (see ``shadow``).

        With ``alias``, the shadow follows the alias as it moves.
        """
        if (version is None) == (alias is None):
            raise ValueError("give the shadow's version or its alias (one of them)")
        shadow = self.models.set_shadow(name, version if version is not None else alias)
        assert shadow is not None  # noqa: S101 - a target was given
        return shadow

    def stop_shadow(self, name: str) -> None:
        self.models.set_shadow(name, None)

    def shadow(self, name: str) -> int | str | None:
        """Model ``name``'s shadow as set: a version, an alias, or None."""
        return self.models.routing(name).shadow

    def shadow_report(self, job_id: str) -> ShadowReport:
        """A scored file's comparison with the model's shadow; ``LookupError`` if none."""
        outcome = self._outcome(job_id)
        if outcome.shadow is None or outcome.shadow.report is None:
            why = outcome.shadow.error if outcome.shadow else "the model had no shadow"
            raise LookupError(f"job {job_id} has no shadow report: {why}")
        where = outcome.shadow.report
        body = self.s3.get_object(Bucket=where.bucket, Key=where.key)["Body"].read()
        return ShadowReport.model_validate_json(body)

    # ---- files ----------------------------------------------------------------------

    @overload
    def submit(
        self,
        file: PathOrBytes,
        *,
        model: str,
        key: str | None = None,
        model_version: int | None = None,
        model_alias: str | None = None,
        force: bool = False,
        wait: Literal[True] = True,
        timeout: float = 600,
        on_progress: Callable[[Progress], None] | None = None,
        on_upload: Callable[[int], None] | None = None,
        **options: Unpack[OptionArguments],
    ) -> Notification: ...

    @overload
    def submit(
        self,
        file: PathOrBytes,
        *,
        model: str,
        key: str | None = None,
        model_version: int | None = None,
        model_alias: str | None = None,
        force: bool = False,
        wait: Literal[False],
        timeout: float = 600,
        on_progress: Callable[[Progress], None] | None = None,
        on_upload: Callable[[int], None] | None = None,
        **options: Unpack[OptionArguments],
    ) -> Submission: ...

    def submit(
        self,
        file: PathOrBytes,
        *,
        model: str,
        key: str | None = None,
        model_version: int | None = None,
        model_alias: str | None = None,
        force: bool = False,
        wait: bool = True,
        timeout: float = 600,
        on_progress: Callable[[Progress], None] | None = None,
        on_upload: Callable[[int], None] | None = None,
        **options: Unpack[OptionArguments],
    ) -> Notification | Submission:
        """Upload a file to be scored by ``model``; with ``wait``, its notification.

        The object is ``<model>/<key>`` in the input bucket; ``key`` defaults
        to the file's name (bytes need one). ``model_version`` pins a version,
        ``model_alias`` an alias (default: what ``champion`` names when the file
        arrives, else the latest). ``options`` (``columns``,
        ``drop_columns``, ``scores``, ``threshold``, ``num_iteration``,
        ``max_bad_rows``) set what the output holds (``pipeline.options``; default: the model's
        defaults), as the object's metadata; a bad one raises ``BadOption``
        before anything is uploaded. So does a model that is not published
        (``UnknownModel``, naming the nearest published name), unless ``force``:
        for a model about to be published. Without ``wait`` the
        ``Submission`` can be waited for later with ``wait()``: the client
        listens from before the upload, so no answer is missed.
        ``on_progress`` sees a long file's progress while waiting; ``on_upload``
        the bytes sent as they go.
        """
        data = file if isinstance(file, bytes) else b""
        path = None if isinstance(file, bytes) else Path(os.fspath(file))
        if path is not None and path.is_dir():
            raise IsADirectoryError(f"{path} is a directory: submit one file at a time")
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        if key is None:
            if path is None:
                raise ValueError("give key= when submitting bytes")
            key = path.name
        if not naming.MODEL_NAME.match(model):
            lower = model.lower()
            hint = f"; did you mean {lower!r}?" if naming.MODEL_NAME.match(lower) else ""
            raise UnknownModel(f"{model!r} is not a model name ({naming.MODEL_NAME_RULE}){hint}")
        if not force:
            self._check_published(model)
        object_key = f"{model}/{key}"
        naming.model_name_for(object_key)
        metadata = ScoreOptions.of(**options).to_metadata() | _pin_metadata(
            model_version, model_alias
        )
        self.listen()
        bucket = self.output("InputBucketName")
        if path is not None:
            etag = _upload(
                self.s3, path, bucket, object_key, metadata=metadata, on_upload=on_upload
            )
        else:
            etag = self.s3.put_object(Bucket=bucket, Key=object_key, Body=data, Metadata=metadata)[
                "ETag"
            ]
            if on_upload is not None:
                on_upload(len(data))
        submission = Submission(bucket=bucket, key=object_key, etag=etag.strip('"'))
        if not wait:
            return submission
        return self.wait(submission, timeout, on_progress)

    def job_of(
        self,
        submission: Submission,
        model_version: int | None = None,
        model_alias: str | None = None,
    ) -> str | None:
        """The job id a submitted file gets: its model's version as the intake picks it
        now (``model_version``, ``model_alias``, else ``champion``, else the latest);
        None while the model has no version."""
        name = naming.model_name_for(submission.key)
        try:
            pin: Pin = model_version if model_version is not None else model_alias
            ref = self.models.resolve(name, pin)
        except UnknownModel:
            return None
        obj = ObjectRef(bucket=submission.bucket, key=submission.key, etag=submission.etag, size=0)
        return naming.job_id(obj, ref)

    def _check_published(self, model: str) -> None:
        """``UnknownModel`` for a model with no version, naming what is published."""
        if self.models.versions(model):
            return
        published = self.models.names()
        nearest = difflib.get_close_matches(model, published, n=1, cutoff=0.6)
        if not nearest:
            nearest = [n for n in published if n.lower() == model.lower()]
        hint = f"; did you mean {nearest[0]!r}?" if nearest else ""
        listed = ", ".join(published[:20]) if published else "none yet"
        raise UnknownModel(
            f"no model named {model!r} is published (published: {listed}){hint} "
            "Publish it with 'pipeline model publish FILE --name NAME', or upload anyway "
            "with --force (force=True) if it is about to be published"
        )

    def wait(
        self,
        target: Submission | str,
        timeout: float = 600,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Notification:
        """The notification of a submitted file, or of a job by its id (a retry's, say).

        ``NotificationTimeout`` if none arrives within ``timeout`` seconds.
        """
        subscription = self.listen()
        match: Callable[[Notification], bool]
        if isinstance(target, str):
            job_id = target

            def match(n: Notification) -> bool:
                return n.job_id == job_id and n.status != "running"

        else:
            match = target.answered_by
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            notification = subscription.wait_for(match, min(1.0, left), 1)
            if notification is None and isinstance(target, str):
                # Announced before this client listened: the ledger has it.
                notification = self.ledger.outcome(target)
            if notification is not None:
                return notification
            if on_progress is not None:
                progress = self._progress_of(target)
                if progress is not None:
                    on_progress(progress)
        raise NotificationTimeout(f"no notification for {target} within {timeout:g} s")

    def _progress_of(self, target: Submission | str) -> Progress | None:
        """A running file's progress, from the ledger (recorded once it ran a few seconds)."""
        for job_id in self.ledger.running():
            if isinstance(target, str) and job_id != target:
                continue
            progress = self.ledger.progress(job_id)
            if progress is None:
                continue
            if isinstance(target, str) or (progress.key, progress.etag) == (
                target.key,
                target.etag,
            ):
                return progress
        return None

    def rescore(
        self,
        target: str,
        *,
        model_version: int | None = None,
        model_alias: str | None = None,
        wait: bool = False,
        max_in_flight: int = 100,
        on_progress: Callable[[RescoreTally], None] | None = None,
    ) -> RescoreTally:
        """Score every file under ``s3://BUCKET/PREFIX`` (the input bucket) again.

        With the version pinned (``model_version`` or ``model_alias``; default:
        what an upload would get now). A file already answered for that version
        is counted, not run again. At most ``max_in_flight`` jobs run at once;
        ``wait``: return when every one has its outcome (else when the last is
        sent). Safe to interrupt and run again.
        """
        pin = _pin(model_version, model_alias)
        bucket, prefix = parse_target(
            target, self.output("InputBucketName"), pinned=pin is not None
        )
        subscription = self.listen()

        def answers(seconds: float) -> Iterator[Notification]:
            yield from subscription.unclaimed()
            yield from subscription.notifications(wait_seconds=max(1, math.ceil(seconds)))

        runtime = IntakeRuntime.of(self.settings, self.s3, self.sns, self.sqs)
        return rescore(
            runtime,
            bucket,
            prefix,
            pin,
            answers,
            wait=wait,
            in_flight=max_in_flight,
            on_change=on_progress,
        )

    def retry(self, job_id: str) -> ScoreRequest | None:
        """Run a failed job's file again, as the next run of the job.

        The new run's request (wait for it with ``wait(request.job_id)``), or
        None if intake refused the file again (its notification says why).
        ``NotRetryable`` if the job is unknown, running, succeeded, or retried already.
        """
        return retry(job_id, IntakeRuntime.of(self.settings, self.s3, self.sns, self.sqs))

    def notifications(self, timeout: float | None = None) -> Iterator[Notification]:
        """Every notification of the stack from this call on, as it arrives.

        Ends once ``timeout`` seconds pass (None: never). Nothing is taken from
        the stack's own notification queue or from any other consumer.
        """
        subscription = self.listen()  # now, not at the first next(): nothing is missed
        deadline = None if timeout is None else time.monotonic() + timeout

        def arriving() -> Iterator[Notification]:
            yield from subscription.unclaimed()
            while deadline is None or deadline - time.monotonic() > 0:
                left = 20.0 if deadline is None else deadline - time.monotonic()
                yield from subscription.notifications(wait_seconds=min(20, math.ceil(left)))

        return arriving()

    def get(self, job_id: str, destination: str | os.PathLike[str] = ".") -> Path:
        """Download a succeeded job's scored file to ``destination`` (a file, or a folder to
        put it in under its own name), streamed; ``LookupError`` says why there is none."""
        where = self._output(job_id)
        path = Path(os.fspath(destination))
        if path.is_dir():
            path = path / where.key.rsplit("/", 1)[-1]
        self.s3.download_file(where.bucket, where.key, str(path))
        return path

    def read_output(self, job_id: str) -> bytes:
        """A succeeded job's scored file, as bytes (a small one: ``get`` streams to disk)."""
        where = self._output(job_id)
        return self.s3.get_object(Bucket=where.bucket, Key=where.key)["Body"].read()

    def _outcome(self, job_id: str) -> Notification:
        outcome = self.ledger.outcome(job_id)
        if outcome is None:
            raise LookupError(f"job {job_id} has no outcome yet (running, or not a job id)")
        return outcome

    def _output(self, job_id: str) -> OutputRef:
        outcome = self._outcome(job_id)
        if outcome.output is None:
            code = outcome.error.code if outcome.error else outcome.status
            raise LookupError(f"job {job_id} has no output: it {outcome.status} ({code})")
        return outcome.output

    def report(self, job_id: str) -> QualityReport:
        """A scored file's quality report, by its job id; ``LookupError`` says why there
        is none."""
        outcome = self._outcome(job_id)
        if outcome.quality is None:
            code = outcome.error.code if outcome.error else outcome.status
            raise LookupError(f"job {job_id} has no quality report: it was not scored ({code})")
        where = outcome.quality.report
        body = self.s3.get_object(Bucket=where.bucket, Key=where.key)["Body"].read()
        return QualityReport.model_validate_json(body)

    def status(self, jobs: int = 10) -> Status:
        """Queue depths, dead letters, workers, running files and the latest outcomes."""
        if self.is_local:
            return local_status(self.outputs, jobs, self.sqs, self.s3)
        ecs: ECSClient = self.aws("ecs")
        return deployed_status(self.outputs, jobs, self.sqs, self.s3, ecs)

    # ---- listening ----------------------------------------------------------------------

    def listen(self) -> Subscription:
        """Start listening now, if not yet (``submit``, ``wait`` and ``notifications`` do):
        for a file put in the input bucket some other way, then waited for."""
        if self._subscription is None:
            subscription = Subscription(
                self.sqs,
                self.sns,
                self.output("NotificationTopicArn"),
                name_prefix=f"{self.outputs.get('StackName', 'pipeline')}-listen",
            )
            self._subscription = subscription.__enter__()
            # Removed with the client even if close() is never called.
            self._closer = weakref.finalize(self, subscription.__exit__, None, None, None)
        return self._subscription

    def close(self) -> None:
        """Remove the client's notification queue and its subscription."""
        if self._closer is not None:
            self._closer()
        self._subscription = self._closer = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _pin(version: int | None, alias: str | None) -> Pin:
    """A version or an alias, whichever was given; both is a mistake."""
    if version is not None and alias is not None:
        raise ValueError("pin a version or an alias, not both")
    return version if version is not None else alias


def _pin_metadata(version: int | None, alias: str | None) -> dict[str, str]:
    """The object metadata that pins a version or an alias."""
    _pin(version, alias)
    if alias is not None:
        problem = naming.alias_problem(alias)
        if problem is not None:
            raise UnknownModel(problem)
        return {MODEL_ALIAS_METADATA: alias}
    return {} if version is None else {MODEL_VERSION_METADATA: str(version)}


def _read(source: PathOrBytes) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, "<bytes>"
    path = Path(os.fspath(source))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path.read_bytes(), str(path)


def _upload(
    s3: S3Client,
    path: Path,
    bucket: str,
    key: str,
    *,
    metadata: dict[str, str],
    on_upload: Callable[[int], None] | None,
) -> str:
    """Upload with boto3's managed transfer (parallel parts, any size S3 takes); the ETag."""
    from boto3.s3.transfer import TransferConfig  # noqa: PLC0415

    size = path.stat().st_size
    s3.upload_file(
        str(path),
        bucket,
        key,
        ExtraArgs={"Metadata": metadata} if metadata else None,
        Callback=on_upload,
        # S3 takes at most 10,000 parts: parts grow with the file.
        Config=TransferConfig(multipart_chunksize=max(8 << 20, -(-size // 9_000))),
    )
    return s3.head_object(Bucket=bucket, Key=key)["ETag"]
