"""The embedded runtime counts the requests it answers, for the bill `photopipe bench` reports.

``GET /_photopipe/requests`` answers, since LocalStack started:

- ``requests``: answered AWS requests by ``service.Operation``, the clients' apart from the ones the emulator made
  for itself on behalf of a service (``internal``: S3's notifications to EventBridge, the event source mappings'
  polls of SQS, Step Functions' task integrations), because AWS bills some of those and not others;
- ``api``: requests to the stack's REST APIs (``/_aws/execute-api/…``), which AWS bills per request;
- ``dynamodb_units``: read and write request units as DynamoDB on-demand bills them, from the sizes of the items read
  and written (moto's item size): a write takes a unit per KB of the item (after the write; the item before it for a
  delete), a transactional one twice; a read a unit per 4 KB of what it read in all (a Query's or Scan's items
  together), half of that when eventually consistent, twice when transactional. A conditional write that failed
  takes one unit, a read that found nothing half of one;
- ``dynamodb_tables``: the same requests and units by table (``{table: {"requests": {operation: n}, "units": {...}}}``),
  so a reader can tell one stack's or one test's table from the others sharing the runtime.

A reader takes the counts before and after a run and subtracts. Counting is a response handler; no request waits
for anything but a lock held for a few dictionary updates.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from typing import Any

from localstack.aws import handlers
from localstack.http import Request, Response
from localstack.runtime import hooks
from localstack.services.edge import ROUTER
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType

from photopipe_infra.dynamodb_provider import BACKEND_LOCK

PATH = "/_photopipe/requests"
API_PREFIX = "/_aws/execute-api/"
WRITE_UNIT, READ_UNIT = 1024, 4096
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})


class RequestCounts:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.internal: Counter[str] = Counter()
        self.api: Counter[str] = Counter()
        self.units: dict[str, float] = {}
        self.tables: dict[str, dict[str, Any]] = {}

    def on_response(self, _chain: Any, context: Any, response: Response) -> None:
        if context.service is None or context.operation is None:
            path = context.request.path if context.request is not None else ""
            if path.startswith(API_PREFIX):
                with self._lock:
                    self.api["requests"] += 1
            return
        service, operation = context.service.service_name, context.operation.name
        name = f"{service}.{operation}"
        tables = dynamodb_tables(context.service_request or {}) if service == "dynamodb" else []
        units = dynamodb_units(context, response) if tables else None
        with self._lock:
            (self.internal if context.is_internal_call else self.requests)[name] += 1
            for table in tables:
                counts = self.tables.setdefault(table, {"requests": Counter(), "units": {}})
                counts["requests"][operation] += 1
            if units is not None:
                kind, by_table = units
                self.units[kind] = self.units.get(kind, 0.0) + sum(by_table.values())
                for table, value in by_table.items():
                    table_units = self.tables.setdefault(table, {"requests": Counter(), "units": {}})["units"]
                    table_units[kind] = table_units.get(kind, 0.0) + value

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "internal": dict(self.internal),
                "api": dict(self.api),
                "dynamodb_units": _rounded(self.units),
                "dynamodb_tables": {
                    table: {"requests": dict(counts["requests"]), "units": _rounded(counts["units"])}
                    for table, counts in self.tables.items()
                },
            }


def _rounded(units: dict[str, float]) -> dict[str, float]:
    return {kind: round(value, 1) for kind, value in units.items()}


def dynamodb_tables(request: dict[str, Any]) -> list[str]:
    """The tables a DynamoDB request names: its TableName, a batch's RequestItems, a transaction's items."""
    if request.get("TableName"):
        return [str(request["TableName"])]
    if request.get("RequestItems"):
        return sorted(request["RequestItems"])
    named = {
        str(part["TableName"])
        for transact in request.get("TransactItems") or []
        for part in transact.values()
        if isinstance(part, dict) and part.get("TableName")
    }
    return sorted(named)


def item_size(attributes: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it (names and values), from its JSON attribute map."""
    return sum(len(name.encode()) + DynamoType(value).size() for name, value in attributes.items())


def read_units(sizes: list[int], consistent: bool, per_item: bool = False, transactional: bool = False) -> float:
    """Read units for items of these sizes: per 4 KB of them all (a query) or of each (a batch), at least one
    read's worth."""
    if per_item:
        blocks = sum(max(1, math.ceil(size / READ_UNIT)) for size in sizes) or 1
    else:
        blocks = max(1, math.ceil(sum(sizes) / READ_UNIT))
    factor = 2.0 if transactional else 1.0 if consistent else 0.5
    return blocks * factor


def dynamodb_units(context: Any, response: Response) -> tuple[str, dict[str, float]] | None:
    """("read" | "write", units by table) of an answered DynamoDB request; None for the table-level operations."""
    operation, request = context.operation.name, context.service_request or {}
    if operation in WRITES:
        table = str(request.get("TableName"))
        if response.status_code >= 400:  # noqa: PLR2004 - a failed condition still takes a unit
            return "write", {table: 1.0}
        return "write", {table: float(_write_blocks(context, table, request.get("Key") or request.get("Item")))}
    if operation == "BatchWriteItem":
        return "write", {
            table: float(sum(_put_or_delete_blocks(w) for w in writes))
            for table, writes in (request.get("RequestItems") or {}).items()
        }
    if operation == "TransactWriteItems":
        spent: dict[str, float] = {}
        for transact in request.get("TransactItems") or []:
            table, blocks = _transact_blocks(context, transact)
            spent[table] = spent.get(table, 0.0) + 2.0 * blocks
        return "write", spent
    if operation not in {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}:
        return None
    if response.status_code >= 400:  # noqa: PLR2004
        return None
    body = json.loads(response.get_data() or b"{}")
    consistent = bool(request.get("ConsistentRead"))
    if operation == "GetItem":
        sizes = [item_size(body["Item"])] if "Item" in body else [0]
        return "read", {str(request.get("TableName")): read_units(sizes, consistent)}
    if operation == "BatchGetItem":
        responses = body.get("Responses") or {}
        return "read", {
            table: read_units(
                [item_size(item) for item in responses.get(table) or []],
                bool(asked.get("ConsistentRead")),
                per_item=True,
            )
            for table, asked in (request.get("RequestItems") or {}).items()
        }
    if operation == "TransactGetItems":
        spent = {}
        for asked, answered in zip(request.get("TransactItems") or [], body.get("Responses") or [], strict=False):
            table = str(asked["Get"]["TableName"])
            size = [item_size(answered["Item"])] if "Item" in answered else []
            spent[table] = spent.get(table, 0.0) + read_units(size, True, per_item=True, transactional=True)
        return "read", spent
    items = [item_size(item) for item in body.get("Items") or []]
    return "read", {str(request.get("TableName")): read_units(items, consistent)}


def _blocks(size: int) -> int:
    return max(1, math.ceil(size / WRITE_UNIT))


def _put_or_delete_blocks(write: dict[str, Any]) -> int:
    if "PutRequest" in write:
        return _blocks(item_size(write["PutRequest"]["Item"]))
    return 1


def _transact_blocks(context: Any, transact: dict[str, Any]) -> tuple[str, int]:
    """(table, write blocks) of one item of a transaction."""
    if "Put" in transact:
        return str(transact["Put"]["TableName"]), _blocks(item_size(transact["Put"]["Item"]))
    for kind in ("Update", "Delete", "ConditionCheck"):
        if kind in transact:
            table = transact[kind].get("TableName")
            return str(table), _write_blocks(context, table, transact[kind].get("Key"))
    return "", 1


def _write_blocks(context: Any, table_name: str | None, key: dict[str, Any] | None) -> int:
    """Write units of the item at ``key`` as it is now (after the write; 1 for one that is gone)."""
    if not table_name or not key:
        return 1
    with BACKEND_LOCK:
        try:
            table = dynamodb_backends[context.account_id][context.region].get_table(table_name)
            stored = table.get_item(*_key_values(table, key))
        except Exception:  # noqa: BLE001 - a table deleted meanwhile, a key moto refuses: the least a write takes
            return 1
        return _blocks(stored.size()) if stored is not None else 1


def _key_values(table: Any, key: dict[str, Any]) -> tuple[DynamoType, DynamoType | None]:
    hash_key = DynamoType(key[table.hash_key_attr])
    range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    return hash_key, range_key


COUNTS = RequestCounts()


def _answer(_request: Request) -> Response:
    return Response(json.dumps(COUNTS.as_dict()), 200, mimetype="application/json")


@hooks.on_infra_start()
def count_requests() -> None:
    handlers.run_custom_response_handlers.append(COUNTS.on_response)
    ROUTER.add(path=PATH, endpoint=_answer, methods=["GET"])
