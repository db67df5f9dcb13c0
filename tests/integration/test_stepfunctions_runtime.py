"""Step Functions in the embedded LocalStack: a definition is parsed once and shared by its executions, Task
clients are reused (photopipe_infra.stepfunctions_cache). Executions must still keep their own state."""

from __future__ import annotations

import hashlib
import json
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from photopipe_infra.launcher import EmbeddedLocalStack

SFN_ROLE = "arn:aws:iam::000000000000:role/sfn-test"

HANDLER = textwrap.dedent(
    """
    class Flaky(Exception):
        pass

    def handler(event, context):
        if event["fail"]:
            raise Flaky(f"run {event['n']} fails every time")
        return {"doubled": event["n"] * 2}
    """
)


@pytest.fixture
def sfn(aws_client: Callable[[str], Any]) -> Any:
    return aws_client("stepfunctions")


@pytest.fixture
def state_machine(sfn: Any) -> Iterator[Callable[..., str]]:
    created: list[str] = []

    def create(definition: dict[str, Any], kind: str = "STANDARD") -> str:
        arn = str(
            sfn.create_state_machine(
                name=f"test-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=SFN_ROLE, type=kind
            )["stateMachineArn"]
        )
        created.append(arn)
        return arn

    yield create
    for arn in created:
        sfn.delete_state_machine(stateMachineArn=arn)


def finished(sfn: Any, execution_arn: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.2)


def run(sfn: Any, machine: str, payload: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps(payload))["executionArn"]
    described = finished(sfn, execution)
    events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    return described, events


def test_concurrent_executions_keep_their_own_retries_and_results(
    sfn: Any, state_machine: Callable[[dict[str, Any]], str], lambda_function: Callable[..., str]
) -> None:
    """Eight executions of one definition at once (so they share its parsed program): each failing one is retried
    exactly MaxAttempts times, and each one's result is its own."""
    function = lambda_function({"handler.py": HANDLER})
    machine = state_machine(
        {
            "StartAt": "Work",
            "States": {
                "Work": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": function, "Payload.$": "$"},
                    "ResultSelector": {"doubled.$": "$.Payload.doubled"},
                    "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1}],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "GaveUp"}],
                    "End": True,
                },
                "GaveUp": {"Type": "Pass", "End": True},
            },
        }
    )
    payloads = [{"n": n, "fail": n % 2 == 1} for n in range(8)]
    with ThreadPoolExecutor(len(payloads)) as pool:
        runs = list(pool.map(lambda payload: run(sfn, machine, payload), payloads))

    for payload, (described, events) in zip(payloads, runs, strict=True):
        assert described["status"] == "SUCCEEDED", described
        output = json.loads(described["output"])
        attempts = sum(1 for event in events if event["type"] == "TaskScheduled")
        if payload["fail"]:
            assert attempts == 3  # the first try and MaxAttempts retries, no more, no fewer
            assert output["error"]["Error"] == "Flaky"
            assert f"run {payload['n']} fails" in output["error"]["Cause"]
        else:
            assert attempts == 1
            assert output == {"doubled": payload["n"] * 2}


def answer(value: str) -> dict[str, Any]:
    """A state machine that answers ``value``."""
    return {"StartAt": "Answer", "States": {"Answer": {"Type": "Pass", "Result": value, "End": True}}}


def test_an_updated_definition_is_what_new_executions_run(
    sfn: Any, state_machine: Callable[[dict[str, Any]], str]
) -> None:
    machine = state_machine(answer("first"))
    described, _ = run(sfn, machine, {})
    assert json.loads(described["output"]) == "first"

    sfn.update_state_machine(stateMachineArn=machine, definition=json.dumps(answer("second")))
    described, _ = run(sfn, machine, {})
    assert json.loads(described["output"]) == "second"


def test_a_closed_execution_keeps_its_whole_history_on_disk(
    sfn: Any, state_machine: Callable[[dict[str, Any]], str], localstack: EmbeddedLocalStack
) -> None:
    # Given a finished execution
    machine = state_machine(
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "End": True}}}
    )
    described, events = run(sfn, machine, {"photo": "x" * 1000})
    # Then its history was moved out of LocalStack's memory into one file, and reads back whole, in order
    spilled = (
        localstack.files_dir
        / "photopipe-sfn-history"
        / f"{hashlib.sha256(described['executionArn'].encode()).hexdigest()}.pickle"
    )
    deadline = time.monotonic() + 10  # it is written just after the execution's status is set
    while not spilled.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert spilled.is_file()
    assert [e["type"] for e in events] == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]
    assert [e["id"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert json.loads(events[0]["executionStartedEventDetails"]["input"]) == {"photo": "x" * 1000}


def test_a_closed_express_execution_keeps_no_history(
    sfn: Any, state_machine: Callable[..., str], localstack: EmbeddedLocalStack
) -> None:
    # Given a finished EXPRESS execution (its history cannot be read, as on AWS: its events go to a log group)
    machine = state_machine({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}, kind="EXPRESS")
    started = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"photo": "x" * 1000}))["executionArn"]
    history = localstack.files_dir / "photopipe-sfn-history"
    closed_standard, _ = run(sfn, state_machine({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}), {})
    spilled_standard = history / f"{hashlib.sha256(closed_standard['executionArn'].encode()).hexdigest()}.pickle"
    deadline = time.monotonic() + 10
    while not spilled_standard.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    # Then no file was written for it (a STANDARD one that closed after it was)
    assert spilled_standard.is_file()
    assert not (history / f"{hashlib.sha256(started.encode()).hexdigest()}.pickle").exists()
    with pytest.raises(ClientError):
        sfn.get_execution_history(executionArn=started)


def test_closed_executions_describe_the_revision_they_ran(
    sfn: Any, state_machine: Callable[[dict[str, Any]], str]
) -> None:
    # Closed executions share one copy of the state machine per revision (photopipe_infra.stepfunctions_history)
    machine = state_machine(answer("first"))
    old = [run(sfn, machine, {"n": n})[0]["executionArn"] for n in range(2)]
    sfn.update_state_machine(stateMachineArn=machine, definition=json.dumps(answer("second")))
    new = run(sfn, machine, {"n": 2})[0]["executionArn"]

    def ran(arn: str) -> Any:
        definition = sfn.describe_state_machine_for_execution(executionArn=arn)["definition"]
        return json.loads(definition)["States"]["Answer"]["Result"]

    assert [ran(arn) for arn in old] == ["first", "first"]
    assert ran(new) == "second"
    described = sfn.describe_execution(executionArn=old[0])
    assert json.loads(described["input"]) == {"n": 0} and described["inputDetails"] == {"included": True}
    assert described["outputDetails"] == {"included": True}
