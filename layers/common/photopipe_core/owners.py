"""Owners: whose a media is (README, "Owners and API keys").

Every API key belongs to one owner, and every media to one owner: the API's reads, lists, lookups, completes,
retries, Idempotency-Keys and deduplication are all within the caller's own media. A drop-folder object belongs to
the owner its first folder names (``drop/<owner>/…``) when that owner exists, else to the operator.

Items (the media table, next to the media):
- ``OWNERS`` / ``<name>``: an owner (its current API key id while it has one; the owner stays when its key is revoked,
  so its media and its drop folder stay its own and a new key can be made for it).
- ``APIKEY#<key id>`` / ``OWNER``: the owner an API Gateway key id belongs to (deleted when the key is revoked).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from photopipe_core.keys import DROP_PREFIX
from photopipe_core.models import OPERATOR, utc_now
from photopipe_core.webhooks import new_secret

__all__ = [
    "OPERATOR",
    "Owner",
    "OwnerCache",
    "OwnerExists",
    "Owners",
    "TtlCache",
    "check_owner_name",
    "drop_folder",
    "drop_folder_owner",
]
# An owner's name is also a folder name under drop/ and part of item keys: lowercase, no '#' or '/'.
OWNER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
OWNERS_PK = "OWNERS"
LIMIT_FIELDS = ("daily_uploads", "daily_bytes", "open_uploads")  # an owner's own limits (quotas.py)
KEY_SK = "OWNER"


class OwnerExists(Exception):
    """The owner already has an API key (revoke it first, or choose another name)."""


@dataclass(frozen=True)
class Owner:
    name: str
    key_id: str | None
    created_at: str
    key_created_at: str | None = None
    limits: dict[str, int] = field(default_factory=dict)  # the owner's own, where set (else the stack's)


def check_owner_name(name: str) -> str:
    if not OWNER_NAME.match(name):
        raise ValueError(
            f"{name!r} is not an owner name: 1 to 63 of a-z, 0-9, '-' and '_', starting with a letter or digit"
        )
    return name


def drop_folder(owner: str) -> str:
    """Where an owner's drop-folder objects go: ``drop/<owner>/`` (the operator's: anywhere else under ``drop/``)."""
    return DROP_PREFIX if owner == OPERATOR else f"{DROP_PREFIX}{owner}/"


def drop_folder_owner(key: str) -> str | None:
    """The owner name a drop-folder key's first folder could be (``drop/<name>/…``), or None."""
    if not key.startswith(DROP_PREFIX):
        return None
    folder, slash, rest = key[len(DROP_PREFIX) :].partition("/")
    return folder if slash and rest and OWNER_NAME.match(folder) else None


def _key_item(key_id: str) -> dict[str, str]:
    return {"pk": f"APIKEY#{key_id}", "sk": KEY_SK}


class Owners:
    """The owner records and the API key → owner mapping, in the media table."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def of_api_key(self, key_id: str) -> str | None:
        item = self._table.get_item(Key=_key_item(key_id), ConsistentRead=True).get("Item")
        return str(item["owner"]) if item else None

    def exists(self, name: str) -> bool:
        return "Item" in self._table.get_item(Key={"pk": OWNERS_PK, "sk": name}, ProjectionExpression="sk")

    def owner_of_drop_key(self, key: str) -> str:
        """The drop-folder rule: ``drop/<owner>/…`` is that owner's when it exists; anything else the operator's."""
        folder = drop_folder_owner(key)
        return folder if folder is not None and self.exists(folder) else OPERATOR

    def get(self, name: str) -> Owner | None:
        item = self._table.get_item(Key={"pk": OWNERS_PK, "sk": name}, ConsistentRead=True).get("Item")
        return _owner(item) if item else None

    def everyone(self) -> list[Owner]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": OWNERS_PK},
            "ConsistentRead": True,
        }
        while True:
            response = self._table.query(**kwargs)
            items += response["Items"]
            if "LastEvaluatedKey" not in response:
                return [_owner(item) for item in items]
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def register_key(self, name: str, key_id: str) -> None:
        """Give ``name`` (a new owner or one whose key was revoked) the API key ``key_id``; OwnerExists if it has
        one already. The owner record and the key mapping are written together."""
        check_owner_name(name)
        now = utc_now()
        client = self._table.meta.client
        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table.name,
                            "Key": {"pk": OWNERS_PK, "sk": name},
                            "UpdateExpression": "SET key_id = :key, key_created_at = :now, "
                            "created_at = if_not_exists(created_at, :now)",
                            "ConditionExpression": "attribute_not_exists(key_id)",
                            "ExpressionAttributeValues": {":key": key_id, ":now": now},
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table.name,
                            "Item": {**_key_item(key_id), "owner": name, "at": now},
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                raise OwnerExists(f"owner {name!r} already has an API key; revoke it first") from error
            raise

    def webhook_secret(self, name: str, rotate: bool = False) -> str:
        """The owner's webhook secret (what its deliveries are signed with), made at the first ask; ``rotate``
        replaces it (deliveries use the new one within ``TtlCache``'s minute). LookupError for an owner without a
        record."""
        if not rotate:
            item = self._table.get_item(
                Key={"pk": OWNERS_PK, "sk": check_owner_name(name)}, ProjectionExpression="webhook_secret"
            ).get("Item")
            if item and item.get("webhook_secret"):
                return str(item["webhook_secret"])
        new = ":new" if rotate else "if_not_exists(webhook_secret, :new)"
        try:
            answer = self._table.update_item(
                Key={"pk": OWNERS_PK, "sk": check_owner_name(name)},
                UpdateExpression=f"SET webhook_secret = {new}",
                ConditionExpression="attribute_exists(sk)",
                ExpressionAttributeValues={":new": new_secret()},
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise LookupError(f"no owner {name!r}") from error
            raise
        return str(answer["Attributes"]["webhook_secret"])

    def set_limits(self, name: str, limits: dict[str, int]) -> None:
        """The owner's own limits (quotas.py: ``daily_uploads``, ``daily_bytes``, ``open_uploads``; 0 = none)."""
        if not limits:
            return
        self._table.update_item(
            Key={"pk": OWNERS_PK, "sk": name},
            UpdateExpression="SET " + ", ".join(f"#{field} = :{field}" for field in limits),
            ConditionExpression="attribute_exists(sk)",
            ExpressionAttributeNames={f"#{field}": field for field in limits},
            ExpressionAttributeValues={f":{field}": value for field, value in limits.items()},
        )

    def revoke_key(self, name: str) -> str | None:
        """Take the owner's API key mapping away; returns the key id it had (None if it had none)."""
        owner = self.get(name)
        if owner is None or owner.key_id is None:
            return None
        client = self._table.meta.client
        client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self._table.name,
                        "Key": {"pk": OWNERS_PK, "sk": name},
                        "UpdateExpression": "REMOVE key_id, key_created_at SET revoked_at = :now",
                        "ExpressionAttributeValues": {":now": utc_now()},
                    }
                },
                {"Delete": {"TableName": self._table.name, "Key": _key_item(owner.key_id)}},
            ]
        )
        return owner.key_id


def _owner(item: dict[str, Any]) -> Owner:
    key_id = item.get("key_id")
    return Owner(
        name=str(item["sk"]),
        key_id=str(key_id) if key_id else None,
        created_at=str(item.get("created_at", "")),
        key_created_at=str(item["key_created_at"]) if item.get("key_created_at") else None,
        limits={name: int(item[name]) for name in LIMIT_FIELDS if name in item},
    )


class TtlCache[T]:
    """``load(key)`` remembered for ``ttl`` seconds per key, for the life of a Lambda container (a bounded dict:
    cleared when it holds ``MAX_KEYS``)."""

    MAX_KEYS = 1000

    def __init__(self, load: Callable[[str], T], ttl: float = 60.0) -> None:
        self._load = load
        self._ttl = ttl
        self._known: dict[str, tuple[float, T]] = {}

    def get(self, key: str) -> T:
        now = time.monotonic()
        cached = self._known.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        value = self._load(key)
        if len(self._known) >= self.MAX_KEYS:
            self._known.clear()
        self._known[key] = (now, value)
        return value


class OwnerCache:
    """API key id → owner, each answer kept ``ttl`` seconds: a key revoked is refused by API Gateway at once, and
    by this mapping at the latest ``ttl`` seconds later."""

    def __init__(self, owners: Owners, ttl: float = 60.0) -> None:
        self._cache: TtlCache[str | None] = TtlCache(owners.of_api_key, ttl)

    def owner_of(self, key_id: str) -> str | None:
        return self._cache.get(key_id)
