import numpy as np
import pyarrow as pa
import pytest

from pipeline.errors import BadValue, SchemaMismatch
from pipeline.scoring import features
from pipeline.scoring.features import Feature


def batch(**columns: list[str | None]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({k: pa.array(v, pa.string()) for k, v in columns.items()})


def test_text_becomes_float64_in_feature_order() -> None:
    b = batch(id=["1", "2"], y=["0.1", "1e3"], x=[" -2 ", "0.30000000000000004"])

    matrix = features.feature_matrix(b, [Feature("x"), Feature("y")], first_row=1, where="f.csv")

    assert matrix.dtype == np.float64
    assert matrix.flags.f_contiguous
    np.testing.assert_array_equal(matrix, [[-2.0, 0.1], [0.30000000000000004, 1000.0]])


@pytest.mark.parametrize("token", ["", "NA", "N/A", "NaN", "nan", "null", "None", "  "])
def test_missing_values_become_nan(token: str) -> None:
    matrix = features.feature_matrix(batch(x=[token, "1"]), [Feature("x")], first_row=1, where="f")
    assert np.isnan(matrix[0, 0])
    assert matrix[1, 0] == 1.0


def test_a_bad_value_is_reported_by_column_and_data_row() -> None:
    b = batch(x=["1", "2", "3"], y=["0", "abc", "2"])

    with pytest.raises(BadValue) as caught:
        features.feature_matrix(
            b, [Feature("x"), Feature("y")], first_row=1001, where="s3://in/m/f.csv"
        )

    assert str(caught.value) == "s3://in/m/f.csv: column 'y', row 1002: 'abc' is not a number"


def test_every_missing_feature_is_named() -> None:
    with pytest.raises(SchemaMismatch, match=r"lacks 2 feature column\(s\).*: b, d"):
        features.check_columns(["a", "c", "extra"], ["a", "b", "c", "d"], "f")


def test_typed_columns_are_cast_and_bools_count_as_numbers() -> None:
    b = pa.RecordBatch.from_pydict(
        {
            "i": pa.array([1, None], pa.int32()),
            "f": pa.array([0.5, 2.0], pa.float32()),
            "b": pa.array([True, False]),
        }
    )
    matrix = features.feature_matrix(b, [Feature("i"), Feature("f"), Feature("b")], 1, "f")
    np.testing.assert_array_equal(matrix, [[1.0, 0.5, 1.0], [np.nan, 2.0, 0.0]])


def test_a_column_of_another_kind_is_refused_by_type() -> None:
    b = pa.RecordBatch.from_pydict({"t": pa.array([[1], [2]])})
    with pytest.raises(
        BadValue, match="column 't' has type list<item: int64>, which is not a number"
    ):
        features.feature_matrix(b, [Feature("t")], 1, "f")


def test_categories_become_training_codes_and_unseen_values_missing() -> None:
    color = Feature("color", ("blue", "green", "red"))
    b = batch(color=["red", "blue", "purple", "", None, "green"])

    matrix = features.feature_matrix(b, [color], 1, "f")

    np.testing.assert_array_equal(matrix[:, 0], [2, 0, np.nan, np.nan, np.nan, 1])


def test_string_categories_match_their_text_exactly_spaces_and_all() -> None:
    """pandas tells ``" blue"`` from ``"blue"``: so does the lookup."""
    color = Feature("color", ("red ", " blue", "blue"))
    b = batch(color=["red ", "red", " blue", "blue", "NA"])

    matrix = features.feature_matrix(b, [color], 1, "f")

    np.testing.assert_array_equal(matrix[:, 0], [0, np.nan, 1, 2, np.nan])


def test_negative_zero_is_the_category_zero() -> None:
    zero = Feature("z", (0.0, 1.0))
    from_text = features.feature_matrix(batch(z=["-0.0", "0", "1"]), [zero], 1, "f")
    from_floats = features.feature_matrix(
        pa.RecordBatch.from_pydict({"z": pa.array([-0.0, 0.0, 1.0])}), [zero], 1, "f"
    )
    np.testing.assert_array_equal(from_text[:, 0], [0, 0, 1])
    np.testing.assert_array_equal(from_floats[:, 0], [0, 0, 1])


def test_boolean_and_mixed_categories_match_as_pandas_does() -> None:
    flag = Feature("flag", (False, True))
    mixed = Feature("m", (1, "a", 2.5))
    b = batch(flag=["True", "false", "TRUE", "yes"], m=["1.0", "a", "2.5", "b"])

    matrix = features.feature_matrix(b, [flag, mixed], 1, "f")
    typed = features.feature_matrix(
        pa.RecordBatch.from_pydict({"flag": pa.array([True, False, None, True])}), [flag], 1, "f"
    )

    np.testing.assert_array_equal(matrix[:, 0], [1, 0, 1, np.nan])
    np.testing.assert_array_equal(matrix[:, 1], [0, 1, 2, np.nan])
    np.testing.assert_array_equal(typed[:, 0], [1, 0, np.nan, 1])


def test_a_nested_value_is_not_a_category_and_says_where() -> None:
    color = Feature("color", ("blue", "red"))
    b = pa.RecordBatch.from_pydict({"color": pa.array([None, {"a": 1}])})

    with pytest.raises(BadValue, match=r"column 'color', row 12: a struct<a: int64> value"):
        features.feature_matrix(b, [color], 11, "f")


def test_integers_beyond_two_to_the_53_round_as_lightgbm_rounds_them() -> None:
    big = [2**53 + 1, 2**63 - 1, -(2**62) - 1]
    b = pa.RecordBatch.from_pydict({"x": pa.array(big, pa.int64())})

    matrix = features.feature_matrix(b, [Feature("x")], 1, "f")

    np.testing.assert_array_equal(matrix[:, 0], np.array(big, dtype=np.int64).astype(np.float64))


def test_numeric_categories_match_by_value_from_text_or_numbers() -> None:
    size = Feature("size", (1, 2, 3))
    from_text = features.feature_matrix(batch(size=["3", "1.0", "7", ""]), [size], 1, "f")
    from_ints = features.feature_matrix(
        pa.RecordBatch.from_pydict({"size": pa.array([3, 1, 7, None])}), [size], 1, "f"
    )
    np.testing.assert_array_equal(from_text[:, 0], [2, 0, np.nan, np.nan])
    np.testing.assert_array_equal(from_ints[:, 0], [2, 0, np.nan, np.nan])


def test_dictionary_columns_from_parquet_are_decoded() -> None:
    color = Feature("color", ("blue", "red"))
    b = pa.RecordBatch.from_pydict({"color": pa.array(["red", "blue"]).dictionary_encode()})
    np.testing.assert_array_equal(features.feature_matrix(b, [color], 1, "f")[:, 0], [1, 0])
