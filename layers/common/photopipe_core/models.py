"""Typed models of the contract (DESIGN §4): statuses, media items and the pipeline's step payloads."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

# The owner of media that no API key owns: drop-folder objects outside an owner's folder (DESIGN §4.6).
OPERATOR = "operator"


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
    taken_at: str | None = None  # the camera's local time
    taken_offset: str | None = None  # of that local time from UTC ("+02:00"), when the photo says
    camera_make: str | None = None
    camera_model: str | None = None
    gps: GpsPosition | None = None


class ObjectRef(BaseModel):
    """An S3 object as an event reports it."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    etag: str = ""
    size: int = Field(ge=0)


class SourceObject(ObjectRef):
    """The S3 object a media came from (and, for API uploads, what the client declared)."""

    filename: str | None = None
    content_type: str | None = None
    declared_sha256: str | None = None
    upload_id: str | None = None  # the S3 multipart upload of a large API upload


class PipelineInput(ObjectRef):
    """The input of one pipeline execution (named ``media_id``, or ``media_id-<attempt>`` when redriven)."""

    media_id: str


class SourceFacts(BaseModel):
    """What validation learnt from the original's header (type by content, size, digest)."""

    format: str
    content_type: str
    declared_type: str = ""
    width: int
    height: int
    frames: int = 1
    bytes: int
    sha256: str
    etag: str = ""  # the version of the original these facts are about; Resize decodes exactly that version
    owner: str = OPERATOR  # whose media it is: deduplication and near-duplicates stay within the owner's media


class VariantRef(BaseModel):
    """A variant written by Resize: its WebP output under media/."""

    name: str
    key: str
    width: int
    height: int
    bytes: int | None = None


class Placeholder(BaseModel):
    """What a gallery shows while a variant loads (``photopipe_core.placeholder``)."""

    thumbhash: str  # base64 of the ThumbHash bytes
    color: str  # the dominant colour, #rrggbb


def run_name(execution_arn: str) -> str:
    """An execution's name from its ARN: a STANDARD run's is its last part (``…:execution:<machine>:<name>``), an
    EXPRESS run's the one before its unique suffix (``…:express:<machine>:<name>:<id>``)."""
    if is_express(execution_arn):
        return execution_arn.split(":")[7]
    return execution_arn.rsplit(":", 1)[-1]


def is_express(execution_arn: str) -> bool:
    """Whether the ARN is an EXPRESS run's (which cannot be described or have its history read)."""
    parts = execution_arn.split(":")
    return len(parts) == 9 and parts[5] == "express"


class StepInput(BaseModel):
    """What every pipeline step receives: the media, the execution, and what earlier steps found."""

    media: PipelineInput
    execution_arn: str
    source: SourceFacts | None = None
    variants: list[VariantRef] = Field(default_factory=list)
    phash: str | None = None
    placeholder: Placeholder | None = None
    facts: PhotoFacts | None = None
    rendered_with: str | None = None  # settings.render_fingerprint of the Resize that rendered the variants

    @property
    def run(self) -> str:
        """The execution's name (``media_id``, or ``media_id-<attempt>`` for a redrive): see ``run_name``."""
        return run_name(self.execution_arn)


class StepError(BaseModel):
    """A Step Functions Catch result (``$.error``): the error name and its cause (a JSON document from Lambda)."""

    Error: str
    Cause: str = ""


class OutcomeInput(StepInput):
    """Input of the terminal-outcome steps (reject, duplicate, fail)."""

    error: StepError | None = None
    failed_step: str | None = None
    duplicate_of: str | None = None


class Variant(BaseModel):
    key: str
    width: int
    height: int
    bytes: int
    format: str = "webp"


class WebhookState(BaseModel):
    """The last delivery attempt of a media's event to its ``callback_url`` (``photopipe_core.webhooks``)."""

    state: str  # delivered | retrying | failed (the event waits in the webhook dead-letter queue)
    version: int  # the event's media version
    attempts: int
    at: str
    status_code: int | None = None
    error: str | None = None


class MediaItem(BaseModel):
    """The media item of DESIGN §4.2 as stored (``pk = MEDIA#<media_id>``, ``sk = META``)."""

    media_id: str
    status: Status
    source: SourceObject
    owner: str = OPERATOR
    execution_arn: str | None = None
    reason: str | None = None
    reason_detail: str | None = None
    error: str | None = None
    duplicate_of: str | None = None
    similar_to: list[str] = Field(default_factory=list)
    sha256: str | None = None
    phash: str | None = None
    placeholder: Placeholder | None = None
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    facts: PhotoFacts | None = None
    variants: dict[str, Variant] = Field(default_factory=dict)
    attempts: int = 0
    version: int = 0  # how many final statuses it has had (its events carry it: a consumer keeps the highest)
    callback_url: str | None = None  # where its final-status events are delivered (webhooks.py)
    rendered_with: str | None = None  # the render settings' fingerprint of its variants (`photopipe reprocess`)
    webhook: WebhookState | None = None
    created_at: str
    updated_at: str
    finished_at: str | None = None  # when its run gave it its final status (`photopipe stats`)
