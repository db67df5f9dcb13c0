"""Helpers that drive the step handlers the way the state machine does (for tests of several steps)."""

from __future__ import annotations

from typing import Any

import boto3

from tests.functional.conftest import FakeContext, load_function

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:pipeline:M1"


def put_original(key: str, body: bytes, content_type: str = "image/jpeg") -> dict[str, Any]:
    s3 = boto3.client("s3")
    etag = s3.put_object(Bucket="media", Key=key, Body=body, ContentType=content_type)["ETag"].strip('"')
    if key.startswith("uploads/"):  # uploads/<media_id>/original, as the API names it
        media_id = key.split("/")[1]
    else:  # drop/m1.jpg → M1: short ids that read well in assertions
        media_id = key.rsplit("/", maxsplit=1)[-1].split(".", maxsplit=1)[0].upper()
    return {"media_id": media_id, "bucket": "media", "key": key, "etag": etag, "size": len(body)}


def run_pipeline(media: dict[str, Any], context: FakeContext, execution: str = EXECUTION) -> dict[str, Any]:
    """What the state machine does on the happy path, handler by handler."""
    state: dict[str, Any] = {"media": media, "execution_arn": execution}
    state["source"] = load_function("validate").lambda_handler(state, context)["source"]
    duplicate_of = load_function("dedupe").lambda_handler(state, context)["duplicate_of"]
    if duplicate_of:
        return load_function("outcome").duplicate_handler({**state, "duplicate_of": duplicate_of}, context)
    rendered = load_function("resize").lambda_handler(state, context)
    final = {
        **state,
        **{name: rendered[name] for name in ("variants", "phash", "placeholder", "facts", "rendered_with")},
    }
    return load_function("finalize").lambda_handler(final, context)
