"""Webhooks: a media uploaded with a callback_url has its final-status event POSTed there, signed with its owner's
secret; a delivery that fails is kept in the queue for a later attempt, with the outcome on the media."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from photopipe import samples
from photopipe.failures import Failures
from photopipe_core.keys import new_media_id, upload_key
from photopipe_core.models import Status, WebhookState
from photopipe_core.owners import Owners
from photopipe_core.repository import media_repository
from photopipe_core.webhooks import SIGNATURE_HEADER, Refused, destination, post, verify
from tests.functional.conftest import FakeContext, load_function, received_events
from tests.functional.pipeline import put_original, run_pipeline
from tests.functional.test_inflight import MotoStack


class Receiver:
    """A webhook receiver on 127.0.0.1: answers each POST with the next of ``answers`` (then 200), keeps them."""

    def __init__(self) -> None:
        self.answers: list[int] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                code = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(code)
                if code in (301, 302, 307, 308):
                    self.send_header("Location", f"{receiver.url}/elsewhere")
                self.end_headers()
                self.wfile.write(b"not today" if code >= 300 else b"ok")

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(autouse=True)
def private_receivers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The receivers here listen on 127.0.0.1: the stack as deployed with WebhookPrivateNetworks=allow."""
    monkeypatch.setenv("WEBHOOK_PRIVATE_NETWORKS", "allow")


@pytest.fixture(autouse=True)
def operator(request: pytest.FixtureRequest) -> None:
    """The operator has an owner record (``photopipe up`` makes its key), which holds its webhook secret."""
    if "stack" in request.fixturenames:
        request.getfixturevalue("stack")
        Owners(boto3.resource("dynamodb").Table("media-table")).register_key("operator", "operator-key-id")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


def ready_media(stack: dict[str, Any], context: FakeContext, callback_url: str, seed: int) -> dict[str, Any]:
    """An API upload naming ``callback_url``, run through the pipeline; its event as the bus delivered it."""
    media_id = new_media_id()
    repository = media_repository()
    source = {"bucket": "media", "key": upload_key(media_id), "etag": "", "size": 1}
    repository.create_pending(media_id, "operator", source, int(time.time()) + 3600, callback_url)
    put_original(upload_key(media_id), samples.jpeg_bytes(samples.photo(400, 300, seed=seed)))
    run_pipeline({**source, "media_id": media_id}, context, execution=f"arn:exec:{media_id}")
    [event] = received_events(stack["events_queue_url"])
    return event


def queued(stack: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The event sent to the webhook queue (as the stack's rule does) and received from it, as an SQS batch."""
    sqs = boto3.client("sqs")
    url = stack["webhook_queue_url"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
    return received_batch(url)


def received_batch(url: str, visibility: int = 30) -> dict[str, Any]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=visibility
    ).get("Messages", [])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def with_receive_count(batch: dict[str, Any], count: int) -> dict[str, Any]:
    for record in batch["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = str(count)
    return batch


def owners_secret(owner: str) -> str:
    return media_repository().owners.webhook_secret(owner)


def test_a_ready_media_with_a_callback_url_is_posted_there_signed_with_its_owners_secret(
    stack: dict[str, Any], context: FakeContext, receiver: Receiver
) -> None:
    event = ready_media(stack, context, f"{receiver.url}/hooks?src=photopipe", seed=61)
    assert event["detail"]["callback_url"] == f"{receiver.url}/hooks?src=photopipe"
    batch = queued(stack, event)

    result = load_function("webhook").lambda_handler(batch, context)

    assert result == {"batchItemFailures": []}
    [(headers, body)] = receiver.requests
    assert json.loads(body) == event  # the event exactly as the bus carries it
    assert headers["Content-Type"] == "application/json"
    assert headers["Photopipe-Event-Id"] == event["id"] and headers["Photopipe-Delivery-Attempt"] == "1"
    secret = owners_secret("operator")
    assert secret.startswith("whsec_")
    assert verify(secret, headers[SIGNATURE_HEADER], body, now=time.time())
    assert not verify(secret, headers[SIGNATURE_HEADER], body.replace(b"READY", b"FAILED"), now=time.time())
    assert not verify(secret + "x", headers[SIGNATURE_HEADER], body, now=time.time())
    assert not verify(secret, headers[SIGNATURE_HEADER], body, now=time.time() + 301)  # a replay, later
    item = media_repository().get(event["detail"]["media_id"])
    assert item is not None and item.status == Status.READY and item.webhook is not None
    assert (item.webhook.state, item.webhook.version, item.webhook.attempts) == ("delivered", 1, 1)
    assert item.webhook.status_code == 200


@pytest.mark.parametrize("answer", [500, 302, 404])
def test_a_delivery_not_answered_2xx_fails_its_record_and_waits_in_the_queue(
    stack: dict[str, Any], context: FakeContext, receiver: Receiver, answer: int
) -> None:
    event = ready_media(stack, context, f"{receiver.url}/hooks", seed=62)
    receiver.answers = [answer]
    batch = queued(stack, event)

    result = load_function("webhook").lambda_handler(batch, context)

    assert result == {"batchItemFailures": [{"itemIdentifier": batch["Records"][0]["messageId"]}]}
    assert len(receiver.requests) == 1  # a redirect is not followed: the signed body goes only where named
    assert received_batch(stack["webhook_queue_url"], visibility=0)["Records"] == []  # hidden until it is retried
    item = media_repository().get(event["detail"]["media_id"])
    assert item is not None and item.webhook is not None
    assert (item.webhook.state, item.webhook.attempts, item.webhook.status_code) == ("retrying", 1, answer)
    assert item.webhook.error and item.webhook.error.startswith(f"HTTP {answer}")


def test_a_receiver_that_does_not_answer_is_retried_and_the_last_attempt_leaves_the_event_to_the_dlq(
    stack: dict[str, Any], context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_MAX_ATTEMPTS", "3")
    event = ready_media(stack, context, "http://127.0.0.1:9/refused", seed=63)  # the discard port: nothing listens
    batch = with_receive_count(queued(stack, event), 3)

    result = load_function("webhook").lambda_handler(batch, context)

    assert len(result["batchItemFailures"]) == 1
    item = media_repository().get(event["detail"]["media_id"])
    assert item is not None and item.webhook is not None
    assert (item.webhook.state, item.webhook.attempts, item.webhook.status_code) == ("failed", 3, None)
    # visible at once: the queue's redrive policy moves it to the DLQ at its next receive
    assert len(received_batch(stack["webhook_queue_url"], visibility=0)["Records"]) == 1


def test_the_outcome_of_an_older_events_delivery_does_not_hide_a_newer_ones(stack: dict[str, Any]) -> None:
    repository = media_repository()
    media_id = new_media_id()
    source = {"bucket": "media", "key": upload_key(media_id), "etag": "", "size": 1}
    repository.create_pending(media_id, "operator", source, int(time.time()) + 3600, "https://example.com/h")
    newer = WebhookState(state="delivered", version=2, attempts=1, at="2026-11-30T10:00:00Z", status_code=204)
    older = WebhookState(state="retrying", version=1, attempts=4, at="2026-11-30T10:01:00Z", status_code=503)
    assert repository.record_webhook(media_id, newer)
    assert not repository.record_webhook(media_id, older)
    item = repository.get(media_id)
    assert item is not None and item.webhook == newer


def test_an_owners_secret_is_made_once_and_replaced_only_when_rotated(stack: dict[str, Any]) -> None:
    owners = media_repository().owners
    with pytest.raises(LookupError, match="no owner 'nobody'"):
        owners.webhook_secret("nobody")
    first = owners.webhook_secret("operator")
    assert owners.webhook_secret("operator") == first
    rotated = owners.webhook_secret("operator", rotate=True)
    assert rotated != first and owners.webhook_secret("operator") == rotated


def test_an_undelivered_event_is_listed_as_failed_and_a_redrive_sends_it_back_for_new_attempts(
    stack: dict[str, Any], context: FakeContext
) -> None:
    event = ready_media(stack, context, "https://example.com/down", seed=64)
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=stack["webhook_dlq_url"], MessageBody=json.dumps(event))  # as the redrive policy does
    failures = Failures(MotoStack(stack), media_repository())  # type: ignore[arg-type]

    [failure] = failures.pending()
    media_id = event["detail"]["media_id"]
    assert (failure.queue, failure.media_id) == ("WebhookDLQ", media_id)
    assert failure.detail == "Media Ready (version 1) not delivered to https://example.com/down"

    assert failures.redrive() == [(media_id, "event sent back to WebhookQueue")]
    [record] = received_batch(stack["webhook_queue_url"])["Records"]
    assert json.loads(record["body"]) == event and record["attributes"]["ApproximateReceiveCount"] == "1"
    assert failures.pending() == []


@pytest.mark.parametrize(
    ("url", "allow_private", "refused"),
    [
        ("http://127.0.0.1:8080/h", False, "a private address"),
        ("http://localhost:8080/h", False, "a private address"),
        ("http://10.1.2.3/h", False, "a private address"),
        ("http://169.254.169.254/latest/meta-data/", True, "not a public address"),  # cloud metadata: never
        ("http://0.0.0.0:8080/h", True, "not a public address"),
        ("http://127.0.0.1:4566/?Action=DeleteStack", True, "the stack's own AWS endpoint"),
        ("http://localhost:4566/", True, "the stack's own AWS endpoint"),
    ],
)
def test_deliveries_never_reach_metadata_the_stacks_own_endpoint_or_private_addresses_unless_allowed(
    url: str, allow_private: bool, refused: str
) -> None:
    with pytest.raises(Refused, match=refused):
        destination(url, allow_private, own_endpoint="http://localhost:4566")


def test_a_private_receiver_is_reached_when_allowed_and_only_its_status_line_is_kept() -> None:
    seen: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(500 if len(seen) == 1 else 204)
            self.end_headers()
            self.wfile.write(b"internal secrets of the receiver")

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/h?x=1"
    try:
        assert (
            post(url, b'{"id": "e1"}', {}, allow_private=False).error
            == "not sent: 127.0.0.1 resolves to 127.0.0.1, a private address (WebhookPrivateNetworks is deny)"
        )
        failed = post(url, b'{"id": "e1"}', {"Content-Type": "application/json"}, allow_private=True)
        assert (failed.delivered, failed.status_code, failed.error) == (False, 500, "HTTP 500 Internal Server Error")
        assert post(url, b'{"id": "e1"}', {}, allow_private=True).delivered
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [b'{"id": "e1"}', b'{"id": "e1"}']
