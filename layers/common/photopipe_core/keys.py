"""S3 key layout and media ids (the names in DESIGN §4.4 that users and tools rely on)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from urllib.parse import unquote_plus

UPLOADS_PREFIX = "uploads/"
DROP_PREFIX = "drop/"
WORK_PREFIX = "work/"
MEDIA_PREFIX = "media/"
INGEST_PREFIXES = (UPLOADS_PREFIX, DROP_PREFIX)

# ULIDs (API uploads) and derived ids (drop folder) are both 26 characters of Crockford base32.
MEDIA_ID_PATTERN = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_UPLOAD_KEY = re.compile(rf"^{UPLOADS_PREFIX}(?P<media_id>[0-9A-HJKMNP-TV-Z]{{26}})/original$")
_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHJKMNPQRSTVWXYZ")


class NotAnIngestKey(ValueError):
    """The object key is outside the prefixes that start the pipeline."""


def key_from_event(spelled: str) -> str:
    """The object key as its owner named it, from the way an S3 "Object Created" event spells it.

    S3 event messages carry object keys URL-encoded. AWS documents it for its notification messages (Amazon S3 User
    Guide, "Event message structure": the key "is URL encoded. For example, 'red flower.jpg' becomes
    'red+flower.jpg'" — form encoding, a space as '+'); its EventBridge page ("EventBridge event message structure")
    names the detail's ``object.key`` without saying more, and S3 builds both from the same event record.
    LocalStack 4.14 builds every S3 event, EventBridge included, from ``urllib.parse.quote(key)``
    (``localstack/services/s3/notifications.py``, ``S3EventNotificationContext.from_request_context``): a space as
    '%20', '+' as '%2B', never a bare '+'. ``unquote_plus`` reads both spellings back to the real key (UTF-8); the
    only key it would misread is one sent unencoded with a '+' or '%' in it, which neither sends.
    """
    return unquote_plus(spelled, encoding="utf-8", errors="strict")


def upload_key(media_id: str) -> str:
    return f"{UPLOADS_PREFIX}{media_id}/original"


def variant_key(media_id: str, variant: str, rendering: str | None = None) -> str:
    """Where a variant is written: ``media/<id>/<variant>.webp`` by the pipeline; a re-render (``rendering``, the
    settings' fingerprint) writes new keys, ``media/<id>/<rendering>/<variant>.webp``: variants are served as
    immutable, so bytes at a key never change."""
    if rendering:
        return f"{MEDIA_PREFIX}{media_id}/{rendering}/{variant}.webp"
    return f"{MEDIA_PREFIX}{media_id}/{variant}.webp"


def media_prefix(media_id: str) -> str:
    return f"{MEDIA_PREFIX}{media_id}/"


def work_prefix(media_id: str) -> str:
    return f"{WORK_PREFIX}{media_id}/"


def new_media_id(now_ms: int | None = None) -> str:
    """A new ULID: 48 bits of milliseconds then 80 random bits, as 26 Crockford base32 characters (sortable)."""
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "".join(alphabet[(value >> shift) & 31] for shift in range(125, -1, -5))


def derived_media_id(bucket: str, key: str, etag: str) -> str:
    """A stable id for a drop-folder object: the same (bucket, key, ETag) always maps to the same media."""
    digest = hashlib.sha256(f"{bucket}\0{key}\0{etag.strip(chr(34))}".encode()).digest()
    return base64.b32encode(digest[:20]).decode().translate(_CROCKFORD)[:26]


def media_id_for_object(bucket: str, key: str, etag: str) -> str:
    """The media id an S3 object belongs to: the id in an API upload key, or one derived for the drop folder."""
    if match := _UPLOAD_KEY.match(key):
        return match["media_id"]
    if key.startswith(DROP_PREFIX) and key != DROP_PREFIX:
        return derived_media_id(bucket, key, etag)
    raise NotAnIngestKey(f"'{key}' is not under {' or '.join(INGEST_PREFIXES)}")
