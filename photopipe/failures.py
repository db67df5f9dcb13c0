"""FailedQueue, IngestDLQ, WebhookDLQ and ReprocessDLQ from the client side: list what failed, and run (or send)
it again."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from photopipe.load import stack_slots
from photopipe.stack import Stack
from photopipe_core.inflight import InFlightSlots
from photopipe_core.keys import NotAnIngestKey, media_id_for_object
from photopipe_core.pipeline import AtCapacity, PipelineStarter
from photopipe_core.repository import InvalidTransition, MediaRepository

# Seconds a listed message stays hidden; it is made visible again right after listing.
PEEK_SECONDS = 5
BATCH = 10
# Seconds the messages a redrive has taken stay hidden; renewed while it waits for in-flight slots.
REDRIVE_HIDE_SECONDS = 60
# How long a redrive waits for a free in-flight slot for one media before leaving it FAILED (its message kept).
SLOT_WAIT_SECONDS = 900.0


@dataclass(frozen=True)
class Failure:
    queue: str
    media_id: str | None
    detail: str
    message: dict[str, Any]


def _drain(sqs: Any, url: str, visibility: int) -> list[dict[str, Any]]:
    """Receive every message currently visible (bounded: stops at the first empty receive)."""
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(1000):
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=BATCH, VisibilityTimeout=visibility, WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            break
        seen.update({m["MessageId"]: m for m in batch})
    return list(seen.values())


def _release(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    for message in messages:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)


class _Hidden:
    """Messages taken from a queue, kept out of sight while they are worked through (renewed at most every 20 s)."""

    def __init__(self, sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
        self._sqs = sqs
        self._url = url
        self._left = {m["MessageId"]: m for m in messages}
        self._renewed = time.monotonic()

    def done(self, message: dict[str, Any]) -> None:
        self._left.pop(message["MessageId"], None)

    def renew(self) -> None:
        if time.monotonic() - self._renewed < 20:
            return
        left = list(self._left.values())
        for start in range(0, len(left), BATCH):
            self._sqs.change_message_visibility_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": REDRIVE_HIDE_SECONDS}
                    for n, m in enumerate(left[start : start + BATCH])
                ],
            )
        self._renewed = time.monotonic()


def _event_detail(body: dict[str, Any]) -> dict[str, Any]:
    detail = body.get("detail")
    return detail if isinstance(detail, dict) else {}


def _webhook_media_id(body: dict[str, Any]) -> str | None:
    media_id = _event_detail(body).get("media_id")
    return str(media_id) if media_id else None


def _webhook_failure(body: dict[str, Any]) -> str:
    detail = _event_detail(body)
    what = f"{body.get('detail-type', 'event')} (version {detail.get('version', '?')})"
    return f"{what} not delivered to {detail.get('callback_url', '?')}"


def _dlq_media_id(body: dict[str, Any]) -> str | None:
    try:
        detail = body["detail"]
        return media_id_for_object(detail["bucket"]["name"], detail["object"]["key"], detail["object"].get("etag", ""))
    except (KeyError, TypeError, NotAnIngestKey):
        return None


def _reprocess_media_id(body: dict[str, Any]) -> str | None:
    media_id = body.get("media_id")
    return media_id if isinstance(media_id, str) else None


class Failures:
    def __init__(self, stack: Stack, repo: MediaRepository) -> None:
        self._stack = stack
        self._sqs = stack.client("sqs")
        self._repo = repo
        self._starter = PipelineStarter(stack.client("stepfunctions"), stack.outputs.PipelineStateMachineArn)

    @functools.cached_property
    def _slots(self) -> InFlightSlots:
        return stack_slots(self._stack)

    def pending(self) -> list[Failure]:
        outputs = self._stack.outputs
        failures = []
        for queue, url in (("FailedQueue", outputs.FailedQueueUrl), ("IngestDLQ", outputs.IngestDLQUrl)):
            messages = _drain(self._sqs, url, PEEK_SECONDS)
            _release(self._sqs, url, messages)
            for message in messages:
                body = json.loads(message["Body"])
                if queue == "FailedQueue":
                    failures.append(
                        Failure(
                            queue,
                            body.get("media_id"),
                            f"{body.get('step')}: {body.get('error')}: {body.get('cause')}",
                            body,
                        )
                    )
                else:
                    key = body.get("detail", {}).get("object", {}).get("key", "?")
                    failures.append(Failure(queue, _dlq_media_id(body), f"could not start a run for {key}", body))
        webhooks = _drain(self._sqs, outputs.WebhookDLQUrl, PEEK_SECONDS)
        _release(self._sqs, outputs.WebhookDLQUrl, webhooks)
        for message in webhooks:
            body = json.loads(message["Body"])
            failures.append(Failure("WebhookDLQ", _webhook_media_id(body), _webhook_failure(body), body))
        renders = _drain(self._sqs, outputs.ReprocessDLQUrl, PEEK_SECONDS)
        _release(self._sqs, outputs.ReprocessDLQUrl, renders)
        for message in renders:
            body = json.loads(message["Body"])
            detail = "could not be rendered again with the current settings (its variants are the previous ones)"
            failures.append(Failure("ReprocessDLQ", _reprocess_media_id(body), detail, body))
        return failures

    def redrive(
        self, media_ids: list[str] | None = None, waiting: Callable[[str], None] = lambda _: None
    ) -> list[tuple[str, str]]:
        """Run failed media again; return (media_id, what happened) pairs. No ids: everything that failed.

        Each run takes an in-flight slot like any other, so a redrive of many media waits for slots (``waiting`` is
        told why) instead of starting them all at once; a media still without a slot after SLOT_WAIT_SECONDS stays
        FAILED with its message, for a later redrive."""
        wanted = set(media_ids or [])
        results: list[tuple[str, str]] = []
        outputs = self._stack.outputs
        messages = _drain(self._sqs, outputs.FailedQueueUrl, REDRIVE_HIDE_SECONDS)
        hidden = _Hidden(self._sqs, outputs.FailedQueueUrl, messages)
        handled: dict[str, bool] = {}  # media id → started (or skipped for good)
        for message in messages:
            media_id = json.loads(message["Body"]).get("media_id")
            if wanted and media_id not in wanted:
                _release(self._sqs, outputs.FailedQueueUrl, [message])
                hidden.done(message)
                continue
            if media_id not in handled:
                # Once one media waited SLOT_WAIT_SECONDS in vain, the others get one try each, not as long again.
                patience = SLOT_WAIT_SECONDS if all(handled.values()) else 0.0
                outcome, settled = self._redrive_one(media_id, hidden.renew, waiting, patience)
                results.append((media_id, outcome))
                handled[media_id] = settled
            if handled[media_id]:
                self._sqs.delete_message(QueueUrl=outputs.FailedQueueUrl, ReceiptHandle=message["ReceiptHandle"])
            else:
                _release(self._sqs, outputs.FailedQueueUrl, [message])
            hidden.done(message)
        for media_id in sorted(wanted - set(handled)):  # FAILED media whose message is gone: the item has the source
            patience = SLOT_WAIT_SECONDS if all(handled.values()) else 0.0
            outcome, settled = self._redrive_one(media_id, lambda: None, waiting, patience)
            results.append((media_id, outcome))
            handled[media_id] = settled
        results += self._send_back(outputs.IngestDLQUrl, outputs.IngestQueueUrl, _dlq_media_id, wanted, "IngestQueue")
        webhooks = self._webhook_queue_url()
        results += self._send_back(outputs.WebhookDLQUrl, webhooks, _webhook_media_id, wanted, "WebhookQueue")
        results += self._send_back(
            outputs.ReprocessDLQUrl, outputs.ReprocessQueueUrl, _reprocess_media_id, wanted, "ReprocessQueue"
        )
        return results

    def _send_back(
        self, dlq: str, queue: str, media_id_of: Callable[[dict[str, Any]], str | None], wanted: set[str], name: str
    ) -> list[tuple[str, str]]:
        """Move a dead-letter queue's messages (of the ``wanted`` media, or all) back to the queue they left."""
        results = []
        for message in _drain(self._sqs, dlq, 60):
            media_id = media_id_of(json.loads(message["Body"]))
            if wanted and media_id not in wanted:
                _release(self._sqs, dlq, [message])
                continue
            self._sqs.send_message(QueueUrl=queue, MessageBody=message["Body"])
            self._sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
            results.append((media_id or "?", f"event sent back to {name}"))
        return results

    def _webhook_queue_url(self) -> str:
        """The queue WebhookDLQ is the dead-letter queue of (its redrive source)."""
        sources = self._sqs.list_dead_letter_source_queues(QueueUrl=self._stack.outputs.WebhookDLQUrl)
        urls = sources.get("queueUrls", [])
        if len(urls) != 1:
            raise RuntimeError(f"WebhookDLQ should be the dead-letter queue of one queue, not of {urls}")
        return str(urls[0])

    def _redrive_one(
        self, media_id: str, keep_hidden: Callable[[], None], waiting: Callable[[str], None], patience: float
    ) -> tuple[str, bool]:
        """(what happened, whether it is settled: started, or not FAILED any more), waiting up to ``patience``
        seconds for an in-flight slot."""
        deadline = time.monotonic() + patience
        pause = 0.5
        while True:
            try:
                return f"started {self._starter.redrive(media_id, self._repo, self._slots)}", True
            except InvalidTransition as reason:
                return f"skipped: {reason}", True
            except AtCapacity as busy:
                if time.monotonic() + pause > deadline:
                    return f"not started: {busy} (still FAILED; redrive it later)", False
                waiting(f"{media_id}: waiting for an in-flight slot ({busy})")
                keep_hidden()
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
