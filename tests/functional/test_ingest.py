from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from photopipe_core.keys import derived_media_id, upload_key
from photopipe_core.models import PipelineInput, Status
from photopipe_core.repository import MediaRepository
from tests.events import s3_object_created, sqs_batch
from tests.functional.conftest import FakeContext, load_function


def executions(arn: str) -> list[dict[str, Any]]:
    return boto3.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"]


def test_drop_folder_object_starts_an_execution_named_after_its_media_id(
    stack: dict[str, Any], context: FakeContext
) -> None:
    # Given
    ingest = load_function("ingest")
    event = sqs_batch(s3_object_created("media", "drop/trip/a.jpg", etag="e1", size=99))
    # When
    result = ingest.lambda_handler(event, context)
    # Then
    assert result == {"batchItemFailures": []}
    [execution] = executions(stack["state_machine_arn"])
    media_id = derived_media_id("media", "drop/trip/a.jpg", "e1")
    assert execution["name"] == media_id
    described = boto3.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {
        "media_id": media_id,
        "bucket": "media",
        "key": "drop/trip/a.jpg",
        "etag": "e1",
        "size": 99,
    }


def test_duplicate_message_does_not_start_a_second_execution(stack: dict[str, Any], context: FakeContext) -> None:
    ingest = load_function("ingest")
    body = s3_object_created("media", upload_key("01JD3X4Y5Z6A7B8C9D0EFGHJKM"), etag="e1")
    # The same event twice in one batch, then once more in a later batch (S3/EventBridge deliver at least once).
    assert ingest.lambda_handler(sqs_batch(body, body), context) == {"batchItemFailures": []}
    assert ingest.lambda_handler(sqs_batch(body), context) == {"batchItemFailures": []}
    assert [e["name"] for e in executions(stack["state_machine_arn"])] == ["01JD3X4Y5Z6A7B8C9D0EFGHJKM"]


def test_an_original_whose_media_is_finished_starts_nothing_even_without_its_run(
    stack: dict[str, Any], context: FakeContext
) -> None:
    # Given a READY media whose execution is not in this stack (a library restored from a backup) and its
    # original put back, which S3 announces
    media_id = "01JD3X4Y5Z6A7B8C9D0EFGHJKM"
    repo = MediaRepository(boto3.resource("dynamodb").Table(stack["table"]))
    source = {"bucket": "media", "key": upload_key(media_id), "etag": "", "size": 9}
    repo.create_pending(media_id, "operator", source, 0)
    arn = f"{stack['state_machine_arn'].replace(':stateMachine:', ':execution:')}:{media_id}"
    repo.mark_processing(
        PipelineInput(media_id=media_id, bucket="media", key=upload_key(media_id), etag="e1", size=9), arn
    )
    repo.finish(media_id, arn, Status.READY, "finalize")
    ingest = load_function("ingest")
    # When
    result = ingest.lambda_handler(sqs_batch(s3_object_created("media", upload_key(media_id), etag="e1")), context)
    # Then no run starts and it stays READY
    assert result == {"batchItemFailures": []}
    assert executions(stack["state_machine_arn"]) == []
    item = repo.get(media_id)
    assert item is not None and item.status is Status.READY


def finished_drop_media(bucket: str, key: str, etag: str) -> str:
    """A READY media made from a drop-folder object of ``bucket`` (as a restore brings it into another bucket)."""
    media_id = derived_media_id(bucket, key, etag)
    repo = MediaRepository(boto3.resource("dynamodb").Table("media-table"))
    arn = f"arn:aws:states:us-east-1:123456789012:execution:pipeline:{media_id}"
    repo.mark_processing(PipelineInput(media_id=media_id, bucket=bucket, key=key, etag=etag, size=9), arn)
    repo.finish(media_id, arn, Status.READY, "finalize")
    return media_id


def test_a_drop_original_restored_into_another_bucket_starts_nothing_but_new_bytes_do(
    stack: dict[str, Any], context: FakeContext
) -> None:
    # Given a READY media made from drop/trip/a.jpg in the bucket a backup came from
    finished_drop_media("old-bucket", "drop/trip/a.jpg", "e1")
    ingest = load_function("ingest")
    # When the same bytes under the same key arrive in this stack's bucket (its derived media id differs)
    same = ingest.lambda_handler(sqs_batch(s3_object_created("media", "drop/trip/a.jpg", etag="e1")), context)
    # Then nothing starts; and other bytes under that name are a new photo
    assert same == {"batchItemFailures": []}
    assert executions(stack["state_machine_arn"]) == []
    ingest.lambda_handler(sqs_batch(s3_object_created("media", "drop/trip/a.jpg", etag="e2")), context)
    assert [e["name"] for e in executions(stack["state_machine_arn"])] == [
        derived_media_id("media", "drop/trip/a.jpg", "e2")
    ]


def test_key_outside_the_ingest_prefixes_starts_nothing(stack: dict[str, Any], context: FakeContext) -> None:
    ingest = load_function("ingest")
    result = ingest.lambda_handler(sqs_batch(s3_object_created("media", "media/X/thumb.webp")), context)
    assert result == {"batchItemFailures": []}
    assert executions(stack["state_machine_arn"]) == []


def test_unparseable_message_is_reported_as_a_batch_item_failure(stack: dict[str, Any], context: FakeContext) -> None:
    ingest = load_function("ingest")
    good = s3_object_created("media", "drop/good.jpg")
    event = sqs_batch(good, {"not": "an s3 event"})
    result = ingest.lambda_handler(event, context)
    # Only the bad record goes back to the queue (and, after maxReceiveCount, to IngestDLQ).
    assert result == {"batchItemFailures": [{"itemIdentifier": "message-1"}]}
    assert len(executions(stack["state_machine_arn"])) == 1


@pytest.mark.parametrize(
    ("spelled", "key"),
    [
        ("drop/My%20Photo%20%281%29.jpg", "drop/My Photo (1).jpg"),  # LocalStack: urllib's quote()
        ("drop/red+flower.jpg", "drop/red flower.jpg"),  # AWS: form encoding, a space is '+'
        ("drop/c%2B%2B/100%25%20%23%3F.jpg", "drop/c++/100% #?.jpg"),
        ("drop/%C3%89t%C3%A9%202024/%D0%BB%D0%B5%D1%82%D0%BE/%E5%A4%8F.jpg", "drop/Été 2024/лето/夏.jpg"),
        ("drop/%F0%9F%93%B7.jpg", "drop/📷.jpg"),
    ],
)
def test_a_key_spelled_url_encoded_in_the_event_starts_a_run_for_the_real_key(
    stack: dict[str, Any], context: FakeContext, spelled: str, key: str
) -> None:
    ingest = load_function("ingest")
    assert ingest.lambda_handler(sqs_batch(s3_object_created("media", spelled, etag="e1")), context) == {
        "batchItemFailures": []
    }
    [execution] = executions(stack["state_machine_arn"])
    assert execution["name"] == derived_media_id("media", key, "e1")
    described = boto3.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"])["key"] == key
