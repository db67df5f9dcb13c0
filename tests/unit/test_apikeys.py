"""The CLI's key file and key resolution, and the API function's key → owner cache (no network)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from photopipe.apikeys import KeyFile, NoApiKey, resolve_key
from photopipe_core.owners import OwnerCache, check_owner_name

API = "http://localhost:4566/_aws/execute-api/abc/prod"


def test_the_key_file_is_readable_by_its_user_only(tmp_path: Path) -> None:
    key_file = KeyFile(tmp_path / "config" / "photopipe" / "keys.json")
    key_file.save(API, "alice", "secret-value")
    assert stat.S_IMODE(key_file.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.path.parent.stat().st_mode) == 0o700
    assert key_file.get(API) == "secret-value" and key_file.owner(API) == "alice"
    assert key_file.get("http://elsewhere") is None
    assert [p.name for p in key_file.path.parent.iterdir()] == ["keys.json"]  # no temporary file left behind


def test_the_key_file_keeps_one_key_per_api_and_forgets_one(tmp_path: Path) -> None:
    key_file = KeyFile(tmp_path / "keys.json")
    key_file.save(API, "alice", "a")
    key_file.save("http://other", "bob", "b")
    key_file.save(API, "carol", "c")
    assert (key_file.get(API), key_file.owner(API), key_file.get("http://other")) == ("c", "carol", "b")
    key_file.forget(API)
    assert key_file.get(API) is None and key_file.get("http://other") == "b"


def test_the_key_sent_is_the_explicit_one_else_the_kept_one(tmp_path: Path) -> None:
    key_file = KeyFile(tmp_path / "keys.json")
    with pytest.raises(NoApiKey, match="keys create"):
        resolve_key(None, API, key_file)
    key_file.save(API, "alice", "kept")
    assert resolve_key(None, API, key_file) == "kept"
    assert resolve_key("given", API, key_file) == "given"


def test_an_unreadable_key_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{not json")
    with pytest.raises(NoApiKey, match="cannot read the key file"):
        KeyFile(path).get(API)


class CountingOwners:
    def __init__(self) -> None:
        self.asked = 0
        self.owner: str | None = "alice"

    def of_api_key(self, key_id: str) -> str | None:
        self.asked += 1
        return self.owner


def test_the_owner_cache_asks_once_per_key_until_its_answer_is_old(monkeypatch: pytest.MonkeyPatch) -> None:
    owners = CountingOwners()
    now = [1000.0]
    monkeypatch.setattr("photopipe_core.owners.time.monotonic", lambda: now[0])
    cache = OwnerCache(owners, ttl=60)  # type: ignore[arg-type]
    assert cache.owner_of("k") == "alice" and cache.owner_of("k") == "alice"
    assert owners.asked == 1
    owners.owner = None  # revoked
    now[0] += 61
    assert cache.owner_of("k") is None and owners.asked == 2


@pytest.mark.parametrize("name", ["alice", "a", "team-2", "x_y", "0day"])
def test_owner_names_that_are_folder_names(name: str) -> None:
    assert check_owner_name(name) == name


@pytest.mark.parametrize("name", ["", "Alice", "a/b", "a#b", "-lead", "a b", "é", "x" * 64])
def test_owner_names_that_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not an owner name"):
        check_owner_name(name)
