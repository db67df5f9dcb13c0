"""In-flight slots: at most MaxInFlight runs hold one; taking and giving back are idempotent; ingest waits for one,
and an event that finds none in time goes back to the queue as a new, delayed message (never to the DLQ)."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from photopipe_core.inflight import InFlightSlots, Take, sweep
from photopipe_core.keys import upload_key
from photopipe_core.storage import MessageQueue
from tests.events import s3_object_created, sqs_batch
from tests.functional.conftest import FakeContext, load_function

MEDIA_ID = "01JD3X4Y5Z6A7B8C9D0EFGHJKM"


def slots(limit: int) -> InFlightSlots:
    return InFlightSlots(boto3.resource("dynamodb").Table("media-table"), limit)


def executions(arn: str) -> list[dict[str, Any]]:
    return boto3.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"]


def test_no_more_than_the_limit_hold_a_slot_and_repeats_change_nothing(stack: dict[str, Any]) -> None:
    # Given two slots
    semaphore = slots(2)
    # When three runs ask, one of them twice
    taken = [semaphore.try_acquire(run, time.time()) for run in ("a", "b", "c", "a")]
    # Then
    assert taken == [Take.ACQUIRED, Take.ACQUIRED, Take.FULL, Take.HELD]
    assert semaphore.held() == 2
    assert semaphore.release("a") is True
    assert semaphore.release("a") is False  # given back once only
    assert semaphore.release("never-took-one") is False
    assert semaphore.try_acquire("c", time.time()) is Take.ACQUIRED
    assert semaphore.held() == 2
    assert sorted(h.run for h in semaphore.holders()) == ["b", "c"]


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        InFlightSlots(object(), 0)


def test_sweep_frees_only_old_holders_whose_execution_is_not_running(stack: dict[str, Any]) -> None:
    semaphore = slots(10)
    now = time.time()
    semaphore.try_acquire("closed", now - 600)
    semaphore.try_acquire("running", now - 600)
    semaphore.try_acquire("young", now - 5)
    running = {"running"}
    freed = sweep(semaphore, lambda run: run in running, now, grace_seconds=120)
    assert freed == ["closed"]
    assert sorted(h.run for h in semaphore.holders()) == ["running", "young"]
    assert semaphore.held() == 2


def test_ingest_takes_a_slot_for_the_run_it_starts(
    stack: dict[str, Any], context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_IN_FLIGHT", "3")
    ingest = load_function("ingest")
    body = s3_object_created("media", upload_key(MEDIA_ID), etag="e1")
    assert ingest.lambda_handler(sqs_batch(body, body), context) == {"batchItemFailures": []}
    assert [e["name"] for e in executions(stack["state_machine_arn"])] == [MEDIA_ID]
    assert [h.run for h in slots(3).holders()] == [MEDIA_ID]  # the repeat did not take a second slot


def test_event_without_a_free_slot_waits_in_the_queue_as_a_new_delayed_message(
    stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given one slot, held by another run, and an invocation with little time left
    monkeypatch.setenv("MAX_IN_FLIGHT", "1")
    slots(1).try_acquire("other", time.time())
    ingest = load_function("ingest")
    short = FakeContext()
    short.get_remaining_time_in_millis = lambda: int((ingest.RESERVE_SECONDS + 0.3) * 1000)  # type: ignore[method-assign]
    body = s3_object_created("media", upload_key(MEDIA_ID), etag="e1")
    sent: list[tuple[int, int]] = []
    send_later = MessageQueue.send_later

    def spy(queue: MessageQueue, message: str, delay_seconds: int, waits: int) -> None:
        sent.append((waits, delay_seconds))
        send_later(queue, message, delay_seconds, waits)

    monkeypatch.setattr(MessageQueue, "send_later", spy)
    # When
    result = ingest.lambda_handler(sqs_batch(body), short)
    # Then the record is done with (not a failed delivery), no run started, and a copy waits, delayed, counted
    assert result == {"batchItemFailures": []}
    assert executions(stack["state_machine_arn"]) == []
    sqs = boto3.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=stack["ingest_queue_url"], AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    assert sent == [(1, 10)]  # waited once; out of sight for 10 s

    # When the copy comes back after the slot was given back, it starts the run
    slots(1).release("other")
    record_event = sqs_batch(body)
    record_event["Records"][0]["messageAttributes"] = {
        "photopipe-waits": {"stringValue": "1", "dataType": "Number", "stringListValues": [], "binaryListValues": []}
    }
    assert ingest.lambda_handler(record_event, FakeContext()) == {"batchItemFailures": []}
    assert [e["name"] for e in executions(stack["state_machine_arn"])] == [MEDIA_ID]


def test_a_repeated_event_for_a_closed_run_gives_its_new_slot_back(stack: dict[str, Any], context: FakeContext) -> None:
    # Given a run that started, closed and gave its slot back
    ingest = load_function("ingest")
    body = s3_object_created("media", upload_key(MEDIA_ID), etag="e1")
    ingest.lambda_handler(sqs_batch(body), context)
    sfn = boto3.client("stepfunctions")
    [execution] = executions(stack["state_machine_arn"])
    sfn.stop_execution(executionArn=execution["executionArn"])
    slots(100).release(MEDIA_ID)
    # When the same event comes again (at-least-once delivery)
    assert ingest.lambda_handler(sqs_batch(body), context) == {"batchItemFailures": []}
    # Then no second run, and no slot left taken
    assert len(executions(stack["state_machine_arn"])) == 1
    assert slots(100).held() == 0


def test_release_handler_gives_back_the_slot_of_a_closed_execution(stack: dict[str, Any], context: FakeContext) -> None:
    slots(5).try_acquire(MEDIA_ID, time.time())
    handlers = load_function("slots")
    event = {
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {"name": MEDIA_ID, "status": "ABORTED", "stateMachineArn": stack["state_machine_arn"]},
    }
    assert handlers.release_handler(event, context) == {"run": MEDIA_ID, "released": True}
    assert handlers.release_handler(event, context) == {"run": MEDIA_ID, "released": False}
    assert slots(5).held() == 0
