"""A scored file's quality report: written beside its output, judged by the model's policy.

The JSON report and its HTML page go to ``<job>.quality.json`` and
``<job>.quality.html`` beside the output. The policy is judged before the
output is completed: a file it fails (``--on-quality fail``) has its report
and no output, and its notification says which limit and where to look. A
file it passes has its report written while its output completes, so a small
file pays for neither in turn.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline import naming
from pipeline.errors import QualityFailed
from pipeline.quality import Location, QualityRef, QualityReport, findings
from pipeline.scoring import quality_page
from pipeline.scoring.model import LoadedModel
from pipeline.scoring.quality import QualityCounter

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: Warnings a notification carries; the report holds them all.
SHOWN_WARNINGS = 20
REPORT_SUFFIX = ".quality.json"
PAGE_SUFFIX = ".quality.html"
#: Writes a file's reports while its output completes.
writers = ThreadPoolExecutor(4, thread_name_prefix="report")


@dataclass(frozen=True)
class Judged:
    """A report, what the notification says of it, and the limits it passed."""

    report: QualityReport
    ref: QualityRef
    broken: list[str]


def judge(counter: QualityCounter, model: LoadedModel, job_id: str, output: Location) -> Judged:
    """The report of ``counter``'s counts, its warnings, and the limits it breaks."""
    report = counter.report(job_id, model)
    warnings, broken = findings(report, model.policy)
    report = report.model_copy(update={"warnings": warnings})
    shown = warnings[:SHOWN_WARNINGS]
    if len(warnings) > SHOWN_WARNINGS:
        shown.append(f"and {len(warnings) - SHOWN_WARNINGS} more warning(s) in the report")
    rows = max(report.rows, 1)
    ref = QualityRef(
        report=Location(
            bucket=output.bucket, key=naming.companion_key(output.key, job_id, REPORT_SUFFIX)
        ),
        html=Location(
            bucket=output.bucket, key=naming.companion_key(output.key, job_id, PAGE_SUFFIX)
        ),
        max_psi=report.max_psi,
        max_missing_share=max((f.missing / rows for f in report.features.values()), default=0.0),
        unseen=sum(f.unseen for f in report.features.values()),
        warnings=shown,
    )
    return Judged(report, ref, broken)


def write(s3: S3Client, judged: Judged) -> list[Future[object]]:
    """Start writing the report and its page; wait on the futures."""
    documents = [
        (judged.ref.report, judged.report.model_dump_json(indent=1, exclude={"baseline"}),
         "application/json"),
        (judged.ref.html, quality_page.render(judged.report), "text/html; charset=utf-8"),
    ]  # fmt: skip
    return [
        writers.submit(
            s3.put_object, Bucket=where.bucket, Key=where.key, Body=body.encode(), ContentType=kind
        )
        for where, body, kind in documents
    ]


def enforce(judged: Judged, model: LoadedModel) -> None:
    """``QualityFailed`` if the model's policy fails a file past a limit."""
    if judged.broken and model.policy.on_quality == "fail":
        raise QualityFailed(
            f"past model {model.ref.name!r} version {model.ref.version}'s quality limits: "
            f"{'; '.join(judged.broken[:5])} (report: s3://{judged.ref.report.bucket}/"
            f"{judged.ref.report.key})",
            quality=judged.ref,
        )


def settle(
    counter: QualityCounter,
    model: LoadedModel,
    job_id: str,
    s3: S3Client,
    output: Location,
) -> QualityRef:
    """Write the report and its page beside ``output``; ``QualityFailed`` past a limit."""
    judged = judge(counter, model, job_id, output)
    for put in write(s3, judged):
        put.result()
    enforce(judged, model)
    return judged.ref
