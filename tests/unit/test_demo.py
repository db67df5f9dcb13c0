"""The demo's verdict: which outcomes of its sample set count as expected."""

from __future__ import annotations

from typing import Any

import pytest

from photopipe import demo


@pytest.fixture(scope="module")
def expected() -> dict[str, dict[str, Any] | None]:
    """Every sample as the API would show it when all went as the sample set says."""
    outcomes: dict[str, dict[str, Any] | None] = {}
    for sample in demo.sample_set():
        outcomes[sample.name] = {"status": sample.expect, **({"reason": sample.reason} if sample.reason else {})}
    return outcomes


def test_the_expected_outcomes_pass(expected: dict[str, dict[str, Any] | None]) -> None:
    assert demo.unexpected(expected) == []


def test_either_copy_of_the_same_bytes_may_be_the_duplicate(expected: dict[str, dict[str, Any] | None]) -> None:
    swapped = {**expected, "landscape.jpg": {"status": "DUPLICATE"}, "landscape-copy.jpg": {"status": "READY"}}
    assert demo.unexpected(swapped) == []


@pytest.mark.parametrize(
    ("original", "copy"), [("READY", "READY"), ("DUPLICATE", "DUPLICATE"), ("READY", None), ("FAILED", "DUPLICATE")]
)
def test_the_copies_must_end_one_ready_one_duplicate(
    expected: dict[str, dict[str, Any] | None], original: str, copy: str | None
) -> None:
    outcomes = {**expected, "landscape.jpg": {"status": original}, "landscape-copy.jpg": copy and {"status": copy}}
    assert demo.unexpected(outcomes) == [
        f"landscape-copy.jpg and landscape.jpg: {sorted({original, copy or '(not seen)'})}, "
        "expected READY and DUPLICATE"
    ]


def test_a_wrong_status_or_reason_is_named(expected: dict[str, dict[str, Any] | None]) -> None:
    outcomes = {
        **expected,
        "small.jpg": {"status": "FAILED"},
        "truncated.jpg": {"status": "REJECTED", "reason": "too_large"},
    }
    assert demo.unexpected(outcomes) == [
        "small.jpg: FAILED, expected READY",
        "truncated.jpg: REJECTED (too_large), expected REJECTED corrupt",
    ]
