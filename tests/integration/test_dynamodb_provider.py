"""DynamoDB served by moto inside LocalStack (PROVIDER_OVERRIDE_DYNAMODB=moto): nothing is downloaded."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from photopipe.stack import Stack
from photopipe_core.models import OPERATOR
from photopipe_core.repository import MediaRepository


def item(pk: str, status: str = "NEW") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "META"}, "status": {"S": status}}


def test_conditional_put_fails_when_the_item_exists(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item=item("a"), ConditionExpression="attribute_not_exists(pk)")
    with pytest.raises(ClientError) as error:
        ddb.put_item(TableName=table, Item=item("a", "OTHER"), ConditionExpression="attribute_not_exists(pk)")
    assert error.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    stored = ddb.get_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"S": "META"}})["Item"]
    assert stored["status"] == {"S": "NEW"}


def test_transaction_is_all_or_nothing(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item=item("taken"))
    with pytest.raises(ClientError) as error:
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": item("fresh")}},
                {"Put": {"TableName": table, "Item": item("taken"), "ConditionExpression": "attribute_not_exists(pk)"}},
            ]
        )
    assert error.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "fresh"}, "sk": {"S": "META"}})
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": table, "Item": item("fresh")}},
            {
                "Update": {
                    "TableName": table,
                    "Key": {"pk": {"S": "taken"}, "sk": {"S": "META"}},
                    "UpdateExpression": "SET #s = :s",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":s": {"S": "DONE"}},
                }
            },
        ]
    )
    assert "Item" in ddb.get_item(TableName=table, Key={"pk": {"S": "fresh"}, "sk": {"S": "META"}})


def test_gsi_query(ddb: Any, table: str) -> None:
    for pk, status in [("a", "READY"), ("b", "FAILED"), ("c", "READY")]:
        ddb.put_item(TableName=table, Item=item(pk, status))
    result = ddb.query(
        TableName=table,
        IndexName="by-status",
        KeyConditionExpression="#s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "READY"}},
    )
    assert sorted(i["pk"]["S"] for i in result["Items"]) == ["a", "c"]


def test_query_reads_one_partition_in_key_order_with_paging_and_filters(ddb: Any, table: str) -> None:
    for pk, count in (("a", 7), ("b", 3), ("c", 1)):
        for n in range(count):
            ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": f"H#{n}"}, "n": {"N": str(n)}})

    def query(values: dict[str, Any] | None = None, **kwargs: Any) -> list[str]:
        keys, start = [], {}
        while True:
            page = ddb.query(
                TableName=table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": "a"}, **(values or {})},
                Limit=3,
                **start,
                **kwargs,
            )
            keys += [i["sk"]["S"] for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return keys
            start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}

    assert query() == [f"H#{n}" for n in range(7)]
    assert query(ScanIndexForward=False) == [f"H#{n}" for n in reversed(range(7))]
    assert query(FilterExpression="n >= :min", values={":min": {"N": "4"}}) == ["H#4", "H#5", "H#6"]
    ranged = ddb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
        ExpressionAttributeValues={":pk": {"S": "b"}, ":p": {"S": "H#"}},
    )
    assert [i["sk"]["S"] for i in ranged["Items"]] == ["H#0", "H#1", "H#2"]
    empty = ddb.query(TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "z"}})
    assert empty["Items"] == [] and empty["Count"] == 0


def test_a_limited_query_of_a_large_partition_pages_through_it_in_key_order(ddb: Any, table: str) -> None:
    """Only the first Limit + 1 items of a partition are handed to moto for a first page (OnePartition): the pages
    still cover the partition exactly, in string order of the sort key, both ways, with LastEvaluatedKey between."""
    keys = [f"M{n}" for n in range(250)]  # unpadded: string order is not numeric order
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: ddb.put_item(TableName=table, Item={"pk": {"S": "big"}, "sk": {"S": k}}), keys))
    for forward in (True, False):
        seen, start, pages = [], {}, 0
        while True:
            page = ddb.query(
                TableName=table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": "big"}},
                ScanIndexForward=forward,
                Limit=100,
                **start,
            )
            seen += [i["sk"]["S"] for i in page["Items"]]
            pages += 1
            if "LastEvaluatedKey" not in page:
                break
            assert len(page["Items"]) == 100
            start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
        assert seen == sorted(keys, reverse=not forward) and pages == 3


def test_limited_queries_follow_a_partition_whose_items_come_and_go(ddb: Any, table: str) -> None:
    """A limited query keeps the partition's keys in order from then on (``Partition``): items put, deleted, put
    again and batch-written between queries are where they belong in the next one, both ways."""
    rng = random.Random(20)
    stored: set[str] = set()

    def first(count: int, forward: bool) -> list[str]:
        page = ddb.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "churn"}},
            ScanIndexForward=forward,
            Limit=count,
        )
        return [i["sk"]["S"] for i in page["Items"]]

    def put(key: str) -> None:
        ddb.put_item(TableName=table, Item={"pk": {"S": "churn"}, "sk": {"S": key}, "v": {"N": "1"}})
        stored.add(key)

    for _ in range(120):
        put(f"K{rng.randrange(1000):03d}")
    for _ in range(150):
        choice = rng.random()
        key = f"K{rng.randrange(1000):03d}" if rng.random() < 0.8 else rng.choice(["A", "Z", "K", "K999z"])
        if choice < 0.4:
            put(key)
        elif choice < 0.7:
            doomed = rng.choice(sorted(stored)[:3] + sorted(stored)[-3:]) if rng.random() < 0.5 else key
            ddb.delete_item(TableName=table, Key={"pk": {"S": "churn"}, "sk": {"S": doomed}})
            stored.discard(doomed)
        elif choice < 0.8:
            batch = [f"K{rng.randrange(1000):03d}" for _ in range(5)]
            ddb.batch_write_item(
                RequestItems={table: [{"PutRequest": {"Item": {"pk": {"S": "churn"}, "sk": {"S": k}}}} for k in batch]}
            )
            stored.update(batch)
        else:
            count = rng.randrange(1, 12)
            assert first(count, True) == sorted(stored)[:count]
            assert first(count, False) == sorted(stored, reverse=True)[:count]
    assert first(len(stored) + 5, False) == sorted(stored, reverse=True)


def test_reads_answered_with_motos_own_json_carry_every_attribute_type_and_error(ddb: Any, table: str) -> None:
    """Query, Scan, GetItem and BatchGetItem are answered with moto's JSON as it is (no parse and serialize again):
    what a client reads back is what was written, with the same errors and consumed capacity."""
    stored = {
        "pk": {"S": "types"},
        "sk": {"S": "META"},
        "status": {"S": "READY"},
        "n": {"N": "12.5"},
        "b": {"B": b"\x00\xffbytes"},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2"]},
        "bs": {"BS": [b"\x01", b"\x02"]},
        "m": {"M": {"nested": {"L": [{"S": "x"}, {"N": "3"}, {"BOOL": True}, {"NULL": True}]}}},
        "text": {"S": 'unicode ✓ "quoted" \n'},
    }
    ddb.put_item(TableName=table, Item=stored)
    key = {"pk": stored["pk"], "sk": stored["sk"]}

    def same(read: dict[str, Any]) -> None:
        assert {name: value for name, value in read.items() if name not in {"ss", "ns", "bs"}} == {
            name: value for name, value in stored.items() if name not in {"ss", "ns", "bs"}
        }
        assert sorted(read["ss"]["SS"]) == ["a", "b"]
        assert sorted(read["ns"]["NS"]) == ["1", "2"]
        assert sorted(read["bs"]["BS"]) == [b"\x01", b"\x02"]

    got = ddb.get_item(TableName=table, Key=key, ReturnConsumedCapacity="TOTAL")
    same(got["Item"])
    assert got["ConsumedCapacity"]["TableName"] == table
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "absent"}, "sk": {"S": "META"}})
    # (moto's projection of an item that holds a binary attribute fails: photopipe stores none)
    ddb.put_item(TableName=table, Item={**item("projected"), "n": stored["n"], "m": stored["m"]})
    projected = ddb.get_item(
        TableName=table,
        Key={"pk": {"S": "projected"}, "sk": {"S": "META"}},
        ProjectionExpression="n, m.nested[2]",
    )["Item"]
    assert projected == {"n": {"N": "12.5"}, "m": {"M": {"nested": {"L": [{"BOOL": True}]}}}}
    queried = ddb.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": key["pk"]})
    assert queried["Count"] == 1
    same(queried["Items"][0])
    batch = ddb.batch_get_item(RequestItems={table: {"Keys": [key, {"pk": {"S": "absent"}, "sk": {"S": "META"}}]}})
    assert len(batch["Responses"][table]) == 1
    same(batch["Responses"][table][0])
    assert batch["UnprocessedKeys"] == {}
    assert ddb.scan(TableName=table, Select="COUNT")["Count"] == 2  # (moto returns the items too)
    with pytest.raises(ClientError) as missing:
        ddb.query(
            TableName="absent-table", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": key["pk"]}
        )
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as invalid:
        ddb.get_item(TableName=table, Key={"pk": {"S": "types"}})  # half a key
    assert invalid.value.response["Error"]["Code"] == "ValidationException"


def test_an_update_expression_used_again_gives_each_item_its_own_result(ddb: Any, table: str) -> None:
    """Update expressions are parsed once and their tree copied from a pickle: the same expression on new and
    existing items, with other values, gives what moto's own parse and copy gave; one that does not parse is
    refused every time."""
    expression = (
        "SET #s = :s, n = if_not_exists(n, :zero) + :one, l = list_append(if_not_exists(l, :empty), :l) "
        "REMOVE gone ADD version :one"
    )
    results = []
    for round_ in range(4):
        results.append(
            ddb.update_item(
                TableName=table,
                Key={"pk": {"S": f"u{round_ % 2}"}, "sk": {"S": "META"}},
                UpdateExpression=expression,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":s": {"S": f"S{round_}"},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":empty": {"L": []},
                    ":l": {"L": [{"S": f"x{round_}"}]},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        )
    assert [r["status"]["S"] for r in results] == ["S0", "S1", "S2", "S3"]
    assert [r["version"]["N"] for r in results] == ["1", "1", "2", "2"]
    assert results[3]["l"]["L"] == [{"S": "x1"}, {"S": "x3"}]
    assert results[2]["n"] == {"N": "2"}
    for _ in range(2):
        with pytest.raises(ClientError) as refused:
            ddb.update_item(TableName=table, Key={"pk": {"S": "u0"}, "sk": {"S": "META"}}, UpdateExpression="SET = x")
        assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_step_functions_dynamodb_put_item_task(aws_client: Callable[[str], Any], ddb: Any, table: str) -> None:
    sfn = aws_client("stepfunctions")
    definition = {
        "StartAt": "Put",
        "States": {
            "Put": {
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:putItem",
                "Parameters": {
                    "TableName": table,
                    "Item": {"pk": {"S.$": "$.id"}, "sk": {"S": "META"}, "status": {"S": "FROM_SFN"}},
                },
                "End": True,
            }
        },
    }
    arn = sfn.create_state_machine(
        name=f"put-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::000000000000:role/sfn",
    )["stateMachineArn"]
    try:
        execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"id": "from-sfn"}))["executionArn"]
        deadline = time.monotonic() + 30
        status = "RUNNING"
        while status == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = sfn.describe_execution(executionArn=execution)["status"]
        assert status == "SUCCEEDED"
        stored = ddb.get_item(TableName=table, Key={"pk": {"S": "from-sfn"}, "sk": {"S": "META"}})["Item"]
        assert stored["status"] == {"S": "FROM_SFN"}
    finally:
        sfn.delete_state_machine(stateMachineArn=arn)


def test_concurrent_conditional_writes_never_both_pass(ddb: Any, table: str) -> None:
    """Compare-and-swap increments from many threads: a lost update would leave the counter short."""
    ddb.put_item(TableName=table, Item={"pk": {"S": "counter"}, "sk": {"S": "n"}, "n": {"N": "0"}})
    barrier = threading.Barrier(12)
    lost: list[int] = []

    def bump(times: int) -> None:
        barrier.wait()
        for _ in range(times):
            while True:
                item = ddb.get_item(
                    TableName=table, Key={"pk": {"S": "counter"}, "sk": {"S": "n"}}, ConsistentRead=True
                )
                old = int(item["Item"]["n"]["N"])
                try:
                    ddb.update_item(
                        TableName=table,
                        Key={"pk": {"S": "counter"}, "sk": {"S": "n"}},
                        UpdateExpression="SET n = :new",
                        ConditionExpression="n = :old",
                        ExpressionAttributeValues={":new": {"N": str(old + 1)}, ":old": {"N": str(old)}},
                    )
                    break
                except ClientError as error:
                    if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                        lost.append(1)
                        raise

    threads = [threading.Thread(target=bump, args=(10,)) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = ddb.get_item(TableName=table, Key={"pk": {"S": "counter"}, "sk": {"S": "n"}}, ConsistentRead=True)
    assert not lost
    assert int(final["Item"]["n"]["N"]) == 120


def test_racing_claims_of_the_same_bytes_have_one_winner(stack: Stack) -> None:
    table = boto3.resource(
        "dynamodb",
        endpoint_url=stack.settings.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).Table(stack.outputs.MediaTableName)
    repo = MediaRepository(table)
    sha256 = uuid.uuid4().hex * 2
    barrier = threading.Barrier(8)
    owners: dict[str, str] = {}

    def claim(media_id: str) -> None:
        barrier.wait()
        owners[media_id] = repo.claim_sha256(OPERATOR, sha256, media_id)

    threads = [threading.Thread(target=claim, args=(f"RACE{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = {media_id for media_id, owner in owners.items() if owner == media_id}
    assert len(winners) == 1
    assert set(owners.values()) == winners
