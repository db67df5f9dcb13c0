"""The launcher owns exactly what it starts. These tests use their own instance, apart from the session's."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import psutil
import pytest

from photopipe.stack import Stack
from photopipe_infra.deploy import deploy
from photopipe_infra.launcher import EmbeddedLocalStack, PortInUse
from photopipe_infra.paths import state_dir
from tests.integration.conftest import LAMBDA_ROLE, TEST_PORT, zip_files

OWN_PORT = TEST_PORT - 1


@pytest.fixture
def own_instance() -> Iterator[EmbeddedLocalStack]:
    instance = EmbeddedLocalStack(port=OWN_PORT, folder=state_dir() / "test-launcher")
    shutil.rmtree(instance.saved_dir, ignore_errors=True)  # what an earlier run saved
    try:
        yield instance
    finally:
        instance.stop()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def start_a_lambda_process(endpoint: str) -> None:
    lam = boto3.client(
        "lambda", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    lam.create_function(
        FunctionName="probe",
        Runtime="python3.13",
        Handler="h.handler",
        Role=LAMBDA_ROLE,
        Code={"ZipFile": zip_files({"h.py": "def handler(e, c):\n    return 'ok'\n"})},
    )
    lam.get_waiter("function_active_v2").wait(FunctionName="probe", WaiterConfig={"Delay": 0.5, "MaxAttempts": 60})
    assert json.loads(lam.invoke(FunctionName="probe")["Payload"].read()) == "ok"


def test_start_twice_reuses_the_instance_and_stop_leaves_no_process(own_instance: EmbeddedLocalStack) -> None:
    own_instance.stop()  # a running instance would be reused, not started afresh
    left_over = own_instance.tmp_dir / "lambda" / "awslambda-us-east-1-tasks" / "old-function" / "code.py"
    left_over.parent.mkdir(parents=True, exist_ok=True)
    left_over.write_text("# unzipped by an instance that was killed\n")
    own_instance.log_file.write_text("the previous run's log\n")

    first = own_instance.start()

    assert not left_over.exists()
    assert own_instance.log_file.with_name("localstack.log.1").read_text() == "the previous run's log\n"
    assert "previous run" not in own_instance.log_file.read_text()
    again = own_instance.start()
    assert not first.reused
    assert again.reused
    assert again.pid == first.pid
    start_a_lambda_process(own_instance.endpoint)
    pids = [p.pid for p in own_instance.processes()]
    assert pids[0] == first.pid
    assert any("lambda_bootstrap" in " ".join(psutil.Process(pid).cmdline()) for pid in pids[1:])

    stopped = own_instance.stop()

    assert set(pids) <= set(stopped)
    assert [pid for pid in pids if alive(pid)] == []
    assert not own_instance.pid_file.exists()
    assert own_instance.port_holder() is None
    assert not own_instance.tmp_dir.exists()  # the Lambda's unzipped code went with it


@pytest.mark.parametrize("stale", ["own-pid", "dead-pid", "garbage"])
def test_a_stale_pid_file_does_not_break_start(own_instance: EmbeddedLocalStack, stale: str) -> None:
    own_instance.folder.mkdir(parents=True, exist_ok=True)
    dead = psutil.Popen(["true"])
    dead.wait()
    content = {"own-pid": str(os.getpid()), "dead-pid": str(dead.pid), "garbage": "not a pid"}[stale]
    own_instance.pid_file.write_text(content)

    started = own_instance.start()

    assert not started.reused
    assert started.pid != os.getpid()
    assert own_instance.is_healthy()
    assert alive(os.getpid())  # the launcher never touched the process the stale file named


def test_a_port_taken_by_something_else_is_reported(own_instance: EmbeddedLocalStack) -> None:
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", OWN_PORT))
        squatter.listen()
        with pytest.raises(PortInUse) as error:
            own_instance.start()
    assert f"Port {OWN_PORT}" in str(error.value)
    assert f"PID {os.getpid()}" in str(error.value)


def test_deploy_twice_is_idempotent(stack: Stack, aws_client: Callable[[str], Any]) -> None:
    cfn = aws_client("cloudformation")
    before = cfn.describe_stack_resources(StackName="photopipe")["StackResources"]
    result = deploy(stack.settings.endpoint_url, "photopipe")
    assert not result.changed
    after = cfn.describe_stack_resources(StackName="photopipe")["StackResources"]
    assert sorted(r["PhysicalResourceId"] for r in after) == sorted(r["PhysicalResourceId"] for r in before)
    stacks = [
        s
        for s in cfn.list_stacks()["StackSummaries"]
        if s["StackName"] == "photopipe" and s["StackStatus"] != "DELETE_COMPLETE"
    ]
    assert len(stacks) == 1


def test_the_log_keeps_the_requests_that_failed_and_not_those_that_succeeded(
    own_instance: EmbeddedLocalStack,
) -> None:
    own_instance.request_log = False  # the default (photopipe_infra.request_log filters what succeeded)
    own_instance.start()
    sqs = boto3.client(
        "sqs", endpoint_url=own_instance.endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    url = sqs.create_queue(QueueName="logged")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="fine")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName="never-made")
    own_instance.stop()  # its log is complete once it has stopped

    lines = own_instance.log_file.read_text(errors="replace").splitlines()

    assert any("sqs.GetQueueUrl => 400" in line for line in lines), lines[-20:]
    assert not any("sqs.SendMessage => 200" in line or "sqs.CreateQueue => 200" in line for line in lines)
