"""`photopipe backup DEST` / `photopipe restore SRC`: the whole library through public AWS APIs only.

A backup is a folder (or an ``s3://bucket/prefix``) holding:

- ``objects/<sha256>``: every object of the media bucket (originals, variants), named by the sha256 of its bytes
  (equal bytes are kept once), streamed in chunks (never a whole file in memory);
- ``table.jsonl``: every item of the media table (media, history, claims, idempotency keys, owners), one DynamoDB
  JSON item per line, as a scan returns it;
- ``manifest.json``, written last: the source stack, and for every object its key, size, type, metadata and sha256;
  for the table its sha256 and item count. A folder without it is a backup in progress: ``backup`` run again goes on
  where it stopped (``.progress.jsonl`` lists the objects already kept).

``restore`` checks every checksum before it writes anything and refuses a damaged backup, naming what is wrong. It
restores into an empty stack or into the stack the backup came from: the table first (so the events of the
originals it puts back find their media finished and start nothing), then the objects. Into another stack, the
bucket name is replaced in the items and API keys are not carried over (they belong to the old stack's API): owners
keep their media, an owner the stack already has keeps its key, the others get one with ``photopipe keys create``.
The in-flight slots item is not restored (it counts runs of the old stack). Works the same against the embedded
stack and AWS, and so moves a library from one to the other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from photopipe.stack import Stack
from photopipe_core.owners import OWNERS_PK

FORMAT = 1
MANIFEST = "manifest.json"
PROGRESS = ".progress.jsonl"
TABLE = "table.jsonl"
CHUNK = 1024 * 1024
SINGLE_PUT_BYTES = 5 * 1024**3  # S3's largest single PUT
SKIPPED_ITEMS = ({"pk": {"S": "INFLIGHT"}, "sk": {"S": "SLOTS"}},)
MEDIA_PREFIXES = ("uploads/", "drop/", "media/")
API_KEY_PREFIX = "APIKEY#"


class BackupError(RuntimeError):
    """The backup cannot be made or restored; the message says what and where."""


# --- where a backup lives: a folder or an S3 prefix -----------------------------------------------------------
class Place(Protocol):
    def exists(self, name: str) -> bool: ...
    def put_file(self, name: str, local: Path) -> None: ...
    def put_text(self, name: str, text: str) -> None: ...
    def append_line(self, name: str, line: str) -> None: ...
    def read_text(self, name: str) -> str | None: ...
    def chunks(self, name: str) -> Iterator[bytes]: ...
    def delete(self, name: str) -> None: ...


class FolderPlace:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        return self.root / name

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def put_file(self, name: str, local: Path) -> None:
        target = self._path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        local.replace(target)

    def put_text(self, name: str, text: str) -> None:
        target = self._path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_text(text)
        temporary.replace(target)

    def append_line(self, name: str, line: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._path(name).open("a") as file:
            file.write(line + "\n")

    def read_text(self, name: str) -> str | None:
        try:
            return self._path(name).read_text()
        except FileNotFoundError:
            return None

    def chunks(self, name: str) -> Iterator[bytes]:
        try:
            with self._path(name).open("rb") as file:
                while chunk := file.read(CHUNK):
                    yield chunk
        except FileNotFoundError as error:
            raise BackupError(f"{self._path(name)} is missing") from error

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def __str__(self) -> str:
        return str(self.root)


class S3Place:
    """A backup under ``s3://bucket/prefix`` (appends rewrite the small progress object)."""

    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self.s3, self.bucket, self.prefix = s3, bucket, prefix.strip("/")

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def exists(self, name: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(name))
        except self.s3.exceptions.ClientError:
            return False
        return True

    def put_file(self, name: str, local: Path) -> None:
        self.s3.upload_file(str(local), self.bucket, self._key(name))
        local.unlink(missing_ok=True)

    def put_text(self, name: str, text: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self._key(name), Body=text.encode())

    def append_line(self, name: str, line: str) -> None:
        self.put_text(name, (self.read_text(name) or "") + line + "\n")

    def read_text(self, name: str) -> str | None:
        try:
            return str(self.s3.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read().decode())
        except self.s3.exceptions.NoSuchKey:
            return None

    def chunks(self, name: str) -> Iterator[bytes]:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
        except self.s3.exceptions.NoSuchKey as error:
            raise BackupError(f"s3://{self.bucket}/{self._key(name)} is missing") from error
        yield from body.iter_chunks(CHUNK)

    def delete(self, name: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self._key(name))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def place_for(location: str, s3: Callable[[], Any]) -> Place:
    """A folder path, or ``s3://bucket/prefix`` (the bucket reached with the stack's credentials and endpoint)."""
    if location.startswith("s3://"):
        parts = urlsplit(location)
        if not parts.netloc:
            raise BackupError(f"{location} names no bucket")
        return S3Place(s3(), parts.netloc, parts.path)
    return FolderPlace(Path(location))


# --- backup ----------------------------------------------------------------------------------------------------
@dataclass
class Summary:
    objects: int = 0
    bytes: int = 0
    items: int = 0
    skipped: int = 0  # objects a previous run had already kept (backup) or the stack already held (restore)
    location: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "bytes": self.bytes,
            "items": self.items,
            "skipped": self.skipped,
            "location": self.location,
        }


@dataclass
class Tracker:
    """What a long run reports: called with (objects done, bytes done) as it goes."""

    total_objects: int = 0
    total_bytes: int = 0
    advance: Callable[[int, int], None] = field(default=lambda _objects, _bytes: None)


def _stream_to_temporary(chunks: Iterator[bytes], sent: Callable[[int], None]) -> tuple[Path, str, int]:
    """Write the chunks to a temporary file; returns it with the sha256 and size of what was written."""
    digest, size = hashlib.sha256(), 0
    descriptor, name = tempfile.mkstemp(prefix="photopipe-backup-")
    with os.fdopen(descriptor, "wb") as file:
        for chunk in chunks:
            file.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            sent(len(chunk))
    return Path(name), digest.hexdigest(), size


def _listing(s3: Any, bucket: str) -> list[dict[str, Any]]:
    return [
        obj for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for obj in page.get("Contents", [])
    ]


def _done_before(place: Place) -> dict[str, dict[str, Any]]:
    text = place.read_text(PROGRESS) or ""
    return {entry["key"]: entry for entry in map(json.loads, filter(None, text.splitlines()))}


Starter = Callable[[str, int, int], Tracker]  # (what is done, objects, bytes) → where its progress goes


def backup(stack: Stack, place: Place, on_start: Starter | None = None) -> Summary:
    """Copy the stack's bucket and table into ``place``; goes on where an interrupted backup stopped."""
    if place.exists(MANIFEST):
        raise BackupError(f"{place} already holds a finished backup; give an empty or new location")
    outputs = stack.outputs
    s3 = stack.client("s3")
    listing = _listing(s3, outputs.MediaBucketName)
    progress = on_start("backing up", len(listing), sum(obj["Size"] for obj in listing)) if on_start else Tracker()
    done = _done_before(place)
    summary = Summary(location=str(place))
    objects = []
    for obj in listing:
        key, etag = obj["Key"], obj["ETag"]
        kept = done.get(key)
        if kept and kept["etag"] == etag and kept["size"] == obj["Size"] and place.exists(f"objects/{kept['sha256']}"):
            entry, summary.skipped = kept, summary.skipped + 1
            progress.advance(1, obj["Size"])
        else:
            response = s3.get_object(Bucket=outputs.MediaBucketName, Key=key)
            local, sha256, size = _stream_to_temporary(
                response["Body"].iter_chunks(CHUNK), lambda sent: progress.advance(0, sent)
            )
            place.put_file(f"objects/{sha256}", local)
            entry = {
                "key": key,
                "etag": etag,
                "size": size,
                "sha256": sha256,
                "content_type": response.get("ContentType"),
                "metadata": response.get("Metadata", {}),
            }
            place.append_line(PROGRESS, json.dumps(entry))
            progress.advance(1, 0)
        objects.append(entry)
        summary.objects += 1
        summary.bytes += entry["size"]
    table_sha256, summary.items = _backup_table(stack, place)
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": {"bucket": outputs.MediaBucketName, "table": outputs.MediaTableName, "api": outputs.ApiUrl},
        "table": {"file": TABLE, "sha256": table_sha256, "items": summary.items},
        "objects": objects,
    }
    place.put_text(MANIFEST, json.dumps(manifest, indent=1))
    place.delete(PROGRESS)
    return summary


def _backup_table(stack: Stack, place: Place) -> tuple[str, int]:
    dynamodb = stack.client("dynamodb")
    pages = dynamodb.get_paginator("scan").paginate(TableName=stack.outputs.MediaTableName, ConsistentRead=True)
    count = 0

    def lines() -> Iterator[bytes]:
        nonlocal count
        for page in pages:
            for item in page.get("Items", []):
                count += 1
                yield (json.dumps(item, sort_keys=True) + "\n").encode()

    local, sha256, _size = _stream_to_temporary(lines(), lambda _sent: None)
    place.put_file(TABLE, local)
    return sha256, count


# --- restore ---------------------------------------------------------------------------------------------------
def read_manifest(place: Place) -> dict[str, Any]:
    text = place.read_text(MANIFEST)
    if text is None:
        raise BackupError(f"{place} holds no finished backup (no {MANIFEST}; an interrupted backup can be run again)")
    try:
        manifest = json.loads(text)
    except ValueError as error:
        raise BackupError(f"{place}/{MANIFEST} is damaged: {error}") from error
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{place} is a backup of format {manifest.get('format')}; this version reads {FORMAT}")
    return dict(manifest)


def verify(place: Place, manifest: dict[str, Any], progress: Tracker | None = None) -> None:
    """Every object's and the table's sha256 as the manifest has them, or a BackupError naming the first that
    differs."""
    progress = progress or Tracker()
    checked: set[str] = set()
    for entry in manifest["objects"]:
        if entry["sha256"] not in checked:
            _check(place, f"objects/{entry['sha256']}", entry["sha256"], f"the object {entry['key']!r}")
            checked.add(entry["sha256"])
        progress.advance(1, entry["size"])
    _check(place, TABLE, manifest["table"]["sha256"], "the table")


def _check(place: Place, name: str, sha256: str, what: str) -> None:
    digest = hashlib.sha256()
    for chunk in place.chunks(name):
        digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise BackupError(f"{place}/{name} ({what}) is damaged: its sha256 is not the one in the manifest")


def restore(stack: Stack, place: Place, on_start: Starter | None = None) -> Summary:
    """Check the backup whole, then put it into the stack (empty, or the one it came from)."""
    manifest = read_manifest(place)
    total = (len(manifest["objects"]), sum(entry["size"] for entry in manifest["objects"]))
    verify(place, manifest, on_start("checking", *total) if on_start else None)
    outputs = stack.outputs
    s3 = stack.client("s3")
    same_stack = manifest["source"]["bucket"] == outputs.MediaBucketName
    if not same_stack and not _is_empty(stack):
        raise BackupError(
            f"the stack's bucket {outputs.MediaBucketName} or table already holds media: restore into an empty "
            f"stack, or into the one the backup came from ({manifest['source']['bucket']})"
        )
    summary = Summary(location=str(place))
    summary.items = _restore_table(stack, place, manifest["source"]["bucket"])
    progress = on_start("restoring", *total) if on_start else Tracker()
    for entry in manifest["objects"]:
        try:
            head = s3.head_object(Bucket=outputs.MediaBucketName, Key=entry["key"])
        except s3.exceptions.ClientError:
            head = None
        if head is not None and head["ContentLength"] == entry["size"] and head["ETag"] == entry["etag"]:
            summary.skipped += 1
        else:
            _put_object(s3, outputs.MediaBucketName, place, entry)
        summary.objects += 1
        summary.bytes += entry["size"]
        progress.advance(1, entry["size"])
    return summary


def _put_object(s3: Any, bucket: str, place: Place, entry: dict[str, Any]) -> None:
    local, _sha256, _size = _stream_to_temporary(place.chunks(f"objects/{entry['sha256']}"), lambda _sent: None)
    try:
        extra: dict[str, Any] = {"Metadata": entry.get("metadata") or {}}
        if entry.get("content_type"):
            extra["ContentType"] = entry["content_type"]
        if entry["size"] <= SINGLE_PUT_BYTES:
            # one PUT keeps a one-part object's ETag: a drop-folder original is then known for the one restored
            with local.open("rb") as body:
                s3.put_object(Bucket=bucket, Key=entry["key"], Body=body, **extra)
        else:
            s3.upload_file(str(local), bucket, entry["key"], ExtraArgs=extra)
    finally:
        local.unlink(missing_ok=True)


def _is_empty(stack: Stack) -> bool:
    s3 = stack.client("s3")
    for prefix in MEDIA_PREFIXES:
        if s3.list_objects_v2(Bucket=stack.outputs.MediaBucketName, Prefix=prefix, MaxKeys=1).get("KeyCount", 0):
            return False
    scan = (
        stack.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=stack.outputs.MediaTableName,
            FilterExpression="begins_with(pk, :media)",
            ExpressionAttributeValues={":media": {"S": "MEDIA#"}},
            ProjectionExpression="pk",
        )
    )
    return not any(page.get("Items") for page in scan)


def _restore_table(stack: Stack, place: Place, source_bucket: str) -> int:
    dynamodb = stack.client("dynamodb")
    table, target_bucket = stack.outputs.MediaTableName, stack.outputs.MediaBucketName
    count, batch = 0, []
    for line in _lines(place.chunks(TABLE)):
        item = json.loads(line)
        if any(all(item.get(k) == v for k, v in skipped.items()) for skipped in SKIPPED_ITEMS):
            continue
        if source_bucket != target_bucket:
            if item["pk"]["S"].startswith(API_KEY_PREFIX):
                continue  # a key of the old stack's API: owners are given new ones (`photopipe keys create`)
            item = _renamed(item, source_bucket, target_bucket)
            if item["pk"]["S"] == OWNERS_PK:
                # an owner the stack has already (with its own key) stays as it is; the others come without a key
                item = {k: v for k, v in item.items() if k not in ("key_id", "key_created_at")}
                with contextlib.suppress(dynamodb.exceptions.ConditionalCheckFailedException):
                    dynamodb.put_item(
                        TableName=stack.outputs.MediaTableName,
                        Item=item,
                        ConditionExpression="attribute_not_exists(pk)",
                    )
                count += 1
                continue
        batch.append({"PutRequest": {"Item": item}})
        count += 1
        if len(batch) == 25:
            _write(dynamodb, table, batch)
            batch = []
    if batch:
        _write(dynamodb, table, batch)
    return count


def _write(dynamodb: Any, table: str, batch: list[dict[str, Any]]) -> None:
    pending = {table: batch}
    for _attempt in range(10):
        unprocessed = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        if not unprocessed:
            return
        pending = unprocessed
    raise BackupError(f"DynamoDB kept refusing {len(pending[table])} item(s) of the table")


def _renamed(value: Any, old: str, new: str) -> Any:
    """The item with every string attribute equal to the old bucket name set to the new one."""
    if isinstance(value, dict):
        if set(value) == {"S"} and value["S"] == old:
            return {"S": new}
        return {k: _renamed(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, old, new) for v in value]
    return value


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    rest = b""
    for chunk in chunks:
        rest += chunk
        *complete, rest = rest.split(b"\n")
        for line in complete:
            if line.strip():
                yield line.decode()
    if rest.strip():
        yield rest.decode()
