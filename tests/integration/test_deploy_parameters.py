"""`photopipe up --parameter`: a stack that holds photos is deployed again with another variant set in place — the
same bucket, table and API, the photos still there — and keeps the parameter on later deploys. A stack of its own in
the test LocalStack, deleted afterwards."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from photopipe import samples
from photopipe.config import ClientSettings
from photopipe.media import MediaReader
from photopipe.stack import Stack
from photopipe_core.models import Status
from photopipe_infra.deploy import cloudformation, deploy
from tests.integration.conftest import drop

VARIANTS = "thumb:128,xl:1200"


def test_a_parameter_updates_a_stack_with_photos_in_place_and_is_kept(
    endpoint: str, own_stack: Callable[..., Stack], aws_client: Callable[[str], Any]
) -> None:
    # Given a stack with a READY photo
    before = own_stack()
    name = before.settings.stack_name
    settings = ClientSettings(endpoint_url=endpoint, stack_name=name)
    photo = samples.jpeg_bytes(samples.photo(1600, 1200, seed=time.time_ns() % 10**6))
    media_id = drop(before, aws_client, photo, "kept.jpg")
    assert MediaReader(before).wait_for_terminal([media_id], timeout=180)[media_id].status is Status.READY  # type: ignore[union-attr]

    # When it is deployed again with another variant set
    assert deploy(endpoint, name, parameters={"Variants": VARIANTS}).changed

    # Then it was updated in place: the same bucket, table and API, the photo there, the new settings in its functions
    after = Stack(settings)
    assert after.outputs.model_dump() == before.outputs.model_dump()
    assert MediaReader(after).get(media_id).status is Status.READY  # type: ignore[union-attr]
    lam, cfn = aws_client("lambda"), cloudformation(endpoint)
    resize = cfn.describe_stack_resource(StackName=name, LogicalResourceId="ResizeFunction")
    configuration = lam.get_function_configuration(FunctionName=resize["StackResourceDetail"]["PhysicalResourceId"])
    assert configuration["Environment"]["Variables"]["VARIANTS"] == VARIANTS
    assert requests.get(f"{after.outputs.ApiUrl}/v1/health", timeout=30).status_code == 200
    # And a new photo gets the new variant set
    second = drop(after, aws_client, samples.jpeg_bytes(samples.photo(1600, 1200, seed=5)), "new.jpg")
    assert MediaReader(after).wait_for_terminal([second], timeout=180)[second].status is Status.READY  # type: ignore[union-attr]
    assert set(MediaReader(after).get(second).variants) == {"thumb", "xl"}  # type: ignore[union-attr]

    # And a later deploy keeps the parameter: nothing to do
    assert not deploy(endpoint, name).changed
