"""What schemathesis cannot know from the OpenAPI document alone (loaded through ``schemathesis.toml``).

``next_token`` is opaque: only a token the API gave out is valid, and any other string is refused with 400
(``invalid_next_token``, as documented). A generated string is never one the API gave out, so before a request that
the fuzzer means to be valid is sent, its ``next_token`` is replaced by a real one — the token of the first page of
that status, asked of the same API — or left out when that status has a single page.

A query parameter without a name, or whose value is ``null`` or only empty lists and objects, is not sent at all:
the request that arrives is another one than the fuzzer meant (its "invalid" request arrives valid), so such
queries are not generated.
"""

from __future__ import annotations

from functools import cache
from typing import Any

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


@cache
def first_page_token(base_url: str, status: str) -> str | None:
    response = requests.get(f"{base_url}/v1/media", params={"status": status, "limit": 1}, timeout=30)
    return response.json().get("next_token") if response.status_code == 200 else None  # noqa: PLR2004


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:  # noqa: ARG001 - the hook's signature
    query = case.query or {}
    meant_valid = case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE
    if case.operation.path != "/v1/media" or "next_token" not in query or not meant_valid:
        return
    token = first_page_token(case.operation.base_url.rstrip("/"), str(query.get("status")))
    if token:
        query["next_token"] = token
    else:
        del query["next_token"]
