"""What an 'Object Created' event means for the pipeline, and when its run may start.

A run starts only with an in-flight slot (``photopipe_core.inflight``): at most ``MaxInFlight`` photos are between
"execution started" and a terminal status. Ingest waits for a slot within its invocation (the event source lets
only a couple of ingest invocations run at once, so the rest of a burst waits in the queue, visible as its depth);
an event still without a slot when the invocation's time runs short goes back to the queue as a new, delayed
message — it waits, it is not counted as a failed delivery, and so it never reaches the dead-letter queue for it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import StrEnum

from aws_lambda_powertools import Logger

from photopipe_core.inflight import InFlightSlots, Take, in_flight_slots
from photopipe_core.keys import DROP_PREFIX, NotAnIngestKey, media_id_for_object
from photopipe_core.models import MediaItem, PipelineInput
from photopipe_core.pipeline import StartOutcome, pipeline_starter
from photopipe_core.repository import media_repository

logger = Logger(child=True)

FIRST_PAUSE_SECONDS = 0.05
LONGEST_PAUSE_SECONDS = 0.25  # how late a freed slot may be noticed at most


class IngestOutcome(StrEnum):
    STARTED = "started"
    ALREADY_STARTED = "already_started"
    IGNORED = "ignored"
    DEFERRED = "deferred"


class NoCapacity(Exception):
    """Every in-flight slot stayed taken until the deadline; the event has to wait longer in the queue."""


class RunInFlight(NoCapacity):
    """The media's run holds its slot (EXPRESS, whose starts are not idempotent): the event waits in the queue."""


def wait_for_slot(
    slots: InFlightSlots,
    run: str,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Take:
    """Take an in-flight slot for ``run``, waiting (with growing, jittered pauses) until ``deadline`` at most."""
    pause = FIRST_PAUSE_SECONDS
    taken = slots.try_acquire(run, time.time())
    while taken is Take.FULL:
        if clock() + pause > deadline:
            raise NoCapacity(f"all {slots.limit} in-flight slots stayed taken")
        sleep(pause * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not security
        pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
        # Reading the count is cheaper than a conditional write that fails (both bill the item's size on AWS).
        if slots.held() < slots.limit:
            taken = slots.try_acquire(run, time.time())
    return taken


def ingest_object_created(bucket: str, key: str, etag: str, size: int, deadline: float) -> IngestOutcome:
    """Start the pipeline for a new object once a slot is free; repeats of the same event collapse onto the same
    execution (and give back a slot they took for it), and an object whose media has a final status starts
    nothing. Raises ``NoCapacity`` when no slot freed up in time (``RunInFlight``: EXPRESS, its run holds it)."""
    try:
        media_id = media_id_for_object(bucket, key, etag)
    except NotAnIngestKey as reason:
        logger.warning("object ignored", extra={"bucket": bucket, "key": key, "reason": str(reason)})
        return IngestOutcome.IGNORED
    logger.append_keys(media_id=media_id, step="ingest")
    existing = finished_media(media_id, key, etag)
    if existing is not None:
        # Its run ended: a repeat of the event, or the original put back by a restore (whose stack never ran it).
        logger.info("media already finished", extra={"key": key, "status": existing.status.value})
        return IngestOutcome.ALREADY_STARTED
    slots = in_flight_slots()
    taken = wait_for_slot(slots, media_id, deadline)
    starter = pipeline_starter()
    if taken is Take.HELD and starter.express:
        # Its run holds the slot: started, or being started by the delivery that took it (STANDARD would collapse a
        # second start onto that run; EXPRESS would run it twice). The event waits: once that run has ended it finds
        # the media finished, and if the delivery that took the slot died before starting the run, it starts it
        # once the sweeper has given that slot back.
        raise RunInFlight(f"the run of {media_id} holds its in-flight slot")
    try:
        outcome = starter.start(PipelineInput(media_id=media_id, bucket=bucket, key=key, etag=etag, size=size))
    except Exception:
        if taken is Take.ACQUIRED:
            slots.release(media_id)
        raise
    if outcome is StartOutcome.ALREADY_STARTED and taken is Take.ACQUIRED:
        slots.release(media_id)  # the existing run took its own slot when it started
    logger.info("pipeline start", extra={"key": key, "outcome": outcome.value, "slot": taken.value})
    return IngestOutcome.STARTED if outcome is StartOutcome.STARTED else IngestOutcome.ALREADY_STARTED


def finished_media(media_id: str, key: str, etag: str) -> MediaItem | None:
    """The media this object already ended as, if any: its own, or — for a drop-folder object, whose media id is
    derived from the bucket's name — the one made from the same key and bytes in the bucket a restore copied."""
    repo = media_repository()
    existing = repo.get(media_id)
    if existing is None and key.startswith(DROP_PREFIX):
        existing = repo.find_by_key(key)
        if existing is not None and existing.source.etag.strip('"') != etag.strip('"'):
            existing = None  # other bytes under the same name: a new photo
    return existing if existing is not None and existing.status.is_terminal else None


def wait_delay_seconds(waits: int) -> int:
    """How long an event that found no slot stays out of sight before it tries again (5 s, 10 s … at most 60 s)."""
    return min(60, 5 * (waits + 1))
