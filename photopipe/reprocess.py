"""`photopipe reprocess`: READY media rendered again with the stack's current variant and WebP settings.

The stack's settings are those its Reprocess function runs with (the template's ``Variants``, ``WebpQuality`` and
``WebpMethod``); each media records the fingerprint of the settings its variants were rendered with
(``rendered_with``). The media whose fingerprint differs are sent, by id, to ReprocessQueue; the function renders
each (two at a time), replaces its variants, deletes those no longer in the set and adds a history entry. Sending
the same media twice renders it once: a media already rendered with the current settings is skipped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from photopipe.stack import Stack
from photopipe_core.models import MediaItem, Status
from photopipe_core.repository import BATCH_GET, MediaRepository
from photopipe_core.settings import render_fingerprint

SEND_BATCH = 10  # SQS SendMessageBatch's limit
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Settings:
    variants: str
    webp_quality: int
    webp_method: int

    @property
    def fingerprint(self) -> str:
        return render_fingerprint(self.variants, self.webp_quality, self.webp_method)


@dataclass
class Plan:
    settings: Settings
    to_render: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    not_ready: list[tuple[str, str]] = field(default_factory=list)  # (media id, why)


@dataclass(frozen=True)
class Progress:
    rendered: int
    total: int
    queued: int  # still in ReprocessQueue (waiting or being rendered)


class Reprocessing:
    def __init__(self, stack: Stack, repository: MediaRepository) -> None:
        self._stack = stack
        self._repo = repository
        self._sqs = stack.client("sqs")

    def settings(self) -> Settings:
        """The settings the stack's Reprocess function renders with."""
        cfn, lam = self._stack.client("cloudformation"), self._stack.client("lambda")
        resource = cfn.describe_stack_resource(
            StackName=self._stack.settings.stack_name, LogicalResourceId="ReprocessFunction"
        )["StackResourceDetail"]
        variables = lam.get_function_configuration(FunctionName=resource["PhysicalResourceId"])["Environment"]
        env = variables["Variables"]
        return Settings(env["VARIANTS"], int(env["WEBP_QUALITY"]), int(env["WEBP_METHOD"]))

    def plan(self, media_ids: list[str] | None) -> Plan:
        """What a reprocess of ``media_ids`` (None: every READY media) would render."""
        plan = Plan(self.settings())
        if media_ids is None:
            candidates: Iterable[MediaItem] = self._repo.list_all_by_status(Status.READY)
        else:
            found: dict[str, MediaItem] = {}
            unique = list(dict.fromkeys(media_ids))
            for start in range(0, len(unique), BATCH_GET):
                found |= self._repo.get_many(unique[start : start + BATCH_GET])
            plan.not_ready += [(media_id, "no such media") for media_id in unique if media_id not in found]
            candidates = [found[media_id] for media_id in unique if media_id in found]
        fingerprint = plan.settings.fingerprint
        for item in candidates:
            if item.status != Status.READY:
                plan.not_ready.append((item.media_id, f"{item.status.value}, not READY"))
            elif item.rendered_with == fingerprint:
                plan.up_to_date.append(item.media_id)
            else:
                plan.to_render.append(item.media_id)
        return plan

    def send(self, media_ids: list[str]) -> None:
        url = self._stack.outputs.ReprocessQueueUrl
        for start in range(0, len(media_ids), SEND_BATCH):
            batch = media_ids[start : start + SEND_BATCH]
            entries = [{"Id": str(n), "MessageBody": json.dumps({"media_id": m})} for n, m in enumerate(batch)]
            answer = self._sqs.send_message_batch(QueueUrl=url, Entries=entries)
            if answer.get("Failed"):
                raise RuntimeError(f"ReprocessQueue refused {len(answer['Failed'])} message(s): {answer['Failed'][0]}")

    def progress(self, media_ids: list[str], fingerprint: str) -> Progress:
        rendered = 0
        for start in range(0, len(media_ids), BATCH_GET):
            found = self._repo.get_many(media_ids[start : start + BATCH_GET])
            rendered += sum(1 for item in found.values() if item.rendered_with == fingerprint)
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._stack.outputs.ReprocessQueueUrl,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        queued = int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
        return Progress(rendered, len(media_ids), queued)

    def wait(
        self, media_ids: list[str], fingerprint: str, timeout: float, shown: Callable[[Progress], None]
    ) -> Progress:
        """Until every media is rendered with ``fingerprint``, the queue has been empty for two looks in a row
        (what is left was not rendered: see ReprocessDLQ and the function's log), or ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        empty = 0
        while True:
            now = self.progress(media_ids, fingerprint)
            shown(now)
            empty = empty + 1 if now.queued == 0 else 0
            if now.rendered >= now.total or empty >= 2 or time.monotonic() > deadline:
                return now
            time.sleep(POLL_SECONDS)
