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


def test_a_photo_an_earlier_demo_already_brought_may_end_a_duplicate_of_it(
    expected: dict[str, dict[str, Any] | None],
) -> None:
    # The library is kept across restarts: run again, the demo's drop-folder photos are duplicates of last time's.
    outcomes = {
        **{name: {**media, "media_id": f"NEW{index}"} for index, (name, media) in enumerate(expected.items()) if media},
        "panorama.jpg": {"status": "DUPLICATE", "media_id": "NEW9", "duplicate_of": "FROM-AN-EARLIER-RUN"},
    }
    assert demo.unexpected(outcomes) == []
    # but a duplicate of a photo of this run is still wrong
    outcomes["panorama.jpg"] = {"status": "DUPLICATE", "media_id": "NEW9", "duplicate_of": "NEW0"}
    assert demo.unexpected(outcomes) == ["panorama.jpg: DUPLICATE, expected READY"]
