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
from typing import TYPE_CHECKING, Any, NoReturn

from botocore.exceptions import EndpointConnectionError

from pipeline import naming
from pipeline.client.api import StackNotFound
from pipeline.errors import InputError, UnknownModel
from pipeline.messages import Notification, utc_now
from pipeline.quality import figure
from pipeline.scaling import Policy
from pipeline.stores.model_store import EngineRecord, ModelVersion, Routing

if TYPE_CHECKING:
    from pipeline.client.api import Client
    from pipeline.client.rescores import RescoreTally

#: Where ``pipeline dev`` writes the running local stack's outputs (``Client.from_file``'s default).
DEFAULT_OUTPUTS = Path(".pipeline/outputs.json")


class CliError(Exception):
    """Something the user can fix; printed without a traceback."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
    except (CliError, InputError, StackNotFound) as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return 2
    except EndpointConnectionError as exc:
        where = (
            getattr(args, "connected_to", None) or f"the stack at {exc.kwargs.get('endpoint_url')}"
        )
        print(
            f"pipeline: {where} does not answer: has 'pipeline dev' stopped? Start it again "
            "with 'pipeline dev' (a local stack's data lives only while it runs)",
            file=sys.stderr,
        )
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


def _score_options(p: argparse.ArgumentParser, scope: str) -> None:
    """What the output holds (``pipeline.options``): the same flags for publish and submit."""
    group = p.add_argument_group("output options", f"What the scored file holds ({scope}).")
    group.add_argument(
        "--columns", metavar="A,B", help="input columns carried into the output, in order"
    )
    group.add_argument("--drop-columns", metavar="A,B", help="input columns left out")
    group.add_argument(
        "--scores",
        metavar="KINDS",
        help="comma-separated: prediction (default), raw_score, label, leaf, contrib, reasons:K",
    )
    group.add_argument(
        "--threshold", type=float, help="the label threshold of a binary model (default 0.5)"
    )
    group.add_argument(
        "--num-iteration", type=int, help="score with the first N iterations (default: all)"
    )
    group.add_argument(
        "--max-bad-rows",
        type=int,
        metavar="N",
        help="set aside up to N rows with unreadable values, listed in an errors CSV "
        "(default 0: the first fails the file)",
    )


def _score_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "columns": args.columns,
        "drop_columns": args.drop_columns,
        "scores": args.scores,
        "threshold": args.threshold,
        "num_iteration": args.num_iteration,
        "max_bad_rows": args.max_bad_rows,
    }


def _job_id_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("job_id", metavar="JOB_ID", help="the job's id, as its notification gives it")


def _submit_command(command: Any) -> None:
    p = command("submit", "upload a file to be scored by a model", _submit)
    p.add_argument(
        "file", type=Path, help="the file to score: CSV, Parquet or JSON lines (.gz too)"
    )
    p.add_argument("--model", required=True, help="the model's name")
    p.add_argument("--key", help="the key under the model's prefix (default: the file's name)")
    pin = p.add_mutually_exclusive_group()
    pin.add_argument(
        "--model-version",
        type=int,
        help="pin a model version (default: what the alias champion names, else the latest)",
    )
    pin.add_argument("--model-alias", metavar="ALIAS", help="pin the version an alias names")
    p.add_argument(
        "--force",
        action="store_true",
        help="upload even if the model is not published yet (it fails unless it is by then)",
    )
    p.add_argument("--wait", action="store_true", help="wait for the notification and print it")
    p.add_argument("--timeout", type=float, default=600, help="seconds --wait waits (600)")
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="with --wait: write the scored file to PATH (a file or a folder)",
    )
    _score_options(p, "set as the file's metadata; default: the model's defaults")
    outputs_option(p)


def _rescore_command(command: Any) -> None:
    p = command(
        "rescore",
        "score the files under an S3 prefix again, with a chosen version",
        _rescore,
    )
    p.add_argument("target", metavar="s3://BUCKET/PREFIX", help="files in the input bucket")
    pin = p.add_mutually_exclusive_group()
    pin.add_argument(
        "--model-version", type=int, help="the version (default: what an upload would get now)"
    )
    pin.add_argument("--model-alias", metavar="ALIAS", help="the version this alias names")
    p.add_argument(
        "--wait", action="store_true", help="wait for every outcome; exit 0 if all succeeded"
    )
    p.add_argument(
        "--max-in-flight",
        type=int,
        default=100,
        metavar="N",
        help="files running at once, at most (default: 100)",
    )
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    outputs_option(p)


def _model_commands(sub: Any) -> None:
    model = sub.add_parser("model", help="publish and list model versions")
    model_sub = model.add_subparsers(required=True, metavar="ACTION")
    p = model_sub.add_parser("publish", help="store a LightGBM text model as a new version")
    p.set_defaults(run=_model_publish)
    p.add_argument("file", type=Path, help="a LightGBM text model (Booster.save_model)")
    p.add_argument("--name", required=True, help=f"the model's name: {naming.MODEL_NAME_RULE}")
    _score_options(p, "the default for this version's files; a file's own metadata overrides it")
    group = p.add_argument_group("quality", "What each file's quality report compares with.")
    group.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="a sample of training data (CSV, Parquet, JSON lines) to compare files with",
    )
    group.add_argument("--max-psi", type=float, metavar="X", help="limit on a feature's PSI")
    group.add_argument(
        "--max-missing", type=float, metavar="F", help="limit on a feature's missing share (0-1)"
    )
    group.add_argument(
        "--on-quality",
        choices=["warn", "fail"],
        default="warn",
        help="past a limit: warn (default), or fail the file with code quality",
    )
    outputs_option(p)
    p = model_sub.add_parser("list", help="show published model versions")
    p.set_defaults(run=_model_list)
    p.add_argument("--name", help="only this model")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    outputs_option(p)
    p = model_sub.add_parser(
        "alias",
        help="point an alias at a version (champion: what uploads with no pin get)",
        description="Point an alias at a version, or remove it. The next file that uses it "
        "gets the new version: uploads with no pin use champion (else the latest version); "
        "a file's model-alias metadata, or submit --model-alias, pins another.",
    )
    p.set_defaults(run=_model_alias)
    p.add_argument("name", help="the model's name")
    p.add_argument("alias", help=f"the alias: {naming.ALIAS_RULE}")
    p.add_argument("version", type=int, nargs="?", help="the version it names from now on")
    p.add_argument("--delete", action="store_true", help="remove the alias")
    outputs_option(p)
    p = model_sub.add_parser(
        "shadow",
        help="score every file with another version too, and compare",
        description="Make a version the model's shadow: every file for the model is also "
        "scored by it in the same pass (one read, the primary's output), and its notification "
        "says how the two differ (max and mean difference, rank correlation, flips), with a "
        "report beside the output.",
    )
    p.set_defaults(run=_model_shadow)
    p.add_argument("name", help="the model's name")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("version", type=int, nargs="?", help="the shadow version")
    target.add_argument("--alias", help="shadow with what this alias names, as it moves")
    target.add_argument("--off", action="store_true", help="stop shadow scoring")
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
    dev.add_argument(
        "--enforce-iam",
        action="store_true",
        help="check every request against the template's IAM policies: each part runs as its "
        "role, you as the template's ClientPolicy (its keys go to the outputs file)",
    )

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

    _submit_command(command)

    p = command("retry", "run failed files again, once what failed them is fixed", _retry)
    p.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="failed jobs to run again")
    p.add_argument(
        "--failed-since",
        metavar="DURATION",
        help="also every failure announced within DURATION (e.g. 30m, 2h, 1d) not retried yet",
    )
    outputs_option(p)

    _rescore_command(command)

    p = command("logs", "one job's log lines from every process, in time order", _logs)
    _job_id_argument(p)
    p.add_argument("--follow", action="store_true", help="keep printing until the job ends")
    p.add_argument("--json", action="store_true", help="print the JSON lines as they are")
    outputs_option(p)

    p = command("get", "a succeeded job's scored file, into a file or to stdout", _get)
    _job_id_argument(p)
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        default=".",
        help="a file, a folder (default: here, under the output's own name), or - for stdout",
    )
    outputs_option(p)

    p = command("report", "a scored file's quality report, as a table", _report)
    _job_id_argument(p)
    p.add_argument("--json", action="store_true", help="print the report's JSON")
    p.add_argument(
        "--shadow", action="store_true", help="the comparison with the model's shadow instead"
    )
    outputs_option(p)

    p = command("watch", "print notifications as JSON lines as they arrive", _watch)
    p.add_argument("--count", type=int, help="stop after this many notifications")
    p.add_argument("--timeout", type=float, help="stop after this many seconds")
    outputs_option(p)
    return parser


# ---- finding the stack ----------------------------------------------------------


def connect(args: argparse.Namespace) -> Client:
    """A client of the stack the arguments name: a deployed one, or a local one.

    With neither ``--outputs`` nor ``--stack``: the local stack if ``pipeline dev``
    runs here, else the stack named in ``samconfig.toml``, as ``sam deploy`` would.
    """
    from pipeline.client.api import Client  # noqa: PLC0415

    profile, region = getattr(args, "profile", None), getattr(args, "region", None)
    try:
        if getattr(args, "stack", None):
            return Client.from_stack(args.stack, profile=profile, region=region)
        path: Path | None = args.outputs
        if path is None:
            path = DEFAULT_OUTPUTS
            stack = samconfig_stack(Path("samconfig.toml"))
            if not path.exists() and stack is not None:
                args.stack = stack  # the commands that read a deployed stack differently see it
                try:
                    return Client.from_stack(stack, profile=profile, region=region)
                except StackNotFound as exc:
                    raise CliError(
                        f"no local stack was found ({DEFAULT_OUTPUTS} does not exist: is "
                        "'pipeline dev' running here?), so the deployed stack named in "
                        f"samconfig.toml, {stack!r}, was tried: {exc}"
                    ) from exc
        client = Client.from_file(path)
    except StackNotFound as exc:
        raise CliError(str(exc)) from exc
    endpoint = client.outputs.get("EndpointUrl", "")
    args.connected_to = f"the local stack of {path} ({endpoint})"
    return client


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


# ---- commands -----------------------------------------------------------------------


def _dev(args: argparse.Namespace) -> int:
    from pipeline.local.stack import LocalStack  # noqa: PLC0415 - only dev pays for moto
    from pipeline.settings import own_variables  # noqa: PLC0415

    stop = threading.Event()
    _refuse_a_running_stack(args.outputs)
    if not 0 <= args.min_workers <= args.max_workers or args.max_workers < 1:
        raise CliError("need 0 <= --min-workers <= --max-workers and --max-workers >= 1")
    policy = Policy(
        minimum=args.min_workers, maximum=args.max_workers, cooldown_seconds=args.cooldown
    )
    stack = LocalStack(
        stack_name=args.stack_name,
        port=args.port,
        scaling=policy,
        environment=own_variables(),
        state_dir=args.outputs.parent / "state",
        logs_dir=args.outputs.parent / "logs",
        enforce_iam=args.enforce_iam,
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
            + (
                "  IAM enforced: each part runs as its template role; the CLI and Client use "
                "the ClientPolicy keys in the outputs file\n"
                if args.enforce_iam
                else ""
            )
            + "  Ctrl-C stops everything.",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        print("pipeline: stopping", flush=True)
        stack.stop()
        args.outputs.unlink(missing_ok=True)
    return 0


def _refuse_a_running_stack(outputs: Path) -> None:
    """A second ``pipeline dev`` would overwrite, then delete, a running stack's outputs."""
    import socket  # noqa: PLC0415
    from urllib.parse import urlsplit  # noqa: PLC0415

    try:
        running = json.loads(outputs.read_text())
        endpoint = str(running["EndpointUrl"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    url = urlsplit(endpoint)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), 1.0):
            pass
    except OSError:
        print(f"pipeline: replacing {outputs}: its stack ({endpoint}) no longer answers")
        return
    raise CliError(
        f"{outputs} belongs to a running stack, {running.get('StackName', '?')!r} at "
        f"{endpoint}: stop that 'pipeline dev' first (Ctrl-C in its terminal), or start "
        "this one with --outputs OTHER_FILE"
    )


def _demo(args: argparse.Namespace) -> int:
    from pipeline.client import demo  # noqa: PLC0415
    from pipeline.client.api import Client, NotificationTimeout  # noqa: PLC0415
    from pipeline.local.stack import LocalStack  # noqa: PLC0415

    log: list[str] = []
    print("Starting the local stack (moto server, resources from template.yaml, poller, worker)…")
    with (
        LocalStack(stack_name="pipeline-demo", sink=log.append) as stack,
        Client.from_local(stack) as client,
    ):
        print("Training a small churn model on generated data and publishing it as 'churn'…")
        booster = demo.train()
        version = client.publish_model(booster.model_to_string().encode(), name="churn")
        key = "demo/customers.csv"
        print(
            f"Uploading a {args.rows}-row CSV to s3://{stack.outputs['InputBucketName']}/churn/{key}…"
        )
        started = time.monotonic()
        try:
            notification = client.submit(
                demo.csv_bytes(args.rows), model="churn", key=key, timeout=120
            )
        except NotificationTimeout as exc:
            print("\n".join(log[-40:]), file=sys.stderr)
            raise CliError(f"{exc} (worker log above)") from exc
        print(f"\nNotification ({time.monotonic() - started:.2f} s after upload):")
        print(notification.model_dump_json(indent=2))
        if notification.output is None:
            return 1
        output = notification.output
        saved = Path(output.key.rsplit("/", 1)[-1]).resolve()
        client.get(notification.job_id, saved)
        head = saved.read_bytes()[:4096].decode().splitlines()[:6]
        print(
            f"\nFirst rows of s3://{output.bucket}/{output.key} (model churn v{version.version}),"
            f" saved as {saved}:"
        )
        print("\n".join(head))
    print(f"\nStopped: no process left behind. The scored file is {saved}.")
    return 0


def _outputs(args: argparse.Namespace) -> int:
    print(json.dumps(connect(args).outputs, indent=2))
    return 0


def _status(args: argparse.Namespace) -> int:
    from pipeline.client.status import render  # noqa: PLC0415

    status = connect(args).status(args.jobs)
    if args.json:
        print(json.dumps(status.as_json(), indent=2))
    else:
        print(render(status, bars=sys.stdout.isatty()))
    return 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(Notification.model_json_schema(), indent=2))
    return 0


def _model_publish(args: argparse.Namespace) -> int:
    client = connect(args)
    try:
        version = client.publish_model(
            args.file,
            name=args.name,
            baseline=args.baseline,
            max_psi=args.max_psi,
            max_missing=args.max_missing,
            on_quality=args.on_quality,
            **_score_kwargs(args),
        )
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    info = version.info
    baseline = ", with a baseline" if version.baseline else ""
    print(
        f"published {version.name} version {version.version}: {info.objective}, "
        f"{len(info.feature_names)} features, {info.num_trees} trees{baseline}; scored with "
        "LightGBM until its compiled engine is checked ('pipeline model list' shows it)"
    )
    return 0


_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _retry(args: argparse.Namespace) -> int:
    from pipeline.client.retries import failed_since  # noqa: PLC0415
    from pipeline.errors import NotRetryable  # noqa: PLC0415

    client = connect(args)
    job_ids = list(args.job_ids)
    if args.failed_since:
        match = _DURATION.match(args.failed_since)
        if match is None:
            raise CliError(f"--failed-since {args.failed_since!r}: give a number and s, m, h or d")
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        job_ids += failed_since(client.ledger, utc_now() - timedelta(seconds=seconds))
    if not job_ids:
        if args.failed_since:
            print(f"no failures to retry since {args.failed_since} ago", file=sys.stderr)
            return 0
        raise CliError("name the jobs to retry, or give --failed-since DURATION")
    refused = 0
    for job_id in job_ids:
        try:
            request = client.retry(job_id)
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
    store = connect(args).models
    names = [args.name] if args.name else store.names()
    if args.name and not store.versions(args.name):
        published = ", ".join(store.names()) or "none yet"
        raise CliError(f"no model named {args.name!r} is published (published: {published})")
    if args.json:
        routings = {name: store.routing(name) for name in names}
        listed = [
            {
                **record.model_dump(mode="json"),
                "engine": [e.model_dump(mode="json") for e in store.engines(record.sha256)][:1],
                "aliases": [a for a, v in routings[name].aliases.items() if v == record.version],
                "shadow": "shadow" in _pointers(routings[name], record.version),
            }
            for name in names
            for record in store.records(name)
        ]
        print(json.dumps(listed, indent=2))
        return 0
    for name in names:
        routing = store.routing(name)
        for record in store.records(name):
            info = record.info
            named = _pointers(routing, record.version)
            print(
                f"{name}\tv{record.version}\t{' '.join(named) or '-'}\t"
                f"{record.published_at:%Y-%m-%d %H:%M:%S}\t"
                f"{info.objective}\t{len(info.feature_names)} features\t{record.sha256[:12]}\t"
                f"{engine_summary(store.engines(record.sha256))}{_defaults(record)}"
            )
    return 0


def _model_alias(args: argparse.Namespace) -> int:
    client = connect(args)
    try:
        if args.delete:
            if args.version is not None:
                raise CliError("--delete takes no version")
            version = client.delete_alias(args.name, args.alias)
            print(f"{args.name}@{args.alias} removed (it named version {version})")
            return 0
        if args.version is None:
            aliases = client.aliases(args.name)
            if args.alias not in aliases:
                raise CliError(
                    f"model {args.name!r} has no alias {args.alias!r}; set it with "
                    f"'pipeline model alias {args.name} {args.alias} VERSION'"
                )
            print(f"{args.name}@{args.alias} -> version {aliases[args.alias]}")
            return 0
        before = client.aliases(args.name).get(args.alias)
        client.set_alias(args.name, args.alias, args.version)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    moved = f" (was {before})" if before is not None and before != args.version else ""
    print(f"{args.name}@{args.alias} -> version {args.version}{moved}")
    return 0


def _model_shadow(args: argparse.Namespace) -> int:
    client = connect(args)
    try:
        if args.off:
            client.stop_shadow(args.name)
            print(f"{args.name}: shadow scoring stopped")
            return 0
        ref = client.set_shadow(args.name, args.version, alias=args.alias)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    named = f" (alias {args.alias}, followed as it moves)" if args.alias else ""
    print(
        f"{args.name}: every file is also scored by version {ref.version}{named}; "
        "each notification's 'shadow' says how the two differ"
    )
    return 0


def _rescore(args: argparse.Namespace) -> int:
    client = connect(args)
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=0, unit="file", desc="rescoring")

    def progress(tally: RescoreTally) -> None:
        if bar is not None:
            bar.total = tally.listed
            bar.n = tally.done + (0 if args.wait else tally.started - tally.refused)
            bar.set_postfix_str(
                f"started {tally.started:,}, answered {sum(tally.answered.values()):,}, "
                f"already {sum(tally.already.values()):,}",
                refresh=True,
            )

    try:
        with client:
            tally = client.rescore(
                args.target,
                model_version=args.model_version,
                model_alias=args.model_alias,
                wait=args.wait,
                max_in_flight=args.max_in_flight,
                on_progress=progress,
            )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(
            json.dumps(
                {
                    "prefix": tally.prefix,
                    "listed": tally.listed,
                    "started": tally.started,
                    "refused": tally.refused,
                    "answered": dict(tally.answered),
                    "already_answered": dict(tally.already),
                    "pending": tally.pending,
                }
            )
        )
    else:
        print(tally.summary())
    if not args.wait:
        return 0
    return 0 if tally.all_succeeded else 1


def _shadow_report(args: argparse.Namespace) -> int:
    try:
        report = connect(args).shadow_report(args.job_id)
    except LookupError as exc:
        raise CliError(str(exc.args[0])) from exc
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    flips = "" if report.flips is None else f", {report.flips:,} flips at {report.threshold:g}"
    print(
        f"job {report.job_id}: model {report.model} v{report.primary_version} against shadow "
        f"v{report.shadow_version}, {report.rows:,} rows{flips}"
    )
    print(f"\n{'output':<24}{'max |diff|':>14}{'mean |diff|':>14}{'Spearman':>10}")
    for c in report.classes:
        print(
            f"{c.output[:23]:<24}{figure(c.max_abs_diff):>14}{figure(c.mean_abs_diff):>14}"
            f"{figure(c.rank_correlation):>10}"
        )
    print(f"\n{'row':>10}  {'output':<16}{'primary':>14}{'shadow':>14}{'diff':>14}")
    for r in report.largest:
        print(
            f"{r.row:>10,}  {r.output[:15]:<16}{r.primary:>14.6g}{r.shadow:>14.6g}{r.diff:>+14.6g}"
        )
    return 0


def _pointers(routing: Routing, version: int) -> list[str]:
    """What points at a version: its aliases (``@champion``), and ``shadow``."""
    named = [f"@{alias}" for alias, v in routing.aliases.items() if v == version]
    shadow = routing.shadow_version
    return [*named, "shadow"] if shadow is not None and shadow.version == version else named


def _defaults(record: ModelVersion) -> str:
    """The version's output options, as the metadata that would set them."""
    spelled = record.defaults.to_metadata()
    return "\t" + " ".join(f"{k}={v}" for k, v in spelled.items()) if spelled else ""


def engine_summary(records: list[EngineRecord]) -> str:
    """The newest engine record of a model text, as a person reads it."""
    if not records:
        return "lightgbm (compile pending)"
    record = records[0]
    if record.status == "compiled":
        kernel = f"{record.kernel} kernel, " if record.kernel else ""
        return (
            f"compiled ({kernel}{record.target}, {record.compile_seconds:.1f} s; {record.reason})"
        )
    return f"lightgbm ({record.reason})"


def _submit(args: argparse.Namespace) -> int:
    client = connect(args)
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm  # noqa: PLC0415

        size = args.file.stat().st_size if args.file.is_file() else 0
        bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"uploading {args.file.name}")
    from pipeline.client.api import NotificationTimeout  # noqa: PLC0415
    from pipeline.client.status import ProgressPrinter  # noqa: PLC0415

    printer = ProgressPrinter(bar=sys.stderr.isatty())
    try:
        with client:
            submission = client.submit(
                args.file,
                model=args.model,
                key=args.key,
                model_version=args.model_version,
                model_alias=args.model_alias,
                wait=False,
                force=args.force,
                **_score_kwargs(args),
                on_upload=bar.update if bar is not None else None,
            )
            if bar is not None:
                bar.close()
            print(f"uploaded s3://{submission.bucket}/{submission.key} (ETag {submission.etag})",
                  file=sys.stderr)  # fmt: skip
            job = client.job_of(submission, args.model_version, args.model_alias)
            follow = (
                f"job {job}: follow it with 'pipeline logs {job} --follow' or 'pipeline status'"
                if job
                else "its job id is set when its model is published: see 'pipeline status'"
            )
            print(follow, file=sys.stderr)
            if not args.wait:
                return 0
            try:
                notification = client.wait(submission, args.timeout, on_progress=printer)
            except NotificationTimeout as exc:
                raise CliError(
                    f"no answer within {args.timeout:g} s (the file may still be running); {follow}"
                ) from exc
    except UnknownModel as exc:
        raise CliError(f"--model {args.model}: {exc}") from exc
    except (FileNotFoundError, IsADirectoryError, TimeoutError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        printer.finish()
    print(notification.model_dump_json(indent=2))
    if args.output and notification.status == "succeeded":
        path = client.get(notification.job_id, args.output)
        print(f"wrote {path}", file=sys.stderr)
    return 0 if notification.status == "succeeded" else 1


def _get(args: argparse.Namespace) -> int:
    client = connect(args)
    try:
        if args.output == "-":
            sys.stdout.buffer.write(client.read_output(args.job_id))
            return 0
        path = client.get(args.job_id, args.output)
    except LookupError as exc:
        raise CliError(str(exc.args[0])) from exc
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    if args.shadow:
        return _shadow_report(args)
    try:
        report = connect(args).report(args.job_id)
    except LookupError as exc:
        raise CliError(str(exc.args[0])) from exc
    if args.json:
        print(report.model_dump_json(indent=2, exclude={"baseline"}))
        return 0
    print(
        f"job {report.job_id}: model {report.model} v{report.version}, {report.rows:,} rows, "
        f"largest PSI {figure(report.max_psi)}"
    )
    rows = max(report.rows, 1)
    print(f"\n{'feature':<24}{'missing':>16}{'below':>10}{'above':>10}{'unseen':>10}{'PSI':>10}")
    for name, f in report.features.items():
        missing = f"{f.missing:,} ({f.missing / rows:.1%})"
        print(
            f"{name[:23]:<24}{missing:>16}{f.below_range:>10,}{f.above_range:>10,}"
            f"{f.unseen:>10,}{figure(f.psi):>10}"
        )
    p = report.prediction
    quantiles = "  ".join(f"q{q} {v:.4g}" for q, v in p.quantiles.items())
    print(f"\nprediction: mean {figure(p.mean)}, PSI {figure(p.psi)}\n  {quantiles}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    return 0


def _logs(args: argparse.Namespace) -> int:
    from pipeline import logs  # noqa: PLC0415
    from pipeline.client import log_reader  # noqa: PLC0415

    client = connect(args)

    def lines() -> list[dict[str, Any]]:
        if not client.is_local:
            groups = log_reader.log_groups(
                client.aws("cloudformation"), client.outputs["StackName"]
            )
            return log_reader.cloudwatch_lines(client.aws("logs"), groups, args.job_id)
        return log_reader.local_lines(Path(client.outputs["LogsFolder"]))

    ledger = client.ledger
    shown = 0
    while True:
        done = not args.follow or ledger.outcome(args.job_id) is not None
        found = log_reader.of_job(lines(), args.job_id)
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
    with connect(args) as client:
        notifications = client.notifications(timeout=args.timeout)
        for seen, notification in enumerate(notifications, start=1):
            print(notification.model_dump_json(), flush=True)
            if args.count is not None and seen >= args.count:
                break
    return 0


def entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    entry()
