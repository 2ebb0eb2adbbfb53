"""The quality report as a page a person reads: one self-contained HTML file, no network.

A table of every feature's figures, then for each feature (and the
predictions) the file's share of rows in each of the baseline's bins beside
the baseline's own, drawn as inline SVG bars.
"""

from __future__ import annotations

import itertools
from html import escape

from pipeline.quality import Bins, QualityReport, figure

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.warn { color: #a40; } .legend span { display: inline-block; width: 12px; height: 12px; }
figure { display: inline-block; margin: 0 1.5em 1.5em 0; } figcaption { font-weight: 600; }
"""
_FILE, _BASE = "#2b6cb0", "#b8c2cc"
_HEIGHT, _BAR = 120, 9


def render(report: QualityReport) -> str:
    rows = max(report.rows, 1)
    head = (
        f"<h1>Quality of job {escape(report.job_id)}</h1>"
        f"<p>Model {escape(report.model)} version {report.version}: {report.rows:,} rows. "
        f"Largest PSI: {figure(report.max_psi)}.</p>"
    )
    warnings = "".join(f"<li class=warn>{escape(w)}</li>" for w in report.warnings)
    table = [
        "<table><tr><th>feature</th><th>missing</th><th>below range</th><th>above range</th>"
        "<th>unseen</th><th>PSI</th></tr>"
    ]
    for name, feature in report.features.items():
        table.append(
            f"<tr><td>{escape(name)}</td><td>{feature.missing:,} ({feature.missing / rows:.1%})"
            f"</td><td>{feature.below_range:,}</td><td>{feature.above_range:,}</td>"
            f"<td>{feature.unseen:,}</td><td>{figure(feature.psi)}</td></tr>"
        )
    table.append("</table>")
    prediction = report.prediction
    quantiles = " ".join(f"q{q}: {v:.4g}" for q, v in prediction.quantiles.items())
    summary = (
        f"<h2>Predictions</h2><p>mean {figure(prediction.mean)}; {escape(quantiles)}; "
        f"PSI {figure(prediction.psi)}</p>"
    )
    figures = []
    baseline = report.baseline
    if baseline is not None:
        figures.append(_figure("prediction", baseline.prediction, prediction.shares))
        for name, feature in report.features.items():
            bins = baseline.features.get(name)
            if bins is not None and feature.shares:
                figures.append(_figure(name, bins, feature.shares))
    legend = (
        f"<p class=legend><span style='background:{_FILE}'></span> this file "
        f"<span style='background:{_BASE}'></span> baseline</p>"
        if figures
        else "<p>No baseline was published with this model version: no distributions to "
        "compare.</p>"
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>Quality: {escape(report.job_id)}</title><style>{_STYLE}</style></head><body>"
        f"{head}<ul>{warnings}</ul>{''.join(table)}{summary}<h2>Distributions</h2>{legend}"
        f"{''.join(figures)}</body></html>"
    )


def _figure(name: str, bins: Bins, shares: list[float]) -> str:
    labels = _labels(bins)
    expected = bins.shares
    width = len(labels) * (2 * _BAR + 8) + 10
    top = max([*expected, *shares, 1e-9])
    bars = []
    for i, label in enumerate(labels):
        x = 5 + i * (2 * _BAR + 8)
        for offset, share, color in ((0, expected[i], _BASE), (_BAR, shares[i], _FILE)):
            h = _HEIGHT * share / top
            bars.append(
                f"<rect x='{x + offset}' y='{_HEIGHT - h:.1f}' width='{_BAR}' height='{h:.1f}' "
                f"fill='{color}'><title>{escape(label)}: {share:.1%}</title></rect>"
            )
    return (
        f"<figure><figcaption>{escape(name)}</figcaption>"
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{_HEIGHT + 2}' "
        f"role='img' aria-label='{escape(name)}: this file against the baseline'>"
        f"{''.join(bars)}</svg></figure>"
    )


def _labels(bins: Bins) -> list[str]:
    if bins.categorical:
        return [f"{c:g}" for c in bins.categories] + ["other", "missing"]
    edges = bins.edges
    if not edges:
        return ["all", "missing"]
    labels = [f"≤ {edges[0]:.4g}"]
    labels += [f"{a:.4g} to {b:.4g}" for a, b in itertools.pairwise(edges)]
    return [*labels, f"> {edges[-1]:.4g}", "missing"]
