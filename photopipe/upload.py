"""Batch upload: many files, bounded concurrency, retries with backoff, nothing uploaded twice.

Each file: sniff its type and hash it locally → ask the API whether these bytes are already a media (skip) →
create an upload with an Idempotency-Key derived from the bytes (a re-run after an interruption gets the same
media, with a fresh URL) → PUT the bytes with exactly the signed headers → optionally wait for a final status.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from photopipe_core.errors import RejectedInput
from photopipe_core.imaging import CONTENT_TYPES, sniff
from photopipe_core.keys import DROP_PREFIX, media_id_for_object

TERMINAL = {"READY", "DUPLICATE", "REJECTED", "FAILED"}
RETRY_STATUSES = {429, 500, 502, 503, 504}
ATTEMPTS = 6


def default_concurrency() -> int:
    return max(4, min(16, (os.cpu_count() or 2) * 4))


class UploadFailed(RuntimeError):
    pass


@dataclass
class FileResult:
    path: str
    media_id: str | None = None
    status: str = "PENDING"
    reason: str | None = None
    duplicate_of: str | None = None
    variants: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    skipped: bool = False

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "media_id": self.media_id,
            "status": self.status,
            "variants": self.variants,
        }
        for key in ("reason", "duplicate_of", "error"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


def collect(paths: Iterable[str]) -> list[Path]:
    """Files named, and every file under folders named (recursively), in a stable order."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise UploadFailed(f"{name}: no such file or folder")
    return files


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: up to 0.2 s, 0.4 s, 0.8 s … capped at 8 s."""
    return random.uniform(0, min(8.0, 0.2 * 2**attempt))  # noqa: S311 - jitter, not security


class ApiClient:
    def __init__(self, api_url: str, session: requests.Session | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.session = session or requests.Session()

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        """One HTTP call, retried on connection errors and 429/5xx with backoff; other statuses are returned."""
        url = path_or_url if path_or_url.startswith("http") else f"{self.api_url}{path_or_url}"
        for attempt in range(ATTEMPTS):
            try:
                response = self.session.request(method, url, timeout=60, **kwargs)
            except (requests.ConnectionError, requests.Timeout):
                if attempt == ATTEMPTS - 1:
                    raise
            else:
                if response.status_code not in RETRY_STATUSES or attempt == ATTEMPTS - 1:
                    return response
            time.sleep(backoff(attempt))
        raise AssertionError("unreachable")

    def media(self, media_id: str) -> dict[str, Any]:
        response = self.request("GET", f"/v1/media/{media_id}")
        response.raise_for_status()
        return dict(response.json())

    def existing(self, sha256: str) -> dict[str, Any] | None:
        response = self.request("GET", "/v1/media", params={"sha256": sha256})
        return dict(response.json()) if response.status_code == 200 else None


class Uploader:
    def __init__(
        self,
        api: ApiClient,
        *,
        via: str = "api",
        concurrency: int | None = None,
        wait: bool = False,
        wait_timeout: float = 300.0,
        drop: Callable[[str, bytes, str], str] | None = None,
    ) -> None:
        self.api = api
        self.via = via
        self.concurrency = concurrency or default_concurrency()
        self.wait = wait
        self.wait_timeout = wait_timeout
        self.drop = drop

    def run(self, files: list[Path], on_done: Callable[[FileResult, int], None] | None = None) -> list[FileResult]:
        results: list[FileResult] = []
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self.one, path): path for path in files}
            for future in as_completed(futures):
                result = future.result()
                results.append(result)
                if on_done is not None:
                    on_done(result, futures[future].stat().st_size)
        order = {str(path): index for index, path in enumerate(files)}
        return sorted(results, key=lambda r: order.get(r.path, 0))

    def one(self, path: Path) -> FileResult:
        result = FileResult(path=str(path))
        try:
            data = path.read_bytes()
            try:
                content_type = CONTENT_TYPES[sniff(data)]
            except RejectedInput as rejection:  # not an image: refused here, nothing is sent
                result.status, result.reason, result.error = "REJECTED", rejection.reason, str(rejection)
                return result
            sha256 = hashlib.sha256(data).hexdigest()
            existing = self.api.existing(sha256)
            if existing and existing["status"] in {"READY", "DUPLICATE"}:
                result.skipped = True
                self._fill(result, existing)
                return result
            if self.via == "drop":
                assert self.drop is not None, "--via drop needs the stack's bucket"
                result.media_id = self.drop(path.name, data, content_type)
            else:
                result.media_id = self._put_via_api(path, data, content_type, sha256)
            result.status = "PROCESSING"
            if self.wait:
                self._fill(result, self._wait(result.media_id))
        except (UploadFailed, requests.RequestException, OSError) as error:
            result.status, result.error = "FAILED", str(error)
        return result

    def _put_via_api(self, path: Path, data: bytes, content_type: str, sha256: str) -> str:
        body = {"filename": path.name, "content_type": content_type, "size": len(data), "sha256": sha256}
        # Same bytes and name → same key → same media on a re-run (and a fresh URL when the old one expired).
        headers = {"Idempotency-Key": hashlib.sha256(f"{sha256}:{path.name}".encode()).hexdigest()}
        for attempt in range(ATTEMPTS):
            created = self.api.request("POST", "/v1/uploads", json=body, headers=headers)
            if created.status_code != 201:
                raise UploadFailed(f"{path}: the API refused the upload ({created.status_code}: {created.text[:300]})")
            grant = created.json()
            upload = grant["upload"]
            response = self.api.request("PUT", upload["url"], data=data, headers=upload["headers"])
            if response.status_code == 200:
                return str(grant["media_id"])
            if response.status_code != 403 or attempt == ATTEMPTS - 1:  # 403: expired URL → ask for a new one
                raise UploadFailed(f"{path}: S3 refused the upload ({response.status_code}: {response.text[:300]})")
            time.sleep(backoff(attempt))
        raise AssertionError("unreachable")

    def _wait(self, media_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.wait_timeout
        delay = 0.3
        while True:
            response = self.api.request("GET", f"/v1/media/{media_id}")
            if response.status_code == 200 and response.json()["status"] in TERMINAL:
                return dict(response.json())
            if time.monotonic() > deadline:
                raise UploadFailed(f"media {media_id} did not finish within {self.wait_timeout:.0f} s")
            time.sleep(delay)
            delay = min(2.0, delay * 1.5)

    @staticmethod
    def _fill(result: FileResult, media: dict[str, Any]) -> None:
        result.media_id = media["media_id"]
        result.status = media["status"]
        result.reason = media.get("reason")
        result.duplicate_of = media.get("duplicate_of")
        result.error = media.get("error")
        result.variants = media.get("variants", {})


def drop_folder_writer(s3: Any, bucket: str, prefix: str) -> Callable[[str, bytes, str], str]:
    """Write files under drop/<prefix>/ and return the media id each object will get."""

    def write(name: str, data: bytes, content_type: str) -> str:
        key = f"{DROP_PREFIX}{prefix}{name}"
        put = s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        return media_id_for_object(bucket, key, put["ETag"])

    return write
