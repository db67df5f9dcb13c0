"""Load the sample events in events/ (one helper for every test)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"


def load_event(name: str) -> dict[str, Any]:
    """The event ``name`` with ``{{other.json}}`` placeholders replaced by that event's JSON text."""
    text = (EVENTS_DIR / name).read_text()
    event: dict[str, Any] = json.loads(text)
    return _expand(event)


def _expand(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, str) and value.startswith("{{") and value.endswith("}}"):
        return json.dumps(load_event(value[2:-2]))
    return value


def s3_object_created(bucket: str, key: str, etag: str = "etag-1", size: int = 1234) -> dict[str, Any]:
    event = copy.deepcopy(load_event("s3-object-created.json"))
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"].update(key=key, etag=etag, size=size)
    return event


def sqs_batch(*bodies: dict[str, Any]) -> dict[str, Any]:
    """An SQS batch whose records carry ``bodies`` (as the ingest queue delivers EventBridge events)."""
    template = load_event("sqs-ingest-batch.json")["Records"][0]
    records = []
    for index, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"] = f"message-{index}"
        record["body"] = json.dumps(body)
        records.append(record)
    return {"Records": records}
