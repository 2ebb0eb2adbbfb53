import numpy as np
import pyarrow as pa
import pytest

from pipeline.errors import BadValue, SchemaMismatch
from pipeline.scoring import features


def batch(**columns: list[str | None]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({k: pa.array(v, pa.string()) for k, v in columns.items()})


def test_text_becomes_float64_in_feature_order() -> None:
    b = batch(id=["1", "2"], y=["0.1", "1e3"], x=[" -2 ", "0.30000000000000004"])

    matrix = features.feature_matrix(b, ["x", "y"], first_row=1, where="f.csv")

    assert matrix.dtype == np.float64
    assert matrix.flags.f_contiguous
    np.testing.assert_array_equal(matrix, [[-2.0, 0.1], [0.30000000000000004, 1000.0]])


@pytest.mark.parametrize("token", ["", "NA", "N/A", "NaN", "nan", "null", "None", "  "])
def test_missing_values_become_nan(token: str) -> None:
    matrix = features.feature_matrix(batch(x=[token, "1"]), ["x"], first_row=1, where="f")
    assert np.isnan(matrix[0, 0])
    assert matrix[1, 0] == 1.0


def test_a_bad_value_is_reported_by_column_and_data_row() -> None:
    b = batch(x=["1", "2", "3"], y=["0", "abc", "2"])

    with pytest.raises(BadValue) as caught:
        features.feature_matrix(b, ["x", "y"], first_row=1001, where="s3://in/m/f.csv")

    assert str(caught.value) == "s3://in/m/f.csv: column 'y', row 1002: 'abc' is not a number"


def test_every_missing_feature_is_named() -> None:
    with pytest.raises(SchemaMismatch, match=r"lacks 2 feature column\(s\).*: b, d"):
        features.check_columns(["a", "c", "extra"], ["a", "b", "c", "d"], ["prediction"], "f")


def test_an_input_column_named_like_the_output_is_refused() -> None:
    with pytest.raises(SchemaMismatch, match="already has column"):
        features.check_columns(["a", "prediction"], ["a"], ["prediction"], "f")
