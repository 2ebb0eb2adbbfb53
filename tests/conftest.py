"""Shared AWS fixtures: one moto server for the session, resources per test.

The server is the package's own pytest plugin's (``pipeline_endpoint``), as
users' suites get it: real (HTTP on 127.0.0.1), reached through
``AWS_ENDPOINT_URL`` like everything else. Every stack a test starts has a
unique name and is torn down when the test ends, so tests never see each
other's buckets or queues.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.client.api import Client
from pipeline.client.pytest_plugin import REGION, TEST_SETTINGS
from pipeline.local.stack import LocalStack
from pipeline.scoring import plain_numbers
from pipeline.stores import aws

EVENTS = Path(__file__).parent / "events"


def load_event(name: str) -> dict[str, Any]:
    """A canned Lambda event from ``tests/events``."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def queue_depth(sqs: Any, url: str) -> int:
    """Messages on a queue, visible or held by a consumer."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def readme_example(heading: str) -> str:
    """The first Python block under a README heading: examples there are run as written."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split(f"\n{heading}\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def run_as_a_user(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command run as a user would run it: in their folder, with no AWS or pytest variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST_"))}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def infra_module(name: str) -> Any:
    """A script under ``infra/`` (not a package), loaded as a module."""
    path = Path(__file__).resolve().parents[1] / "infra" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_number_pass(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process as one where LLVM cannot generate the readers' number pass: the
    pass's cached entry points are cleared on the way in and out, so no other test
    sees the broken ones, nor misses them."""

    def broken() -> None:
        raise RuntimeError("no native target")

    monkeypatch.setattr(plain_numbers, "_generated", broken)
    plain_numbers._functions.cache_clear()
    yield
    monkeypatch.undo()
    plain_numbers._functions.cache_clear()


@pytest.fixture(scope="session")
def aws_endpoint(pipeline_endpoint: str) -> str:
    """The session's emulator; this process's AWS variables point at it."""
    return pipeline_endpoint


@pytest.fixture
def s3(aws_endpoint: str) -> Any:
    return aws.s3_client(REGION)


@pytest.fixture
def sqs(aws_endpoint: str) -> Any:
    return aws.sqs_client(REGION)


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    """An empty bucket of its own, removed after the test."""
    name = unique("bucket")
    s3.create_bucket(Bucket=name)
    yield name
    for item in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=item["Key"])
    s3.delete_bucket(Bucket=name)


@pytest.fixture
def function_environment(
    aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str, Any], Any]:
    """Provision a stack and give this process one function's Environment, as Lambda would.

    Call it with the function's logical id and its handler module (whose
    cached runtime is cleared, so it is built from this environment).
    """
    from pipeline.local import template
    from pipeline.local.provision import provision

    stacks: list[Any] = []

    def apply(function: str, handler: Any) -> Any:
        stack = provision(template.load(), unique("fn"), REGION)
        stacks.append((stack, handler))
        for name, value in stack.properties[function]["Environment"]["Variables"].items():
            monkeypatch.setenv(name, value)
        handler._runtime.cache_clear()
        return stack

    yield apply
    for stack, handler in stacks:
        handler._runtime.cache_clear()
        stack.destroy()


StackFactory = Callable[..., LocalStack]


def publish(stack: LocalStack, booster: Any, name: str = "churn") -> Any:
    """Publish a trained booster to a stack as ``name``; its ModelVersion."""
    from pipeline.stores.model_store import ModelStore

    store = ModelStore(aws.s3_client(REGION), stack.outputs["ModelBucketName"])
    return store.publish(name, booster.model_to_string().encode(), f"{name}.txt")


def outputs_file(stack: LocalStack, folder: Path) -> Path:
    """The stack's outputs file, as ``pipeline dev`` writes it, for the CLI's --outputs."""
    path = folder / "outputs.json"
    stack.write_outputs(path)
    return path


def compile_version(stack: LocalStack, store: Any, version: Any, timeout: float = 120) -> Any:
    """Send a version's compile job to the stack's workers; its EngineRecord once written."""
    from pipeline.scoring.engine import compiler

    target = compiler.host_target()
    assert target is not None
    Client.from_local(stack).request_compile(version)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = store.engine(version.sha256, compiler.compiler_id(), target.name)
        if record is not None:
            return record
        time.sleep(0.1)
    raise AssertionError(f"{version.name} v{version.version} was not compiled in {timeout} s")


@pytest.fixture
def local_stack(aws_endpoint: str) -> Iterator[StackFactory]:
    """Start stacks with unique names on the shared emulator; stop them after the test."""
    with _stacks(aws_endpoint) as start:
        yield start


@pytest.fixture(scope="module")
def local_stack_module(aws_endpoint: str) -> Iterator[StackFactory]:
    """Like ``local_stack``, for stacks a module's tests share; stopped after the module."""
    with _stacks(aws_endpoint) as start:
        yield start


@contextlib.contextmanager
def _stacks(aws_endpoint: str) -> Iterator[StackFactory]:
    started: list[LocalStack] = []

    def start(workers: int = 1, **kwargs: Any) -> LocalStack:
        settings = {**TEST_SETTINGS, **kwargs.pop("settings", {})}
        stack = LocalStack(
            stack_name=unique("t"),
            region=REGION,
            endpoint_url=aws_endpoint,
            workers=workers,
            settings=settings,
            sink=lambda _line: None,
            **kwargs,
        )
        started.append(stack)
        return stack.start()

    yield start
    for stack in started:
        stack.stop()


def submit(client: Client, key: str, body: bytes, timeout: float = 60, **options: Any) -> Any:
    """Upload ``body`` as ``key`` (``<model>/<name>``) through the product's ``Client`` and
    wait for its one notification; failure is an answer, never a change: the input is
    still there, byte for byte."""
    model, _, name = key.partition("/")
    note = client.submit(body, model=model, key=name, timeout=timeout, **options)
    kept = client.s3.get_object(Bucket=client.outputs["InputBucketName"], Key=key)
    assert kept["Body"].read() == body
    return note


@pytest.fixture(scope="module")
def scoring_stack(
    aws_endpoint: str, binary_model: Any, multiclass_model: Any, categorical_model: Any
) -> Iterator[Client]:
    """A running stack with one real solo worker, shared by a module's tests, as a ``Client``.

    Models published: ``churn`` (binary), ``segments`` (3 classes) and
    ``colors`` (binary, with pandas categorical features). Tests
    upload under unique keys and wait for their own notification.
    """
    from pipeline.stores.model_store import ModelStore

    stack = LocalStack(
        stack_name=unique("e"),
        region=REGION,
        endpoint_url=aws_endpoint,
        settings=TEST_SETTINGS,
        sink=lambda _line: None,
    ).start()
    store = ModelStore(aws.s3_client(REGION), stack.outputs["ModelBucketName"])
    versions = [
        store.publish("churn", binary_model.model_to_string().encode(), "churn.txt"),
        store.publish("segments", multiclass_model.model_to_string().encode(), "seg.txt"),
        store.publish("colors", categorical_model[0].model_to_string().encode(), "c.txt"),
    ]
    for version in versions:
        assert compile_version(stack, store, version).status == "compiled"
    with Client.from_local(stack) as client:
        yield client
    stack.stop()


@pytest.fixture(scope="session")
def binary_model() -> Any:
    """A small binary LightGBM model with named features, trained here."""
    import lightgbm as lgb

    rng = np.random.default_rng(3)
    x = rng.normal(size=(800, 4))
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.2 * rng.normal(size=800) > 0).astype(int)
    names = ["age", "income", "score", "balance"]
    return lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 15, "seed": 1},
        lgb.Dataset(x, y, feature_name=names),
        num_boost_round=25,
    )


@pytest.fixture(scope="session")
def challenger_model() -> Any:
    """A binary model on ``binary_model``'s features, trained on other data: close, not equal
    (a challenger to compare with it)."""
    import lightgbm as lgb

    rng = np.random.default_rng(11)
    x = rng.normal(size=(800, 4))
    y = (x[:, 0] - 0.4 * x[:, 1] + 0.1 * x[:, 2] + 0.3 * rng.normal(size=800) > 0).astype(int)
    return lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 7, "seed": 2},
        lgb.Dataset(x, y, feature_name=["age", "income", "score", "balance"]),
        num_boost_round=40,
    )


@pytest.fixture(scope="session")
def multiclass_model() -> Any:
    import lightgbm as lgb

    rng = np.random.default_rng(4)
    x = rng.normal(size=(900, 3))
    y = np.digitize(x[:, 0] + x[:, 2], [-0.5, 0.5])
    return lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_leaves": 7},
        lgb.Dataset(x, y, feature_name=["x0", "x1", "x2"]),
        num_boost_round=10,
    )


@pytest.fixture(scope="session")
def categorical_model() -> Any:
    """A binary model trained on a DataFrame with string and integer categoricals.

    Returns the booster and the training categories by column.
    """
    import lightgbm as lgb
    import pandas as pd

    rng = np.random.default_rng(5)
    n = 3000
    colors = ["blue", "green", "red", "teal"]
    frame = pd.DataFrame(
        {
            "amount": rng.normal(size=n),
            "color": pd.Categorical(rng.choice(colors, n), categories=colors),
            "size": pd.Categorical(rng.choice([1, 2, 3], n), categories=[1, 2, 3]),
        }
    )
    y = ((frame["color"] == "red") | (frame["amount"] > 1) | (frame["size"] == 3)).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_per_group": 5, "cat_smooth": 1},
        lgb.Dataset(frame, y),
        num_boost_round=20,
    )
    return booster, {"color": colors, "size": [1, 2, 3]}
