"""The image rules as plain values (limits, variant sizes, WebP settings, accepted types) and hash arithmetic.

Kept apart from ``imaging`` so that configuration, the repository and the API do not import Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "AVIF": "image/avif",
    "HEIF": "image/heic",  # HEIC/HEIF stills (every iPhone's default since 2017), through pillow-heif
}
# Declared types that say nothing about the content (what `aws s3 cp` or a browser sends for unknown files).
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
TYPE_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/apng": "image/png",  # an animated PNG is a PNG (its first frame is the photo)
    "image/tif": "image/tiff",
    "image/heif": "image/heic",
    "image/heic-sequence": "image/heic",
    "image/heif-sequence": "image/heic",
}


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_frames: int = 100


@dataclass(frozen=True)
class VariantSpec:
    name: str
    long_edge: int


@dataclass(frozen=True)
class WebpSettings:
    quality: int = 80
    method: int = 4


def normalise_declared(declared: str | None) -> str:
    value = (declared or "").split(";")[0].strip().lower()
    return TYPE_ALIASES.get(value, value)


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()
