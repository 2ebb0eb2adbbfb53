"""The columns a scored file gains, and which of its own it keeps.

``plan`` turns the options in force into output columns for one model and
one file (refusing a carried column the file lacks, or one an output would
overwrite); ``compute`` fills them for each chunk. Every kind is computed
from the same feature matrix, so one read of the file answers them all.

Columns, in the order ``scores`` lists the kinds:

* ``prediction`` (``prediction_<k>`` per class), ``raw_score`` (``raw_score_<k>``);
* ``label``: binary, 1.0 where the prediction is above the threshold; multiclass, the
  argmax class (the first on ties);
* ``leaf_0`` ... ``leaf_<T-1>``: each tree's exit leaf, integers;
* ``contrib_<feature>`` ... ``contrib_bias`` (``_<k>`` per class): SHAP values;
* ``reason_1``, ``reason_1_contrib``, ...: the K features with the largest
  contributions (signed: what pushed the score up most), largest first, ties
  to the feature earlier in the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from pipeline.errors import BadOption, names_list
from pipeline.options import (
    CONTRIB,
    DROP_COLUMNS,
    LABEL,
    LEAF,
    PREDICTION,
    RAW_SCORE,
    REASONS,
    InForce,
    Kind,
)
from pipeline.scoring.model import LoadedModel

_FLOAT = pa.float64()


@dataclass(frozen=True)
class Outputs:
    """What one file's output holds: the input columns kept, then the added columns."""

    options: InForce
    #: The input columns kept, in order.
    carried: list[str]
    #: The added columns.
    schema: pa.Schema

    @property
    def names(self) -> list[str]:
        return list(self.schema.names)

    @property
    def selection(self) -> list[str] | None:
        """The carried columns, or None when every input column is (records pass whole)."""
        if self.options.columns is None and not self.options.drop_columns:
            return None
        return self.carried


def plan(options: InForce, model: LoadedModel, columns: Sequence[str], where: str) -> Outputs:
    """The output of ``model`` scoring a file with ``columns``; ``BadOption`` if it cannot be."""
    carried = options.carried(columns, where)
    schema = pa.schema(_fields(options, model))
    names = schema.names
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BadOption(
            f"{where}: the output would have column(s) {names_list(repeated)} twice "
            f"(scores {','.join(options.scores)} on features {names_list(model.feature_names)})"
        )
    clashes = [name for name in names if name in set(carried)]
    if clashes:
        raise BadOption(
            f"{where} already has column(s) named {names_list(clashes)}, which the output "
            f"adds; leave them out with option {DROP_COLUMNS!r}, or rename them"
        )
    return Outputs(options, carried, schema)


def _fields(options: InForce, model: LoadedModel) -> list[pa.Field]:
    k = model.num_outputs
    per_class = [""] if k == 1 else [f"_{c}" for c in range(k)]
    fields: list[pa.Field] = []
    for kind in options.kinds:
        if kind.name in (PREDICTION, RAW_SCORE):
            fields += [pa.field(f"{kind.name}{s}", _FLOAT) for s in per_class]
        elif kind.name == LABEL:
            fields.append(pa.field(LABEL, _FLOAT))
        elif kind.name == LEAF:
            trees = _iterations(options, model) * k
            fields += [pa.field(f"leaf_{t}", pa.int32()) for t in range(trees)]
        elif kind.name == CONTRIB:
            names = [*model.feature_names, "bias"]
            fields += [pa.field(f"contrib_{n}{s}", _FLOAT) for s in per_class for n in names]
        else:
            for r in range(1, kind.k + 1):
                fields += [
                    pa.field(f"reason_{r}", pa.string()),
                    pa.field(f"reason_{r}_contrib", _FLOAT),
                ]
    return fields


def _iterations(options: InForce, model: LoadedModel) -> int:
    if options.num_iteration is None:
        return model.iterations
    return min(options.num_iteration, model.iterations)


def compute(
    outputs: Outputs, model: LoadedModel, features: npt.NDArray[np.float64], threads: int
) -> tuple[list[pa.Array], npt.NDArray[np.float64]]:
    """The added columns for these rows, in ``outputs.schema``'s order, and the rows'
    predictions (which the quality report counts, asked for or not)."""
    options = outputs.options
    if not len(features):  # a chunk whose every row was set aside
        empty = [pa.array([], type=field.type) for field in outputs.schema]
        return empty, np.empty((0, model.num_outputs))
    iterations = options.num_iteration
    kinds = options.kinds
    names = {kind.name for kind in kinds}
    contributions = None
    predictions = model.predict(features, threads, num_iteration=iterations)
    if names & {CONTRIB, REASONS}:
        contributions = model.contributions(features, threads, iterations)
    columns: list[pa.Array] = []
    for kind in kinds:
        if kind.name == PREDICTION:
            columns += _float_columns(predictions)
        elif kind.name == RAW_SCORE:
            raw = model.predict(features, threads, raw=True, num_iteration=iterations)
            columns += _float_columns(raw)
        elif kind.name == LABEL:
            columns.append(pa.array(_labels(predictions, options.threshold)))
        elif kind.name == LEAF:
            leaves = model.leaves(features, threads, iterations)
            columns += [pa.array(leaves[:, t]) for t in range(leaves.shape[1])]
        elif kind.name == CONTRIB:
            assert contributions is not None  # noqa: S101
            columns += _float_columns(contributions)
        else:
            assert contributions is not None  # noqa: S101
            columns += _reasons(contributions, model.feature_names, kind)
    return columns, predictions


def _float_columns(values: npt.NDArray[np.float64]) -> list[pa.Array]:
    return [pa.array(values[:, j]) for j in range(values.shape[1])]


def _labels(predictions: npt.NDArray[np.float64], threshold: float) -> npt.NDArray[np.float64]:
    if predictions.shape[1] == 1:
        labels = predictions[:, 0] > threshold
    else:
        labels = np.argmax(predictions, axis=1)  # the first on ties
    return labels.astype(np.float64)


def _reasons(
    contributions: npt.NDArray[np.float64], feature_names: Sequence[str], kind: Kind
) -> list[pa.Array]:
    """The ``kind.k`` largest contributions per row and their features' names."""
    per_feature = contributions[:, : len(feature_names)]
    # A stable sort of the negated values: largest first, ties in model order.
    order = np.argsort(-per_feature, axis=1, kind="stable")[:, : kind.k]
    names = np.asarray(feature_names, dtype=object)
    columns: list[pa.Array] = []
    for r in range(kind.k):
        chosen = order[:, r]
        columns.append(pa.array(names[chosen], pa.string()))
        columns.append(pa.array(np.take_along_axis(per_feature, chosen[:, None], axis=1)[:, 0]))
    return columns
