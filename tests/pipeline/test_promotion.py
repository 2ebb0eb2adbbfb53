"""Champion and challenger on a real stack: aliases, shadow scoring and rescoring a prefix.

One stack with one real solo worker; models published as ``<unique>`` names so
each test has its own aliases and shadow. The commands run as a user runs them
(subprocesses of the ``pipeline`` CLI against the stack's outputs file).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pa_csv
import pytest
from scipy.stats import spearmanr

from pipeline.client.api import Client
from pipeline.local.stack import LocalStack
from pipeline.messages import Notification
from pipeline.stores.ledger import Ledger
from tests.conftest import REGION, TEST_SETTINGS, outputs_file, unique

FEATURES = ["age", "income", "score", "balance"]
PIPELINE = [sys.executable, "-m", "pipeline.client.cli"]


@pytest.fixture(scope="module")
def stack(aws_endpoint: str) -> Iterator[LocalStack]:
    stack = LocalStack(
        stack_name=unique("promote"),
        region=REGION,
        endpoint_url=aws_endpoint,
        settings=TEST_SETTINGS,
        environment={"PIPELINE_PREDICT_ENGINE": "lightgbm"},
        sink=lambda _line: None,
    ).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def outputs(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return outputs_file(stack, tmp_path_factory.mktemp("promote"))


@pytest.fixture
def client(stack: LocalStack) -> Iterator[Client]:
    with Client.from_local(stack) as client:
        yield client


@pytest.fixture(scope="module")
def challenger(challenger_model: Any) -> Any:
    return challenger_model


@pytest.fixture(scope="module")
def narrow() -> Any:
    """A challenger that reads fewer features, in another order: its own feature matrix."""
    import lightgbm as lgb

    rng = np.random.default_rng(12)
    x = rng.normal(size=(800, 2))
    y = (x[:, 1] - 0.5 * x[:, 0] > 0).astype(int)
    return lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 7},
        lgb.Dataset(x, y, feature_name=["income", "age"]),
        num_boost_round=10,
    )


def cli(outputs: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PIPELINE, *args, "--outputs", str(outputs)],
        capture_output=True,
        text=True,
        check=check,
        timeout=300,
    )


def rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, len(FEATURES)))


def csv_bytes(x: np.ndarray, columns: list[str] = FEATURES) -> bytes:
    lines = ["id," + ",".join(columns) + "\n"]
    lines += [f"{i}," + ",".join(repr(float(v)) for v in r) + "\n" for i, r in enumerate(x)]
    return "".join(lines).encode()


def publish_all(client: Client, name: str, *boosters: Any) -> None:
    for booster in boosters:
        client.publish_model(booster.model_to_string().encode(), name=name)


def output_table(client: Client, note: Notification) -> Any:
    return pa_csv.read_csv(io.BytesIO(client.read_output(note.job_id)))


def test_a_shadow_scores_every_file_in_the_same_pass_and_says_exactly_how_it_differs(
    client: Client, outputs: Path, binary_model: Any, challenger: Any
) -> None:
    name = unique("sh")
    publish_all(client, name, binary_model, challenger)
    cli(outputs, "model", "alias", name, "champion", "1")
    cli(outputs, "model", "shadow", name, "2")
    x = rows(3000, 1)

    note = client.submit(csv_bytes(x), model=name, key="day1.csv", threshold=0.3, timeout=120)

    assert note.status == "succeeded", note.error
    assert note.model is not None
    assert note.model.version == 1
    primary, shadow = binary_model.predict(x), challenger.predict(x)
    table = output_table(client, note)
    assert table.column_names == ["id", *FEATURES, "prediction"]  # the primary's output only
    assert np.array_equal(table.column("prediction").to_numpy(), primary)
    got = note.shadow
    assert got is not None
    assert got.error is None
    diff = np.abs(shadow - primary)
    assert (got.version, got.rows) == (2, 3000)
    assert got.max_abs_diff == diff.max()  # exact, as the primary's predictions are
    assert got.mean_abs_diff == pytest.approx(diff.mean(), rel=1e-12)
    assert got.rank_correlation == pytest.approx(spearmanr(primary, shadow).statistic, rel=1e-12)
    assert got.flips == int(((primary > 0.3) != (shadow > 0.3)).sum())  # the threshold in force
    assert got.flips > 0

    report = client.shadow_report(note.job_id)
    assert report.threshold == 0.3
    top = np.argsort(-diff, kind="stable")[:20]
    assert [(r.row, r.primary, r.shadow) for r in report.largest] == [
        (int(i) + 1, float(primary[i]), float(shadow[i])) for i in top
    ]
    shown = cli(outputs, "report", note.job_id, "--shadow").stdout
    assert f"v1 against shadow v2, 3,000 rows, {got.flips:,} flips at 0.3" in shown


def test_a_shadow_with_features_of_its_own_and_one_that_cannot_score_the_file(
    client: Client, binary_model: Any, narrow: Any
) -> None:
    name = unique("sh")
    publish_all(client, name, binary_model, narrow)
    client.set_alias(name, "champion", 1)
    client.set_shadow(name, 2)
    x = rows(500, 2)

    note = client.submit(csv_bytes(x), model=name, key="a.csv", timeout=120)

    assert note.shadow is not None
    assert note.shadow.error is None
    shadow = narrow.predict(x[:, [1, 0]])
    assert note.shadow.max_abs_diff == np.abs(shadow - binary_model.predict(x)).max()
    report = client.shadow_report(note.job_id)
    assert report.largest[0].shadow == shadow[report.largest[0].row - 1]


def test_a_shadow_that_lacks_a_column_never_fails_the_file(
    client: Client, binary_model: Any
) -> None:
    import lightgbm as lgb

    rng = np.random.default_rng(13)
    x = rng.normal(size=(400, 5))
    wider = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 7},
        lgb.Dataset(x, (x[:, 4] > 0).astype(int), feature_name=[*FEATURES, "tenure"]),
        num_boost_round=5,
    )
    name = unique("sh")
    publish_all(client, name, binary_model, wider)
    client.set_alias(name, "champion", 1)
    client.set_alias(name, "challenger", 2)
    client.set_shadow(name, alias="challenger")

    note = client.submit(csv_bytes(rows(200, 3)), model=name, key="a.csv", timeout=120)

    assert note.status == "succeeded", note.error
    assert note.model is not None
    assert note.model.alias == "champion"
    assert note.shadow is not None
    assert (note.shadow.version, note.shadow.alias) == (2, "challenger")
    assert note.shadow.error is not None
    assert "'tenure'" in note.shadow.error
    assert (note.shadow.max_abs_diff, note.shadow.report) == (None, None)


def test_moving_champion_changes_the_next_files_version_with_nothing_restarted(
    client: Client, outputs: Path, binary_model: Any, challenger: Any
) -> None:
    name = unique("al")
    publish_all(client, name, binary_model, challenger, binary_model)
    body = csv_bytes(rows(50, 4))
    assert client.submit(body, model=name, key="0.csv", timeout=120).model == client.models.resolve(
        name, 3
    )

    cli(outputs, "model", "alias", name, "champion", "1")
    first = client.submit(body, model=name, key="1.csv", timeout=120)
    moved = cli(outputs, "model", "alias", name, "champion", "2").stdout
    second = client.submit(body, model=name, key="2.csv", timeout=120)
    pinned = client.submit(body, model=name, key="3.csv", model_alias="champion", timeout=120)
    third = client.submit(body, model=name, key="4.csv", model_version=3, timeout=120)

    assert f"{name}@champion -> version 2 (was 1)" in moved
    assert first.model is not None
    assert (first.model.version, first.model.alias) == (1, "champion")
    assert second.model is not None
    assert (second.model.version, second.model.alias) == (2, "champion")
    assert pinned.model is not None
    assert pinned.model.version == 2
    assert third.model is not None
    assert (third.model.version, third.model.alias) == (3, None)
    listed = cli(outputs, "model", "list", "--name", name).stdout.splitlines()
    assert [line.split("\t")[1:3] for line in listed] == [["v1", "-"], ["v2", "@champion"],
                                                        ["v3", "-"]]  # fmt: skip
    cli(outputs, "model", "alias", name, "champion", "--delete")
    assert client.aliases(name) == {}
    refused = cli(outputs, "model", "alias", name, "Champion", "1", check=False)
    assert refused.returncode == 2
    assert "did you mean 'champion'" in refused.stderr


def test_rescoring_a_prefix_scores_each_file_once_per_version(
    client: Client, outputs: Path, stack: LocalStack, binary_model: Any, challenger: Any
) -> None:
    name = unique("rs")
    publish_all(client, name, binary_model)
    xs = {f"week/{d}.csv": rows(100, 20 + d) for d in range(6)}
    for key, x in xs.items():
        client.submit(csv_bytes(x), model=name, key=key, timeout=120)
    client.submit(b"id,age\n1,2\n", model=name, key="other/x.csv", timeout=120)
    publish_all(client, name, challenger)
    bucket = stack.outputs["InputBucketName"]

    done = cli(outputs, "rescore", f"s3://{bucket}/{name}/week/", "--model-version", "2",
               "--wait", "--max-in-flight", "2", "--json")  # fmt: skip

    tally = json.loads(done.stdout)
    assert (tally["listed"], tally["started"]) == (6, 6)
    assert tally["answered"] == {"succeeded": 6}
    ledger = Ledger(client.s3, stack.outputs["OutputBucketName"])
    outcomes = [n for n in ledger.recent(40) if n.input and n.input.key.startswith(f"{name}/")]
    rescored = [n for n in outcomes if n.model and n.model.version == 2]
    assert sorted(n.input.key for n in rescored if n.input) == sorted(f"{name}/{key}" for key in xs)
    for note in rescored:
        assert note.input is not None
        x = xs[note.input.key.split("/", 1)[1]]
        predictions = output_table(client, note).column("prediction").to_numpy()
        assert np.array_equal(predictions, challenger.predict(x))

    again = client.rescore(f"s3://{bucket}/{name}/week/", model_version=2, wait=True)
    assert (again.started, dict(again.already), again.all_succeeded) == (
        0,
        {"succeeded": 6},
        True,
    )
    # Without a pin: what an upload gets now (the latest, 2): answered too; nothing starts.
    default = cli(outputs, "rescore", f"s3://{bucket}/{name}/week", "--wait")
    assert "0 started now" in default.stdout
    assert "already answered: 6 succeeded" in default.stdout


def test_an_interrupted_rescore_run_again_sends_nothing_twice(
    client: Client, stack: LocalStack, binary_model: Any, challenger: Any
) -> None:
    name = unique("rs")
    publish_all(client, name, binary_model)
    bucket = stack.outputs["InputBucketName"]
    for d in range(4):
        client.s3.put_object(Bucket=bucket, Key=f"{name}/{d}.csv", Body=csv_bytes(rows(20, d)))
    publish_all(client, name, challenger)
    client.set_alias(name, "challenger", 2)

    first = client.rescore(f"s3://{bucket}/{name}", model_alias="challenger")  # not waited for
    second = client.rescore(f"s3://{bucket}/{name}", model_alias="challenger", wait=True)

    assert first.started == 4
    assert second.started == 0
    assert second.all_succeeded
    assert sum(second.answered.values()) + sum(second.already.values()) == 4
    refused = cli_error(client, f"s3://{bucket}/", 2)
    assert "inside one model's files" in refused


def cli_error(client: Client, target: str, version: int) -> str:
    with pytest.raises(ValueError, match=r".") as caught:
        client.rescore(target, model_version=version)
    return str(caught.value)


def test_a_multiclass_shadow_is_compared_class_by_class(
    client: Client, multiclass_model: Any
) -> None:
    import lightgbm as lgb

    rng = np.random.default_rng(14)
    train = rng.normal(size=(900, 3))
    other = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_leaves": 5},
        lgb.Dataset(train, np.digitize(train[:, 0] - train[:, 1], [-0.4, 0.6]),
                    feature_name=["x0", "x1", "x2"]),
        num_boost_round=6,
    )  # fmt: skip
    name = unique("mc")
    publish_all(client, name, multiclass_model, other)
    client.set_alias(name, "champion", 1)
    client.set_shadow(name, 2)
    x = rng.normal(size=(700, 3))
    body = ("x0,x1,x2\n" + "".join(",".join(map(repr, r)) + "\n" for r in x.tolist())).encode()

    note = client.submit(body, model=name, key="a.csv", timeout=120)
    report = client.shadow_report(note.job_id)

    primary, shadow = multiclass_model.predict(x), other.predict(x)
    assert note.shadow is not None
    assert note.shadow.flips is None  # flips are a binary model's
    assert [c.output for c in report.classes] == ["prediction_0", "prediction_1", "prediction_2"]
    correlations = []
    for k, figures in enumerate(report.classes):
        diff = np.abs(shadow[:, k] - primary[:, k])
        assert figures.max_abs_diff == diff.max()
        assert figures.mean_abs_diff == pytest.approx(diff.mean(), rel=1e-12)
        correlations.append(spearmanr(primary[:, k], shadow[:, k]).statistic)
        assert figures.rank_correlation == pytest.approx(correlations[-1], rel=1e-12)
    assert note.shadow.rank_correlation == pytest.approx(min(correlations), rel=1e-12)
    assert note.shadow.max_abs_diff == np.abs(shadow - primary).max()
    assert report.argmax_changes == int((primary.argmax(1) != shadow.argmax(1)).sum())


def test_the_readme_promotion_example_runs_as_written(tmp_path: Path) -> None:
    from tests.conftest import readme_example, run_as_a_user

    run = run_as_a_user([sys.executable, "-c", readme_example("## Promoting a model")], tmp_path)

    assert run.returncode == 0, run.stderr[-3000:]
    shadow, rescored, again = run.stdout.strip().splitlines()[-3:]
    assert shadow.startswith("v1 @champion; shadow v2: 500 rows, max diff ")
    assert rescored == "rescored: 1 started, {'succeeded': 1}"
    assert again == "again: 0 started, already {'succeeded': 1}"
