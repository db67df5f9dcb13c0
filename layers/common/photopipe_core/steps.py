"""The pipeline's steps as domain functions over models and adapters (the Lambda handlers only call these).

Validate → Dedupe → Resize (decode once, every variant rendered and written as WebP) → Finalize, plus the outcome
steps Reject, Duplicate and Fail. Steps pass S3 keys, never image bytes; every step is safe to run again.

The step that gives a media its final status also gives back the run's in-flight slot (``inflight``), right after
the status is written: an EXPRESS workflow sends no event when a run closes, and a STANDARD one frees the slot a
moment sooner. The slot of a run that closes without such a step (stopped, timed out) is given back by the
execution's status-change event (STANDARD) or by the sweeper once an EXPRESS run must have ended.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor, wait
from functools import cache
from typing import Any

from PIL import Image

from photopipe_core import imaging
from photopipe_core.albums import AlbumPhoto
from photopipe_core.errors import (
    REJECTION_BY_REASON,
    REJECTIONS,
    CorruptImage,
    Superseded,
    TooLarge,
    TooManyFrames,
    TransientError,
)
from photopipe_core.inflight import InFlightSlots
from photopipe_core.keys import media_prefix, variant_key
from photopipe_core.models import (
    MediaItem,
    OutcomeInput,
    SourceFacts,
    Status,
    StepInput,
    Variant,
    VariantRef,
    run_name,
)
from photopipe_core.repository import InvalidTransition, MediaRepository
from photopipe_core.settings import CACHE_CONTROL, Settings
from photopipe_core.storage import MessageQueue, ObjectHead, ObjectStore

WEBP = "image/webp"
HEADER_BYTES = 256 * 1024  # a camera JPEG's markers (EXIF with its thumbnail, ICC, XMP) up to the frame header


@cache
def _encoder() -> ThreadPoolExecutor:
    """The one background thread Resize encodes its largest variant on (kept for the life of the process)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")


def validate(
    step: StepInput, store: ObjectStore, repo: MediaRepository, settings: Settings, slots: InFlightSlots
) -> StepInput:
    """Check the original by content and limits (a RejectedInput ends the run as REJECTED); mark it PROCESSING.

    A run that may not process the media (finished meanwhile, or processed by another run) raises Superseded: the
    state machine ends it with nothing changed. It gives back the slot of its name, unless the run processing the
    media has that name (a second EXPRESS run of one start: the slot is the first one's)."""
    media = step.media
    try:
        recorded, owner = repo.mark_processing(media, step.execution_arn)
    except InvalidTransition as error:
        holder = error.current
        if not (holder and holder.status is Status.PROCESSING and _run_of(holder) == step.run):
            slots.give_back(step.run)
        raise Superseded(str(error)) from error
    head = store.head(media.key)
    if head.size > settings.limits.max_bytes:  # refused before a byte is downloaded
        raise TooLarge(f"{head.size} bytes is over the limit of {settings.limits.max_bytes} bytes")
    info = _inspect_original(store, media.key, head, settings)
    if recorded.declared_sha256 and recorded.declared_sha256 != info.sha256:
        # S3 enforces a declared sha256 on single PUTs; parts of a multipart upload are checked here.
        raise CorruptImage(
            f"the bytes received do not match the sha256 the uploader declared ({recorded.declared_sha256})"
        )
    source = SourceFacts(
        format=info.format,
        content_type=info.content_type,
        declared_type=info.declared_type,
        width=info.width,
        height=info.height,
        frames=info.frames,
        bytes=info.bytes,
        sha256=info.sha256,
        etag=head.etag,
        owner=owner,
    )
    repo.record_source(media.media_id, step.execution_arn, source)
    return step.model_copy(update={"source": source})


def _run_of(item: MediaItem) -> str | None:
    return run_name(item.execution_arn) if item.execution_arn else None


def _inspect_original(store: ObjectStore, key: str, head: ObjectHead, settings: Settings) -> imaging.SourceInfo:
    """``imaging.inspect`` of the original, reading only its beginning when that settles it: S3 already holds the
    SHA-256 of the whole object (verified when it was written) and the header is all a JPEG needs. Anything else,
    or a header longer than the beginning, is inspected over the whole file."""
    if head.sha256 is not None and head.size > HEADER_BYTES:
        start = store.get_start(key, HEADER_BYTES, head.etag)
        try:
            info = imaging.inspect(start, settings.limits, head.content_type, size=head.size, sha256=head.sha256)
        except (CorruptImage, TooManyFrames):
            pass  # perhaps only cut short here: the whole file decides
        else:
            if imaging.header_suffices(info):
                return info
    return imaging.inspect(store.get(key, if_match=head.etag or None), settings.limits, head.content_type)


# Attempts to claim bytes whose owner keeps changing under us (each change is another run finishing or failing).
CLAIM_ATTEMPTS = 3


def dedupe(step: StepInput, repo: MediaRepository) -> str | None:
    """The media of the same owner these exact bytes already belong to, or None when this media is their
    claimant now (each owner's library is deduplicated on its own).

    The same bytes get the same answer: bytes a step refused (REJECTED, by whichever step found it) are refused
    again with the same reason — raised here, so the state machine rejects this media too — never made a DUPLICATE
    of a refused media. Bytes whose owner FAILED (or vanished) are this media's to process: it takes the claim over.
    """
    assert step.source is not None, "dedupe runs after validate"
    sha256, me, owner = step.source.sha256, step.media.media_id, step.source.owner
    for _ in range(CLAIM_ATTEMPTS):
        claimant_id = repo.claim_sha256(owner, sha256, me)
        if claimant_id == me:
            return None
        claimant = repo.get(claimant_id)
        if claimant is not None and claimant.status is Status.REJECTED and claimant.reason in REJECTION_BY_REASON:
            detail = f"the same bytes as {claimant_id}, which was refused: {claimant.reason_detail or claimant.reason}"
            raise REJECTION_BY_REASON[claimant.reason](detail)
        if claimant is not None and claimant.status is not Status.FAILED:
            return claimant_id
        if repo.take_over_claim(owner, sha256, me, claimant_id):
            return None
    raise TransientError(f"the claim on {sha256[:12]}… kept changing owner")


def resize(step: StepInput, store: ObjectStore, settings: Settings) -> StepInput:
    """Decode once, render every variant upright in sRGB and write each as WebP at its deterministic key.

    One step for all variants: the decoded pixels never leave memory (no intermediates to write and read back),
    and the original is downloaded once more here only because Validate must not decode it.
    """
    assert step.source is not None, "resize runs after validate"
    source = step.source
    data = store.get(step.media.key, if_match=source.etag or None)  # exactly the version Validate checked
    info = imaging.SourceInfo(
        source.format,
        source.content_type,
        source.declared_type,
        source.width,
        source.height,
        source.frames,
        source.bytes,
        source.sha256,
    )
    refs, rendered = _render(step.media.media_id, data, info, store, settings)
    return step.model_copy(
        update={
            "variants": refs,
            "phash": rendered.phash,
            "placeholder": rendered.placeholder,
            "facts": rendered.facts,
            "rendered_with": settings.render_fingerprint,
        }
    )


def _render(
    media_id: str,
    data: bytes,
    info: imaging.SourceInfo,
    store: ObjectStore,
    settings: Settings,
    rendering: str | None = None,
) -> tuple[list[VariantRef], imaging.Rendered]:
    """Render ``data`` (the original, ``info`` its facts) and write every variant (at keys of their own for a
    re-render: ``keys.variant_key``); their references, and what rendering found (hash, placeholder, facts)."""
    rendered = imaging.render(data, info, settings.variant_specs, settings.limits)
    del data

    def write(name: str, image: Image.Image) -> VariantRef:
        body = imaging.encode_webp(image, settings.webp)
        key = variant_key(media_id, name, rendering)
        store.put(key, body, WEBP, cache_control=CACHE_CONTROL)
        return VariantRef(name=name, key=key, width=image.width, height=image.height, bytes=len(body))

    # The largest variant (about 60 % of the encoding) is written on the one background thread while this one
    # writes the others: the WebP encoder releases the GIL. One long-lived thread, not a pool per call, and one
    # malloc arena for both (imaging.RENDER_PROCESS_ENV, in the function's environment) keep the peak near one
    # photo's.
    (largest, *others) = rendered.variants.items()
    pending = _encoder().submit(write, *largest)
    try:
        rest = [write(name, image) for name, image in others]
    except BaseException:
        wait([pending])  # nothing of this invocation may still run once it has returned
        raise
    return [pending.result(), *rest], rendered


def rerender(media_id: str, store: ObjectStore, repo: MediaRepository, settings: Settings) -> str:
    """Render a READY media again with the stack's current variant and WebP settings (``photopipe reprocess``):
    the new variants written at new keys, then recorded on the media (with a history entry), then the old ones
    deleted — a reader sees the old set or the new one, never keys whose bytes changed. What happened, in a few
    words; a media not READY, or already rendered with these settings, is left as it is."""
    item = repo.get(media_id)
    if item is None:
        return "skipped: no such media"
    if item.status != Status.READY:
        return f"skipped: {item.status.value}, not READY"
    fingerprint = settings.render_fingerprint
    if item.rendered_with == fingerprint:
        return "skipped: already rendered with these settings"
    data = store.get(item.source.key, if_match=item.source.etag or None)
    info = imaging.inspect(data, settings.limits, item.content_type)
    refs, rendered = _render(media_id, data, info, store, settings, rendering=fingerprint)
    variants = {r.name: Variant(key=r.key, width=r.width, height=r.height, bytes=r.bytes or 0) for r in refs}
    updated = repo.rerendered(media_id, fingerprint, variants, rendered.placeholder, rendered.facts)
    if updated is None:  # what this attempt wrote is not the media's: only a run with these settings wrote there
        if (now := repo.get(media_id)) is None or now.rendered_with != fingerprint:
            store.delete([r.key for r in refs])
        return "skipped: changed meanwhile (no longer READY, or rendered by another reprocess)"
    stale = [key for key in store.keys(media_prefix(media_id)) if key not in {v.key for v in variants.values()}]
    store.delete(stale)
    repo.index_ready(item.owner, media_id, rendered.phash, album_photo_of(updated))
    return f"rendered {', '.join(sorted(variants))}" + (f"; removed {len(stale)} old variant(s)" if stale else "")


def finalize(step: StepInput, store: ObjectStore, repo: MediaRepository, slots: InFlightSlots) -> MediaItem:
    """Record READY with the variants, hashes and facts; index the perceptual hash; give back the slot."""
    assert step.source is not None and step.phash is not None, "finalize runs after resize"
    media_id = step.media.media_id
    variants = {v.name: Variant(key=v.key, width=v.width, height=v.height, bytes=v.bytes or 0) for v in step.variants}
    similar = repo.similar(step.source.owner, media_id, step.phash)
    item = repo.finish(
        media_id,
        step.execution_arn,
        Status.READY,
        "finalize",
        variants=variants,
        phash=step.phash,
        placeholder=step.placeholder,
        similar_to=similar,
        facts=step.facts,
        rendered_with=step.rendered_with,
        taken_at=step.facts.taken_at if step.facts else None,
        width=step.facts.width if step.facts else step.source.width,
        height=step.facts.height if step.facts else step.source.height,
    )
    repo.index_ready(step.source.owner, media_id, step.phash, album_photo_of(item))
    slots.give_back(step.run)
    return item


def album_photo_of(item: MediaItem) -> AlbumPhoto:
    facts = item.facts
    gps = facts.gps if facts else None
    return AlbumPhoto(
        media_id=item.media_id,
        uploaded_at=item.created_at,
        taken_at=facts.taken_at if facts else None,
        taken_offset=facts.taken_offset if facts else None,
        latitude=gps.latitude if gps else None,
        longitude=gps.longitude if gps else None,
    )


def error_cause(outcome: OutcomeInput) -> dict[str, Any]:
    """The Lambda error document inside a Step Functions Catch result (or the raw cause text)."""
    if outcome.error is None:
        return {}
    try:
        cause = json.loads(outcome.error.Cause or "{}")
    except json.JSONDecodeError:
        return {"errorMessage": outcome.error.Cause}
    return cause if isinstance(cause, dict) else {"errorMessage": str(cause)}


def reject(outcome: OutcomeInput, store: ObjectStore, repo: MediaRepository, slots: InFlightSlots) -> MediaItem:
    """REJECTED with the reason code of the RejectedInput that was raised; nothing is left under media/."""
    assert outcome.error is not None, "reject is reached through a Catch"
    reason = REJECTIONS[outcome.error.Error].reason
    detail = error_cause(outcome).get("errorMessage", "")
    media_id = outcome.media.media_id
    store.delete_prefix(media_prefix(media_id))
    item = repo.finish(
        media_id,
        outcome.execution_arn,
        Status.REJECTED,
        outcome.failed_step or "validate",
        reason=reason,
        reason_detail=detail,
        sha256=outcome.source.sha256 if outcome.source else None,
    )
    slots.give_back(outcome.run)
    return item


def mark_duplicate(outcome: OutcomeInput, repo: MediaRepository, slots: InFlightSlots) -> MediaItem:
    """DUPLICATE of the media that owns the same bytes (its variants are that media's)."""
    assert outcome.duplicate_of is not None, "mark_duplicate needs duplicate_of"
    item = repo.finish(
        outcome.media.media_id, outcome.execution_arn, Status.DUPLICATE, "dedupe", duplicate_of=outcome.duplicate_of
    )
    slots.give_back(outcome.run)
    return item


def fail(outcome: OutcomeInput, repo: MediaRepository, queue: MessageQueue, slots: InFlightSlots) -> MediaItem:
    """FAILED with the step and cause, and a message in FailedQueue so it can be redriven."""
    cause = error_cause(outcome)
    step = outcome.failed_step or "unknown"
    error_name = outcome.error.Error if outcome.error else "Unknown"
    message = cause.get("errorMessage") or (outcome.error.Cause if outcome.error else "")
    summary = f"{step}: {error_name}: {message}"[:1000]
    item = repo.finish(outcome.media.media_id, outcome.execution_arn, Status.FAILED, step, error=summary)
    queue.send(
        {
            "media_id": outcome.media.media_id,
            "execution_arn": outcome.execution_arn,
            "input": outcome.media.model_dump(mode="json"),
            "step": step,
            "error": error_name,
            "cause": message,
        }
    )
    slots.give_back(outcome.run)
    return item
