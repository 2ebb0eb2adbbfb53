"""Counting a file's quality in the pass that scores it, and baselines to compare with.

``QualityCounter`` takes each chunk's feature matrix (in the features stage)
and predictions (in the predict stage): per feature the missing cells, the
values outside the training range (``feature_infos``), categorical values
training never saw, and counts over the baseline's bins; of the predictions
their sum and a KLL sketch (Apache DataSketches: mergeable, a few KB, rank
error about 1%). Its state is plain JSON, so a split file's shards merge
into one report. Memory does not grow with the file.

``baseline_of`` builds a ``Baseline`` from a sample of training data at
publish: deciles of each numerical feature (ties merged), the most frequent
categories, missing values as their own bin, and the deciles of the model's
predictions on the sample.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasketches  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from pipeline.quality import (
    QUANTILES,
    Baseline,
    Bins,
    FeatureQuality,
    PredictionQuality,
    QualityReport,
    psi,
)
from pipeline.scoring.features import Feature, missing_cells
from pipeline.scoring.model import LoadedModel

#: Categories a baseline keeps per feature (the rest share the ``other`` bin).
BASELINE_CATEGORIES = 50
_DECILES = np.linspace(0.1, 0.9, 9)
_SKETCH_K = 200


def bin_index(bins: Bins, values: npt.NDArray[np.float64], missing: npt.NDArray[np.bool_]) -> Any:
    """Each value's bin: numeric edges or categories, then ``other``, then missing."""
    if bins.categorical:
        categories = np.asarray(bins.categories)
        order = np.argsort(categories)
        ordered = categories[order]
        position = np.clip(np.searchsorted(ordered, values), 0, len(ordered) - 1)
        hit = ordered[position] == values
        index = np.where(hit, order[position], len(categories))
        missing_bin = len(categories) + 1
    else:
        index = np.searchsorted(np.asarray(bins.edges), values, side="left")
        missing_bin = len(bins.edges) + 1
    return np.where(missing, missing_bin, index)


def shares_of(bins: Bins, values: npt.NDArray[np.float64], missing: npt.NDArray[np.bool_]) -> Any:
    counts = np.bincount(bin_index(bins, values, missing), minlength=bins.size)
    return counts / max(len(values), 1)


@dataclass
class _FeatureCounts:
    missing: int = 0
    below: int = 0
    above: int = 0
    unseen: int = 0
    bins: npt.NDArray[np.int64] | None = None


@dataclass
class QualityCounter:
    """One file's (or shard's) counts so far; see the module's docstring."""

    features: Sequence[Feature]
    baseline: Baseline | None = None
    rows: int = 0
    total: float = 0.0
    counts: list[_FeatureCounts] = field(default_factory=list)
    prediction_bins: npt.NDArray[np.int64] | None = None
    sketch: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [_FeatureCounts() for _ in self.features]
            for counts, feature in zip(self.counts, self.features, strict=True):
                bins = self._bins(feature)
                if bins is not None:
                    counts.bins = np.zeros(bins.size, dtype=np.int64)
            if self.baseline is not None:
                self.prediction_bins = np.zeros(self.baseline.prediction.size, np.int64)
        if self.sketch is None:
            self.sketch = datasketches.kll_doubles_sketch(_SKETCH_K)
        self._plan()

    def _plan(self) -> None:
        """Numerical features are counted all at once (a few numpy calls per chunk, not a
        few per feature): their ranges as vectors, their edges padded with +inf."""
        plain = [
            j
            for j, f in enumerate(self.features)
            if f.categories is None and f.training_codes is None
        ]
        self._plain = np.asarray(plain, dtype=np.intp)
        ranges = [self.features[j].training_range or (-np.inf, np.inf) for j in plain]
        self._lows = np.asarray([r[0] for r in ranges], dtype=np.float64)
        self._highs = np.asarray([r[1] for r in ranges], dtype=np.float64)
        edges = [self._bins(self.features[j]) for j in plain]
        self._binned = self.baseline is not None and all(e is not None for e in edges)
        widest = max((len(e.edges) for e in edges if e is not None), default=0)
        self._edges = np.full((len(plain), widest), np.inf)
        for row, bins in enumerate(edges):
            if bins is not None:
                self._edges[row, : len(bins.edges)] = bins.edges
        self._pending = np.zeros((len(plain), widest + 2), dtype=np.int64)
        self._offsets = (np.arange(len(plain)) * (widest + 2)).astype(np.int16)
        taken = set(plain)
        self._special = [j for j in range(len(self.features)) if j not in taken]
        #: Each categorical feature's training codes (pandas ones: None, their categories
        #: decide), parsed once rather than per chunk.
        self._codes = {j: _codes(self.features[j]) for j in self._special}

    def _bins(self, feature: Feature) -> Bins | None:
        return None if self.baseline is None else self.baseline.features.get(feature.name)

    def add_features(self, batch: pa.RecordBatch, matrix: npt.NDArray[np.float64]) -> None:
        """Count a chunk's features (the features stage calls this, in file order)."""
        if len(self._plain):
            x = matrix[:, self._plain]
            nan = np.isnan(x)
            missing = nan.sum(axis=0)
            below = (x < self._lows).sum(axis=0)
            above = (x > self._highs).sum(axis=0)
            for k, j in enumerate(self._plain):
                counts = self.counts[j]
                counts.missing += int(missing[k])
                counts.below += int(below[k])
                counts.above += int(above[k])
            if self._binned:
                # A value's bin is the number of edges below it (searchsorted, side="left"):
                # an edge at a time over every feature beats a binary search per value.
                widest = self._edges.shape[1]
                index = np.zeros(x.shape, dtype=np.int16, order="F")
                for m in range(widest):
                    index += x > self._edges[:, m]
                index += self._offsets
                found = np.bincount(index.ravel(order="K"), minlength=self._pending.size)
                found = found.reshape(self._pending.shape)
                # NaN is below no edge, so it was counted in bin 0: it is the missing bin's.
                found[:, 0] -= missing
                found[:, widest + 1] += missing
                self._pending += found
        for j in self._special:
            self._add_special(batch, matrix, j)

    def _add_special(self, batch: pa.RecordBatch, matrix: npt.NDArray[np.float64], j: int) -> None:
        feature, counts = self.features[j], self.counts[j]
        values = matrix[:, j]
        nan = np.isnan(values)
        missing = nan
        if feature.categories is not None:
            if feature.name in batch.schema.names:
                missing = missing_cells(batch.column(feature.name))
            counts.unseen += int(np.count_nonzero(nan & ~missing))
        elif (codes := self._codes[j]) is not None:
            known = np.isin(values, codes)
            counts.unseen += int(np.count_nonzero(~nan & ~known))
        counts.missing += int(np.count_nonzero(missing))
        bins = self._bins(feature)
        if bins is not None and counts.bins is not None:
            index = bin_index(bins, values, missing)
            counts.bins += np.bincount(index, minlength=len(counts.bins))

    def _flush(self) -> None:
        """The numerical features' pending bin counts, into each feature's own bins."""
        widest = self._edges.shape[1]
        for k, j in enumerate(self._plain):
            counts = self.counts[j]
            if counts.bins is not None:
                values = len(counts.bins) - 1  # its value bins; then its missing bin
                counts.bins[:values] += self._pending[k, :values]
                counts.bins[values] += self._pending[k, widest + 1]
        self._pending[:] = 0

    def add_predictions(self, predictions: npt.NDArray[np.float64]) -> None:
        """Count a chunk's predictions: the score, or a multiclass model's top probability."""
        score = predictions[:, 0] if predictions.shape[1] == 1 else predictions.max(axis=1)
        score = np.ascontiguousarray(score, dtype=np.float64)
        with self._lock:
            self.rows += len(score)
            self.total += float(score.sum())
            if len(score):
                self.sketch.update(score)
            if self.baseline is not None and self.prediction_bins is not None:
                bins = self.baseline.prediction
                index = bin_index(bins, score, np.isnan(score))
                self.prediction_bins += np.bincount(index, minlength=len(bins.shares))

    # ---- shards -------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything counted, as JSON values (a shard's share of the report)."""
        self._flush()
        return {
            "rows": self.rows,
            "total": self.total,
            "features": [
                [c.missing, c.below, c.above, c.unseen, None if c.bins is None else c.bins.tolist()]
                for c in self.counts
            ],
            "prediction_bins": None
            if self.prediction_bins is None
            else self.prediction_bins.tolist(),
            "sketch": base64.b64encode(self.sketch.serialize()).decode(),
        }

    def merge(self, state: dict[str, Any]) -> None:
        """Add a shard's ``state`` to these counts."""
        self._flush()
        self.rows += int(state["rows"])
        self.total += float(state["total"])
        for counts, (missing, below, above, unseen, bins) in zip(
            self.counts, state["features"], strict=True
        ):
            counts.missing += missing
            counts.below += below
            counts.above += above
            counts.unseen += unseen
            if bins is not None and counts.bins is not None:
                counts.bins += np.asarray(bins, dtype=np.int64)
        if state["prediction_bins"] is not None and self.prediction_bins is not None:
            self.prediction_bins += np.asarray(state["prediction_bins"], dtype=np.int64)
        sketch = datasketches.kll_doubles_sketch.deserialize(base64.b64decode(state["sketch"]))
        self.sketch.merge(sketch)

    # ---- the report ---------------------------------------------------------------------

    def report(self, job_id: str, model: LoadedModel) -> QualityReport:
        self._flush()
        rows = self.rows
        baseline = self.baseline
        features: dict[str, FeatureQuality] = {}
        for feature, counts in zip(self.features, self.counts, strict=True):
            bins = self._bins(feature)
            shares: list[float] = []
            drift = None
            if bins is not None and counts.bins is not None and rows:
                shares = (counts.bins / rows).tolist()
                drift = psi(shares, bins.shares)
            features[feature.name] = FeatureQuality(
                missing=counts.missing,
                below_range=counts.below,
                above_range=counts.above,
                unseen=counts.unseen,
                psi=drift,
                shares=shares,
            )
        prediction = PredictionQuality()
        if rows:
            quantiles = self.sketch.get_quantiles(list(QUANTILES))
            shares = []
            drift = None
            if baseline is not None and self.prediction_bins is not None:
                shares = (self.prediction_bins / rows).tolist()
                drift = psi(shares, baseline.prediction.shares)
            prediction = PredictionQuality(
                mean=self.total / rows,
                quantiles={str(q): float(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
                psi=drift,
                shares=shares,
            )
        drifts = [f.psi for f in features.values() if f.psi is not None]
        if prediction.psi is not None:
            drifts.append(prediction.psi)
        return QualityReport(
            job_id=job_id,
            model=model.ref.name,
            version=model.ref.version,
            rows=rows,
            features=features,
            prediction=prediction,
            max_psi=max(drifts) if drifts else None,
            baseline=baseline,
        )


def _codes(feature: Feature) -> npt.NDArray[np.float64] | None:
    codes = feature.training_codes
    return None if codes is None else np.fromiter(codes, float, len(codes))


# ---- baselines ----------------------------------------------------------------------------


def baseline_of(model: LoadedModel, batches: Iterable[pa.RecordBatch], source: str) -> Baseline:
    """The baseline of ``model`` from a sample of its training data (all of its features)."""
    from pipeline.scoring.features import check_columns, feature_matrix  # noqa: PLC0415

    matrices: list[npt.NDArray[np.float64]] = []
    missing: list[npt.NDArray[np.bool_]] = []
    first = 1
    for batch in batches:
        check_columns(batch.schema.names, model.feature_names, source)
        matrix = feature_matrix(batch, model.features, first, source)
        matrices.append(matrix)
        missing.append(_missing(batch, matrix, model.features))
        first += batch.num_rows
    if not matrices or first == 1:
        raise ValueError(f"{source} holds no rows to make a baseline of")
    x = np.asfortranarray(np.vstack(matrices))
    absent = np.vstack(missing)
    features = {
        feature.name: _bins(x[:, j], absent[:, j], feature)
        for j, feature in enumerate(model.features)
    }
    predictions = model.predict(x)
    score = predictions[:, 0] if predictions.shape[1] == 1 else predictions.max(axis=1)
    numeric = Feature("prediction")
    return Baseline(
        rows=len(x),
        features=features,
        missing={f.name: float(absent[:, j].mean()) for j, f in enumerate(model.features)},
        prediction=_bins(score, np.isnan(score), numeric),
    )


def _missing(
    batch: pa.RecordBatch, matrix: npt.NDArray[np.float64], features: Sequence[Feature]
) -> npt.NDArray[np.bool_]:
    columns = []
    for j, feature in enumerate(features):
        if feature.categories is not None and feature.name in batch.schema.names:
            columns.append(missing_cells(batch.column(feature.name)))
        else:
            columns.append(np.isnan(matrix[:, j]))
    return np.column_stack(columns)


def _bins(
    values: npt.NDArray[np.float64], missing: npt.NDArray[np.bool_], feature: Feature
) -> Bins:
    present = values[~missing & ~np.isnan(values)]
    if feature.categories is not None or feature.training_codes is not None:
        found, counts = np.unique(present, return_counts=True)
        kept = found[np.argsort(-counts, kind="stable")[:BASELINE_CATEGORIES]]
        bins = Bins(categories=sorted(float(v) for v in kept), shares=[])
    else:
        edges = np.unique(np.quantile(present, _DECILES)) if len(present) else np.array([])
        bins = Bins(edges=[float(e) for e in edges], shares=[])
    shares = shares_of(bins, values, missing)
    return bins.model_copy(update={"shares": [float(s) for s in shares]})
