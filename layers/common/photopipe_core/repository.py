"""The media repository: DynamoDB behind a small class (nothing above it touches boto3).

Item types (one table, ``pk``/``sk``):
- ``MEDIA#<media_id>`` / ``META``: the media item (status, source, variants …).
- ``MEDIA#<media_id>`` / ``HISTORY#<timestamp>#<status>``: one entry per status change, appended, never rewritten.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from botocore.exceptions import ClientError

from photopipe_core import aws
from photopipe_core.models import MediaItem, PipelineInput, Status, utc_now
from photopipe_core.settings import get_settings

META = "META"


def media_pk(media_id: str) -> str:
    return f"MEDIA#{media_id}"


class InvalidTransition(Exception):
    """The media is already in a status this change may not leave (e.g. a finished media started again)."""


class MediaRepository:
    def __init__(self, table: Any) -> None:
        self._table = table

    def mark_processing(self, media: PipelineInput, execution_arn: str) -> MediaItem:
        """Record that ``execution_arn`` processes the media; safe to repeat for the same execution."""
        now = utc_now()
        try:
            response = self._table.update_item(
                Key={"pk": media_pk(media.media_id), "sk": META},
                UpdateExpression=(
                    "SET media_id = :id, #status = :processing, #source = :source, execution_arn = :execution, "
                    "created_at = if_not_exists(created_at, :now), updated_at = :now"
                ),
                ConditionExpression=(
                    "attribute_not_exists(pk) OR #status IN (:pending, :processing) OR execution_arn = :execution"
                ),
                ExpressionAttributeNames={"#status": "status", "#source": "source"},
                ExpressionAttributeValues={
                    ":id": media.media_id,
                    ":processing": Status.PROCESSING.value,
                    ":pending": Status.PENDING_UPLOAD.value,
                    ":source": {"bucket": media.bucket, "key": media.key, "etag": media.etag, "size": media.size},
                    ":execution": execution_arn,
                    ":now": now,
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise InvalidTransition(f"media {media.media_id} is already finished") from error
            raise
        self._append_history(media.media_id, Status.PROCESSING, now, step="register", execution_arn=execution_arn)
        return to_media_item(response["Attributes"])

    def get(self, media_id: str) -> MediaItem | None:
        item = self._table.get_item(Key={"pk": media_pk(media_id), "sk": META}, ConsistentRead=True).get("Item")
        return to_media_item(item) if item else None

    def history(self, media_id: str) -> list[dict[str, Any]]:
        response = self._table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :history)",
            ExpressionAttributeValues={":pk": media_pk(media_id), ":history": "HISTORY#"},
            ConsistentRead=True,
        )
        return [{k: v for k, v in item.items() if k not in {"pk", "sk"}} for item in response["Items"]]

    def is_reachable(self) -> bool:
        self._table.load()
        return bool(self._table.table_status)

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
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise


def to_media_item(item: dict[str, Any]) -> MediaItem:
    source = item["source"]
    return MediaItem(
        media_id=item["media_id"],
        status=Status(item["status"]),
        source={**source, "size": int(source.get("size", 0))},
        execution_arn=item.get("execution_arn"),
        created_at=item["created_at"],
        updated_at=item["updated_at"],
    )


@lru_cache(maxsize=1)
def media_repository() -> MediaRepository:
    return MediaRepository(aws.resource("dynamodb").Table(get_settings().media_table))
