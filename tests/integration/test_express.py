"""The pipeline as an EXPRESS workflow (`--parameter WorkflowType=EXPRESS`), on a stack of its own: every outcome,
one result per photo when a run is started twice, every slot given back without status-change events, redrive
from FailedQueue, and runs inspected through the state machine's log group and the media history."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner

from photopipe import samples
from photopipe.bench import runs_of
from photopipe.cli import main
from photopipe.load import stack_slots
from photopipe.media import MediaReader
from photopipe.runs import RunEvents
from photopipe.stack import Stack
from photopipe_core.models import MediaItem, Status, run_name
from tests.integration.conftest import drop


def finished(reader: MediaReader, media_ids: list[str], timeout: float = 120) -> dict[str, MediaItem]:
    items = reader.wait_for_terminal(media_ids, timeout=timeout)
    for media_id, item in items.items():
        assert item is not None and item.status.is_terminal, f"{media_id}: {item.status if item else 'missing'}"
    return {media_id: item for media_id, item in items.items() if item is not None}


def test_an_express_pipeline_keeps_every_guarantee(  # noqa: PLR0915 - one stack deployed for the whole story
    own_stack: Callable[..., Stack], aws_client: Callable[[str], Any]
) -> None:
    stack = own_stack(WorkflowType="EXPRESS")
    assert stack.workflow_type == "EXPRESS"
    reader = MediaReader(stack)
    sfn = stack.client("stepfunctions")

    # Every outcome: a new photo, the same bytes again, and a file that is not an image
    photo = samples.jpeg_bytes(samples.photo(1200, 900, seed=time.time_ns() % 10**6))
    new = drop(stack, aws_client, photo, "new.jpg")
    items = finished(reader, [new])
    copy = drop(stack, aws_client, photo, "copy.jpg")
    text = drop(stack, aws_client, b"just some text", "notes.jpg", content_type="image/jpeg")
    items |= finished(reader, [copy, text])
    assert {media_id: item.status for media_id, item in items.items()} == {
        new: Status.READY,
        copy: Status.DUPLICATE,
        text: Status.REJECTED,
    }
    assert all(":express:" in (item.execution_arn or "") for item in items.values())
    assert len(items[new].variants) == 3

    # The runs are read from the log group: the happy path enters at most six states
    runs = runs_of(stack, [new, copy, text])
    assert set(runs) == {item.execution_arn for item in items.values()}
    entered = [
        e["stateEnteredEventDetails"]["name"]
        for e in runs[items[new].execution_arn or ""]
        if "stateEnteredEventDetails" in e
    ]
    assert entered == ["Validate", "Dedupe", "IsDuplicate", "Resize", "Finalize"]
    execution = reader.execution(new)
    assert execution is not None and execution.status == "SUCCEEDED"

    # A second run of the same photo (EXPRESS starts are not idempotent) changes nothing
    before = reader.get(new)
    history = reader.history(new)
    second = sfn.start_execution(
        stateMachineArn=stack.outputs.PipelineStateMachineArn,
        name=new,
        input=json.dumps(before.source.model_dump(mode="json") | {"media_id": new}),  # type: ignore[union-attr]
    )["executionArn"]
    assert second != items[new].execution_arn
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (events := runs_of_arn(stack, second)):
        time.sleep(0.5)
    while time.monotonic() < deadline and events[-1]["type"] != "ExecutionSucceeded":
        time.sleep(0.5)
        events = runs_of_arn(stack, second)
    assert [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e] == [
        "Validate",
        "Superseded",
    ]
    assert reader.get(new) == before
    assert reader.history(new) == history

    # A step that keeps failing ends FAILED with its FailedQueue message; redrive makes it READY
    lam = aws_client("lambda")
    finalize = stack.client("cloudformation").describe_stack_resource(
        StackName=stack.settings.stack_name, LogicalResourceId="FinalizeFunction"
    )["StackResourceDetail"]["PhysicalResourceId"]
    lam.put_function_concurrency(FunctionName=finalize, ReservedConcurrentExecutions=0)
    try:
        failing = drop(stack, aws_client, samples.jpeg_bytes(samples.photo(900, 700, seed=26)), "failing.jpg")
        assert finished(reader, [failing])[failing].status is Status.FAILED
    finally:
        lam.delete_function_concurrency(FunctionName=finalize)
    runner = CliRunner()
    options = ["--endpoint-url", stack.settings.endpoint_url, "--stack-name", stack.settings.stack_name]
    redriven = runner.invoke(main, [*options, "redrive", failing])
    assert redriven.exit_code == 0, redriven.output
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (item := reader.get(failing)) is not None and item.status is not Status.READY:
        time.sleep(0.5)
    item = reader.get(failing)
    assert item is not None and item.status is Status.READY and item.attempts == 1
    assert run_name(item.execution_arn or "") == f"{failing}-1"
    assert [h["status"] for h in reader.history(failing)] == ["PROCESSING", "FAILED", "PROCESSING", "READY"]

    # Every slot was given back, with no status-change event to do it on AWS
    assert stack_slots(stack).held() == 0
    # And `photopipe stats` reads the runs' steps from the log group
    stats = runner.invoke(main, [*options, "stats", "--json"])
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.output)["step_seconds"]["Resize"]["count"] >= 1


def runs_of_arn(stack: Stack, execution_arn: str) -> list[dict[str, Any]]:
    return RunEvents(stack).of(execution_arn)
