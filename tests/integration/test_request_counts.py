"""The embedded runtime counts the requests it answers and DynamoDB's request units as DynamoDB bills them
(photopipe_infra.request_counts), for the bill `photopipe bench` reports."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from photopipe.bill import counts_between


def counts(endpoint: str) -> dict[str, Any]:
    response = requests.get(f"{endpoint}/_photopipe/requests", timeout=10)
    assert response.status_code == 200
    return dict(response.json())


def test_dynamodb_requests_are_counted_with_the_units_dynamodb_would_bill(
    endpoint: str, aws_client: Callable[[str], Any], table: str
) -> None:
    ddb = aws_client("dynamodb")
    body = "x" * 2500  # with its key and names: a 2.5 KB item, three write units, one 4 KB read block

    def item(sk: str) -> dict[str, Any]:
        return {"pk": {"S": "p"}, "sk": {"S": sk}, "body": {"S": body}}

    before = counts(endpoint)
    for sk in ("a", "b", "c"):
        ddb.put_item(TableName=table, Item=item(sk))  # 3 × 3 write units
    with pytest.raises(ClientError):
        ddb.put_item(TableName=table, Item=item("a"), ConditionExpression="attribute_not_exists(pk)")  # 1
    ddb.update_item(  # the item after the update: 2.5 KB → 3
        TableName=table,
        Key={"pk": {"S": "p"}, "sk": {"S": "a"}},
        UpdateExpression="SET flag = :f",
        ExpressionAttributeValues={":f": {"BOOL": True}},
    )
    ddb.get_item(TableName=table, Key={"pk": {"S": "p"}, "sk": {"S": "a"}})  # eventually consistent: 0.5
    ddb.get_item(TableName=table, Key={"pk": {"S": "p"}, "sk": {"S": "a"}}, ConsistentRead=True)  # 1
    ddb.get_item(TableName=table, Key={"pk": {"S": "p"}, "sk": {"S": "absent"}})  # found nothing: 0.5
    # three items, 7.5 KB together: two 4 KB blocks, eventually consistent: 1
    ddb.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}})
    ddb.batch_get_item(  # each item on its own: 2 × 0.5
        RequestItems={table: {"Keys": [{"pk": {"S": "p"}, "sk": {"S": sk}} for sk in ("b", "c")]}}
    )
    with pytest.raises(ClientError):  # another client's read meanwhile (a deployed stack's scheduled function)
        ddb.get_item(TableName=f"{table}-elsewhere", Key={"pk": {"S": "p"}, "sk": {"S": "a"}})
    spent = counts_between(before, counts(endpoint))

    # the runtime is shared (a deployed stack's scheduled functions read their own table meanwhile): this table's
    # counts are exact, the totals hold at least them
    assert spent["dynamodb_tables"][table] == {
        "requests": {"BatchGetItem": 1, "GetItem": 3, "PutItem": 4, "Query": 1, "UpdateItem": 1},
        "units": {"read": 4.0, "write": 13.0},
    }
    assert spent["requests"]["dynamodb.PutItem"] >= 4
    assert spent["dynamodb_units"]["write"] >= 13.0


def test_a_batch_and_a_transaction_over_two_tables_count_each_tables_units(
    endpoint: str, aws_client: Callable[[str], Any], table: str, ddb: Any
) -> None:
    other = f"test-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=other,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        small = {"pk": {"S": "p"}, "sk": {"S": "s"}, "body": {"S": "y" * 1500}}  # 2 write units, 1 read block
        before = counts(endpoint)
        ddb.batch_write_item(
            # keys apart: the emulator refuses a key twice in one batch, whatever its table
            RequestItems={
                table: [{"PutRequest": {"Item": small}}],
                other: [{"PutRequest": {"Item": {**small, "sk": {"S": "u"}}}}],
            }
        )
        ddb.transact_write_items(  # transactional: twice the item's units, each table its own
            TransactItems=[
                {"Put": {"TableName": table, "Item": {**small, "sk": {"S": "t"}}}},
                {"Put": {"TableName": other, "Item": {**small, "sk": {"S": "v"}}}},
            ]
        )
        ddb.batch_get_item(
            RequestItems={
                table: {"Keys": [{"pk": {"S": "p"}, "sk": {"S": "s"}}], "ConsistentRead": True},
                other: {"Keys": [{"pk": {"S": "p"}, "sk": {"S": "u"}}]},
            }
        )
        spent = counts_between(before, counts(endpoint))["dynamodb_tables"]
        assert spent[table] == {
            "requests": {"BatchGetItem": 1, "BatchWriteItem": 1, "TransactWriteItems": 1},
            "units": {"read": 1.0, "write": 6.0},
        }
        assert spent[other] == {
            "requests": {"BatchGetItem": 1, "BatchWriteItem": 1, "TransactWriteItems": 1},
            "units": {"read": 0.5, "write": 6.0},
        }
    finally:
        ddb.delete_table(TableName=other)


def test_s3_requests_are_counted_by_operation_and_the_answer_lists_every_service(
    endpoint: str, aws_client: Callable[[str], Any]
) -> None:
    s3 = aws_client("s3")
    bucket = f"counts-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    before = counts(endpoint)
    s3.put_object(Bucket=bucket, Key="one", Body=b"1")
    s3.put_object(Bucket=bucket, Key="two", Body=b"2")
    s3.get_object(Bucket=bucket, Key="one")
    s3.list_objects_v2(Bucket=bucket)
    spent = counts_between(before, counts(endpoint))
    s3_requests = {name: n for name, n in spent["requests"].items() if name.startswith("s3.")}
    assert s3_requests == {"s3.GetObject": 1, "s3.ListObjectsV2": 1, "s3.PutObject": 2}
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "one"}, {"Key": "two"}]})
    s3.delete_bucket(Bucket=bucket)
