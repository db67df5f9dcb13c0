"""Each patch of LocalStack or moto internals in infra/ names the upstream code it corrects and pins its source.

These fail when a LocalStack upgrade changes that code: check that the patch still fits, then update its pin.
"""

from __future__ import annotations

import subprocess

import pytest

from photopipe_infra import venvs

PATCHES = [
    "photopipe_infra.thread_reaper",  # localstack.utils.threads (TMP_THREADS)
    "photopipe_infra.stepfunctions_history",  # Step Functions' execution and event manager
    "photopipe_infra.logs_retention",  # moto.logs LogStream, LocalStack's moto_put_log_events
    "photopipe_infra.s3_disk_store",  # LocalStack's ephemeral S3 object store
    "photopipe_infra.apigateway",  # API Gateway: OpenAPI import, gateway-exception handler, request payload
    "photopipe_infra.dynamodb_provider",  # moto DynamoDB: Table.query, DynamoType and Item (deep copies)
    "photopipe_infra.cloudwatch_batching",  # Lambda/SQS metric publishers, Lambda log loop, CloudWatch metric store
    "photopipe_infra.cloudformation_polling",  # CloudFormation's ResourceProviderExecutor.deploy_loop
    "photopipe_infra.persistence",  # SQS queues and receipt handles, CloudFormation stacks, Lambda version states
]


@pytest.mark.parametrize("module", PATCHES)
def test_the_patched_upstream_source_is_the_one_the_patch_was_written_for(module: str) -> None:
    check = f"import {module} as patch; print(patch.upstream_sha256() == patch.UPSTREAM_SHA256)"
    python = venvs.ensure(venvs.LOCALSTACK).python
    result = subprocess.run([str(python), "-c", check], capture_output=True, text=True, timeout=120, check=True)  # noqa: S603
    assert result.stdout.strip().splitlines()[-1] == "True", result.stderr[-2000:]
