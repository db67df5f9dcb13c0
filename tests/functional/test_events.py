"""Domain events: one per final status, on the stack's bus, as a subscriber's queue receives them."""

from __future__ import annotations

from typing import Any

import pytest

from photopipe import samples
from photopipe_core.events import MediaEvents, PublishFailed
from photopipe_core.repository import media_repository
from tests.functional.conftest import FakeContext, load_function, received_events
from tests.functional.pipeline import EXECUTION, put_original, run_pipeline


def test_a_photo_that_ends_ready_publishes_one_media_ready_event_without_urls(
    stack: dict[str, Any], context: FakeContext
) -> None:
    media = put_original("drop/e1.jpg", samples.jpeg_bytes(samples.photo(800, 600, seed=51)))

    run_pipeline(media, context)

    [event] = received_events(stack["events_queue_url"])
    assert (event["source"], event["detail-type"]) == ("photopipe", "Media Ready")
    detail = event["detail"]
    item = media_repository().get("E1")
    assert item is not None
    assert detail["media_id"] == "E1" and detail["owner"] == item.owner and detail["status"] == "READY"
    assert detail["version"] == 1
    assert {name: v["key"] for name, v in detail["variants"].items()} == {n: v.key for n, v in item.variants.items()}
    assert "url" not in str(detail) and "srcset" not in detail  # presigned URLs expire; events are kept
    assert detail["placeholder"] == item.placeholder.model_dump() if item.placeholder else pytest.fail("placeholder")


def test_rejected_and_duplicate_media_publish_their_own_events(stack: dict[str, Any], context: FakeContext) -> None:
    body = samples.jpeg_bytes(samples.photo(640, 480, seed=52))
    run_pipeline(put_original("drop/e2.jpg", body), context, execution=f"{EXECUTION}-2")
    run_pipeline(put_original("drop/e3.jpg", body), context, execution=f"{EXECUTION}-3")
    truncated = put_original("drop/e4.jpg", body[:2000])
    state = {"media": truncated, "execution_arn": f"{EXECUTION}-4"}
    state["source"] = load_function("validate").lambda_handler(state, context)["source"]
    cause = '{"errorType": "CorruptImage", "errorMessage": "the JPEG data cannot be decoded"}'
    load_function("outcome").reject_handler(
        {**state, "error": {"Error": "CorruptImage", "Cause": cause}, "failed_step": "resize"}, context
    )

    events = {e["detail"]["media_id"]: e for e in received_events(stack["events_queue_url"])}

    assert events["E2"]["detail-type"] == "Media Ready"
    assert events["E3"]["detail-type"] == "Media Duplicate" and events["E3"]["detail"]["duplicate_of"] == "E2"
    rejected = events["E4"]
    assert rejected["detail-type"] == "Media Rejected" and rejected["detail"]["reason"] == "corrupt"
    assert rejected["detail"]["reason_detail"] == "the JPEG data cannot be decoded"


def test_a_failed_media_run_again_publishes_failed_then_ready_with_a_higher_version(
    stack: dict[str, Any], context: FakeContext
) -> None:
    media = put_original("drop/e5.jpg", samples.jpeg_bytes(samples.photo(300, 200, seed=53)))
    state = {"media": media, "execution_arn": EXECUTION}
    load_function("validate").lambda_handler(state, context)
    failure = {**state, "error": {"Error": "States.Timeout", "Cause": ""}, "failed_step": "resize"}
    load_function("outcome").fail_handler(failure, context)
    load_function("outcome").fail_handler(failure, context)  # the step retried: the same change, the same version
    media_repository().begin_retry("E5", lambda attempt: f"{EXECUTION}-{attempt}", after_attempts=0)

    run_pipeline(media, context, execution=f"{EXECUTION}-1")

    seen = [(e["detail-type"], e["detail"]["version"]) for e in received_events(stack["events_queue_url"])]
    assert sorted(seen) == [("Media Failed", 1), ("Media Failed", 1), ("Media Ready", 2)]


def test_an_event_the_bus_does_not_take_fails_the_step(stack: dict[str, Any], context: FakeContext) -> None:
    # (the step fails, Step Functions retries it, and the retry publishes the same version again)
    media = put_original("drop/e6.jpg", samples.jpeg_bytes(samples.photo(300, 200, seed=54)))
    run_pipeline(media, context)
    item = media_repository().get("E6")
    assert item is not None

    class Refusing:
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's spelling
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}]}

    with pytest.raises(PublishFailed, match="Media Ready of E6 was not taken: InternalFailure: try again"):
        MediaEvents(Refusing(), "media-events").published(item)
