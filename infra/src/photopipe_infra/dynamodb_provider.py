"""DynamoDB and DynamoDB Streams providers for LocalStack backed by moto.

LocalStack's own providers start DynamoDB Local, which downloads Java and a jar at run time. These providers
answer every operation from moto instead (in process, nothing to download). Select them with
``PROVIDER_OVERRIDE_DYNAMODB=moto`` and ``PROVIDER_OVERRIDE_DYNAMODBSTREAMS=moto``.
Requests are answered one at a time: moto's backend is not safe under concurrent requests (two conditional writes
could both see the condition hold), and conditional writes are how photopipe claims a photo's bytes and moves its
status. moto answers in about a millisecond, so one lock costs little.
A query on the table's own key reads only its partition (moto lists and sorts every item of the table for each
query, which made each one slower as the table grew: a third of LocalStack's CPU in a 40-photo run).
Items are deep-copied without growing: moto deep-copies an item twice for every UpdateItem (and each result of a
query), and ``copy``'s generic path asks the original's every ``DynamoType`` for its ``__dict__``; since Python 3.12
an object keeps its attributes inline until asked, so each such read left a dict behind on the stored item — about
5 KB more per item of a photo's size, kept as long as the item. ``DynamoType`` and ``Item`` get a ``__deepcopy__``
that copies their attributes by name instead.
Known difference from AWS: items past their TTL are never deleted.
``UPSTREAM_SHA256`` pins the moto sources this relies on; a test fails when an upgrade changes them.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import threading
from typing import Any

from localstack.aws.api.dynamodb import DynamodbApi
from localstack.aws.api.dynamodbstreams import DynamodbstreamsApi
from localstack.services.moto import MotoFallbackDispatcher
from localstack.services.plugins import Service, ServiceLifecycleHook, aws_provider
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import Table

# sha256 of moto's DynamoType, LimitedSizeDict, Item and Table.query sources in LocalStack 4.14's moto.
UPSTREAM_SHA256 = "3f6c29c7c2255e86b241ac4d6b170c0add8f91d408f7478e977a5a87fc902392"


def upstream_sha256() -> str:
    digest = hashlib.sha256()
    for code in (DynamoType, LimitedSizeDict, Item, Table.query):
        digest.update(inspect.getsource(code).encode())
    return digest.hexdigest()


# One lock for both services: DynamoDB Streams reads the same moto backend.
_BACKEND_LOCK = threading.RLock()


def one_at_a_time(provider: object) -> dict[str, Any]:
    """moto's fallthrough dispatch table, with every operation run under the backend lock."""

    def locked(handler: Any) -> Any:
        def call(context: Any, request: Any) -> Any:
            with _BACKEND_LOCK:
                return handler(context, request)

        return call

    return {operation: locked(handler) for operation, handler in MotoFallbackDispatcher(provider).items()}


class OnePartition:
    """A moto table seen through one partition: what its query on the table's own key reads, without the whole
    table being listed and sorted first. Everything else is the table's (the query only reads attributes)."""

    def __init__(self, table: Table, hash_key: Any) -> None:
        self._table = table
        self._hash_key = hash_key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def all_items(self) -> list[Any]:
        stored = self._table.items.get(self._hash_key)  # .get: the items map is a defaultdict
        if stored is None:
            return []
        return list(stored.values()) if self._table.range_key_attr else [stored]


_moto_query = Table.query
_INDEX_NAME_POSITION = 6  # query(hash_key, range_comparison, range_objs, limit, start_key, forward, projection, index…)


def query_one_partition(table: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    index_name = args[_INDEX_NAME_POSITION] if len(args) > _INDEX_NAME_POSITION else kwargs.get("index_name")
    if index_name:  # an index spans partitions: moto's own way
        return _moto_query(table, hash_key, *args, **kwargs)
    return _moto_query(OnePartition(table, hash_key), hash_key, *args, **kwargs)


Table.query = query_one_partition  # type: ignore[method-assign]


def _copy_dynamo_type(self: DynamoType, memo: dict[int, Any]) -> DynamoType:
    copied = DynamoType.__new__(DynamoType)
    copied.type = self.type
    copied.value = copy.deepcopy(self.value, memo)  # lists and maps hold DynamoTypes: copied the same way
    return copied


def _copy_item(self: Item, memo: dict[int, Any]) -> Item:
    copied = Item.__new__(Item)
    copied.hash_key = copy.deepcopy(self.hash_key, memo)
    copied.range_key = copy.deepcopy(self.range_key, memo)
    copied.attrs = LimitedSizeDict()
    dict.update(copied.attrs, {name: copy.deepcopy(value, memo) for name, value in self.attrs.items()})
    return copied


DynamoType.__deepcopy__ = _copy_dynamo_type  # type: ignore[attr-defined]
Item.__deepcopy__ = _copy_item  # type: ignore[attr-defined]


class MotoDynamoDBProvider(DynamodbApi, ServiceLifecycleHook):
    """Implements nothing itself: every operation falls through to moto."""


class MotoDynamoDBStreamsProvider(DynamodbstreamsApi, ServiceLifecycleHook):
    """Implements nothing itself: every operation falls through to moto."""


@aws_provider(api="dynamodb", name="moto")
def dynamodb_moto() -> Service:
    return Service.for_provider(MotoDynamoDBProvider(), dispatch_table_factory=one_at_a_time)


@aws_provider(api="dynamodbstreams", name="moto")
def dynamodbstreams_moto() -> Service:
    return Service.for_provider(MotoDynamoDBStreamsProvider(), dispatch_table_factory=one_at_a_time)
