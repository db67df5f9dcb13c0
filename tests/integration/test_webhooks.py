"""Webhooks on the deployed stack: a photo uploaded with a callback_url on 127.0.0.1 is delivered there through the
stack's rule, queue and function, signed with the owner's secret; a receiver that fails three times gets the event
at the fourth attempt, once; one that never answers leaves the event in WebhookDLQ, where a redrive takes it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from photopipe import samples
from photopipe.apikeys import ApiKeys
from photopipe.failures import Failures
from photopipe.media import MediaReader
from photopipe.stack import Stack
from photopipe.upload import ApiClient
from photopipe_core.webhooks import SIGNATURE_HEADER, verify

# The stack's WebhookRetrySeconds and WebhookMaxAttempts, for these tests only: 1, 2, 4, 8 s between 5 attempts.
RETRY_SECONDS = "1"
MAX_ATTEMPTS = 5


class Receiver:
    """Answers each POST with the next of ``answers`` (then 204); keeps what came and when."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = answers
        self.requests: list[tuple[float, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((time.monotonic(), dict(self.headers), body))
                self.send_response(receiver.answers.pop(0) if receiver.answers else 204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> list[bytes]:
        return [body for _, _, body in self.requests]


@pytest.fixture
def quick_retries(
    stack: Stack, aws_client: Callable[[str], Any], function_name: Callable[[str], str]
) -> Iterator[None]:
    """The stack as deployed with WebhookRetrySeconds = 1 and WebhookMaxAttempts = 5: the function's variables and
    the queue's redrive policy (restored after the test)."""
    lam, sqs = aws_client("lambda"), aws_client("sqs")
    name, queue = function_name("WebhookFunction"), function_name("WebhookQueue")
    before = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    redrive = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
    quick = {**before, "WEBHOOK_RETRY_SECONDS": RETRY_SECONDS, "WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS)}
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": quick})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    policy = {**json.loads(redrive), "maxReceiveCount": MAX_ATTEMPTS}
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"RedrivePolicy": json.dumps(policy)})
    yield
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"RedrivePolicy": redrive})
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": before})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)


@pytest.fixture
def receivers() -> Iterator[Callable[[list[int]], Receiver]]:
    made: list[Receiver] = []

    def make(answers: list[int]) -> Receiver:
        made.append(Receiver(list(answers)))
        return made[-1]

    yield make
    for receiver in made:
        receiver.server.shutdown()
        receiver.server.server_close()


def upload(api: ApiClient, callback_url: str, seed: int) -> str:
    body = samples.jpeg_bytes(samples.photo(320, 240, seed=seed))
    created = api.request(
        "POST",
        "/v1/uploads",
        json={
            "filename": f"hook-{seed}.jpg",
            "content_type": "image/jpeg",
            "size": len(body),
            "callback_url": callback_url,
        },
    )
    assert created.status_code == 201, created.text
    grant = created.json()
    put = requests.put(grant["upload"]["url"], data=body, headers=grant["upload"]["headers"], timeout=30)
    assert put.status_code == 200, put.text
    return str(grant["media_id"])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.5)


def test_a_receiver_failing_three_times_gets_the_event_signed_at_the_fourth_attempt_once(
    stack: Stack, api: ApiClient, api_keys: ApiKeys, quick_retries: None, receivers: Callable[[list[int]], Receiver]
) -> None:
    receiver = receivers([500, 503, 500])
    media_id = upload(api, receiver.url, seed=71)

    wait_until(lambda: len(receiver.requests) >= 4, 120, "four attempts")
    time.sleep(8)  # an extra delivery would come within the next retry's wait

    assert len(receiver.requests) == 4
    bodies = set(receiver.delivered())
    assert len(bodies) == 1  # the same event each time
    event = json.loads(bodies.pop())
    assert (event["detail-type"], event["detail"]["media_id"], event["detail"]["version"]) == (
        "Media Ready",
        media_id,
        1,
    )
    secret = api_keys.webhook_secret("operator")
    for attempt, (_, headers, body) in enumerate(receiver.requests, start=1):
        assert verify(secret, headers[SIGNATURE_HEADER], body, time.time())
        assert headers["Photopipe-Delivery-Attempt"] == str(attempt)
    waits = [b[0] - a[0] for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert waits[0] >= 0.9 and waits[1] >= 1.9 and waits[2] >= 3.9, waits  # backing off: 1, 2, 4 s
    item = MediaReader(stack).get(media_id)
    assert item is not None and item.webhook is not None
    assert (item.webhook.state, item.webhook.attempts, item.webhook.status_code) == ("delivered", 4, 204)


def test_an_event_never_taken_waits_in_the_dlq_and_a_redrive_delivers_it(
    stack: Stack, api: ApiClient, quick_retries: None, receivers: Callable[[list[int]], Receiver]
) -> None:
    receiver = receivers([500] * MAX_ATTEMPTS)  # every attempt refused
    media_id = upload(api, receiver.url, seed=72)
    reader = MediaReader(stack)
    failures = Failures(stack, reader.repository)

    def in_dlq() -> bool:
        return any(f.queue == "WebhookDLQ" and f.media_id == media_id for f in failures.pending())

    wait_until(in_dlq, 120, "the event in WebhookDLQ")

    assert len(receiver.requests) == MAX_ATTEMPTS
    item = reader.get(media_id)
    assert item is not None and item.webhook is not None
    assert (item.webhook.state, item.webhook.attempts, item.webhook.status_code) == ("failed", MAX_ATTEMPTS, 500)
    assert (media_id, "event sent back to WebhookQueue") in failures.redrive([media_id])
    wait_until(lambda: len(receiver.requests) == MAX_ATTEMPTS + 1, 60, "the redriven delivery")

    def delivered() -> bool:
        again = reader.get(media_id)
        return again is not None and again.webhook is not None and again.webhook.state == "delivered"

    wait_until(delivered, 30, "the delivered state on the media")
    assert not in_dlq()
