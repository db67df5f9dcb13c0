"""The bill per 1,000 photos: usage priced at the data file's list prices (photopipe.bill)."""

from __future__ import annotations

import json

import pytest

from photopipe.bill import PricesMissing, Usage, bill, counts_between, express_gb_seconds, load_prices, report

PRICES = {
    "as_of": "2025-01-15",
    "source": "test",
    "regions": {
        "test-1": {
            "stepfunctions_standard_per_transition": 0.000025,
            "stepfunctions_express_per_request": 0.000001,
            "stepfunctions_express_per_gb_second": 0.00001667,
            "stepfunctions_express_memory_gb": 0.0625,
            "stepfunctions_express_duration_step_s": 0.1,
            "lambda_per_request": 0.0000002,
            "lambda_per_gb_second": {"x86_64": 0.0000166667, "arm64": 0.0000133334},
            "s3_tier1_per_request": 0.000005,
            "s3_tier2_per_request": 0.0000004,
            "s3_storage_per_gb_month": 0.023,
            "dynamodb_per_write_unit": 0.000000625,
            "dynamodb_per_read_unit": 0.000000125,
            "dynamodb_storage_per_gb_month": 0.25,
            "sqs_per_request": 0.0000004,
            "apigateway_rest_per_request": 0.0000035,
            "eventbridge_per_custom_event": 0.000001,
        }
    },
    "s3_tier1_operations": ["PutObject", "ListObjectsV2"],
    "s3_free_operations": ["DeleteObject"],
}

# 10 photos: 5 states each, runs of 1.25 s; 4 invocations each of 0.5 s at 1 GB; 2 PUTs, 3 GETs, a delete each.
USAGE = Usage(
    photos=10,
    transitions=50,
    run_seconds=[1.25] * 10,
    lambda_invocations=40,
    lambda_gb_seconds=20.0,
    requests={
        "s3.PutObject": 20,
        "s3.GetObject": 25,
        "s3.DeleteObject": 10,
        "sqs.SendMessage": 10,
        "events.PutEvents": 3,
    },
    internal={"s3.HeadObject": 5, "sqs.ReceiveMessage": 20, "events.PutEvents": 10, "lambda.Invoke": 40},
    api_requests=30,
    dynamodb_read_units=80.0,
    dynamodb_write_units=120.0,
    stored_bytes=10 * 5_000_000,
)


@pytest.fixture
def prices():  # type: ignore[no-untyped-def]
    return load_prices("test-1", json.dumps(PRICES))


def test_each_line_of_the_standard_bill_is_the_usage_at_its_price_per_thousand_photos(prices) -> None:  # type: ignore[no-untyped-def]
    lines = bill(USAGE, prices, "STANDARD")
    assert lines["stepfunctions"] == pytest.approx(50 * 0.000025 * 100)  # 0.125: 5 transitions a photo
    assert lines["lambda_requests"] == pytest.approx(40 * 0.0000002 * 100)
    assert lines["lambda_compute"] == pytest.approx(20 * 0.0000166667 * 100, abs=1e-5)
    # 20 PUTs at tier 1; 25 GETs and the services' 5 HEADs at tier 2; deletes are free
    assert lines["s3_requests"] == pytest.approx((20 * 0.000005 + 30 * 0.0000004) * 100)
    assert lines["dynamodb"] == pytest.approx((80 * 0.000000125 + 120 * 0.000000625) * 100)
    assert lines["sqs"] == pytest.approx(30 * 0.0000004 * 100)  # the clients' and the pollers'
    assert lines["apigateway"] == pytest.approx(30 * 0.0000035 * 100)
    assert lines["eventbridge"] == pytest.approx(3 * 0.000001 * 100)  # S3's own notifications are free
    items = [v for k, v in lines.items() if k not in {"total", "storage_per_month"}]
    assert lines["total"] == pytest.approx(sum(items), abs=1e-4)
    assert lines["storage_per_month"] == pytest.approx(5.0 * 0.023, abs=1e-4)  # 5 GB per 1,000 photos


def test_express_replaces_transitions_with_a_request_and_the_duration_per_run(prices) -> None:  # type: ignore[no-untyped-def]
    standard, express = bill(USAGE, prices, "STANDARD"), bill(USAGE, prices, "EXPRESS")
    # 1.25 s is billed as 1.3 s at 64 MB: 0.08125 GB-s a run
    assert express_gb_seconds([1.25], prices.table) == pytest.approx(1.3 * 0.0625)
    assert express["stepfunctions"] == pytest.approx((0.000001 + 1.3 * 0.0625 * 0.00001667) * 1000, abs=1e-5)
    assert express["stepfunctions"] < standard["stepfunctions"] / 50
    assert {k: v for k, v in express.items() if k not in {"stepfunctions", "total"}} == {
        k: v for k, v in standard.items() if k not in {"stepfunctions", "total"}
    }


def test_arm64_compute_is_priced_as_arm64(prices) -> None:  # type: ignore[no-untyped-def]
    assert bill(USAGE, prices, "STANDARD", "arm64")["lambda_compute"] == pytest.approx(
        20 * 0.0000133334 * 100, abs=1e-5
    )


def test_the_report_gives_both_bills_the_counts_behind_them_and_the_requests_besides_the_execution(prices) -> None:  # type: ignore[no-untyped-def]
    result = report(USAGE, prices)
    assert set(result["per_1000_photos_usd"]) == {"STANDARD", "EXPRESS"}
    counts = result["counts_per_1000_photos"]
    assert counts["transitions_per_run"] == 5.0
    assert counts["transitions"] == 5000.0
    assert counts["requests_by_service"] == {"events": 1300.0, "lambda": 4000.0, "s3": 6000.0, "sqs": 3000.0}
    assert counts["stored_mb"] == 5000.0
    # 143 requests in all (68 by clients, 75 by the services); 40 of them are the invocations
    assert result["emulator_requests_per_photo"] == {"all": 14.3, "besides_the_execution": 10.3}
    assert result["prices"] == {"region": "test-1", "as_of": "2025-01-15", "architecture": "x86_64"}
    assert result["measured_on"] == "STANDARD"
    assert report(USAGE, prices, measured_on="EXPRESS")["measured_on"] == "EXPRESS"


def test_a_region_without_prices_is_refused_naming_the_ones_there_are() -> None:
    with pytest.raises(PricesMissing, match=r"no prices for eu-west-3 .*us-east-1"):
        load_prices("eu-west-3")


def test_the_shipped_price_table_reads_and_prices_a_transition_as_aws_lists_it() -> None:
    prices = load_prices("us-east-1")
    assert prices.table.stepfunctions_standard_per_transition == 0.000025
    assert prices.as_of


def test_a_runs_counts_are_the_difference_of_the_runtimes_counts_before_and_after() -> None:
    before = {"requests": {"s3.PutObject": 5}, "internal": {}, "api": {"requests": 2}, "dynamodb_units": {"read": 1.5}}
    after = {
        "requests": {"s3.PutObject": 9, "s3.GetObject": 3},
        "internal": {"sqs.ReceiveMessage": 4},
        "api": {"requests": 7},
        "dynamodb_units": {"read": 4.0, "write": 2.0},
        "dynamodb_tables": {
            "media": {"requests": {"GetItem": 3, "PutItem": 2}, "units": {"read": 4.0, "write": 2.0}},
            "idle": {"requests": {"GetItem": 1}, "units": {"read": 0.5}},
        },
    }
    before["dynamodb_tables"] = {
        "media": {"requests": {"GetItem": 1}, "units": {"read": 1.5}},
        "idle": {"requests": {"GetItem": 1}, "units": {"read": 0.5}},
    }
    assert counts_between(before, after) == {
        "requests": {"s3.GetObject": 3, "s3.PutObject": 4},
        "internal": {"sqs.ReceiveMessage": 4},
        "api": {"requests": 5},
        "dynamodb_units": {"read": 2.5, "write": 2.0},
        "dynamodb_tables": {
            "media": {"requests": {"GetItem": 2, "PutItem": 2}, "units": {"read": 2.5, "write": 2.0}},
        },
    }
