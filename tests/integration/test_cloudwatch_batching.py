"""Lambda and SQS metrics and Lambda logs reach CloudWatch in batches (photopipe_infra.cloudwatch_batching): every
data point and every log line still arrives, with nothing counted twice."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from photopipe_infra import venvs
from tests.integration.cloudwatch import log_messages, metric_sum
from tests.integration.conftest import LAMBDA_ROLE
from tests.integration.test_request_counts import counts

HANDLER = textwrap.dedent(
    """
    def handler(event, context):
        for line in range(event["lines"]):
            print(f"run {event['run']} line {line}")
        if event.get("fail"):
            raise ValueError("asked to fail")
        return {"ok": True}
    """
)


def test_every_invocation_is_counted_and_every_log_line_arrives(
    aws_client: Callable[[str], Any], lambda_function: Callable[..., str]
) -> None:
    function = lambda_function({"handler.py": HANDLER})
    lam, cloudwatch, logs = aws_client("lambda"), aws_client("cloudwatch"), aws_client("logs")
    run = uuid.uuid4().hex[:8]
    payloads = [{"run": run, "lines": 50, "fail": index % 4 == 0} for index in range(12)]  # 3 of them fail
    with ThreadPoolExecutor(4) as pool:  # concurrent, so the log shipper batches several invocations at once
        list(pool.map(lambda p: lam.invoke(FunctionName=function, Payload=json.dumps(p).encode()), payloads))

    dimension = {"Name": "FunctionName", "Value": function}
    assert metric_sum(cloudwatch, "AWS/Lambda", "Invocations", dimension, at_least=12) == 12
    assert metric_sum(cloudwatch, "AWS/Lambda", "Errors", dimension, at_least=3) == 3

    messages = log_messages(logs, function, lambda found: sum(m.startswith("REPORT") for m in found) == 12)
    printed = [message for message in messages if message.startswith(f"run {run} line")]
    assert len(printed) == 12 * 50  # every line of every invocation, none twice
    assert sum(message.startswith("REPORT RequestId:") for message in messages) == 12


EMF_HANDLER = textwrap.dedent(
    """
    import json, time

    def handler(event, context):
        document = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [{
                    "Namespace": event["namespace"],
                    "Dimensions": [["service", "step"]],
                    "Metrics": [{"Name": "processed", "Unit": "Count"}, {"Name": "took", "Unit": "Milliseconds"},
                                {"Name": "absent", "Unit": "Count"}, {"Name": "words", "Unit": "Count"}],
                }],
            },
            "service": "photopipe", "step": "resize", "processed": 1, "took": [10.0, 30.0], "words": "not a number",
        }
        print(json.dumps(document))
        print('{"_aws": "not a metrics document"}')
        print("a line that only mentions \\"_aws\\"")
        return {"ok": True}
    """
)


def test_metrics_a_function_logs_in_the_embedded_format_become_data_points(
    aws_client: Callable[[str], Any], lambda_function: Callable[..., str]
) -> None:
    # Given a function that logs embedded-metric-format documents (as Powertools' Metrics does), and lines that
    # only look like them
    function = lambda_function({"handler.py": EMF_HANDLER})
    lam, cloudwatch = aws_client("lambda"), aws_client("cloudwatch")
    namespace = f"emf-{uuid.uuid4().hex[:8]}"

    # When it runs three times
    for _ in range(3):
        result = lam.invoke(FunctionName=function, Payload=json.dumps({"namespace": namespace}).encode())
        assert "FunctionError" not in result

    # Then each metric is in CloudWatch once per run, with its dimensions and every value of a list
    dimensions = [{"Name": "service", "Value": "photopipe"}, {"Name": "step", "Value": "resize"}]
    assert metric_sum(cloudwatch, namespace, "processed", dimensions, at_least=3) == 3
    assert metric_sum(cloudwatch, namespace, "took", dimensions, at_least=120) == 120
    points = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName="took",
        Dimensions=dimensions,
        StartTime=datetime.now(UTC) - timedelta(minutes=10),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=3600,
        Statistics=["SampleCount", "Maximum"],
    )["Datapoints"]
    assert sum(p["SampleCount"] for p in points) == 6 and max(p["Maximum"] for p in points) == 30
    listed = cloudwatch.list_metrics(Namespace=namespace)["Metrics"]
    assert {m["MetricName"] for m in listed} == {"processed", "took"}  # no data point for missing or text members


def test_sqs_messages_are_counted(aws_client: Callable[[str], Any]) -> None:
    sqs, cloudwatch = aws_client("sqs"), aws_client("cloudwatch")
    name = f"test-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    try:
        for index in range(7):
            sqs.send_message(QueueUrl=url, MessageBody=str(index))
        dimension = {"Name": "QueueName", "Value": name}
        assert metric_sum(cloudwatch, "AWS/SQS", "NumberOfMessagesSent", dimension, at_least=7) == 7
    finally:
        sqs.delete_queue(QueueUrl=url)


SAME_ROWS = textwrap.dedent(
    """
    import sqlite3, sys, tempfile
    from datetime import UTC, datetime
    from localstack.services.cloudwatch.cloudwatch_database_helper import CloudwatchDatabase
    from photopipe_infra.cloudwatch_batching import add_metric_data_at_once

    def stored(add):
        folder = tempfile.mkdtemp()
        database = type("Db", (CloudwatchDatabase,), {"CLOUDWATCH_DATA_ROOT": folder, "METRICS_DB": folder + "/m.db"})()
        add(database, "000000000000", "eu-west-1", "Photopipe", DATA)
        with sqlite3.connect(database.METRICS_DB) as connection:
            return [
                sorted(connection.execute(f"SELECT * FROM {table}").fetchall())
                for table in (database.TABLE_SINGLE_METRICS, database.TABLE_AGGREGATED_METRICS)
            ]

    when = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    dims = [{"Name": "B", "Value": "2"}, {"Name": "A", "Value": "1"}]
    DATA = [{"MetricName": "Count", "Value": float(i), "Unit": "Count", "Timestamp": when, "Dimensions": dims}
            for i in range(300)]
    DATA += [{"MetricName": "Ms", "Values": [1.5, 2.5], "Counts": [2, 3], "Timestamp": when, "StorageResolution": 1}]
    DATA += [{"MetricName": "Agg", "Timestamp": when,
              "StatisticValues": {"SampleCount": 4, "Sum": 10, "Minimum": 1, "Maximum": 4}}]
    upstream, ours = stored(CloudwatchDatabase.add_metric_data), stored(add_metric_data_at_once)
    print(len(upstream[0]), len(upstream[1]), upstream == ours)
    """
)


def test_a_batch_of_metric_data_is_stored_as_upstream_stores_it_point_by_point() -> None:
    python = venvs.ensure(venvs.LOCALSTACK).python
    result = subprocess.run([str(python), "-c", SAME_ROWS], capture_output=True, text=True, timeout=120, check=True)  # noqa: S603
    assert result.stdout.split() == ["305", "1", "True"], result.stderr[-2000:]


def test_every_event_of_every_express_run_is_logged_in_order_in_fewer_requests(
    endpoint: str, aws_client: Callable[[str], Any]
) -> None:
    # Given an EXPRESS state machine logging every event (level ALL) to a log group
    sfn, logs = aws_client("stepfunctions"), aws_client("logs")
    name = f"logged-{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=name)
    group_arn = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["arn"]
    steps = {f"Step{n}": {"Type": "Pass", "Next": f"Step{n + 1}"} for n in range(4)}
    steps["Step4"] = {"Type": "Succeed"}
    machine = sfn.create_state_machine(
        name=name,
        type="EXPRESS",
        roleArn=LAMBDA_ROLE,
        definition=json.dumps({"StartAt": "Step0", "States": steps}),
        loggingConfiguration={
            "level": "ALL",
            "includeExecutionData": False,
            "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": group_arn}}],
        },
    )["stateMachineArn"]
    before = counts(endpoint)
    # When twelve runs go through it at once
    with ThreadPoolExecutor(4) as pool:
        runs = list(
            pool.map(lambda n: sfn.start_execution(stateMachineArn=machine, name=f"run{n}")["executionArn"], range(12))
        )

    # Then each run's events are all in the log group, once each and in order
    def logged() -> dict[str, list[dict[str, Any]]]:
        pages = logs.get_paginator("filter_log_events").paginate(logGroupName=name)
        found: dict[str, list[dict[str, Any]]] = {}
        for event in (json.loads(e["message"]) for page in pages for e in page["events"]):
            found.setdefault(event["execution_arn"], []).append(event)
        return found

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(
        any(e["type"] == "ExecutionSucceeded" for e in events) for events in logged().values()
    ) < len(runs):
        time.sleep(0.5)
    found = logged()
    assert set(found) == set(runs)
    for events in found.values():
        assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
        assert events[0]["type"] == "ExecutionStarted" and events[-1]["type"] == "ExecutionSucceeded"
        assert [e["details"]["name"] for e in events if e["type"] == "PassStateEntered"] == list(steps)[:4]
    # in fewer PutLogEvents requests than events
    events_logged = sum(len(events) for events in found.values())
    put = put_log_events(counts(endpoint)) - put_log_events(before)
    assert 0 < put < events_logged / 4, f"{put} PutLogEvents for {events_logged} events"


def put_log_events(counted: dict[str, Any]) -> int:
    """PutLogEvents requests answered: by clients and by the services themselves."""
    return sum(int((counted.get(kind) or {}).get("logs.PutLogEvents", 0)) for kind in ("requests", "internal"))
