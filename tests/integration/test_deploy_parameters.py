"""`photopipe up --parameter`: a stack that holds photos is deployed again with another variant set in place — the
same bucket, table and API, the photos still there — and keeps the parameter on later deploys. A stack of its own in
the test LocalStack, deleted afterwards."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import requests

from photopipe import samples
from photopipe.config import ClientSettings
from photopipe.media import MediaReader
from photopipe.stack import Stack
from photopipe_core.models import Status
from photopipe_infra.deploy import cloudformation, deploy
from tests.integration.conftest import drop

VARIANTS = "thumb:128,xl:1200"


@pytest.fixture
def own_stack(endpoint: str, aws_client: Callable[[str], Any]) -> Iterator[str]:
    name = f"params-{uuid.uuid4().hex[:6]}"
    deploy(endpoint, name)
    yield name
    stack = Stack(ClientSettings(endpoint_url=endpoint, stack_name=name))
    bucket = boto3.resource(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    ).Bucket(stack.outputs.MediaBucketName)
    bucket.object_versions.delete()
    cfn = cloudformation(endpoint)
    cfn.delete_stack(StackName=name)
    cfn.get_waiter("stack_delete_complete").wait(StackName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 150})


def test_a_parameter_updates_a_stack_with_photos_in_place_and_is_kept(
    endpoint: str, own_stack: str, aws_client: Callable[[str], Any]
) -> None:
    # Given a stack with a READY photo
    settings = ClientSettings(endpoint_url=endpoint, stack_name=own_stack)
    before = Stack(settings)
    photo = samples.jpeg_bytes(samples.photo(1600, 1200, seed=time.time_ns() % 10**6))
    media_id = drop(before, aws_client, photo, "kept.jpg")
    assert MediaReader(before).wait_for_terminal([media_id], timeout=180)[media_id].status is Status.READY  # type: ignore[union-attr]

    # When it is deployed again with another variant set
    assert deploy(endpoint, own_stack, parameters={"Variants": VARIANTS}).changed

    # Then it was updated in place: the same bucket, table and API, the photo there, the new settings in its functions
    after = Stack(settings)
    assert after.outputs.model_dump() == before.outputs.model_dump()
    assert MediaReader(after).get(media_id).status is Status.READY  # type: ignore[union-attr]
    lam, cfn = aws_client("lambda"), cloudformation(endpoint)
    resize = cfn.describe_stack_resource(StackName=own_stack, LogicalResourceId="ResizeFunction")
    configuration = lam.get_function_configuration(FunctionName=resize["StackResourceDetail"]["PhysicalResourceId"])
    assert configuration["Environment"]["Variables"]["VARIANTS"] == VARIANTS
    assert requests.get(f"{after.outputs.ApiUrl}/v1/health", timeout=30).status_code == 200
    # And a new photo gets the new variant set
    second = drop(after, aws_client, samples.jpeg_bytes(samples.photo(1600, 1200, seed=5)), "new.jpg")
    assert MediaReader(after).wait_for_terminal([second], timeout=180)[second].status is Status.READY  # type: ignore[union-attr]
    assert set(MediaReader(after).get(second).variants) == {"thumb", "xl"}  # type: ignore[union-attr]

    # And a later deploy keeps the parameter: nothing to do
    assert not deploy(endpoint, own_stack).changed
