"""`pipeline status` for a deployed stack: SQS depths, the ECS service, the ledger."""

from datetime import UTC, datetime
from typing import Any

from pipeline.client.status import deployed_status, render
from pipeline.local import template
from pipeline.local.provision import provision
from pipeline.messages import ErrorInfo, ObjectRef, failed
from pipeline.stores import aws
from pipeline.stores.ledger import Ledger
from pipeline.stores.notify import announce
from tests.conftest import REGION, unique


def test_a_deployed_stack_reports_queues_workers_and_recent_jobs(
    aws_endpoint: str, sqs: Any, s3: Any
) -> None:
    stack = provision(template.load(), unique("st"), REGION)
    ecs = aws.ecs_client(REGION)
    cluster = ecs.create_cluster(clusterName=unique("workers"))["cluster"]["clusterName"]
    ecs.register_task_definition(
        family="worker",
        containerDefinitions=[{"name": "worker", "image": "worker:1", "memory": 2048}],
    )
    service = ecs.create_service(
        cluster=cluster, serviceName="workers", taskDefinition="worker", desiredCount=0
    )["service"]["serviceName"]
    try:
        sqs.send_message(QueueUrl=stack.outputs["TaskQueueUrl"], MessageBody="{}")
        announce(  # as every component answers for a file
            Ledger(s3, stack.outputs["OutputBucketName"]),
            aws.sns_client(REGION),
            stack.outputs["NotificationTopicArn"],
            failed(
                job_id="j1",
                input=ObjectRef(bucket="b", key="churn/x.csv", etag="e", size=1),
                error=ErrorInfo(code="bad_value", message="row 2"),
                received_at=datetime(2026, 11, 21, tzinfo=UTC),
            ),
        )
        outputs = {
            **stack.outputs,
            "StackName": stack.name,
            "WorkerClusterName": cluster,
            "WorkerServiceName": service,
        }

        status = deployed_status(outputs, 5, aws.sqs_client(REGION), s3, ecs)
        shown = render(status)
    finally:
        ecs.delete_service(cluster=cluster, service=service, force=True)
        ecs.delete_cluster(cluster=cluster)
        stack.destroy()

    assert (status.waiting, status.in_flight, status.dead_letters) == (1, 0, 0)
    assert status.target == 0
    assert status.workers == []
    assert [n.job_id for n in status.recent] == ["j1"]
    assert "task queue:        1 waiting, 0 in flight" in shown
    assert "failed    bad_value" in shown
    assert "(deployed)" in shown
