"""The object store (the media bucket) and the failure queue, behind small classes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from botocore.exceptions import ClientError

from photopipe_core import aws
from photopipe_core.settings import get_settings


@dataclass(frozen=True)
class ObjectHead:
    size: int
    content_type: str
    etag: str
    sha256: str | None = None  # hex; only when S3 checked it against the whole object as it was written


def full_object_sha256(head: dict[str, Any]) -> str | None:
    """The object's SHA-256 when S3 holds one for the whole object (a single PUT that sent it, which S3 verified);
    None for other checksums and for multipart uploads, whose SHA-256 is one of the parts' checksums."""
    value = head.get("ChecksumSHA256")
    if not value or "-" in value or head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        return None
    return base64.b64decode(value).hex()


@dataclass(frozen=True)
class UploadedPart:
    number: int
    size: int
    etag: str


@dataclass(frozen=True)
class StoredObject:
    key: str
    etag: str
    size: int
    last_modified: datetime


class OriginalChanged(Exception):
    """The original is no longer the version that was validated: its new version is a new photo, not a swap."""


class NoSuchUpload(LookupError):
    """The multipart upload was completed, aborted or expired."""


class ObjectStore:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    def head(self, key: str) -> ObjectHead:
        response = self._client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        return ObjectHead(
            response["ContentLength"],
            response.get("ContentType", ""),
            response.get("ETag", ""),
            full_object_sha256(response),
        )

    def get(self, key: str, if_match: str | None = None) -> bytes:
        """The object's bytes; with ``if_match``, only if it is still that version (OriginalChanged otherwise)."""
        extra = {"IfMatch": if_match} if if_match else {}
        try:
            return bytes(self._client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"].read())
        except ClientError as error:
            if if_match and error.response["Error"]["Code"] in {"PreconditionFailed", "412"}:
                raise OriginalChanged(f"{key} was replaced after it was validated (ETag {if_match})") from error
            raise

    def get_start(self, key: str, length: int, etag: str) -> bytes:
        """The first ``length`` bytes of the object, if it is still the version with this ETag."""
        response = self._client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}", IfMatch=etag)
        return bytes(response["Body"].read())

    def put(self, key: str, body: bytes, content_type: str, cache_control: str | None = None) -> None:
        extra = {"CacheControl": cache_control} if cache_control else {}
        self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **extra)

    def objects(self, prefix: str) -> Iterator[StoredObject]:
        """Every object under ``prefix`` with its ETag, size and time (page by page)."""
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield StoredObject(obj["Key"], obj["ETag"].strip('"'), obj["Size"], obj["LastModified"])

    def keys(self, prefix: str) -> list[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def delete_prefix(self, prefix: str) -> int:
        keys = self.keys(prefix)
        self.delete(keys)
        return len(keys)

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def is_reachable(self) -> bool:
        self._client.head_bucket(Bucket=self.bucket)
        return True

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    # --- multipart uploads (parts are sent by clients to presigned URLs) ----------------------------------------
    def start_multipart(self, key: str, content_type: str) -> str:
        """A new multipart upload; its Content-Type is fixed here, by the server, not by whoever sends the parts."""
        response = self._client.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=content_type)
        return str(response["UploadId"])

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Give up a multipart upload nobody will use (its parts, if any, are freed)."""
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as error:
            if error.response["Error"]["Code"] not in {"NoSuchUpload", "404"}:
                raise

    def uploaded_parts(self, key: str, upload_id: str) -> dict[int, UploadedPart]:
        """The parts S3 holds for this upload, by number; NoSuchUpload when it is gone."""
        parts: dict[int, UploadedPart] = {}
        try:
            pages = self._client.get_paginator("list_parts").paginate(Bucket=self.bucket, Key=key, UploadId=upload_id)
            for page in pages:
                for part in page.get("Parts", []):
                    parts[part["PartNumber"]] = UploadedPart(part["PartNumber"], part["Size"], part["ETag"])
        except ClientError as error:
            if error.response["Error"]["Code"] in {"NoSuchUpload", "404"}:
                raise NoSuchUpload(upload_id) from error
            raise
        return parts

    def complete_multipart(self, key: str, upload_id: str, parts: list[UploadedPart]) -> None:
        try:
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] in {"NoSuchUpload", "404"}:
                raise NoSuchUpload(upload_id) from error
            raise


class Presigner:
    """Presigned URLs for clients, minted against the endpoint clients reach (a setting, not the Lambda's own)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    def put_url(
        self, key: str, content_type: str, size: int, checksum_sha256: str | None, expires: int
    ) -> tuple[str, dict[str, str]]:
        """A PUT URL whose signature binds key, Content-Type, Content-Length (and the sha256 when given);
        returns it with exactly the headers the client must send."""
        # If-None-Match: * (signed): the URL can write the original once; a replay cannot replace bytes that arrived.
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "ContentType": content_type,
            "ContentLength": size,
            "IfNoneMatch": "*",
        }
        headers = {"Content-Type": content_type, "Content-Length": str(size), "If-None-Match": "*"}
        if checksum_sha256:
            params["ChecksumSHA256"] = checksum_sha256
            headers["x-amz-checksum-sha256"] = checksum_sha256
        url = self._client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires)
        return url, headers

    def part_url(self, key: str, upload_id: str, number: int, size: int, expires: int) -> tuple[str, dict[str, str]]:
        """A PUT URL for one part of a multipart upload, bound to its number and length."""
        params = {"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": number, "ContentLength": size}
        url = self._client.generate_presigned_url("upload_part", Params=params, ExpiresIn=expires)
        return url, {"Content-Length": str(size)}

    def get_url(self, key: str, expires: int) -> str:
        return str(
            self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires
            )
        )


# How many times an ingest event has already waited for an in-flight slot (a message attribute).
WAITS_ATTRIBUTE = "photopipe-waits"


class MessageQueue:
    def __init__(self, client: Any, url: str) -> None:
        self._client = client
        self.url = url

    def send(self, message: dict[str, Any]) -> None:
        self._client.send_message(QueueUrl=self.url, MessageBody=json.dumps(message, default=str))

    def send_later(self, body: str, delay_seconds: int, waits: int) -> None:
        """Put a message back as a new one, visible after ``delay_seconds`` (at most SQS's 900), counting its waits."""
        self._client.send_message(
            QueueUrl=self.url,
            MessageBody=body,
            DelaySeconds=max(0, min(delay_seconds, 900)),
            MessageAttributes={WAITS_ATTRIBUTE: {"DataType": "Number", "StringValue": str(waits)}},
        )

    def waiting(self) -> int:
        """Messages in the queue: visible, delayed and being handled (SQS's approximate counts)."""
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesDelayed",
            "ApproximateNumberOfMessagesNotVisible",
        ]
        attributes = self._client.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)["Attributes"]
        return sum(int(attributes.get(name, 0)) for name in names)

    def hide(self, receipt_handle: str, seconds: int) -> None:
        """Keep a received message out of sight for ``seconds`` (at most 12 hours): when it is tried next."""
        self._client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(seconds, 43_200))
        )


@lru_cache(maxsize=1)
def object_store() -> ObjectStore:
    return ObjectStore(aws.client("s3"), get_settings().require("media_bucket"))


@lru_cache(maxsize=1)
def presigner() -> Presigner:
    settings = get_settings()
    client = aws.presigning_client(settings.presign_endpoint_url or None)
    return Presigner(client, settings.require("media_bucket"))


@lru_cache(maxsize=1)
def failed_queue() -> MessageQueue:
    return MessageQueue(aws.client("sqs"), get_settings().require("failed_queue_url"))


@lru_cache(maxsize=1)
def ingest_queue() -> MessageQueue:
    return MessageQueue(aws.client("sqs"), get_settings().require("ingest_queue_url"))


@lru_cache(maxsize=1)
def webhook_queue() -> MessageQueue:
    return MessageQueue(aws.client("sqs"), get_settings().require("webhook_queue_url"))
