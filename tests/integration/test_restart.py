"""The embedded stack keeps its library across a restart: what `photopipe down` then `photopipe up` do."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from botocore.exceptions import BotoCoreError, ClientError

from photopipe import samples
from photopipe.apikeys import ApiKeys
from photopipe.media import MediaReader, reconcile_stack
from photopipe.stack import Stack
from photopipe.upload import ApiClient, Uploader
from photopipe_core.reconcile import PROCESSING_MAX_AGE
from photopipe_infra.deploy import deploy
from photopipe_infra.launcher import EmbeddedLocalStack
from tests.integration.conftest import drop as drop_in


def drop(stack: Stack, aws_client: Callable[[str], Any], body: bytes, name: str) -> str:
    return drop_in(stack, aws_client, body, name, folder="restart")


def library(
    stack: Stack, aws_client: Callable[[str], Any], reader: MediaReader, media_ids: list[str]
) -> dict[str, Any]:
    """Everything a user has of these media: item, history, the bytes of every variant, their runs."""
    s3 = aws_client("s3")
    bucket = stack.outputs.MediaBucketName
    runs = all_runs(stack, aws_client)
    seen: dict[str, Any] = {}
    for media_id in media_ids:
        item = reader.get(media_id)
        assert item is not None, media_id
        variants = {
            name: hashlib.sha256(s3.get_object(Bucket=bucket, Key=variant.key)["Body"].read()).hexdigest()
            for name, variant in item.variants.items()
        }
        seen[media_id] = {
            "item": item.model_dump(mode="json"),
            "history": reader.history(media_id),
            "variants": variants,
            "runs": sorted((r["name"], r["status"]) for r in runs if r["name"].startswith(media_id)),
        }
    return seen


def all_runs(stack: Stack, aws_client: Callable[[str], Any]) -> list[dict[str, Any]]:
    pages = aws_client("stepfunctions").get_paginator("list_executions")
    return [
        run
        for page in pages.paginate(stateMachineArn=stack.outputs.PipelineStateMachineArn)
        for run in page["executions"]
    ]


def closed_runs(stack: Stack, aws_client: Callable[[str], Any], media_ids: list[str]) -> list[dict[str, Any]]:
    """Every run, once those of these media have closed (a run closes a moment after its last step wrote the
    media's final status)."""
    deadline = time.monotonic() + 120
    runs = all_runs(stack, aws_client)
    while any(r["status"] == "RUNNING" and r["name"].startswith(tuple(media_ids)) for r in runs):
        assert time.monotonic() < deadline, [r for r in runs if r["status"] == "RUNNING"]
        time.sleep(0.5)
        runs = all_runs(stack, aws_client)
    return runs


def failed_queue(stack: Stack, aws_client: Callable[[str], Any]) -> list[str]:
    sqs = aws_client("sqs")
    messages = sqs.receive_message(
        QueueUrl=stack.outputs.FailedQueueUrl, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=1
    ).get("Messages", [])
    return sorted(json.loads(m["Body"])["media_id"] for m in messages)


def test_a_restart_keeps_every_media_history_variant_failed_message_and_key_without_a_deploy(
    stack: Stack,
    function_name: Callable[[str], str],
    localstack: EmbeddedLocalStack,
    aws_client: Callable[[str], Any],
    api: ApiClient,
    tmp_path: Path,
) -> None:
    # Given a library: photos through the API and the drop folder, a duplicate, rejected files, one FAILED
    reader = MediaReader(stack)
    folder = tmp_path / "api"
    folder.mkdir()
    for index in range(4):
        (folder / f"a{index}.jpg").write_bytes(samples.jpeg_bytes(samples.photo(800, 600, seed=3100 + index)))
    uploaded = Uploader(api, wait=False).run(sorted(folder.iterdir()))
    media_ids = [str(result.media_id) for result in uploaded]
    photos = [samples.jpeg_bytes(samples.photo(640, 480, seed=3200 + index)) for index in range(11)]
    media_ids += [drop(stack, aws_client, body, f"d{index}.jpg") for index, body in enumerate(photos)]
    media_ids.append(drop(stack, aws_client, photos[0], "again.jpg"))  # a duplicate
    media_ids += [drop(stack, aws_client, b"not a photo %d" % index, f"n{index}.jpg") for index in range(2)]
    media_ids.append(drop(stack, aws_client, samples.jpeg_bytes(samples.photo(640, 480, seed=3300))[:900], "cut.jpg"))
    done = reader.wait_for_terminal(media_ids, timeout=240)
    lam = aws_client("lambda")
    finalize = function_name("FinalizeFunction")
    lam.put_function_concurrency(FunctionName=finalize, ReservedConcurrentExecutions=0)  # its last step fails
    try:
        failing = drop(stack, aws_client, samples.jpeg_bytes(samples.photo(700, 500, seed=3400)), "f.jpg")
        done |= reader.wait_for_terminal([failing], timeout=180)
    finally:
        lam.delete_function_concurrency(FunctionName=finalize)
    media_ids.append(failing)
    statuses = [item.status.value if item else None for item in done.values()]
    assert {"READY", "DUPLICATE", "REJECTED", "FAILED"} <= set(statuses), statuses
    assert all(item is not None and item.status.is_terminal for item in done.values()), statuses
    closed_runs(stack, aws_client, media_ids)
    before = library(stack, aws_client, reader, media_ids)
    failed_before = failed_queue(stack, aws_client)
    assert media_ids[-1] in failed_before

    # When LocalStack stops and starts again (as `photopipe down` and `photopipe up` do)
    localstack.stop()
    started = localstack.start()
    deployed = deploy(localstack.endpoint, stack.settings.stack_name)

    # Then the stack was not deployed again, and the library is as it was, bytes and all
    assert not started.reused
    assert not started.recovered  # it stopped as asked: nothing for the reconciler to look for
    assert not deployed.changed
    assert library(stack, aws_client, reader, media_ids) == before
    assert failed_queue(stack, aws_client) == failed_before
    ready = next(m for m in media_ids if before[m]["item"]["status"] == "READY")
    fetched = api.request("GET", f"/v1/media/{ready}")  # the operator's key still opens the API
    assert fetched.status_code == 200 and fetched.json()["status"] == "READY"
    # and the pipeline runs on: a new photo through the API ends READY
    (folder / "after.jpg").write_bytes(samples.jpeg_bytes(samples.photo(800, 600, seed=3500)))
    [after] = Uploader(api, wait=True, wait_timeout=120).run([folder / "after.jpg"])
    assert after.status == "READY", after


def test_localstack_killed_mid_batch_then_up_every_acknowledged_photo_ends_once(
    stack: Stack, localstack: EmbeddedLocalStack, aws_client: Callable[[str], Any]
) -> None:
    # Given 40 photos dropped four at a time, and LocalStack killed (SIGKILL) once a third of them are in
    reader = MediaReader(stack)
    bodies = [samples.jpeg_bytes(samples.photo(800, 600, seed=3600 + index)) for index in range(40)]
    acknowledged: list[str] = []
    killed = threading.Event()
    pid = localstack.owned_pid()
    assert pid is not None
    kill_once = threading.Lock()

    def put(index: int) -> None:
        try:
            acknowledged.append(drop(stack, aws_client, bodies[index], f"k{index}.jpg"))
        except (BotoCoreError, ClientError):
            assert killed.is_set()  # only what was sent after the kill may fail
        with kill_once:
            if len(acknowledged) >= 14 and not killed.is_set():
                killed.set()
                os.kill(pid, signal.SIGKILL)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put, range(len(bodies))))
    assert killed.is_set() and len(acknowledged) >= 14

    # When it is started again and the stack brought up, as `photopipe up` does after an unclean stop
    started = localstack.start()
    assert started.recovered
    assert not deploy(localstack.endpoint, stack.settings.stack_name).changed
    reconcile_stack(stack, grace=timedelta(0), stuck_after=PROCESSING_MAX_AGE)

    # Then every photo S3 acknowledged ends in a final status, READY once, by one run of its own name
    done = reader.wait_for_terminal(acknowledged, timeout=300)
    assert all(item is not None and item.status.is_terminal for item in done.values()), {
        media_id: item.status if item else None for media_id, item in done.items()
    }
    assert {item.status.value for item in done.values() if item} == {"READY"}
    # (one run again after the kill may find its media already READY, and runs to its end all the same)
    runs = closed_runs(stack, aws_client, acknowledged)
    for media_id in acknowledged:
        assert [(r["name"], r["status"]) for r in runs if r["name"].startswith(media_id)] == [(media_id, "SUCCEEDED")]
    # and no variant was written for a media the table does not have
    assert orphan_variants(stack, aws_client, reader) == []


def test_table_writes_acknowledged_just_before_a_kill_are_all_there_after_up(
    stack: Stack, localstack: EmbeddedLocalStack, aws_client: Callable[[str], Any]
) -> None:
    # Given every kind of item write DynamoDB acknowledges, the last one a moment before LocalStack is killed
    # (well inside the few seconds between two snapshots)
    dynamodb = aws_client("dynamodb")
    table = stack.outputs.MediaTableName
    run = f"KILLTEST#{time.time_ns()}"

    def key(sk: str) -> dict[str, Any]:
        return {"pk": {"S": run}, "sk": {"S": sk}}

    dynamodb.put_item(TableName=table, Item={**key("put"), "n": {"N": "1"}})
    dynamodb.put_item(TableName=table, Item={**key("deleted"), "n": {"N": "1"}})
    dynamodb.update_item(
        TableName=table,
        Key=key("put"),
        UpdateExpression="SET n = n + :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    dynamodb.batch_write_item(
        RequestItems={
            table: [{"PutRequest": {"Item": {**key(f"batch{i}"), "gsi2pk": {"S": f"{run}#b"}}}} for i in range(25)]
        }
    )
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": table, "Item": {**key("transact"), "state": {"S": "claimed"}}}},
            {"Delete": {"TableName": table, "Key": key("deleted")}},
            {
                "Update": {
                    "TableName": table,
                    "Key": key("batch0"),
                    "UpdateExpression": "SET marked = :t",
                    "ExpressionAttributeValues": {":t": {"BOOL": True}},
                }
            },
        ]
    )
    dynamodb.delete_item(TableName=table, Key=key("batch24"))
    kill(localstack)

    # When it is started again
    started = localstack.start()
    assert started.recovered

    # Then the table holds exactly what was acknowledged
    pages = dynamodb.get_paginator("query").paginate(
        TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": run}}
    )
    items = {item["sk"]["S"]: item for page in pages for item in page["Items"]}
    assert sorted(items) == sorted(["put", "transact", *(f"batch{i}" for i in range(24))])
    assert items["put"]["n"] == {"N": "2"}
    assert items["transact"]["state"] == {"S": "claimed"}
    assert items["batch0"]["marked"] == {"BOOL": True}
    # and the index sees them as the table does
    indexed = dynamodb.query(
        TableName=table,
        IndexName="by-key",
        KeyConditionExpression="gsi2pk = :p",
        ExpressionAttributeValues={":p": {"S": f"{run}#b"}},
    )["Items"]
    assert len(indexed) == 24


def kill(localstack: EmbeddedLocalStack) -> None:
    """SIGKILL, and wait until the port is free (the killed process lets go of it a moment later)."""
    pid = localstack.owned_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while localstack.port_holder() is not None:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_an_api_key_made_just_before_a_kill_still_opens_its_library_after_up(
    stack: Stack, localstack: EmbeddedLocalStack, api_keys: ApiKeys
) -> None:
    # Given a key made a moment before LocalStack is killed (well inside the few seconds between two snapshots)
    made = api_keys.create(f"killed-{time.time_ns()}")
    kill(localstack)

    # When it is started again
    assert localstack.start().recovered

    # Then the key is still admitted, as its owner's
    me = requests.get(f"{stack.outputs.ApiUrl}/v1/me", headers={"x-api-key": made.value}, timeout=60)
    assert me.status_code == 200 and me.json() == {"owner": made.owner}, me.text


# Kills at random moments: during uploads, runs, saves and the start after a kill. The seed is printed, so a run that
# fails can be repeated (PHOTOPIPE_KILL_SEED); PHOTOPIPE_KILL_ROUNDS makes the drill longer.
# Longer than the embedded runtime's pause between two snapshots of a small stack (5 s).
SNAPSHOT_PAUSE = 8.0
KILL_ROUNDS = int(os.environ.get("PHOTOPIPE_KILL_ROUNDS", "3"))
KILL_SEED = int(os.environ.get("PHOTOPIPE_KILL_SEED", str(time.time_ns() % 10**6)))


def test_kills_at_random_moments_lose_no_acknowledged_photo(
    stack: Stack, localstack: EmbeddedLocalStack, aws_client: Callable[[str], Any], api: ApiClient, tmp_path: Path
) -> None:
    rng = random.Random(KILL_SEED)
    print(f"kill drill: seed {KILL_SEED}, {KILL_ROUNDS} rounds")
    reader = MediaReader(stack)
    acknowledged: list[str] = []
    uploader = Uploader(api)
    for round_ in range(KILL_ROUNDS):
        # Given photos arriving four at a time through the API and the drop folder
        folder = tmp_path / f"round{round_}"
        folder.mkdir()
        paths = []
        for index in range(20):
            path = folder / f"r{index}.jpg"
            path.write_bytes(samples.jpeg_bytes(samples.photo(640, 480, seed=KILL_SEED * 100 + round_ * 20 + index)))
            paths.append(path)

        def send(path: Path) -> str | None:
            if int(path.stem[1:]) % 2:
                try:
                    return drop(stack, aws_client, path.read_bytes(), path.name)
                except (BotoCoreError, ClientError):
                    return None
            result = uploader.one(path)
            return result.media_id if result.status == "PROCESSING" else None

        # When LocalStack is killed at a random moment of their uploads and runs (and now and then again while it
        # starts after that kill), and brought up as `photopipe up` does
        with ThreadPoolExecutor(4) as pool:
            sent = [pool.submit(send, path) for path in paths]
            time.sleep(rng.uniform(0.2, 15.0))
            kill(localstack)
        acknowledged += [media_id for future in sent if (media_id := future.result())]
        assert localstack.start().recovered
        if rng.random() < 0.4:
            time.sleep(rng.uniform(0.0, 2.0))
            kill(localstack)
            assert localstack.start().recovered
        assert not deploy(localstack.endpoint, stack.settings.stack_name).changed
        reconcile_stack(stack, grace=timedelta(0), stuck_after=PROCESSING_MAX_AGE)

    # Then every photo whose upload was acknowledged ends READY, by one run of its own name, with its variants
    done = reader.wait_for_terminal(acknowledged, timeout=300)
    assert {media_id: item.status.value if item else None for media_id, item in done.items()} == dict.fromkeys(
        acknowledged, "READY"
    )
    runs = closed_runs(stack, aws_client, acknowledged)
    for media_id in acknowledged:
        assert [(r["name"], r["status"]) for r in runs if r["name"].startswith(media_id)] == [(media_id, "SUCCEEDED")]
    s3 = aws_client("s3")
    bucket = stack.outputs.MediaBucketName
    for item in done.values():
        assert item is not None
        for variant in item.variants.values():
            s3.head_object(Bucket=bucket, Key=variant.key)
    # and no variant was written for a media the table does not have
    assert orphan_variants(stack, aws_client, reader) == []


def orphan_variants(stack: Stack, aws_client: Callable[[str], Any], reader: MediaReader) -> list[str]:
    variants = (
        aws_client("s3")
        .get_paginator("list_objects_v2")
        .paginate(Bucket=stack.outputs.MediaBucketName, Prefix="media/")
    )
    owners = {obj["Key"].split("/")[1] for page in variants for obj in page.get("Contents", [])}
    return [media_id for media_id in owners if reader.get(media_id) is None]


def test_queue_messages_sent_and_deleted_just_before_a_kill_are_as_acknowledged_after_up(
    stack: Stack, localstack: EmbeddedLocalStack, aws_client: Callable[[str], Any]
) -> None:
    # Given a queue that got messages (one by one and in a batch) and had some deleted, a moment before LocalStack
    # is killed (well inside the few seconds between two snapshots)
    sqs = aws_client("sqs")
    url = sqs.create_queue(QueueName=f"killed-{time.time_ns()}")["QueueUrl"]
    time.sleep(SNAPSHOT_PAUSE)  # the queue itself is in a snapshot; its messages are not yet
    sent = [sqs.send_message(QueueUrl=url, MessageBody=f"one {n}")["MessageId"] for n in range(3)]
    batch = sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": f"batch {n}"} for n in range(5)]
    )
    sent += [entry["MessageId"] for entry in batch["Successful"]]
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3, VisibilityTimeout=0)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])
    sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(received[1:])]
    )
    deleted = {m["MessageId"] for m in received}
    kill(localstack)

    # When it is started again
    assert localstack.start().recovered

    # Then the queue holds exactly the messages sent and not deleted, each with its body
    left: dict[str, str] = {}
    for _ in range(10):
        for message in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=1
        ).get("Messages", []):
            left[message["MessageId"]] = message["Body"]
    assert sorted(left) == sorted(set(sent) - deleted)
    assert sorted(left.values()) == sorted(
        body
        for body in [*(f"one {n}" for n in range(3)), *(f"batch {n}" for n in range(5))]
        if body not in {m["Body"] for m in received}
    )
