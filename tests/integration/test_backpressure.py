"""Backpressure: a burst of uploads waits in IngestQueue; at most MaxInFlight photos are in the pipeline at once.

Every photo still ends with a final status and exactly one execution, nothing reaches the dead-letter queue for
waiting, and a run that is stopped mid-way gives its in-flight slot back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import boto3

from photopipe.media import MediaReader
from photopipe.soak import follow, send_burst, tiny_photo, upload_bytes
from photopipe.stack import LOCAL_CREDENTIALS, Stack
from photopipe.upload import ApiClient
from photopipe_core.inflight import InFlightSlots
from photopipe_core.models import Status

BURST = 300
CLIENTS = 32


def max_in_flight(stack: Stack, aws_client: Callable[[str], Any]) -> int:
    described = aws_client("cloudformation").describe_stacks(StackName=stack.settings.stack_name)["Stacks"][0]
    return int(next(p["ParameterValue"] for p in described["Parameters"] if p["ParameterKey"] == "MaxInFlight"))


def slots(stack: Stack, limit: int) -> InFlightSlots:
    dynamodb = boto3.resource(
        "dynamodb", endpoint_url=stack.settings.endpoint_url, region_name="us-east-1", **LOCAL_CREDENTIALS
    )
    return InFlightSlots(dynamodb.Table(stack.outputs.MediaTableName), limit)


class Sampler(threading.Thread):
    """Samples, every 0.2 s until stopped, the photos in the pipeline — RUNNING executions whose photo has no final
    status yet (the step that writes it gives the slot back; the execution closes a moment later) — and IngestQueue's
    depth."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self._repository = MediaReader(stack).repository
        self._sfn = stack.client("stepfunctions")
        self._sqs = stack.client("sqs")
        self._outputs = stack.outputs
        self._stop = threading.Event()
        self.running: list[int] = []
        self.depth: list[int] = []

    def run(self) -> None:
        while not self._stop.wait(0.2):
            pages = self._sfn.get_paginator("list_executions").paginate(
                stateMachineArn=self._outputs.PipelineStateMachineArn, statusFilter="RUNNING"
            )
            running = [execution["name"] for page in pages for execution in page["executions"]]
            statuses: dict[str, Status] = {}
            for start in range(0, len(running), 100):  # a BatchGetItem reads 100 at most
                statuses |= self._repository.statuses(running[start : start + 100])
            self.running.append(sum(1 for name in running if not statuses.get(name, Status.PROCESSING).is_terminal))
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=self._outputs.IngestQueueUrl,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
            )["Attributes"]
            self.depth.append(sum(int(v) for v in attributes.values()))

    def stop(self) -> None:
        self._stop.set()
        self.join(timeout=10)


def test_a_burst_waits_in_the_queue_and_never_exceeds_max_in_flight(
    stack: Stack, aws_client: Callable[[str], Any], operator_key: str
) -> None:
    # Given the deployed stack's limit and a sampler watching the pipeline and the queue
    limit = max_in_flight(stack, aws_client)
    assert 1 <= limit < BURST
    sampler = Sampler(stack)
    sampler.start()
    run = f"burst-{time.time_ns()}"
    try:
        # When 300 photos are uploaded by 32 clients at once
        media_ids = send_burst(
            ApiClient(stack.outputs.ApiUrl, operator_key),
            [(f"b{n}.jpg", tiny_photo(n, run)) for n in range(BURST)],
            CLIENTS,
        )
        statuses = follow(MediaReader(stack), media_ids, timeout=900)
    finally:
        sampler.stop()
    # Then every photo is READY, through exactly one execution named after it
    assert [media_id for media_id, status in statuses.items() if status is not Status.READY] == []
    pages = (
        aws_client("stepfunctions")
        .get_paginator("list_executions")
        .paginate(stateMachineArn=stack.outputs.PipelineStateMachineArn)
    )
    names = [e["name"] for page in pages for e in page["executions"]]
    assert all(names.count(media_id) == 1 for media_id in media_ids)
    # never more than MaxInFlight running at once, while the rest waited in the queue
    assert sampler.running, "the sampler took no samples"
    assert max(sampler.running) <= limit, f"{max(sampler.running)} photos were in the pipeline at once (limit {limit})"
    assert max(sampler.depth) > 0, "the burst never waited in IngestQueue"
    # nothing went to the dead-letter queue, and every slot was given back
    dlq = aws_client("sqs").get_queue_attributes(
        QueueUrl=stack.outputs.IngestDLQUrl, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert dlq["ApproximateNumberOfMessages"] == "0"
    assert wait_until(lambda: slots(stack, limit).held() == 0, 30), "in-flight slots were not all given back"


def test_a_run_stopped_mid_way_gives_its_slot_back(
    stack: Stack, aws_client: Callable[[str], Any], operator_key: str
) -> None:
    # Given a photo whose run holds a slot and is stuck in Resize (its function throttled, so the step retries)
    limit = max_in_flight(stack, aws_client)
    semaphore = slots(stack, limit)
    lam, sfn = aws_client("lambda"), aws_client("stepfunctions")
    resize = aws_client("cloudformation").describe_stack_resource(
        StackName=stack.settings.stack_name, LogicalResourceId="ResizeFunction"
    )["StackResourceDetail"]["PhysicalResourceId"]
    lam.put_function_concurrency(FunctionName=resize, ReservedConcurrentExecutions=0)
    try:
        photo = tiny_photo(0, f"stop-{time.time_ns()}")
        media_id = upload_bytes(ApiClient(stack.outputs.ApiUrl, operator_key), "stopped.jpg", photo)
        arn = stack.outputs.execution_arn(media_id)
        assert wait_until(lambda: media_id in {h.run for h in semaphore.holders()}, 60), "the run took no slot"
        assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
        # When its execution is stopped mid-way (as an operator, a timeout or a crash would end it)
        sfn.stop_execution(executionArn=arn, error="Test.Stopped", cause="stopped by the test")
    finally:
        lam.delete_function_concurrency(FunctionName=resize)
    # Then the execution closes as stopped, and its slot is given back
    assert wait_until(lambda: sfn.describe_execution(executionArn=arn)["status"] == "ABORTED", 30)
    assert wait_until(lambda: media_id not in {h.run for h in semaphore.holders()}, 30), "the slot was not given back"


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return condition()
