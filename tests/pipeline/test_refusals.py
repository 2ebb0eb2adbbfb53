"""What a running stack refuses, and how fast: broken models at publish, models a worker
cannot load, inputs past the limits. Each is answered at once with its reason, never
retried until its deliveries are exhausted; values LightGBM scores are scored."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from pipeline import Client, InvalidModel
from pipeline.errors import UnroutableKey
from pipeline.model_text import describe
from pipeline.scoring.engine import compiler
from pipeline.stores.model_store import ModelVersion
from tests.conftest import StackFactory, unique
from tests.pipeline.test_model_text import _edit_first_tree, _resized, _set

FEATURES = ["age", "income", "score", "balance"]


@pytest.fixture(scope="module")
def client(local_stack_module: StackFactory) -> Iterator[Client]:
    with Client.from_local(local_stack_module()) as client:
        yield client


@pytest.fixture
def model_text(binary_model: Any) -> str:
    return str(binary_model.model_to_string())


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda t: _edit_first_tree(t, "leaf_value", _set(0, "0.5")), "tree_sizes says"),
        (lambda t: _resized(_edit_first_tree(t, "left_child", _set(1, "0"))), "a loop"),
        (lambda t: _resized(_edit_first_tree(t, "split_feature", _set(0, "99"))), "feature 99"),
        (lambda t: _resized(_edit_first_tree(t, "right_child", _set(0, "-99"))), "leaf 98"),
        (lambda t: _resized(_edit_first_tree(t, "leaf_value", _set(1, "nan"))), "is nan"),
        (lambda t: _resized(_edit_first_tree(t, "threshold", _set(0, "0_5"))), "'0_5'"),
    ],
    ids=["tree-sizes", "loop", "feature-99", "child-minus-99", "nan-leaf", "0_5"],
)
def test_a_broken_model_is_refused_at_publish_with_the_reason(
    client: Client, model_text: str, edit: Any, reason: str
) -> None:
    name = unique("broken")

    with pytest.raises(InvalidModel, match=reason):
        client.publish_model(edit(model_text).encode(), name=name)

    assert client.models.versions(name) == []


def _store_unchecked(client: Client, name: str, good: str, stored: str) -> None:
    """A version written as an older publisher (or a hand) could have: no checks at all."""
    from pipeline.messages import utc_now

    bucket = client.models.bucket
    record = ModelVersion(
        name=name,
        version=1,
        sha256="0" * 64,
        size=len(stored),
        published_at=utc_now(),
        info=describe(good.encode(), "m.txt"),
    )
    client.s3.put_object(Bucket=bucket, Key=f"{name}/000001/model.txt", Body=stored.encode())
    client.s3.put_object(
        Bucket=bucket, Key=f"{name}/000001/model.json", Body=record.model_dump_json().encode()
    )


def _rows(n: int) -> tuple[bytes, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(n, len(FEATURES)))
    lines = [",".join(FEATURES)] + [",".join(repr(float(v)) for v in row) for row in x]
    return ("\n".join(lines) + "\n").encode(), x


def test_a_model_a_worker_cannot_load_fails_each_file_at_once(
    client: Client, model_text: str
) -> None:
    """A loop in a tree (prediction would never end), or a size LightGBM aborts on."""
    looped = _resized(_edit_first_tree(model_text, "left_child", _set(1, "0")))
    aborts = _edit_first_tree(model_text, "leaf_value", _set(0, "0.5"))
    data, _ = _rows(20)
    for stored, reason in ((looped, "a loop"), (aborts, "tree_sizes says")):
        name = unique("unloadable")
        _store_unchecked(client, name, model_text, stored)
        started = time.monotonic()

        note = client.submit(data, model=name, key="f.csv", timeout=60)

        assert note.status == "failed"
        assert note.error is not None
        assert (note.error.code, note.run) == ("invalid_model", 0)
        assert reason in note.error.message
        assert time.monotonic() - started < 30  # one delivery, not five with backoff


def test_integers_past_two_to_the_53_and_1e400_score_as_lightgbm_scores_them(
    client: Client, model_text: str, binary_model: Any
) -> None:
    name = unique("big-ints")
    client.publish_model(model_text.encode(), name=name)
    big = np.array([2**53 + 1, 2**62 + 7, -(2**60) - 3, 5], dtype=np.int64)
    x = np.column_stack([big, np.ones(4), np.zeros(4), np.full(4, 0.5)])
    as_lightgbm = binary_model.predict(x.astype(np.float64))
    table = pa.table({"age": pa.array(big), **{f: x[:, j] for j, f in enumerate(FEATURES) if j}})
    out = io.BytesIO()
    pq.write_table(table, out)
    records = [
        json.dumps({"age": int(age), "income": 1, "score": 0, "balance": 0.5}) for age in big
    ]
    records.append('{"age": 1e400, "income": 1, "score": 0, "balance": 0.5}')
    infinite = binary_model.predict(np.array([[np.inf, 1.0, 0.0, 0.5]]))

    parquet = client.submit(out.getvalue(), model=name, key="big.parquet", timeout=60)
    jsonl = client.submit(("\n".join(records) + "\n").encode(), model=name, key="b.jsonl")

    assert parquet.status == "succeeded", parquet.error
    assert jsonl.status == "succeeded", jsonl.error
    assert parquet.output is not None
    assert jsonl.output is not None
    body = client.s3.get_object(Bucket=parquet.output.bucket, Key=parquet.output.key)["Body"]
    got = pq.read_table(io.BytesIO(body.read())).column("prediction").to_numpy()
    np.testing.assert_array_equal(got, as_lightgbm)
    body = client.s3.get_object(Bucket=jsonl.output.bucket, Key=jsonl.output.key)["Body"]
    lines = [json.loads(line)["prediction"] for line in body.read().splitlines()]
    np.testing.assert_array_equal(lines, [*as_lightgbm, *infinite])


@pytest.mark.parametrize(
    ("key", "body", "code", "message"),
    [
        (
            "nested.jsonl",
            b'{"age": 1, "income": 2, "score": 3, "balance": 4}\n'
            b'{"age": {"years": 1}, "income": 2, "score": 3, "balance": 4}\n',
            "bad_value",
            "line 2, key 'age': a JSON object",
        ),
        ("one-line.csv", b"7" * 3_000_000, "unreadable_file", "line 1 is longer than"),
        (
            "long-row.csv",
            b"age,income,score,balance\n1,2,3," + b"4" * 3_000_000 + b"\n",
            "unreadable_file",
            "line 2 is longer than 1,048,576 bytes",
        ),
        (
            "wide.csv",
            (",".join(f"column_{i}" for i in range(200_000)) + "\n").encode(),
            "unreadable_file",
            "line 1 is longer than 1,048,576 bytes",
        ),
        (
            "open-quote.csv",
            b'age,income,score,balance\n1,2,3,4\n1,2,3,"4\n5,6,7,8\n',
            "unreadable_file",
            "line 3, column 'balance': a quoted field opens there and never closes",
        ),
    ],
    ids=["nested-json", "one-200mb-style-line", "long-row", "200k-columns", "open-quote"],
)
def test_inputs_that_exhausted_their_deliveries_are_answered_at_once(
    client: Client, model_text: str, key: str, body: bytes, code: str, message: str
) -> None:
    name = unique("inputs")
    client.publish_model(model_text.encode(), name=name)
    started = time.monotonic()

    note = client.submit(body, model=name, key=key, timeout=60)

    assert note.status == "failed"
    assert note.error is not None
    assert note.error.code == code, note.error.message
    assert message in note.error.message
    assert note.run == 0
    assert time.monotonic() - started < 30


def test_a_compile_past_its_budget_is_stopped_and_the_model_stays_on_lightgbm(
    local_stack: StackFactory,
) -> None:
    import lightgbm as lgb

    rng = np.random.default_rng(4)
    x = rng.normal(size=(20_000, 8))
    slow = lgb.train(  # some seconds to compile, far past a budget of 0.5 s
        {"objective": "binary", "num_leaves": 63, "verbose": -1},
        lgb.Dataset(x, (x[:, :3].sum(axis=1) > 0).astype(int)),
        num_boost_round=120,
    )
    stack = local_stack(settings={"compile_timeout_seconds": 0.5, "engine_recheck_seconds": 0})
    target = compiler.host_target()
    assert target is not None
    with Client.from_local(stack) as client:
        version = client.publish_model(slow.model_to_string().encode(), name="slow")
        deadline = time.monotonic() + 60
        record = None
        while record is None and time.monotonic() < deadline:
            record = client.models.engine(version.sha256, compiler.compiler_id(), target.name)
            time.sleep(0.2)
        out = io.BytesIO()
        pa_csv.write_csv(pa.table({f"Column_{j}": x[:50, j] for j in range(8)}), out)
        note = client.submit(out.getvalue(), model="slow", key="f.csv", timeout=60)

    assert record is not None
    assert record.status == "refused"
    assert "longer than its budget of 0.5 s" in record.reason
    assert note.status == "succeeded", note.error
    assert note.output is not None
    assert note.output.engine == "lightgbm"


def test_a_compile_renews_its_claim_so_no_second_compile_starts(client: Client) -> None:
    store, sha = client.models, unique("sha")
    assert store.claim_compile(sha, "gen", "cpu", stale_seconds=0.6)

    with store.holding_claim(sha, "gen", "cpu", renew_seconds=0.1):
        time.sleep(1.0)
        renewed = store.claim_compile(sha, "gen", "cpu", stale_seconds=0.6)
    time.sleep(1.0)
    stale = store.claim_compile(sha, "gen", "cpu", stale_seconds=0.6)

    assert not renewed
    assert stale


def test_an_error_about_thousands_of_long_names_is_still_announced(client: Client) -> None:
    """3,000 features of 100 characters, a file lacking them all: a 360 KB message before."""
    import lightgbm as lgb

    names = [f"{'feature_with_a_rather_long_descriptive_name_':0<95}{i:05d}" for i in range(3000)]
    x = np.random.default_rng(1).normal(size=(200, len(names)))
    wide = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4},
        lgb.Dataset(x, (x[:, 0] > 0).astype(int), feature_name=names),
        num_boost_round=2,
    )
    name = unique("wide")
    client.models.publish(name, wide.model_to_string().encode(), "wide.txt")

    note = client.submit(b"id\n1\n", model=name, key="lacking.csv", timeout=60)

    assert note.error is not None
    assert note.error.code == "schema_mismatch"
    assert "lacks 3000 feature column(s)" in note.error.message
    assert "and 2980 more" in note.error.message
    assert len(note.model_dump_json()) < 64 * 1024


def test_a_stray_message_on_the_topic_does_not_end_a_listener(
    client: Client, model_text: str
) -> None:
    name = unique("stray")
    client.publish_model(model_text.encode(), name=name)
    listening = client.notifications(timeout=60)
    client.sns.publish(TopicArn=client.outputs["NotificationTopicArn"], Message="{}")
    data, _ = _rows(5)
    sent = client.submit(data, model=name, key="after.csv", wait=False)

    seen = next(n for n in listening if n.input is not None and n.input.key == sent.key)

    assert seen.status == "succeeded"


def test_a_key_too_long_for_its_output_is_answered_at_intake(
    client: Client, model_text: str
) -> None:
    """Uploaded by another tool, it fails at once; ``Client.submit`` refuses it before uploading."""
    name = unique("long")
    client.publish_model(model_text.encode(), name=name)
    tail = "k" * (1000 - len(name) - 1)
    data, _ = _rows(3)

    with pytest.raises(UnroutableKey, match="keep input keys to 982 bytes"):
        client.submit(data, model=name, key=tail)
    listening = client.notifications(timeout=60)
    key = f"{name}/{tail}"
    client.s3.put_object(Bucket=client.outputs["InputBucketName"], Key=key, Body=data)
    note = next(n for n in listening if n.input is not None and n.input.key == key)

    assert note.error is not None
    assert note.error.code == "unroutable_key"


def test_a_header_only_csv_succeeds_with_no_rows_with_or_without_its_line_end(
    client: Client, model_text: str
) -> None:
    name = unique("header")
    client.publish_model(model_text.encode(), name=name)

    notes = [
        client.submit(b"age,income,score,balance" + end, model=name, key=f"h{i}.csv")
        for i, end in enumerate((b"\n", b""))
    ]

    assert [(n.status, n.output.rows if n.output else None) for n in notes] == [
        ("succeeded", 0),
        ("succeeded", 0),
    ]
