"""How many photos are in the pipeline at once: a counting semaphore in one DynamoDB item.

The item ``INFLIGHT`` / ``SLOTS`` (in the media table) holds ``held``, the number of slots taken, and ``runs``, a map
from each holding execution's name to when it took its slot (epoch seconds). A slot is taken by ingest (or a retry)
before it starts an execution and given back by the step that writes the photo's final status (``steps``); a run
that closes without such a step (stopped, timed out) gives it back on Step Functions' status-change event
(STANDARD), and the sweeper gives back the slot of a holder whose execution is not running (a lost event, an ingest
that died between taking the slot and starting the run; an EXPRESS run, which cannot be asked about, once it must
have ended). Taking and giving back are each one conditional update of that item — the counter moves together with the
run's entry, only if the entry is absent (take, and only below the limit) or present (give back) — so repeats are
harmless and the counter always equals the number of holders: a slot cannot leak or be freed twice.

One item rather than an item per holder: a transaction over a counter and a holder item would do the same, but
moto (LocalStack's DynamoDB here) copies the whole table for every transaction, which grew with the library. The
item's size is about 50 bytes per holder (10 KB at 200 in flight), which each write is billed for on AWS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from photopipe_core import aws
from photopipe_core.settings import get_settings

KEY = {"pk": "INFLIGHT", "sk": "SLOTS"}
logger = Logger(child=True)


class Take(StrEnum):
    ACQUIRED = "acquired"  # a new slot for this run
    HELD = "held"  # this run already holds one (a repeated event)
    FULL = "full"  # every slot is taken; try again later


@dataclass(frozen=True)
class Holder:
    run: str
    acquired_at: float


def _failed_condition(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class InFlightSlots:
    """At most ``limit`` runs hold a slot at once."""

    def __init__(self, table: Any, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the in-flight limit must be at least 1 (got {limit})")
        self._table = table
        self.limit = limit

    def try_acquire(self, run: str, now: float) -> Take:
        update = {
            "Key": KEY,
            "UpdateExpression": "SET runs.#run = :now ADD held :one",
            "ConditionExpression": "attribute_not_exists(runs.#run) AND held < :limit",
            "ExpressionAttributeNames": {"#run": run},
            "ExpressionAttributeValues": {":now": Decimal(str(round(now, 3))), ":one": 1, ":limit": self.limit},
        }
        for _ in range(2):
            try:
                self._table.update_item(**update)
            except ClientError as error:
                if error.response["Error"]["Code"] not in {"ConditionalCheckFailedException", "ValidationException"}:
                    raise
            else:
                return Take.ACQUIRED
            item = self._item()
            if item:
                return Take.HELD if run in item.get("runs", {}) else Take.FULL
            self._create()  # the first slot ever taken: the item (and the map the update writes into) is new
        return Take.FULL

    def release(self, run: str) -> bool:
        """Give back the run's slot; False when it held none (already given back, or never taken)."""
        try:
            self._table.update_item(
                Key=KEY,
                UpdateExpression="REMOVE runs.#run ADD held :minus_one",
                ConditionExpression="attribute_exists(runs.#run)",
                ExpressionAttributeNames={"#run": run},
                ExpressionAttributeValues={":minus_one": -1},
            )
        except ClientError as error:
            if _failed_condition(error):
                return False
            raise
        return True

    def give_back(self, run: str) -> bool:
        """``release`` by a step that has done its work: a failure to give the slot back is logged, not raised, so
        it never fails the step (the sweeper, or a STANDARD run's status-change event, gives it back)."""
        try:
            return self.release(run)
        except (ClientError, BotoCoreError) as error:
            logger.warning("in-flight slot not given back", extra={"run": run, "error": str(error)})
            return False

    def held(self) -> int:
        return int(self._item().get("held", 0))

    def holders(self) -> list[Holder]:
        runs: dict[str, Any] = self._item().get("runs", {})
        return sorted((Holder(run, float(at)) for run, at in runs.items()), key=lambda h: h.acquired_at)

    def _item(self) -> dict[str, Any]:
        return dict(self._table.get_item(Key=KEY, ConsistentRead=True).get("Item") or {})

    def _create(self) -> None:
        try:
            self._table.put_item(Item={**KEY, "held": 0, "runs": {}}, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if not _failed_condition(error):  # created meanwhile by another caller
                raise


def sweep(slots: InFlightSlots, is_running: Callable[[str], bool], now: float, grace_seconds: float) -> list[str]:
    """Give back the slots of holders older than ``grace_seconds`` whose execution is not running; return them.

    ``is_running(run)`` asks Step Functions. The grace covers the moment between taking a slot and starting the run.
    """
    freed = []
    for holder in slots.holders():
        if now - holder.acquired_at >= grace_seconds and not is_running(holder.run) and slots.release(holder.run):
            freed.append(holder.run)
    return freed


@lru_cache(maxsize=1)
def in_flight_slots() -> InFlightSlots:
    settings = get_settings()
    return InFlightSlots(aws.resource("dynamodb").Table(settings.require("media_table")), settings.max_in_flight)
