"""In-flight slots: at most MaxInFlight runs hold one; taking and giving back are idempotent; ingest waits for one,
and an event that finds none in time goes back to the queue as a new, delayed message (never to the DLQ)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from chalice.test import Client

from photopipe import failures as failures_module
from photopipe import samples
from photopipe.failures import Failures
from photopipe_core.inflight import InFlightSlots, Take, in_flight_slots, sweep
from photopipe_core.keys import upload_key
from photopipe_core.models import OPERATOR, Status
from photopipe_core.pipeline import pipeline_starter
from photopipe_core.repository import InvalidTransition, MediaRepository, media_repository
from photopipe_core.storage import MessageQueue
from tests.events import s3_object_created, sqs_batch
from tests.functional.conftest import ApiKeys, FakeContext, KeyedClient, load_function
from tests.functional.pipeline import EXECUTION, put_original

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


FAILED_ID = "01JD3X4Y5Z6A7B8C9D0EFGHJKF"


def failed_media(context: FakeContext, media_id: str = FAILED_ID, seed: int = 9) -> dict[str, Any]:
    """A media whose first run failed in Resize (its FailedQueue message sent)."""
    media = put_original(upload_key(media_id), samples.jpeg_bytes(samples.photo(300, 200, seed=seed)))
    state = {"media": media, "execution_arn": EXECUTION}
    load_function("validate").lambda_handler(state, context)
    load_function("outcome").fail_handler(
        {**state, "error": {"Error": "States.Timeout", "Cause": ""}, "failed_step": "resize"}, context
    )
    return media


@pytest.fixture
def api_client(api_keys: ApiKeys) -> Callable[[], contextlib.AbstractContextManager[KeyedClient]]:
    """Opens the API in-process, called with a key of the operator (who owns the drop-folder media here)."""
    key = api_keys.make(OPERATOR)

    @contextlib.contextmanager
    def opened() -> Iterator[KeyedClient]:
        with Client(load_function("api", "app").app) as client:
            yield KeyedClient(client, key)

    return opened


def test_a_retry_takes_a_slot_for_the_run_it_starts(
    stack: dict[str, Any],
    context: FakeContext,
    monkeypatch: pytest.MonkeyPatch,
    api_client: Callable[[], contextlib.AbstractContextManager[KeyedClient]],
) -> None:
    monkeypatch.setenv("MAX_IN_FLIGHT", "1")
    failed_media(context)
    with api_client() as client:
        response = client.http.post(f"/v1/media/{FAILED_ID}/retry")
    assert response.status_code == 202, response.body
    assert [e["name"] for e in executions(stack["state_machine_arn"])] == [f"{FAILED_ID}-1"]
    assert [h.run for h in slots(1).holders()] == [f"{FAILED_ID}-1"]  # freed when that run closes


def test_a_retry_while_every_slot_is_taken_is_429_and_changes_nothing(
    stack: dict[str, Any],
    context: FakeContext,
    monkeypatch: pytest.MonkeyPatch,
    api_client: Callable[[], contextlib.AbstractContextManager[KeyedClient]],
) -> None:
    # Given one slot, held by another run
    monkeypatch.setenv("MAX_IN_FLIGHT", "1")
    failed_media(context)
    slots(1).try_acquire("other", time.time())
    # When the failed media is retried
    with api_client() as client:
        response = client.http.post(f"/v1/media/{FAILED_ID}/retry")
    # Then the client is told to come back, and the media is as it was: FAILED, no run, no slot, no attempt used
    assert response.status_code == 429
    assert response.json_body["error"]["code"] == "at_capacity"
    assert int(response.headers["Retry-After"]) >= 1
    assert executions(stack["state_machine_arn"]) == []
    assert [h.run for h in slots(1).holders()] == ["other"]
    item = media_repository().get(FAILED_ID)
    assert item is not None and item.status is Status.FAILED and item.attempts == 0
    # And once the slot is free, the same retry starts the run
    slots(1).release("other")
    with api_client() as client:
        assert client.http.post(f"/v1/media/{FAILED_ID}/retry").status_code == 202


def test_retries_racing_for_one_failed_media_start_one_run_holding_one_slot(
    stack: dict[str, Any], context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_IN_FLIGHT", "5")
    failed_media(context)
    starter = pipeline_starter()
    # When a second retry comes in after the first took its slot but before it moved the media
    outcomes = []
    begin_retry = MediaRepository.begin_retry

    def interleaved(repo: MediaRepository, *args: Any, **kwargs: Any) -> int:
        if not outcomes:
            outcomes.append("second")
            with pytest.raises(InvalidTransition):
                starter.redrive(FAILED_ID, media_repository(), in_flight_slots())
        return begin_retry(repo, *args, **kwargs)

    monkeypatch.setattr(MediaRepository, "begin_retry", interleaved)
    assert starter.redrive(FAILED_ID, media_repository(), in_flight_slots()) == f"{FAILED_ID}-1"
    assert [e["name"] for e in executions(stack["state_machine_arn"])] == [f"{FAILED_ID}-1"]
    assert [h.run for h in slots(5).holders()] == [f"{FAILED_ID}-1"]


class MotoStack:
    """What ``photopipe.failures.Failures`` uses of a deployed stack, on the moto resources of the fixture."""

    def __init__(self, stack: dict[str, Any]) -> None:
        self.outputs = SimpleNamespace(
            FailedQueueUrl=stack["failed_queue_url"],
            IngestQueueUrl=stack["ingest_queue_url"],
            IngestDLQUrl=boto3.client("sqs").create_queue(QueueName="ingest-dlq")["QueueUrl"],
            WebhookDLQUrl=stack["webhook_dlq_url"],
            ReprocessQueueUrl=boto3.client("sqs").create_queue(QueueName="reprocess")["QueueUrl"],
            ReprocessDLQUrl=boto3.client("sqs").create_queue(QueueName="reprocess-dlq")["QueueUrl"],
            PipelineStateMachineArn=stack["state_machine_arn"],
        )

    @staticmethod
    def client(service: str) -> Any:
        return boto3.client(service)


def cli_failures(stack: dict[str, Any], limit: int) -> Failures:
    failures = Failures(MotoStack(stack), media_repository())  # type: ignore[arg-type]
    failures.__dict__["_slots"] = slots(limit)  # the stack's MaxInFlight, as `stack_slots` reads it
    return failures


def visible_messages(url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_photopipe_redrive_waits_for_a_slot_then_starts_the_run(
    stack: dict[str, Any], context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a failed media (its message in FailedQueue) and the only slot taken, freed a moment later
    failed_media(context)
    slots(1).try_acquire("other", time.time())
    freeing = threading.Timer(1.5, lambda: slots(1).release("other"))
    freeing.start()
    told: list[str] = []
    # When everything that failed is redriven
    results = cli_failures(stack, 1).redrive(waiting=told.append)
    freeing.join()
    # Then it waited (saying so), then started one run holding the slot, and its message is gone
    assert results == [(FAILED_ID, f"started {FAILED_ID}-1")]
    assert told and "waiting for an in-flight slot" in told[0]
    assert [h.run for h in slots(1).holders()] == [f"{FAILED_ID}-1"]
    assert [e["name"] for e in executions(stack["state_machine_arn"])] == [f"{FAILED_ID}-1"]
    assert visible_messages(stack["failed_queue_url"]) == 0


def test_photopipe_redrive_leaves_a_media_failed_with_its_message_when_no_slot_frees_up(
    stack: dict[str, Any], context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(failures_module, "SLOT_WAIT_SECONDS", 1.0)
    failed_media(context)
    slots(1).try_acquire("other", time.time())
    [(media_id, outcome)] = cli_failures(stack, 1).redrive()
    assert media_id == FAILED_ID and outcome.startswith("not started")
    assert executions(stack["state_machine_arn"]) == []
    item = media_repository().get(FAILED_ID)
    assert item is not None and item.status is Status.FAILED
    assert visible_messages(stack["failed_queue_url"]) == 1  # still there for a later redrive


def test_photopipe_redrive_waits_in_vain_once_not_for_every_media(
    stack: dict[str, Any], context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two failed media and a pipeline whose only slot stays taken
    monkeypatch.setattr(failures_module, "SLOT_WAIT_SECONDS", 1.0)
    second = "01JD3X4Y5Z6A7B8C9D0EFGHJKG"
    failed_media(context)
    failed_media(context, second, seed=10)
    slots(1).try_acquire("other", time.time())
    told: list[str] = []
    # When everything that failed is redriven
    results = dict(cli_failures(stack, 1).redrive(waiting=told.append))
    # Then the first media waited (and was told so), the second was tried once; both stay FAILED with their message
    assert set(results) == {FAILED_ID, second}
    assert all(outcome.startswith("not started") for outcome in results.values())
    waited_for = {line.split(":")[0] for line in told}
    assert len(waited_for) == 1
    assert visible_messages(stack["failed_queue_url"]) == 2


def test_the_scheduled_sweep_gives_back_the_slot_of_a_run_that_is_not_running(
    stack: dict[str, Any], context: FakeContext
) -> None:
    # Given a slot taken ten minutes ago by a run that closed without its event reaching us
    sfn = boto3.client("stepfunctions")
    execution = sfn.start_execution(stateMachineArn=stack["state_machine_arn"], name=MEDIA_ID, input="{}")
    sfn.stop_execution(executionArn=execution["executionArn"])
    slots(5).try_acquire(MEDIA_ID, time.time() - 600)
    # When the schedule runs the sweep
    result = load_function("slots").sweep_handler({}, context)
    # Then the slot is free
    assert result == {"freed": [MEDIA_ID]}
    assert slots(5).held() == 0
