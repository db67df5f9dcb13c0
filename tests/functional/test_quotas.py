"""Per-owner limits in DynamoDB (moto): uploads and bytes per UTC day, uploads open at once — 429 with Retry-After
through the API, a new day's window admits again, and concurrent requests never take more than the limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from chalice.test import Client

from photopipe_core.models import Status
from photopipe_core.owners import Owners
from photopipe_core.quotas import PENDING_OPEN_SECONDS, OverQuota, OwnerLimits, Quotas
from tests.functional.conftest import ApiKeys, KeyedClient, load_function

DAY = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def table() -> Any:
    return boto3.resource("dynamodb").Table("media-table")


@pytest.fixture
def clock() -> Clock:
    return Clock(DAY)


@pytest.fixture
def owner_quotas(stack: dict[str, Any], clock: Clock) -> Quotas:
    Owners(table()).register_key("alice", "k1")
    return Quotas(table(), OwnerLimits(daily_uploads=3, daily_bytes=1000, open_uploads=0), clock)


def test_the_daily_upload_limit_refuses_until_the_next_utc_day(owner_quotas: Quotas, clock: Clock) -> None:
    for n in range(3):
        owner_quotas.admit("alice", f"M{n}", 10)
    with pytest.raises(OverQuota) as refused:
        owner_quotas.admit("alice", "M3", 10)
    assert refused.value.limit == "daily_uploads"
    assert refused.value.retry_after == 2 * 3600 + 1  # 22:00 → 00:00 UTC
    assert owner_quotas.usage("alice")["uploads_today"] == 3  # the refused one is not counted
    clock.now += timedelta(hours=2, seconds=1)  # the next day
    owner_quotas.admit("alice", "M3", 10)
    assert owner_quotas.usage("alice")["uploads_today"] == 1


def test_the_daily_byte_limit_counts_declared_sizes(owner_quotas: Quotas) -> None:
    owner_quotas.admit("alice", "M0", 600)
    with pytest.raises(OverQuota, match="1000 bytes") as refused:
        owner_quotas.admit("alice", "M1", 401)
    assert refused.value.limit == "daily_bytes"
    owner_quotas.admit("alice", "M1", 400)  # exactly the allowance
    with pytest.raises(OverQuota, match="more than this key's daily allowance"):
        owner_quotas.admit("alice", "M2", 5000)


def test_an_owners_own_limits_override_the_stacks(owner_quotas: Quotas) -> None:
    Owners(table()).set_limits("alice", {"daily_uploads": 0, "daily_bytes": 0})  # 0: no limit
    for n in range(10):
        owner_quotas.admit("alice", f"M{n}", 900)
    assert owner_quotas.limits_of("bob") == OwnerLimits(3, 1000, 0)  # no record: the stack's


def media(media_id: str, status: Status, created_at: datetime) -> None:
    stamp = created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    table().put_item(
        Item={
            "pk": f"MEDIA#{media_id}",
            "sk": "META",
            "media_id": media_id,
            "status": status.value,
            "source": {"bucket": "media", "key": "k", "size": 1},
            "created_at": stamp,
            "updated_at": stamp,
        }
    )


def test_open_uploads_are_counted_until_they_finish_or_are_abandoned(stack: dict[str, Any], clock: Clock) -> None:
    quotas = Quotas(table(), OwnerLimits(open_uploads=2), clock)
    for media_id in ("A", "B"):
        quotas.admit("alice", media_id, 1)
        media(media_id, Status.PENDING_UPLOAD, clock.now)
    with pytest.raises(OverQuota) as refused:
        quotas.admit("alice", "C", 1)
    assert refused.value.limit == "open_uploads" and refused.value.retry_after > 0
    media("A", Status.READY, clock.now)  # one finished: its place is free
    quotas.admit("alice", "C", 1)
    media("C", Status.PROCESSING, clock.now)
    with pytest.raises(OverQuota):
        quotas.admit("alice", "D", 1)
    clock.now += timedelta(seconds=PENDING_OPEN_SECONDS + 1)  # B never got its bytes: it stops counting
    quotas.admit("alice", "D", 1)
    assert quotas.usage("alice")["open_uploads"] == 2  # C (processing) and D


@pytest.fixture
def client(stack: dict[str, Any], api_keys: ApiKeys, monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyedClient]:
    monkeypatch.setenv("OWNER_DAILY_UPLOADS", "2")
    with Client(load_function("api", "app").app) as test_client:
        yield KeyedClient(test_client, api_keys.make("alice"))


def create(client: KeyedClient, size: int, idempotency_key: str | None = None) -> Any:
    body = json.dumps({"filename": "a.jpg", "content_type": "image/jpeg", "size": size})
    headers = {"Content-Type": "application/json"} | ({"Idempotency-Key": idempotency_key} if idempotency_key else {})
    return client.http.post("/v1/uploads", body=body, headers=headers)


def test_the_api_answers_429_with_retry_after_and_a_replay_is_not_counted(client: KeyedClient) -> None:
    assert create(client, 100, "same").status_code == 201
    assert create(client, 100, "same").status_code == 201  # the same upload again: not a new one
    assert create(client, 100).status_code == 201
    refused = create(client, 100)
    assert refused.status_code == 429
    assert refused.json_body["error"]["code"] == "over_quota"
    assert refused.json_body["error"]["limit"] == "daily_uploads"
    seconds = int(refused.headers["Retry-After"])
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    assert abs(seconds - (midnight - now).total_seconds()) < 5
