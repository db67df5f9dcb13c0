"""The reconciler: whatever a user dropped in ends with a final status, even when an event or a run was lost.

It finds three kinds of loose ends and ties each off, idempotently (running it twice does nothing more):

- **An original with no media** (under ``uploads/`` or ``drop/``): its "Object Created" event never became a run —
  EventBridge gave up on a throttled or misconfigured target, or the emulator stopped between the PUT and ingest.
  The event is sent again to the ingest queue (spelled as S3 spells it), so it goes through the in-flight limit like
  any other. A ``PENDING_UPLOAD`` media whose bytes did arrive is the same loose end seen from the API's side.
- **A media PROCESSING longer than a run can take** whose execution is no longer running (stopped, timed out, or
  ended without its last write): it is marked ``FAILED`` with what happened, and its FailedQueue message is sent,
  so ``photopipe redrive`` (or ``POST /v1/media/{id}/retry``) runs it again.

The scheduled function and ``photopipe reconcile`` run this same function.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from photopipe_core.events import MediaEvents
from photopipe_core.keys import INGEST_PREFIXES, NotAnIngestKey, media_id_for_object
from photopipe_core.models import MediaItem, Status, is_express
from photopipe_core.pipeline import EXPRESS_LONGEST_RUN_SECONDS
from photopipe_core.repository import BATCH_GET, InvalidTransition, MediaRepository
from photopipe_core.storage import MessageQueue, ObjectStore, StoredObject

# How long a run may take before the reconciler looks at it (the longest step is Resize: 120 s, with retries).
PROCESSING_MAX_AGE = timedelta(minutes=15)
# How long after its item was created an upload's bytes may have arrived without an event having been seen.
PENDING_GRACE = timedelta(minutes=2)
# What the scheduled run looks back over (EventBridge retries an event for 24 hours at most).
SCHEDULED_LOOK_BACK = timedelta(days=1)


@dataclass
class Reconciled:
    resent: list[str] = field(default_factory=list)  # keys whose event was sent again
    failed: list[str] = field(default_factory=list)  # media marked FAILED (their run ended without a status)

    @property
    def total(self) -> int:
        return len(self.resent) + len(self.failed)


def object_created_event(bucket: str, obj: StoredObject, account: str = "", region: str = "") -> dict[str, Any]:
    """An EventBridge "Object Created" event for ``obj``, its key spelled URL-encoded as S3 spells it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "account": account,
        "region": region,
        "detail-type": "Object Created",
        "source": "aws.s3",
        "time": obj.last_modified.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": quote(obj.key), "size": obj.size, "etag": obj.etag.strip('"')},
            "request-id": "photopipe-reconcile",
            "reason": "PutObject",
            "requester": "photopipe-reconcile",
        },
    }


def reconcile(
    bucket: str,
    originals: Iterable[StoredObject],
    repo: MediaRepository,
    resend: Callable[[dict[str, Any]], None],
    is_running: Callable[[str], bool],
    fail: Callable[[MediaItem, str], None],
    now: datetime,
    look_back: timedelta | None = None,
    grace: timedelta = PENDING_GRACE,
    stuck_after: timedelta = PROCESSING_MAX_AGE,
    events_waiting: bool = False,
) -> Reconciled:
    """Tie off every loose end (see the module's description); return what was done. With ``look_back``, only
    originals written within that time are checked (the scheduled run: its cost stays that of the recent uploads,
    not of the whole library). While ``events_waiting`` (the ingest queue holds messages), no original is sent
    again: in a burst, photos wait there for an in-flight slot far longer than the grace, and an event that is
    waiting is not lost; a lost one is found by the first run after the queue has drained."""
    done = Reconciled()
    # while events wait, the originals are not even listed (a burst is when listing them costs most)
    candidates = () if events_waiting else (obj for obj in originals if _may_be_lost(obj, now, look_back, grace))
    for chunk in _chunks(((obj, _media_id(bucket, obj)) for obj in candidates), BATCH_GET):
        known = repo.statuses([media_id for _, media_id in chunk if media_id])
        for obj, media_id in chunk:
            if media_id and known.get(media_id, Status.PENDING_UPLOAD) is Status.PENDING_UPLOAD:
                resend(object_created_event(bucket, obj))
                done.resent.append(obj.key)
    for item in repo.list_all_by_status(Status.PROCESSING):
        age = now - _parse(item.updated_at)
        if age < stuck_after or not item.execution_arn:
            continue
        if is_express(item.execution_arn) and age.total_seconds() < EXPRESS_LONGEST_RUN_SECONDS:
            continue  # it may still be running, and an EXPRESS run cannot be asked about
        if is_running(item.execution_arn):
            continue
        try:
            fail(item, "the run ended without a final status; the reconciler marked it FAILED")
        except InvalidTransition:
            continue  # it finished meanwhile
        done.failed.append(item.media_id)
    return done


def _may_be_lost(obj: StoredObject, now: datetime, look_back: timedelta | None, grace: timedelta) -> bool:
    """Whether an original is old enough for its event to have come (and within ``look_back``, when given)."""
    age = now - obj.last_modified
    return age >= grace and (look_back is None or age <= look_back)


def _media_id(bucket: str, obj: StoredObject) -> str | None:
    try:
        return media_id_for_object(bucket, obj.key, obj.etag)
    except NotAnIngestKey:
        return None


def _chunks[T](items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _parse(timestamp: str | None) -> datetime:
    if not timestamp:
        return datetime.min.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def run(
    store: ObjectStore,
    repo: MediaRepository,
    ingest: MessageQueue,
    failed: MessageQueue,
    sfn: Any,
    now: datetime,
    events: MediaEvents,
    look_back: timedelta | None = None,
    grace: timedelta = PENDING_GRACE,
    stuck_after: timedelta = PROCESSING_MAX_AGE,
    wait_for_queue: bool = False,
) -> Reconciled:
    """``reconcile`` wired to the stack's own adapters (the scheduled function and ``photopipe reconcile``); with
    ``wait_for_queue`` (the scheduled function), no original is sent again while the ingest queue holds messages."""

    def is_running(execution_arn: str) -> bool:
        if is_express(execution_arn):
            return False  # reconcile() asks only once it must have ended
        try:
            return bool(sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING")
        except (sfn.exceptions.ExecutionDoesNotExist, sfn.exceptions.InvalidArn):
            return False  # never started (an EXPRESS retry's ARN is a placeholder until its run reaches Validate)

    def fail(item: MediaItem, reason: str) -> None:
        assert item.execution_arn is not None
        failing = repo.finish(
            item.media_id, item.execution_arn, Status.FAILED, "reconcile", error=f"reconcile: {reason}"
        )
        failed.send(failed_message(item, reason))
        events.published(failing)

    originals = (obj for prefix in INGEST_PREFIXES for obj in store.objects(prefix))
    waiting = wait_for_queue and ingest.waiting() > 0
    return reconcile(
        store.bucket, originals, repo, ingest.send, is_running, fail, now, look_back, grace, stuck_after, waiting
    )


def failed_message(item: MediaItem, reason: str) -> dict[str, Any]:
    """The FailedQueue message for a media the reconciler failed (the same shape the fail step sends)."""
    return {
        "media_id": item.media_id,
        "execution_arn": item.execution_arn,
        "input": {
            "media_id": item.media_id,
            "bucket": item.source.bucket,
            "key": item.source.key,
            "etag": item.source.etag,
            "size": item.source.size,
        },
        "step": "reconcile",
        "error": "RunLost",
        "cause": reason,
    }
