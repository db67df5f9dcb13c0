"""LocalStack's log has a line for each request that failed and none for those that succeeded
(photopipe_infra.request_log)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from photopipe_infra.launcher import EmbeddedLocalStack


def test_the_log_keeps_failed_requests_and_drops_the_others(
    localstack: EmbeddedLocalStack, aws_client: Callable[[str], Any]
) -> None:
    sqs = aws_client("sqs")
    name = f"log-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="fine")
    with pytest.raises(ClientError):
        sqs.get_queue_url(QueueName=f"{name}-missing")
    sqs.delete_queue(QueueUrl=url)
    time.sleep(1)  # the log is written by LocalStack's process

    lines = localstack.log_file.read_text(errors="replace").splitlines()

    assert any("sqs.GetQueueUrl => 400" in line for line in lines), lines[-20:]
    assert not any("sqs.SendMessage => 200" in line or "sqs.CreateQueue => 200" in line for line in lines)
