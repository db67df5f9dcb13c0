"""DynamoDB and DynamoDB Streams providers for LocalStack backed by moto.

LocalStack's own providers start DynamoDB Local, which downloads Java and a jar at run time. These providers
answer every operation from moto instead (in process, nothing to download). Select them with
``PROVIDER_OVERRIDE_DYNAMODB=moto`` and ``PROVIDER_OVERRIDE_DYNAMODBSTREAMS=moto``.
Known difference from AWS: items past their TTL are never deleted.
"""

from __future__ import annotations

from localstack.aws.api.dynamodb import DynamodbApi
from localstack.aws.api.dynamodbstreams import DynamodbstreamsApi
from localstack.services.moto import MotoFallbackDispatcher
from localstack.services.plugins import Service, ServiceLifecycleHook, aws_provider


class MotoDynamoDBProvider(DynamodbApi, ServiceLifecycleHook):
    """Implements nothing itself: every operation falls through to moto."""


class MotoDynamoDBStreamsProvider(DynamodbstreamsApi, ServiceLifecycleHook):
    """Implements nothing itself: every operation falls through to moto."""


@aws_provider(api="dynamodb", name="moto")
def dynamodb_moto() -> Service:
    return Service.for_provider(MotoDynamoDBProvider(), dispatch_table_factory=MotoFallbackDispatcher)


@aws_provider(api="dynamodbstreams", name="moto")
def dynamodbstreams_moto() -> Service:
    return Service.for_provider(MotoDynamoDBStreamsProvider(), dispatch_table_factory=MotoFallbackDispatcher)
