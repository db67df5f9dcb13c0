"""Webhook signatures, the retry schedule and the callback URL rule (photopipe_core.webhooks)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
import yaml

from photopipe_core.webhooks import (
    CALLBACK_URL,
    check_callback_url,
    retry_delay,
    signature_header,
    verify,
)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_test"
BODY = b'{"id":"e1","detail":{"media_id":"M","version":1}}'


def test_the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_body() -> None:
    header = signature_header(SECRET, 1_796_000_000, BODY)
    expected = hmac.new(SECRET.encode(), b"1796000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1796000000,v1={expected}"


@pytest.mark.parametrize(
    ("secret", "body", "now", "ok"),
    [
        (SECRET, BODY, 1_796_000_000 + 299, True),
        (SECRET, BODY, 1_796_000_000 - 299, True),  # a receiver whose clock is behind
        (SECRET, BODY, 1_796_000_000 + 301, False),  # replayed later
        ("whsec_other", BODY, 1_796_000_000, False),
        (SECRET, BODY.replace(b"1", b"2"), 1_796_000_000, False),
    ],
)
def test_verify_takes_only_the_signed_body_with_the_secret_within_five_minutes(
    secret: str, body: bytes, now: int, ok: bool
) -> None:
    assert verify(secret, signature_header(SECRET, 1_796_000_000, BODY), body, now) is ok


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", "v1=00", "t=1796000000", "garbage"])
def test_verify_refuses_a_malformed_header(header: str) -> None:
    assert verify(SECRET, header, BODY, 1_796_000_000) is False


def test_retries_double_from_the_base_and_stop_growing_at_fifteen_minutes() -> None:
    assert [retry_delay(n, 30) for n in range(1, 8)] == [30, 60, 120, 240, 480, 900, 900]


def test_the_api_documents_exactly_the_callback_urls_the_code_takes() -> None:
    document = yaml.safe_load((ROOT / "functions/api/openapi.yaml").read_text())
    schema = document["components"]["schemas"]["CallbackUrl"]
    assert schema["pattern"] == f"^{CALLBACK_URL.pattern}$"
    assert schema["maxLength"] == 2048


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com",
        "http://127.0.0.1:8080/hooks",
        "http://example.com:65535/",
        "https://hooks.example.com/p?x=1&y=%20",
        "https://example.com?only=query",
    ],
)
def test_http_urls_of_a_host_are_taken(url: str) -> None:
    assert check_callback_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "https://user@example.com/",
        "https://example.com/a b",
        "https://example.com/\n",
        "https://exämple.com/",
        "//example.com/",
        "https://[::1]/",
        "https://example.com:port/",
        "http://127.0.0.1:70102/",  # no such port (a wrapped 4566)
    ],
)
def test_other_urls_are_refused_with_what_is_wrong(url: str) -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        check_callback_url(url)
