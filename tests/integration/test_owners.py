"""Owners and API keys on the live API: API Gateway admits only keys of the stack's usage plan, and each key's owner
sees, finds and acts on only their own media — another owner's answer exactly as an unknown id does."""

from __future__ import annotations

import hashlib
import json
import stat
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from photopipe.apikeys import ApiKeys, KeyFile
from photopipe.cli import main
from photopipe.media import MediaReader
from photopipe.soak import follow, tiny_photo, upload_bytes
from photopipe.stack import Stack
from photopipe.upload import ApiClient
from photopipe_core.models import OPERATOR, Status

UNKNOWN_ID = "01JD3X4Y5Z6A7B8C9D0EFGHJKZ"


def owner_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def keyed(
    stack: Stack, key: str, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> requests.Response:
    """A request to the API with ``key`` (empty: none)."""
    sent = {**({"x-api-key": key} if key else {}), **(headers or {})}
    return requests.request(method, stack.outputs.ApiUrl + path, headers=sent, timeout=60, **kwargs)


def upload_request(data: bytes, name: str = "p.jpg") -> dict[str, Any]:
    return {
        "filename": name,
        "content_type": "image/jpeg",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def test_health_is_open_and_every_other_route_needs_a_key(stack: Stack) -> None:
    assert requests.get(stack.outputs.ApiUrl + "/v1/health", timeout=60).status_code == 200
    for method, path in (
        ("POST", "/v1/uploads"),
        ("GET", "/v1/media?status=READY"),
        ("GET", f"/v1/media/{UNKNOWN_ID}"),
    ):
        for key in ("", "not-a-key"):
            response = keyed(stack, key, method, path, json={})
            assert response.status_code == 403, (method, path, key, response.text)
            assert response.json()["error"]["code"] == "forbidden"


def test_another_owners_media_answer_as_unknown_ones_and_keys_are_per_owner(stack: Stack, api_keys: ApiKeys) -> None:
    # Given two owners, and a READY photo of alice's uploaded with an Idempotency-Key
    alice, bob = api_keys.create(owner_name("alice")), api_keys.create(owner_name("bob"))
    photo = tiny_photo(1, alice.owner)
    request = upload_request(photo)
    idempotency = {"Idempotency-Key": f"same-key-{uuid.uuid4().hex}"}
    granted = keyed(stack, alice.value, "POST", "/v1/uploads", json=request, headers=idempotency)
    assert granted.status_code == 201, granted.text
    grant = granted.json()
    assert requests.put(grant["upload"]["url"], data=photo, headers=grant["upload"]["headers"], timeout=60).ok
    media_id = grant["media_id"]
    assert follow(MediaReader(stack), [media_id], timeout=120)[media_id] is Status.READY
    mine = keyed(stack, alice.value, "GET", f"/v1/media/{media_id}").json()
    assert mine["owner"] == alice.owner

    # When bob asks for it by id, key, sha256 and status, completes or retries it
    bob_sees = {
        "by id": keyed(stack, bob.value, "GET", f"/v1/media/{media_id}"),
        "by key": keyed(stack, bob.value, "GET", "/v1/media", params={"key": f"uploads/{media_id}/original"}),
        "by sha256": keyed(stack, bob.value, "GET", "/v1/media", params={"sha256": request["sha256"]}),
        "complete": keyed(stack, bob.value, "POST", f"/v1/uploads/{media_id}/complete"),
        "retry": keyed(stack, bob.value, "POST", f"/v1/media/{media_id}/retry"),
    }
    unknown = keyed(stack, bob.value, "GET", f"/v1/media/{UNKNOWN_ID}")
    # Then each is a 404 like an unknown id's (same code, same message but the id)
    for what, response in bob_sees.items():
        assert response.status_code == 404, (what, response.text)
        assert response.json()["error"]["code"] == "not_found", what
    assert bob_sees["by id"].json()["error"]["message"] == unknown.json()["error"]["message"].replace(
        UNKNOWN_ID, media_id
    )
    listed = keyed(stack, bob.value, "GET", "/v1/media", params={"status": "READY", "limit": "100"}).json()
    assert media_id not in {item["media_id"] for item in listed["items"]}
    assert listed["items"] == [] and listed["next_token"] is None  # bob has no media at all yet
    alice_listed = keyed(stack, alice.value, "GET", "/v1/media", params={"status": "READY"}).json()
    assert [item["media_id"] for item in alice_listed["items"]] == [media_id]

    # And bob's request with alice's Idempotency-Key (and body) makes bob's own media, which is not a duplicate
    # of alice's photo though the bytes are the same: each owner's library is deduplicated on its own
    again = keyed(stack, bob.value, "POST", "/v1/uploads", json=request, headers=idempotency)
    assert again.status_code == 201, again.text
    bobs = again.json()
    assert bobs["media_id"] != media_id
    assert requests.put(bobs["upload"]["url"], data=photo, headers=bobs["upload"]["headers"], timeout=60).ok
    assert follow(MediaReader(stack), [bobs["media_id"]], timeout=120)[bobs["media_id"]] is Status.READY
    bob_media = keyed(stack, bob.value, "GET", f"/v1/media/{bobs['media_id']}").json()
    assert bob_media["owner"] == bob.owner and "duplicate_of" not in bob_media
    # and alice's token for her listing is not bob's (two more of alice's uploads, so her list has a second page)
    for n in (3, 4):
        assert keyed(stack, alice.value, "POST", "/v1/uploads", json=upload_request(tiny_photo(n, alice.owner))).ok
    page = keyed(stack, alice.value, "GET", "/v1/media", params={"status": "PENDING_UPLOAD", "limit": "1"}).json()
    assert page["next_token"]
    listing = {"status": "PENDING_UPLOAD", "next_token": page["next_token"]}
    assert keyed(stack, alice.value, "GET", "/v1/media", params=listing).status_code == 200
    refused = keyed(stack, bob.value, "GET", "/v1/media", params=listing)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_next_token"


def test_a_revoked_key_is_refused_and_its_owner_keeps_their_media(stack: Stack, api_keys: ApiKeys) -> None:
    # Given an owner with a photo
    carol = api_keys.create(owner_name("carol"))
    media_id = upload_bytes(ApiClient(stack.outputs.ApiUrl, carol.value), "c.jpg", tiny_photo(2, carol.owner))
    assert keyed(stack, carol.value, "GET", f"/v1/media/{media_id}").status_code == 200
    # When the key is revoked
    assert api_keys.revoke(carol.owner) == carol.key_id
    # Then it is refused at once, and a new key of the same owner sees the same media
    refused = keyed(stack, carol.value, "GET", f"/v1/media/{media_id}")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    renewed = api_keys.create(carol.owner)
    assert renewed.value != carol.value
    assert keyed(stack, renewed.value, "GET", f"/v1/media/{media_id}").json()["owner"] == carol.owner
    assert keyed(stack, carol.value, "GET", f"/v1/media/{media_id}").status_code == 403


def test_the_drop_folder_of_an_owner_is_theirs_and_any_other_folder_the_operators(
    stack: Stack, api_keys: ApiKeys, operator_key: str, aws_client: Callable[[str], Any]
) -> None:
    dave = api_keys.create(owner_name("dave"))
    s3, bucket = aws_client("s3"), stack.outputs.MediaBucketName
    run = f"{time.time_ns()}"
    keys = {
        dave.owner: f"drop/{dave.owner}/trip/one.jpg",
        OPERATOR: f"drop/nobody-{run}/two.jpg",  # a folder that names no owner
    }
    for n, key in enumerate(keys.values()):
        s3.put_object(Bucket=bucket, Key=key, Body=tiny_photo(10 + n, run), ContentType="image/jpeg")
    for owner, key in keys.items():
        own_key = dave.value if owner == dave.owner else operator_key
        other_key = operator_key if owner == dave.owner else dave.value
        deadline = time.monotonic() + 120
        found = keyed(stack, own_key, "GET", "/v1/media", params={"key": key})
        while found.status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.5)
            found = keyed(stack, own_key, "GET", "/v1/media", params={"key": key})
        assert found.status_code == 200, (key, found.text)
        assert found.json()["owner"] == owner
        assert keyed(stack, other_key, "GET", "/v1/media", params={"key": key}).status_code == 404


def test_photopipe_keys_create_list_revoke_and_the_key_file(stack: Stack, tmp_path: Path) -> None:
    endpoint = ["--endpoint-url", stack.settings.endpoint_url]
    name = owner_name("erin")
    runner = CliRunner()
    # create --save prints the key once and keeps it in a file only its user can read
    created = runner.invoke(main, [*endpoint, "keys", "create", name, "--save", "--json"])
    assert created.exit_code == 0, created.output
    value = json.loads(created.stdout)["key"]
    key_file = KeyFile()
    assert key_file.get(stack.outputs.ApiUrl) == value
    assert stat.S_IMODE(key_file.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.path.parent.stat().st_mode) == 0o700
    # show prints the kept key alone on stdout (to paste into the upload page), whose it is on stderr
    shown = runner.invoke(main, [*endpoint, "keys", "show"])
    assert shown.exit_code == 0 and shown.stdout == f"{value}\n" and name in shown.stderr, shown.output
    # the CLI uses the kept key when none is given (no PHOTOPIPE_API_KEY here)
    photo = tmp_path / "f.jpg"
    photo.write_bytes(tiny_photo(20, name))
    env = {"PHOTOPIPE_API_KEY": ""}
    uploaded = runner.invoke(main, [*endpoint, "upload", str(photo), "--wait", "--json"], env=env)
    assert uploaded.exit_code == 0, uploaded.output
    media_id = json.loads(uploaded.stdout.splitlines()[-1])["media_id"]
    assert keyed(stack, value, "GET", f"/v1/media/{media_id}").json()["owner"] == name
    # list shows owners and key ids, never a key
    listed = runner.invoke(main, [*endpoint, "keys", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["owner"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert rows[name]["enabled"] is True and rows[name]["key_id"]
    assert value not in listed.stdout
    # a second key for the same owner is refused while the first is valid
    assert runner.invoke(main, [*endpoint, "keys", "create", name]).exit_code != 0
    # revoke: the key is refused, the key file forgets it, and the CLI says how to get one
    revoked = runner.invoke(main, [*endpoint, "keys", "revoke", name])
    assert revoked.exit_code == 0, revoked.output
    assert keyed(stack, value, "GET", f"/v1/media/{media_id}").status_code == 403
    assert key_file.get(stack.outputs.ApiUrl) is None
    without = runner.invoke(main, [*endpoint, "ls"], env=env)
    assert without.exit_code != 0 and "keys create" in without.output
    # names that cannot be an owner (a folder under drop/) are refused with the rule
    bad = runner.invoke(main, [*endpoint, "keys", "create", "Not/Valid"])
    assert bad.exit_code != 0 and "owner name" in bad.output


def test_an_owners_daily_quota_is_429_with_retry_after_even_for_requests_at_once(
    stack: Stack, api_keys: ApiKeys
) -> None:
    # Given an owner allowed three uploads a day
    frank = api_keys.create(owner_name("frank"), {"daily_uploads": 3})
    body = {"filename": "f.jpg", "content_type": "image/jpeg", "size": 1000}
    # When eight uploads are asked for at once
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: keyed(stack, frank.value, "POST", "/v1/uploads", json=body), range(8)))
    # Then exactly three are granted, and the others are told to come back tomorrow (UTC)
    assert sorted(a.status_code for a in answers) == [201] * 3 + [429] * 5
    for refused in (a for a in answers if a.status_code == 429):
        assert refused.json()["error"]["code"] == "over_quota"
        assert 0 < int(refused.headers["Retry-After"]) <= 86400 + 1
    # And another owner is not affected
    other = api_keys.create(owner_name("grace"))
    assert keyed(stack, other.value, "POST", "/v1/uploads", json=body).status_code == 201


@pytest.mark.parametrize("path", ["/v1/nothing-here", "/page/nothing/here", "/nothing"])
def test_unknown_routes_need_a_key_too(stack: Stack, path: str) -> None:
    """Only the health check and the upload page's own files answer without a key."""
    assert keyed(stack, "", "GET", path).status_code == 403
