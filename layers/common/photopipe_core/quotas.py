"""Per-owner limits the API enforces itself, atomically in DynamoDB: uploads and bytes per UTC day, and uploads open
at once. API Gateway's usage plan throttles and caps requests on AWS, but LocalStack enforces neither, and neither
counts bytes or photos that are still on their way — these hold everywhere.

Items (the media table):
- ``QUOTA#<owner>`` / ``DAY#<yyyy-mm-dd>``: ``uploads`` and ``bytes`` (declared sizes) of the uploads the owner
  created that UTC day; gone two days later (TTL ``expires_at``).
- ``QUOTA#<owner>`` / ``OPEN``: ``media``, the set of the owner's media counted as open (created, not yet in a final
  status). Ids are added when an upload is created; the set is cleaned when it is full — media that reached a final
  status, vanished, or were created over ``PENDING_OPEN_SECONDS`` ago and never uploaded leave it — so nothing on the
  pipeline's path writes here.

Each limit comes from the owner's record (``photopipe keys create --daily-uploads …``) or else the stack's default
(template Parameters); 0 means no limit. Every admission is one conditional update per counter: concurrent requests
cannot both take the last unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from botocore.exceptions import ClientError

from photopipe_core import aws
from photopipe_core.models import Status
from photopipe_core.owners import LIMIT_FIELDS, OWNERS_PK, TtlCache
from photopipe_core.settings import get_settings

OPEN_SK = "OPEN"
# A PENDING_UPLOAD media stops counting as open this long after it was created (its bytes never came).
PENDING_OPEN_SECONDS = 3600
# When the open set is full and nothing in it has finished: about when to ask again.
OPEN_RETRY_AFTER_SECONDS = 10
_BATCH = 100  # BatchGetItem's limit


@dataclass(frozen=True)
class OwnerLimits:
    daily_uploads: int = 0  # 0: no limit
    daily_bytes: int = 0
    open_uploads: int = 0


NO_LIMITS = OwnerLimits()


class OverQuota(Exception):
    """An upload the owner's limits do not admit now; ``retry_after`` seconds is when one might be."""

    def __init__(self, limit: str, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after


def _quota_pk(owner: str) -> str:
    return f"QUOTA#{owner}"


def _failed_condition(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class Quotas:
    def __init__(
        self, table: Any, defaults: OwnerLimits, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._table = table
        self._defaults = defaults
        self._clock = clock
        self._limits: TtlCache[OwnerLimits] = TtlCache(self.limits_of)  # an owner's limits change rarely

    def limits_of(self, owner: str) -> OwnerLimits:
        """The owner's own limits where its record sets them, else the stack's."""
        item = self._table.get_item(
            Key={"pk": OWNERS_PK, "sk": owner}, ProjectionExpression=", ".join(LIMIT_FIELDS)
        ).get("Item", {})
        return OwnerLimits(
            **{field: int(item[field]) if field in item else getattr(self._defaults, field) for field in LIMIT_FIELDS}
        )

    def admit(self, owner: str, media_id: str, size: int) -> None:
        """Count a new upload of ``size`` bytes for ``owner``, or raise OverQuota and count nothing (an owner
        without limits, such as the local operator, costs no write)."""
        limits = self._limits.get(owner)
        if limits == NO_LIMITS:
            return
        if limits.open_uploads:
            self._open(owner, media_id, limits.open_uploads)
        try:
            self._daily(owner, size, limits)
        except OverQuota:
            if limits.open_uploads:
                self._close(owner, [media_id])
            raise

    def usage(self, owner: str) -> dict[str, int]:
        """Today's counts and the open set's size (for `photopipe keys list` and tests)."""
        day = self._table.get_item(Key=self._day_key(owner), ConsistentRead=True).get("Item", {})
        opened = self._table.get_item(Key={"pk": _quota_pk(owner), "sk": OPEN_SK}, ConsistentRead=True).get("Item", {})
        return {
            "uploads_today": int(day.get("uploads", 0)),
            "bytes_today": int(day.get("bytes", 0)),
            "open_uploads": len(opened.get("media", ())),
        }

    # --- per day -------------------------------------------------------------------------------------------------
    def _day_key(self, owner: str) -> dict[str, str]:
        return {"pk": _quota_pk(owner), "sk": f"DAY#{self._clock().date().isoformat()}"}

    def _seconds_to_next_day(self) -> int:
        now = self._clock()
        tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        return max(1, int((tomorrow - now).total_seconds()) + 1)

    def _daily(self, owner: str, size: int, limits: OwnerLimits) -> None:
        if not (limits.daily_uploads or limits.daily_bytes):
            return
        if limits.daily_bytes and size > limits.daily_bytes:
            raise OverQuota(
                "daily_bytes",
                f"{size} bytes is more than this key's daily allowance of {limits.daily_bytes} bytes",
                self._seconds_to_next_day(),
            )
        conditions, values = [], {":one": 1, ":size": size, ":expires": int(self._clock().timestamp()) + 2 * 86400}
        if limits.daily_uploads:
            conditions.append("(attribute_not_exists(uploads) OR uploads < :max_uploads)")
            values[":max_uploads"] = limits.daily_uploads
        if limits.daily_bytes:
            conditions.append("(attribute_not_exists(#bytes) OR #bytes <= :room)")
            values[":room"] = limits.daily_bytes - size
        update: dict[str, Any] = {
            "Key": self._day_key(owner),
            "UpdateExpression": "ADD uploads :one, #bytes :size SET expires_at = :expires",
            "ExpressionAttributeNames": {"#bytes": "bytes"},
            "ExpressionAttributeValues": values,
        }
        if conditions:
            update["ConditionExpression"] = " AND ".join(conditions)
        try:
            self._table.update_item(**update)
        except ClientError as error:
            if not _failed_condition(error):
                raise
            used = self.usage(owner)
            which = (
                "daily_uploads"
                if limits.daily_uploads and used["uploads_today"] >= limits.daily_uploads
                else "daily_bytes"
            )
            allowance = (
                f"{limits.daily_uploads} uploads"
                if which == "daily_uploads"
                else f"{limits.daily_bytes} bytes ({used['bytes_today']} used)"
            )
            raise OverQuota(
                which,
                f"this key's daily allowance of {allowance} is used up until 00:00 UTC",
                self._seconds_to_next_day(),
            ) from error

    # --- open at once --------------------------------------------------------------------------------------------
    def _open(self, owner: str, media_id: str, limit: int) -> None:
        for attempt in range(2):
            try:
                self._table.update_item(
                    Key={"pk": _quota_pk(owner), "sk": OPEN_SK},
                    UpdateExpression="ADD media :id",
                    ConditionExpression="attribute_not_exists(media) OR size(media) < :limit OR contains(media, :me)",
                    ExpressionAttributeValues={":id": {media_id}, ":limit": limit, ":me": media_id},
                )
            except ClientError as error:
                if not _failed_condition(error):
                    raise
                if attempt == 0 and self._clean_open(owner):
                    continue
                raise OverQuota(
                    "open_uploads",
                    f"this key has {limit} uploads open (created and not yet finished); send or finish some first",
                    OPEN_RETRY_AFTER_SECONDS,
                ) from error
            return

    def _clean_open(self, owner: str) -> int:
        """Take the media that are no longer open out of the owner's open set; returns how many left it."""
        item = self._table.get_item(Key={"pk": _quota_pk(owner), "sk": OPEN_SK}, ConsistentRead=True).get("Item", {})
        counted = sorted(item.get("media", ()))
        still_open = set(self._still_open(counted))
        closed = [media_id for media_id in counted if media_id not in still_open]
        if closed:
            self._close(owner, closed)
        return len(closed)

    def _close(self, owner: str, media_ids: list[str]) -> None:
        self._table.update_item(
            Key={"pk": _quota_pk(owner), "sk": OPEN_SK},
            UpdateExpression="DELETE media :ids",
            ExpressionAttributeValues={":ids": set(media_ids)},
        )

    def _still_open(self, media_ids: list[str]) -> Iterable[str]:
        """Those of ``media_ids`` whose media exist, are not final, and (waiting for bytes) are recent."""
        oldest = self._clock() - timedelta(seconds=PENDING_OPEN_SECONDS)
        oldest_pending = oldest.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # as utc_now() spells it
        final = {status.value for status in Status if status.is_terminal}
        client, name = self._table.meta.client, self._table.name
        for start in range(0, len(media_ids), _BATCH):
            keys = [{"pk": f"MEDIA#{media_id}", "sk": "META"} for media_id in media_ids[start : start + _BATCH]]
            request: dict[str, Any] = {
                name: {
                    "Keys": keys,
                    "ProjectionExpression": "media_id, #status, created_at",
                    "ConsistentRead": True,
                    "ExpressionAttributeNames": {"#status": "status"},
                }
            }
            while request:
                response = client.batch_get_item(RequestItems=request)
                for media in response["Responses"].get(name, []):
                    status, created = str(media.get("status")), str(media.get("created_at", ""))
                    pending_too_long = status == Status.PENDING_UPLOAD.value and created < oldest_pending
                    if status not in final and not pending_too_long:
                        yield str(media["media_id"])
                request = response.get("UnprocessedKeys") or {}


@lru_cache(maxsize=1)
def quotas() -> Quotas:
    settings = get_settings()
    defaults = OwnerLimits(settings.owner_daily_uploads, settings.owner_daily_bytes, settings.owner_open_uploads)
    return Quotas(aws.resource("dynamodb").Table(settings.require("media_table")), defaults)
