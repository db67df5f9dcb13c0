"""Domain events: every final status a media reaches is published to the stack's event bus, at least once, for
whoever subscribes (an EventBridge rule to a queue, a function, an API destination).

``source`` is ``photopipe``; the detail-type names the status (``Media Ready``, ``Media Rejected``,
``Media Duplicate``, ``Media Failed``); the detail is the media as the API shows it, without URLs (they expire; a
duplicate's own, naming its original, not the original's variants), with its ``owner`` and ``version``: how many
final statuses the media has had. A step that is retried publishes the same version again, and a media retried after
FAILED publishes a higher one, so a consumer that keeps the highest version it has seen of each media acts on each
change once. FAILED written by the state machine itself, when the fail step cannot run, is published by the state
machine (with fewer fields: no file name or type, no callback_url, so no webhook). Not published: a status whose
function died between writing it and publishing it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from photopipe_core import aws
from photopipe_core.api import media_document
from photopipe_core.models import MediaItem, Status
from photopipe_core.settings import get_settings

SOURCE = "photopipe"
DETAIL_TYPES = {
    Status.READY: "Media Ready",
    Status.REJECTED: "Media Rejected",
    Status.DUPLICATE: "Media Duplicate",
    Status.FAILED: "Media Failed",
}


class PublishFailed(RuntimeError):
    """EventBridge did not take the event (the step fails, and its retry publishes it)."""


def media_event(item: MediaItem) -> tuple[str, dict[str, Any]]:
    """The detail-type and detail of the event for a media's final status."""
    return DETAIL_TYPES[item.status], {**media_document(item), "version": item.version}


class MediaEvents:
    def __init__(self, client: Any, bus: str) -> None:
        self._client = client
        self.bus = bus

    def published(self, item: MediaItem) -> MediaItem:
        """Publish the event of ``item``'s final status; returns ``item``."""
        detail_type, detail = media_event(item)
        answer = self._client.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": self.bus,
                    "Resources": [f"photopipe:media/{item.media_id}"],
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            entry = answer["Entries"][0]
            why = f"{entry.get('ErrorCode')}: {entry.get('ErrorMessage')}"
            raise PublishFailed(f"{detail_type} of {item.media_id} was not taken: {why}")
        return item


@lru_cache(maxsize=1)
def media_events() -> MediaEvents:
    return MediaEvents(aws.client("events"), get_settings().require("event_bus_name"))
