"""Output options as users spell them: metadata, Python values, and what a model can honour."""

from __future__ import annotations

import pytest

from pipeline.errors import BadOption
from pipeline.model_text import ModelInfo
from pipeline.options import InForce, ScoreOptions

BINARY = ModelInfo(
    feature_names=["age", "income", "score"],
    feature_types=["numerical"] * 3,
    objective="binary",
    num_class=1,
    num_trees=20,
)
MULTICLASS = BINARY.model_copy(update={"objective": "multiclass", "num_class": 3, "num_trees": 30})
REGRESSION = BINARY.model_copy(update={"objective": "regression"})


def test_metadata_sets_every_option_and_spaces_around_names_are_trimmed() -> None:
    options = ScoreOptions.from_metadata(
        {
            "columns": "id, age",
            "drop-columns": "ssn",
            "scores": "prediction,reasons:2, label",
            "threshold": "0.4",
            "num-iteration": "7",
            "max-bad-rows": "12",
            "model-version": "3",
        }
    )

    assert options == ScoreOptions(
        columns=["id", "age"],
        drop_columns=["ssn"],
        scores=["prediction", "reasons:2", "label"],
        threshold=0.4,
        num_iteration=7,
        max_bad_rows=12,
    )
    assert ScoreOptions.from_metadata(options.to_metadata()) == options


def test_a_files_options_override_the_models_key_by_key() -> None:
    defaults = ScoreOptions(columns=["id"], scores=["prediction", "reasons:3"], threshold=0.4)
    mine = ScoreOptions(scores=["label"])

    in_force = mine.over(defaults).in_force(BINARY)

    assert in_force == InForce(columns=["id"], scores=["label"], threshold=0.4)


def test_nothing_set_is_todays_output() -> None:
    assert ScoreOptions().in_force(BINARY) == InForce(
        columns=None,
        drop_columns=[],
        scores=["prediction"],
        threshold=0.5,
        num_iteration=None,
        max_bad_rows=0,
    )


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"scores": "prediction,shap"}, "unknown score kind 'shap'"),
        ({"scores": ""}, "option 'scores' is empty"),
        ({"scores": "reasons"}, "say how many reasons"),
        ({"scores": "reasons:0"}, "whole number of reasons from 1"),
        ({"scores": "leaf,leaf"}, "lists leaf more than once"),
        ({"threshold": "1.5"}, "option 'threshold' is '1.5'; it must be a number in [0, 1]"),
        ({"threshold": "nan"}, "option 'threshold' is 'nan'"),
        ({"threshold": "high"}, "option 'threshold' is 'high'"),
        ({"num-iteration": "0"}, "option 'num-iteration' is '0'; it must be a whole number"),
        ({"num-iteration": "2.5"}, "option 'num-iteration' is '2.5'"),
        ({"columns": "id,,age"}, "option 'columns': 'id,,age' has an empty column name"),
        ({"drop-columns": "a,a"}, "option 'drop-columns' names a more than once"),
        ({"max-bad-rows": "-1"}, "option 'max-bad-rows' is '-1'; it must be a whole number"),
    ],
)
def test_a_bad_spelling_is_named_with_its_option_and_value(
    metadata: dict[str, str], message: str
) -> None:
    with pytest.raises(BadOption) as caught:
        ScoreOptions.from_metadata(metadata)

    assert message in str(caught.value)
    assert caught.value.code == "bad_option"


@pytest.mark.parametrize(
    ("options", "model", "message"),
    [
        (ScoreOptions(num_iteration=21), BINARY, "'num-iteration' is 21; the model has 20"),
        (ScoreOptions(num_iteration=11), MULTICLASS, "the model has 10 iteration(s)"),
        (ScoreOptions(scores=["reasons:4"]), BINARY, "more reasons than the model's 3"),
        (ScoreOptions(scores=["reasons:1"]), MULTICLASS, "needs a model with one output"),
        (ScoreOptions(scores=["label"]), REGRESSION, "'label' needs a binary or multiclass"),
    ],
)
def test_what_the_model_cannot_do_is_refused(
    options: ScoreOptions, model: ModelInfo, message: str
) -> None:
    with pytest.raises(BadOption) as caught:
        options.in_force(model)

    assert message in str(caught.value)


def test_the_carried_columns_follow_columns_then_drop_columns() -> None:
    available = ["id", "age", "ssn", "income"]

    assert InForce().carried(available, "f") == available
    assert InForce(drop_columns=["ssn"]).carried(available, "f") == ["id", "age", "income"]
    assert InForce(columns=["income", "id"]).carried(available, "f") == ["income", "id"]
    assert InForce(columns=["id", "ssn"], drop_columns=["ssn"]).carried(available, "f") == ["id"]


def test_a_carried_column_the_file_lacks_is_named() -> None:
    with pytest.raises(BadOption, match=r"f: option 'columns' names 1 column\(s\) the file does "
                       r"not have: customer \(it has id, age\)"):  # fmt: skip
        InForce(columns=["id", "customer"]).carried(["id", "age"], "f")
    with pytest.raises(BadOption, match="option 'drop-columns' names 1 column"):
        InForce(drop_columns=["ssn"]).carried(["id", "age"], "f")
