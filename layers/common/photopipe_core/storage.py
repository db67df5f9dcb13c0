"""The object store: the media bucket behind a small class."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from photopipe_core import aws
from photopipe_core.settings import get_settings


class ObjectStore:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    def is_reachable(self) -> bool:
        self._client.head_bucket(Bucket=self.bucket)
        return True


@lru_cache(maxsize=1)
def object_store() -> ObjectStore:
    return ObjectStore(aws.client("s3"), get_settings().media_bucket)
