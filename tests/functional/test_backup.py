"""Backup and restore against moto: what goes into a backup, a resumed backup, a restore into another stack."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from photopipe import backup
from photopipe.config import ClientSettings
from photopipe.stack import Stack, StackOutputs
from tests.functional.conftest import media_table_definition


class MotoStack(Stack):
    """A stack whose bucket and table are moto's (its outputs given, not read from CloudFormation)."""

    def __init__(self, bucket: str, table: str) -> None:
        super().__init__(ClientSettings(endpoint_url="aws"))
        self.outputs = StackOutputs(  # type: ignore[misc]
            ApiUrl="https://api.example/prod",
            MediaBucketName=bucket,
            MediaTableName=table,
            PipelineStateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:pipeline",
            IngestQueueUrl="https://sqs.example/ingest",
            IngestDLQUrl="https://sqs.example/dlq",
            FailedQueueUrl="https://sqs.example/failed",
            UsagePlanId="plan",
            MediaEventBusName="media-events",
            WebhookDLQUrl="https://sqs.example/webhook-dlq",
            ReprocessQueueUrl="https://sqs.example/reprocess",
            ReprocessDLQUrl="https://sqs.example/reprocess-dlq",
            WebhookQueueUrl="https://sqs.example/webhook",
            DashboardName="photopipe",
            PipelineLogGroupName="pipeline-log-group",
        )


def library(stack: dict[str, Any]) -> MotoStack:
    """A small library in the moto stack: two originals, a variant, a media item, an owner with a key, the slots."""
    s3 = boto3.client("s3")
    for key, body in {
        "uploads/M1/original": b"first photo",
        "drop/trip/b.jpg": b"second photo",
        "media/M1/thumb.webp": b"a variant",
    }.items():
        s3.put_object(Bucket="media", Key=key, Body=body, ContentType="image/jpeg", Metadata={"from": "test"})
    table = boto3.resource("dynamodb").Table("media-table")
    table.put_item(Item={"pk": "MEDIA#M1", "sk": "META", "status": "READY", "source": {"bucket": "media", "key": "k"}})
    table.put_item(Item={"pk": "OWNERS", "sk": "ann", "key_id": "old-key", "key_created_at": "then"})
    table.put_item(Item={"pk": "APIKEY#old-key", "sk": "OWNER", "owner": "ann"})
    table.put_item(Item={"pk": "INFLIGHT", "sk": "SLOTS", "held": 2})
    return MotoStack(stack["bucket"], stack["table"])


def other_stack() -> MotoStack:
    boto3.client("s3").create_bucket(Bucket="other")
    boto3.client("dynamodb").create_table(TableName="other-table", **media_table_definition())
    return MotoStack("other", "other-table")


def test_a_backup_holds_every_object_by_sha256_every_item_and_a_manifest(stack: dict[str, Any], tmp_path: Path) -> None:
    source = library(stack)

    summary = backup.backup(source, backup.FolderPlace(tmp_path))

    manifest = json.loads((tmp_path / backup.MANIFEST).read_text())
    assert summary.objects == 3 and summary.items == 4
    assert {entry["key"] for entry in manifest["objects"]} == {
        "uploads/M1/original",
        "drop/trip/b.jpg",
        "media/M1/thumb.webp",
    }
    for entry in manifest["objects"]:
        assert hashlib.sha256((tmp_path / "objects" / entry["sha256"]).read_bytes()).hexdigest() == entry["sha256"]
        assert entry["content_type"] == "image/jpeg" and entry["metadata"] == {"from": "test"}
    assert manifest["table"]["items"] == 4
    assert not (tmp_path / backup.PROGRESS).exists()


def test_an_interrupted_backup_goes_on_where_it_stopped(stack: dict[str, Any], tmp_path: Path) -> None:
    source = library(stack)

    class FailsOnTheSecondObject(backup.FolderPlace):
        kept = 0

        def put_file(self, name: str, local: Path) -> None:
            if name.startswith("objects/"):
                if self.kept == 1:
                    raise OSError("the disk went away")
                self.kept += 1
            super().put_file(name, local)

    with pytest.raises(OSError, match="went away"):
        backup.backup(source, FailsOnTheSecondObject(tmp_path))
    assert not (tmp_path / backup.MANIFEST).exists()

    summary = backup.backup(source, backup.FolderPlace(tmp_path))

    assert summary.skipped == 1 and summary.objects == 3
    assert len(json.loads((tmp_path / backup.MANIFEST).read_text())["objects"]) == 3


def test_a_restore_into_another_stack_renames_the_bucket_and_leaves_the_keys_and_slots(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    source = library(stack)
    backup.backup(source, backup.FolderPlace(tmp_path))
    target = other_stack()

    summary = backup.restore(target, backup.FolderPlace(tmp_path))

    s3 = boto3.client("s3")
    assert s3.get_object(Bucket="other", Key="drop/trip/b.jpg")["Body"].read() == b"second photo"
    assert s3.head_object(Bucket="other", Key="media/M1/thumb.webp")["ContentType"] == "image/jpeg"
    items = {(i["pk"], i["sk"]): i for i in boto3.resource("dynamodb").Table("other-table").scan()["Items"]}
    assert items[("MEDIA#M1", "META")]["source"]["bucket"] == "other"
    assert items[("OWNERS", "ann")].get("key_id") is None  # a key of the old stack's API means nothing here
    assert ("APIKEY#old-key", "OWNER") not in items and ("INFLIGHT", "SLOTS") not in items
    assert summary.objects == 3


def test_a_restore_refuses_a_stack_that_holds_other_media(stack: dict[str, Any], tmp_path: Path) -> None:
    source = library(stack)
    backup.backup(source, backup.FolderPlace(tmp_path))
    target = other_stack()
    boto3.client("s3").put_object(Bucket="other", Key="drop/x.jpg", Body=b"someone else's")

    with pytest.raises(backup.BackupError, match="already holds media"):
        backup.restore(target, backup.FolderPlace(tmp_path))


def test_a_damaged_table_file_is_refused_before_anything_is_written(stack: dict[str, Any], tmp_path: Path) -> None:
    source = library(stack)
    backup.backup(source, backup.FolderPlace(tmp_path))
    (tmp_path / backup.TABLE).write_text((tmp_path / backup.TABLE).read_text().replace("READY", "FAILED"))
    target = other_stack()

    with pytest.raises(backup.BackupError, match=r"table\.jsonl \(the table\) is damaged"):
        backup.restore(target, backup.FolderPlace(tmp_path))

    assert boto3.client("s3").list_objects_v2(Bucket="other").get("KeyCount", 0) == 0
