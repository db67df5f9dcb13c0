"""The Chalice app in-process (chalice.test.Client) against moto: validation, error mapping, the contract's shapes."""

from __future__ import annotations

import base64
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
import yaml
from openapi_spec_validator import validate

from photopipe import samples
from photopipe_core.api import ACCEPTED_SPELLINGS, plan_parts
from photopipe_core.keys import MEDIA_ID_PATTERN
from photopipe_core.repository import MediaRepository, media_repository
from tests.functional.conftest import FUNCTIONS_DIR, ApiKeys, FakeContext, KeyedClient, load_function
from tests.functional.pipeline import put_original, run_pipeline

VALID = {"filename": "beach.jpg", "content_type": "image/jpeg", "size": 1234}


def post(client: KeyedClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, str) else json.dumps(body)
    return client.http.post("/v1/uploads", body=raw, headers={"Content-Type": "application/json", **(headers or {})})


def test_create_upload_returns_the_contract(client: KeyedClient) -> None:
    response = post(client, {**VALID, "sha256": "ab" * 32})
    assert response.status_code == 201
    body = response.json_body
    assert set(body) == {"media_id", "status", "upload", "expires_in", "status_url"}
    assert MEDIA_ID_PATTERN.match(body["media_id"])
    assert body["status"] == "PENDING_UPLOAD"
    assert body["expires_in"] == 300
    assert body["status_url"] == f"/v1/media/{body['media_id']}"
    upload = body["upload"]
    assert upload["method"] == "PUT"
    assert upload["url"].startswith(f"http://localhost:4566/media/uploads/{body['media_id']}/original?")
    assert "X-Amz-Signature=" in upload["url"]
    signed = upload["url"].split("X-Amz-SignedHeaders=")[1].split("&")[0]
    assert signed == "content-length%3Bcontent-type%3Bhost%3Bif-none-match%3Bx-amz-checksum-sha256"
    assert upload["headers"] == {
        "Content-Type": "image/jpeg",
        "Content-Length": "1234",
        "If-None-Match": "*",
        "x-amz-checksum-sha256": "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=",
    }
    item = media_repository().get(body["media_id"])
    assert item is not None and item.status == "PENDING_UPLOAD"
    assert item.source.filename == "beach.jpg" and item.source.declared_sha256 == "ab" * 32


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", "invalid_json"),
        ([1, 2], "invalid_request"),
        ({"content_type": "image/jpeg", "size": 1}, "invalid_request"),
        ({**VALID, "filename": ""}, "invalid_request"),
        ({**VALID, "content_type": "image/svg+xml"}, "unsupported_type"),
        ({**VALID, "content_type": "text/html"}, "unsupported_type"),
        ({**VALID, "size": 0}, "invalid_size"),
        ({**VALID, "size": -5}, "invalid_size"),
        ({**VALID, "size": "12"}, "invalid_size"),
        ({**VALID, "size": True}, "invalid_size"),
        ({**VALID, "size": 50 * 1024 * 1024 + 1}, "too_large"),
        ({**VALID, "sha256": "xyz"}, "invalid_sha256"),
        ({**VALID, "sha256": "g" * 64}, "invalid_sha256"),
        ({**VALID, "callback_url": None}, "invalid_callback_url"),
        ({**VALID, "callback_url": 5}, "invalid_callback_url"),
        ({**VALID, "callback_url": "ftp://example.com/h"}, "invalid_callback_url"),
        ({**VALID, "callback_url": "https://user:pw@example.com/h"}, "invalid_callback_url"),
        ({**VALID, "callback_url": "https://example.com/a b"}, "invalid_callback_url"),
        ({**VALID, "callback_url": "https:///h"}, "invalid_callback_url"),
        ({**VALID, "callback_url": "https://example.com/" + "h" * 2029}, "invalid_callback_url"),
    ],
)
def test_bad_upload_requests_are_400_with_a_code(client: KeyedClient, body: Any, code: str) -> None:
    response = post(client, body)
    assert response.status_code == 400
    assert set(response.json_body) == {"error"}
    assert response.json_body["error"]["code"] == code
    assert response.json_body["error"]["message"]


def test_an_upload_names_where_its_events_are_delivered_and_the_media_shows_it(client: KeyedClient) -> None:
    url = "https://hooks.example.com:8443/photopipe?team=7"
    media_id = post(client, {**VALID, "callback_url": url}).json_body["media_id"]
    shown = client.http.get(f"/v1/media/{media_id}").json_body
    assert shown["callback_url"] == url and "webhook" not in shown  # nothing delivered yet
    longest = "https://example.com/" + "h" * 2028  # 2,048 characters
    assert post(client, {**VALID, "callback_url": longest}).status_code == 201


def test_same_idempotency_key_and_body_give_the_same_media(client: KeyedClient) -> None:
    first = post(client, VALID, {"Idempotency-Key": "k-1"}).json_body
    again = post(client, VALID, {"Idempotency-Key": "k-1"}).json_body
    other = post(client, VALID, {"Idempotency-Key": "k-2"}).json_body
    assert first["media_id"] == again["media_id"] != other["media_id"]
    conflict = post(client, {**VALID, "size": 99}, {"Idempotency-Key": "k-1"})
    assert conflict.status_code == 409
    assert conflict.json_body["error"]["code"] == "idempotency_conflict"


def test_get_media_shows_variants_as_presigned_urls(client: KeyedClient, context: FakeContext) -> None:
    media = put_original("drop/m1.jpg", samples.jpeg_bytes(samples.photo(1200, 900, seed=8)))
    run_pipeline(media, context)
    response = client.http.get("/v1/media/M1")
    assert response.status_code == 404  # not a media id the API hands out: the pattern is checked first
    item = media_repository().get("M1")
    assert item is not None
    boto3.resource("dynamodb").Table("media-table").put_item(
        Item={
            "pk": "MEDIA#01JD3X4Y5Z6A7B8C9D0EFGHJKM",
            "sk": "META",
            "media_id": "01JD3X4Y5Z6A7B8C9D0EFGHJKM",
            "status": "DUPLICATE",
            "duplicate_of": "M1",
            "source": {"bucket": "media", "key": "drop/m2.jpg", "size": 5},
            "created_at": "t",
            "updated_at": "t",
        }
    )
    duplicate = client.http.get("/v1/media/01JD3X4Y5Z6A7B8C9D0EFGHJKM")
    assert duplicate.status_code == 200
    body = duplicate.json_body
    assert body["status"] == "DUPLICATE" and body["duplicate_of"] == "M1"
    assert set(body["variants"]) == {"thumb", "medium", "large"}
    thumb = body["variants"]["thumb"]
    assert thumb["key"] == "media/M1/thumb.webp" and thumb["format"] == "webp"
    assert thumb["url"].startswith("http://localhost:4566/media/media/M1/thumb.webp?")
    assert body["source"] == {"key": "drop/m2.jpg", "filename": "m2.jpg", "bytes": 5}
    # the original's placeholder, and the variants as a srcset, smallest first
    assert body["placeholder"] == item.placeholder.model_dump() if item.placeholder else pytest.fail("no placeholder")
    widths = {name: variant["width"] for name, variant in body["variants"].items()}
    assert body["srcset"] == ", ".join(
        f"{body['variants'][name]['url']} {width}w" for name, width in sorted(widths.items(), key=lambda w: w[1])
    )


def test_find_by_key_and_list_by_status(client: KeyedClient, context: FakeContext) -> None:
    for index in range(3):
        media = put_original(f"drop/l{index}.jpg", samples.jpeg_bytes(samples.photo(300, 200, seed=30 + index)))
        run_pipeline(media, context, execution=f"arn:exec:{index}")
    found = client.http.get("/v1/media?key=drop/l1.jpg")
    assert found.status_code == 200 and found.json_body["media_id"] == "L1"
    assert client.http.get("/v1/media?key=drop/none.jpg").status_code == 404
    first = client.http.get("/v1/media?status=READY&limit=2").json_body
    assert len(first["items"]) == 2 and first["next_token"]
    rest = client.http.get(f"/v1/media?status=READY&limit=2&next_token={first['next_token']}").json_body
    ids = [i["media_id"] for i in first["items"] + rest["items"]]
    assert sorted(ids) == ["L0", "L1", "L2"]
    bad = client.http.get("/v1/media?status=NOPE")
    assert bad.status_code == 400 and bad.json_body["error"]["code"] == "invalid_status"
    assert client.http.get("/v1/media").json_body["error"]["code"] == "missing_query"


def test_unknown_media_is_404_and_wrong_method_is_405_as_json(client: KeyedClient) -> None:
    missing = client.http.get("/v1/media/01JD3X4Y5Z6A7B8C9D0EFGHJKZ")
    assert missing.status_code == 404
    assert missing.json_body["error"]["code"] == "not_found"
    wrong = client.http.delete("/v1/uploads")
    assert wrong.status_code == 405
    assert wrong.json_body["error"]["code"] == "method_not_allowed"
    assert wrong.headers["Allow"] == "POST"  # RFC 9110: a 405 says which methods the resource takes
    assert client.http.put("/v1/media/01JD3X4Y5Z6A7B8C9D0EFGHJKZ").headers["Allow"] == "GET"


def test_the_document_lists_exactly_the_content_types_the_api_takes() -> None:
    spec = yaml.safe_load((FUNCTIONS_DIR / "api" / "openapi.yaml").read_text())
    documented = spec["components"]["schemas"]["UploadRequest"]["properties"]["content_type"]["enum"]
    assert sorted(documented) == sorted(ACCEPTED_SPELLINGS)


def test_retry_only_restarts_failed_media(client: KeyedClient) -> None:
    created = post(client, VALID).json_body
    response = client.http.post(f"/v1/media/{created['media_id']}/retry")
    assert response.status_code == 409
    assert response.json_body["error"]["code"] == "not_failed"


MIB = 1024 * 1024


def test_large_uploads_get_a_multipart_upload_that_resumes_and_completes(client: KeyedClient) -> None:
    size = 20 * MIB
    body = {"filename": "big.png", "content_type": "image/png", "size": size}
    created = post(client, body, {"Idempotency-Key": "big-1"})
    assert created.status_code == 201
    grant = created.json_body
    media_id, upload = grant["media_id"], grant["upload"]
    assert upload["method"] == "MULTIPART"
    assert upload["complete_url"] == f"/v1/uploads/{media_id}/complete"
    assert upload["part_size"] == 8 * MIB
    assert [(p["part_number"], p["size"], p["uploaded"]) for p in upload["parts"]] == [
        (1, 8 * MIB, False),
        (2, 8 * MIB, False),
        (3, 4 * MIB, False),
    ]
    for part in upload["parts"]:
        assert f"uploadId={upload['upload_id']}" in part["url"] and f"partNumber={part['part_number']}" in part["url"]
        assert "content-length" in part["url"].split("X-Amz-SignedHeaders=")[1].split("&")[0]
        assert part["headers"] == {"Content-Length": str(part["size"])}
    key = f"uploads/{media_id}/original"
    s3 = boto3.client("s3")
    payload = bytes(range(256)) * (size // 256)

    def send(number: int, length: int) -> None:
        start = (number - 1) * 8 * MIB
        s3.upload_part(
            Bucket="media",
            Key=key,
            UploadId=upload["upload_id"],
            PartNumber=number,
            Body=payload[start : start + length],
        )

    send(1, 8 * MIB)
    send(3, 1000)  # a short last part
    incomplete = client.http.post(f"/v1/uploads/{media_id}/complete")
    assert incomplete.status_code == 409
    assert incomplete.json_body["error"]["code"] == "upload_incomplete"
    assert "[2, 3]" in incomplete.json_body["error"]["message"]

    resumed = post(client, body, {"Idempotency-Key": "big-1"}).json_body  # the same upload, with fresh URLs
    assert resumed["media_id"] == media_id and resumed["upload"]["upload_id"] == upload["upload_id"]
    assert [p["uploaded"] for p in resumed["upload"]["parts"]] == [True, False, False]
    send(2, 8 * MIB)
    send(3, 4 * MIB)
    completed = client.http.post(f"/v1/uploads/{media_id}/complete")
    assert completed.status_code == 200
    assert completed.json_body == {"media_id": media_id, "status": "PENDING_UPLOAD", "status_url": grant["status_url"]}
    stored = s3.get_object(Bucket="media", Key=key)
    assert stored["ContentLength"] == size and stored["ContentType"] == "image/png"
    assert stored["Body"].read() == payload
    assert client.http.post(f"/v1/uploads/{media_id}/complete").status_code == 200  # safe to repeat
    again = post(client, body, {"Idempotency-Key": "big-1"})
    assert again.status_code == 409 and again.json_body["error"]["code"] == "already_uploaded"
    assert again.json_body["error"]["media_id"] == media_id


def test_a_replayed_single_put_upload_whose_bytes_arrived_is_already_uploaded(client: KeyedClient) -> None:
    first = post(client, VALID, {"Idempotency-Key": "small-1"}).json_body
    assert post(client, VALID, {"Idempotency-Key": "small-1"}).status_code == 201  # not sent yet: a fresh URL
    boto3.client("s3").put_object(Bucket="media", Key=f"uploads/{first['media_id']}/original", Body=b"x" * 1234)
    replay = post(client, VALID, {"Idempotency-Key": "small-1"})
    assert replay.status_code == 409
    assert replay.json_body["error"] == {
        "code": "already_uploaded",
        "message": f"media {first['media_id']} was already uploaded and is PENDING_UPLOAD; see {first['status_url']}",
        "media_id": first["media_id"],
        "request_id": replay.headers["x-request-id"],
    }


def test_an_unexpected_fault_answers_500_with_the_request_id_and_nothing_of_its_internals(
    client: KeyedClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a fault deep inside (say, an AWS error naming a resource)
    app = sys.modules["photopipe_function_api_app"]

    def broken(*_: Any) -> Any:
        raise RuntimeError("arn:aws:dynamodb:us-east-1:123456789012:table/media-table is on fire")

    monkeypatch.setattr(app.media_api(), "get_media", broken)
    # When a client asks
    response = client.http.get("/v1/media/01JD3X4Y5Z6A7B8C9D0EFGHJKZ")
    # Then it learns that it failed and which request it was, and nothing else
    assert response.status_code == 500
    error = response.json_body["error"]
    assert (
        error["code"] == "internal" and error["request_id"] and error["request_id"] == response.headers["x-request-id"]
    )
    assert "arn:" not in response.body.decode() and "Traceback" not in response.body.decode()
    assert "fire" not in response.body.decode()
    # And every refusal says which request it was
    assert client.http.get("/v1/media?status=NOPE").json_body["error"]["request_id"]


def test_parts_grow_to_stay_within_ten_thousand() -> None:
    size = 10_000 * 8 * MIB + 1
    parts = plan_parts(size, 8 * MIB)
    assert len(parts) <= 10_000 and sum(length for _, length in parts) == size
    assert parts[0][1] > 8 * MIB and [number for number, _ in parts] == list(range(1, len(parts) + 1))


def test_an_expired_multipart_upload_is_replaced_on_the_next_request(client: KeyedClient) -> None:
    body = {"filename": "big.jpg", "content_type": "image/jpeg", "size": 17 * MIB}
    first = post(client, body, {"Idempotency-Key": "big-2"}).json_body
    boto3.client("s3").abort_multipart_upload(
        Bucket="media", Key=f"uploads/{first['media_id']}/original", UploadId=first["upload"]["upload_id"]
    )
    gone = client.http.post(f"/v1/uploads/{first['media_id']}/complete")
    assert gone.status_code == 409 and gone.json_body["error"]["code"] == "upload_expired"
    second = post(client, body, {"Idempotency-Key": "big-2"}).json_body
    assert second["media_id"] == first["media_id"]
    assert second["upload"]["upload_id"] != first["upload"]["upload_id"]
    item = media_repository().get(first["media_id"])
    assert item is not None and item.source.upload_id == second["upload"]["upload_id"]


def test_single_put_uploads_have_nothing_to_complete(client: KeyedClient) -> None:
    created = post(client, VALID).json_body
    response = client.http.post(f"/v1/uploads/{created['media_id']}/complete")
    assert response.status_code == 409 and response.json_body["error"]["code"] == "not_multipart"
    assert client.http.post("/v1/uploads/01JD3X4Y5Z6A7B8C9D0EFGHJKZ/complete").status_code == 404
    assert client.http.get(f"/v1/uploads/{created['media_id']}/complete").status_code == 405


def test_the_openapi_document_is_valid_and_lists_exactly_the_apps_routes(stack: dict[str, Any]) -> None:
    document = yaml.safe_load((FUNCTIONS_DIR / "api" / "openapi.yaml").read_text())
    validate(document)  # raises on an invalid OpenAPI 3.1 document
    app = load_function("api", "app").app
    routes = {
        (path, method.lower())
        for path, methods in app.routes.items()
        for method, entry in methods.items()
        if entry.view_name != "unknown_route"  # the catch-all: 404 for whatever is not documented
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == routes


def test_each_request_publishes_its_metrics(client: KeyedClient, capsys: pytest.CaptureFixture[str]) -> None:
    post(client, VALID)
    post(client, {**VALID, "size": 0})
    published = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = [set(doc) - {"_aws", "service"} for doc in published]
    assert {"http_2xx", "uploads_put", "upload_bytes_declared"} <= names[0]
    assert names[1] == {"http_4xx"}
    assert published[0]["upload_bytes_declared"] == [1234.0]  # EMF values are lists


@pytest.mark.parametrize(
    "token_json",
    ["[]", '"text"', "{}", '{"pk": 1}', '{"pk": "MEDIA#X", "sk": "META", "gsi1pk": "STATUS#FAILED", "gsi1sk": "t"}'],
)
def test_a_next_token_the_api_did_not_give_out_is_400(client: KeyedClient, token_json: str) -> None:
    token = base64.urlsafe_b64encode(token_json.encode()).decode()
    answer = client.http.get(f"/v1/media?status=READY&next_token={token}")
    assert answer.status_code == 400
    assert answer.json_body["error"]["code"] == "invalid_next_token"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "missing_query"),
        ("limit=5", "missing_query"),
        ("key=drop/a.jpg&status=READY", "conflicting_query"),
        ("sha256=" + "ab" * 32 + "&key=drop/a.jpg", "conflicting_query"),
        ("key=drop/a.jpg&limit=5", "conflicting_query"),
        ("sha256=" + "ab" * 32 + "&next_token=x", "conflicting_query"),
        ("status=READY&colour=red", "unknown_query"),
        ("status=ready", "invalid_status"),
        ("status=READY&limit=0", "invalid_limit"),
        ("status=READY&limit=101", "invalid_limit"),
        ("status=READY&limit=%C2%B2", "invalid_limit"),  # "²" is a digit to str.isdigit, not an integer
        ("sha256=abc", "invalid_sha256"),
        ("key=", "invalid_key"),
    ],
)
def test_find_media_takes_exactly_the_documented_query_forms(client: KeyedClient, query: str, code: str) -> None:
    answer = client.http.get(f"/v1/media?{query}")
    assert answer.status_code == 400, answer.json_body
    assert answer.json_body["error"]["code"] == code


def test_a_key_longer_than_s3_allows_is_not_found_not_an_error(client: KeyedClient) -> None:
    answer = client.http.get("/v1/media?key=" + "%E6%BC%A2" * 700)  # 700 CJK letters: 2,100 bytes
    assert answer.status_code == 404
    assert answer.json_body["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"size": 1234.0}, 201, None),  # JSON's integer 1234, written with a fraction of zero
        ({"size": 1234.5}, 400, "invalid_size"),
        ({"size": 50 * 1024 * 1024 + 1}, 400, "too_large"),
        ({"content_type": "image/jpg"}, 201, None),  # a documented alias
        ({"content_type": "IMAGE/JPEG"}, 400, "unsupported_type"),
        ({"content_type": "image/jpeg; q=1"}, 400, "unsupported_type"),
        ({"filename": "\u001d "}, 201, None),  # any name of 1 to 1,024 characters, kept exactly as given
        ({"filename": " beach.jpg " + "x" * 1014}, 400, "invalid_request"),  # 1,025 characters
        ({"filename": "\ud800.jpg"}, 400, "invalid_request"),  # a lone surrogate cannot be stored
    ],
)
def test_an_upload_request_is_taken_exactly_as_documented(
    client: KeyedClient, change: dict[str, Any], status: int, code: str | None
) -> None:
    answer = post(client, {**VALID, **change})
    assert answer.status_code == status, answer.json_body
    if code:
        assert answer.json_body["error"]["code"] == code


def test_a_null_sha256_is_refused_not_taken_as_absent(client: KeyedClient) -> None:
    answer = post(client, {**VALID, "sha256": None})
    assert (answer.status_code, answer.json_body["error"]["code"]) == (400, "invalid_sha256")


def test_routes_without_a_body_take_any_content_type(client: KeyedClient) -> None:
    for path in ("/v1/media/01JD3X4Y5Z6A7B8C9D0EFGHJKZ/retry", "/v1/uploads/01JD3X4Y5Z6A7B8C9D0EFGHJKZ/complete"):
        answer = client.http.post(path, headers={"Content-Type": "multipart/form-data; boundary=x"}, body=b"")
        assert answer.status_code == 404, answer.json_body
    refused = client.http.post("/v1/uploads", headers={"Content-Type": "image/png"}, body=b"x")
    assert (refused.status_code, refused.json_body["error"]["code"]) == (415, "unsupported_media_type")


@pytest.mark.parametrize("query", ["status=READY&next_token=", "status=READY&next_token=&limit=5"])
def test_an_empty_next_token_is_400_not_the_first_page(client: KeyedClient, query: str) -> None:
    """Found by schemathesis: an empty next_token (below the documented minLength) was taken as no token."""
    response = client.http.get(f"/v1/media?{query}")
    assert response.status_code == 400, response.body
    assert response.json_body["error"]["code"] == "invalid_next_token"


def test_health_reaches_each_service_without_a_key(client: KeyedClient) -> None:
    response = client.http.get("/v1/health", headers={"x-api-key": None})
    assert response.status_code == 200
    assert {name: check["ok"] for name, check in response.json_body["checks"].items()} == {
        "s3": True,
        "dynamodb": True,
        "stepfunctions": True,
    }


def test_the_upload_page_and_its_files_load_without_a_key_and_nothing_else_of_the_function_does(
    client: KeyedClient,
) -> None:
    page = client.http.get("/", headers={"x-api-key": None})
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert b'<script type="module" src="page/app.js">' in page.body
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    for name, content_type in (
        ("app.js", "text/javascript"),
        ("style.css", "text/css"),
        ("sha256.js", "text/javascript"),
    ):
        asset = client.http.get(f"/page/{name}", headers={"x-api-key": None})
        assert asset.status_code == 200 and asset.headers["Content-Type"].startswith(content_type), name
    refused = client.http.post("/", headers={"x-api-key": None})
    assert (refused.status_code, refused.headers.get("Allow")) == (405, "GET")
    for name in ("app.py", "..%2Fapp.py", ".hidden.js", "missing.js"):
        missing = client.http.get(f"/page/{name}", headers={"x-api-key": None})
        assert missing.status_code == 404 and missing.json_body["error"]["code"] == "not_found", name


def test_me_names_the_keys_owner_and_needs_a_key(client: KeyedClient, api_keys: ApiKeys) -> None:
    alice = api_keys.make("alice")
    assert client.http.get("/v1/me", headers={"x-api-key": alice}).json_body == {"owner": "alice"}
    assert client.http.get("/v1/me", headers={"x-api-key": None}).status_code == 403


def test_two_requests_racing_with_one_idempotency_key_get_one_multipart_upload(
    client: KeyedClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two requests with one Idempotency-Key that both start a multipart upload before either records its
    # media: the first waits before its write until the second has been answered. One request at a time runs on
    # (the in-memory table is not safe for calls at the same moment, nor the test client's environment swap).
    first_waiting, second_answered = threading.Event(), threading.Event()
    create_pending = MediaRepository.create_pending
    callers: list[str] = []

    def in_turn(self: MediaRepository, *args: Any, **kwargs: Any) -> Any:
        callers.append(threading.current_thread().name)
        if len(callers) == 1:
            first_waiting.set()
            assert second_answered.wait(timeout=10)
        return create_pending(self, *args, **kwargs)

    monkeypatch.setattr(MediaRepository, "create_pending", in_turn)
    body = {"filename": "big.png", "content_type": "image/png", "size": 20 * MIB}
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, client, body, {"Idempotency-Key": "race-1"})
        assert first_waiting.wait(timeout=10)
        second = post(client, body, {"Idempotency-Key": "race-1"})
        second_answered.set()
        responses = [first.result(timeout=10), second]
    assert len(callers) == 2  # both got as far as recording the media
    # Then both are given the same media and upload; the loser's multipart upload is aborted, not left to expire
    assert [r.status_code for r in responses] == [201, 201]
    [media_id] = {r.json_body["media_id"] for r in responses}
    [upload_id] = {r.json_body["upload"]["upload_id"] for r in responses}
    open_uploads = boto3.client("s3").list_multipart_uploads(Bucket="media").get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in open_uploads] == [(f"uploads/{media_id}/original", upload_id)]
