"""The step that ends a run gives its in-flight slot back, and every guarantee holds when the pipeline is an EXPRESS
workflow: its runs have ARNs with a unique suffix, no history, no status-change events, and a start is not
idempotent by name (a second run of the same photo ends at Validate, changing nothing)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from photopipe import samples
from photopipe_core import errors, reconcile
from photopipe_core.events import media_events
from photopipe_core.inflight import InFlightSlots
from photopipe_core.keys import upload_key
from photopipe_core.models import PipelineInput, Status, run_name
from photopipe_core.pipeline import PipelineStarter, StartOutcome
from photopipe_core.repository import media_repository
from photopipe_core.storage import failed_queue, ingest_queue, object_store
from tests.events import s3_object_created, sqs_batch
from tests.functional.conftest import FakeContext, load_function
from tests.functional.pipeline import EXECUTION, put_original, run_pipeline

MEDIA_ID = "01JD3X4Y5Z6A7B8C9D0EFGHJKX"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:pipeline"


def express_arn(name: str, suffix: str) -> str:
    return f"arn:aws:states:us-east-1:123456789012:express:pipeline:{name}:{suffix}"


def slots() -> InFlightSlots:
    return InFlightSlots(boto3.resource("dynamodb").Table("media-table"), 10)


def photo(seed: int = 3) -> bytes:
    return samples.jpeg_bytes(samples.photo(320, 240, seed=seed))


def history_statuses(media_id: str) -> list[str]:
    return [entry["status"] for entry in media_repository().history(media_id)]


def failed_express_media(context: FakeContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """A media whose EXPRESS run failed in Resize; its input and that run's step input."""
    media = put_original(upload_key(MEDIA_ID), photo())
    first = {"media": media, "execution_arn": express_arn(MEDIA_ID, "first")}
    load_function("validate").lambda_handler(first, context)
    load_function("outcome").fail_handler(
        {**first, "error": {"Error": "States.Timeout", "Cause": ""}, "failed_step": "resize"}, context
    )
    return media, first


def begin_retry() -> None:
    """What a retry does first: bind the media to the run named <media_id>-1 (by the ARN a STANDARD run would have)."""
    media_repository().begin_retry(
        MEDIA_ID, lambda n: f"{MACHINE.replace(':stateMachine:', ':execution:')}:{MEDIA_ID}-{n}", 0
    )


def test_run_names_of_both_workflow_types() -> None:
    assert run_name(EXECUTION) == "M1"
    assert run_name(express_arn("M1-2", "0c9f3b2e")) == "M1-2"


def test_each_ending_step_gives_the_runs_slot_back(stack: dict[str, Any], context: FakeContext) -> None:
    # Given three photos in flight, each holding its slot: one new, one a copy of it, one that is not an image
    body = photo()
    first = put_original("drop/a1.jpg", body)
    copy = put_original("drop/a2.jpg", body)
    broken = put_original("drop/a3.jpg", b"not an image at all")
    for media in (first, copy, broken):
        slots().try_acquire(media["media_id"], time.time())
    # When each run reaches its end (READY, DUPLICATE, REJECTED)
    assert run_pipeline(first, context, EXECUTION.replace("M1", "A1"))["status"] == "READY"
    assert run_pipeline(copy, context, EXECUTION.replace("M1", "A2"))["status"] == "DUPLICATE"
    state = {"media": broken, "execution_arn": EXECUTION.replace("M1", "A3")}
    with pytest.raises(errors.UnsupportedType) as refused:
        load_function("validate").lambda_handler(state, context)
    error = {"Error": "UnsupportedType", "Cause": f'{{"errorMessage": "{refused.value}"}}'}
    rejected = load_function("outcome").reject_handler({**state, "error": error, "failed_step": "validate"}, context)
    # Then every slot is free without any status-change event
    assert rejected["status"] == "REJECTED"
    assert slots().holders() == []
    assert slots().held() == 0


def test_the_fail_step_gives_the_slot_back_after_queueing_the_photo(
    stack: dict[str, Any], context: FakeContext
) -> None:
    media = put_original("drop/f1.jpg", photo())
    slots().try_acquire("F1", time.time())
    state = {"media": media, "execution_arn": EXECUTION.replace("M1", "F1")}
    load_function("validate").lambda_handler(state, context)
    result = load_function("outcome").fail_handler(
        {**state, "error": {"Error": "States.Timeout", "Cause": ""}, "failed_step": "resize"}, context
    )
    assert result["status"] == "FAILED"
    assert slots().held() == 0
    messages = boto3.client("sqs").receive_message(QueueUrl=stack["failed_queue_url"], MaxNumberOfMessages=10)
    assert [json.loads(m["Body"])["media_id"] for m in messages["Messages"]] == ["F1"]


def test_an_express_run_goes_through_and_frees_its_slot(stack: dict[str, Any], context: FakeContext) -> None:
    media = put_original(upload_key(MEDIA_ID), photo())
    slots().try_acquire(MEDIA_ID, time.time())
    arn = express_arn(MEDIA_ID, "first")
    assert run_pipeline(media, context, arn)["status"] == "READY"
    item = media_repository().get(MEDIA_ID)
    assert item is not None and item.execution_arn == arn
    assert slots().held() == 0


def test_a_second_express_run_of_a_finished_photo_changes_nothing(stack: dict[str, Any], context: FakeContext) -> None:
    # Given a photo an EXPRESS run made READY
    media = put_original(upload_key(MEDIA_ID), photo())
    run_pipeline(media, context, express_arn(MEDIA_ID, "first"))
    before = media_repository().get(MEDIA_ID)
    history = history_statuses(MEDIA_ID)
    # When a second run of the same event starts (EXPRESS starts are not idempotent), holding its own slot
    slots().try_acquire(MEDIA_ID, time.time())
    state = {"media": media, "execution_arn": express_arn(MEDIA_ID, "second")}
    # Then Validate ends it as superseded: the media, its history and its slot count are as they were
    with pytest.raises(errors.Superseded):
        load_function("validate").lambda_handler(state, context)
    assert media_repository().get(MEDIA_ID) == before
    assert history_statuses(MEDIA_ID) == history == ["PROCESSING", "READY"]
    assert slots().held() == 0


def test_a_second_express_run_while_the_first_processes_changes_nothing(
    stack: dict[str, Any], context: FakeContext
) -> None:
    # Given a run processing the photo, holding the slot of its name
    media = put_original(upload_key(MEDIA_ID), photo())
    slots().try_acquire(MEDIA_ID, time.time())
    first = {"media": media, "execution_arn": express_arn(MEDIA_ID, "first")}
    load_function("validate").lambda_handler(first, context)
    # When a second run of the same name (one start made twice, e.g. a retried request) reaches Validate
    with pytest.raises(errors.Superseded):
        load_function("validate").lambda_handler({**first, "execution_arn": express_arn(MEDIA_ID, "second")}, context)
    # Then it changed nothing, and the slot stays the first run's
    item = media_repository().get(MEDIA_ID)
    assert item is not None and item.status is Status.PROCESSING and item.execution_arn == first["execution_arn"]
    assert history_statuses(MEDIA_ID) == ["PROCESSING"]
    assert [h.run for h in slots().holders()] == [MEDIA_ID]


def test_ingest_does_not_start_a_second_express_run_while_the_first_holds_the_slot(
    stack: dict[str, Any], context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKFLOW_TYPE", "EXPRESS")
    started: list[str] = []
    start = PipelineStarter.start

    def spy(starter: PipelineStarter, media: PipelineInput, attempt: int = 0) -> StartOutcome:
        started.append(media.media_id)
        return start(starter, media, attempt)

    monkeypatch.setattr(PipelineStarter, "start", spy)
    ingest = load_function("ingest")
    body = s3_object_created("media", upload_key(MEDIA_ID), etag="e1")
    # When the same event is delivered twice while its run is in flight
    ingest.lambda_handler(sqs_batch(body), context)
    ingest.lambda_handler(sqs_batch(body), context)
    # Then one run started, holding one slot, and the repeat waits in the queue (it starts nothing while that run
    # holds the slot; after it, the media is finished)
    assert started == [MEDIA_ID]
    assert [h.run for h in slots().holders()] == [MEDIA_ID]
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack["ingest_queue_url"], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"


def test_an_express_redrive_run_is_known_by_its_name(stack: dict[str, Any], context: FakeContext) -> None:
    # Given a media whose EXPRESS run failed, and a retry bound to the run named <media_id>-1
    media, first = failed_express_media(context)
    repo = media_repository()
    begin_retry()
    # When that run starts as EXPRESS (its ARN has a suffix nobody could predict), and a stray run of the first name
    retry = express_arn(f"{MEDIA_ID}-1", "retry")
    with pytest.raises(errors.Superseded):
        load_function("validate").lambda_handler({**first, "execution_arn": express_arn(MEDIA_ID, "stray")}, context)
    # Then only the retry processes the media, to READY
    assert run_pipeline(media, context, retry)["status"] == "READY"
    item = repo.get(MEDIA_ID)
    assert item is not None and item.status is Status.READY and item.execution_arn == retry
    assert history_statuses(MEDIA_ID) == ["PROCESSING", "FAILED", "PROCESSING", "READY"]


def test_of_two_express_runs_of_one_retry_only_the_first_processes(stack: dict[str, Any], context: FakeContext) -> None:
    # Given a FAILED media and a retry bound to the run named <media_id>-1, which holds its slot
    media, first = failed_express_media(context)
    repo = media_repository()
    begin_retry()
    slots().try_acquire(f"{MEDIA_ID}-1", time.time())
    # When that one start became two runs of the name
    one, other = express_arn(f"{MEDIA_ID}-1", "one"), express_arn(f"{MEDIA_ID}-1", "other")
    load_function("validate").lambda_handler({**first, "execution_arn": one}, context)
    with pytest.raises(errors.Superseded):
        load_function("validate").lambda_handler({**first, "execution_arn": other}, context)
    # Then the first processes it, keeping its slot until it ends
    item = repo.get(MEDIA_ID)
    assert item is not None and item.status is Status.PROCESSING and item.execution_arn == one
    assert [h.run for h in slots().holders()] == [f"{MEDIA_ID}-1"]
    assert run_pipeline(media, context, one)["status"] == "READY"
    assert slots().held() == 0


def test_a_stray_express_run_does_not_redo_a_failed_photo(stack: dict[str, Any], context: FakeContext) -> None:
    # Given a photo whose run FAILED (its message is in FailedQueue: a retry is how it runs again)
    media, first = failed_express_media(context)
    # When a second run of its first start comes late
    with pytest.raises(errors.Superseded):
        load_function("validate").lambda_handler({**first, "execution_arn": express_arn(MEDIA_ID, "late")}, context)
    # Then it is still FAILED, as it was
    item = media_repository().get(MEDIA_ID)
    assert item is not None and item.status is Status.FAILED and item.attempts == 0
    assert history_statuses(MEDIA_ID) == ["PROCESSING", "FAILED"]


def test_a_step_whose_slot_cannot_be_given_back_still_succeeds(
    stack: dict[str, Any], context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(self: InFlightSlots, run: str) -> bool:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem")

    monkeypatch.setattr(InFlightSlots, "release", unavailable)
    media = put_original(upload_key(MEDIA_ID), photo())
    assert run_pipeline(media, context, express_arn(MEDIA_ID, "r"))["status"] == "READY"


def test_the_sweep_frees_an_express_holder_only_once_its_run_must_have_ended(
    stack: dict[str, Any], context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKFLOW_TYPE", "EXPRESS")
    now = time.time()
    slots().try_acquire("young", now - 200)  # a run may last 300 s; it may still be running
    slots().try_acquire("old", now - 500)
    assert load_function("slots").sweep_handler({}, context) == {"freed": ["old"]}
    assert [h.run for h in slots().holders()] == ["young"]


def test_the_reconciler_fails_an_express_run_only_once_it_must_have_ended(
    stack: dict[str, Any], context: FakeContext
) -> None:
    # Given a media PROCESSING by an EXPRESS run (which cannot be described)
    media = put_original(upload_key(MEDIA_ID), photo())
    load_function("validate").lambda_handler({"media": media, "execution_arn": express_arn(MEDIA_ID, "r")}, context)
    sfn = boto3.client("stepfunctions")

    def reconciled(after: timedelta) -> list[str]:
        return reconcile.run(
            object_store(),
            media_repository(),
            ingest_queue(),
            failed_queue(),
            sfn,
            datetime.now(UTC) + after,
            media_events(),
            stuck_after=timedelta(0),
        ).failed

    assert reconciled(timedelta(minutes=2)) == []  # asked with no wait at all, it may still be running
    assert reconciled(timedelta(minutes=6)) == [MEDIA_ID]
