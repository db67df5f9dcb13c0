from __future__ import annotations

import pytest

from photopipe_core import keys


def test_upload_key_maps_back_to_its_media_id() -> None:
    media_id = "01JD3X4Y5Z6A7B8C9D0EFGHJKM"
    assert keys.media_id_for_object("bucket", keys.upload_key(media_id), '"etag"') == media_id


def test_drop_folder_id_is_deterministic_for_the_same_object() -> None:
    first = keys.media_id_for_object("bucket", "drop/a/b.jpg", '"abc"')
    again = keys.media_id_for_object("bucket", "drop/a/b.jpg", "abc")  # quotes around an ETag do not matter
    assert first == again
    assert keys.MEDIA_ID_PATTERN.match(first)


@pytest.mark.parametrize(
    ("bucket", "key", "etag"),
    [("other", "drop/a/b.jpg", "abc"), ("bucket", "drop/a/c.jpg", "abc"), ("bucket", "drop/a/b.jpg", "abd")],
)
def test_drop_folder_id_changes_with_bucket_key_or_etag(bucket: str, key: str, etag: str) -> None:
    assert keys.media_id_for_object(bucket, key, etag) != keys.media_id_for_object("bucket", "drop/a/b.jpg", "abc")


def test_drop_folder_id_is_a_valid_execution_name() -> None:
    media_id = keys.derived_media_id("b", "drop/x.jpg", "e")
    assert len(media_id) == 26
    assert media_id.isalnum()


@pytest.mark.parametrize(
    "key",
    [
        "media/X/thumb.webp",
        "work/X/tmp",
        "other/x.jpg",
        "uploads/not-an-id/original",
        "uploads/01JD3X4Y5Z6A7B8C9D0EFGHJKM/extra",
        "drop/",
    ],
)
def test_keys_outside_the_ingest_layout_are_refused(key: str) -> None:
    with pytest.raises(keys.NotAnIngestKey):
        keys.media_id_for_object("bucket", key, "etag")


def test_output_and_work_keys_follow_the_contract() -> None:
    assert keys.variant_key("M", "thumb") == "media/M/thumb.webp"
    assert keys.work_prefix("M") == "work/M/"
    with pytest.raises(keys.NotAnIngestKey):  # outputs never start the pipeline again
        keys.media_id_for_object("bucket", keys.variant_key("M", "thumb"), "etag")
