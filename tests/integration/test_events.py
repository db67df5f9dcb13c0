"""Domain events on the deployed stack: a subscriber's rule → queue on the stack's bus hears each media's final
status exactly once, with its version (a FAILED photo retried is heard again, one version higher)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from photopipe import samples
from photopipe.media import MediaReader
from photopipe.stack import Stack
from photopipe.upload import ApiClient
from tests.integration.conftest import drop as drop_in


@pytest.fixture
def subscriber(stack: Stack, aws_client: Callable[[str], Any]) -> Iterator[str]:
    """A queue a rule on the stack's bus sends every photopipe event to (removed after the test)."""
    sqs, events = aws_client("sqs"), aws_client("events")
    bus = stack.outputs.MediaEventBusName
    name = f"subscriber-{time.time_ns()}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["photopipe"]}))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
    yield url
    events.remove_targets(Rule=name, EventBusName=bus, Ids=["queue"])
    events.delete_rule(Name=name, EventBusName=bus)
    sqs.delete_queue(QueueUrl=url)


def heard(aws_client: Callable[[str], Any], url: str, wanted: int, timeout: float = 60) -> list[dict[str, Any]]:
    """Every event the queue gets until ``wanted`` have come (and a few seconds more, for any extra one)."""
    sqs = aws_client("sqs")
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    while time.monotonic() < deadline and (quiet_until is None or time.monotonic() < quiet_until):
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            events.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if len(events) >= wanted and quiet_until is None:
            quiet_until = time.monotonic() + 5
    return events


def drop(stack: Stack, aws_client: Callable[[str], Any], body: bytes, name: str) -> str:
    return drop_in(stack, aws_client, body, name, folder="events")


def test_each_final_status_is_heard_once_with_its_version(
    stack: Stack,
    aws_client: Callable[[str], Any],
    api: ApiClient,
    subscriber: str,
    function_name: Callable[[str], str],
) -> None:
    # Given photos that end READY, DUPLICATE and REJECTED, and one whose last step cannot run (FAILED), then
    # retried once the cause is gone (READY)
    reader = MediaReader(stack)
    photo = samples.jpeg_bytes(samples.photo(640, 480, seed=time.time_ns() % 10**6))
    ready = drop(stack, aws_client, photo, "ready.jpg")
    reader.wait_for_terminal([ready], timeout=120)
    duplicate = drop(stack, aws_client, photo, "again.jpg")
    rejected = drop(stack, aws_client, b"a shopping list, not a photo", "list.jpg")
    aws_lambda = aws_client("lambda")
    finalize = function_name("FinalizeFunction")
    aws_lambda.put_function_concurrency(FunctionName=finalize, ReservedConcurrentExecutions=0)
    try:
        failing = drop(stack, aws_client, samples.jpeg_bytes(samples.photo(500, 400, seed=7)), "fails.jpg")
        reader.wait_for_terminal([duplicate, rejected, failing], timeout=240)
    finally:
        aws_lambda.delete_function_concurrency(FunctionName=finalize)
    assert api.request("POST", f"/v1/media/{failing}/retry").status_code == 202
    reader.wait_for_terminal([failing], timeout=240)
    time.sleep(1)  # the retried run's final status is written before its event is published

    # Then the subscriber heard each final status once, with the media as the API shows it (no URLs)
    events = heard(aws_client, subscriber, wanted=5)
    seen = sorted((e["detail"]["media_id"], e["detail-type"], e["detail"]["version"]) for e in events)
    assert seen == sorted(
        [
            (ready, "Media Ready", 1),
            (duplicate, "Media Duplicate", 1),
            (rejected, "Media Rejected", 1),
            (failing, "Media Failed", 1),
            (failing, "Media Ready", 2),
        ]
    )
    for event in events:
        assert event["source"] == "photopipe" and "url" not in json.dumps(event["detail"])
        shown = api.media(event["detail"]["media_id"])
        assert event["detail"]["owner"] == shown["owner"]


def test_a_failure_the_state_machine_records_itself_is_heard_too_with_its_version(
    stack: Stack,
    aws_client: Callable[[str], Any],
    subscriber: str,
    function_name: Callable[[str], str],
    throttled: Callable[[str], None],
) -> None:
    # Given a step that keeps failing and a Fail function throttled for good: the state machine writes FAILED
    throttled(function_name("FinalizeFunction"))
    throttled(function_name("FailFunction"))
    media_id = drop(
        stack, aws_client, samples.jpeg_bytes(samples.photo(420, 300, seed=time.time_ns() % 10**6)), "x.jpg"
    )

    [event] = heard(aws_client, subscriber, wanted=1, timeout=240)

    item = MediaReader(stack).get(media_id)
    assert item is not None and item.status == "FAILED" and item.version == 1
    assert (event["detail-type"], event["source"]) == ("Media Failed", "photopipe")
    detail = event["detail"]
    assert (detail["media_id"], detail["status"], detail["version"], detail["owner"]) == (
        media_id,
        "FAILED",
        1,
        item.owner,
    )
    assert detail["error"] == item.error and detail["error"].startswith("finalize:")
    assert f"photopipe:media/{media_id}" in event["resources"]  # with the run's own ARNs, which Step Functions adds
