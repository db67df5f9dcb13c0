"""The process Lambda executor, exercised through LocalStack's real Lambda API."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import pytest

from photopipe_infra.launcher import EmbeddedLocalStack
from tests.integration.cloudwatch import log_messages
from tests.integration.conftest import zip_files

HANDLER = textwrap.dedent(
    """
    import os, time, sys

    def handler(event, context):
        began = time.time()
        if event.get("sleep"):
            time.sleep(event["sleep"])
        if event.get("print"):
            print(event["print"])
        if event.get("raise"):
            raise KeyError(event["raise"])
        if event.get("exit"):
            os._exit(7)
        return {"pid": os.getpid(), "event": event, "function": context.function_name,
                "remaining_ms": context.get_remaining_time_in_millis(), "sys_path0": sys.path[0],
                "began": began}
    """
)


def invoke(lam: Any, name: str, payload: dict[str, Any], **kwargs: Any) -> tuple[dict[str, Any], Any]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), **kwargs)
    return response, json.loads(response["Payload"].read() or b"null")


@pytest.fixture
def lam(aws_client: Callable[[str], Any]) -> Any:
    return aws_client("lambda")


@pytest.fixture
def echo(lambda_function: Callable[..., str]) -> str:
    return lambda_function({"handler.py": HANDLER}, timeout=3)


def test_invoke_returns_the_handler_result(lam: Any, echo: str) -> None:
    response, body = invoke(lam, echo, {"x": 1})
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert body["event"] == {"x": 1}
    assert body["function"] == echo
    assert 0 < body["remaining_ms"] <= 3000
    assert body["sys_path0"].endswith("/code")  # the function's code comes first, as /var/task does in AWS


def test_handler_exception_is_an_unhandled_function_error(lam: Any, echo: str) -> None:
    response, body = invoke(lam, echo, {"raise": "missing"})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "KeyError"
    assert body["errorMessage"] == "'missing'"
    assert any("handler.py" in frame for frame in body["stackTrace"])


def test_timeout_is_reported_and_the_next_invoke_succeeds(lam: Any, echo: str) -> None:
    _, first = invoke(lam, echo, {})
    started = time.monotonic()
    response, body = invoke(lam, echo, {"sleep": 30})
    assert time.monotonic() - started < 10  # the 3 s timeout was enforced, not the 30 s sleep
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 3.00 seconds" in body["errorMessage"]
    assert not psutil.pid_exists(first["pid"]) or psutil.Process(first["pid"]).status() == psutil.STATUS_ZOMBIE
    response, body = invoke(lam, echo, {"after": "timeout"})
    assert "FunctionError" not in response
    assert body["event"] == {"after": "timeout"}
    assert body["pid"] != first["pid"]  # a fresh process replaced the one that timed out


def test_process_exit_is_an_error_then_the_function_recovers(lam: Any, echo: str) -> None:
    response, body = invoke(lam, echo, {"exit": True})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert "exit status 7" in body["errorMessage"]
    response, body = invoke(lam, echo, {"after": "exit"})
    assert "FunctionError" not in response
    assert body["event"] == {"after": "exit"}


def test_sigkill_of_the_handler_process_is_an_error_then_the_function_recovers(lam: Any, echo: str) -> None:
    _, first = invoke(lam, echo, {})
    pid = first["pid"]
    results: list[tuple[dict[str, Any], Any]] = []
    slow = threading.Thread(target=lambda: results.append(invoke(lam, echo, {"sleep": 2.5})))
    slow.start()
    time.sleep(0.7)
    os.kill(pid, signal.SIGKILL)
    slow.join(timeout=15)
    [(response, body)] = results
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert "signal: killed" in body["errorMessage"]
    response, body = invoke(lam, echo, {"after": "kill"})
    assert "FunctionError" not in response
    assert body["pid"] != pid


def test_a_process_killed_while_idle_is_replaced_on_the_next_invoke(
    lam: Any, echo: str, localstack: EmbeddedLocalStack
) -> None:
    _, first = invoke(lam, echo, {})
    log_offset = localstack.log_file.stat().st_size
    process = psutil.Process(first["pid"])
    process.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.05)
    response, body = invoke(lam, echo, {"after": "idle kill"})
    assert "FunctionError" not in response
    assert body["event"] == {"after": "idle kill"} and body["pid"] != first["pid"]
    # Replaced before the invoke was sent to it: no failed attempt for LocalStack to retire and retry.
    with localstack.log_file.open("rb") as log:
        log.seek(log_offset)
        assert b"Failed invocation" not in log.read()


def test_layer_code_is_importable(lam: Any, lambda_function: Callable[..., str]) -> None:
    layer = lam.publish_layer_version(
        LayerName="test-greeting",
        Content={"ZipFile": zip_files({"python/greeting.py": "def greet(name):\n    return f'hello {name}'\n"})},
        CompatibleRuntimes=["python3.13"],
    )
    name = lambda_function(
        {"handler.py": "import greeting\n\ndef handler(event, context):\n    return greeting.greet(event['name'])\n"},
        layers=[layer["LayerVersionArn"]],
    )
    _, body = invoke(lam, name, {"name": "layer"})
    assert body == "hello layer"


def test_concurrent_invokes_share_a_bounded_pool_of_warm_processes(
    lam: Any, echo: str, localstack: EmbeddedLocalStack
) -> None:
    limit = localstack.lambda_processes
    count = limit + 3
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(lambda i: invoke(lam, echo, {"sleep": 1.0, "i": i}), range(count)))
    elapsed = time.monotonic() - started
    assert sorted(body["event"]["i"] for _, body in results) == list(range(count))
    assert all("FunctionError" not in response for response, _ in results)
    # Up to the limit they ran side by side in separate processes; the rest waited for one of those, warm.
    assert len({body["pid"] for _, body in results}) == limit
    assert elapsed < count * 1.0
    assert elapsed >= 2 * 1.0
    # Each waited only for a process, not against its own 3 s timeout.
    assert all(body["remaining_ms"] > 1500 for _, body in results)


def test_short_concurrent_invokes_are_served_warm_rather_than_by_new_processes(
    lam: Any, lambda_function: Callable[..., str]
) -> None:
    # Importing the handler takes as long as boto3, pydantic and Powertools take in a real function.
    name = lambda_function({"handler.py": HANDLER + "\ntime.sleep(0.6)\n"}, timeout=5)
    _, first = invoke(lam, name, {})  # the function's one cold start

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda i: invoke(lam, name, {"sleep": 0.02, "i": i}), range(6)))

    assert sorted(body["event"]["i"] for _, body in results) == list(range(6))
    assert all("FunctionError" not in response for response, _ in results)
    # Six 20 ms invocations queue for the warm process for less time than another process would take to start.
    assert {body["pid"] for _, body in results} == {first["pid"]}


def test_invocations_waiting_for_a_process_are_served_in_arrival_order(
    lam: Any, lambda_function: Callable[..., str], localstack: EmbeddedLocalStack
) -> None:
    name = lambda_function({"handler.py": HANDLER + "\ntime.sleep(0.3)\n"}, timeout=30)
    count = localstack.lambda_processes + 6

    def send(i: int) -> tuple[dict[str, Any], Any]:
        time.sleep(0.15 * i)  # they arrive one after another; most wait longer than a process takes to start
        return invoke(lam, name, {"sleep": 0.5, "i": i})

    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(send, range(count)))

    assert all("FunctionError" not in response for response, _ in results)
    by_start = sorted((body for _, body in results), key=lambda body: body["began"])
    # The first invocation in each process started it, racing the others' starts; every other one waited in line
    # for a warm process.
    first_in_process = {body["pid"]: body["event"]["i"] for body in reversed(by_start)}
    warm = [body["event"]["i"] for body in by_start if body["event"]["i"] not in first_in_process.values()]
    assert len(warm) >= 6
    assert warm == sorted(warm)


def test_handler_boto3_calls_reach_localstack(
    aws_client: Callable[[str], Any], lambda_function: Callable[..., str], lam: Any
) -> None:
    bucket = f"from-lambda-{int(time.time() * 1000)}"
    name = lambda_function(
        {
            "handler.py": textwrap.dedent(
                """
        import boto3

        def handler(event, context):
            boto3.client("s3").create_bucket(Bucket=event["bucket"])
            return [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
        """
            )
        }
    )
    response, body = invoke(lam, name, {"bucket": bucket})
    assert "FunctionError" not in response, body
    assert bucket in body
    aws_client("s3").head_bucket(Bucket=bucket)  # the bucket exists outside the Lambda too


def test_async_event_invoke_runs(
    aws_client: Callable[[str], Any], lambda_function: Callable[..., str], lam: Any
) -> None:
    s3 = aws_client("s3")
    bucket = f"async-{int(time.time() * 1000)}"
    s3.create_bucket(Bucket=bucket)
    name = lambda_function(
        {
            "handler.py": textwrap.dedent(
                """
        import boto3

        def handler(event, context):
            boto3.client("s3").put_object(Bucket=event["bucket"], Key="done", Body=b"async")
        """
            )
        }
    )
    response = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"bucket": bucket}).encode())
    assert response["StatusCode"] == 202
    s3.get_waiter("object_exists").wait(Bucket=bucket, Key="done", WaiterConfig={"Delay": 0.5, "MaxAttempts": 40})
    assert s3.get_object(Bucket=bucket, Key="done")["Body"].read() == b"async"


def test_handler_output_reaches_cloudwatch_logs(aws_client: Callable[[str], Any], lam: Any, echo: str) -> None:
    marker = f"log-marker-{time.time_ns()}"
    invoke(lam, echo, {"print": marker})
    logs = aws_client("logs")
    messages = log_messages(logs, echo, lambda found: any(marker in message for message in found))
    assert any(marker in message for message in messages)
    assert any(message.startswith("REPORT RequestId:") for message in messages)


def test_deleting_a_function_stops_its_processes(lam: Any, lambda_function: Callable[..., str]) -> None:
    name = lambda_function({"handler.py": HANDLER})
    _, body = invoke(lam, name, {})
    pid = body["pid"]
    assert psutil.pid_exists(pid)
    lam.delete_function(FunctionName=name)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and psutil.pid_exists(pid):
        time.sleep(0.2)
    assert not psutil.pid_exists(pid)
