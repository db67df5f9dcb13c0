"""`photopipe stats` on the deployed stack: a known mix of outcomes is reported exactly, with times per step and
the queues; the functions' own metrics reach CloudWatch, and the stack's dashboard charts them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner

from photopipe.apikeys import ApiKeys
from photopipe.cli import main
from photopipe.media import MediaReader
from photopipe.soak import follow, tiny_photo, upload_bytes
from photopipe.stack import Stack
from photopipe.upload import ApiClient
from photopipe_core.models import Status
from tests.integration.cloudwatch import metric_sum

QUEUES = {
    "IngestQueue",
    "IngestDLQ",
    "FailedQueue",
    "WebhookQueue",
    "WebhookDLQ",
    "ReprocessQueue",
    "ReprocessDLQ",
}


def test_stats_report_exactly_the_mix_of_outcomes_an_owner_had(
    stack: Stack,
    api_keys: ApiKeys,
    aws_client: Callable[[str], Any],
    function_name: Callable[[str], str],
) -> None:
    # Given an owner of their own, with two photos READY, one sent twice (DUPLICATE), a text file (REJECTED),
    # two whose last step could not run (FAILED), one of them retried (READY), and an upload never sent
    key = api_keys.create(f"stats-{uuid.uuid4().hex[:8]}")
    api = ApiClient(stack.outputs.ApiUrl, key.value)
    reader = MediaReader(stack)
    run = uuid.uuid4().hex
    first, second = tiny_photo(1, run), tiny_photo(2, run)
    ready = [upload_bytes(api, "one.jpg", first), upload_bytes(api, "two.jpg", second)]
    assert set(follow(reader, ready, timeout=180).values()) == {Status.READY}
    others = [upload_bytes(api, "again.jpg", first), upload_bytes(api, "list.jpg", b"a shopping list, not a photo")]
    assert sorted(map(str, follow(reader, others, timeout=180).values())) == ["DUPLICATE", "REJECTED"]
    aws_lambda, finalize = aws_client("lambda"), function_name("FinalizeFunction")
    aws_lambda.put_function_concurrency(FunctionName=finalize, ReservedConcurrentExecutions=0)
    try:
        failing = [upload_bytes(api, f"{n}.jpg", tiny_photo(n, run)) for n in (3, 4)]
        assert set(follow(reader, failing, timeout=240).values()) == {Status.FAILED}
    finally:
        aws_lambda.delete_function_concurrency(FunctionName=finalize)
    assert api.request("POST", f"/v1/media/{failing[0]}/retry").status_code == 202
    assert follow(reader, failing[:1], timeout=180)[failing[0]] is Status.READY
    pending = api.request(
        "POST", "/v1/uploads", json={"filename": "never.jpg", "content_type": "image/jpeg", "size": 1000}
    )
    assert pending.status_code == 201, pending.text

    # When the operator asks for that owner's stats of the last hour
    result = CliRunner().invoke(
        main, ["--endpoint-url", stack.settings.endpoint_url, "stats", "--since", "1h", "--owner", key.owner, "--json"]
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)

    # Then they are exactly that mix
    assert stats["owner"] == key.owner and stats["media"] == 7 and stats["finished"] == 6
    assert stats["by_status"] == {"DUPLICATE": 1, "FAILED": 1, "PENDING_UPLOAD": 1, "READY": 3, "REJECTED": 1}
    assert list(stats["rejected_by_reason"].values()) == [1]
    reason = next(iter(stats["rejected_by_reason"]))
    assert reader.get(others[1]).reason == reason  # type: ignore[union-attr]
    assert stats["rates"] == {
        "ready": 0.5,
        "duplicate": round(1 / 6, 4),
        "rejected": round(1 / 6, 4),
        "failed": round(1 / 6, 4),
        "retried": round(1 / 6, 4),
    }
    e2e = stats["end_to_end_seconds"]
    assert e2e["count"] == 6 and 0 < e2e["p50"] <= e2e["p95"] < 600
    # the steps of each media's latest run: three READY, one DUPLICATE, one REJECTED by Validate, one FAILED in
    # Finalize (the retried media's first run is not its latest)
    steps = {name: step["count"] for name, step in stats["step_seconds"].items()}
    assert stats["sampled_runs"] == 6
    assert steps == {
        "Validate": 6,
        "Dedupe": 5,
        "Resize": 4,
        "Finalize": 4,
        "Reject": 1,
        "MarkDuplicate": 1,
        "MarkFailed": 1,
    }
    assert all(0 < step["p50"] <= step["p95"] for step in stats["step_seconds"].values())
    assert set(stats["queues"]) == QUEUES
    assert stats["oldest_unfinished"] is None and stats["max_in_flight"] >= 1
    assert set(stats["reconciler"]) == {"resent", "failed", "slots_swept"}
    assert set(stats["step_errors"]) == {"Validate", "Dedupe", "Resize", "Finalize"}

    # And the table is the same figures for people
    shown = CliRunner().invoke(
        main, ["--endpoint-url", stack.settings.endpoint_url, "stats", "--since", "1h", "--owner", key.owner]
    )
    assert shown.exit_code == 0, shown.output
    assert "7 photos" in shown.output and "upload → final status" in shown.output and "ReprocessDLQ" in shown.output


def test_the_functions_metrics_reach_cloudwatch_and_the_dashboard_charts_them(
    stack: Stack, api: ApiClient, aws_client: Callable[[str], Any]
) -> None:
    # Given a photo processed
    cloudwatch = aws_client("cloudwatch")
    service = {"Name": "service", "Value": stack.settings.stack_name}
    before = metric_sum(cloudwatch, "photopipe", "processed", service)
    media_id = upload_bytes(api, "metric.jpg", tiny_photo(1, uuid.uuid4().hex))
    assert follow(MediaReader(stack), [media_id], timeout=180)[media_id] is Status.READY

    # Then its Finalize step's metric is in CloudWatch (logged in the embedded metric format by Powertools)
    assert metric_sum(cloudwatch, "photopipe", "processed", service, at_least=before + 1) >= before + 1

    # And the stack's dashboard exists, charting the pipeline's own resources
    name = stack.outputs.DashboardName
    body = json.loads(cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"])
    charted = json.dumps(body)
    for resource in (stack.outputs.PipelineStateMachineArn, stack.outputs.IngestQueueUrl.rsplit("/", 1)[-1]):
        assert resource in charted
    titles = [widget["properties"]["title"] for widget in body["widgets"]]
    assert any("per step" in title for title in titles) and any("dead-letter" in title for title in titles)
    assert name in [d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]]


def test_stats_refuse_a_window_that_is_not_a_duration(stack: Stack) -> None:
    result = CliRunner().invoke(main, ["--endpoint-url", stack.settings.endpoint_url, "stats", "--since", "yesterday"])
    assert result.exit_code == 2 and "not a duration" in result.output
