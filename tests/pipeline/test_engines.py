"""Which engine scores a file, end to end: real worker, compile tasks over SQS, the store in S3."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pa_csv
import pytest

from pipeline.client.api import Client
from pipeline.client.cli import main
from pipeline.scoring.engine import compiler
from pipeline.stores import aws
from pipeline.stores.model_store import EngineRecord, ModelStore
from tests.conftest import REGION, StackFactory, compile_version, outputs_file, submit, unique
from tests.pipeline.test_worker import csv_of, split_edge_rows


def scored(s3: Any, note: Any) -> np.ndarray:
    data = s3.get_object(Bucket=note.output.bucket, Key=note.output.key)["Body"].read()
    return pa_csv.read_csv(io.BytesIO(data)).column("prediction").to_numpy()


@pytest.fixture
def file_rows(binary_model: Any) -> tuple[np.ndarray, bytes]:
    rng = np.random.default_rng(3)
    x = np.vstack([rng.normal(size=(2000, 4)), split_edge_rows(binary_model, rng)])
    x[::13, 0] = np.nan
    return x, csv_of(x, binary_model.feature_name(), order=[0, 1, 2, 3]).replace(b",nan,", b",,")


def test_a_file_sent_after_the_compile_task_does_not_wait_for_it(
    local_stack: StackFactory, s3: Any, sqs: Any
) -> None:
    """One solo worker, the compile task ahead of the file on the queue: the file goes first.

    The compile runs in a child process the task starts; the worker takes the
    file at once and scores it with LightGBM. Later files get the compiled forest.
    """
    import lightgbm as lgb

    rng = np.random.default_rng(4)
    x = rng.normal(size=(20_000, 8))
    big = lgb.train(  # a few seconds to compile
        {"objective": "binary", "num_leaves": 31, "verbose": -1},
        lgb.Dataset(x, (x[:, :3].sum(axis=1) > 0).astype(int), feature_name=list("abcdefgh")),
        num_boost_round=150,
    )
    stack = local_stack(settings={"engine_recheck_seconds": 0})
    store = ModelStore(aws.s3_client(REGION), stack.outputs["ModelBucketName"])
    version = store.publish("big", big.model_to_string().encode(), "big.txt")
    target = compiler.host_target()
    assert target is not None
    rows = x[:500]
    body = b"a,b,c,d,e,f,g,h\n" + b"".join(
        (",".join(repr(float(v)) for v in row) + "\n").encode() for row in rows
    )

    Client.from_local(stack).request_compile(version)
    before = submit(Client.from_local(stack), f"big/{unique('early')}.csv", body)
    compiled_yet = store.engine(version.sha256, compiler.compiler_id(), target.name)
    record = compile_version(stack, store, version)
    after = submit(Client.from_local(stack), f"big/{unique('late')}.csv", body)

    assert before.output is not None
    assert after.output is not None
    assert before.output.engine == "lightgbm"
    assert compiled_yet is None
    assert record.status == "compiled", record.reason
    assert record.kernel == "bitvector"  # 31 leaves, numerical splits: the faster here
    assert "rows/s a thread here: bitvector" in record.reason
    assert after.output.engine == "compiled"
    np.testing.assert_array_equal(scored(s3, after), scored(s3, before))
    assert np.max(np.abs(scored(s3, after) - big.predict(rows))) <= 1e-12


def test_a_wrong_artifact_fails_the_gate_on_load_and_the_model_stays_on_lightgbm(
    local_stack: StackFactory,
    s3: Any,
    sqs: Any,
    binary_model: Any,
    multiclass_model: Any,
    file_rows: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stack = local_stack()
    store = ModelStore(aws.s3_client(REGION), stack.outputs["ModelBucketName"])
    # Another model's compiled forest (the same one, a tree short), stored as churn's.
    shorter = store.publish("shorter", _one_tree_less(binary_model), "shorter.txt")
    decoy_record = compile_version(stack, store, shorter)
    version = store.publish("churn", binary_model.model_to_string().encode(), "m.txt")
    wrong = EngineRecord(
        sha256=version.sha256,
        compiler=decoy_record.compiler,
        target=decoy_record.target,
        status="compiled",
        reason="injected by the test",
        created_at=decoy_record.created_at,
    )
    store.save_engine(wrong, store.artifact(decoy_record))
    x, body = file_rows

    note = submit(Client.from_local(stack), f"churn/{unique('gate')}.csv", body)

    assert note.output is not None
    assert note.output.engine == "lightgbm"
    assert np.max(np.abs(scored(s3, note) - binary_model.predict(x))) <= 1e-12
    record = store.engine(version.sha256, wrong.compiler, wrong.target)
    assert record is not None
    assert record.status == "refused"
    assert "failed the gate on load" in record.reason
    outputs = outputs_file(stack, tmp_path)
    assert main(["model", "list", "--name", "churn", "--outputs", str(outputs)]) == 0
    listed = capsys.readouterr().out
    assert "lightgbm (the compiled predictor failed the gate on load" in listed


def _one_tree_less(booster: Any) -> bytes:
    import lightgbm as lgb

    text = booster.model_to_string(num_iteration=booster.num_trees() - 1)
    return lgb.Booster(model_str=text).model_to_string().encode()


def test_the_stock_engine_can_be_forced(
    local_stack: StackFactory, s3: Any, sqs: Any, binary_model: Any, file_rows: Any
) -> None:
    stack = local_stack(settings={"predict_engine": "lightgbm"})
    store = ModelStore(aws.s3_client(REGION), stack.outputs["ModelBucketName"])
    version = store.publish("churn", binary_model.model_to_string().encode(), "m.txt")
    assert compile_version(stack, store, version).status == "compiled"

    note = submit(Client.from_local(stack), f"churn/{unique('forced')}.csv", file_rows[1])

    assert note.output is not None
    assert note.output.engine == "lightgbm"


def test_a_model_the_compiler_cannot_reproduce_is_refused_with_the_reason(
    local_stack: StackFactory, s3: Any, sqs: Any
) -> None:
    import lightgbm as lgb

    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 3))
    linear = lgb.train(
        {"objective": "regression", "linear_tree": True, "verbose": -1},
        lgb.Dataset(x, x[:, 0] * 2 + x[:, 1], feature_name=["a", "b", "c"]),
        num_boost_round=5,
    )
    stack = local_stack()
    store = ModelStore(aws.s3_client(REGION), stack.outputs["ModelBucketName"])
    version = store.publish("lin", linear.model_to_string().encode(), "lin.txt")

    record = compile_version(stack, store, version)
    body = b"a,b,c\n" + b"".join(f"{r[0]},{r[1]},{r[2]}\n".encode() for r in x[:50])
    note = submit(Client.from_local(stack), f"lin/{unique('lin')}.csv", body)

    assert record.status == "refused"
    assert "linear trees" in record.reason
    assert record.target == (compiler.host_target() or compiler.BASELINES["x86_64"]).name
    assert note.output is not None
    assert note.output.engine == "lightgbm"
    np.testing.assert_allclose(scored(s3, note), linear.predict(x[:50]), rtol=0, atol=1e-12)
