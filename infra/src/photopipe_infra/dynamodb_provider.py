"""DynamoDB and DynamoDB Streams providers for LocalStack backed by moto.

LocalStack's own providers start DynamoDB Local, which downloads Java and a jar at run time. These providers
answer every operation from moto instead (in process, nothing to download). Select them with
``PROVIDER_OVERRIDE_DYNAMODB=moto`` and ``PROVIDER_OVERRIDE_DYNAMODBSTREAMS=moto``.
Requests are answered one at a time: moto's backend is not safe under concurrent requests (two conditional writes
could both see the condition hold), and conditional writes are how photopipe claims a photo's bytes and moves its
status. moto answers in about a millisecond, so one lock costs little.
A query on the table's own key reads only its partition (moto lists and sorts every item of the table for each
query, which made each one slower as the table grew: a third of LocalStack's CPU in a 40-photo run), and a query
with a limit only the partition's first items (``OnePartition``). Its results are not deep-copied when nothing
projects or filters them (moto copies every item it returns, then only serializes the copies): the near-duplicate
lookup returns up to 700 items a photo in a library of look-alikes, 4 % of LocalStack's CPU at 7,000 photos.
Items are deep-copied without growing: moto deep-copies an item twice for every UpdateItem (and each result of a
query), and ``copy``'s generic path asks the original's every ``DynamoType`` for its ``__dict__``; since Python 3.12
an object keeps its attributes inline until asked, so each such read left a dict behind on the stored item — about
5 KB more per item of a photo's size, kept as long as the item. ``DynamoType`` and ``Item`` get a ``__deepcopy__``
that copies their attributes by name instead.
Equal strings of stored items are kept once: each request's JSON is decoded into new strings, so every stored item
held its own copy of each attribute name, map key and type tag, and of values repeated across items (a photo's id in
its seven hash-band items, statuses, content types …) — about 8 KB per photo. Each item written (PutItem, UpdateItem,
batch and transactional writes) has its strings swapped for equal ones already stored, from a bounded table.
Known difference from AWS: items past their TTL are never deleted.
An update expression is parsed once: moto parses each UpdateItem's expression anew (1.5 ms for a photo's), and each
validation deep-copies the tree (2 ms; twice for a new item). The parsed tree of each expression is kept pickled,
and a fresh tree, and each validator's copy, is unpickled from it (0.3 ms).
``UPSTREAM_SHA256`` pins the moto sources this relies on; a test fails when an upgrade changes them.
"""

from __future__ import annotations

import bisect
import copy
import functools
import hashlib
import inspect
import pickle
import threading
from typing import Any

from localstack.aws.api.dynamodb import DynamodbApi
from localstack.aws.api.dynamodbstreams import DynamodbstreamsApi
from localstack.services.moto import MotoFallbackDispatcher, dispatch_to_moto
from localstack.services.plugins import Service, ServiceLifecycleHook, aws_provider
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.parsing.validators import Validator

# sha256 of moto's DynamoType, LimitedSizeDict, Item, Table.query and .put_item, DynamoDBBackend.update_item,
# UpdateExpressionParser.make and Validator.__init__ sources in LocalStack 4.14's moto.
UPSTREAM_SHA256 = "a7d31707a66ec4c088b30d2c29b20597147ae0480ccf5bda47162a5564d5aeea"


def upstream_sha256() -> str:
    digest = hashlib.sha256()
    for code in (
        DynamoType,
        LimitedSizeDict,
        Item,
        _moto_query,
        _moto_put_item,
        _moto_update_item,
        _moto_make_update_expression,
        _moto_validator_init,
    ):
        digest.update(inspect.getsource(code).encode())
    return digest.hexdigest()


# One lock for both services (DynamoDB Streams reads the same moto backend), and for saving it (persistence).
BACKEND_LOCK = threading.RLock()


# Reads whose answer is moto's own: LocalStack would parse moto's JSON into a response (botocore's parser) and
# serialize it again (its own serializer), both walking the items shape by shape — 2.6 ms of every hundred items,
# where moto's JSON costs 0.2. A near-duplicate lookup reads up to seven hundred. The parse and the serializing
# are skipped.
PASSED_THROUGH = frozenset({"Query", "Scan", "GetItem", "BatchGetItem"})
# What a passed-through answer leaves as the request's parsed response (the response handlers parse one otherwise).
PASSED = {"PassedThrough": True}


def one_at_a_time(provider: object) -> dict[str, Any]:
    """moto's fallthrough dispatch table, with every operation run under the backend lock, and the reads in
    ``PASSED_THROUGH`` answered with moto's answer as it is (an error is parsed as before)."""

    def locked(handler: Any) -> Any:
        def call(context: Any, request: Any) -> Any:
            with BACKEND_LOCK:
                return handler(context, request)

        return call

    def passed_through(context: Any, _request: Any) -> Any:
        with BACKEND_LOCK:
            response = dispatch_to_moto(context)
        if response.status_code == 200:  # noqa: PLR2004
            context.service_response = PASSED
        return response

    table = MotoFallbackDispatcher(provider)
    return {
        operation: passed_through
        if operation in PASSED_THROUGH and isinstance(provider, DynamodbApi)
        else locked(handler)
        for operation, handler in table.items()
    }


class OnePartition:
    """A moto table seen through one partition: what its query on the table's own key reads, without the whole
    table being listed and sorted first. Everything else is the table's (the query only reads attributes).

    Given ``first`` = (n, forward), only the partition's first ``n`` items in that order are handed over: moto sorts
    what it is given with Python-level comparisons before it applies ``Limit``, so a query with ``Limit=100`` of a
    partition of 10,000 items sorted all 10,000 — the near-duplicate lookup does seven per photo, and its hash-band
    partitions grow with a library of look-alikes. ``n`` is one more than the limit, so moto still sees that more
    items follow (``LastEvaluatedKey``)."""

    def __init__(self, table: Table, hash_key: Any, first: tuple[int, bool] | None = None) -> None:
        self._table = table
        self._hash_key = hash_key
        self._first = first

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def all_items(self) -> list[Any]:
        stored = self._table.items.get(self._hash_key)  # .get: the items map is a defaultdict
        if stored is None:
            return []
        if not self._table.range_key_attr:
            return [stored]
        if self._first is None:
            return list(stored.values())
        if not isinstance(stored, Partition):  # moto's own dict: from here on, one that keeps its keys in order
            stored = self._table.items[self._hash_key] = Partition(stored)
        return stored.first(*self._first)


def _range_order(key: DynamoType) -> Any:
    return key.cast_value


class Partition(dict):  # type: ignore[type-arg]
    """A partition's items by sort key (what moto keeps in a plain dict), with its keys kept in order once a limited
    query asked for its first items: picking a hundred of ten thousand (``heapq``) still compared every item with
    Python-level keys, 14 ms for each of the near-duplicate lookup's seven band queries in a library of 10,000
    look-alikes, and growing with it. A new key is placed by bisection and a removed one taken out the same way;
    any other change (``update``, ``clear`` …) sorts again when next asked. Pickled and copied as the plain dict moto
    made: snapshots hold only moto's objects, and a loaded partition is converted again on its first limited query."""

    __slots__ = ("_order",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._order: list[Any] | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return dict, (dict(self),)

    def first(self, count: int, forward: bool) -> list[Any]:
        """The items of the ``count`` lowest sort keys (``forward``), or of the highest."""
        if self._order is None:
            self._order = sorted(self, key=_range_order)
        keys = self._order[:count] if forward else self._order[: -count - 1 : -1]
        return [self[key] for key in keys]

    def __setitem__(self, key: Any, value: Any) -> None:
        if self._order is not None and key not in self:
            bisect.insort(self._order, key, key=_range_order)
        super().__setitem__(key, value)

    def _forget(self, key: Any) -> None:
        if self._order is None or key not in self:
            return
        at = bisect.bisect_left(self._order, _range_order(key), key=_range_order)
        if at < len(self._order) and self._order[at] == key:
            del self._order[at]
        else:  # keys of equal order that are not equal (numbers such as 1 and 1.0): sorted again when next asked
            self._order = None

    def pop(self, key: Any, *default: Any) -> Any:
        self._forget(key)
        return super().pop(key, *default)

    def __delitem__(self, key: Any) -> None:
        self._forget(key)
        super().__delitem__(key)

    def _unordered(self, change: str, *args: Any, **kwargs: Any) -> Any:
        self._order = None
        return getattr(super(), change)(*args, **kwargs)

    def clear(self) -> None:
        self._unordered("clear")

    def popitem(self) -> tuple[Any, Any]:
        return self._unordered("popitem")  # type: ignore[no-any-return]

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return self._unordered("setdefault", key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._unordered("update", *args, **kwargs)

    def __ior__(self, other: Any) -> Partition:
        self._unordered("__ior__", other)
        return self


_moto_query = Table.query
# query(hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward, projection, index…)
_RANGE_COMPARISON, _LIMIT, _START_KEY, _FORWARD, _PROJECTION, _INDEX_NAME = 0, 2, 3, 4, 5, 6
# Set while a query whose results are only serialized runs (under BACKEND_LOCK; per thread all the same).
_query_results = threading.local()


def _first_items(args: tuple[Any, ...], filter_kwargs: dict[str, Any]) -> tuple[int, bool] | None:
    """(limit + 1, forward) when the query's result is the partition's first items in key order: a limit, and no
    sort-key condition, start key or legacy QueryFilter (moto applies those while it counts to the limit; a
    FilterExpression it applies after, as DynamoDB does)."""
    if len(args) <= _FORWARD or filter_kwargs:
        return None
    limit = args[_LIMIT]
    if not limit or args[_RANGE_COMPARISON] or args[_START_KEY]:
        return None
    return int(limit) + 1, args[_FORWARD] is not False


def query_one_partition(table: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    index_name = args[_INDEX_NAME] if len(args) > _INDEX_NAME else kwargs.get("index_name")
    if index_name:  # an index spans partitions: moto's own way
        return _moto_query(table, hash_key, *args, **kwargs)
    filter_kwargs = {k: v for k, v in kwargs.items() if k not in _QUERY_KEYWORDS}
    partition = OnePartition(table, hash_key, _first_items(args, filter_kwargs))
    projection = args[_PROJECTION] if len(args) > _PROJECTION else kwargs.get("projection_expressions")
    if projection or kwargs.get("filter_expression") is not None:
        return _moto_query(partition, hash_key, *args, **kwargs)
    # Nothing projects or filters the results: moto's deep copy of them is only serialized; the stored items are.
    _query_results.uncopied = True
    try:
        return _moto_query(partition, hash_key, *args, **kwargs)
    finally:
        _query_results.uncopied = False


_QUERY_KEYWORDS = frozenset({"index_name", "consistent_read", "filter_expression"})


Table.query = query_one_partition  # type: ignore[method-assign]


def _copy_dynamo_type(self: DynamoType, memo: dict[int, Any]) -> DynamoType:
    copied = DynamoType.__new__(DynamoType)
    copied.type = self.type
    copied.value = copy.deepcopy(self.value, memo)  # lists and maps hold DynamoTypes: copied the same way
    return copied


def _copy_item(self: Item, memo: dict[int, Any]) -> Item:
    if getattr(_query_results, "uncopied", False):  # a query's result, read only to be serialized
        return self
    copied = Item.__new__(Item)
    copied.hash_key = copy.deepcopy(self.hash_key, memo)
    copied.range_key = copy.deepcopy(self.range_key, memo)
    copied.attrs = LimitedSizeDict()
    dict.update(copied.attrs, {name: copy.deepcopy(value, memo) for name, value in self.attrs.items()})
    return copied


DynamoType.__deepcopy__ = _copy_dynamo_type  # type: ignore[attr-defined]
Item.__deepcopy__ = _copy_item  # type: ignore[attr-defined]


class SharedStrings:
    """Equal strings kept once: the first one seen stands for the others. Bounded: when ``limit`` distinct strings
    are known the table starts afresh (strings already swapped stay shared; repeated ones come back at once)."""

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = limit
        self._known: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        known = self._known.get(text)
        if known is not None:
            return known
        if len(self._known) >= self.limit:
            self._known = {}
        self._known[text] = text
        return text

    def share_value(self, value: DynamoType) -> None:
        value.type = self(value.type)
        inner = value.value
        if isinstance(inner, str):
            value.value = self(inner)
        elif isinstance(inner, dict):  # a map: its keys, and its values in turn
            for nested in inner.values():
                self.share_value(nested)
            value.value = {self(name): nested for name, nested in inner.items()}
        elif isinstance(inner, list):  # a list of values, or a string set
            for index, nested in enumerate(inner):
                if isinstance(nested, DynamoType):
                    self.share_value(nested)
                elif isinstance(nested, str):
                    inner[index] = self(nested)

    def share_item(self, item: Item | None) -> None:
        if item is None:
            return
        for key in (item.hash_key, item.range_key):
            if key is not None:
                self.share_value(key)
        pairs = []
        for name, value in item.attrs.items():
            self.share_value(value)
            pairs.append((self(name), value))
        dict.clear(item.attrs)  # the same dict, its keys swapped (dict's own methods: no size check per key)
        dict.update(item.attrs, pairs)


_shared_strings = SharedStrings()
_moto_put_item = Table.put_item
_moto_update_item = DynamoDBBackend.update_item


@functools.wraps(_moto_put_item)
def _put_item_sharing_strings(table: Table, *args: Any, **kwargs: Any) -> Item:
    item = _moto_put_item(table, *args, **kwargs)
    _shared_strings.share_item(item)
    return item


@functools.wraps(_moto_update_item)
def _update_item_sharing_strings(backend: DynamoDBBackend, *args: Any, **kwargs: Any) -> Item:
    item = _moto_update_item(backend, *args, **kwargs)
    _shared_strings.share_item(item)
    return item


Table.put_item = _put_item_sharing_strings  # type: ignore[method-assign]
DynamoDBBackend.update_item = _update_item_sharing_strings  # type: ignore[method-assign]


_moto_make_update_expression = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]
_moto_validator_init = Validator.__init__
PARSED_EXPRESSIONS = 1024  # distinct update expressions kept; past this the table starts afresh
PICKLED = "_photopipe_pickled"  # on a tree made from the table: its pickle, for the validators' copies
_parsed: dict[str, bytes] = {}


def _make_update_expression(cls: type, expression: str) -> Any:
    """``UpdateExpressionParser.make``, parsing each distinct expression once (one that does not parse raises, and
    is not kept)."""
    data = _parsed.get(expression)
    if data is None:
        data = pickle.dumps(_moto_make_update_expression(cls, expression), protocol=pickle.HIGHEST_PROTOCOL)
        if len(_parsed) >= PARSED_EXPRESSIONS:
            _parsed.clear()
        _parsed[expression] = data
    tree = pickle.loads(data)  # noqa: S301 - pickled just above, in this process
    setattr(tree, PICKLED, data)
    return tree


def _validator_init(self: Validator, expression: Any, *args: Any, **kwargs: Any) -> None:
    """``Validator.__init__``, whose copy of the tree comes from its pickle (moto deep-copies it)."""
    data = getattr(expression, PICKLED, None)
    if data is None:
        _moto_validator_init(self, expression, *args, **kwargs)
        return
    _moto_validator_init(self, None, *args, **kwargs)  # its deepcopy of None costs nothing
    self.node_to_validate = pickle.loads(data)  # noqa: S301


UpdateExpressionParser.make = classmethod(_make_update_expression)  # type: ignore[method-assign, assignment]
Validator.__init__ = _validator_init  # type: ignore[method-assign]


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
