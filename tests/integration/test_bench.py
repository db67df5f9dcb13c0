"""`photopipe bench`'s pipeline half against the embedded stack: photos reach READY and the CPU they cost is
attributed to the processes that spent it."""

from __future__ import annotations

import time
from pathlib import Path

from photopipe import bench, bill
from photopipe.stack import Stack
from photopipe.upload import ApiClient
from photopipe_infra.launcher import EmbeddedLocalStack


def test_the_pipeline_run_reports_where_the_cpu_went(
    stack: Stack, api: ApiClient, localstack: EmbeddedLocalStack, tmp_path: Path
) -> None:
    corpus = bench.write_corpus(bench.corpus_folder(), 2, seed=1)
    photos = bench.stamped_copies(corpus, tmp_path, "integration")

    report = bench.run_pipeline(stack, api, photos, None, 120.0, localstack.processes)

    assert report["ready"] == 2
    cpu = report["cpu_s_per_photo"]
    # Every 12 MP photo is decoded and encoded three times in a Resize process: tenths of a CPU-second at least.
    assert cpu["ResizeFunction"] > 0.1
    assert cpu["localstack"] > 0 and cpu["ValidateFunction"] > 0 and cpu["FinalizeFunction"] > 0
    assert 0 < report["host_busy"] <= 1


def test_the_bill_counts_what_the_runs_did_where_aws_counts_it(
    stack: Stack, api: ApiClient, localstack: EmbeddedLocalStack, tmp_path: Path
) -> None:
    corpus = bench.write_corpus(bench.corpus_folder(), 2, seed=1)
    photos = bench.stamped_copies(corpus, tmp_path, "bill")
    meter = bench.Meter(stack)

    report = bench.run_pipeline(stack, api, photos, None, 120.0, localstack.processes, meter)
    time.sleep(bench.SETTLE_SECONDS)  # the functions' logs reach CloudWatch in batches
    usage = meter.usage()

    assert report["ready"] == 2
    assert usage.photos == 2
    assert usage.transitions == 10  # Validate, Dedupe, IsDuplicate, Resize, Finalize: five states a run
    assert len(usage.run_seconds) == 2
    assert all(0 < seconds < 60 for seconds in usage.run_seconds)
    # each photo: ingest, Validate, Dedupe, Resize, Finalize, and the API's create, complete and status answers
    assert usage.lambda_invocations >= 2 * 7
    assert usage.lambda_gb_seconds > 0
    assert usage.requests["s3.PutObject"] >= 2  # the presigned PUTs (Resize writes the variants: more)
    assert usage.api_requests >= 2 * 3
    assert usage.dynamodb_read_units > 0
    assert usage.dynamodb_write_units >= 2 * 3
    assert usage.stored_bytes > sum(path.stat().st_size for path in photos)

    result = bill.report(usage, bill.load_prices("us-east-1"), meter.architecture())
    standard, express = result["per_1000_photos_usd"]["STANDARD"], result["per_1000_photos_usd"]["EXPRESS"]
    assert standard["stepfunctions"] == 0.125  # 5,000 transitions at $0.025 per 1,000
    assert 0 < express["stepfunctions"] < standard["stepfunctions"] / 10
    assert standard["lambda_compute"] > 0 and standard["s3_requests"] > 0 and standard["dynamodb"] > 0
    assert result["counts_per_1000_photos"]["transitions_per_run"] == 5.0
