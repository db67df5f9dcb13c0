"""DynamoDB and DynamoDB Streams providers for LocalStack backed by moto.

LocalStack's own providers start DynamoDB Local, which downloads Java and a jar at run time. These providers
answer every operation from moto instead (in process, nothing to download). Select them with
``PROVIDER_OVERRIDE_DYNAMODB=moto`` and ``PROVIDER_OVERRIDE_DYNAMODBSTREAMS=moto``.
Requests are answered one at a time: moto's backend is not safe under concurrent requests (two conditional writes
could both see the condition hold), and conditional writes are how photopipe claims a photo's bytes and moves its
status. moto answers in about a millisecond, so one lock costs little.
Known difference from AWS: items past their TTL are never deleted.
"""

from __future__ import annotations

import threading
from typing import Any

from localstack.aws.api.dynamodb import DynamodbApi
from localstack.aws.api.dynamodbstreams import DynamodbstreamsApi
from localstack.services.moto import MotoFallbackDispatcher
from localstack.services.plugins import Service, ServiceLifecycleHook, aws_provider

# One lock for both services: DynamoDB Streams reads the same moto backend.
_BACKEND_LOCK = threading.RLock()


def one_at_a_time(provider: object) -> dict[str, Any]:
    """moto's fallthrough dispatch table, with every operation run under the backend lock."""

    def locked(handler: Any) -> Any:
        def call(context: Any, request: Any) -> Any:
            with _BACKEND_LOCK:
                return handler(context, request)

        return call

    return {operation: locked(handler) for operation, handler in MotoFallbackDispatcher(provider).items()}


class MotoDynamoDBProvider(DynamodbApi, ServiceLifecycleHook):
    """Implements nothing itself: every operation falls through to moto."""


class MotoDynamoDBStreamsProvider(DynamodbstreamsApi, ServiceLifecycleHook):
    """Implements nothing itself: every operation falls through to moto."""


@aws_provider(api="dynamodb", name="moto")
def dynamodb_moto() -> Service:
    return Service.for_provider(MotoDynamoDBProvider(), dispatch_table_factory=one_at_a_time)


@aws_provider(api="dynamodbstreams", name="moto")
def dynamodbstreams_moto() -> Service:
    return Service.for_provider(MotoDynamoDBStreamsProvider(), dispatch_table_factory=one_at_a_time)
