"""The ``pipeline`` command.

``dev`` and ``demo`` run the local stack in the foreground. Every other
subcommand finds a running stack through its outputs file (``--outputs``,
written by ``pipeline dev``), which holds the template's outputs plus the
emulator's ``EndpointUrl`` and ``Region``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from pipeline import aws, jobs
from pipeline.consumer import Subscription
from pipeline.errors import InputError
from pipeline.ledger import Ledger
from pipeline.messages import ModelRef, Notification, utc_now
from pipeline.model_store import EngineRecord
from pipeline.scaling import Policy
from pipeline.settings import Settings, set_process_environment

DEFAULT_OUTPUTS = Path(".pipeline/outputs.json")


class CliError(Exception):
    """Something the user can fix; printed without a traceback."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
    except (CliError, InputError) as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("lgbm-pipeline")
    except PackageNotFoundError:
        return "unknown"


def outputs_option(p: argparse.ArgumentParser, deployed: bool = True) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--outputs",
        type=Path,
        default=None if deployed else DEFAULT_OUTPUTS,
        metavar="FILE",
        help=f"a local stack's outputs file (default: {DEFAULT_OUTPUTS})",
    )
    if deployed:
        where.add_argument(
            "--stack",
            metavar="NAME",
            help="a deployed stack (default, with no local stack running: samconfig.toml's)",
        )
        p.add_argument("--profile", help="the AWS profile to use (as the AWS CLI's --profile)")
        p.add_argument("--region", help="the AWS region of the stack")


def _model_commands(sub: Any) -> None:
    model = sub.add_parser("model", help="publish and list model versions")
    model_sub = model.add_subparsers(required=True, metavar="ACTION")
    p = model_sub.add_parser("publish", help="store a LightGBM text model as a new version")
    p.set_defaults(run=_model_publish)
    p.add_argument("file", type=Path, help="a LightGBM text model (Booster.save_model)")
    p.add_argument("--name", required=True, help=f"the model's name: {jobs.MODEL_NAME_RULE}")
    outputs_option(p)
    p = model_sub.add_parser("list", help="show published model versions")
    p.set_defaults(run=_model_list)
    p.add_argument("--name", help="only this model")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    outputs_option(p)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline", description="Score files with LightGBM models: drop in S3, get results."
    )
    parser.add_argument("--version", action="version", version=f"pipeline {_version()}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, help_text: str, run: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(run=run)
        return p

    dev = command("dev", "run the whole pipeline locally on the embedded AWS emulator", _dev)
    outputs_option(dev, deployed=False)
    dev.add_argument("--port", type=int, default=0, help="emulator port (default: any free one)")
    dev.add_argument(
        "--min-workers",
        type=int,
        default=1,
        help="workers kept when idle (default: 1; 0 scales to zero)",
    )
    dev.add_argument(
        "--max-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="most workers at once (default: the number of CPUs)",
    )
    dev.add_argument(
        "--cooldown", type=float, default=45.0, help="seconds before scaling in (default: 45)"
    )
    dev.add_argument("--stack-name", default="pipeline-local", help="names the local resources")

    demo = command("demo", "start the stack, score a generated CSV, show the result, stop", _demo)
    demo.add_argument("--rows", type=int, default=1000, help="rows in the generated CSV")

    p = command("outputs", "print the running stack's outputs as JSON", _outputs)
    p.add_argument("--json", action="store_true", help="JSON (always: the outputs are JSON)")
    outputs_option(p)

    p = command("status", "queue depths, dead letters, workers and recent jobs", _status)
    p.add_argument("--jobs", type=int, default=10, help="recent jobs to show (default: 10)")
    p.add_argument("--json", action="store_true", help="print it as one JSON document")
    outputs_option(p)

    p = command("schema", "print the JSON Schema of notifications", _schema)

    _model_commands(sub)

    p = command("submit", "upload a file to be scored by a model", _submit)
    p.add_argument("file", type=Path)
    p.add_argument("--model", required=True, help="the model's name")
    p.add_argument("--key", help="the key under the model's prefix (default: the file's name)")
    p.add_argument("--model-version", type=int, help="pin a model version (default: latest)")
    p.add_argument("--wait", action="store_true", help="wait for the notification and print it")
    p.add_argument("--timeout", type=float, default=600, help="seconds --wait waits (600)")
    outputs_option(p)

    p = command("retry", "run failed files again, once what failed them is fixed", _retry)
    p.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="failed jobs to run again")
    p.add_argument(
        "--failed-since",
        metavar="DURATION",
        help="also every failure announced within DURATION (e.g. 30m, 2h, 1d) not retried yet",
    )
    outputs_option(p)

    p = command("logs", "one job's log lines from every process, in time order", _logs)
    p.add_argument("job_id", metavar="JOB_ID")
    p.add_argument("--follow", action="store_true", help="keep printing until the job ends")
    p.add_argument("--json", action="store_true", help="print the JSON lines as they are")
    outputs_option(p)

    p = command("watch", "print notifications as JSON lines as they arrive", _watch)
    p.add_argument("--count", type=int, help="stop after this many notifications")
    p.add_argument("--timeout", type=float, help="stop after this many seconds")
    outputs_option(p)
    return parser


# ---- finding the stack ----------------------------------------------------------


def connect(args: argparse.Namespace) -> dict[str, str]:
    """The stack's outputs: a deployed stack's, or a local one's (and then use its emulator).

    With neither ``--outputs`` nor ``--stack``: the local stack if ``pipeline dev``
    runs here, else the stack named in ``samconfig.toml``, as ``sam deploy`` would.
    """
    _aws_session(getattr(args, "profile", None), getattr(args, "region", None))
    if getattr(args, "stack", None):
        return deployed_outputs(args.stack)
    path: Path | None = args.outputs
    if path is None:
        path = DEFAULT_OUTPUTS
        stack = samconfig_stack(Path("samconfig.toml"))
        if not path.exists() and stack is not None:
            args.stack = stack  # the commands that read a deployed stack differently see it
            return deployed_outputs(stack)
    if not path.exists():
        raise CliError(f"no stack outputs at {path}: start one with 'pipeline dev' first")
    outputs: dict[str, str] = json.loads(path.read_text())
    if outputs.get("EndpointUrl"):
        from pipeline.local.emulator import environment  # noqa: PLC0415

        set_process_environment(environment(outputs["EndpointUrl"], outputs["Region"]))
    return outputs


def samconfig_stack(path: Path) -> str | None:
    """The stack name ``sam deploy`` uses from this samconfig.toml, if there is one."""
    import tomllib  # noqa: PLC0415

    if not path.is_file():
        return None
    config = tomllib.loads(path.read_text())
    for command in ("deploy", "global"):
        name = config.get("default", {}).get(command, {}).get("parameters", {}).get("stack_name")
        if name:
            return str(name)
    return None


def _aws_session(profile: str | None, region: str | None) -> None:
    if not profile and not region:
        return
    import boto3  # noqa: PLC0415
    from botocore.exceptions import ProfileNotFound  # noqa: PLC0415

    try:
        boto3.setup_default_session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        raise CliError(str(exc)) from exc


def deployed_outputs(stack: str) -> dict[str, str]:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        described = aws.cloudformation_client().describe_stacks(StackName=stack)["Stacks"][0]
    except (ClientError, BotoCoreError) as exc:
        raise CliError(f"cannot read stack {stack!r}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return {**outputs, "StackName": stack}


# ---- commands -----------------------------------------------------------------------


def _dev(args: argparse.Namespace) -> int:
    from pipeline.local.stack import LocalStack  # noqa: PLC0415 - only dev pays for moto

    stop = threading.Event()
    if not 0 <= args.min_workers <= args.max_workers or args.max_workers < 1:
        raise CliError("need 0 <= --min-workers <= --max-workers and --max-workers >= 1")
    policy = Policy(
        minimum=args.min_workers, maximum=args.max_workers, cooldown_seconds=args.cooldown
    )
    stack = LocalStack(
        stack_name=args.stack_name,
        port=args.port,
        scaling=policy,
        state_dir=args.outputs.parent / "state",
        logs_dir=args.outputs.parent / "logs",
    )

    def shut_down(*_: object) -> None:
        if stack.supervisor is not None:
            stack.supervisor.halt()
        stop.set()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    try:
        stack.start()
        stack.write_outputs(args.outputs)
        print(
            f"pipeline: ready. Emulator at {stack.endpoint_url}; outputs in {args.outputs}.\n"
            f"  workers scale between {policy.minimum} and {policy.maximum} "
            f"(scale-in after {policy.cooldown_seconds:g} s)\n"
            f"  upload files to s3://{stack.outputs['InputBucketName']}/<model-name>/...\n"
            "  Ctrl-C stops everything.",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        print("pipeline: stopping", flush=True)
        stack.stop()
        args.outputs.unlink(missing_ok=True)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from pipeline import consumer, demo  # noqa: PLC0415
    from pipeline.local.stack import LocalStack  # noqa: PLC0415
    from pipeline.model_store import ModelStore  # noqa: PLC0415
    from pipeline.scoring.model import publish_model  # noqa: PLC0415

    log: list[str] = []
    print("Starting the local stack (moto server, resources from template.yaml, poller, worker)…")
    with LocalStack(stack_name="pipeline-demo", sink=log.append) as stack:
        s3, sqs = aws.s3_client(), aws.sqs_client()
        out = stack.outputs
        print("Training a small churn model on generated data and publishing it as 'churn'…")
        booster = demo.train()
        version = publish_model(
            ModelStore(s3, out["ModelBucketName"]),
            "churn",
            booster.model_to_string().encode(),
            "the demo model",
        )
        request_compile(out, version.ref)
        key = "churn/demo/customers.csv"
        print(f"Uploading a {args.rows}-row CSV to s3://{out['InputBucketName']}/{key}…")
        with consumer.Subscription(sqs, aws.sns_client(), out["NotificationTopicArn"]) as sub:
            started = time.monotonic()
            data = demo.csv_bytes(args.rows)
            put = s3.put_object(Bucket=out["InputBucketName"], Key=key, Body=data)
            etag = put["ETag"].strip('"')
            notification = sub.wait_for(lambda n: n.is_for(key, etag), timeout=120)
        if notification is None:
            print("\n".join(log[-40:]), file=sys.stderr)
            raise CliError("no notification arrived within 120 s (worker log above)")
        print(f"\nNotification ({time.monotonic() - started:.2f} s after upload):")
        print(notification.model_dump_json(indent=2))
        if notification.output is None:
            return 1
        body = s3.get_object(Bucket=notification.output.bucket, Key=notification.output.key)
        head = body["Body"].read(4096).decode().splitlines()[:6]
        print(
            f"\nFirst rows of s3://{notification.output.bucket}/{notification.output.key} "
            f"(model churn v{version.version}):"
        )
        print("\n".join(head))
    print("\nStopped: no process left behind.")
    return 0


def _outputs(args: argparse.Namespace) -> int:
    print(json.dumps(connect(args), indent=2))
    return 0


def _status(args: argparse.Namespace) -> int:
    from pipeline.status import deployed_status, local_status, render  # noqa: PLC0415

    outputs = connect(args)
    status = deployed_status(outputs, args.jobs) if args.stack else local_status(outputs, args.jobs)
    if args.json:
        print(json.dumps(status.as_json(), indent=2))
    else:
        print(render(status, bars=sys.stdout.isatty()))
    return 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(Notification.model_json_schema(), indent=2))
    return 0


def _model_publish(args: argparse.Namespace) -> int:
    from pipeline.model_store import ModelStore  # noqa: PLC0415
    from pipeline.scoring.model import publish_model  # noqa: PLC0415

    outputs = connect(args)
    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    if not jobs.MODEL_NAME.match(args.name):
        raise CliError(f"model name {args.name!r} is not valid: {jobs.MODEL_NAME_RULE}")
    store = ModelStore(aws.s3_client(), outputs["ModelBucketName"])
    record = publish_model(store, args.name, args.file.read_bytes(), str(args.file))
    request_compile(outputs, record.ref)
    print(record.version)
    return 0


def request_compile(outputs: dict[str, str], ref: ModelRef) -> None:
    """Send the version's compile job; files are scored with LightGBM until it is done."""
    from pipeline.celery_app import create_app, send_compile  # noqa: PLC0415

    send_compile(create_app(stack_settings(outputs)), ref)


def stack_settings(outputs: dict[str, str]) -> Settings:
    """The settings a stack's functions get from the template, from its outputs."""
    return Settings(
        input_bucket=outputs["InputBucketName"],
        output_bucket=outputs["OutputBucketName"],
        model_bucket=outputs["ModelBucketName"],
        notification_topic_arn=outputs["NotificationTopicArn"],
        task_queue_url=outputs["TaskQueueUrl"],
    )


_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _retry(args: argparse.Namespace) -> int:
    from pipeline.errors import NotRetryable  # noqa: PLC0415
    from pipeline.intake import IntakeRuntime  # noqa: PLC0415
    from pipeline.retries import failed_since, retry  # noqa: PLC0415

    outputs = connect(args)
    runtime = IntakeRuntime.create(stack_settings(outputs))
    job_ids = list(args.job_ids)
    if args.failed_since:
        match = _DURATION.match(args.failed_since)
        if match is None:
            raise CliError(f"--failed-since {args.failed_since!r}: give a number and s, m, h or d")
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        job_ids += failed_since(runtime.ledger, utc_now() - timedelta(seconds=seconds))
    if not job_ids:
        if args.failed_since:
            print(f"no failures to retry since {args.failed_since} ago", file=sys.stderr)
            return 0
        raise CliError("name the jobs to retry, or give --failed-since DURATION")
    refused = 0
    for job_id in job_ids:
        try:
            request = retry(job_id, runtime)
        except NotRetryable as exc:
            print(f"pipeline: {exc}", file=sys.stderr)
            refused += 1
            continue
        if request is None:
            print(f"{job_id}: refused again at intake; its notification says why")
        else:
            print(f"{job_id} -> {request.job_id} (run {request.run})")
    return 1 if refused else 0


def _model_list(args: argparse.Namespace) -> int:
    from pipeline.model_store import ModelStore  # noqa: PLC0415

    outputs = connect(args)
    store = ModelStore(aws.s3_client(), outputs["ModelBucketName"])
    names = [args.name] if args.name else store.names()
    if args.json:
        listed = [
            {
                **record.model_dump(mode="json"),
                "engine": [e.model_dump(mode="json") for e in store.engines(record.sha256)][:1],
            }
            for name in names
            for record in store.records(name)
        ]
        print(json.dumps(listed, indent=2))
        return 0
    for name in names:
        for record in store.records(name):
            info = record.info
            print(
                f"{name}\tv{record.version}\t{record.published_at:%Y-%m-%d %H:%M:%S}\t"
                f"{info.objective}\t{len(info.feature_names)} features\t{record.sha256[:12]}\t"
                f"{engine_summary(store.engines(record.sha256))}"
            )
    return 0


def engine_summary(records: list[EngineRecord]) -> str:
    """The newest engine record of a model text, as a person reads it."""
    if not records:
        return "lightgbm (compile pending)"
    record = records[0]
    if record.status == "compiled":
        return f"compiled ({record.target}, {record.compile_seconds:.1f} s; {record.reason})"
    return f"lightgbm ({record.reason})"


def _submit(args: argparse.Namespace) -> int:
    outputs = connect(args)
    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    key = f"{args.model}/{args.key or args.file.name}"
    jobs.model_name_for(key)
    metadata = {} if args.model_version is None else {"model-version": str(args.model_version)}
    bucket = outputs["InputBucketName"]
    if not args.wait:
        etag = upload(args.file, bucket, key, metadata)
        print(f"uploaded s3://{bucket}/{key} (ETag {etag})", file=sys.stderr)
        return 0
    # Subscribed before the upload, so the answer cannot come before we listen.
    with Subscription(
        aws.sqs_client(),
        aws.sns_client(),
        outputs["NotificationTopicArn"],
        filter_policy={"model": [args.model]},
    ) as subscription:
        etag = upload(args.file, bucket, key, metadata)
        print(f"uploaded s3://{bucket}/{key} (ETag {etag})", file=sys.stderr)
        ledger = Ledger(aws.s3_client(), outputs["OutputBucketName"])
        notification = wait_showing_progress(subscription, ledger, key, etag, args.timeout)
    if notification is None:
        raise CliError(f"no notification for {key} within {args.timeout:g} s")
    print(notification.model_dump_json(indent=2))
    return 0 if notification.status == "succeeded" else 1


def wait_showing_progress(
    subscription: Subscription, ledger: Ledger, key: str, etag: str, timeout: float
) -> Notification | None:
    """The file's notification; meanwhile its progress, as a bar on a terminal."""
    from pipeline.status import progress_line  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    shown = ""
    while (left := deadline - time.monotonic()) > 0:
        notification = subscription.wait_for(lambda n: n.is_for(key, etag), min(1.0, left), 1)
        if notification is not None:
            break
        progress = next(
            (
                p
                for p in map(ledger.progress, ledger.running())
                if p is not None and (p.key, p.etag) == (key, etag)
            ),
            None,
        )
        if progress is not None:
            line = progress_line(progress, bar=sys.stderr.isatty())
            if line != shown:
                end = "\r" if sys.stderr.isatty() else "\n"
                print(line, end=end, file=sys.stderr, flush=True)
                shown = line
    else:
        notification = None
    if shown and sys.stderr.isatty():
        print(file=sys.stderr)
    return notification


def upload(path: Path, bucket: str, key: str, metadata: dict[str, str]) -> str:
    """Upload with boto3's managed transfer (parallel parts, any size S3 takes); the ETag.

    On a terminal a progress bar shows on stderr.
    """
    from boto3.s3.transfer import TransferConfig  # noqa: PLC0415

    s3 = aws.s3_client()
    size = path.stat().st_size
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm  # noqa: PLC0415

        progress = tqdm(total=size, unit="B", unit_scale=True, desc=f"uploading {path.name}")
    try:
        s3.upload_file(
            str(path),
            bucket,
            key,
            ExtraArgs={"Metadata": metadata} if metadata else None,
            Callback=progress.update if progress is not None else None,
            Config=TransferConfig(multipart_chunksize=max(8 << 20, -(-size // 9_000))),
        )
    finally:
        if progress is not None:
            progress.close()
    return s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')


def _logs(args: argparse.Namespace) -> int:
    from pipeline import joblogs, logs  # noqa: PLC0415
    from pipeline.ledger import Ledger  # noqa: PLC0415

    outputs = connect(args)

    def lines() -> list[dict[str, Any]]:
        if args.stack:
            groups = joblogs.log_groups(aws.cloudformation_client(), args.stack)
            return joblogs.cloudwatch_lines(aws.logs_client(), groups, args.job_id)
        return joblogs.local_lines(Path(outputs["LogsFolder"]))

    ledger = Ledger(aws.s3_client(), outputs["OutputBucketName"])
    shown = 0
    while True:
        done = not args.follow or ledger.outcome(args.job_id) is not None
        found = joblogs.of_job(lines(), args.job_id)
        for line in found[shown:]:
            print(json.dumps(line) if args.json else logs.render(line), flush=True)
        shown = len(found)
        if done:
            break
        time.sleep(1)
    if not shown:
        raise CliError(f"no log lines of job {args.job_id}")
    return 0


def _watch(args: argparse.Namespace) -> int:
    outputs = connect(args)
    seen = 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    with Subscription(
        aws.sqs_client(), aws.sns_client(), outputs["NotificationTopicArn"]
    ) as subscription:
        while (args.count is None or seen < args.count) and (
            deadline is None or time.monotonic() < deadline
        ):
            most = 10 if args.count is None else args.count - seen
            for notification in subscription.notifications(wait_seconds=2, most=most):
                print(notification.model_dump_json(), flush=True)
                seen += 1
    return 0


def entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    entry()
