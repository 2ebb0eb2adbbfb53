"""A scored file's quality report: written beside its output, judged by the model's policy.

The JSON report and its HTML page go to ``<job>.quality.json`` and
``<job>.quality.html`` beside the output, before the output itself is
completed: a file the policy fails (``--on-quality fail``) has its report
and no output, and its notification says which limit and where to look.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from pipeline import naming
from pipeline.errors import QualityFailed
from pipeline.quality import Location, QualityRef, findings
from pipeline.scoring import quality_page
from pipeline.scoring.model import LoadedModel
from pipeline.scoring.quality import QualityCounter

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: Warnings a notification carries; the report holds them all.
SHOWN_WARNINGS = 20
REPORT_SUFFIX = ".quality.json"
PAGE_SUFFIX = ".quality.html"


def settle(
    counter: QualityCounter,
    model: LoadedModel,
    job_id: str,
    s3: S3Client,
    output: Location,
) -> QualityRef:
    """Write the report and its page beside ``output``; ``QualityFailed`` past a limit."""
    report = counter.report(job_id, model)
    warnings, broken = findings(report, model.policy)
    report = report.model_copy(update={"warnings": warnings})
    json_key = naming.companion_key(output.key, job_id, REPORT_SUFFIX)
    html_key = naming.companion_key(output.key, job_id, PAGE_SUFFIX)
    documents = [
        (json_key, report.model_dump_json(indent=1, exclude={"baseline"}), "application/json"),
        (html_key, quality_page.render(report), "text/html; charset=utf-8"),
    ]
    with ThreadPoolExecutor(len(documents), thread_name_prefix="report") as pool:
        puts = [
            pool.submit(
                s3.put_object, Bucket=output.bucket, Key=key, Body=body.encode(), ContentType=kind
            )
            for key, body, kind in documents
        ]
        for put in puts:
            put.result()
    shown = warnings[:SHOWN_WARNINGS]
    if len(warnings) > SHOWN_WARNINGS:
        shown.append(f"and {len(warnings) - SHOWN_WARNINGS} more warning(s) in the report")
    ref = QualityRef(
        report=Location(bucket=output.bucket, key=json_key),
        html=Location(bucket=output.bucket, key=html_key),
        max_psi=report.max_psi,
        max_missing_share=max(
            (f.missing / max(report.rows, 1) for f in report.features.values()), default=0.0
        ),
        unseen=sum(f.unseen for f in report.features.values()),
        warnings=shown,
    )
    if broken and model.policy.on_quality == "fail":
        raise QualityFailed(
            f"past model {model.ref.name!r} version {model.ref.version}'s quality limits: "
            f"{'; '.join(broken[:5])} (report: s3://{output.bucket}/{json_key})",
            quality=ref,
        )
    return ref
