"""The OpenAPI document (functions/api/openapi.yaml) against the live API: every response the deployed stack gives in
this scenario must be documented for its path, method and status, and its body must match the documented schema;
every documented response but the two this scenario cannot provoke must have been seen."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from jsonschema import Draft202012Validator

from photopipe import samples
from photopipe.apikeys import ApiKeys
from photopipe.media import MediaReader
from photopipe.stack import Stack
from photopipe_core.models import Status

SPEC_PATH = Path(__file__).resolve().parents[2] / "functions" / "api" / "openapi.yaml"
# Responses this scenario cannot provoke without breaking the stack: a retry needs a FAILED media (the fault
# injection tests in test_pipeline.py retry one; tests/functional/test_inflight.py answers one 429 while every
# in-flight slot is taken), and an unhealthy dependency.
NOT_PROVOKED = {
    ("POST", "/v1/media/{media_id}/retry", "202"),
    ("POST", "/v1/media/{media_id}/retry", "429"),
    ("GET", "/v1/health", "503"),
}


class ContractClient:
    def __init__(self, api_url: str, api_key: str, spec: dict[str, Any]) -> None:
        self.api_url = api_url
        self.api_key = api_key
        self.spec = spec
        self.seen: set[tuple[str, str, str]] = set()

    def call(
        self,
        method: str,
        template: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        keyed: bool = True,
        **params: str,
    ) -> requests.Response:
        """A request with the API key (``keyed=False``: without one)."""
        path_params = {k: v for k, v in params.items() if f"{{{k}}}" in template}
        query = {k: v for k, v in params.items() if k not in path_params}
        sent = {**({"x-api-key": self.api_key} if keyed else {}), **(headers or {})}
        response = requests.request(
            method, self.api_url + template.format(**path_params), json=json, params=query, headers=sent, timeout=60
        )
        self.check(method, template, response)
        return response

    def check(self, method: str, template: str, response: requests.Response) -> None:
        status = str(response.status_code)
        operation = self.spec["paths"].get(template, {}).get(method.lower())
        content_type = response.headers["Content-Type"].split(";")[0]
        if operation is not None and content_type != "application/json":  # the page's own files
            assert content_type in operation["responses"][status]["content"], (method, template, content_type)
            self.seen.add((method, template, status))
            return
        assert content_type == "application/json"
        if operation is None:  # outside the documented paths and methods: the documented error format
            schema: dict[str, Any] = {"$ref": "#/components/schemas/Error"}
            assert response.status_code in {404, 405}, (method, template, status)
        else:
            assert status in operation["responses"], f"{method} {template} answered {status}, which is not documented"
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            self.seen.add((method, template, status))
        validator = Draft202012Validator(
            {**schema, "components": self.spec["components"]}, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(response.json())]
        assert not errors, f"{method} {template} {status} does not match the document: {errors}"

    def documented(self) -> set[tuple[str, str, str]]:
        return {
            (method.upper(), path, status)
            for path, item in self.spec["paths"].items()
            for method, operation in item.items()
            for status in operation["responses"]
        }


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return dict(yaml.safe_load(SPEC_PATH.read_text()))


def test_the_live_api_behaves_as_its_openapi_document_says(
    stack: Stack, operator_key: str, api_keys: ApiKeys, spec: dict[str, Any]
) -> None:
    api = ContractClient(stack.outputs.ApiUrl, operator_key, spec)
    photo = samples.jpeg_bytes(samples.photo(800, 600, seed=77))
    body = {"filename": "c.jpg", "content_type": "image/jpeg", "size": len(photo)}
    body["sha256"] = hashlib.sha256(photo).hexdigest()
    key = {"Idempotency-Key": f"contract-{time.time_ns()}"}

    grant = api.call("POST", "/v1/uploads", json=body, headers=key).json()
    assert requests.put(grant["upload"]["url"], data=photo, headers=grant["upload"]["headers"], timeout=60).ok
    media_id = grant["media_id"]
    api.call("POST", "/v1/uploads", json={**body, "size": 0})  # 400
    refused = requests.post(
        f"{stack.outputs.ApiUrl}/v1/uploads",
        data=b"x",
        headers={"Content-Type": "image/png", "x-api-key": operator_key},
        timeout=60,
    )
    api.check("POST", "/v1/uploads", refused)  # 415: the body is JSON
    api.call("POST", "/v1/uploads", json={**body, "filename": "other.jpg"}, headers=key)  # 409 conflict
    assert api.call("POST", "/v1/uploads", json=body, headers=key).json()["error"]["code"] == "already_uploaded"

    big = os.urandom(17 * 1024 * 1024)  # not an image: the pipeline rejects it once assembled
    multipart = api.call(
        "POST", "/v1/uploads", json={"filename": "big.png", "content_type": "image/png", "size": len(big)}
    ).json()
    upload = multipart["upload"]
    assert upload["method"] == "MULTIPART"
    assert api.call("POST", "/v1/uploads/{media_id}/complete", media_id=multipart["media_id"]).status_code == 409
    offset = 0
    for part in upload["parts"]:
        chunk = big[offset : offset + part["size"]]
        assert requests.put(part["url"], data=chunk, headers=part["headers"], timeout=60).ok
        offset += part["size"]
    assert api.call("POST", "/v1/uploads/{media_id}/complete", media_id=multipart["media_id"]).status_code == 200
    api.call("POST", "/v1/uploads/{media_id}/complete", media_id="01JD3X4Y5Z6A7B8C9D0EFGHJKZ")  # 404

    finished = MediaReader(stack).wait_for_terminal([media_id, multipart["media_id"]], timeout=120)
    assert finished[media_id] is not None and finished[media_id].status == Status.READY  # type: ignore[union-attr]
    rejected = finished[multipart["media_id"]]
    assert rejected is not None and rejected.reason == "unsupported_type"
    api.call("GET", "/v1/media/{media_id}", media_id=media_id)
    api.call("GET", "/v1/media/{media_id}", media_id=multipart["media_id"])  # REJECTED: reason and detail
    api.call("GET", "/v1/media/{media_id}", media_id="01JD3X4Y5Z6A7B8C9D0EFGHJKZ")  # 404
    api.call("GET", "/v1/media", key=f"uploads/{media_id}/original")
    api.call("GET", "/v1/media", sha256=body["sha256"])
    api.call("GET", "/v1/media", status="READY", limit="1")
    api.call("GET", "/v1/media", status="NOPE")  # 400
    api.call("GET", "/v1/media", key="drop/never-dropped.jpg")  # 404
    api.call("POST", "/v1/media/{media_id}/retry", media_id=media_id)  # 409: not FAILED
    api.call("POST", "/v1/media/{media_id}/retry", media_id="01JD3X4Y5Z6A7B8C9D0EFGHJKZ")  # 404
    api.call("GET", "/v1/health")
    api.call("GET", "/v1/health", keyed=False)  # open without a key, as is the upload page
    assert "photopipe" in api.call("GET", "/", keyed=False).text
    for name in ("app.js", "style.css"):
        api.call("GET", "/page/{name}", keyed=False, name=name)
    api.call("GET", "/page/{name}", keyed=False, name="nothing.js")  # 404
    assert api.call("GET", "/v1/me").json() == {"owner": "operator"}
    albums(api)
    refusals(api, api_keys, body, media_id)
    assert api.call("GET", "/v1/nothing-here").status_code == 404
    assert api.call("DELETE", "/v1/media/{media_id}", media_id=media_id).status_code == 405

    assert api.documented() - api.seen == NOT_PROVOKED


def albums(api: ContractClient) -> None:
    """The albums, the first two pages of the newest (the photos just uploaded are in it), and their refusals."""
    [newest, *_] = api.call("GET", "/v1/albums").json()["items"]
    first = api.call("GET", "/v1/albums/{album_id}", album_id=newest["album_id"], limit="1").json()
    if first["next_token"]:
        api.call("GET", "/v1/albums/{album_id}", album_id=newest["album_id"], next_token=first["next_token"])
    api.call("GET", "/v1/albums", x="1")  # 400
    api.call("GET", "/v1/albums/{album_id}", album_id=newest["album_id"], limit="0")  # 400
    api.call("GET", "/v1/albums/{album_id}", album_id="1999-01-01")  # 404


def refusals(api: ContractClient, api_keys: ApiKeys, body: dict[str, Any], media_id: str) -> None:
    """403 for every route without a valid key; 429 once an owner's daily allowance is used up."""
    unknown = {"x-api-key": "not-a-key-of-this-stack"}
    for method, template in (
        ("POST", "/v1/uploads"),
        ("POST", "/v1/uploads/{media_id}/complete"),
        ("GET", "/v1/media/{media_id}"),
        ("GET", "/v1/media"),
        ("POST", "/v1/media/{media_id}/retry"),
        ("GET", "/v1/me"),
        ("GET", "/v1/albums"),
        ("GET", "/v1/albums/{album_id}"),
    ):
        for headers in ({}, unknown):
            refused = api.call(
                method, template, json=body, headers=headers, keyed=False, media_id=media_id, album_id="2026-01-01"
            )
            assert refused.status_code == 403, (method, template, refused.text)
            assert refused.json()["error"]["code"] == "forbidden"
    owner = api_keys.create(f"quota-{time.time_ns()}", {"daily_uploads": 1})
    limited = ContractClient(api.api_url, owner.value, api.spec)
    limited.call("POST", "/v1/uploads", json=body)
    over = limited.call("POST", "/v1/uploads", json=body)  # the second of the day
    assert over.status_code == 429 and int(over.headers["Retry-After"]) >= 1
    api.seen |= limited.seen
