"""Scoring a file with the model's shadow version too, in the same pass, and comparing.

The shadow predicts from the same chunks as the primary (from the same
feature matrix when the two versions read the same features), so a file is
read once and its output is the primary's alone. Each chunk's predictions of
both are kept (16 bytes a row and output, and the row's number): Spearman's
rank correlation needs every row at once, and a split file's shards hand
theirs to the shard that finishes it (``to_bytes``, ``extend``).

A shadow that cannot score the file (a column it needs is missing, a value
only it reads is unreadable, a different number of classes) never fails it:
the comparison says why instead (``ShadowRef.error``).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from pipeline import naming
from pipeline.errors import BadValue, PipelineError
from pipeline.messages import ModelRef
from pipeline.quality import Location
from pipeline.scoring.codec import Chunk
from pipeline.scoring.features import feature_matrix
from pipeline.scoring.model import LoadedModel
from pipeline.shadow import (
    SHADOW_SUFFIX,
    TOP_ROWS,
    ClassFigures,
    Figures,
    ShadowRef,
    ShadowReport,
    ShadowRow,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Matrix = npt.NDArray[np.float64]


@dataclass
class ShadowCounter:
    """Both versions' predictions of a file's rows, as they are scored."""

    ref: ModelRef
    #: The primary's prediction columns (``prediction``, ``prediction_<k>``).
    outputs: list[str]
    primary: list[Matrix] = field(default_factory=list)
    shadow: list[Matrix] = field(default_factory=list)
    rows: list[npt.NDArray[np.int64]] = field(default_factory=list)
    #: Why the shadow stopped scoring the file; set, the figures are not given.
    error: str | None = None

    def add(self, chunk: Chunk, primary: Matrix, shadow: Matrix) -> None:
        if self.error is None:
            self.primary.append(primary)
            self.shadow.append(shadow)
            self.rows.append(row_numbers(chunk))

    def fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason
            self.primary, self.shadow, self.rows = [], [], []

    def to_bytes(self) -> bytes:
        """The kept predictions, for the shard that finishes the file (``extend``)."""
        primary, shadow, rows = self._stacked()
        buffer = io.BytesIO()
        np.savez(buffer, primary=primary, shadow=shadow, rows=rows)
        return buffer.getvalue()

    def extend(self, data: bytes, before: int) -> None:
        """Add a shard's predictions (``to_bytes``), its rows ``before`` rows into the file."""
        with np.load(io.BytesIO(data)) as arrays:
            self.primary.append(arrays["primary"])
            self.shadow.append(arrays["shadow"])
            self.rows.append(arrays["rows"] + before)

    def _stacked(self) -> tuple[Matrix, Matrix, npt.NDArray[np.int64]]:
        k = len(self.outputs)
        if not self.primary:
            return np.empty((0, k)), np.empty((0, k)), np.empty(0, dtype=np.int64)
        return np.vstack(self.primary), np.vstack(self.shadow), np.concatenate(self.rows)

    def settle(
        self,
        job_id: str,
        primary: ModelRef,
        threshold: float | None,
        output: Location,
    ) -> tuple[ShadowRef, ShadowReport | None]:
        """What the notification says, and the report to write (None if the shadow failed).

        ``threshold``: a binary model's threshold in force, where flips are counted.
        """
        if self.error is not None:
            return ShadowRef(
                version=self.ref.version,
                alias=self.ref.alias,
                rows=0,
                max_abs_diff=None,
                mean_abs_diff=None,
                rank_correlation=None,
                error=self.error,
            ), None
        a, b, rows = self._stacked()
        diff = b - a
        classes = [
            ClassFigures(output=name, **_figures(a[:, j], b[:, j], diff[:, j]).model_dump())
            for j, name in enumerate(self.outputs)
        ]
        flips = None
        if threshold is not None:  # a binary model's
            flips = int(np.count_nonzero((a[:, 0] > threshold) != (b[:, 0] > threshold)))
        argmax = None
        if len(self.outputs) > 1:
            argmax = int(np.count_nonzero(np.argmax(a, axis=1) != np.argmax(b, axis=1)))
        correlations = [c.rank_correlation for c in classes]
        overall = Figures(
            max_abs_diff=float(np.abs(diff).max()) if diff.size else None,
            mean_abs_diff=float(np.abs(diff).mean()) if diff.size else None,
            rank_correlation=None if None in correlations else min(correlations),  # type: ignore[type-var]
        )
        location = Location(
            bucket=output.bucket, key=naming.companion_key(output.key, job_id, SHADOW_SUFFIX)
        )
        report = ShadowReport(
            job_id=job_id,
            model=primary.name,
            primary_version=primary.version,
            shadow_version=self.ref.version,
            shadow_alias=self.ref.alias,
            rows=len(a),
            threshold=threshold,
            flips=flips,
            argmax_changes=argmax,
            overall=overall,
            classes=classes,
            largest=_largest(a, b, diff, rows, self.outputs),
        )
        ref = ShadowRef(
            version=self.ref.version,
            alias=self.ref.alias,
            rows=len(a),
            flips=report.flips,
            report=location,
            **overall.model_dump(),
        )
        return ref, report


def row_numbers(chunk: Chunk) -> npt.NDArray[np.int64]:
    """The chunk's rows' 1-based data row numbers (gaps where rows were set aside)."""
    if chunk.row_numbers is not None:
        return chunk.row_numbers
    return np.arange(chunk.first_row, chunk.first_row + chunk.num_rows, dtype=np.int64)


def _figures(a: Matrix, b: Matrix, diff: Matrix) -> Figures:
    if not len(a):
        return Figures(max_abs_diff=None, mean_abs_diff=None, rank_correlation=None)
    absolute = np.abs(diff)
    return Figures(
        max_abs_diff=float(absolute.max()),
        mean_abs_diff=float(absolute.mean()),
        rank_correlation=spearman(a, b),
    )


def spearman(a: Matrix, b: Matrix) -> float | None:
    """Spearman's rank correlation, average ranks for ties; None if either is constant."""
    if len(a) < 2:
        return None
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    scale = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    if scale == 0.0:
        return None
    return float(min(1.0, max(-1.0, (ra * rb).sum() / scale)))


def _ranks(values: Matrix) -> Matrix:
    """1-based ranks, tied values sharing their average rank (``scipy.stats.rankdata``'s)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    first = np.flatnonzero(starts)
    sizes = np.diff(np.append(first, len(values)))
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(first + (sizes + 1) / 2, sizes)
    return ranks


def _largest(
    a: Matrix, b: Matrix, diff: Matrix, rows: npt.NDArray[np.int64], outputs: Sequence[str]
) -> list[ShadowRow]:
    """The ``TOP_ROWS`` largest |diff| over every output, largest first, ties to the earlier row."""
    absolute = np.abs(diff).ravel()
    if not absolute.size:
        return []
    cut = np.partition(absolute, -min(TOP_ROWS, absolute.size))[-min(TOP_ROWS, absolute.size)]
    chosen = np.flatnonzero(absolute >= cut)
    k = diff.shape[1]
    order = np.lexsort((chosen % k, rows[chosen // k], -absolute[chosen]))[:TOP_ROWS]
    found = []
    for flat in chosen[order]:
        i, j = divmod(int(flat), k)
        found.append(
            ShadowRow(
                row=int(rows[i]),
                output=outputs[j],
                primary=float(a[i, j]),
                shadow=float(b[i, j]),
                diff=float(diff[i, j]),
            )
        )
    return found


def comparable(primary: LoadedModel, shadow: LoadedModel) -> str | None:
    """Why the two cannot be compared row by row, or None."""
    if primary.num_outputs != shadow.num_outputs:
        return (
            f"the shadow (version {shadow.ref.version}) has {shadow.num_outputs} output(s), "
            f"the primary {primary.num_outputs}: their predictions cannot be compared"
        )
    return None


class Shadowing:
    """The shadow's part in scoring one file (or shard): its features, predictions and counts."""

    def __init__(self, primary: LoadedModel, shadow: LoadedModel | str, ref: ModelRef) -> None:
        """``shadow``: the loaded shadow, or why it could not be loaded."""
        k = primary.num_outputs
        names = ["prediction"] if k == 1 else [f"prediction_{c}" for c in range(k)]
        self.counter = ShadowCounter(ref, names)
        #: The primary's threshold applies to a binary model's flips.
        self.binary = primary.objective == "binary"
        self.model = shadow if isinstance(shadow, LoadedModel) else None
        reason = shadow if isinstance(shadow, str) else comparable(primary, shadow)
        if reason is not None:
            self.counter.fail(reason)
        #: The same features in the same order: the primary's matrix serves both.
        self.same_features = self.model is not None and self.model.features == primary.features
        #: Seconds the shadow's own features and predictions took.
        self.seconds = 0.0

    @classmethod
    def of(cls, primary: LoadedModel, ref: ModelRef, load: Callable[[], LoadedModel]) -> Shadowing:
        """The shadow loaded by ``load``, or the reason it could not be (the file goes on)."""
        try:
            return cls(primary, load(), ref)
        except PipelineError as exc:
            return cls(primary, f"the shadow (version {ref.version}) cannot be loaded: {exc}", ref)

    def check_columns(self, columns: Sequence[str]) -> None:
        """Stop the shadow if the file lacks a feature it needs."""
        if self.model is None:
            return
        present = set(columns)
        missing = [f.name for f in self.model.features if f.name not in present]
        if missing:
            self.counter.fail(
                f"the file lacks {len(missing)} feature column(s) the shadow (version "
                f"{self.counter.ref.version}) needs: {', '.join(map(repr, missing[:10]))}"
            )

    @property
    def active(self) -> bool:
        return self.model is not None and self.counter.error is None

    def features(self, chunk: Chunk, where: str) -> Matrix | None:
        """The shadow's own feature matrix, where it reads other features than the primary."""
        if self.model is None or not self.active or self.same_features:
            return None
        started = time.perf_counter()
        try:
            return feature_matrix(chunk.batch, self.model.features, chunk.first_row, where)
        except BadValue as exc:
            self.counter.fail(f"the shadow (version {self.counter.ref.version}) cannot read: {exc}")
            return None
        finally:
            self.seconds += time.perf_counter() - started

    def predict(
        self, chunk: Chunk, matrix: Matrix, own: Matrix | None, primary: Matrix, threads: int
    ) -> None:
        if self.model is None or not self.active:
            return
        started = time.perf_counter()
        predicted = self.model.predict(matrix if own is None else own, threads)
        self.counter.add(chunk, primary, predicted)
        self.seconds += time.perf_counter() - started

    def settle(
        self, job_id: str, primary: ModelRef, threshold: float, output: Location
    ) -> tuple[ShadowRef, ShadowReport | None]:
        return self.counter.settle(job_id, primary, threshold if self.binary else None, output)


def write_report(s3: S3Client, ref: ShadowRef, report: ShadowReport | None) -> None:
    if report is not None and ref.report is not None:
        s3.put_object(
            Bucket=ref.report.bucket,
            Key=ref.report.key,
            Body=report.model_dump_json(indent=1).encode(),
            ContentType="application/json",
        )
