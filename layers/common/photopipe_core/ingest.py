"""What an 'Object Created' event means for the pipeline."""

from __future__ import annotations

from enum import StrEnum

from aws_lambda_powertools import Logger

from photopipe_core.keys import NotAnIngestKey, media_id_for_object
from photopipe_core.models import PipelineInput
from photopipe_core.pipeline import StartOutcome, pipeline_starter

logger = Logger(child=True)


class IngestOutcome(StrEnum):
    STARTED = "started"
    ALREADY_STARTED = "already_started"
    IGNORED = "ignored"


def ingest_object_created(bucket: str, key: str, etag: str, size: int) -> IngestOutcome:
    """Start the pipeline for a new object; repeats of the same event collapse onto the same execution."""
    try:
        media_id = media_id_for_object(bucket, key, etag)
    except NotAnIngestKey as reason:
        logger.warning("object ignored", extra={"bucket": bucket, "key": key, "reason": str(reason)})
        return IngestOutcome.IGNORED
    logger.append_keys(media_id=media_id, step="ingest")
    outcome = pipeline_starter().start(PipelineInput(media_id=media_id, bucket=bucket, key=key, etag=etag, size=size))
    logger.info("pipeline start", extra={"key": key, "outcome": outcome.value})
    return IngestOutcome.STARTED if outcome is StartOutcome.STARTED else IngestOutcome.ALREADY_STARTED
