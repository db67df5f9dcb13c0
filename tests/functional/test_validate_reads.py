"""What Validate downloads: only the beginning of a JPEG whose whole-object SHA-256 S3 holds; the whole file when
the beginning cannot settle it (no such checksum, a longer header, a format with frames to count)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import os
from typing import Any

import boto3
import pytest
from PIL import Image

from photopipe import samples
from photopipe_core import errors, steps
from photopipe_core.inflight import in_flight_slots
from photopipe_core.models import PipelineInput, StepInput
from photopipe_core.repository import media_repository
from photopipe_core.settings import get_settings
from photopipe_core.storage import ObjectHead, ObjectStore, full_object_sha256, object_store
from tests.functional.pipeline import EXECUTION


class CountingStore(ObjectStore):
    """The real store (moto's S3), counting the bytes each kind of read brought.

    moto keeps no object checksums, so ``head`` adds the SHA-256 that S3 reports for an object written with one
    (the adapter's own reading of S3's answer is checked against LocalStack in the integration tests)."""

    def __init__(self, store: ObjectStore, verified_sha256: bool) -> None:
        super().__init__(store._client, store.bucket)
        self.verified_sha256 = verified_sha256
        self.whole: list[int] = []
        self.starts: list[int] = []

    def head(self, key: str) -> ObjectHead:
        head = super().head(key)
        if not self.verified_sha256:
            return head
        return dataclasses.replace(head, sha256=hashlib.sha256(super().get(key)).hexdigest())

    def get(self, key: str, if_match: str | None = None) -> bytes:
        data = super().get(key, if_match)
        self.whole.append(len(data))
        return data

    def get_start(self, key: str, length: int, etag: str) -> bytes:
        data = super().get_start(key, length, etag)
        self.starts.append(len(data))
        return data


def put(key: str, body: bytes, content_type: str) -> PipelineInput:
    etag = boto3.client("s3").put_object(Bucket="media", Key=key, Body=body, ContentType=content_type)["ETag"]
    return PipelineInput(media_id="M1", bucket="media", key=key, etag=etag.strip('"'), size=len(body))


def validate(media: PipelineInput, store: ObjectStore) -> StepInput:
    return steps.validate(
        StepInput(media=media, execution_arn=EXECUTION), store, media_repository(), get_settings(), in_flight_slots()
    )


def big_jpeg(**save: Any) -> bytes:
    """A 2400×1600 photo-like JPEG, well over the bytes Validate reads from the start."""
    body = samples.jpeg_bytes(samples.photo(2400, 1600, seed=7), **save)
    assert len(body) > steps.HEADER_BYTES
    return body


def test_a_jpeg_with_a_verified_sha256_is_validated_from_its_first_bytes(stack: dict[str, Any]) -> None:
    body = big_jpeg()
    store = CountingStore(object_store(), verified_sha256=True)
    result = validate(put("drop/m1.jpg", body, "image/jpeg"), store)
    assert store.whole == [] and store.starts == [steps.HEADER_BYTES]
    assert result.source is not None
    assert result.source.sha256 == hashlib.sha256(body).hexdigest()
    assert (result.source.width, result.source.height, result.source.bytes) == (2400, 1600, len(body))
    assert (result.source.format, result.source.frames) == ("JPEG", 1)


def test_without_a_verified_sha256_the_whole_file_is_read_and_hashed(stack: dict[str, Any]) -> None:
    body = big_jpeg()
    store = CountingStore(object_store(), verified_sha256=False)
    result = validate(put("drop/m1.jpg", body, "image/jpeg"), store)
    assert store.whole == [len(body)] and store.starts == []
    assert result.source is not None and result.source.sha256 == hashlib.sha256(body).hexdigest()


def test_a_header_longer_than_the_first_bytes_is_read_whole(stack: dict[str, Any]) -> None:
    """A 300 KB ICC profile before the frame header: the beginning is cut short, the whole file decides."""
    body = big_jpeg(icc_profile=os.urandom(300_000))
    store = CountingStore(object_store(), verified_sha256=True)
    result = validate(put("drop/m1.jpg", body, "image/jpeg"), store)
    assert store.starts == [steps.HEADER_BYTES] and store.whole == [len(body)]
    assert result.source is not None and (result.source.width, result.source.height) == (2400, 1600)


def test_frames_are_counted_over_the_whole_file(stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [Image.frombytes("L", (320, 320), os.urandom(320 * 320)).convert("P") for _ in range(12)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=40)
    body = buffer.getvalue()
    assert len(body) > steps.HEADER_BYTES
    store = CountingStore(object_store(), verified_sha256=True)
    media = put("drop/m1.gif", body, "image/gif")
    assert validate(media, store).source.frames == 12  # type: ignore[union-attr]
    assert store.whole == [len(body)]

    monkeypatch.setenv("MAX_FRAMES", "10")
    get_settings.cache_clear()
    with pytest.raises(errors.TooManyFrames):
        validate(media, CountingStore(object_store(), verified_sha256=True))


def test_a_sha256_is_taken_from_s3_only_for_the_whole_object() -> None:
    digest = hashlib.sha256(b"photo").digest()
    whole = base64.b64encode(digest).decode()
    assert full_object_sha256({"ChecksumSHA256": whole, "ChecksumType": "FULL_OBJECT"}) == digest.hex()
    assert full_object_sha256({"ChecksumSHA256": whole}) == digest.hex()  # S3 before it named checksum types
    assert full_object_sha256({"ChecksumSHA256": f"{whole}-3", "ChecksumType": "COMPOSITE"}) is None  # multipart
    assert full_object_sha256({"ChecksumSHA256": whole, "ChecksumType": "COMPOSITE"}) is None
    assert full_object_sha256({"ChecksumCRC32": "SLlKfA==", "ChecksumType": "FULL_OBJECT"}) is None
