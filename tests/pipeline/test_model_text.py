"""Reading a model's text without LightGBM gives what LightGBM itself says of the model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pipeline.errors import InvalidModel
from pipeline.model_text import describe


def _lightgbm_view(booster: Any) -> tuple[Any, ...]:
    dump = booster.dump_model(num_iteration=0)
    infos = dump["feature_infos"]
    categorical = [
        "categorical" if infos[name].get("values") else "numerical"
        for name in booster.feature_name()
    ]
    return (
        booster.feature_name(),
        categorical,
        dump["objective"].split(" ")[0],
        dump["num_class"],
        booster.num_trees(),
    )


@pytest.mark.parametrize("model", ["binary_model", "multiclass_model", "categorical_model"])
def test_the_text_says_what_lightgbm_says(model: str, request: pytest.FixtureRequest) -> None:
    booster = request.getfixturevalue(model)
    booster = booster[0] if isinstance(booster, tuple) else booster

    info = describe(booster.model_to_string().encode(), "m.txt")

    assert (
        info.feature_names,
        info.feature_types,
        info.objective,
        info.num_class,
        info.num_trees,
    ) == _lightgbm_view(booster)


def test_categorical_features_are_found_without_the_parameters_section(
    categorical_model: Any,
) -> None:
    text = categorical_model[0].model_to_string()
    without = text[: text.index("parameters:")]

    assert describe(without.encode(), "m.txt").feature_types == [
        "numerical",
        "categorical",
        "categorical",
    ]


def test_a_truncated_model_is_refused_saying_so(binary_model: Any) -> None:
    text = binary_model.model_to_string().encode()

    with pytest.raises(
        InvalidModel, match=r"m\.txt is not a whole LightGBM model: \d+ of its 25 trees"
    ):
        describe(text[: len(text) // 2], "m.txt")


def test_a_model_without_its_header_fields_names_them(binary_model: Any) -> None:
    text = binary_model.model_to_string()
    broken = "\n".join(
        line for line in text.splitlines() if not line.startswith(("objective=", "tree_sizes="))
    )

    with pytest.raises(InvalidModel, match="no objective, tree_sizes"):
        describe(broken.encode(), "m.txt")


def _resized(text: str) -> str:
    """``text`` with tree_sizes made to fit its blocks again, as after a careful hand edit."""
    head, _, rest = text.partition("\nTree=")
    trees, _, tail = ("Tree=" + rest).partition("end of trees")
    blocks = ["Tree=" + b for b in trees.split("Tree=") if b]
    sizes = " ".join(str(len(b.encode())) for b in blocks)
    head = "\n".join(
        f"tree_sizes={sizes}" if line.startswith("tree_sizes=") else line
        for line in head.splitlines()
    )
    return head + "\n" + "".join(blocks) + "end of trees" + tail


def _edit_first_tree(text: str, key: str, edit: Any) -> str:
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("Tree=0"))
    index = next(i for i in range(start, len(lines)) if lines[i].startswith(key + "="))
    values = lines[index].removeprefix(key + "=").split()
    lines[index] = f"{key}={' '.join(edit(values))}\n"
    return "".join(lines)


def _set(position: int, value: str) -> Any:
    def edit(values: list[str]) -> list[str]:
        values[position] = value
        return values

    return edit


@pytest.mark.parametrize(
    ("key", "edit", "reason"),
    [
        ("left_child", _set(1, "0"), "leads to split 0, which is reached twice"),
        ("right_child", _set(0, "-99"), "leads to leaf 98, which does not exist"),
        ("left_child", _set(0, "40"), "leads to split 40, which does not exist"),
        ("split_feature", _set(0, "99"), "split 0 is on feature 99, but the model has 4"),
        ("leaf_value", _set(2, "nan"), "leaf 2's value is nan"),
        ("threshold", _set(0, "0_5"), "threshold holds '0_5', which LightGBM does not read"),
        ("leaf_value", lambda v: v[:-1], r"\d+ leaf values for \d+ leaves"),
    ],
    ids=["loop", "leaf-minus-99", "no-such-split", "feature-99", "nan-leaf", "0_5", "short"],
)
def test_a_broken_tree_is_refused_naming_tree_and_split(
    binary_model: Any, key: str, edit: Any, reason: str
) -> None:
    text = _resized(_edit_first_tree(binary_model.model_to_string(), key, edit))

    with pytest.raises(InvalidModel, match=r"m\.txt: tree 0: .*" + reason):
        describe(text.encode(), "m.txt")


def test_a_leaf_edited_without_fixing_tree_sizes_is_refused(binary_model: Any) -> None:
    """LightGBM aborts the process that loads such a file (SIGABRT): refuse it first."""
    text = _edit_first_tree(binary_model.model_to_string(), "leaf_value", _set(0, "0.5"))

    with pytest.raises(InvalidModel, match="tree_sizes says"):
        describe(text.encode(), "m.txt")


def test_a_second_key_line_lightgbm_would_not_read_is_refused(binary_model: Any) -> None:
    text = binary_model.model_to_string().replace("shrinkage=", "leaf_value =1 2\nshrinkage=", 1)

    with pytest.raises(InvalidModel, match="is not a 'key=value' line"):
        describe(_resized(text).encode(), "m.txt")


def _trained(frame: Any, y: Any, **dataset: Any) -> Any:
    import lightgbm as lgb

    params = {"objective": "binary", "verbose": -1, "min_data_per_group": 5, "cat_smooth": 1}
    return lgb.train(params, lgb.Dataset(frame, y, **dataset), num_boost_round=5)


def _frames() -> dict[str, tuple[Any, dict[str, Any]]]:
    import pandas as pd

    rng = np.random.default_rng(1)
    n = 1500
    x = rng.normal(size=n)
    sizes = rng.choice(["S", "M", "L", "XL"], n)
    levels = rng.choice([10, 20, 30, 40], n)
    flag = rng.integers(0, 2, n)
    k = rng.integers(0, 5, n)
    return {
        "ordered-int": (
            pd.DataFrame(
                {
                    "x": x,
                    "level": pd.Categorical(levels, categories=[10, 20, 30, 40], ordered=True),
                }
            ),
            {},
        ),
        "ordered-str-after-a-flag": (
            pd.DataFrame(
                {
                    "flag": flag,
                    "size": pd.Categorical(sizes, categories=["S", "M", "L", "XL"], ordered=True),
                }
            ),
            {},
        ),
        "explicit-list": (
            pd.DataFrame({"x": x, "color": pd.Categorical(rng.choice(["r", "g", "b"], n)), "k": k}),
            {"categorical_feature": ["color", "k"]},
        ),
    }


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("ordered-int", {"level": [10, 20, 30, 40]}),
        ("ordered-str-after-a-flag", {"size": ["S", "M", "L", "XL"]}),
        ("explicit-list", {"color": ["b", "g", "r"]}),
    ],
)
def test_the_features_that_were_pandas_categories_are_found(
    kind: str, expected: dict[str, Any]
) -> None:
    frame, dataset = _frames()[kind]
    y = np.arange(len(frame)) % 3 == 0

    info = describe(_trained(frame, y, **dataset).model_to_string().encode(), "m.txt")

    assert info.pandas_categories == expected


def test_a_model_whose_category_columns_cannot_be_told_is_refused() -> None:
    """An ordered column whose last category never occurred, beside a plain 0..2 column."""
    import pandas as pd

    rng = np.random.default_rng(2)
    n = 1500
    a, b = rng.integers(0, 3, n), rng.choice(["S", "M", "L"], n)
    frame = pd.DataFrame(
        {"a": a, "b": pd.Categorical(b, categories=["S", "M", "L", "XL"], ordered=True)}
    )
    y = (a == 2) ^ (b == "S")

    with pytest.raises(
        InvalidModel, match=r"does not say which features they were: any of \[a\]; \[b\]"
    ):
        describe(_trained(frame, y).model_to_string().encode(), "m.txt")


def test_categories_beside_many_flag_columns_are_found_without_trying_every_assignment() -> None:
    """Every 0/1 column fits any category list's codes: 80 of them beside 8 category
    columns are more assignments than could ever be tried one by one."""
    import pandas as pd

    rng = np.random.default_rng(3)
    n = 2000
    columns: dict[str, Any] = {f"flag{i}": rng.integers(0, 2, n) for i in range(80)}
    columns |= {f"cat{j}": pd.Categorical(rng.choice(list("abc"), n)) for j in range(8)}
    frame = pd.DataFrame(columns)
    y = frame["flag0"] ^ (frame["cat0"] == "a")

    info = describe(_trained(frame, y).model_to_string().encode(), "m.txt")

    assert info.pandas_categories == {f"cat{j}": ["a", "b", "c"] for j in range(8)}
