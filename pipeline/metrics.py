"""Per-file metrics in CloudWatch's Embedded Metric Format, written as log lines.

A log line that carries ``_aws.CloudWatchMetrics`` becomes metrics in
CloudWatch with no API call, no agent and no extra latency: the worker and the
upload function log one such document per file, and the same line is a
readable record in ``pipeline logs`` locally.

Namespace ``LgbmPipeline``. Dimension sets: ``[Stage]`` (``intake`` or
``scoring``), ``[Stage, Outcome]``, ``[Stage, Model]`` and ``[Stage,
ErrorCode]``; ``Outcome`` is ``succeeded``, ``failed``, ``accepted`` or
``refused``, ``ErrorCode`` the notification's code or ``none``. Metrics: ``Files``
(Count), ``Rows`` (Count), ``InputBytes`` (Bytes), ``Seconds`` and the
per-stage ``ReadSeconds``, ``FeatureSeconds``, ``PredictSeconds``,
``WriteSeconds`` (Seconds), ``RowsPerSecond`` (Count/Second). ``job_id`` and
``engine`` travel as properties, searchable in Logs Insights without
multiplying metrics.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

NAMESPACE = "LgbmPipeline"
UNITS = {
    "Files": "Count",
    "Rows": "Count",
    "InputBytes": "Bytes",
    "Seconds": "Seconds",
    "ReadSeconds": "Seconds",
    "FeatureSeconds": "Seconds",
    "PredictSeconds": "Seconds",
    "WriteSeconds": "Seconds",
    "RowsPerSecond": "Count/Second",
    "QualitySeconds": "Seconds",
    "ShadowSeconds": "Seconds",
    "ShadowMaxAbsDiff": "None",
    "ShadowFlips": "Count",
    "MaxPsi": "None",
    "MissingShare": "None",
    "UnseenCount": "Count",
}
DIMENSION_SETS = [["Stage"], ["Stage", "Outcome"], ["Stage", "Model"], ["Stage", "ErrorCode"]]


def document(
    stage: str,
    outcome: str,
    model: str,
    *,
    error_code: str | None = None,
    values: Mapping[str, float],
    properties: Mapping[str, Any],
    now: float | None = None,
) -> dict[str, Any]:
    """One EMF document: the metrics, their dimensions and properties as top-level fields."""
    unknown = set(values) - set(UNITS)
    if unknown:
        raise ValueError(f"no unit for metric(s) {', '.join(sorted(unknown))}")
    return {
        "_aws": {
            "Timestamp": int((time.time() if now is None else now) * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": DIMENSION_SETS,
                    "Metrics": [{"Name": name, "Unit": UNITS[name]} for name in values],
                }
            ],
        },
        "Stage": stage,
        "Outcome": outcome,
        # A dimension value may not be empty: a file refused before a model was found.
        "Model": model or "-",
        "ErrorCode": error_code or "none",
        **values,
        **properties,
    }
