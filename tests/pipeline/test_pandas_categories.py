"""Pandas categoricals of every kind, through a running stack: exactly as ``Booster.predict``
scores the DataFrame, in every format, on LightGBM and on the compiled forest."""

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

from pipeline import Client
from pipeline.scoring.engine import compiler
from tests.conftest import StackFactory, unique

ROWS = 600
#: Each kind of category column LightGBM's pandas path accepts, with the categories of
#: training and whether they are ordered (ordered ones are split on their codes as numbers).
KINDS: dict[str, tuple[list[Any], bool]] = {
    "level": ([10, 20, 30, 40], True),
    "color": (["red ", " blue", "green"], False),
    "size": (["S", "M", "L", "XL"], True),
    "zero": ([0.0, 1.0, 2.0], False),
    "flag": ([False, True], False),
    "mixed": ([1, "a", 2.5], False),
}
#: Values a file may hold besides the categories: unseen ones and missing cells.
UNSEEN: dict[str, list[Any]] = {
    "level": [50, None],
    "color": ["blue", "red", None],
    "size": ["XXL", None],
    "zero": [3.0, None],
    "flag": [None],
    "mixed": ["b", None],
}


def _frame(rows: int, seed: int, unseen: bool) -> tuple[Any, dict[str, list[Any]]]:
    """A DataFrame with the model's categories, and the plain values it was built from."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    values: dict[str, list[Any]] = {"x": rng.normal(size=rows).tolist()}
    columns: dict[str, Any] = {"x": values["x"]}
    for name, (categories, ordered) in KINDS.items():
        pool = categories + (UNSEEN[name] if unseen else [])
        picked = [pool[i] for i in rng.integers(0, len(pool), rows)]
        values[name] = picked
        known = [v if v in categories else None for v in picked]  # unseen: NaN, as in LightGBM
        columns[name] = pd.Categorical(known, categories=categories, ordered=ordered)
    return pd.DataFrame(columns), values


@pytest.fixture(scope="module")
def category_model() -> Any:
    import lightgbm as lgb

    frame, values = _frame(4000, 1, unseen=False)
    rng = np.random.default_rng(2)
    signal = (
        np.array(values["x"])
        + np.array([v in (30, 40) for v in values["level"]])
        + np.array([v == "red " for v in values["color"]])
        - np.array([v in ("L", "XL") for v in values["size"]])
        + np.array([v == 0.0 for v in values["zero"]])
        + np.array(values["flag"], dtype=float)
        - np.array([v == "a" for v in values["mixed"]])
    )
    y = (signal + rng.normal(scale=0.3, size=len(signal)) > 0.5).astype(int)
    return lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_per_group": 5, "cat_smooth": 1},
        lgb.Dataset(frame, y),
        num_boost_round=30,
    )


@pytest.fixture(scope="module")
def explicit_model() -> Any:
    """A pandas categorical beside a plain integer column, both named in categorical_feature."""
    import lightgbm as lgb
    import pandas as pd

    rng = np.random.default_rng(3)
    n = 4000
    color = rng.choice(["r", "g", "b"], n)
    k = rng.integers(0, 5, n)
    x = rng.normal(size=n)
    frame = pd.DataFrame({"x": x, "color": pd.Categorical(color), "k": k})
    y = ((color == "r") ^ (k > 2) ^ (x > 0)).astype(int)
    return lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_per_group": 5, "cat_smooth": 1},
        lgb.Dataset(frame, y, categorical_feature=["color", "k"]),
        num_boost_round=20,
    )


def _cell(name: str, value: Any, row: int) -> str:
    if value is None:
        return ""
    if name == "zero" and value == 0.0 and row % 2:
        return "-0.0"  # pandas' category 0.0, as 0.0 is
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _file(kind: str, values: dict[str, list[Any]]) -> bytes:
    names = list(values)
    rows = len(values[names[0]])
    if kind == "csv":
        lines = [",".join(names)]
        lines += [",".join(_cell(n, values[n][i], i) for n in names) for i in range(rows)]
        return ("\n".join(lines) + "\n").encode()
    if kind == "jsonl":
        records = [{n: values[n][i] for n in names} for i in range(rows)]
        for i, record in enumerate(records):
            if record.get("zero") == 0.0 and i % 2:
                record["zero"] = -0.0
        return b"".join(json.dumps(r).encode() + b"\n" for r in records)
    columns = {
        n: pa.array([None if v is None else str(v) for v in vs], pa.string())
        if n == "mixed"
        else pa.array(vs)
        for n, vs in values.items()
    }
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out)
    return out.getvalue()


def _predictions(client: Client, kind: str, note: Any) -> np.ndarray:
    assert note.status == "succeeded", note.error
    body = client.s3.get_object(Bucket=note.output.bucket, Key=note.output.key)["Body"].read()
    if kind == "csv":
        return pa_csv.read_csv(io.BytesIO(body)).column("prediction").to_numpy()
    if kind == "jsonl":
        return np.array([json.loads(line)["prediction"] for line in body.splitlines()])
    return pq.read_table(io.BytesIO(body)).column("prediction").to_numpy()


@pytest.fixture(scope="module")
def stacks(local_stack_module: StackFactory) -> Iterator[dict[str, Client]]:
    clients = {
        "lightgbm": Client.from_local(local_stack_module(settings={"predict_engine": "lightgbm"})),
        "compiled": Client.from_local(local_stack_module(settings={"engine_recheck_seconds": 0})),
    }
    yield clients
    for client in clients.values():
        client.close()


def _compiled(client: Client, version: Any, timeout: float = 120) -> str:
    """The version's engine status on a stack, once its compile has finished."""
    target = compiler.host_target()
    assert target is not None
    client.request_compile(version)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = client.models.engine(version.sha256, compiler.compiler_id(), target.name)
        if record is not None:
            return f"{record.status}: {record.reason}"
        time.sleep(0.2)
    raise AssertionError("not compiled in time")


@pytest.mark.parametrize("engine", ["lightgbm", "compiled"])
def test_every_kind_of_pandas_category_scores_as_the_dataframe_does(
    stacks: dict[str, Client], category_model: Any, explicit_model: Any, engine: str
) -> None:
    """Ordered integer and string categories, names with spaces, -0.0, booleans, mixed
    kinds, and a pandas categorical beside an explicit categorical_feature list."""
    import pandas as pd

    client = stacks[engine]
    frame, values = _frame(ROWS, 7, unseen=True)
    rng = np.random.default_rng(8)
    color, k, x = rng.choice(["r", "g", "b", "y"], ROWS), rng.integers(0, 7, ROWS), frame["x"]
    explicit_frame = pd.DataFrame(
        {
            "x": x,
            "color": pd.Categorical([c if c != "y" else None for c in color], ["b", "g", "r"]),
            "k": k,
        }
    )
    explicit_values = {"x": list(x), "color": list(color), "k": [int(v) for v in k]}
    cases = [
        (category_model, frame, values, unique("kinds")),
        (explicit_model, explicit_frame, explicit_values, unique("explicit")),
    ]
    for booster, data, plain, name in cases:
        version = client.models.publish(name, booster.model_to_string().encode(), "m.txt")
        if engine == "compiled":
            verdict = _compiled(client, version)
            leaves = sum(
                booster.dump_model()["tree_info"][t]["num_leaves"]
                for t in range(booster.num_trees())
            )
            assert verdict.startswith("compiled"), verdict
            assert f"reaching {leaves} of {leaves} leaves" in verdict
        expected = booster.predict(data)
        for kind in ("csv", "jsonl", "parquet"):
            note = client.submit(_file(kind, plain), model=name, key=f"f.{kind}", timeout=120)
            got = _predictions(client, kind, note)

            assert note.output is not None
            assert note.output.engine == engine, (name, kind)
            assert np.max(np.abs(got - expected)) <= 1e-12, (name, kind)


@pytest.mark.parametrize("engine", ["lightgbm", "compiled"])
def test_raw_scores_leaves_and_contributions_of_categories_match_the_dataframes(
    stacks: dict[str, Client], category_model: Any, engine: str
) -> None:
    """The SHAP kernel decides category splits as LightGBM does, on the values a file holds."""
    client = stacks[engine]
    frame, values = _frame(ROWS, 9, unseen=True)
    name = unique("explained")
    version = client.models.publish(name, category_model.model_to_string().encode(), "m.txt")
    if engine == "compiled":
        assert _compiled(client, version).startswith("compiled")

    note = client.submit(
        _file("csv", values), model=name, key="f.csv", timeout=120, scores="raw_score,leaf,contrib"
    )

    assert note.status == "succeeded", note.error
    body = client.s3.get_object(Bucket=note.output.bucket, Key=note.output.key)["Body"].read()
    table = pa_csv.read_csv(io.BytesIO(body))
    raw = table.column("raw_score").to_numpy()
    assert np.max(np.abs(raw - category_model.predict(frame, raw_score=True))) <= 1e-12
    trees = category_model.num_trees()
    leaves = np.column_stack([table.column(f"leaf_{t}").to_numpy() for t in range(trees)])
    assert np.array_equal(leaves, category_model.predict(frame, pred_leaf=True))
    names = [f"contrib_{f}" for f in [*category_model.feature_name(), "bias"]]
    contributions = np.column_stack([table.column(n).to_numpy() for n in names])
    expected = category_model.predict(frame, pred_contrib=True)
    assert np.max(np.abs(contributions - expected)) <= 1e-9
