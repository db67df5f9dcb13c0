"""`photopipe backup` and `photopipe restore`: a library moved into another stack, and a damaged backup refused."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from photopipe import samples
from photopipe.apikeys import OPERATOR, OPERATOR_LIMITS, ApiKeys
from photopipe.cli import main
from photopipe.config import ClientSettings
from photopipe.media import MediaReader
from photopipe.stack import Stack
from photopipe_core.keys import media_id_for_object
from photopipe_infra.deploy import cloudformation, delete_stack, deploy

OTHER_STACK = "photopipe-restored"


@pytest.fixture(scope="module")
def other_stack(stack: Stack) -> Iterator[Stack]:
    """A second, empty stack in the same LocalStack, deleted afterwards."""
    endpoint = stack.settings.endpoint_url
    deploy(endpoint, OTHER_STACK)
    try:
        yield Stack(ClientSettings(endpoint_url=endpoint, stack_name=OTHER_STACK))
    finally:
        delete_stack(cloudformation(endpoint), endpoint, OTHER_STACK)


def cli(stack: Stack, *args: str) -> Any:
    return CliRunner().invoke(
        main, ["--endpoint-url", stack.settings.endpoint_url, "--stack-name", stack.settings.stack_name, *args]
    )


def listing(stack: Stack, key: str, media_ids: set[str]) -> dict[str, Any]:
    """What `photopipe ls --json` shows of these media, without the presigned URLs (they name the bucket): the
    variants' and the srcset made of them."""
    result = cli(stack, "--api-key", key, "ls", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["media_id"]: row for row in map(json.loads, result.stdout.splitlines()) if row["media_id"] in media_ids}
    for row in rows.values():
        row.pop("srcset", None)
        for variant in row.get("variants", {}).values():
            variant.pop("url", None)
    return rows


def test_a_backup_restores_into_a_fresh_stack_with_the_same_listing_and_starts_no_run(
    stack: Stack,
    other_stack: Stack,
    aws_client: Callable[[str], Any],
    operator_key: str,
    tmp_path: Path,
) -> None:
    # Given a library of READY, DUPLICATE and REJECTED media of the operator
    bucket = stack.outputs.MediaBucketName
    s3 = aws_client("s3")
    bodies = [samples.jpeg_bytes(samples.photo(640, 480, seed=4100 + index)) for index in range(4)]
    bodies += [bodies[0], b"not a photo"]
    media_ids, objects = set(), {}
    for index, body in enumerate(bodies):
        key = f"drop/backup/{time.time_ns()}/b{index}.jpg"
        objects[key] = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
        media_ids.add(media_id_for_object(bucket, key, objects[key]))
    done = MediaReader(stack).wait_for_terminal(sorted(media_ids), timeout=180)
    assert {item.status.value for item in done.values() if item} == {"READY", "DUPLICATE", "REJECTED"}
    before = listing(stack, operator_key, media_ids)

    # When it is backed up, and the backup restored into an empty stack
    backed_up = cli(stack, "backup", str(tmp_path / "library"), "--json")
    assert backed_up.exit_code == 0, backed_up.output
    summary = json.loads(backed_up.stdout)
    assert summary["objects"] >= 4 * 4 and summary["items"] > 0
    restored = cli(other_stack, "restore", str(tmp_path / "library"), "--json")
    assert restored.exit_code == 0, restored.output
    assert json.loads(restored.stdout)["objects"] == summary["objects"]

    # Then the operator (given a key of the new stack) lists the same media, variants and all
    # (keys stay with the old stack's API: the restored operator has none, as a restored owner new to a stack)
    new_key = ApiKeys(other_stack).create(OPERATOR, OPERATOR_LIMITS).value
    assert listing(other_stack, new_key, media_ids) == before
    # and the originals of these media, put back, started no run: their media were already finished (the runs a
    # drop-folder object would start in this bucket are named after the id derived from it; the session's
    # unfinished media, if any, may well run)
    queue = other_stack.outputs.IngestQueueUrl
    sqs = aws_client("sqs")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        if attributes["ApproximateNumberOfMessages"] == attributes["ApproximateNumberOfMessagesNotVisible"] == "0":
            break
        time.sleep(0.5)
    would_run = {media_id_for_object(other_stack.outputs.MediaBucketName, k, etag) for k, etag in objects.items()}
    runs = aws_client("stepfunctions").get_paginator("list_executions")
    pages = runs.paginate(stateMachineArn=other_stack.outputs.PipelineStateMachineArn)
    assert [run["name"] for page in pages for run in page["executions"] if run["name"] in would_run] == []

    # and a backup with one byte flipped is refused, naming the damaged object, before anything is written
    manifest = json.loads((tmp_path / "library" / "manifest.json").read_text())
    victim = manifest["objects"][0]
    path = tmp_path / "library" / "objects" / victim["sha256"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    refused = cli(other_stack, "restore", str(tmp_path / "library"))
    assert refused.exit_code != 0
    assert "damaged" in refused.output and victim["sha256"] in refused.output
