"""The media repository: DynamoDB behind a small class (nothing above it touches boto3).

Item types (one table, ``pk``/``sk``):
- ``MEDIA#<media_id>`` / ``META``: the media item (status, source, variants …).
- ``MEDIA#<media_id>`` / ``HISTORY#<timestamp>#<status>``: one entry per status change, appended, never rewritten.
- ``SHA256#<owner>#<hex>`` / ``CLAIM``: the owner's first media with these exact bytes (later ones are its duplicates).
- ``PHASH#<owner>#<band>#<bits>`` / ``<media_id>``: perceptual-hash bands, to find the owner's near-duplicates.
- ``IDEMPOTENCY#<owner>#<key>`` / ``UPLOAD``: an owner's Idempotency-Key, the hash of its request body and its media.
- ``OWNERS`` / ``<name>`` and ``APIKEY#<key id>`` / ``OWNER``: owners and their API keys (``owners.py``).

Media items also carry ``gsi1pk = STATUS#<status>`` / ``gsi1sk = <owner>#<created_at>`` (index ``by-status``: all
media of a status, or one owner's newest first) and ``gsi2pk = KEY#<s3 key>`` (index ``by-key``), so media can be
listed by status and found by their object.

Every status change is a conditional write: a run may only finish a media it is processing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from functools import lru_cache
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from photopipe_core import aws
from photopipe_core.albums import AlbumPhoto
from photopipe_core.models import (
    MediaItem,
    PhotoFacts,
    PipelineInput,
    Placeholder,
    SourceFacts,
    SourceObject,
    Status,
    Variant,
    WebhookState,
    run_name,
    utc_now,
)
from photopipe_core.owners import Owners
from photopipe_core.rules import hamming
from photopipe_core.settings import get_settings

META = "META"
CLAIM = "CLAIM"
UPLOAD = "UPLOAD"
BY_STATUS = "by-status"
BY_KEY = "by-key"
# Near-duplicate search: hashes within SIMILAR_MAX_DISTANCE bits are similar; the hash is indexed in one band more
# than that, so every such pair shares a band (see phash_bands).
SIMILAR_MAX_DISTANCE = 6
PHASH_BANDS = SIMILAR_MAX_DISTANCE + 1
# A crowd of look-alikes (a burst, a thousand screenshots) must not make each new photo read, or record, all of it:
# each band is read for its most recent SIMILAR_READ_PER_BAND entries, and the SIMILAR_LIMIT closest are recorded.
SIMILAR_READ_PER_BAND = 100
SIMILAR_LIMIT = 20
BATCH_GET = 100  # DynamoDB BatchGetItem takes at most 100 keys
# A run may take over a media that waits for its first run; any other run needs to be the one bound to it (a FAILED
# media is run again only by the retry begin_retry binds to it: an EXPRESS run that starts twice must not redo it).
REDRIVABLE_FROM = (Status.PENDING_UPLOAD,)


def media_pk(media_id: str) -> str:
    return f"MEDIA#{media_id}"


def status_sort_key(owner: str, created_at: str) -> str:
    """``gsi1sk``: a status's media grouped by owner, each owner's by creation time."""
    return f"{owner}#{created_at}"


class AlreadyExists(Exception):
    """A media with this id exists already (another request with the same Idempotency-Key created it first)."""


class InvalidTransition(Exception):
    """The media is not in a status this change may leave (e.g. another run already finished it); ``current`` is the
    media as the refused write found it, when the write said."""

    def __init__(self, message: str, current: MediaItem | None = None) -> None:
        super().__init__(message)
        self.current = current


def _conditional_failed(error: ClientError) -> bool:
    return error.response["Error"]["Code"] in {"ConditionalCheckFailedException", "TransactionCanceledException"}


class MediaRepository:
    def __init__(self, table: Any) -> None:
        self._table = table
        self.owners = Owners(table)

    # --- reads ---------------------------------------------------------------------------------------------------
    def get(self, media_id: str) -> MediaItem | None:
        item = self._table.get_item(Key={"pk": media_pk(media_id), "sk": META}, ConsistentRead=True).get("Item")
        return to_media_item(item) if item else None

    def history(self, media_id: str) -> list[dict[str, Any]]:
        response = self._table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :history)",
            ExpressionAttributeValues={":pk": media_pk(media_id), ":history": "HISTORY#"},
            ConsistentRead=True,
        )
        return [plain({k: v for k, v in item.items() if k not in {"pk", "sk"}}) for item in response["Items"]]

    def is_reachable(self) -> bool:
        self._table.load()
        return bool(self._table.table_status)

    # --- transitions ---------------------------------------------------------------------------------------------
    def mark_processing(self, media: PipelineInput, execution_arn: str) -> tuple[SourceObject, str]:
        """This execution processes the media (first run, repeat of the same run, or a redrive of a failed one);
        returns the source object with what the uploader declared about it, and the media's owner (an API
        upload's is recorded; a drop-folder object's follows the drop-folder rule, ``Owners.owner_of_drop_key``).

        Safe to repeat: the history gets one PROCESSING entry per execution. A media being processed no longer
        expires (the TTL only clears abandoned PENDING_UPLOAD items). A redrive's run is known by its name
        (``begin_retry``): an EXPRESS run's ARN is only known once it has started.
        """
        now = utc_now()
        current = self.get(media.media_id)
        recorded = current.source.model_dump(exclude_none=True) if current else {}
        source = {**recorded, "bucket": media.bucket, "key": media.key, "etag": media.etag, "size": media.size}
        owner = current.owner if current else self.owners.owner_of_drop_key(media.key)
        created_at = current.created_at if current else now
        values: dict[str, Any] = {"media_id": media.media_id, "source": source}
        sets = ", ".join(f"#{k} = :{k}" for k in values)
        try:
            response = self._table.update_item(
                Key={"pk": media_pk(media.media_id), "sk": META},
                UpdateExpression=(
                    f"SET {sets}, #status = :status, execution_arn = :execution, "
                    "created_at = if_not_exists(created_at, :now), updated_at = :now, #owner = if_not_exists(#owner, "
                    ":owner), gsi1pk = :gsi1pk, gsi1sk = if_not_exists(gsi1sk, :gsi1sk), gsi2pk = :gsi2pk "
                    "REMOVE reason, reason_detail, #error, expires_at, #run"
                ),
                # a retry's name binds one run only: the first of that name to get here (then its ARN binds it)
                ConditionExpression=(
                    "attribute_not_exists(pk) OR #status IN (:s0) OR execution_arn = :execution "
                    "OR (#status = :status AND #run = :run)"
                ),
                ExpressionAttributeNames={
                    "#status": "status",
                    "#error": "error",
                    "#owner": "owner",
                    "#run": "run",
                    **{f"#{k}": k for k in values},
                },
                ExpressionAttributeValues={
                    ":status": Status.PROCESSING.value,
                    ":execution": execution_arn,
                    ":run": run_name(execution_arn),
                    ":now": now,
                    ":gsi1pk": f"STATUS#{Status.PROCESSING}",
                    ":gsi2pk": f"KEY#{media.key}",
                    ":owner": owner,
                    ":gsi1sk": status_sort_key(owner, created_at),
                    **{f":s{i}": s.value for i, s in enumerate(REDRIVABLE_FROM)},
                    **{f":{k}": v for k, v in values.items()},
                },
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _conditional_failed(error):
                found: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
                holder = to_media_item(from_wire(found)) if found else None
                if holder is not None and holder.status.is_terminal:
                    why = f"is already finished ({holder.status})"
                else:
                    why = "is being processed by another run"
                raise InvalidTransition(f"media {media.media_id} {why}", holder) from error
            raise
        old = response.get("Attributes", {})
        same_run = old.get("execution_arn") == execution_arn or old.get("run") == run_name(execution_arn)
        if old.get("status") != Status.PROCESSING.value or not same_run:
            self._append_history(media.media_id, Status.PROCESSING, now, step="validate", execution_arn=execution_arn)
        return SourceObject.model_validate(plain(source)), str(old.get("owner") or owner)

    def set_upload_id(self, media_id: str, upload_id: str) -> None:
        """A new multipart upload for a media still waiting for its bytes (the previous one expired)."""
        try:
            self._table.update_item(
                Key={"pk": media_pk(media_id), "sk": META},
                UpdateExpression="SET #source.upload_id = :upload_id, updated_at = :now",
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#source": "source", "#status": "status"},
                ExpressionAttributeValues={
                    ":upload_id": upload_id,
                    ":now": utc_now(),
                    ":pending": Status.PENDING_UPLOAD.value,
                },
            )
        except ClientError as error:
            if _conditional_failed(error):
                raise InvalidTransition(f"media {media_id} is no longer waiting for its upload") from error
            raise

    def record_source(self, media_id: str, execution_arn: str, source: SourceFacts) -> None:
        """What validation learnt about the original, on the media this execution is processing."""
        try:
            self._table.update_item(
                Key={"pk": media_pk(media_id), "sk": META},
                UpdateExpression=(
                    "SET sha256 = :sha256, content_type = :type, width = :w, height = :h, updated_at = :now"
                ),
                ConditionExpression="#status = :processing AND execution_arn = :execution",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":sha256": source.sha256,
                    ":type": source.content_type,
                    ":w": source.width,
                    ":h": source.height,
                    ":now": utc_now(),
                    ":processing": Status.PROCESSING.value,
                    ":execution": execution_arn,
                },
            )
        except ClientError as error:
            if _conditional_failed(error):
                raise InvalidTransition(f"media {media_id} is not PROCESSING by this run") from error
            raise

    def finish(self, media_id: str, execution_arn: str, status: Status, step: str, **fields: Any) -> MediaItem:
        """Move a media this execution is processing to a terminal status, setting ``fields``."""
        now = utc_now()
        fields = {k: v for k, v in fields.items() if v is not None}
        sets = "".join(f", #{k} = :{k}" for k in fields)
        try:
            response = self._table.update_item(
                Key={"pk": media_pk(media_id), "sk": META},
                UpdateExpression="SET #status = :status, updated_at = :now, finished_at = :now, "
                f"gsi1pk = :gsi1pk{sets} ADD version :one",
                ConditionExpression="#status = :processing AND execution_arn = :execution",
                ExpressionAttributeNames={"#status": "status", **{f"#{k}": k for k in fields}},
                ExpressionAttributeValues={
                    ":status": status.value,
                    ":gsi1pk": f"STATUS#{status}",
                    ":processing": Status.PROCESSING.value,
                    ":execution": execution_arn,
                    ":now": now,
                    ":one": 1,
                    **{f":{k}": dynamo_value(v) for k, v in fields.items()},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",  # what it is, without reading it again
            )
        except ClientError as error:
            if _conditional_failed(error):
                found: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
                current = to_media_item(from_wire(found)) if found else None
                if current is not None and current.status == status and current.execution_arn == execution_arn:
                    return current  # this very change was already made (a retried step)
                raise InvalidTransition(
                    f"media {media_id} is {current.status if current else 'missing'}, not PROCESSING by this run"
                ) from error
            raise
        history = {"step": step, "execution_arn": execution_arn}
        for key in ("reason", "error", "duplicate_of"):
            if key in fields:
                history[key] = str(fields[key])
        self._append_history(media_id, status, now, **history)
        return to_media_item(response["Attributes"])

    def create_pending(
        self, media_id: str, owner: str, source: dict[str, Any], expires_at: int, callback_url: str | None = None
    ) -> MediaItem:
        """A new media of ``owner`` waiting for its upload (API); abandoned ones expire through the table's TTL."""
        now = utc_now()
        item: dict[str, Any] = {
            "pk": media_pk(media_id),
            "sk": META,
            "media_id": media_id,
            "owner": owner,
            "status": Status.PENDING_UPLOAD.value,
            "source": source,
            "created_at": now,
            "updated_at": now,
            "expires_at": expires_at,
            "gsi1pk": f"STATUS#{Status.PENDING_UPLOAD}",
            "gsi1sk": status_sort_key(owner, now),
            "gsi2pk": f"KEY#{source['key']}",
        }
        if callback_url:
            item["callback_url"] = callback_url
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if _conditional_failed(error):
                raise AlreadyExists(media_id) from error
            raise
        self._append_history(media_id, Status.PENDING_UPLOAD, now, step="api")
        return to_media_item(item)

    def rerendered(
        self,
        media_id: str,
        fingerprint: str,
        variants: dict[str, Variant],
        placeholder: Placeholder | None,
        facts: PhotoFacts | None,
    ) -> MediaItem | None:
        """Record a READY media's variants rendered again with the settings ``fingerprint`` names (and a history
        entry); None when it is no longer READY or was rendered with them meanwhile."""
        now = utc_now()
        values: dict[str, Any] = {
            ":variants": dynamo_value(variants),
            ":fingerprint": fingerprint,
            ":ready": Status.READY.value,
            ":now": now,
        }
        sets = "variants = :variants, rendered_with = :fingerprint, updated_at = :now"
        for name, value in (("placeholder", placeholder), ("facts", facts)):
            if value is not None:
                sets += f", {name} = :{name}"
                values[f":{name}"] = dynamo_value(value)
        try:
            response = self._table.update_item(
                Key={"pk": media_pk(media_id), "sk": META},
                UpdateExpression=f"SET {sets}",
                ConditionExpression="#status = :ready AND "
                "(attribute_not_exists(rendered_with) OR rendered_with <> :fingerprint)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _conditional_failed(error):
                return None
            raise
        self._append_history(
            media_id,
            Status.READY,
            now,
            step="reprocess",
            variants=", ".join(sorted(variants)),
            rendered_with=fingerprint,
        )
        return to_media_item(response["Attributes"])

    def record_webhook(self, media_id: str, state: WebhookState) -> bool:
        """Keep the outcome of a delivery attempt on the media, unless one of a later event is there already;
        False when it was not kept."""
        try:
            self._table.update_item(
                Key={"pk": media_pk(media_id), "sk": META},
                UpdateExpression="SET webhook = :state",
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(webhook) OR webhook.version <= :version)",
                ExpressionAttributeValues={":state": dynamo_value(state), ":version": state.version},
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def claim_idempotency_key(self, owner: str, key: str, body_hash: str, media_id: str) -> tuple[str, str]:
        """Bind an owner's Idempotency-Key to a request body and media; return the (media_id, body_hash) it is
        bound to. Owners' keys never meet: the same key from two owners makes two media."""
        item = {
            "pk": f"IDEMPOTENCY#{owner}#{key}",
            "sk": UPLOAD,
            "media_id": media_id,
            "body_hash": body_hash,
            "at": utc_now(),
        }
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            stored = self._table.get_item(Key={"pk": item["pk"], "sk": UPLOAD}, ConsistentRead=True)["Item"]
            return str(stored["media_id"]), str(stored["body_hash"])
        return media_id, body_hash

    def media_with_sha256(self, owner: str, sha256: str) -> str | None:
        """The owner's media that claimed these exact bytes (its first upload of them), if any."""
        item = self._table.get_item(Key=_claim_key(owner, sha256), ConsistentRead=True).get("Item")
        return str(item["media_id"]) if item else None

    def find_by_key(self, key: str, owner: str | None = None) -> MediaItem | None:
        """The newest media made from the object ``key`` (only if it is ``owner``'s, when given)."""
        response = self._table.query(
            IndexName=BY_KEY, KeyConditionExpression="gsi2pk = :k", ExpressionAttributeValues={":k": f"KEY#{key}"}
        )
        items = sorted(response["Items"], key=lambda i: str(i.get("created_at", "")), reverse=True)
        item = self.get(str(items[0]["media_id"])) if items else None
        return item if item is not None and owner in (None, item.owner) else None

    def list_by_status(
        self, status: Status, limit: int = 50, start: dict[str, Any] | None = None, owner: str | None = None
    ) -> tuple[list[MediaItem], dict[str, Any] | None]:
        """One page of media with ``status`` (only ``owner``'s, newest first, when given), and the key to continue
        from (or None)."""
        condition, values = "gsi1pk = :s", {":s": f"STATUS#{status}"}
        if owner is not None:
            condition, values = f"{condition} AND begins_with(gsi1sk, :owner)", {**values, ":owner": f"{owner}#"}
        kwargs: dict[str, Any] = {
            "IndexName": BY_STATUS,
            "KeyConditionExpression": condition,
            "ScanIndexForward": False,
            "ExpressionAttributeValues": values,
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self._table.query(**kwargs)
        return [to_media_item(i) for i in response["Items"]], response.get("LastEvaluatedKey")

    def list_all_by_status(self, status: Status) -> Iterator[MediaItem]:
        """Every media with ``status``, page by page."""
        start = None
        while True:
            items, start = self.list_by_status(status, 100, start)
            yield from items
            if not start:
                return

    def summaries(self, since: str | None = None, owner: str | None = None) -> Iterator[dict[str, Any]]:
        """Every media item (created at ``since`` or later, ``owner``'s, when given), with only what statistics
        need: a scan of the table, page by page (`photopipe stats`)."""
        names = ("media_id", "status", "owner", "created_at", "finished_at", "reason", "attempts", "execution_arn")
        condition, values = "sk = :meta", {":meta": META}
        if since is not None:
            condition, values = f"{condition} AND created_at >= :since", {**values, ":since": since}
        if owner is not None:
            condition, values = f"{condition} AND #owner = :owner", {**values, ":owner": owner}
        kwargs: dict[str, Any] = {
            "FilterExpression": condition,
            "ProjectionExpression": ", ".join(f"#{name}" for name in names),
            "ExpressionAttributeNames": {f"#{name}": name for name in names},
            "ExpressionAttributeValues": values,
        }
        while True:
            response = self._table.scan(**kwargs)
            yield from (plain(item) for item in response["Items"])
            if not (start := response.get("LastEvaluatedKey")):
                return
            kwargs["ExclusiveStartKey"] = start

    def begin_retry(self, media_id: str, execution_arn: Callable[[int], str], after_attempts: int) -> int:
        """FAILED → PROCESSING for one new run, whoever else asks at the same moment; return its attempt number.

        The move is one conditional write (only a FAILED media that has had exactly ``after_attempts`` retries moves,
        so of concurrent callers exactly one wins; the others get InvalidTransition), then the run it is for —
        ``execution_arn(attempt)``, and its name — is bound to it, so that run, and only it, may process the media
        (an EXPRESS run is matched by its name: its ARN ends with an id given when it starts). The history records
        the retry.
        """
        now = utc_now()
        key = {"pk": media_pk(media_id), "sk": META}
        attempts_so_far = (
            "attempts = :before" if after_attempts else "(attribute_not_exists(attempts) OR attempts = :before)"
        )
        try:
            response = self._table.update_item(
                Key=key,
                UpdateExpression="SET #status = :processing, gsi1pk = :gsi1pk, updated_at = :now ADD attempts :one "
                "REMOVE #error",
                ConditionExpression=f"#status = :failed AND {attempts_so_far}",
                ExpressionAttributeNames={"#status": "status", "#error": "error"},
                ExpressionAttributeValues={
                    ":processing": Status.PROCESSING.value,
                    ":gsi1pk": f"STATUS#{Status.PROCESSING}",
                    ":failed": Status.FAILED.value,
                    ":now": now,
                    ":one": 1,
                    ":before": after_attempts,
                },
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as error:
            if _conditional_failed(error):
                raise InvalidTransition(f"media {media_id} is not FAILED (or another retry took it)") from error
            raise
        attempt = int(response["Attributes"]["attempts"])
        run = execution_arn(attempt)
        self._table.update_item(
            Key=key,
            UpdateExpression="SET execution_arn = :arn, #run = :run",
            ConditionExpression="#status = :processing AND attempts = :attempt",
            ExpressionAttributeNames={"#status": "status", "#run": "run"},
            ExpressionAttributeValues={
                ":arn": run,
                ":run": run_name(run),
                ":processing": Status.PROCESSING.value,
                ":attempt": attempt,
            },
        )
        self._append_history(media_id, Status.PROCESSING, now, step="retry", execution_arn=run)
        return attempt

    # --- exact and near duplicates -------------------------------------------------------------------------------
    def claim_sha256(self, owner: str, sha256: str, media_id: str) -> str:
        """Claim these bytes among ``owner``'s media for ``media_id``; return the media that has them (itself, or
        an earlier one of the owner's)."""
        key = _claim_key(owner, sha256)
        try:
            self._table.put_item(
                Item={**key, "media_id": media_id, "at": utc_now()},
                ConditionExpression="attribute_not_exists(pk) OR media_id = :me",
                ExpressionAttributeValues={":me": media_id},
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            owner = self._table.get_item(Key=key, ConsistentRead=True)["Item"]["media_id"]
            return str(owner)
        return media_id

    def take_over_claim(self, owner: str, sha256: str, media_id: str, previous: str) -> bool:
        """Move the claim on these bytes from the media ``previous`` to ``media_id``; False if someone else moved
        it."""
        try:
            self._table.update_item(
                Key=_claim_key(owner, sha256),
                UpdateExpression="SET media_id = :me, #at = :now",
                ConditionExpression="media_id = :previous",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues={":me": media_id, ":previous": previous, ":now": utc_now()},
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def index_ready(self, owner: str, media_id: str, phash: str, album: AlbumPhoto | None = None) -> None:
        """Index a READY media: its perceptual hash bands (near-duplicates) and what its album is found by."""
        with self._table.batch_writer() as batch:
            for band, bits in phash_bands(phash):
                batch.put_item(Item={"pk": f"PHASH#{owner}#{band}#{bits}", "sk": media_id, "phash": phash})
            if album is not None:
                batch.put_item(Item={"pk": album_photos_pk(owner), "sk": media_id, **dynamo_value(album_entry(album))})

    def album_photos(self, owner: str) -> list[AlbumPhoto]:
        """Every READY media of ``owner`` as albums see it (one item each, a few dozen bytes)."""
        found: list[AlbumPhoto] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": album_photos_pk(owner)},
        }
        while True:
            response = self._table.query(**kwargs)
            found += [album_photo(plain(item)) for item in response["Items"]]
            if "LastEvaluatedKey" not in response:
                return found
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def get_many(self, media_ids: list[str]) -> dict[str, MediaItem]:
        """The media of these ids that exist (at most 100 at once: one BatchGetItem, and again for what it left)."""
        return {media.media_id: media for media in map(to_media_item, self._batch_get(media_ids))}

    def statuses(self, media_ids: list[str]) -> dict[str, Status]:
        """The status of each of these media that exists (at most 100 at once), reading nothing else of them."""
        found = self._batch_get(media_ids, {"ProjectionExpression": "media_id, #status"})
        return {str(item["media_id"]): Status(item["status"]) for item in found}

    def _batch_get(self, media_ids: list[str], projection: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The items of these media, in one BatchGetItem and again for what it left."""
        assert len(media_ids) <= BATCH_GET, f"at most {BATCH_GET} media at once"
        client = self._table.meta.client
        keys = [{"pk": media_pk(media_id), "sk": META} for media_id in dict.fromkeys(media_ids)]
        if not keys:
            return []
        names = {"ExpressionAttributeNames": {"#status": "status"}} if projection else {}
        request = {self._table.name: {"Keys": keys, "ConsistentRead": True, **(projection or {}), **names}}
        found: list[dict[str, Any]] = []
        for _ in range(20):
            if not request:
                break
            response = client.batch_get_item(RequestItems=request)
            found += response["Responses"].get(self._table.name, [])
            request = response.get("UnprocessedKeys") or {}
            time.sleep(0.05 if request else 0)
        if request:
            raise RuntimeError("DynamoDB kept leaving media unread (throttled); try again")
        return found

    def similar(self, owner: str, media_id: str, phash: str, max_distance: int = SIMILAR_MAX_DISTANCE) -> list[str]:
        """The owner's other media whose perceptual hash is within ``max_distance`` bits: the ``SIMILAR_LIMIT``
        closest among the last ``SIMILAR_READ_PER_BAND`` entries of each band by media id, closest first, then by id
        descending (an upload's id sorts by time; a drop-folder object's id is derived from the object).

        The bands are read at once (the client is thread-safe): one after the other, the seven queries were most
        of Finalize's time, each waiting its turn in a busy DynamoDB endpoint. Whole items are read: DynamoDB bills
        a projection as the whole item, and the entries are only their key and hash."""
        client, table = self._table.meta.client, self._table.name  # the table's own: it speaks Python values too

        def band_entries(band_key: str) -> list[dict[str, Any]]:
            response = client.query(
                TableName=table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": band_key},
                ScanIndexForward=False,
                Limit=SIMILAR_READ_PER_BAND,
            )
            return list(response["Items"])

        band_keys = [f"PHASH#{owner}#{band}#{bits}" for band, bits in phash_bands(phash)]
        with ThreadPoolExecutor(len(band_keys)) as pool:
            bands = list(pool.map(band_entries, band_keys))
        found: dict[str, int] = {}
        for item in (item for entries in bands for item in entries):
            other = str(item["sk"])
            if other != media_id and (distance := hamming(phash, str(item["phash"]))) <= max_distance:
                found[other] = distance
        most_recent_first = sorted(found, reverse=True)
        return sorted(most_recent_first, key=lambda other: found[other])[:SIMILAR_LIMIT]

    def _append_history(self, media_id: str, status: Status, at: str, **details: str) -> None:
        try:
            self._table.put_item(
                Item={
                    "pk": media_pk(media_id),
                    "sk": f"HISTORY#{at}#{status}",
                    "status": status.value,
                    "at": at,
                    **details,
                },
                ConditionExpression="attribute_not_exists(sk)",
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise


def album_photos_pk(owner: str) -> str:
    return f"ALBUMPHOTOS#{owner}"


def album_entry(photo: AlbumPhoto) -> dict[str, Any]:
    """An album index item's attributes (short names: one per READY photo)."""
    return {"u": photo.uploaded_at, "t": photo.taken_at, "o": photo.taken_offset, "lat": photo.latitude,
            "lon": photo.longitude}  # fmt: skip


def album_photo(item: dict[str, Any]) -> AlbumPhoto:
    return AlbumPhoto(
        media_id=str(item["sk"]),
        uploaded_at=str(item["u"]),
        taken_at=item.get("t"),
        taken_offset=item.get("o"),
        latitude=float(item["lat"]) if "lat" in item else None,
        longitude=float(item["lon"]) if "lon" in item else None,
    )


def _claim_key(owner: str, sha256: str) -> dict[str, str]:
    return {"pk": f"SHA256#{owner}#{sha256}", "sk": CLAIM}


def phash_bands(phash: str) -> Iterable[tuple[int, str]]:
    """The 64-bit hash cut into ``PHASH_BANDS`` runs of bits (9 or 10 each), each as hex: two hashes within
    ``SIMILAR_MAX_DISTANCE`` bits differ in at most that many runs, so at least one run is the same in both
    (pigeonhole) and a lookup of every run of one finds the other."""
    value = int(phash, 16)
    width, wider = divmod(64, PHASH_BANDS)
    start = 0
    for band in range(PHASH_BANDS):
        size = width + (1 if band >= PHASH_BANDS - wider else 0)
        bits = (value >> (64 - start - size)) & ((1 << size) - 1)
        yield band, f"{bits:03x}"
        start += size


def dynamo_value(value: Any) -> Any:
    """Python values as the DynamoDB resource API stores them (floats as Decimal, models as maps)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: dynamo_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [dynamo_value(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """DynamoDB values back to JSON-friendly Python (Decimal → int or float)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def from_wire(item: dict[str, Any]) -> dict[str, Any]:
    """An item as DynamoDB's wire format spells it (``{"S": …}``), as the table resource reads items."""
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


_DESERIALIZER = TypeDeserializer()


def to_media_item(item: dict[str, Any]) -> MediaItem:
    hidden = {"pk", "sk", "expires_at", "gsi1pk", "gsi1sk", "gsi2pk"}
    return MediaItem.model_validate({k: v for k, v in plain(item).items() if k not in hidden})


@lru_cache(maxsize=1)
def media_repository() -> MediaRepository:
    return MediaRepository(aws.resource("dynamodb").Table(get_settings().require("media_table")))
