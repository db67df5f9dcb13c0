"""Reprocess on the deployed stack: with a variant added to the stack's settings, `photopipe reprocess` renders it
for READY media through ReprocessQueue and its function (real S3, DynamoDB, SQS event source), with the history
saying so; a second run finds nothing to do."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from photopipe import samples
from photopipe.cli import main
from photopipe.media import MediaReader
from photopipe.soak import upload_bytes
from photopipe.stack import Stack
from photopipe.upload import ApiClient
from photopipe_core.settings import render_fingerprint


@pytest.fixture
def tiny_variant(stack: Stack, aws_client: Callable[[str], Any], function_name: Callable[[str], str]) -> Iterator[str]:
    """The stack as deployed with ``tiny:64`` added to Variants (the Reprocess function's settings; restored)."""
    lam = aws_client("lambda")
    name = function_name("ReprocessFunction")
    before = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    variants = f"{before['VARIANTS']},tiny:64"
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {**before, "VARIANTS": variants}})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    yield variants
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": before})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)


def reprocess(stack: Stack, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        main,
        ["--endpoint-url", stack.settings.endpoint_url, "--stack-name", stack.settings.stack_name, "reprocess", *args],
    )
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def test_an_added_variant_is_rendered_for_every_named_media_once(
    stack: Stack, api: ApiClient, tiny_variant: str
) -> None:
    reader = MediaReader(stack)
    ids = [
        upload_bytes(api, f"again-{n}.jpg", samples.jpeg_bytes(samples.photo(800, 600, seed=700 + n))) for n in range(3)
    ]
    assert all(item and item.status == "READY" for item in reader.wait_for_terminal(ids, timeout=180).values())
    fingerprint = render_fingerprint(tiny_variant, 80, 4)

    first = reprocess(stack, *ids, "--json")

    assert (first["to_render"], first["sent"], first["rendered"]) == (3, 3, 3), first
    assert first["fingerprint"] == fingerprint
    s3 = boto3.client(
        "s3", endpoint_url=stack.settings.endpoint_url, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    for media_id in ids:
        item = reader.get(media_id)
        assert item is not None and item.rendered_with == fingerprint
        assert set(item.variants) == {"thumb", "medium", "large", "tiny"}
        assert (item.variants["tiny"].width, item.variants["tiny"].height) == (64, 48)
        body = s3.get_object(Bucket=stack.outputs.MediaBucketName, Key=item.variants["tiny"].key)["Body"].read()
        assert body[:4] == b"RIFF" and body[8:12] == b"WEBP"
        [entry] = [h for h in reader.history(media_id) if h.get("step") == "reprocess"]
        assert entry["variants"] == "large, medium, thumb, tiny"

    again = reprocess(stack, *ids, "--json")

    assert (again["to_render"], again["up_to_date"], again["sent"]) == (0, 3, 0), again
    assert all(len([h for h in reader.history(m) if h.get("step") == "reprocess"]) == 1 for m in ids)
