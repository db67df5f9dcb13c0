"""SQS event sources long-poll (photopipe_infra.event_source_polling): an idle mapping does not ask the queue over
and over, and a message sent while the poller waits is handed to the function at once, exactly once."""

from __future__ import annotations

import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.cloudwatch import log_messages, metric_sum

HANDLER = textwrap.dedent(
    """
    def handler(event, context):
        for record in event["Records"]:
            print("body", record["body"])
        return {}
    """
)
DEADLINE_SECONDS = 10.0  # well under the 20 s a waiting poll lasts: a message must wake it, not wait it out


@pytest.fixture
def mapped_queue(aws_client: Callable[[str], Any], lambda_function: Callable[..., str]) -> Iterator[tuple[str, str]]:
    """(queue url, function name): a queue feeding a function through an event source mapping, no batching window."""
    sqs, lam = aws_client("sqs"), aws_client("lambda")
    name = f"test-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    function = lambda_function({"handler.py": HANDLER})
    mapping = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=function, BatchSize=10)["UUID"]
    deadline = time.monotonic() + 30
    while lam.get_event_source_mapping(UUID=mapping)["State"] != "Enabled":
        assert time.monotonic() < deadline, "the event source mapping never became Enabled"
        time.sleep(0.2)
    try:
        yield url, function
    finally:
        lam.delete_event_source_mapping(UUID=mapping)
        sqs.delete_queue(QueueUrl=url)


def printed_bodies(logs: Any, function: str, expected: int) -> list[str]:
    """The bodies the function printed, once there are ``expected`` of them (or the deadline has passed)."""

    def bodies(messages: list[str]) -> list[str]:
        return [message.split(" ", 1)[1].strip() for message in messages if message.startswith("body ")]

    return bodies(log_messages(logs, function, lambda found: len(bodies(found)) >= expected, DEADLINE_SECONDS))


def test_an_idle_mapping_waits_in_the_queue_instead_of_polling_it(
    aws_client: Callable[[str], Any], mapped_queue: tuple[str, str]
) -> None:
    url, _ = mapped_queue
    time.sleep(4)  # idle; a short-polling mapping asks about twenty times in this while
    dimension = {"Name": "QueueName", "Value": url.rsplit("/", 1)[1]}
    assert metric_sum(aws_client("cloudwatch"), "AWS/SQS", "NumberOfEmptyReceives", dimension) <= 1


def test_messages_sent_while_the_poller_waits_are_delivered_once_each(
    aws_client: Callable[[str], Any], mapped_queue: tuple[str, str]
) -> None:
    url, function = mapped_queue
    sqs, logs = aws_client("sqs"), aws_client("logs")
    time.sleep(1)  # the poller is now waiting inside ReceiveMessage
    sent = [f"m{index}-{uuid.uuid4().hex[:6]}" for index in range(5)]
    for body in sent:
        sqs.send_message(QueueUrl=url, MessageBody=body)
        time.sleep(0.3)  # one at a time: each must wake a waiting poll
    assert sorted(printed_bodies(logs, function, len(sent))) == sorted(sent)
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
