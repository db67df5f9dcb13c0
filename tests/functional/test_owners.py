"""Owners in-process: the API finds the owner of a request's key, and every read, lookup and action stays within
that owner's media; the pipeline gives each media its owner and deduplicates each owner's library on its own."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from photopipe import samples
from photopipe_core.models import OPERATOR
from photopipe_core.owners import OwnerExists, drop_folder, drop_folder_owner
from photopipe_core.repository import media_repository
from tests.functional.conftest import ApiKeys, FakeContext, KeyedClient, load_function
from tests.functional.pipeline import put_original, run_pipeline

UNKNOWN_ID = "01JD3X4Y5Z6A7B8C9D0EFGHJKZ"


@pytest.fixture
def app_client(stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    monkeypatch.setenv("PRESIGN_ENDPOINT_URL", "http://localhost:4566")
    with Client(load_function("api", "app").app) as client:
        yield client


def upload_body(data: bytes) -> dict[str, Any]:
    return {"filename": "a.jpg", "content_type": "image/jpeg", "size": len(data), "sha256": _sha(data)}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def create(client: KeyedClient, body: dict[str, Any], idempotency_key: str | None = None) -> Any:
    headers = {"Content-Type": "application/json", **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
    return client.http.post("/v1/uploads", body=json.dumps(body), headers=headers)


def test_a_request_without_a_key_of_an_owner_is_403(app_client: Client, api_keys: ApiKeys) -> None:
    keyed = KeyedClient(app_client, api_keys.make("alice"))
    for headers in ({"x-api-key": None}, {"x-api-key": "made-up"}):
        for method, path in (("GET", f"/v1/media/{UNKNOWN_ID}"), ("GET", "/v1/media?status=READY")):
            response = keyed.http.request(method, path, headers=headers)
            assert response.status_code == 403, (headers, path)
            assert response.json_body["error"]["code"] == "forbidden"
    # a key API Gateway admits but that maps to no owner (made by hand, or revoked a moment ago) is refused too
    value = api_keys.make("carol")
    media_repository().owners.revoke_key("carol")
    refused = KeyedClient(app_client, value).http.get("/v1/media?status=READY")
    assert refused.status_code == 403


def test_owners_see_only_their_own_media(app_client: Client, api_keys: ApiKeys) -> None:
    alice, bob = KeyedClient(app_client, api_keys.make("alice")), KeyedClient(app_client, api_keys.make("bob"))
    data = samples.jpeg_bytes(samples.photo(300, 200, seed=1))
    created = create(alice, upload_body(data), idempotency_key="one-key")
    assert created.status_code == 201
    media_id = created.json_body["media_id"]
    assert alice.http.get(f"/v1/media/{media_id}").json_body["owner"] == "alice"

    unknown = bob.http.get(f"/v1/media/{UNKNOWN_ID}").json_body
    theirs = bob.http.get(f"/v1/media/{media_id}")
    assert theirs.status_code == 404
    same = {
        **unknown["error"],
        "message": f"no media {media_id}",
        "request_id": theirs.json_body["error"]["request_id"],
    }
    assert theirs.json_body == {"error": same}
    for response in (
        bob.http.get(f"/v1/media?key=uploads/{media_id}/original"),
        bob.http.post(f"/v1/uploads/{media_id}/complete"),
        bob.http.post(f"/v1/media/{media_id}/retry"),
    ):
        assert response.status_code == 404 and response.json_body["error"]["code"] == "not_found"
    listing = bob.http.get("/v1/media?status=PENDING_UPLOAD").json_body
    assert listing == {"items": [], "next_token": None}
    assert [m["media_id"] for m in alice.http.get("/v1/media?status=PENDING_UPLOAD").json_body["items"]] == [media_id]

    # the same Idempotency-Key and body from bob: bob's own media
    again = create(bob, upload_body(data), idempotency_key="one-key")
    assert again.status_code == 201 and again.json_body["media_id"] != media_id
    assert bob.http.get(f"/v1/media/{again.json_body['media_id']}").json_body["owner"] == "bob"


def test_a_next_token_is_only_good_for_its_owners_listing(
    app_client: Client, api_keys: ApiKeys, context: FakeContext
) -> None:
    alice, bob = KeyedClient(app_client, api_keys.make("alice")), KeyedClient(app_client, api_keys.make("bob"))
    for seed in (1, 2):
        assert create(alice, upload_body(samples.jpeg_bytes(samples.photo(64, 64, seed=seed)))).status_code == 201
    token = alice.http.get("/v1/media?status=PENDING_UPLOAD&limit=1").json_body["next_token"]
    assert token
    assert alice.http.get(f"/v1/media?status=PENDING_UPLOAD&next_token={token}").status_code == 200
    refused = bob.http.get(f"/v1/media?status=PENDING_UPLOAD&next_token={token}")
    assert refused.status_code == 400 and refused.json_body["error"]["code"] == "invalid_next_token"


def test_the_drop_folder_rule_and_deduplication_per_owner(
    stack: dict[str, Any], api_keys: ApiKeys, app_client: Client, context: FakeContext
) -> None:
    # Given an owner dave, and the same photo dropped into dave's folder, a folder naming nobody, and the top
    dave = KeyedClient(app_client, api_keys.make("dave"))
    operator = KeyedClient(app_client, api_keys.make(OPERATOR))
    photo = samples.jpeg_bytes(samples.photo(320, 240, seed=4))
    results = {
        key: run_pipeline(put_original(key, photo), context, execution=f"arn:exec:{n}")
        for n, key in enumerate(["drop/dave/trip/d1.jpg", "drop/nobody/d2.jpg", "drop/d3.jpg", "drop/dave/d4.jpg"])
    }
    owners = {key: media_repository().get(result["media_id"]).owner for key, result in results.items()}  # type: ignore[union-attr]
    # Then dave's folder is dave's, anything else the operator's
    assert owners == {
        "drop/dave/trip/d1.jpg": "dave",
        "drop/nobody/d2.jpg": OPERATOR,
        "drop/d3.jpg": OPERATOR,
        "drop/dave/d4.jpg": "dave",
    }
    # And the bytes are READY once per owner, the later copies DUPLICATEs within the same owner
    statuses = {key: result["status"] for key, result in results.items()}
    assert statuses == {
        "drop/dave/trip/d1.jpg": "READY",
        "drop/nobody/d2.jpg": "READY",
        "drop/d3.jpg": "DUPLICATE",
        "drop/dave/d4.jpg": "DUPLICATE",
    }
    assert media_repository().get("D3").duplicate_of == "D2"  # type: ignore[union-attr]
    assert media_repository().get("D4").duplicate_of == "D1"  # type: ignore[union-attr]
    # And each finds its own copy by sha256, near-duplicates only among their own
    assert dave.http.get(f"/v1/media?sha256={_sha(photo)}").json_body["media_id"] == "D1"
    assert operator.http.get(f"/v1/media?sha256={_sha(photo)}").json_body["media_id"] == "D2"
    assert dave.http.get("/v1/media?key=drop/nobody/d2.jpg").status_code == 404
    assert media_repository().get("D1").similar_to == []  # type: ignore[union-attr]


def test_an_owner_has_one_key_at_a_time(stack: dict[str, Any]) -> None:
    owners = media_repository().owners
    owners.register_key("erin", "k1")
    with pytest.raises(OwnerExists):
        owners.register_key("erin", "k2")
    assert owners.of_api_key("k2") is None
    assert owners.revoke_key("erin") == "k1"
    assert owners.of_api_key("k1") is None
    owners.register_key("erin", "k2")
    assert owners.of_api_key("k2") == "erin" and owners.get("erin").key_id == "k2"  # type: ignore[union-attr]
    assert [owner.name for owner in owners.everyone()] == ["erin"]


@pytest.mark.parametrize(
    ("key", "owner"),
    [
        ("drop/alice/a.jpg", "alice"),
        ("drop/alice/x/y/a.jpg", "alice"),
        ("drop/a.jpg", None),
        ("drop/Alice/a.jpg", None),  # owner names are lowercase
        ("drop/al ice/a.jpg", None),
        ("drop/alice/", None),  # a folder, not an object in it
        ("uploads/01JD3X4Y5Z6A7B8C9D0EFGHJKZ/original", None),
    ],
)
def test_which_drop_folder_keys_name_an_owner(key: str, owner: str | None) -> None:
    assert drop_folder_owner(key) == owner


def test_an_owners_drop_folder() -> None:
    assert drop_folder("alice") == "drop/alice/"
    assert drop_folder(OPERATOR) == "drop/"
