"""boto3 clients, built once per container. Endpoints come from the standard AWS_ENDPOINT_URL variable."""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

import boto3
from botocore.config import Config

# Downloads are not re-hashed against the object's stored checksum: S3 verified the uploader's sha256 when the
# object was written, Validate hashes the bytes itself, and the extra SHA-256 pass over every original (botocore's
# default since 1.36) cost Validate and Resize ~9 ms of CPU each per 12 MP photo.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=30,
    response_checksum_validation="when_required",
)


@cache
def client(service: str) -> Any:
    return boto3.client(service, config=_CONFIG)  # type: ignore[call-overload]


@cache
def resource(service: str) -> Any:
    return boto3.resource(service, config=_CONFIG)  # type: ignore[call-overload]


@lru_cache(maxsize=4)
def presigning_client(endpoint_url: str | None) -> Any:
    """An S3 client for presigning: SigV4, and path-style addressing when the endpoint is not AWS's own."""
    config = Config(signature_version="s3v4", s3={"addressing_style": "path" if endpoint_url else "auto"})
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)
