"""Each step handler's contract, in-process against moto, chained the way the state machine chains them."""

from __future__ import annotations

import base64
import io
import json
import random
import re
import time
from typing import Any

import boto3
import pytest
import thash
from PIL import Image

from photopipe import samples
from photopipe_core import errors, imaging, steps
from photopipe_core.models import OPERATOR, PipelineInput, SourceFacts, Status, StepInput
from photopipe_core.repository import (
    SIMILAR_LIMIT,
    SIMILAR_MAX_DISTANCE,
    InvalidTransition,
    media_repository,
)
from photopipe_core.rules import Limits
from photopipe_core.settings import get_settings
from photopipe_core.storage import OriginalChanged
from tests import corpus
from tests.functional.conftest import FakeContext, load_function, template_resource
from tests.functional.pipeline import EXECUTION, put_original, run_pipeline


def keys(prefix: str) -> list[str]:
    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="media", Prefix=prefix).get("Contents", [])]


def test_a_photo_goes_through_every_step_to_ready(stack: dict[str, Any], context: FakeContext) -> None:
    exif = corpus.exif_with(orientation=6, gps=True, camera=True, taken_at="2023:01:02 03:04:05")
    body = samples.jpeg_bytes(samples.photo(3000, 2000, seed=1), exif=exif)
    media = put_original("drop/m1.jpg", body)

    result = run_pipeline(media, context)

    assert result == {"media_id": "M1", "status": "READY"}
    item = media_repository().get("M1")
    assert item is not None and item.status == Status.READY
    assert (item.width, item.height) == (2000, 3000)  # orientation 6: portrait once upright
    assert item.taken_at == "2023-01-02T03:04:05"
    assert item.facts is not None and item.facts.gps is not None and item.facts.camera_model == "PC-1"
    assert {n: (v.width, v.height) for n, v in item.variants.items()} == {
        "large": (1365, 2048),
        "medium": (683, 1024),
        "thumb": (171, 256),
    }
    s3 = boto3.client("s3")
    for name, variant in item.variants.items():
        assert variant.key == f"media/M1/{name}.webp"
        obj = s3.get_object(Bucket="media", Key=variant.key)
        body = obj["Body"].read()
        assert obj["ContentType"] == "image/webp"
        assert obj["CacheControl"] == "public, max-age=31536000, immutable"
        assert len(body) == variant.bytes
        decoded = Image.open(io.BytesIO(body))
        assert decoded.size == (variant.width, variant.height)
        assert len(decoded.getexif()) == 0
    assert keys("work/M1/") == []  # intermediates are removed once READY
    assert [h["status"] for h in media_repository().history("M1")] == ["PROCESSING", "READY"]
    # its placeholder is of the upright photo: a portrait ThumbHash, and a colour
    assert item.placeholder is not None and re.fullmatch("#[0-9a-f]{6}", item.placeholder.color)
    width, height, _ = thash.thumb_hash_to_rgba(list(base64.b64decode(item.placeholder.thumbhash)))
    assert height > width


def test_same_bytes_again_is_a_duplicate_with_no_image_work(stack: dict[str, Any], context: FakeContext) -> None:
    body = samples.jpeg_bytes(samples.photo(800, 600, seed=2))
    run_pipeline(put_original("drop/m1.jpg", body), context)
    outputs_before = keys("media/")

    result = run_pipeline(
        put_original("drop/m2.jpg", body),
        context,
        execution="arn:aws:states:us-east-1:123456789012:execution:pipeline:M2",
    )

    assert result["status"] == "DUPLICATE"
    assert result["duplicate_of"] == "M1"
    assert keys("media/") == outputs_before
    assert keys("work/M2/") == []


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"", "image/jpeg", errors.EmptyInput),
        (b"<html><body>no</body></html>", "text/html", errors.UnsupportedType),
        (corpus.png_bomb(12000, 6000), "image/png", errors.TooManyPixels),
        (corpus.save(Image.new("RGB", (10, 10)), "PNG"), "image/jpeg", errors.TypeMismatch),
    ],
)
def test_validate_raises_the_rejection_by_name(
    stack: dict[str, Any], context: FakeContext, body: bytes, content_type: str, error: type[errors.RejectedInput]
) -> None:
    media = put_original("drop/bad.bin", body, content_type)
    with pytest.raises(error):
        load_function("validate").lambda_handler({"media": media, "execution_arn": EXECUTION}, context)


def test_validate_refuses_too_large_before_downloading(
    stack: dict[str, Any], context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1000")
    media = put_original("drop/big.jpg", b"\xff\xd8\xff" + b"\0" * 5000)
    with pytest.raises(errors.TooLarge, match="over the limit of 1000"):
        load_function("validate").lambda_handler({"media": media, "execution_arn": EXECUTION}, context)


def test_bytes_other_than_the_declared_sha256_are_rejected_as_corrupt(
    stack: dict[str, Any], context: FakeContext
) -> None:
    """Parts of a multipart upload are not bound to the declared sha256 by S3; validation checks the whole."""
    body = samples.jpeg_bytes(samples.photo(400, 300, seed=5))
    media = put_original("uploads/01JD3X4Y5Z6A7B8C9D0EFGHJKM/original", body)
    media_repository().create_pending(
        media["media_id"], "alice", {**media, "declared_sha256": "0" * 64, "content_type": "image/jpeg"}, expires_at=1
    )
    with pytest.raises(errors.CorruptImage, match="do not match the sha256"):
        load_function("validate").lambda_handler({"media": media, "execution_arn": EXECUTION}, context)


def test_a_processed_upload_no_longer_expires(stack: dict[str, Any], context: FakeContext) -> None:
    body = samples.jpeg_bytes(samples.photo(400, 300, seed=6))
    media = put_original("uploads/01JD3X4Y5Z6A7B8C9D0EFGHJKN/original", body)
    media_repository().create_pending(media["media_id"], "alice", {**media, "filename": "a.jpg"}, expires_at=1)
    assert run_pipeline(media, context)["status"] == "READY"
    stored = (
        boto3.resource("dynamodb")
        .Table("media-table")
        .get_item(Key={"pk": f"MEDIA#{media['media_id']}", "sk": "META"})["Item"]
    )
    assert "expires_at" not in stored  # TTL only clears abandoned PENDING_UPLOAD items
    assert stored["source"]["filename"] == "a.jpg"


def test_reject_records_the_reason_and_leaves_no_outputs(stack: dict[str, Any], context: FakeContext) -> None:
    truncated = corpus.save(corpus.quadrants(1200, 900), "JPEG")[:3000]
    media = put_original("drop/r1.jpg", truncated)
    state = {"media": media, "execution_arn": EXECUTION}
    state["source"] = load_function("validate").lambda_handler(state, context)["source"]
    with pytest.raises(errors.CorruptImage) as raised:
        load_function("resize").lambda_handler(state, context)
    cause = json.dumps({"errorType": "CorruptImage", "errorMessage": str(raised.value)})

    result = load_function("outcome").reject_handler(
        {**state, "error": {"Error": "CorruptImage", "Cause": cause}, "failed_step": "resize"}, context
    )

    assert result["status"] == "REJECTED"
    item = media_repository().get("R1")
    assert item is not None and item.reason == "corrupt" and "cannot be decoded" in (item.reason_detail or "")
    assert keys("media/R1/") == [] and keys("work/R1/") == []


def test_fail_records_the_step_and_sends_a_redrivable_message(stack: dict[str, Any], context: FakeContext) -> None:
    media = put_original("drop/f1.jpg", samples.jpeg_bytes(samples.photo(300, 200, seed=3)))
    state = {"media": media, "execution_arn": EXECUTION}
    load_function("validate").lambda_handler(state, context)
    cause = json.dumps({"errorType": "ClientError", "errorMessage": "An error occurred (NoSuchBucket)"})

    result = load_function("outcome").fail_handler(
        {**state, "error": {"Error": "ClientError", "Cause": cause}, "failed_step": "resize"}, context
    )

    assert result["status"] == "FAILED"
    item = media_repository().get("F1")
    assert item is not None and item.error == "resize: ClientError: An error occurred (NoSuchBucket)"
    [message] = boto3.client("sqs").receive_message(QueueUrl=stack["failed_queue_url"])["Messages"]
    body = json.loads(message["Body"])
    assert body["media_id"] == "F1"
    assert body["execution_arn"] == EXECUTION
    assert body["input"] == media
    assert body["step"] == "resize" and body["error"] == "ClientError"


def test_a_failed_media_can_be_processed_again_by_a_new_execution(stack: dict[str, Any], context: FakeContext) -> None:
    media = put_original("drop/f2.jpg", samples.jpeg_bytes(samples.photo(300, 200, seed=4)))
    state = {"media": media, "execution_arn": EXECUTION}
    load_function("validate").lambda_handler(state, context)
    load_function("outcome").fail_handler(
        {**state, "error": {"Error": "States.Timeout", "Cause": ""}, "failed_step": "resize"}, context
    )
    assert media_repository().begin_retry("F2", lambda attempt: f"{EXECUTION}-{attempt}", after_attempts=0) == 1
    with pytest.raises(InvalidTransition):  # a second retry at the same time: only one run may start
        media_repository().begin_retry("F2", lambda attempt: f"{EXECUTION}-{attempt}", after_attempts=0)

    result = run_pipeline(media, context, execution=f"{EXECUTION}-1")

    assert result["status"] == "READY"
    item = media_repository().get("F2")
    assert item is not None and item.error is None and item.attempts == 1
    assert [h["status"] for h in media_repository().history("F2")] == ["PROCESSING", "FAILED", "PROCESSING", "READY"]


def test_a_finished_media_is_not_taken_over_by_another_run(stack: dict[str, Any], context: FakeContext) -> None:
    media = put_original("drop/d1.jpg", samples.jpeg_bytes(samples.photo(300, 200, seed=5)))
    run_pipeline(media, context)
    with pytest.raises(Exception, match="already finished"):
        load_function("validate").lambda_handler({"media": media, "execution_arn": f"{EXECUTION}-other"}, context)
    item = media_repository().get("D1")
    assert item is not None and item.status == Status.READY


class LargeWriteIsSlowMediumFails:
    """An object store where the large variant takes a while to write and the medium one cannot be written."""

    def __init__(self, original: bytes) -> None:
        self.original = original
        self.stored: dict[str, bytes] = {}

    def get(self, key: str, if_match: str | None = None) -> bytes:
        return self.original

    def put(self, key: str, body: bytes, content_type: str, cache_control: str | None = None) -> None:
        if key.endswith("/medium.webp"):
            raise OSError("connection reset")
        if key.endswith("/large.webp"):
            time.sleep(0.3)
        self.stored[key] = body


def test_resize_that_fails_returns_only_when_its_background_write_is_over() -> None:
    """Resize writes the largest variant on a second thread; when another write fails, the step must not return
    (and its Lambda freeze) while that thread is still at work."""
    body = samples.jpeg_bytes(samples.photo(3000, 2000, seed=3))
    info = imaging.inspect(body, Limits(max_bytes=10**8, max_pixels=10**8, max_frames=10), "image/jpeg")
    source = SourceFacts(**{field: getattr(info, field) for field in SourceFacts.model_fields if hasattr(info, field)})
    media = PipelineInput(media_id="M9", bucket="media", key="drop/m9.jpg", etag="e", size=len(body))
    store = LargeWriteIsSlowMediumFails(body)

    with pytest.raises(OSError, match="connection reset"):
        steps.resize(StepInput(media=media, execution_arn=EXECUTION, source=source), store, get_settings())  # type: ignore[arg-type]

    assert set(store.stored) == {"media/M9/large.webp"}


def test_the_resize_function_runs_with_the_render_process_malloc_settings() -> None:
    """The template deploys Resize with imaging.RENDER_PROCESS_ENV (what the unit tests and the bench's kernel
    rows run with); a change to one without the other would measure one thing and deploy another."""
    variables = template_resource("ResizeFunction")["Properties"]["Environment"]["Variables"]
    assert {name: variables.get(name) for name in imaging.RENDER_PROCESS_ENV} == imaging.RENDER_PROCESS_ENV


def _truncated_jpeg() -> bytes:
    whole = samples.jpeg_bytes(samples.photo(800, 600, seed=7))
    return whole[: len(whole) // 2]  # the header is whole (Validate passes it); the pixels end halfway


def _resize_rejects(state: dict[str, Any], context: FakeContext) -> dict[str, Any]:
    """Resize raises the rejection; the state machine's Catch hands it to Reject, as here."""
    with pytest.raises(errors.CorruptImage) as refused:
        load_function("resize").lambda_handler(state, context)
    error = {"Error": "CorruptImage", "Cause": json.dumps({"errorMessage": str(refused.value)})}
    return load_function("outcome").reject_handler({**state, "error": error, "failed_step": "resize"}, context)


def test_the_same_bytes_as_a_rejected_media_are_rejected_for_the_same_reason(
    stack: dict[str, Any], context: FakeContext
) -> None:
    # Given bytes whose header passes Validate and whose pixels Resize refused: M1 is REJECTED corrupt
    body = _truncated_jpeg()
    first: dict[str, Any] = {"media": put_original("drop/m1.jpg", body), "execution_arn": EXECUTION}
    first["source"] = load_function("validate").lambda_handler(first, context)["source"]
    assert load_function("dedupe").lambda_handler(first, context)["duplicate_of"] is None
    assert _resize_rejects(first, context)["reason"] == "corrupt"
    # When the same bytes come again
    second: dict[str, Any] = {
        "media": put_original("drop/m2.jpg", body),
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:pipeline:M2",
    }
    second["source"] = load_function("validate").lambda_handler(second, context)["source"]
    # Then Dedupe refuses them as Resize did (the state machine sends that to Reject), never as a DUPLICATE
    with pytest.raises(errors.CorruptImage, match="M1"):
        load_function("dedupe").lambda_handler(second, context)


def test_the_same_bytes_as_a_failed_media_are_processed_and_take_over_the_claim(
    stack: dict[str, Any], context: FakeContext
) -> None:
    body = samples.jpeg_bytes(samples.photo(800, 600, seed=8))
    first: dict[str, Any] = {"media": put_original("drop/m1.jpg", body), "execution_arn": EXECUTION}
    first["source"] = load_function("validate").lambda_handler(first, context)["source"]
    load_function("dedupe").lambda_handler(first, context)
    failure = {"Error": "States.Timeout", "Cause": "resize timed out"}
    load_function("outcome").fail_handler({**first, "error": failure, "failed_step": "resize"}, context)

    result = run_pipeline(
        put_original("drop/m2.jpg", body),
        context,
        execution="arn:aws:states:us-east-1:123456789012:execution:pipeline:M2",
    )

    assert result["status"] == "READY"
    assert media_repository().claim_sha256(OPERATOR, first["source"]["sha256"], "M3") == "M2"


def test_resize_decodes_only_the_version_validate_checked(stack: dict[str, Any], context: FakeContext) -> None:
    # Given a validated original that is then replaced by other bytes under the same key
    state: dict[str, Any] = {
        "media": put_original("drop/s1.jpg", samples.jpeg_bytes(samples.photo(300, 200, seed=9))),
        "execution_arn": EXECUTION,
    }
    state["source"] = load_function("validate").lambda_handler(state, context)["source"]
    assert state["source"]["etag"]
    boto3.client("s3").put_object(Bucket="media", Key="drop/s1.jpg", Body=corpus.png_bomb(12000, 6000))
    # When Resize runs, it refuses to decode bytes nobody checked (the new version is a photo of its own)
    with pytest.raises(OriginalChanged):
        load_function("resize").lambda_handler(state, context)
    assert keys("media/S1/") == []


@pytest.mark.parametrize("distance", range(0, 9))
def test_near_duplicates_are_found_at_the_documented_threshold_and_not_beyond(
    stack: dict[str, Any], distance: int
) -> None:
    """Every pair within SIMILAR_MAX_DISTANCE (6) bits is found, whichever bits differ; 7 and 8 are not reported."""
    repo = media_repository()
    base = 0x9F3A_5C71_E0B4_2D86
    repo.index_ready(OPERATOR, "BASE", f"{base:016x}")
    rng = random.Random(distance)
    # Spread flips (one per band run where possible) are the hardest case for a banded index; random ones too.
    spread = [min(63, round(i * 64 / max(distance, 1)) + 4) for i in range(distance)]
    for positions in (spread, rng.sample(range(64), distance), rng.sample(range(64), distance)):
        other = base
        for bit in set(positions):
            other ^= 1 << bit
        flipped = bin(other ^ base).count("1")
        found = repo.similar(OPERATOR, "PROBE", f"{other:016x}")
        assert ("BASE" in found) == (flipped <= SIMILAR_MAX_DISTANCE), (positions, found)


def test_a_crowd_of_look_alikes_is_reported_as_its_closest_most_recent_few(stack: dict[str, Any]) -> None:
    # Given 300 photos already indexed with hashes within a bit or two of each other (a burst, screenshots …)
    repo = media_repository()
    base = 0x9F3A_5C71_E0B4_2D86
    for n in range(300):
        repo.index_ready(OPERATOR, f"M{n:04d}", f"{base ^ (1 << (n % 2)) if n % 3 else base:016x}")
    # When a new one is looked up
    found = repo.similar(OPERATOR, "PROBE", f"{base:016x}")
    # Then SIMILAR_LIMIT are reported: the closest (here exact matches), most recent first
    assert found == [f"M{n:04d}" for n in range(297, 297 - 3 * SIMILAR_LIMIT, -3)]


def test_a_rejection_after_resize_wrote_a_variant_removes_it(stack: dict[str, Any], context: FakeContext) -> None:
    # Given a photo Resize refused after one variant of it had already reached media/
    state: dict[str, Any] = {"media": put_original("drop/r1.jpg", _truncated_jpeg()), "execution_arn": EXECUTION}
    state["source"] = load_function("validate").lambda_handler(state, context)["source"]
    load_function("dedupe").lambda_handler(state, context)
    s3 = boto3.client("s3")
    s3.put_object(Bucket="media", Key="media/R1/thumb.webp", Body=b"RIFF")
    # When Reject records it
    assert _resize_rejects(state, context)["status"] == "REJECTED"
    # Then nothing of it is left under media/, and the original stays
    assert s3.list_objects_v2(Bucket="media", Prefix="media/R1/")["KeyCount"] == 0
    assert s3.head_object(Bucket="media", Key="drop/r1.jpg")["ContentLength"] > 0
