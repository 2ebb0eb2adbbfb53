"""What a scored file's inputs and predictions looked like, against the model's baseline.

The report's shape (``QualityReport``), the baseline a version is published
with (``Baseline``), the policy that warns or fails on them
(``QualityPolicy``), and what the notification says (``QualityRef``). The
counting itself is the worker's (``pipeline.scoring.quality``); this module
holds no numpy, so clients and the intake read it as they are.

PSI (population stability index) over a feature's bins is
``sum((a - e) * ln(a / e))`` with ``a`` the file's share of rows in a bin and
``e`` the baseline's; a share below ``PSI_FLOOR`` counts as ``PSI_FLOOR``, so an
empty bin adds a large but finite amount instead of infinity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The smallest share a bin counts with in PSI (an empty bin's, on either side).
PSI_FLOOR = 1e-4
#: The quantiles every report gives of the predictions.
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
#: Warnings by default: a PSI above this, and a missing share this far above the baseline's.
WARN_PSI = 0.25
WARN_MISSING_RISE = 0.1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Location(_Frozen):
    bucket: str
    key: str


class Bins(_Frozen):
    """A distribution: numeric cut points (a value goes to the first bin whose edge it does
    not exceed, the last bin beyond them) or category values (an ``other`` bin after them),
    then a bin for missing values; ``shares`` has one more entry than the bins for it."""

    edges: list[float] = []
    categories: list[float] = []
    shares: list[float]

    @property
    def categorical(self) -> bool:
        return bool(self.categories)

    @property
    def size(self) -> int:
        """Bins: one per category or more than the edges, then ``other`` or the last, missing."""
        return len(self.categories or self.edges) + 2


class Baseline(_Frozen):
    """What a version's training sample looked like: per feature, and its predictions."""

    rows: int
    features: dict[str, Bins]
    #: Per feature: the share of the baseline's rows missing it.
    missing: dict[str, float]
    prediction: Bins


class FeatureQuality(_Frozen):
    missing: int = 0
    below_range: int = 0
    above_range: int = 0
    unseen: int = 0
    psi: float | None = None
    #: The file's shares over the baseline's bins (empty without a baseline).
    shares: list[float] = []


class PredictionQuality(_Frozen):
    mean: float | None = None
    quantiles: dict[str, float] = {}
    psi: float | None = None
    shares: list[float] = []


class QualityReport(_Frozen):
    """One file's report: ``rows``, per feature, and of its predictions."""

    schema_version: Literal[1] = 1
    job_id: str
    model: str
    version: int
    rows: int
    features: dict[str, FeatureQuality]
    prediction: PredictionQuality
    max_psi: float | None = None
    warnings: list[str] = []
    #: The baseline's shares, for the picture (empty without a baseline).
    baseline: Baseline | None = None


class QualityPolicy(_Frozen):
    """A version's limits; ``fail`` fails a file past one (code ``quality``), ``warn`` warns."""

    max_psi: float | None = Field(default=None, ge=0)
    max_missing: float | None = Field(default=None, ge=0, le=1)
    on_quality: Literal["warn", "fail"] = "warn"


class QualityRef(_Frozen):
    """The notification's ``quality``: where the report is, and what it found."""

    report: Location
    html: Location
    max_psi: float | None = None
    #: The largest share of rows missing one feature, and unseen categorical values in all.
    max_missing_share: float = 0.0
    unseen: int = 0
    warnings: list[str] = []


def figure(value: float | None) -> str:
    """A report's figure as a person reads it: four significant digits, n/a for none."""
    return "n/a" if value is None else f"{value:.4g}"


def psi(actual: Sequence[float], expected: Sequence[float]) -> float:
    """PSI of ``actual`` shares against ``expected`` ones, both over the same bins."""
    total = 0.0
    for share, baseline in zip(actual, expected, strict=True):
        a, e = max(share, PSI_FLOOR), max(baseline, PSI_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def findings(report: QualityReport, policy: QualityPolicy) -> tuple[list[str], list[str]]:
    """The report's warnings, and which of them break the policy's limits."""
    warnings: list[str] = []
    broken: list[str] = []
    rows = max(report.rows, 1)
    baseline = report.baseline
    for name, feature in report.features.items():
        if feature.psi is not None and feature.psi > WARN_PSI:
            warnings.append(f"feature {name!r} drifted: PSI {feature.psi:.3f} (above {WARN_PSI})")
        if feature.psi is not None and policy.max_psi is not None and feature.psi > policy.max_psi:
            broken.append(
                f"feature {name!r} has PSI {feature.psi:.3f}, above --max-psi {policy.max_psi}"
            )
        if feature.unseen:
            warnings.append(
                f"feature {name!r} has {feature.unseen:,} value(s) not among its training "
                "categories (scored as missing)"
            )
        share = feature.missing / rows
        before = baseline.missing.get(name, 0.0) if baseline is not None else None
        if before is not None and share > before + WARN_MISSING_RISE:
            warnings.append(
                f"feature {name!r} is missing in {share:.1%} of rows (baseline {before:.1%})"
            )
        if policy.max_missing is not None and share > policy.max_missing:
            broken.append(
                f"feature {name!r} is missing in {share:.1%} of rows, above --max-missing "
                f"{policy.max_missing:g}"
            )
    prediction = report.prediction
    if prediction.psi is not None and prediction.psi > WARN_PSI:
        warnings.append(f"the predictions drifted: PSI {prediction.psi:.3f} (above {WARN_PSI})")
    return warnings, broken
