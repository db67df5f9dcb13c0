"""LocalStack's finished threads give their stacks back (photopipe_infra.thread_reaper).

Every Step Functions execution starts threads that LocalStack keeps in ``localstack.utils.threads.TMP_THREADS``
until shutdown; on Python 3.13 each kept one held its stack mapped, until LocalStack could start no more threads.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from photopipe_infra.launcher import EmbeddedLocalStack

SFN_ROLE = "arn:aws:iam::000000000000:role/sfn-test"
PASS_MACHINE = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "End": True}}}


def mappings(pid: int) -> int:
    return len(Path(f"/proc/{pid}/maps").read_text().splitlines())


def run_executions(sfn: Any, arn: str, count: int, timeout: float = 240) -> None:
    """Start ``count`` executions from 8 clients and wait (bounded) until none is running."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: sfn.start_execution(stateMachineArn=arn, name=f"run-{uuid.uuid4().hex}"), range(count)))
    deadline = time.monotonic() + timeout
    while sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING", maxResults=1)["executions"]:
        assert time.monotonic() < deadline, f"executions still running after {timeout} s"
        time.sleep(0.5)


def settled_mappings(pid: int, seconds: float = 5.0) -> int:
    """The mapping count once the reaper has had its rounds (it runs every 0.5 s): the lowest seen over a while."""
    deadline = time.monotonic() + seconds
    lowest = mappings(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        lowest = min(lowest, mappings(pid))
    return lowest


def test_thousands_of_executions_leave_localstack_s_memory_mappings_flat(
    localstack: EmbeddedLocalStack, aws_client: Callable[[str], Any]
) -> None:
    # Given a LocalStack that has already run some executions (its pools and caches are warm)
    pid = localstack.owned_pid()
    assert pid is not None
    sfn = aws_client("stepfunctions")
    arn = sfn.create_state_machine(
        name=f"threads-{uuid.uuid4().hex[:8]}", definition=json.dumps(PASS_MACHINE), roleArn=SFN_ROLE
    )["stateMachineArn"]
    try:
        run_executions(sfn, arn, 200)
        before = settled_mappings(pid)
        # When 2,000 more run (each starts two threads that LocalStack keeps in TMP_THREADS: 4,000 thread starts)
        run_executions(sfn, arn, 2000)
        after = settled_mappings(pid)
    finally:
        sfn.delete_state_machine(stateMachineArn=arn)
    # Then the mappings stay flat: a kept stack costs two (the stack and its guard page), so without the reaper
    # they would have grown by about 8,000.
    assert after - before < 400, f"memory mappings grew from {before} to {after}"
