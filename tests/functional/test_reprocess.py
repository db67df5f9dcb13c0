"""Reprocess: a READY media rendered again with changed settings gets exactly the new variant set (old variants
removed), a history entry and the new fingerprint; a second run, and a media not READY, change nothing."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from photopipe import samples
from photopipe.failures import Failures
from photopipe_core.keys import new_media_id, upload_key
from photopipe_core.models import Status
from photopipe_core.repository import media_repository
from photopipe_core.settings import get_settings, render_fingerprint
from tests.events import sqs_batch
from tests.functional.conftest import FakeContext, load_function
from tests.functional.pipeline import put_original, run_pipeline
from tests.functional.test_inflight import MotoStack

NEW_VARIANTS = "thumb:128,large:2048,square:300"


def keys(prefix: str) -> dict[str, str]:
    listed = boto3.client("s3").list_objects_v2(Bucket="media", Prefix=prefix).get("Contents", [])
    return {obj["Key"]: obj["ETag"] for obj in listed}


def reprocess(context: FakeContext, *media_ids: str) -> dict[str, Any]:
    batch = sqs_batch(*({"media_id": media_id} for media_id in media_ids))
    result: dict[str, Any] = load_function("reprocess").lambda_handler(batch, context)
    return result


def test_a_ready_media_is_rendered_again_with_the_new_variant_set_and_once_only(
    stack: dict[str, Any], context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_pipeline(put_original("drop/r1.jpg", samples.jpeg_bytes(samples.photo(1200, 800, seed=91))), context)
    before = media_repository().get("R1")
    assert before is not None and before.rendered_with == get_settings().render_fingerprint
    assert set(keys("media/R1/")) == {f"media/R1/{n}.webp" for n in ("thumb", "medium", "large")}
    monkeypatch.setenv("VARIANTS", NEW_VARIANTS)

    assert reprocess(context, "R1") == {"batchItemFailures": []}

    after = media_repository().get("R1")
    assert after is not None and after.status == Status.READY
    assert after.rendered_with == render_fingerprint(NEW_VARIANTS, 80, 4) != before.rendered_with
    assert {name: (v.width, v.height) for name, v in after.variants.items()} == {
        "thumb": (128, 85),
        "large": (1200, 800),  # never upscaled
        "square": (300, 200),
    }
    stored = keys("media/R1/")
    assert set(stored) == {v.key for v in after.variants.values()}  # at keys of their own; the old ones are gone
    assert all(key.startswith(f"media/R1/{after.rendered_with}/") for key in stored)
    body = boto3.client("s3").get_object(Bucket="media", Key=after.variants["square"].key)["Body"].read()
    assert body[:4] == b"RIFF" and body[8:12] == b"WEBP"
    history = media_repository().history("R1")
    [entry] = [h for h in history if h.get("step") == "reprocess"]
    assert entry["status"] == "READY" and entry["variants"] == "large, square, thumb"
    assert after.placeholder is not None and after.version == before.version  # (from the new smallest variant)

    assert reprocess(context, "R1") == {"batchItemFailures": []}  # again: nothing to do
    assert keys("media/R1/") == stored
    assert len([h for h in media_repository().history("R1") if h.get("step") == "reprocess"]) == 1


def test_media_not_ready_are_left_as_they_are(stack: dict[str, Any], context: FakeContext) -> None:
    media = put_original("drop/r2.jpg", samples.jpeg_bytes(samples.photo(300, 200, seed=92)))
    load_function("validate").lambda_handler({"media": media, "execution_arn": "arn:exec:r2"}, context)
    assert reprocess(context, "R2", "NOSUCH") == {"batchItemFailures": []}
    item = media_repository().get("R2")
    assert item is not None and item.status == Status.PROCESSING and item.variants == {}
    assert keys("media/R2/") == {}


def test_a_media_whose_original_is_gone_fails_its_record_for_the_dlq(
    stack: dict[str, Any], context: FakeContext
) -> None:
    run_pipeline(put_original("drop/r3.jpg", samples.jpeg_bytes(samples.photo(300, 200, seed=93))), context)
    boto3.client("s3").delete_object(Bucket="media", Key="drop/r3.jpg")
    item = media_repository().get("R3")
    assert item is not None
    boto3.resource("dynamodb").Table("media-table").update_item(
        Key={"pk": "MEDIA#R3", "sk": "META"}, UpdateExpression="REMOVE rendered_with"
    )
    result = reprocess(context, "R3")
    assert len(result["batchItemFailures"]) == 1
    assert json.dumps(media_repository().get("R3").variants, default=str) == json.dumps(item.variants, default=str)  # type: ignore[union-attr]


def test_an_api_upload_is_rendered_again_from_its_original_under_uploads(
    stack: dict[str, Any], context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    media_id = new_media_id()
    source = {"bucket": "media", "key": upload_key(media_id), "etag": "", "size": 1}
    media_repository().create_pending(media_id, "operator", source, int(time.time()) + 3600)
    put_original(upload_key(media_id), samples.jpeg_bytes(samples.photo(640, 480, seed=94)))
    run_pipeline({**source, "media_id": media_id}, context, execution=f"arn:exec:{media_id}")
    monkeypatch.setenv("VARIANTS", "thumb:100")

    assert reprocess(context, media_id) == {"batchItemFailures": []}

    item = media_repository().get(media_id)
    assert item is not None and {n: v.width for n, v in item.variants.items()} == {"thumb": 100}
    assert set(keys(f"media/{media_id}/")) == {item.variants["thumb"].key}


def test_a_media_that_could_not_be_rendered_again_is_listed_as_failed_and_a_redrive_queues_it_again(
    stack: dict[str, Any],
) -> None:
    # Given a media id the reprocess queue gave up on (moved to ReprocessDLQ by its redrive policy)
    moto_stack = MotoStack(stack)
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=moto_stack.outputs.ReprocessDLQUrl, MessageBody=json.dumps({"media_id": "R9"}))
    failures = Failures(moto_stack, media_repository())  # type: ignore[arg-type]

    # Then `photopipe failed` lists it, and a redrive sends it back to ReprocessQueue, once
    [failure] = failures.pending()
    assert (failure.queue, failure.media_id) == ("ReprocessDLQ", "R9")
    assert "rendered again" in failure.detail
    assert failures.redrive() == [("R9", "event sent back to ReprocessQueue")]
    [message] = sqs.receive_message(QueueUrl=moto_stack.outputs.ReprocessQueueUrl).get("Messages", [])
    assert json.loads(message["Body"]) == {"media_id": "R9"}
    assert failures.pending() == []
