"""Matching a file's columns to a model's features and turning them into numbers.

Features are matched by name to ``Booster.feature_name()``; other columns pass
through untouched. Values become float64, never float32: casting changes some
LightGBM predictions by up to 0.06. Empty cells and the usual spellings of a
missing value become NaN, which LightGBM treats as missing.

Features that were pandas ``category`` columns in training carry their
categories (``pandas_categorical`` in the model file; which features they
were is worked out in ``pipeline.model_text``). A file holds the category
values themselves (``"red"``, ``"S"``, ``10``); they become the category's
code exactly as LightGBM's pandas path makes them, ordered columns included,
and a value not among the categories becomes NaN, as it does there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import BadOption, BadValue, SchemaMismatch, names_list

MISSING_TOKENS = ("", "NA", "N/A", "NaN", "nan", "NAN", "null", "NULL", "None", "none")
_MISSING = pa.array(MISSING_TOKENS, pa.string())
_SHOWN_VALUE_CHARS = 40
_STRING = pa.string()
#: A number Arrow parses from text (decimal, exponent, inf, nan; no hex).
_NUMBER_PATTERN = r"^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)$"


@dataclass(frozen=True)
class Feature:
    name: str
    #: Training categories of a pandas categorical feature, else None.
    categories: tuple[str | int | float | bool, ...] | None = None
    #: What training saw (the model's ``feature_infos``): ``[min:max]`` for a numerical
    #: feature, the category codes ``1:4:7`` for a categorical one, ``none`` if unused.
    info: str = "none"

    @property
    def training_range(self) -> tuple[float, float] | None:
        if not (self.info.startswith("[") and self.info.endswith("]")):
            return None
        low, _, high = self.info[1:-1].partition(":")
        try:
            return float(low), float(high)
        except ValueError:
            return None

    @property
    def training_codes(self) -> frozenset[float] | None:
        """The category codes training saw, for a categorical feature."""
        if self.info == "none" or self.info.startswith("["):
            return None
        try:
            return frozenset(float(code) for code in self.info.split(":"))
        except ValueError:
            return None


def missing_cells(column: pa.Array) -> npt.NDArray[np.bool_]:
    """Which cells are missing: null, or text that spells a missing value."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if _is_text(column):
        column = _without_missing_tokens(column)
    return pc.is_null(column).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def check_columns(columns: Sequence[str], features: Sequence[str], where: str) -> None:
    """Refuse a file that lacks features."""
    present = set(columns)
    missing = [name for name in features if name not in present]
    if missing:
        raise SchemaMismatch(
            f"{where} lacks {len(missing)} feature column(s) the model needs: "
            f"{names_list(missing)} (the model has {len(features)} features: "
            f"{names_list(features)})"
        )


def check_no_outputs(
    batch: pa.RecordBatch,
    outputs: Sequence[str],
    carried: Sequence[str] | None,
    first_row: int,
    where: str,
) -> None:
    """Refuse a record that already has a field the output adds, and would keep.

    The header check covers CSV and Parquet; a JSON lines record far into the
    file can bring such a field of its own, and would get it twice.
    ``carried``: the fields kept (None: every one).
    """
    for name in outputs:
        if name in batch.schema.names and (carried is None or name in carried):
            present = pc.is_valid(batch.column(name))
            index = pc.index(present, True).as_py()
            row = first_row + (index if index >= 0 else 0)
            raise BadOption(
                f"{where}: row {row} already has a field named {name!r}, which the output "
                "adds; leave it out with option 'drop-columns', or rename it",
                row=row,
            )


def unreadable(column: pa.Array, feature: Feature) -> tuple[npt.NDArray[np.bool_], str]:
    """Which cells of a feature's column cannot be read, and why (the set-aside path).

    A number is unreadable when it is neither missing nor a number; a
    category when it is a nested value (an object or list); a category among
    numeric ones when it is not a number. Found only after the fast path
    refused the column.
    """
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    categories = feature.categories
    textual = categories is not None and any(isinstance(c, str | bool) for c in categories)
    if not (_is_text(column) or pa.types.is_integer(column.type)
            or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type)):  # fmt: skip
        return pc.is_valid(column).to_numpy(zero_copy_only=False), "not a single value"
    if textual or not _is_text(column):
        return np.zeros(len(column), dtype=bool), ""
    present = ~missing_cells(column)
    numbers = pc.is_valid(_lenient_float64(column)).to_numpy(zero_copy_only=False)
    return present & ~numbers, "not a number"


def feature_matrix(
    batch: pa.RecordBatch, features: Sequence[Feature], first_row: int, where: str
) -> npt.NDArray[np.float64]:
    """The batch's features as a column-ordered float64 matrix.

    ``first_row`` is the 1-based data row number of the batch's first row, so a
    bad value is reported where the user can find it.
    """
    matrix = np.empty((batch.num_rows, len(features)), dtype=np.float64, order="F")
    names = batch.schema.names
    for j, feature in enumerate(features):
        if feature.name in names:
            column = batch.column(feature.name)
        else:  # a record-oriented file whose records in this batch all lack the key
            column = pa.nulls(batch.num_rows, pa.float64())
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if feature.categories is None:
            matrix[:, j] = _as_float64(column, feature.name, first_row, where)
        else:
            matrix[:, j] = _category_codes(column, feature, first_row, where)
    return matrix


def _is_text(column: pa.Array) -> bool:
    return bool(pa.types.is_string(column.type) or pa.types.is_large_string(column.type))


def _without_missing_tokens(column: pa.Array) -> pa.Array:
    trimmed = pc.utf8_trim_whitespace(column)
    return pc.if_else(pc.is_in(trimmed, value_set=_MISSING), None, trimmed)


def _as_float64(column: pa.Array, name: str, first_row: int, where: str) -> npt.NDArray[np.float64]:
    if _is_text(column):
        try:  # the common case, plain numbers, in one pass
            return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]
        except pa.ArrowInvalid:
            column = _without_missing_tokens(column)
    try:
        # Integers beyond 2**53 round to the nearest double, as LightGBM's own
        # conversion of an int64 column does; a safe cast would refuse them.
        numbers = pc.cast(column, pa.float64(), safe=not pa.types.is_integer(column.type))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        row, value = _first_bad(column)
        if row is None:
            raise BadValue(
                f"{where}: column {name!r} has type {column.type}, which is not a number"
            ) from exc
        raise BadValue(
            f"{where}: column {name!r}, row {first_row + row}: {value!r} is not a number",
            row=first_row + row,
        ) from exc
    return numbers.to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def _category_codes(
    column: pa.Array, feature: Feature, first_row: int, where: str
) -> npt.NDArray[np.float64]:
    """Each value's index among the training categories, NaN where it is not one.

    As ``pd.Categorical(values, categories=…)`` matches: a string category
    by its exact text (``"red "`` is not ``"red"``), a numeric one by value
    (``-0.0`` is ``0``, ``10.0`` is ``10``), a boolean one by ``true`` or
    ``false`` in any case. A column of categories that are all numbers
    refuses text that is not a number, as a numerical feature does.
    """
    categories = feature.categories or ()
    strings = [(i, c) for i, c in enumerate(categories) if isinstance(c, str)]
    numbers = [
        (i, float(c))
        for i, c in enumerate(categories)
        if isinstance(c, int | float) and not isinstance(c, bool)
    ]
    flags = [(i, c) for i, c in enumerate(categories) if isinstance(c, bool)]
    if pa.types.is_boolean(column.type):
        codes = _lookup(column, flags, pa.bool_())
        return pc.cast(codes, pa.float64()).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]
    text = column if _is_text(column) else None
    if text is None and not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        text = _as_text(column, feature.name, first_row, where)
    found: list[pa.Array] = []
    if strings:
        found.append(_lookup(text if text is not None else pc.cast(column, pa.string()), strings))
    if numbers:
        if text is None or not (strings or flags):
            values = pa.array(_as_float64(column, feature.name, first_row, where), pa.float64())
        else:
            values = _lenient_float64(text)
        found.append(_lookup(pc.add(values, 0.0), numbers, pa.float64()))  # -0.0 + 0.0 is 0.0
    if flags and text is not None:
        lowered = pc.utf8_lower(text)
        truth = pc.if_else(
            pc.equal(lowered, "true"), True, pc.if_else(pc.equal(lowered, "false"), False, None)
        )
        found.append(_lookup(truth, flags, pa.bool_()))
    if not found:
        return np.full(len(column), np.nan)
    codes = found[0] if len(found) == 1 else pc.coalesce(*found)
    return pc.cast(codes, pa.float64()).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def _lookup(
    values: pa.Array, categories: Sequence[tuple[int, Any]], kind: pa.DataType = _STRING
) -> pa.Array:
    """The category index of each value (null where none matches)."""
    if not categories:
        return pa.nulls(len(values), pa.int32())
    positions = pa.array([i for i, _ in categories], pa.int32())
    found = pc.index_in(values, value_set=pa.array([c for _, c in categories], kind))
    return pc.take(positions, found)


def _lenient_float64(text: pa.Array) -> pa.Array:
    """Text as numbers, null where a cell is not one (a category may be text there)."""
    trimmed = pc.utf8_trim_whitespace(text)
    numeric = pc.match_substring_regex(trimmed, _NUMBER_PATTERN, ignore_case=True)
    return pc.cast(pc.if_else(numeric, trimmed, None), pa.float64())


def _as_text(column: pa.Array, name: str, first_row: int, where: str) -> pa.Array:
    """A categorical value must be one value: a nested object or list is refused where it is."""
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        valid = pc.is_valid(column)
        index = pc.index(valid, True).as_py()
        row = first_row + max(index, 0)
        raise BadValue(
            f"{where}: column {name!r}, row {row}: a {column.type} value is not a category "
            "(categorical values are single strings, numbers or booleans)",
            row=row,
        ) from exc


def _first_bad(column: pa.Array) -> tuple[int | None, str]:
    """The first value that does not parse as a number, found only on the failure path."""
    if not _is_text(column):
        return None, ""
    for index, value in enumerate(column.to_pylist()):
        if value is None:
            continue
        try:
            pc.cast(pa.array([value]), pa.float64())
        except pa.ArrowInvalid:
            shown = value if len(value) <= _SHOWN_VALUE_CHARS else value[:_SHOWN_VALUE_CHARS] + "…"
            return index, shown
    return None, ""
