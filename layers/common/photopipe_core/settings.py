"""Configuration read once from the environment into a model (template Parameters → env → Settings)."""

from __future__ import annotations

import hashlib
from functools import cached_property, lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from photopipe_core.rules import Limits, VariantSpec, WebpSettings

CACHE_CONTROL = "public, max-age=31536000, immutable"
# Raised when the rendering itself changes (resampling, colour handling, placeholder): every media is then rendered
# again by `photopipe reprocess`, as for a change of the variant set or the WebP settings.
RENDER_VERSION = 1
MIB = 1024 * 1024


def render_fingerprint(variants: str, webp_quality: int, webp_method: int) -> str:
    """What a media's variants were rendered with, in 16 hex digits: the variant set (in any order, any spacing),
    the WebP settings and ``RENDER_VERSION``. A media whose ``rendered_with`` equals the stack's is up to date."""
    spec = sorted((v.name, v.long_edge) for v in parse_variants(variants))
    text = f"{spec}|q{webp_quality}|m{webp_method}|v{RENDER_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_variants(spec: str) -> list[VariantSpec]:
    """``"thumb:256,medium:1024,large:2048"`` → variant specs (long edge in pixels)."""
    variants = []
    for part in spec.split(","):
        name, _, edge = part.strip().partition(":")
        if not name.isidentifier() or not edge.isdigit() or int(edge) <= 0:
            raise ValueError(f"bad variant '{part}': expected name:long_edge, e.g. thumb:256")
        variants.append(VariantSpec(name, int(edge)))
    if len({v.name for v in variants}) != len(variants):
        raise ValueError(f"variant names repeat in '{spec}'")
    return variants


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True)

    # Each function's template entry sets only the variables its code reads; a factory that needs one of these
    # names asks for it with require() and says which variable is missing.
    media_bucket: str = ""
    media_table: str = ""
    pipeline_arn: str = ""
    failed_queue_url: str = ""
    ingest_queue_url: str = ""
    event_bus_name: str = ""
    webhook_queue_url: str = ""
    # Deliveries of one event to a callback_url (its queue's maxReceiveCount), and the wait after the first failure
    # (doubled after each next one).
    webhook_max_attempts: int = Field(default=8, gt=0, le=1000)
    webhook_retry_seconds: int = Field(default=30, gt=0, le=900)
    # Whether callback URLs may reach private and loopback addresses (the embedded stack's receivers on 127.0.0.1).
    webhook_private_networks: Literal["deny", "allow"] = "deny"
    # The standard variable (set where the AWS APIs are not AWS's own): a callback URL never points at it.
    aws_endpoint_url: str = ""
    # Photos between "execution started" and a terminal status at once; more wait in the ingest queue.
    max_in_flight: int = Field(default=100, gt=0)
    # The pipeline's Step Functions workflow type: an EXPRESS run cannot be described by name and may start twice.
    workflow_type: Literal["STANDARD", "EXPRESS"] = "STANDARD"
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    # Uploads larger than this get a multipart upload (presigned part URLs) instead of one PUT.
    multipart_threshold_bytes: int = Field(default=16 * MIB, ge=5 * MIB, le=5 * 1024 * MIB)
    multipart_part_bytes: int = Field(default=8 * MIB, ge=5 * MIB, le=5 * 1024 * MIB)
    max_pixels: int = Field(default=50_000_000, gt=0)
    max_frames: int = Field(default=100, gt=0)
    variants: str = "thumb:256,medium:1024,large:2048"
    webp_quality: int = Field(default=80, ge=0, le=100)
    webp_method: int = Field(default=4, ge=0, le=6)
    # The S3 endpoint clients reach, for presigned URLs ("" = AWS's own endpoint).
    presign_endpoint_url: str = ""
    # Each owner's limits unless its record sets its own (quotas.py); 0: no limit.
    owner_daily_uploads: int = Field(default=10_000, ge=0)
    owner_daily_bytes: int = Field(default=50 * 1024 * MIB, ge=0)
    owner_open_uploads: int = Field(default=1_000, ge=0)
    upload_url_expires_seconds: int = Field(default=300, gt=0, le=7 * 24 * 3600)
    download_url_expires_seconds: int = Field(default=3600, gt=0, le=7 * 24 * 3600)

    def require(self, name: str) -> str:
        """The value of a resource name this function needs (``"media_table"``), or a clear error naming the
        environment variable its template entry lacks."""
        value = str(getattr(self, name))
        if not value:
            raise RuntimeError(f"{name.upper()} is not set: this function's Environment in template.yaml needs it")
        return value

    @field_validator("variants")
    @classmethod
    def _variants_parse(cls, value: str) -> str:
        parse_variants(value)
        return value

    @cached_property
    def limits(self) -> Limits:
        return Limits(max_bytes=self.max_upload_bytes, max_pixels=self.max_pixels, max_frames=self.max_frames)

    @cached_property
    def variant_specs(self) -> list[VariantSpec]:
        return parse_variants(self.variants)

    @cached_property
    def render_fingerprint(self) -> str:
        return render_fingerprint(self.variants, self.webp_quality, self.webp_method)

    @cached_property
    def webp(self) -> WebpSettings:
        return WebpSettings(quality=self.webp_quality, method=self.webp_method)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
