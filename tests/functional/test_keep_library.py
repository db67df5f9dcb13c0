"""A deploy that would have to delete the stack first refuses when the stack holds a library (moto's
CloudFormation, S3 and DynamoDB)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from photopipe_infra.deploy import DeployError, keep_library

TEMPLATE = {
    "Resources": {
        "Bucket": {"Type": "AWS::S3::Bucket"},
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            },
        },
    }
}


ENDPOINT: Any = None  # AWS's own endpoints, which moto answers


@pytest.fixture
def library() -> Iterator[dict[str, Any]]:
    """A stack of a bucket and a table, both empty."""
    with mock_aws():
        cfn = boto3.client("cloudformation")
        cfn.create_stack(StackName="lib", TemplateBody=json.dumps(TEMPLATE))
        resources = cfn.describe_stack_resources(StackName="lib")["StackResources"]
        yield {"cfn": cfn, **{r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}}


def test_an_empty_stack_may_be_deleted(library: dict[str, Any]) -> None:
    keep_library(library["cfn"], ENDPOINT, "lib", "test")


def test_objects_in_the_bucket_keep_the_stack(library: dict[str, Any]) -> None:
    boto3.client("s3").put_object(Bucket=library["Bucket"], Key="uploads/a.jpg", Body=b"x")
    with pytest.raises(DeployError, match=f"bucket {library['Bucket']}"):
        keep_library(library["cfn"], ENDPOINT, "lib", "test")


def test_items_in_the_table_keep_the_stack_before_any_photo(library: dict[str, Any]) -> None:
    # (an owner and their key, made before the first upload)
    boto3.client("dynamodb").put_item(TableName=library["Table"], Item={"pk": {"S": "OWNER#ana"}})
    with pytest.raises(DeployError, match=f"table {library['Table']}"):
        keep_library(library["cfn"], ENDPOINT, "lib", "test")
