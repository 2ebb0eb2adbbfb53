"""One job's log lines, from every process, in time order: ``pipeline logs JOB_ID``.

Locally each process writes JSON lines to the stack's logs folder (the
outputs file names it); deployed, the stack's log groups hold the same lines
in CloudWatch Logs. Either way a line about a job carries its ``job_id``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import logs

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_logs import CloudWatchLogsClient

Line = dict[str, Any]


def of_job(lines: Iterable[Line], job_id: str) -> list[Line]:
    """The job's lines, in time order."""
    return sorted((line for line in lines if line.get("job_id") == job_id), key=_time)


def _time(line: Line) -> str:
    return str(line.get("time", ""))


def local_lines(folder: Path) -> list[Line]:
    """Every JSON line in a local stack's logs folder."""
    found: list[Line] = []
    for path in sorted(folder.glob("*.jsonl")):
        with path.open() as text:
            found += [d for d in map(logs.parse, text) if d is not None]
    return found


def log_groups(cloudformation: CloudFormationClient, stack: str) -> list[str]:
    """The log groups a deployed stack created (its functions' and its workers')."""
    groups = []
    paginator = cloudformation.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=stack):
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == "AWS::Logs::LogGroup":
                groups.append(resource["PhysicalResourceId"])
    return groups


def cloudwatch_lines(client: CloudWatchLogsClient, groups: list[str], job_id: str) -> list[Line]:
    """The lines of the groups that mention the job id (a term: job ids are hex digits)."""
    found: list[Line] = []
    for group in groups:
        paginator = client.get_paginator("filter_log_events")
        for page in paginator.paginate(logGroupName=group, filterPattern=job_id):
            found += [d for e in page["events"] if (d := logs.parse(e["message"])) is not None]
    return found
