"""FailedQueue and IngestDLQ from the client side: list what failed, and run it again."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from photopipe.stack import Stack
from photopipe_core.keys import NotAnIngestKey, media_id_for_object
from photopipe_core.pipeline import PipelineStarter
from photopipe_core.repository import InvalidTransition, MediaRepository

# Seconds a listed message stays hidden; it is made visible again right after listing.
PEEK_SECONDS = 5
BATCH = 10


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


def _dlq_media_id(body: dict[str, Any]) -> str | None:
    try:
        detail = body["detail"]
        return media_id_for_object(detail["bucket"]["name"], detail["object"]["key"], detail["object"].get("etag", ""))
    except (KeyError, TypeError, NotAnIngestKey):
        return None


class Failures:
    def __init__(self, stack: Stack, repo: MediaRepository) -> None:
        self._stack = stack
        self._sqs = stack.client("sqs")
        self._repo = repo
        self._starter = PipelineStarter(stack.client("stepfunctions"), stack.outputs.PipelineStateMachineArn)

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
        return failures

    def redrive(self, media_ids: list[str] | None = None) -> list[tuple[str, str]]:
        """Run failed media again; return (media_id, what happened) pairs. No ids: everything that failed."""
        wanted = set(media_ids or [])
        results: list[tuple[str, str]] = []
        outputs = self._stack.outputs
        messages = _drain(self._sqs, outputs.FailedQueueUrl, 60)
        handled: set[str] = set()
        for message in messages:
            media_id = json.loads(message["Body"]).get("media_id")
            if wanted and media_id not in wanted:
                _release(self._sqs, outputs.FailedQueueUrl, [message])
                continue
            if media_id not in handled:
                results.append((media_id, self._redrive_one(media_id)))
                handled.add(media_id)
            self._sqs.delete_message(QueueUrl=outputs.FailedQueueUrl, ReceiptHandle=message["ReceiptHandle"])
        for media_id in sorted(wanted - handled):  # FAILED media whose message is gone: the item has the source
            results.append((media_id, self._redrive_one(media_id)))
            handled.add(media_id)
        for message in _drain(self._sqs, outputs.IngestDLQUrl, 60):
            media_id = _dlq_media_id(json.loads(message["Body"]))
            if wanted and media_id not in wanted:
                _release(self._sqs, outputs.IngestDLQUrl, [message])
                continue
            self._sqs.send_message(QueueUrl=outputs.IngestQueueUrl, MessageBody=message["Body"])
            self._sqs.delete_message(QueueUrl=outputs.IngestDLQUrl, ReceiptHandle=message["ReceiptHandle"])
            results.append((media_id or "?", "event sent back to IngestQueue"))
        return results

    def _redrive_one(self, media_id: str) -> str:
        try:
            return f"started {self._starter.redrive(media_id, self._repo)}"
        except InvalidTransition as reason:
            return f"skipped: {reason}"
