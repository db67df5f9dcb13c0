"""The deployed pipeline on embedded LocalStack: real S3 events, real executions, real Lambda processes.

Faults are injected from outside, the way an operator would cause them: a function's reserved concurrency set
to 0 (every invoke is throttled) or its process killed with SIGKILL. Production code has no test branches.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest
from click.testing import CliRunner
from PIL import Image

from photopipe import samples
from photopipe.cli import main
from photopipe.media import MediaReader
from photopipe.stack import Stack
from photopipe_core.keys import media_id_for_object
from photopipe_core.models import MediaItem, Status
from tests import corpus
from tests.events import s3_object_created
from tests.integration.conftest import drop


@pytest.fixture(scope="module")
def reader(stack: Stack) -> MediaReader:
    return MediaReader(stack)


def finished(reader: MediaReader, media_id: str, timeout: float = 90) -> MediaItem:
    item = reader.wait_for_terminal([media_id], timeout=timeout)[media_id]
    assert item is not None, f"media {media_id} never appeared"
    assert item.status.is_terminal, f"media {media_id} still {item.status} after {timeout} s"
    return item


def objects(aws_client: Callable[[str], Any], bucket: str, prefix: str) -> list[str]:
    response = aws_client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in response.get("Contents", [])]


def history(aws_client: Callable[[str], Any], execution_arn: str) -> list[dict[str, Any]]:
    sfn = aws_client("stepfunctions")
    return list(sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"])


def wait_for_event(
    aws_client: Callable[[str], Any],
    execution_arn: str,
    matches: Callable[[dict[str, Any]], bool],
    timeout: float = 60,
    interval: float = 0.2,
) -> bool:
    """Poll an execution's history until an event matches (True) or the deadline passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            events = history(aws_client, execution_arn)
        except aws_client("stepfunctions").exceptions.ExecutionDoesNotExist:
            events = []
        if any(matches(event) for event in events):
            return True
        time.sleep(interval)
    return False


def execution_output(stack: Stack, aws_client: Callable[[str], Any], media_id: str) -> Any:
    """The output of the media's execution once it has closed (its last step wrote the status a moment before)."""
    sfn, arn = aws_client("stepfunctions"), stack.outputs.execution_arn(media_id)
    deadline = time.monotonic() + 30
    described = sfn.describe_execution(executionArn=arn)
    while described["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
        described = sfn.describe_execution(executionArn=arn)
    assert described["status"] == "SUCCEEDED", described["status"]
    return json.loads(described["output"])


def test_drop_folder_photo_becomes_ready_with_three_webp_variants(
    stack: Stack, reader: MediaReader, aws_client: Callable[[str], Any]
) -> None:
    media_id = drop(stack, aws_client, samples.jpeg_bytes(samples.photo(4000, 3000, seed=21)))

    item = finished(reader, media_id)

    assert item.status == Status.READY, item
    s3 = aws_client("s3")
    expected = {"large": (2048, 1536), "medium": (1024, 768), "thumb": (256, 192)}
    assert {name: (v.width, v.height) for name, v in item.variants.items()} == expected
    for name, (width, height) in expected.items():
        obj = s3.get_object(Bucket=stack.outputs.MediaBucketName, Key=f"media/{media_id}/{name}.webp")
        assert obj["ContentType"] == "image/webp"
        assert "immutable" in obj["CacheControl"]
        image = Image.open(io.BytesIO(obj["Body"].read()))
        assert (image.format, image.size) == ("WEBP", (width, height))
    assert objects(aws_client, stack.outputs.MediaBucketName, f"work/{media_id}/") == []
    assert item.sha256 and item.phash and len(item.phash) == 16
    assert item.placeholder is not None and len(base64.b64decode(item.placeholder.thumbhash)) >= 5  # through the run
    assert execution_output(stack, aws_client, media_id) == {"status": "READY"}  # the outcome, not the whole state


def test_same_bytes_again_is_a_duplicate_and_writes_nothing(
    stack: Stack, reader: MediaReader, aws_client: Callable[[str], Any]
) -> None:
    body = samples.jpeg_bytes(samples.photo(1200, 900, seed=22))
    first = finished(reader, drop(stack, aws_client, body, "first.jpg"))
    assert first.status == Status.READY
    outputs_before = objects(aws_client, stack.outputs.MediaBucketName, "media/")

    second = finished(reader, drop(stack, aws_client, body, "again.jpg"))

    assert second.status == Status.DUPLICATE
    assert second.duplicate_of == first.media_id
    assert execution_output(stack, aws_client, second.media_id) == {"status": "DUPLICATE"}
    assert objects(aws_client, stack.outputs.MediaBucketName, "media/") == outputs_before


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "image/jpeg", "corrupt"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", "unsupported_type"),
        (b"", "image/jpeg", "empty"),
        (corpus.png_bomb(20000, 20000), "image/png", "too_many_pixels"),
    ],
)
def test_bad_input_is_rejected_with_a_reason_and_no_outputs(
    stack: Stack, reader: MediaReader, aws_client: Callable[[str], Any], body: bytes, content_type: str, reason: str
) -> None:
    media_id = drop(stack, aws_client, body, "bad.bin", content_type)

    item = finished(reader, media_id)

    assert item.status == Status.REJECTED
    assert item.reason == reason
    assert item.reason_detail
    assert execution_output(stack, aws_client, media_id) == {"status": "REJECTED", "reason": reason}
    assert objects(aws_client, stack.outputs.MediaBucketName, f"media/{media_id}/") == []


def test_truncated_jpeg_is_rejected_as_corrupt(
    stack: Stack, reader: MediaReader, aws_client: Callable[[str], Any]
) -> None:
    whole = samples.jpeg_bytes(samples.photo(2000, 1500, seed=23))
    item = finished(reader, drop(stack, aws_client, whole[: len(whole) // 2]))
    assert (item.status, item.reason) == (Status.REJECTED, "corrupt")
    assert objects(aws_client, stack.outputs.MediaBucketName, f"media/{item.media_id}/") == []


def test_a_redelivered_ingest_message_starts_no_second_execution(
    stack: Stack, reader: MediaReader, aws_client: Callable[[str], Any]
) -> None:
    bucket = stack.outputs.MediaBucketName
    key = f"drop/it/{time.time_ns()}/redelivered.jpg"
    put = aws_client("s3").put_object(Bucket=bucket, Key=key, Body=samples.jpeg_bytes(samples.photo(400, 300, 24)))
    media_id = media_id_for_object(bucket, key, put["ETag"])
    assert finished(reader, media_id).status == Status.READY
    sqs = aws_client("sqs")
    event = s3_object_created(bucket, key, etag=put["ETag"].strip('"'), size=1)

    for _ in range(2):  # the same event delivered twice more
        sqs.send_message(QueueUrl=stack.outputs.IngestQueueUrl, MessageBody=json.dumps(event))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(
            QueueUrl=stack.outputs.IngestQueueUrl,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if all(value == "0" for value in attributes.values()):
            break
        time.sleep(0.3)
    else:
        pytest.fail("the ingest queue was not drained")

    sfn = aws_client("stepfunctions")
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=stack.outputs.PipelineStateMachineArn)
    names = [e["name"] for page in pages for e in page["executions"] if e["name"].startswith(media_id)]
    assert names == [media_id]
    item = reader.get(media_id)
    assert item is not None and item.status == Status.READY
    assert [h["status"] for h in reader.history(media_id)] == ["PROCESSING", "READY"]


def test_a_step_throttled_once_recovers_through_retry(
    stack: Stack,
    reader: MediaReader,
    aws_client: Callable[[str], Any],
    function_name: Callable[[str], str],
    throttled: Callable[[str], None],
) -> None:
    lam = aws_client("lambda")
    resize = function_name("ResizeFunction")
    throttled(resize)
    media_id = drop(stack, aws_client, samples.jpeg_bytes(samples.photo(800, 600, seed=25)))
    execution_arn = stack.outputs.execution_arn(media_id)
    # Wait for the first throttled attempt, then lift the fault.
    assert wait_for_event(aws_client, execution_arn, lambda e: e["type"] in ("TaskFailed", "LambdaFunctionFailed")), (
        "the throttled step never failed"
    )
    lam.delete_function_concurrency(FunctionName=resize)

    item = finished(reader, media_id)

    assert item.status == Status.READY
    failures = [e for e in history(aws_client, execution_arn) if e["type"] == "TaskFailed"]
    assert failures and "TooManyRequests" in failures[0]["taskFailedEventDetails"]["error"]


def test_a_step_that_keeps_failing_ends_failed_and_redrive_makes_it_ready(
    stack: Stack,
    reader: MediaReader,
    aws_client: Callable[[str], Any],
    function_name: Callable[[str], str],
    throttled: Callable[[str], None],
) -> None:
    finalize = function_name("FinalizeFunction")
    throttled(finalize)
    media_id = drop(stack, aws_client, samples.jpeg_bytes(samples.photo(900, 700, seed=26)))

    item = finished(reader, media_id, timeout=120)

    assert item.status == Status.FAILED
    assert item.error is not None and item.error.startswith("finalize:")
    runner = CliRunner()
    endpoint = ["--endpoint-url", stack.settings.endpoint_url]
    listed = runner.invoke(main, [*endpoint, "failed", "--json"])
    assert listed.exit_code == 0, listed.output
    failures = [json.loads(line) for line in listed.output.splitlines() if line.strip()]
    assert {"queue": "FailedQueue", "media_id": media_id} in [
        {k: f[k] for k in ("queue", "media_id")} for f in failures
    ]

    aws_client("lambda").delete_function_concurrency(FunctionName=finalize)  # the cause is gone
    redriven = runner.invoke(main, [*endpoint, "redrive", media_id])
    assert redriven.exit_code == 0, redriven.output
    assert f"started {media_id}-1" in redriven.output

    assert reader.wait_for_execution(f"{media_id}-1", timeout=90).status == "SUCCEEDED"
    item = finished(reader, media_id)
    assert item.status == Status.READY
    assert item.error is None and item.attempts == 1
    assert len(item.variants) == 3
    assert [h["status"] for h in reader.history(media_id)] == ["PROCESSING", "FAILED", "PROCESSING", "READY"]
    after = runner.invoke(main, [*endpoint, "failed", "--json"])
    assert media_id not in after.output


def lambda_processes(function: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if (
                "lambda_bootstrap" in " ".join(process.info["cmdline"] or [])
                and process.environ().get("AWS_LAMBDA_FUNCTION_NAME") == function
            ):
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_a_lambda_process_killed_mid_step_still_ends_ready(
    stack: Stack, reader: MediaReader, aws_client: Callable[[str], Any], function_name: Callable[[str], str]
) -> None:
    resize = function_name("ResizeFunction")
    # A large PNG keeps the resize step busy for a while, so the kill lands mid-step.
    big = samples.photo(6000, 4000, seed=27)
    body = corpus.save(big, "PNG", compress_level=1)
    killed_mid_step = False
    for _attempt in range(3):
        media_id = drop(stack, aws_client, body, "big.png", "image/png")
        execution_arn = stack.outputs.execution_arn(media_id)
        wait_for_event(
            aws_client,
            execution_arn,
            lambda e: e["type"] == "TaskScheduled" and "ResizeFunction" in json.dumps(e, default=str),
            interval=0.05,
        )
        time.sleep(0.4)
        for process in lambda_processes(resize):
            os.kill(process.pid, signal.SIGKILL)

        item = finished(reader, media_id, timeout=120)

        assert item.status == Status.READY
        failures = [e for e in history(aws_client, execution_arn) if e["type"] == "TaskFailed"]
        if any("Runtime.ExitError" in e["taskFailedEventDetails"].get("error", "") for e in failures):
            killed_mid_step = True
            break
        body = corpus.save(samples.photo(6000, 4000, seed=28 + _attempt), "PNG", compress_level=1)
    assert killed_mid_step, "the resize process was never caught mid-step"


def test_when_the_fail_step_itself_cannot_run_the_media_still_ends_failed(
    stack: Stack,
    reader: MediaReader,
    aws_client: Callable[[str], Any],
    function_name: Callable[[str], str],
    throttled: Callable[[str], None],
) -> None:
    # Given a step that keeps failing and a Fail function throttled for good
    throttled(function_name("FinalizeFunction"))
    throttled(function_name("FailFunction"))
    media_id = drop(stack, aws_client, samples.jpeg_bytes(samples.photo(900, 700, seed=31)))
    # Then the state machine's own last write records FAILED, and the message for a redrive is in FailedQueue
    item = finished(reader, media_id, timeout=180)
    assert item.status == Status.FAILED
    assert item.error is not None and item.error.startswith("finalize:")
    sfn = aws_client("stepfunctions")
    deadline = time.monotonic() + 60  # the run ends a moment after that write: it queues the message first
    while (described := sfn.describe_execution(executionArn=stack.outputs.execution_arn(media_id)))["status"] == (
        "RUNNING"
    ) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert described["status"] == "FAILED"
    messages = (
        aws_client("sqs")
        .receive_message(QueueUrl=stack.outputs.FailedQueueUrl, MaxNumberOfMessages=10, VisibilityTimeout=0)
        .get("Messages", [])
    )
    assert media_id in [json.loads(m["Body"])["media_id"] for m in messages]


def test_the_same_bytes_as_a_photo_resize_refused_are_refused_again_for_the_same_reason(
    stack: Stack, reader: MediaReader, aws_client: Callable[[str], Any]
) -> None:
    whole = samples.jpeg_bytes(samples.photo(900, 700, seed=32))
    truncated = whole[: len(whole) // 2]  # a whole header (Validate passes it), pixels that end halfway
    first = finished(reader, drop(stack, aws_client, truncated, "first.jpg"))
    assert (first.status, first.reason) == (Status.REJECTED, "corrupt")

    again = finished(reader, drop(stack, aws_client, truncated, "again.jpg"))

    assert (again.status, again.reason) == (Status.REJECTED, "corrupt")
    assert again.duplicate_of is None and first.media_id in (again.reason_detail or "")


def test_an_iphone_style_heic_ends_ready_upright(
    stack: Stack, reader: MediaReader, aws_client: Callable[[str], Any]
) -> None:
    item = finished(reader, drop(stack, aws_client, corpus.oriented("HEIF", 6), "IMG_0001.HEIC", "image/heic"))
    assert item.status == Status.READY, item
    assert (item.width, item.height) == (400, 300)
    thumb = Image.open(
        io.BytesIO(
            aws_client("s3")
            .get_object(Bucket=stack.outputs.MediaBucketName, Key=item.variants["thumb"].key)["Body"]
            .read()
        )
    )
    assert thumb.size == (256, 192)
    assert thumb.convert("RGB").getpixel((32, 24))[0] > 200  # red at the top left: upright  # type: ignore[index]


BOMBS = {
    "gif-screen.gif": (corpus.gif_with_screen(65535, 65535), "too_many_pixels"),
    "jpeg-sof.jpg": (corpus.jpeg_declaring(65000, 65000), "too_many_pixels"),
    "tiff-strip.tif": (corpus.tiff_declaring(60000, 60000), "too_many_pixels"),
    "tiff-tiles.tif": (corpus.tiff_declaring(60000, 60000, tile=256), "too_many_pixels"),
    "webp-canvas.webp": (corpus.animated_webp_with_canvas(16383, 16383), "too_many_pixels"),
    "apng-frames.png": (corpus.animation("PNG", 105), "too_many_frames"),
    "png-ztxt.png": (corpus.png_with_chunks([corpus.png_chunk(b"zTXt", b"c\x00\x00" + corpus.zlib_bomb())]), "corrupt"),
    "png-iccp.png": (corpus.png_with_chunks([corpus.png_chunk(b"iCCP", b"i\x00\x00" + corpus.zlib_bomb())]), "corrupt"),
}


def test_every_bomb_of_the_family_is_rejected_through_the_stack(
    stack: Stack, reader: MediaReader, aws_client: Callable[[str], Any]
) -> None:
    """Each bomb of the unit tests, dropped at once: each ends REJECTED with its reason and a detail a person can
    read, and no step failed (a FAILED media or a retried step would show a bomb that got past the header)."""
    dropped = {
        name: drop(stack, aws_client, data, name, "application/octet-stream") for name, (data, _) in BOMBS.items()
    }
    ended = reader.wait_for_terminal(list(dropped.values()), timeout=180)
    for name, media_id in dropped.items():
        item = ended[media_id]
        assert item is not None, name
        assert (item.status, item.reason) == (Status.REJECTED, BOMBS[name][1]), (name, item.status, item.error)
        assert item.reason_detail and "0x" not in item.reason_detail, (name, item.reason_detail)


def test_a_gif_whose_frame_declares_a_huge_canvas_is_refused_in_seconds(
    stack: Stack, reader: MediaReader, aws_client: Callable[[str], Any]
) -> None:
    began = time.monotonic()
    item = finished(
        reader, drop(stack, aws_client, corpus.gif_with_frame_extent(65535, 65535), "tiny.gif", "image/gif")
    )
    assert (item.status, item.reason) == (Status.REJECTED, "too_many_pixels")
    assert time.monotonic() - began < 30
