"""The HTTP API over real HTTP against the deployed stack, with real presigned PUTs to S3."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from photopipe import samples
from photopipe.media import MediaReader
from photopipe.stack import Stack
from photopipe_core.models import Status
from photopipe_core.steps import HEADER_BYTES
from photopipe_core.storage import ObjectStore
from tests import corpus

API_KEY: dict[str, str] = {}  # the operator's key, for every call to the API (set once per module below)


@pytest.fixture(autouse=True, scope="module")
def _operator_key(operator_key: str) -> None:
    API_KEY["x-api-key"] = operator_key


def call(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, data: bytes | None = None
) -> tuple[int, Any]:
    """One HTTP request; to the API (any URL but a presigned S3 one) with the operator's key unless ``headers``
    name their own ``x-api-key`` (empty: none at all)."""
    payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
    sent = {**({} if "X-Amz-Signature=" in url else API_KEY), **(headers or {})}
    request = urllib.request.Request(url, data=payload, method=method, headers={k: v for k, v in sent.items() if v})
    if body is not None and data is None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw)
        except json.JSONDecodeError:
            return error.code, raw


def put(upload: dict[str, Any], data: bytes, **header_overrides: str) -> int:
    headers = {**upload["headers"], **header_overrides}
    status, _ = call("PUT", upload["url"], data=data, headers=headers)
    return status


def create(
    stack: Stack, data: bytes, content_type: str = "image/jpeg", with_sha: bool = True, **extra: Any
) -> dict[str, Any]:
    body = {"filename": "photo.jpg", "content_type": content_type, "size": len(data), **extra}
    if with_sha:
        body["sha256"] = hashlib.sha256(data).hexdigest()
    status, created = call("POST", f"{stack.outputs.ApiUrl}/v1/uploads", body)
    assert status == 201, created
    return dict(created)


def media(stack: Stack, media_id: str) -> tuple[int, Any]:
    return call("GET", f"{stack.outputs.ApiUrl}/v1/media/{media_id}")


def test_create_put_poll_ready(stack: Stack) -> None:
    data = samples.jpeg_bytes(samples.photo(2400, 1600, seed=41))
    created = create(stack, data)
    assert created["status"] == "PENDING_UPLOAD"
    assert put(created["upload"], data) == 200

    item = MediaReader(stack).wait_for_terminal([created["media_id"]], timeout=90)[created["media_id"]]
    assert item is not None and item.status == Status.READY
    status, body = media(stack, created["media_id"])
    assert status == 200
    assert body["status"] == "READY"
    assert body["source"]["filename"] == "photo.jpg"
    assert body["source"]["bytes"] == len(data)
    assert {n: (v["width"], v["height"]) for n, v in body["variants"].items()} == {
        "large": (2048, 1365),
        "medium": (1024, 683),
        "thumb": (256, 171),
    }
    with urllib.request.urlopen(body["variants"]["thumb"]["url"], timeout=30) as response:  # a presigned GET
        assert response.headers["Content-Type"] == "image/webp"
        assert len(response.read()) == body["variants"]["thumb"]["bytes"]
    status, by_key = call("GET", f"{stack.outputs.ApiUrl}/v1/media?key=uploads/{created['media_id']}/original")
    assert status == 200 and by_key["media_id"] == created["media_id"]
    # S3 verified the declared sha256 on the PUT and reports it for the whole object: Validate relied on it and
    # read only the start of this JPEG (the sha256 recorded is still the bytes' own).
    store = ObjectStore(stack.client("s3"), stack.outputs.MediaBucketName)
    assert store.head(f"uploads/{created['media_id']}/original").sha256 == hashlib.sha256(data).hexdigest()
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and len(data) > HEADER_BYTES


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"Content-Type": "image/png"}, 403),  # another type than signed
        ("tampered", 403),
        ("other_bytes", 400),  # same length, other content: the signed sha256 does not match
        ("fewer_bytes", 403),
    ],
)
def test_presigned_put_cannot_be_bent(stack: Stack, change: Any, expected: int) -> None:
    data = samples.jpeg_bytes(samples.photo(300, 200, seed=42))
    created = create(stack, data)
    upload = created["upload"]
    if change == "tampered":
        upload = {**upload, "url": upload["url"].replace("X-Amz-Signature=", "X-Amz-Signature=0")}
        status = put(upload, data)
    elif change == "other_bytes":
        status = put(upload, bytes(reversed(data)))
    elif change == "fewer_bytes":
        status = put(upload, data[:-10], **{"Content-Length": str(len(data) - 10)})
    else:
        status = put(upload, data, **change)
    assert status == expected
    time.sleep(1)
    _, body = media(stack, created["media_id"])
    assert body["status"] == "PENDING_UPLOAD"


def test_presigned_put_for_another_key_is_refused(stack: Stack) -> None:
    data = samples.jpeg_bytes(samples.photo(300, 200, seed=43))
    first, second = create(stack, data), create(stack, data)
    other_url = first["upload"]["url"].replace(first["media_id"], second["media_id"])
    assert put({**first["upload"], "url": other_url}, data) == 403


def test_expired_presigned_put_is_refused(stack: Stack, aws_client: Any) -> None:
    data = samples.jpeg_bytes(samples.photo(300, 200, seed=44))
    created = create(stack, data)
    # Re-sign the same request with a 1-second lifetime (the API's lifetime is a template parameter).
    s3 = aws_client("s3")
    url = s3.generate_presigned_url(
        "put_object",
        ExpiresIn=1,
        Params={
            "Bucket": stack.outputs.MediaBucketName,
            "Key": f"uploads/{created['media_id']}/original",
            "ContentType": "image/jpeg",
            "ContentLength": len(data),
            "ChecksumSHA256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
        },
    )
    time.sleep(2.5)
    assert put({**created["upload"], "url": url}, data) == 403


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"filename": "a.svg", "content_type": "image/svg+xml", "size": 10}, "unsupported_type"),
        ({"filename": "a.jpg", "content_type": "image/jpeg", "size": 0}, "invalid_size"),
        ({"filename": "a.jpg", "content_type": "image/jpeg", "size": 60 * 1024 * 1024}, "too_large"),
        ({"filename": "a.jpg", "content_type": "image/jpeg", "size": 10, "sha256": "nope"}, "invalid_sha256"),
        ({"content_type": "image/jpeg", "size": 10}, "invalid_request"),
    ],
)
def test_bad_requests_are_400_with_the_error_body(stack: Stack, body: dict[str, Any], code: str) -> None:
    status, answer = call("POST", f"{stack.outputs.ApiUrl}/v1/uploads", body)
    assert status == 400
    assert answer["error"]["code"] == code and answer["error"]["message"]


def test_malformed_json_is_400(stack: Stack) -> None:
    status, answer = call(
        "POST", f"{stack.outputs.ApiUrl}/v1/uploads", data=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and answer["error"]["code"] == "invalid_json"


def test_same_idempotency_key_gives_one_media(stack: Stack) -> None:
    body = {"filename": "k.jpg", "content_type": "image/jpeg", "size": 123}
    key = f"key-{time.time_ns()}"
    first = call("POST", f"{stack.outputs.ApiUrl}/v1/uploads", body, {"Idempotency-Key": key})
    again = call("POST", f"{stack.outputs.ApiUrl}/v1/uploads", body, {"Idempotency-Key": key})
    assert first[0] == again[0] == 201
    assert first[1]["media_id"] == again[1]["media_id"]


def test_unknown_ids_routes_and_methods_are_json(stack: Stack) -> None:
    status, body = media(stack, "01JD3X4Y5Z6A7B8C9D0EFGHJKZ")
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = call("GET", f"{stack.outputs.ApiUrl}/v1/nothing-here")
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = call("DELETE", f"{stack.outputs.ApiUrl}/v1/uploads")
    assert (status, body["error"]["code"]) == (405, "method_not_allowed")
    status, body = call("POST", f"{stack.outputs.ApiUrl}/")  # the upload page's path takes GET only
    assert (status, body["error"]["code"]) == (405, "method_not_allowed")
    page = requests.get(f"{stack.outputs.ApiUrl}/", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")


def test_the_page_asked_for_without_its_trailing_slash_is_sent_there(stack: Stack) -> None:
    # (its files are named relative to it: from …/prod, page/app.js would be looked for beside the stage)
    bare = stack.outputs.ApiUrl.rstrip("/")
    moved = requests.get(bare, timeout=30, allow_redirects=False)
    assert moved.status_code == 301, moved.text
    page = requests.get(bare, timeout=30)
    assert page.status_code == 200 and page.url == f"{bare}/" and page.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/v1/health", "/v1/uploads", "/v1/media/01JD3X4Y5Z6A7B8C9D0EFGHJKZ"])
def test_a_method_api_gateway_does_not_route_is_405_in_the_error_format(stack: Stack, path: str) -> None:
    """TRACE never reaches the function (API Gateway routes seven methods): its gateway response answers."""
    response = requests.request("TRACE", stack.outputs.ApiUrl + path, timeout=30)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    error = response.json()["error"]
    assert error.pop("request_id")  # API Gateway's id of the request, as every error carries
    assert error == {"code": "method_not_allowed", "message": "this API does not take the method TRACE"}


def test_every_405_names_the_methods_the_path_takes(stack: Stack) -> None:
    response = requests.put(stack.outputs.ApiUrl + "/v1/health", timeout=30)
    assert (response.status_code, response.headers.get("Allow")) == (405, "GET")


def test_health(stack: Stack) -> None:
    status, body = call("GET", f"{stack.outputs.ApiUrl}/v1/health")
    assert status == 200 and body["status"] == "ok"


def test_multipart_upload_of_a_large_image_resumes_and_ends_ready(stack: Stack) -> None:
    data = corpus.big_png(3000, 2600, seed=47)
    assert len(data) >= 20 * 1024 * 1024
    body = {"filename": "big.png", "content_type": "image/png", "size": len(data), "sha256": _hex(data)}
    headers = {"Idempotency-Key": f"big-{time.time_ns()}"}
    status, created = call("POST", f"{stack.outputs.ApiUrl}/v1/uploads", body, headers)
    assert status == 201, created
    upload = created["upload"]
    assert upload["method"] == "MULTIPART" and len(upload["parts"]) >= 3
    parts = upload["parts"]
    offsets = [sum(p["size"] for p in parts[:i]) for i in range(len(parts))]

    def send(index: int, chunk: bytes | None = None, url: str | None = None) -> int:
        part = parts[index]
        piece = data[offsets[index] : offsets[index] + part["size"]] if chunk is None else chunk
        return call("PUT", url or part["url"], data=piece, headers={"Content-Length": str(len(piece))})[0]

    assert send(0, data[: parts[0]["size"] - 10]) == 403  # fewer bytes than the part's signed length
    assert parts[-1]["size"] != parts[0]["size"]
    assert send(0, url=parts[-1]["url"]) == 403  # a part's URL is bound to its length
    assert send(0) == 200
    assert call("POST", f"{stack.outputs.ApiUrl}{upload['complete_url']}")[0] == 409  # parts missing

    # An interrupted client asks again with the same key: same media and upload, part 1 already held.
    status, resumed = call("POST", f"{stack.outputs.ApiUrl}/v1/uploads", body, headers)
    assert status == 201 and resumed["media_id"] == created["media_id"]
    assert resumed["upload"]["upload_id"] == upload["upload_id"]
    assert [p["uploaded"] for p in resumed["upload"]["parts"]] == [True] + [False] * (len(parts) - 1)
    parts = resumed["upload"]["parts"]
    for index in range(1, len(parts)):
        assert send(index) == 200
    status, done = call("POST", f"{stack.outputs.ApiUrl}{upload['complete_url']}")
    assert status == 200 and done["media_id"] == created["media_id"]

    item = MediaReader(stack).wait_for_terminal([created["media_id"]], timeout=180)[created["media_id"]]
    assert item is not None and item.status == Status.READY, item
    assert (item.width, item.height) == (3000, 2600) and item.sha256 == _hex(data)
    store = ObjectStore(stack.client("s3"), stack.outputs.MediaBucketName)
    assert store.head(item.source.key).sha256 is None  # a multipart checksum is not the whole object's: hashed here
    assert item.variants["large"].width == 2048


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_eight_concurrent_requests_with_one_idempotency_key_get_one_media_and_no_5xx(stack: Stack) -> None:
    body = {"filename": "race.jpg", "content_type": "image/jpeg", "size": 4321}
    key = f"race-{time.time_ns()}"
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: call("POST", f"{stack.outputs.ApiUrl}/v1/uploads", body, {"Idempotency-Key": key}), range(8)
            )
        )
    assert [status for status, _ in answers] == [201] * 8, answers
    assert len({created["media_id"] for _, created in answers}) == 1


def test_eight_concurrent_retries_of_a_failed_media_start_one_run(
    stack: Stack, aws_client: Any, function_name: Callable[[str], str]
) -> None:
    # Given a FAILED media (its Finalize throttled for good, then the cause removed)
    lam = aws_client("lambda")
    finalize = function_name("FinalizeFunction")
    data = samples.jpeg_bytes(samples.photo(640, 480, seed=41))
    lam.put_function_concurrency(FunctionName=finalize, ReservedConcurrentExecutions=0)
    try:
        created = create(stack, data)
        assert put(created["upload"], data) == 200
        reader = MediaReader(stack)
        failed = reader.wait_for_terminal([created["media_id"]], timeout=180)[created["media_id"]]
        assert failed is not None and failed.status == Status.FAILED
    finally:
        lam.delete_function_concurrency(FunctionName=finalize)
    media_id = created["media_id"]
    # When eight clients ask for a retry at the same moment
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: call("POST", f"{stack.outputs.ApiUrl}/v1/media/{media_id}/retry"), range(8)))
    # Then one is accepted, the others are told it is not FAILED any more, and one new run exists
    statuses = sorted(status for status, _ in answers)
    assert statuses == [202] + [409] * 7, answers
    runs = aws_client("stepfunctions").list_executions(stateMachineArn=stack.outputs.PipelineStateMachineArn)
    assert [e["name"] for e in runs["executions"] if e["name"].startswith(f"{media_id}-")] == [f"{media_id}-1"]
    final = reader.wait_for_terminal([media_id], timeout=120)[media_id]
    assert final is not None and final.status == Status.READY


def test_a_presigned_put_cannot_replace_bytes_that_arrived(stack: Stack) -> None:
    data = samples.jpeg_bytes(samples.photo(320, 240, seed=42))
    created = create(stack, data, with_sha=False)
    assert created["upload"]["headers"]["If-None-Match"] == "*"
    assert put(created["upload"], data) == 200
    other = bytes(reversed(data))  # same length and type, other bytes
    assert put(created["upload"], other) == 412  # the URL wrote the original once
    assert put(created["upload"], data, **{"If-None-Match": ""}) == 403  # and the condition is part of the signature
