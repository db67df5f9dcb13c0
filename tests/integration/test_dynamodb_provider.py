"""DynamoDB served by moto inside LocalStack (PROVIDER_OVERRIDE_DYNAMODB=moto): nothing is downloaded."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def ddb(aws_client: Callable[[str], Any]) -> Any:
    return aws_client("dynamodb")


@pytest.fixture
def table(ddb: Any) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "status", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-status",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "pk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    yield name
    ddb.delete_table(TableName=name)


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
