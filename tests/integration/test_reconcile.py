"""`photopipe reconcile` on the live stack: loose ends left by lost events and closed runs all end final.

Faults are made the way an operator would make them: the ingest rule left without its target while objects arrive
(their events are lost), a run stopped while its Resize is throttled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from click.testing import CliRunner

from photopipe.cli import main
from photopipe.media import MediaReader
from photopipe.soak import tiny_photo, upload_bytes
from photopipe.stack import Stack
from photopipe.upload import ApiClient
from photopipe_core.keys import media_id_for_object
from photopipe_core.models import Status


def physical(stack: Stack, aws_client: Callable[[str], Any], logical: str) -> str:
    resource = aws_client("cloudformation").describe_stack_resource(
        StackName=stack.settings.stack_name, LogicalResourceId=logical
    )
    return str(resource["StackResourceDetail"]["PhysicalResourceId"])


@contextmanager
def events_lost(stack: Stack, aws_client: Callable[[str], Any]) -> Iterator[None]:
    """The ingest rule's target is taken away for a while (as a misconfiguration would): events in between are lost."""
    events = aws_client("events")
    rule = physical(stack, aws_client, "IngestRule").split("|")[-1]
    targets = events.list_targets_by_rule(Rule=rule)["Targets"]
    events.remove_targets(Rule=rule, Ids=[target["Id"] for target in targets])
    try:
        yield
    finally:
        events.put_targets(Rule=rule, Targets=targets)


def reconcile(stack: Stack) -> dict[str, list[str]]:
    result = CliRunner().invoke(
        main,
        ["--endpoint-url", stack.settings.endpoint_url, "reconcile", "--grace", "0", "--stuck-after", "0", "--json"],
    )
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output.strip().splitlines()[-1]))


def test_reconcile_finishes_lost_events_uploads_and_closed_runs(
    stack: Stack, aws_client: Callable[[str], Any], operator_key: str
) -> None:
    reader, s3, sfn, lam = MediaReader(stack), aws_client("s3"), aws_client("stepfunctions"), aws_client("lambda")
    bucket = stack.outputs.MediaBucketName
    run_id = f"rec-{time.time_ns()}"
    # Given a drop-folder original and an API upload whose events were lost
    with events_lost(stack, aws_client):
        key = f"drop/{run_id}/lost photo.jpg"
        etag = s3.put_object(Bucket=bucket, Key=key, Body=tiny_photo(1, run_id), ContentType="image/jpeg")["ETag"]
        uploaded = upload_bytes(ApiClient(stack.outputs.ApiUrl, operator_key), "lost-upload.jpg", tiny_photo(2, run_id))
    dropped = media_id_for_object(bucket, key, etag)
    assert reader.get(dropped) is None and reader.get(uploaded).status is Status.PENDING_UPLOAD  # type: ignore[union-attr]
    # and a photo whose run was stopped mid-way (its Resize throttled), left PROCESSING
    resize = physical(stack, aws_client, "ResizeFunction")
    lam.put_function_concurrency(FunctionName=resize, ReservedConcurrentExecutions=0)
    try:
        stuck = upload_bytes(ApiClient(stack.outputs.ApiUrl, operator_key), "stuck.jpg", tiny_photo(3, run_id))
        arn = stack.outputs.execution_arn(stuck)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            reader.get(stuck) is None or reader.get(stuck).status is not Status.PROCESSING
        ):  # type: ignore[union-attr]
            time.sleep(0.25)
        sfn.stop_execution(executionArn=arn, error="Test.Stopped")
    finally:
        lam.delete_function_concurrency(FunctionName=resize)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        time.sleep(0.25)
    assert reader.get(stuck).status is Status.PROCESSING  # type: ignore[union-attr]
    # When the reconciler runs
    done = reconcile(stack)
    # Then the lost events are sent again and both photos end READY; the stopped run's media is FAILED, redrivable
    assert key in done["resent"] and f"uploads/{uploaded}/original" in done["resent"], (
        done,
        s3.list_objects_v2(Bucket=bucket, Prefix=f"drop/{run_id}").get("Contents"),
    )
    assert stuck in done["failed"]
    finals = reader.wait_for_terminal([dropped, uploaded, stuck], timeout=120)
    assert {media_id: item.status if item else None for media_id, item in finals.items()} == {
        dropped: Status.READY,
        uploaded: Status.READY,
        stuck: Status.FAILED,
    }
    # and a second run finds nothing left to do for them
    again = reconcile(stack)
    assert key not in again["resent"] and stuck not in again["failed"]
