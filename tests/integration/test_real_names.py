"""Drop-folder files named as people name them: spaces, '+', '%', '#', '?', '(1)', accents, Cyrillic, CJK, emoji.

S3 events spell keys URL-encoded; the pipeline must process, record and find each photo under its real key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from photopipe.media import MediaReader
from photopipe.soak import follow, tiny_photo
from photopipe.stack import Stack
from photopipe.upload import ApiClient
from photopipe_core.models import Status

NAMES = [
    "IMG 0001 (1).jpg",
    "red+flower.jpg",
    "100% real.jpg",
    "take #2.jpg",
    "why?.jpg",
    "Été 2024/plage.jpg",
    "лето/море.jpg",
    "夏の写真/海.jpg",
    "📷 roll/🌅.jpg",
    "a+b %20 literal.jpg",
]


def test_real_file_names_in_the_drop_folder_end_ready_and_are_found_by_their_key(
    stack: Stack, aws_client: Callable[[str], Any], operator_key: str
) -> None:
    # Given photos dropped under the names people give them
    s3, bucket = aws_client("s3"), stack.outputs.MediaBucketName
    folder = f"drop/names-{time.time_ns()}/"
    for n, name in enumerate(NAMES):
        s3.put_object(Bucket=bucket, Key=folder + name, Body=tiny_photo(n, folder), ContentType="image/jpeg")
    # When each is looked up by its real key (as `photopipe status` and the README do)
    api = ApiClient(stack.outputs.ApiUrl, operator_key)
    found: dict[str, str] = {}
    deadline = time.monotonic() + 120
    while len(found) < len(NAMES) and time.monotonic() < deadline:
        for name in NAMES:
            if name not in found:
                response = api.request("GET", "/v1/media", params={"key": folder + name})
                if response.status_code == 200:
                    found[name] = response.json()["media_id"]
        time.sleep(0.5)
    # Then every one was found, and each ends READY with its key as given
    assert sorted(found) == sorted(NAMES)
    statuses = follow(MediaReader(stack), list(found.values()), timeout=180)
    assert all(status is Status.READY for status in statuses.values()), statuses
    reader = MediaReader(stack)
    for name, media_id in found.items():
        item = reader.get(media_id)
        assert item is not None and item.source.key == folder + name
