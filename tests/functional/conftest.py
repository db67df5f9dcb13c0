"""Handlers in-process against moto: AWS is mocked before any client is created."""

from __future__ import annotations

import functools
import importlib.util
import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import yaml
from chalice.local import LambdaEventConverter
from chalice.test import Client
from moto import mock_aws

from photopipe_core import aws, events, inflight, pipeline, quotas, repository, settings, storage
from photopipe_core.owners import OPERATOR, Owners
from tests.functional import calls

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = ROOT / "functions"
PASS_STATE_MACHINE = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}

calls.install()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "photopipe",
        "POWERTOOLS_METRICS_NAMESPACE": "photopipe",
        "MEDIA_BUCKET": "media",
        "MEDIA_TABLE": "media-table",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    yield
    clear_factories()
    sys.modules.pop("photopipe_function_api_app", None)  # its owner cache belongs to one test's table


def clear_factories() -> None:
    """Forget every client, adapter and settings object built so far (each is built once per container)."""
    for factory in (
        aws.client,
        aws.resource,
        settings.get_settings,
        repository.media_repository,
        pipeline.pipeline_starter,
        storage.object_store,
        storage.presigner,
        aws.presigning_client,
        storage.failed_queue,
        storage.ingest_queue,
        storage.webhook_queue,
        inflight.in_flight_slots,
        quotas.quotas,
        events.media_events,
    ):
        factory.cache_clear()


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The stack's resources in moto: bucket, table and a state machine."""
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="media")
        boto3.client("dynamodb").create_table(TableName="media-table", **media_table_definition())
        sfn = boto3.client("stepfunctions")
        arn = sfn.create_state_machine(
            name="pipeline",
            definition=json.dumps(PASS_STATE_MACHINE),
            roleArn="arn:aws:iam::123456789012:role/pipeline",
        )["stateMachineArn"]
        monkeypatch.setenv("PIPELINE_ARN", arn)
        failed = boto3.client("sqs").create_queue(QueueName="failed")["QueueUrl"]
        monkeypatch.setenv("FAILED_QUEUE_URL", failed)
        ingest = boto3.client("sqs").create_queue(QueueName="ingest")["QueueUrl"]
        monkeypatch.setenv("INGEST_QUEUE_URL", ingest)
        webhook_dlq = boto3.client("sqs").create_queue(QueueName="webhook-dlq")["QueueUrl"]
        dlq_arn = boto3.client("sqs").get_queue_attributes(QueueUrl=webhook_dlq, AttributeNames=["QueueArn"])
        redrive = {"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"], "maxReceiveCount": "8"}
        webhook = boto3.client("sqs").create_queue(
            QueueName="webhook", Attributes={"RedrivePolicy": json.dumps(redrive)}
        )["QueueUrl"]
        monkeypatch.setenv("WEBHOOK_QUEUE_URL", webhook)
        monkeypatch.setenv("EVENT_BUS_NAME", "media-events")
        events = subscribed_queue("media-events")
        yield {
            "bucket": "media",
            "table": "media-table",
            "state_machine_arn": arn,
            "failed_queue_url": failed,
            "ingest_queue_url": ingest,
            "webhook_queue_url": webhook,
            "webhook_dlq_url": webhook_dlq,
            "events_queue_url": events,
        }


def subscribed_queue(bus: str) -> str:
    """A queue that a rule on a new event bus sends every photopipe event to (as a subscriber would set one up)."""
    sqs, eventbridge = boto3.client("sqs"), boto3.client("events")
    eventbridge.create_event_bus(Name=bus)
    url = sqs.create_queue(QueueName=f"{bus}-subscriber")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    eventbridge.put_rule(Name="all-media", EventBusName=bus, EventPattern=json.dumps({"source": ["photopipe"]}))
    eventbridge.put_targets(Rule="all-media", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
    return url


def received_events(queue_url: str) -> list[dict[str, Any]]:
    """Every event the subscriber's queue holds (each once)."""
    sqs = boto3.client("sqs")
    events = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            events.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return events


class _CfnLoader(yaml.SafeLoader):
    """Reads template.yaml: CloudFormation tags (!Ref, !GetAtt …) load as plain values."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def template_resource(name: str) -> dict[str, Any]:
    """One resource of template.yaml as declared (CloudFormation tags read as None)."""
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)  # noqa: S506 - safe loader
    resource: dict[str, Any] = template["Resources"][name]
    return resource


def media_table_definition() -> dict[str, Any]:
    """The MediaTable's key schema and indexes exactly as template.yaml declares them."""
    properties = template_resource("MediaTable")["Properties"]
    return {k: properties[k] for k in ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")}


class FakeContext:
    function_name = "test"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "request-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()


def load_function(name: str, module: str = "handler") -> ModuleType:
    """Import functions/<name>/<module>.py under a unique module name (every function has a handler.py)."""
    unique = f"photopipe_function_{name}_{module}"
    spec = importlib.util.spec_from_file_location(unique, FUNCTIONS_DIR / name / f"{module}.py")
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[unique] = loaded
    spec.loader.exec_module(loaded)
    for attribute, value in vars(loaded).copy().items():
        if attribute.endswith("handler") and callable(value):
            setattr(loaded, attribute, _in_its_own_container(value))
    return loaded


def _in_its_own_container(handler: Any) -> Any:
    """Each function runs in a container of its own: what another function built (clients, adapters, settings)
    is not there, so the settings and calls each handler's code needs are its own (tests/functional/calls.py)."""

    @functools.wraps(handler)
    def invoke(*args: Any, **kwargs: Any) -> Any:
        clear_factories()
        return handler(*args, **kwargs)

    return invoke


class ApiKeys:
    """API Gateway's part of API keys, in-process: the values it admits, each passed to the function as its key id
    (``requestContext.identity.apiKeyId``) — as a stage with ``ApiKeyRequired`` and a usage plan does."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def make(self, owner: str) -> str:
        """A new key for ``owner`` (registered as ``photopipe keys create`` does); returns its value."""
        value, key_id = secrets.token_urlsafe(30), f"k{len(self.ids)}{secrets.token_hex(4)}"
        # Not through the cached factories: a test may still change the settings they would read now.
        Owners(boto3.resource("dynamodb").Table("media-table")).register_key(owner, key_id)
        self.ids[value] = key_id
        return value

    def forget(self, value: str) -> None:
        """The key is deleted from API Gateway: its value is no longer admitted."""
        del self.ids[value]


@pytest.fixture
def api_keys(stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> ApiKeys:
    keys = ApiKeys()
    convert = LambdaEventConverter.create_lambda_event

    def with_key_id(
        converter: LambdaEventConverter, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> dict[str, Any]:
        event: dict[str, Any] = convert(converter, method, path, headers, body)
        key_id = keys.ids.get(event["headers"].get("x-api-key", ""))
        if key_id is not None:
            event["requestContext"]["identity"]["apiKeyId"] = key_id
        return event

    monkeypatch.setattr(LambdaEventConverter, "create_lambda_event", with_key_id)
    return keys


class KeyedHttp:
    """``chalice.test.Client.http`` sending one API key with every request unless the call names its own
    ``x-api-key`` (``None``: no key at all)."""

    def __init__(self, client: Client, key: str) -> None:
        self._client = client
        self._key = key

    def request(self, method: str, path: str, headers: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        merged = {"x-api-key": self._key, **(headers or {})}
        sent = {name: value for name, value in merged.items() if value is not None}
        return self._client.http.request(method, path, headers=sent, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)


class KeyedClient:
    """A Chalice test client of the API app whose ``http`` sends ``key``."""

    def __init__(self, client: Client, key: str) -> None:
        self.key = key
        self.http = KeyedHttp(client, key)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``after_every_handler`` read what the other tests recorded (calls.py): they run last."""
    items.sort(key=lambda item: item.get_closest_marker("after_every_handler") is not None)


@pytest.fixture
def client(stack: dict[str, Any], api_keys: ApiKeys, monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyedClient]:
    """The API in-process, called with a key of the operator (the owner of drop-folder objects)."""
    monkeypatch.setenv("PRESIGN_ENDPOINT_URL", "http://localhost:4566")
    app = load_function("api", "app")
    with Client(app.app) as test_client:
        yield KeyedClient(test_client, api_keys.make(OPERATOR))
