"""The reconciler ties off loose ends: originals whose event was lost, uploads whose bytes arrived unseen, and runs
that ended without a final status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from photopipe import samples
from photopipe_core import reconcile
from photopipe_core.events import media_events
from photopipe_core.keys import derived_media_id
from photopipe_core.models import PipelineInput, Status
from photopipe_core.repository import media_repository
from photopipe_core.storage import failed_queue, ingest_queue, object_store
from tests.functional.conftest import FakeContext, load_function, received_events

LATER = datetime.now(UTC) + timedelta(hours=1)  # every loose end is older than the reconciler's grace by then


def run(now: datetime = LATER) -> reconcile.Reconciled:
    return reconcile.run(
        object_store(),
        media_repository(),
        ingest_queue(),
        failed_queue(),
        boto3.client("stepfunctions"),
        now,
        media_events(),
    )


def queued(url: str) -> list[dict[str, Any]]:
    messages = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_an_original_whose_event_was_lost_is_sent_again_and_then_runs(
    stack: dict[str, Any], context: FakeContext
) -> None:
    # Given a photo in the drop folder (a real name) whose event never reached ingest
    key = "drop/lost/Été (1).jpg"
    etag = boto3.client("s3").put_object(
        Bucket="media", Key=key, Body=samples.jpeg_bytes(samples.photo(64, 48, seed=1))
    )["ETag"]
    # When the reconciler runs
    done = run()
    # Then its event is in the ingest queue, spelled as S3 spells it, and ingest starts its run from it
    assert done.resent == [key]
    [event] = queued(stack["ingest_queue_url"])
    assert event["detail"]["object"]["key"] == "drop/lost/%C3%89t%C3%A9%20%281%29.jpg"
    ingest = load_function("ingest")
    batch = {"Records": [{"messageId": "m", "body": json.dumps(event), "attributes": {}, "messageAttributes": {}}]}
    batch["Records"][0].update(
        receiptHandle="r",
        md5OfBody="",
        eventSource="aws:sqs",
        eventSourceARN="arn:aws:sqs:us-east-1:1:q",
        awsRegion="us-east-1",
    )
    assert ingest.lambda_handler(batch, context) == {"batchItemFailures": []}
    runs = boto3.client("stepfunctions").list_executions(stateMachineArn=stack["state_machine_arn"])["executions"]
    assert [r["name"] for r in runs] == [derived_media_id("media", key, etag)]


def test_a_fresh_original_is_left_to_its_event(stack: dict[str, Any]) -> None:
    boto3.client("s3").put_object(Bucket="media", Key="drop/new.jpg", Body=b"x")
    assert run(now=datetime.now(UTC)).resent == []


def test_a_run_that_ended_without_a_final_status_is_marked_failed_and_queued_for_redrive(stack: dict[str, Any]) -> None:
    # Given a media PROCESSING by an execution that is not running (stopped long ago)
    repo = media_repository()
    sfn = boto3.client("stepfunctions")
    media = PipelineInput(media_id="P1", bucket="media", key="drop/p1.jpg", etag="e", size=3)
    execution = sfn.start_execution(stateMachineArn=stack["state_machine_arn"], name="P1", input="{}")["executionArn"]
    sfn.stop_execution(executionArn=execution)
    repo.mark_processing(media, execution)
    # When the reconciler runs (long after)
    done = run()
    # Then it is FAILED, saying why, with a message for a redrive; a second run changes nothing
    assert done.failed == ["P1"]
    item = repo.get("P1")
    assert item is not None and item.status is Status.FAILED and "without a final status" in (item.error or "")
    assert [m["media_id"] for m in queued(stack["failed_queue_url"])] == ["P1"]
    assert run().failed == []
    # and its subscribers heard it once
    [event] = received_events(stack["events_queue_url"])
    assert (event["detail-type"], event["detail"]["media_id"], event["detail"]["version"]) == ("Media Failed", "P1", 1)


def test_the_scheduled_run_looks_back_a_day_only(stack: dict[str, Any]) -> None:
    boto3.client("s3").put_object(Bucket="media", Key="drop/old.jpg", Body=b"x")
    a_week_later = datetime.now(UTC) + timedelta(days=7)
    assert run(now=a_week_later).resent == ["drop/old.jpg"]  # photopipe reconcile: everything
    scheduled = reconcile.run(
        object_store(),
        media_repository(),
        ingest_queue(),
        failed_queue(),
        boto3.client("stepfunctions"),
        a_week_later,
        media_events(),
        look_back=reconcile.SCHEDULED_LOOK_BACK,
    )
    assert scheduled.resent == []


class _AnHourLater(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> _AnHourLater:  # type: ignore[override]
        return cls.fromtimestamp(LATER.timestamp(), tz)


def test_the_scheduled_function_sends_a_lost_event_again_and_fails_a_run_left_without_a_status(
    stack: dict[str, Any], context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an original in the drop folder a day old whose event was lost, and a run stopped without a status
    boto3.client("s3").put_object(Bucket="media", Key="drop/lost.jpg", Body=b"x")
    sfn = boto3.client("stepfunctions")
    execution = sfn.start_execution(stateMachineArn=stack["state_machine_arn"], name="P2", input="{}")["executionArn"]
    sfn.stop_execution(executionArn=execution)
    media_repository().mark_processing(
        PipelineInput(media_id="P2", bucket="media", key="drop/p2.jpg", etag="e", size=3), execution
    )
    # When the schedule runs the function (an hour later)
    handler = load_function("reconcile")
    monkeypatch.setattr(handler, "datetime", _AnHourLater)
    done = handler.lambda_handler({}, context)
    # Then the lost event is queued again and the run's media is FAILED with a message for a redrive
    assert done == {"resent": ["drop/lost.jpg"], "failed": ["P2"]}
    assert [e["detail"]["object"]["key"] for e in queued(stack["ingest_queue_url"])] == ["drop/lost.jpg"]
    assert [m["media_id"] for m in queued(stack["failed_queue_url"])] == ["P2"]


def test_the_scheduled_function_leaves_originals_older_than_a_day_to_photopipe_reconcile(
    stack: dict[str, Any], context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an original whose event was lost a week ago
    boto3.client("s3").put_object(Bucket="media", Key="drop/last-week.jpg", Body=b"x")

    class _AWeekLater(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> _AWeekLater:  # type: ignore[override]
            return cls.fromtimestamp((datetime.now(UTC) + timedelta(days=7)).timestamp(), tz)

    # When the schedule runs the function
    handler = load_function("reconcile")
    monkeypatch.setattr(handler, "datetime", _AWeekLater)
    done = handler.lambda_handler({}, context)

    # Then it looked back a day only: the old original is left alone (its run is `photopipe reconcile`'s)
    assert done == {"resent": [], "failed": []}
    assert queued(stack["ingest_queue_url"]) == []


def test_a_library_of_originals_is_checked_a_hundred_media_at_a_time(stack: dict[str, Any]) -> None:
    # Given 250 originals, of which 240 have their media and 10 lost their event
    s3, repository = boto3.client("s3"), media_repository()
    lost = []
    for n in range(250):
        key = f"drop/library/{n:03d}.jpg"
        etag = s3.put_object(Bucket="media", Key=key, Body=f"photo {n}".encode())["ETag"].strip('"')
        if n % 25 == 7:
            lost.append(key)
            continue
        media_id = derived_media_id("media", key, etag)
        repository._table.put_item(
            Item={"pk": f"MEDIA#{media_id}", "sk": "META", "media_id": media_id, "status": "READY"}
        )  # noqa: SLF001
    requests: list[str] = []
    client = repository._table.meta.client  # noqa: SLF001 - counting the reconciler's reads of the table
    client.meta.events.register("before-call.dynamodb", lambda model, **_: requests.append(model.name))

    # When the reconciler runs
    done = run()

    # Then exactly the lost ones are sent again, from three batched reads of the table (not one per original)
    assert sorted(done.resent) == lost
    assert requests == ["BatchGetItem"] * 3 + ["Query"]  # and the one page of PROCESSING media (none)


def test_the_scheduled_function_sends_nothing_again_while_events_wait_in_the_ingest_queue(
    stack: dict[str, Any], context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an original whose media is not made yet, and an event waiting in the ingest queue (a burst waiting for
    # in-flight slots: its photos' originals are older than the grace, their events not lost)
    boto3.client("s3").put_object(Bucket="media", Key="drop/waiting.jpg", Body=b"x")
    boto3.client("sqs").send_message(QueueUrl=stack["ingest_queue_url"], MessageBody=json.dumps({"waiting": True}))
    handler = load_function("reconcile")
    monkeypatch.setattr(handler, "datetime", _AnHourLater)

    # When the schedule runs the function, nothing is sent again
    assert handler.lambda_handler({}, context) == {"resent": [], "failed": []}

    # Then, once the queue has drained, the next run sends the lost original's event again
    assert [m for m in queued(stack["ingest_queue_url"]) if m == {"waiting": True}]
    sqs = boto3.client("sqs")
    sqs.purge_queue(QueueUrl=stack["ingest_queue_url"])
    assert handler.lambda_handler({}, context) == {"resent": ["drop/waiting.jpg"], "failed": []}
