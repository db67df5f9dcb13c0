"""One embedded LocalStack per test session, with the stack deployed; always stopped at the end.

It listens on its own port (PHOTOPIPE_TEST_PORT, default 4599) and keeps its files apart, so a stack a developer
runs on 4566 with `make up` is neither used nor disturbed.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from photopipe.apikeys import ENV_VAR, OPERATOR_LIMITS, ApiKeys
from photopipe.config import ClientSettings
from photopipe.stack import Stack
from photopipe.upload import ApiClient
from photopipe_core.keys import media_id_for_object
from photopipe_core.owners import OPERATOR
from photopipe_infra.deploy import building_meanwhile, cloudformation, deploy
from photopipe_infra.launcher import EmbeddedLocalStack
from photopipe_infra.paths import state_dir

TEST_PORT = int(os.environ.get("PHOTOPIPE_TEST_PORT", "4599"))
LAMBDA_ROLE = "arn:aws:iam::000000000000:role/lambda-test"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def localstack() -> Iterator[EmbeddedLocalStack]:
    # Every request logged: the page's test counts the parts S3 took in the request log.
    instance = EmbeddedLocalStack(port=TEST_PORT, folder=state_dir() / "test-localstack", request_log=True)
    instance.stop()  # one a killed session left running
    shutil.rmtree(instance.saved_dir, ignore_errors=True)  # every session starts from an empty stack
    try:
        with building_meanwhile(instance.endpoint) as built:  # the stack's `sam build`, if due, while it starts
            instance.start()
            built()
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def endpoint(localstack: EmbeddedLocalStack) -> str:
    return localstack.endpoint


@pytest.fixture(scope="session")
def aws_client(endpoint: str) -> Callable[[str], Any]:
    def make(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    return make


@pytest.fixture(scope="session")
def stack(endpoint: str) -> Stack:
    deploy(endpoint, "photopipe")
    return Stack(ClientSettings(endpoint_url=endpoint, stack_name="photopipe"))


@pytest.fixture(scope="session")
def api_keys(stack: Stack) -> ApiKeys:
    return ApiKeys(stack)


@pytest.fixture(scope="session")
def operator_key(api_keys: ApiKeys) -> str:
    """The key of the operator, who owns the drop-folder objects the tests drop, without limits (as `photopipe up`
    makes one)."""
    return api_keys.create(OPERATOR, OPERATOR_LIMITS).value


@pytest.fixture(autouse=True)
def _cli_config(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The CLI run by a test keeps its key file in a folder of the test session's, never the user's; a test of the
    stack gives it the operator's key (as PHOTOPIPE_API_KEY)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "config"))
    if "stack" in request.fixturenames:
        monkeypatch.setenv(ENV_VAR, request.getfixturevalue("operator_key"))


@pytest.fixture
def api(stack: Stack, operator_key: str) -> ApiClient:
    """The API as the operator calls it."""
    return ApiClient(stack.outputs.ApiUrl, operator_key)


@pytest.fixture(scope="session")
def function_name(stack: Stack, aws_client: Callable[[str], Any]) -> Callable[[str], str]:
    """The name a function of the stack (by its logical id) has in Lambda."""
    cfn = aws_client("cloudformation")

    def physical(logical: str) -> str:
        resource = cfn.describe_stack_resource(StackName=stack.settings.stack_name, LogicalResourceId=logical)
        return str(resource["StackResourceDetail"]["PhysicalResourceId"])

    return physical


@pytest.fixture
def throttled(aws_client: Callable[[str], Any]) -> Iterator[Callable[[str], None]]:
    """Set a function's reserved concurrency to 0 (all invokes throttled); always lifted after the test."""
    lam = aws_client("lambda")
    names: list[str] = []

    def throttle(name: str) -> None:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        names.append(name)

    yield throttle
    for name in names:
        lam.delete_function_concurrency(FunctionName=name)


def drop(
    stack: Stack,
    aws_client: Callable[[str], Any],
    body: bytes,
    name: str = "photo.jpg",
    content_type: str = "image/jpeg",
    folder: str = "it",
) -> str:
    """Put a photo in the drop folder (a fresh sub-folder each time); its media id."""
    bucket = stack.outputs.MediaBucketName
    key = f"drop/{folder}/{time.time_ns()}/{name}"
    put = aws_client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    return media_id_for_object(bucket, key, put["ETag"])


def zip_files(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture
def lambda_function(aws_client: Callable[[str], Any]) -> Iterator[Callable[..., str]]:
    """Factory: create a uniquely named Python function from source files; deleted after the test."""
    lam = aws_client("lambda")
    created: list[str] = []

    def create(
        files: dict[str, str],
        handler: str = "handler.handler",
        timeout: int = 10,
        layers: list[str] | None = None,
        environment: dict[str, str] | None = None,
    ) -> str:
        name = f"test-{uuid.uuid4().hex[:10]}"
        lam.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Handler=handler,
            Role=LAMBDA_ROLE,
            Timeout=timeout,
            Code={"ZipFile": zip_files(files)},
            Layers=layers or [],
            Environment={"Variables": environment or {}},
        )
        created.append(name)
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60})
        return name

    yield create
    for name in created:
        with contextlib.suppress(lam.exceptions.ResourceNotFoundException):  # a test may have deleted it
            lam.delete_function(FunctionName=name)


@pytest.fixture
def ddb(aws_client: Callable[[str], Any]) -> Any:
    return aws_client("dynamodb")


@pytest.fixture
def table(ddb: Any) -> Iterator[str]:
    """A scratch table (a key of two strings and a GSI on ``status``), deleted afterwards."""
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


@pytest.fixture
def own_stack(endpoint: str) -> Iterator[Callable[..., Stack]]:
    """Deploys a stack of its own in the test LocalStack (template parameters as keywords); deleted afterwards, with
    the objects of its bucket."""
    names: list[str] = []

    def make(**parameters: str) -> Stack:
        name = f"own-{uuid.uuid4().hex[:6]}"
        names.append(name)
        deploy(endpoint, name, parameters=parameters or None)
        return Stack(ClientSettings(endpoint_url=endpoint, stack_name=name))

    yield make
    cfn = cloudformation(endpoint)
    for name in names:
        stack = Stack(ClientSettings(endpoint_url=endpoint, stack_name=name))
        with contextlib.suppress(Exception):  # a deploy that failed has no bucket to empty
            stack.resource("s3").Bucket(stack.outputs.MediaBucketName).object_versions.delete()
        cfn.delete_stack(StackName=name)
        cfn.get_waiter("stack_delete_complete").wait(StackName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 150})
