"""Reading a model's text without LightGBM gives what LightGBM itself says of the model."""

from __future__ import annotations

from typing import Any

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
