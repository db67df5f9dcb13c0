from __future__ import annotations

from typing import Any

import boto3
import pytest

from photopipe_core.models import PipelineInput, Status
from photopipe_core.repository import InvalidTransition, media_repository
from tests.functional.conftest import FakeContext, load_function

MEDIA = {"media_id": "M1", "bucket": "media", "key": "drop/a.jpg", "etag": "e1", "size": 10}


def meta(table: str, media_id: str) -> dict[str, Any]:
    return boto3.resource("dynamodb").Table(table).get_item(Key={"pk": f"MEDIA#{media_id}", "sk": "META"})["Item"]


def test_register_writes_the_media_item_as_processing(stack: dict[str, Any], context: FakeContext) -> None:
    register = load_function("register")
    result = register.lambda_handler({"media": MEDIA, "execution_arn": "arn:exec:M1"}, context)
    assert result == {"media": MEDIA, "status": "PROCESSING"}
    item = meta(stack["table"], "M1")
    assert item["status"] == "PROCESSING"
    assert item["source"] == {"bucket": "media", "key": "drop/a.jpg", "etag": "e1", "size": 10}
    assert item["execution_arn"] == "arn:exec:M1"


def test_register_is_safe_to_repeat_and_keeps_created_at(stack: dict[str, Any], context: FakeContext) -> None:
    register = load_function("register")
    register.lambda_handler({"media": MEDIA, "execution_arn": "arn:exec:M1"}, context)
    created = meta(stack["table"], "M1")["created_at"]
    register.lambda_handler({"media": MEDIA, "execution_arn": "arn:exec:M1"}, context)
    assert meta(stack["table"], "M1")["created_at"] == created
    history = media_repository().history("M1")
    assert {entry["status"] for entry in history} == {"PROCESSING"}


def test_a_finished_media_cannot_be_registered_by_another_execution(stack: dict[str, Any]) -> None:
    table = boto3.resource("dynamodb").Table(stack["table"])
    table.put_item(
        Item={
            "pk": "MEDIA#M1",
            "sk": "META",
            "media_id": "M1",
            "status": Status.READY.value,
            "execution_arn": "arn:exec:first",
            "source": {},
            "created_at": "t",
            "updated_at": "t",
        }
    )
    with pytest.raises(InvalidTransition):
        media_repository().mark_processing(PipelineInput(**MEDIA), "arn:exec:second")
    assert meta(stack["table"], "M1")["status"] == "READY"


def test_invalid_step_input_is_refused(stack: dict[str, Any], context: FakeContext) -> None:
    register = load_function("register")
    with pytest.raises(Exception, match="media_id"):
        register.lambda_handler({"media": {"bucket": "media"}, "execution_arn": "x"}, context)
