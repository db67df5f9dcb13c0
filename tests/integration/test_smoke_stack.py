"""The deployed stack end to end: S3 → EventBridge → SQS → ingest → Step Functions → DynamoDB; the API."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from photopipe import samples
from photopipe.media import MediaReader
from photopipe.stack import Stack
from photopipe_core.keys import media_id_for_object


def test_drop_folder_object_ends_with_the_item_written_by_the_pipeline(
    stack: Stack, aws_client: Callable[[str], Any]
) -> None:
    outputs = stack.outputs
    key = f"drop/smoke/{time.time_ns()}.jpg"
    body = samples.jpeg_bytes(samples.photo(64, 48, seed=1))
    put = aws_client("s3").put_object(Bucket=outputs.MediaBucketName, Key=key, Body=body)
    media_id = media_id_for_object(outputs.MediaBucketName, key, put["ETag"])

    reader = MediaReader(stack)
    execution = reader.wait_for_execution(media_id, timeout=60)

    assert execution.status == "SUCCEEDED"
    item = reader.get(media_id)
    assert item is not None
    assert item.status == "READY"
    assert item.source.key == key
    assert item.source.size == len(body)
    assert item.execution_arn == outputs.execution_arn(media_id)
    assert [entry["status"] for entry in reader.history(media_id)] == ["PROCESSING", "READY"]


def test_objects_outside_uploads_and_drop_start_nothing(stack: Stack, aws_client: Callable[[str], Any]) -> None:
    outputs = stack.outputs
    s3, sfn = aws_client("s3"), aws_client("stepfunctions")

    def executions() -> set[str]:
        pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=outputs.PipelineStateMachineArn)
        return {e["name"] for page in pages for e in page["executions"]}

    before = executions()
    stamp = time.time_ns()
    for key in (f"other/{stamp}.jpg", f"media/{stamp}/thumb.webp", f"work/{stamp}/tmp.bin"):
        s3.put_object(Bucket=outputs.MediaBucketName, Key=key, Body=b"x")
    # A control object written after them: once its run is done, the events before it have been delivered too.
    control_key = f"drop/control/{stamp}.jpg"
    put = s3.put_object(Bucket=outputs.MediaBucketName, Key=control_key, Body=b"x")
    control = media_id_for_object(outputs.MediaBucketName, control_key, put["ETag"])
    MediaReader(stack).wait_for_execution(control, timeout=60)

    assert executions() - before == {control}


def test_health_endpoint_over_http(stack: Stack) -> None:
    with urllib.request.urlopen(f"{stack.outputs.ApiUrl}/v1/health", timeout=30) as response:
        status, body = response.status, json.loads(response.read())
    assert status == 200
    assert body["status"] == "ok"
    assert body["checks"] == {"s3": {"ok": True}, "dynamodb": {"ok": True}, "stepfunctions": {"ok": True}}


def test_the_deployed_stack_has_what_a_reviewer_asks_for(stack: Stack, aws_client: Callable[[str], Any]) -> None:
    """What LocalStack keeps of the template's hardening: one stage, an encrypted versioned TLS-only bucket, encrypted
    queues, the log groups. (Its CloudFormation resources drop the table's deletion protection and point-in-time
    recovery and the log groups' retention; the review of the transformed template checks those.)"""
    outputs = stack.outputs
    api_id = outputs.ApiUrl.split("/execute-api/")[1].split("/")[0]
    assert [s["stageName"] for s in aws_client("apigateway").get_stages(restApiId=api_id)["item"]] == ["prod"]
    s3 = aws_client("s3")
    bucket = outputs.MediaBucketName
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    [statement] = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    sqs = aws_client("sqs")
    queues = (outputs.IngestQueueUrl, outputs.IngestDLQUrl, outputs.FailedQueueUrl, outputs.WebhookDLQUrl)
    for url in (*queues, outputs.ReprocessQueueUrl):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["SqsManagedSseEnabled"])["Attributes"]
        assert attributes["SqsManagedSseEnabled"] == "true"
    resources = aws_client("cloudformation").describe_stack_resources(StackName="photopipe")["StackResources"]
    declared = {r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::Logs::LogGroup"}
    assert len(declared) == 16  # 14 functions, the state machine, the API's access log
    existing = {g["logGroupName"] for g in aws_client("logs").describe_log_groups()["logGroups"]}
    assert declared <= existing
