"""Typed models of the contract (DESIGN §4): statuses, media items and the pipeline's step payloads."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Status(StrEnum):
    PENDING_UPLOAD = "PENDING_UPLOAD"
    PROCESSING = "PROCESSING"
    READY = "READY"
    DUPLICATE = "DUPLICATE"
    REJECTED = "REJECTED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self in {Status.READY, Status.DUPLICATE, Status.REJECTED, Status.FAILED}


class GpsPosition(BaseModel):
    latitude: float
    longitude: float


class PhotoFacts(BaseModel):
    """Facts worth keeping about the original (GPS is kept here only, never in outputs)."""

    width: int
    height: int
    orientation: int | None = None
    taken_at: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    gps: GpsPosition | None = None


class SourceObject(BaseModel):
    """The S3 object a media came from."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    etag: str = ""
    size: int = Field(ge=0)


class PipelineInput(SourceObject):
    """The input of one pipeline execution (its name is ``media_id``)."""

    media_id: str


class StepInput(BaseModel):
    """What every pipeline step receives: the media and the execution it runs in."""

    media: PipelineInput
    execution_arn: str


class MediaItem(BaseModel):
    """The media item of DESIGN §4.2 as stored (``pk = MEDIA#<media_id>``, ``sk = META``)."""

    media_id: str
    status: Status
    source: SourceObject
    execution_arn: str | None = None
    created_at: str
    updated_at: str
