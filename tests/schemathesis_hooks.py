"""What schemathesis cannot know from the OpenAPI document alone (loaded through ``schemathesis.toml``).

``next_token`` is opaque: only a token the API gave out for that listing is valid, and any other string is refused
with 400 (``invalid_next_token``, as documented). A generated string is never one the API gave out (and a token the
stateful phase carries over from one album's page may be put on another album's request), so before a request that
the fuzzer means to be valid is sent, its ``next_token`` is replaced by a real one — the token of the first page of
that status, or of that album, asked of the same API — or left out when that listing has a single page.

A query parameter without a name, or whose value is ``null`` or only empty lists and objects, is not sent at all:
the request that arrives is another one than the fuzzer meant (its "invalid" request arrives valid), so such
queries are not generated.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests
import schemathesis
from schemathesis import GenerationMode


def unsendable(value: Any) -> bool:
    if isinstance(value, dict):
        return all(unsendable(item) for item in value.values())
    if isinstance(value, list):
        return all(unsendable(item) for item in value)
    return value is None


@schemathesis.hook
def filter_query(context: Any, query: dict[str, Any] | None) -> bool:  # noqa: ARG001 - the hook's signature
    return not any(not name or unsendable(value) for name, value in (query or {}).items())


def first_page_token(url: str, params: dict[str, Any], key: str | None) -> str | None:
    headers = {"x-api-key": key} if key else {}
    response = requests.get(url, params={**params, "limit": 1}, headers=headers, timeout=30)
    return response.json().get("next_token") if response.status_code == 200 else None  # noqa: PLR2004


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:  # noqa: ARG001 - the hook's signature
    query = case.query or {}
    meant_valid = case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE
    if "next_token" not in query or not meant_valid:
        return
    base = case.operation.base_url.rstrip("/")
    key = {k.lower(): v for k, v in (kwargs.get("headers") or {}).items()}.get("x-api-key")
    if case.operation.path == "/v1/media":
        token = first_page_token(f"{base}/v1/media", {"status": str(query.get("status"))}, key)
    elif case.operation.path == "/v1/albums/{album_id}":
        album_id = str((case.path_parameters or {}).get("album_id", ""))
        token = first_page_token(f"{base}/v1/albums/{quote(album_id, safe='')}", {}, key)
    else:
        return
    if token:
        query["next_token"] = token
    else:
        del query["next_token"]
