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
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from pipeline import aws, jobs
from pipeline.errors import InputError
from pipeline.messages import ModelRef, Notification
from pipeline.model_store import EngineRecord
from pipeline.scaling import Policy
from pipeline.settings import set_process_environment

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline", description="Score files with LightGBM models: drop in S3, get results."
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, help_text: str, run: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(run=run)
        return p

    def outputs_option(p: argparse.ArgumentParser, deployed: bool = True) -> None:
        where = p.add_mutually_exclusive_group()
        where.add_argument(
            "--outputs",
            type=Path,
            default=DEFAULT_OUTPUTS,
            metavar="FILE",
            help=f"a local stack's outputs file (default: {DEFAULT_OUTPUTS})",
        )
        if deployed:
            where.add_argument(
                "--stack",
                metavar="NAME",
                help="a deployed stack (reads its CloudFormation outputs)",
            )

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
    outputs_option(p)

    p = command("status", "queue depths, dead letters, workers and recent jobs", _status)
    p.add_argument("--jobs", type=int, default=10, help="recent jobs to show (default: 10)")
    outputs_option(p)

    p = command("schema", "print the JSON Schema of notifications", _schema)

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
    outputs_option(p)

    p = command("submit", "upload a file to be scored by a model", _submit)
    p.add_argument("file", type=Path)
    p.add_argument("--model", required=True, help="the model's name")
    p.add_argument("--key", help="the key under the model's prefix (default: the file's name)")
    p.add_argument("--model-version", type=int, help="pin a model version (default: latest)")
    p.add_argument("--wait", action="store_true", help="wait for the notification and print it")
    p.add_argument("--timeout", type=float, default=600, help="seconds --wait waits (600)")
    outputs_option(p)

    p = command("watch", "print notifications as JSON lines as they arrive", _watch)
    p.add_argument("--count", type=int, help="stop after this many notifications")
    p.add_argument("--timeout", type=float, help="stop after this many seconds")
    outputs_option(p)
    return parser


# ---- finding the stack ----------------------------------------------------------


def connect(args: argparse.Namespace) -> dict[str, str]:
    """The stack's outputs: a deployed stack's, or a local one's (and then use its emulator)."""
    if getattr(args, "stack", None):
        return deployed_outputs(args.stack)
    path: Path = args.outputs
    if not path.exists():
        raise CliError(f"no stack outputs at {path}: start one with 'pipeline dev' first")
    outputs: dict[str, str] = json.loads(path.read_text())
    if outputs.get("EndpointUrl"):
        from pipeline.local.emulator import environment  # noqa: PLC0415

        set_process_environment(environment(outputs["EndpointUrl"], outputs["Region"]))
    return outputs


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
        started = time.monotonic()
        put = s3.put_object(Bucket=out["InputBucketName"], Key=key, Body=demo.csv_bytes(args.rows))
        etag = put["ETag"].strip('"')
        notification = consumer.wait_for(
            sqs,
            out["NotificationQueueUrl"],
            lambda n: n.is_for(key, etag),
            timeout=120,
        )
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
    print(render(status))
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
    from pipeline.settings import Settings  # noqa: PLC0415

    send_compile(create_app(Settings(task_queue_url=outputs["TaskQueueUrl"])), ref)


def _model_list(args: argparse.Namespace) -> int:
    from pipeline.model_store import ModelStore  # noqa: PLC0415

    outputs = connect(args)
    store = ModelStore(aws.s3_client(), outputs["ModelBucketName"])
    names = [args.name] if args.name else store.names()
    for name in names:
        for version in store.versions(name):
            record = store.record(store.resolve(name, version))
            info = record.info
            print(
                f"{name}\tv{version}\t{record.published_at:%Y-%m-%d %H:%M:%S}\t"
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
    from pipeline import consumer  # noqa: PLC0415

    outputs = connect(args)
    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    key = f"{args.model}/{args.key or args.file.name}"
    jobs.model_name_for(key)
    extra: dict[str, Any] = {}
    if args.model_version is not None:
        extra["Metadata"] = {"model-version": str(args.model_version)}
    s3 = aws.s3_client()
    with args.file.open("rb") as body:
        put = s3.put_object(Bucket=outputs["InputBucketName"], Key=key, Body=body, **extra)
    etag = put["ETag"].strip('"')
    print(f"uploaded s3://{outputs['InputBucketName']}/{key} (ETag {etag})", file=sys.stderr)
    if not args.wait:
        return 0
    notification = consumer.wait_for(
        aws.sqs_client(),
        outputs["NotificationQueueUrl"],
        lambda n: n.is_for(key, etag),
        timeout=args.timeout,
    )
    if notification is None:
        raise CliError(f"no notification for {key} within {args.timeout:g} s")
    print(notification.model_dump_json(indent=2))
    return 0 if notification.status == "succeeded" else 1


def _watch(args: argparse.Namespace) -> int:
    from pipeline import consumer  # noqa: PLC0415

    outputs = connect(args)
    sqs = aws.sqs_client()
    seen = 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    while (args.count is None or seen < args.count) and (
        deadline is None or time.monotonic() < deadline
    ):
        for notification in consumer.receive(sqs, outputs["NotificationQueueUrl"], 2):
            print(notification.model_dump_json(), flush=True)
            seen += 1
    return 0


def entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    entry()
