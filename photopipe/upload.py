"""Batch upload: many files, bounded concurrency, retries with backoff, nothing uploaded twice.

Each file: sniff its type from its first bytes and hash it (streamed, never held whole in memory) → ask the API
whether these bytes are already a media (skip) → create an upload with an Idempotency-Key derived from the bytes and
name (a re-run after an interruption gets the same media, fresh URLs, and for a multipart upload the list of parts S3
already holds) → send the bytes with exactly the signed headers → optionally wait for a final status.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import requests

from photopipe_core.errors import RejectedInput
from photopipe_core.imaging import sniff
from photopipe_core.keys import media_id_for_object
from photopipe_core.rules import CONTENT_TYPES

TERMINAL = {"READY", "DUPLICATE", "REJECTED", "FAILED"}
# Waiting for photos: seconds between rounds of status questions, and how many photos a round should find finished.
POLL_MIN_SECONDS = 0.3
POLL_MAX_SECONDS = 2.0
FINISHED_PER_ROUND = 3
STALE_ASKS = 5  # questions about one unfinished photo in a row before the next ones are asked about first
RETRY_STATUSES = {429, 500, 502, 503, 504}
ATTEMPTS = 6
MAX_RETRY_AFTER = 120.0  # a Retry-After longer than this (a daily quota used up) is reported, not waited for
RETRY_AFTER_BUDGET = 900.0  # seconds one request may spend waiting as Retry-After answers ask
SNIFF_BYTES = 64


def default_concurrency() -> int:
    return max(4, min(16, (os.cpu_count() or 2) * 4))


class UploadFailed(RuntimeError):
    pass


class UploadProgress(Protocol):
    """Where the uploader reports bytes as they leave (a progress display, or nothing)."""

    def begin(self, path: Path, size: int) -> Callable[[int], None]:
        """A file starts sending; returns the function told of each chunk sent (negative when a send restarts)."""
        ...

    def end(self, path: Path) -> None: ...


class NoProgress:
    def begin(self, path: Path, size: int) -> Callable[[int], None]:
        return lambda _: None

    def end(self, path: Path) -> None:
        return None


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
    sent_at: float | None = None  # when the last byte was accepted (epoch seconds)
    updated_at: str | None = None  # when the media last changed status (the API's timestamp)

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


@dataclass(frozen=True)
class LocalFile:
    path: Path
    size: int
    content_type: str
    sha256: str

    @property
    def idempotency_key(self) -> str:
        """Same bytes and name → same key → same media on a re-run."""
        return hashlib.sha256(f"{self.sha256}:{self.path.name}".encode()).hexdigest()


def inspect_file(path: Path) -> LocalFile:
    """Type by content (magic bytes) and sha256, reading the file in chunks; RejectedInput if not an image."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
        content_type = CONTENT_TYPES[sniff(head)]
        handle.seek(0)
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return LocalFile(path, path.stat().st_size, content_type, digest)


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


def describe(response: requests.Response) -> str:
    """An HTTP refusal in a line: the status and the API's error message (or the start of S3's XML)."""
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text[:300]}"


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: up to 0.2 s, 0.4 s, 0.8 s … capped at 8 s."""
    return random.uniform(0, min(8.0, 0.2 * 2**attempt))  # noqa: S311 - jitter, not security


def retry_after(response: requests.Response) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait (a number, or an HTTP date), or None."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retried(call: Callable[[], requests.Response]) -> requests.Response:
    """``call`` again after connection errors and 429/5xx, with backoff; the last answer (or error) stands.

    A 429 or 503 that says when to come back (``Retry-After``) is waited for as asked, up to ``RETRY_AFTER_BUDGET``
    seconds in all, without using up the attempts; one that asks for longer than ``MAX_RETRY_AFTER`` (a daily quota
    used up) is the answer.
    """
    attempt, waited = 0, 0.0
    while True:
        try:
            response = call()
        except (requests.ConnectionError, requests.Timeout):
            if attempt == ATTEMPTS - 1:
                raise
        else:
            if response.status_code not in RETRY_STATUSES:
                return response
            asked = retry_after(response) if response.status_code in {429, 503} else None
            if asked is not None:
                if asked > MAX_RETRY_AFTER or waited + asked > RETRY_AFTER_BUDGET:
                    return response
                pause = asked + random.uniform(0, 1)  # noqa: S311 - jitter, not security
                time.sleep(pause)
                waited += pause
                continue
            if attempt == ATTEMPTS - 1:
                return response
        time.sleep(backoff(attempt))
        attempt += 1


class FileSlice:
    """``length`` bytes of a file from ``offset``, read in chunks as the HTTP body (so a 40 MB file is never held
    in memory) and reported to ``sent`` as they go."""

    def __init__(self, path: Path, offset: int, length: int, sent: Callable[[int], None]) -> None:
        self._handle = path.open("rb")
        self._handle.seek(offset)
        self._length = length
        self._left = length
        self._sent = sent

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        wanted = self._left if size is None or size < 0 else min(size, self._left)
        chunk = self._handle.read(wanted)
        self._left -= len(chunk)
        if chunk:
            self._sent(len(chunk))
        return chunk

    @property
    def sent(self) -> int:
        return self._length - self._left

    def close(self) -> None:
        self._handle.close()


class ApiClient:
    """The photopipe API, called with an owner's API key (sent to the API only, never to the presigned S3 URLs)."""

    def __init__(self, api_url: str, api_key: str, session: requests.Session | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.api_key = api_key
        self.session = session or requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def url(self, path_or_url: str) -> str:
        """Paths the API hands out (status_url, complete_url) are relative to its base URL (ApiUrl)."""
        return path_or_url if path_or_url.startswith(("http://", "https://")) else f"{self.api_url}{path_or_url}"

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        """One HTTP call, retried on connection errors and 429/5xx with backoff; other statuses are returned."""
        headers = {**kwargs.pop("headers", {}), "x-api-key": self.api_key}
        return retried(
            lambda: self.session.request(method, self.url(path_or_url), headers=headers, timeout=60, **kwargs)
        )

    def send_bytes(
        self, url: str, headers: dict[str, str], path: Path, offset: int, length: int, sent: Callable[[int], None]
    ) -> requests.Response:
        """PUT a byte range of a file to a presigned URL, retried like ``request``; a send that does not end in
        200 takes back the bytes it had reported."""

        def once() -> requests.Response:
            body = FileSlice(path, offset, length, sent)
            try:
                response = self.session.put(url, data=body, headers=headers, timeout=120)
            except (requests.ConnectionError, requests.Timeout):
                sent(-body.sent)
                raise
            finally:
                body.close()
            if response.status_code != 200:
                sent(-body.sent)
            return response

        return retried(once)

    def media(self, media_id: str) -> dict[str, Any]:
        response = self.request("GET", f"/v1/media/{media_id}")
        response.raise_for_status()
        return dict(response.json())

    def wait_for(
        self,
        media_ids: list[str],
        timeout: float,
        finished: Callable[[str, dict[str, Any]], None] | None = None,
        window: int = 1,
    ) -> dict[str, dict[str, Any] | None]:
        """Poll until every media has a final status or none has finished for ``timeout`` seconds; returns each
        media as the API shows it (None if never seen: its event was not processed yet).

        The deadline moves with progress: a batch that waits behind the pipeline's in-flight limit keeps waiting
        while photos finish, and a photo that never finishes times out alone once the others are done.

        Media finish roughly in the order they were sent, so each round asks about the oldest unfinished ones
        only (``window`` of them still running ends the round), and rounds are spaced so that a few media finish
        between them: a batch costs about one question per media plus one per round, not one per media per round.
        A media asked about ``STALE_ASKS`` times in a row without finishing goes to the back of the line, so one
        that is stuck (or waits longer than the rest) cannot hold up noticing the others. Each question is an API
        Gateway request and a Lambda invocation on the same stack that does the processing, so fewer of them
        leaves it more room.
        """
        deadline = time.monotonic() + timeout
        seen: dict[str, dict[str, Any] | None] = dict.fromkeys(media_ids)
        pending = list(media_ids)
        asks: dict[str, int] = {}
        delay = POLL_MIN_SECONDS
        while pending:
            running = progressed = 0
            for media_id in list(pending):
                response = self.request("GET", f"/v1/media/{media_id}")
                media = dict(response.json()) if response.status_code == 200 else None
                seen[media_id] = media or seen[media_id]
                if media is not None and media["status"] in TERMINAL:
                    pending.remove(media_id)
                    progressed += 1
                    if finished is not None:
                        finished(media_id, media)
                    continue
                asks[media_id] = asks.get(media_id, 0) + 1
                if asks[media_id] >= STALE_ASKS and len(pending) > 1:
                    pending.remove(media_id)  # to the back of the line; the next one gets asked
                    pending.append(media_id)
                    asks[media_id] = 0
                running += 1
                if running >= window:
                    break
            now = time.monotonic()
            if progressed:
                deadline = now + timeout
            if not pending or now > deadline:
                break
            if progressed:
                # Photos are finishing: stretch or shrink the wait (at most ×2 per round) so that about
                # FINISHED_PER_ROUND finish between rounds: a long batch costs about one question per photo plus
                # one per round, whether or not many were already finished when the waiting began.
                change = min(2.0, max(0.5, FINISHED_PER_ROUND / progressed))
                delay = min(POLL_MAX_SECONDS, max(POLL_MIN_SECONDS, delay * change))
            time.sleep(delay)
            if not progressed:
                delay = min(POLL_MAX_SECONDS, delay * 1.5)
        return seen

    def listing(self, status: str) -> Iterator[dict[str, Any]]:
        """Every media with this status, oldest first, page by page."""
        token = None
        while True:
            params = {"status": status, "limit": "100", **({"next_token": token} if token else {})}
            response = self.request("GET", "/v1/media", params=params)
            if response.status_code != 200:
                raise UploadFailed(f"listing {status} media failed: {describe(response)}")
            page = response.json()
            yield from page["items"]
            token = page.get("next_token")
            if not token:
                return

    def albums(self) -> list[dict[str, Any]]:
        """The caller's albums (``GET /v1/albums``)."""
        return list(self._json("GET", "/v1/albums")["items"])

    def album(self, album_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """An album and all of its media (every page of ``GET /v1/albums/{id}``)."""
        media: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": "100"}
        while True:
            page = self._json("GET", f"/v1/albums/{quote(album_id, safe='')}", params=params)
            media += page["items"]
            if not page["next_token"]:
                return page["album"], media
            params["next_token"] = page["next_token"]

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.request(method, path, **kwargs)
        if response.status_code != 200:
            raise UploadFailed(f"{method} {path}: {describe(response)}")
        return dict(response.json())

    def existing(self, sha256: str) -> dict[str, Any] | None:
        response = self.request("GET", "/v1/media", params={"sha256": sha256})
        return dict(response.json()) if response.status_code == 200 else None


class AlreadyUploaded(Exception):
    def __init__(self, media_id: str) -> None:
        super().__init__(media_id)
        self.media_id = media_id


class Uploader:
    def __init__(
        self,
        api: ApiClient,
        *,
        via: str = "api",
        concurrency: int | None = None,
        wait: bool = False,
        wait_timeout: float = 300.0,
        drop: Callable[[LocalFile, Callable[[int], None]], str] | None = None,
        progress: UploadProgress | None = None,
        callback_url: str | None = None,
    ) -> None:
        self.api = api
        self.callback_url = callback_url
        self.via = via
        self.concurrency = concurrency or default_concurrency()
        self.wait = wait
        self.wait_timeout = wait_timeout
        self.drop = drop
        self.progress = progress or NoProgress()

    def run(self, files: list[Path], on_done: Callable[[FileResult, int], None] | None = None) -> list[FileResult]:
        """Send every file (``concurrency`` at a time); with ``wait``, then follow what was sent to a final status.
        ``on_done`` hears of each file once, when its result is final for this run."""
        sizes = {str(path): path.stat().st_size for path in files}
        results: list[FileResult] = []
        waiting: dict[str, FileResult] = {}
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for future in as_completed(pool.submit(self.one, path) for path in files):
                result = future.result()
                results.append(result)
                if self.wait and result.media_id and result.status not in TERMINAL:
                    waiting[result.media_id] = result
                elif on_done is not None:
                    on_done(result, sizes[result.path])

        def finished(media_id: str, media: dict[str, Any]) -> None:
            result = waiting.pop(media_id)
            self._fill(result, media)
            if on_done is not None:
                on_done(result, sizes[result.path])

        if waiting:
            self.api.wait_for(list(waiting), self.wait_timeout, finished)
        for result in waiting.values():  # still not final when the time was up
            result.error = f"no final status; no photo finished for {self.wait_timeout:.0f} s (still {result.status})"
            if on_done is not None:
                on_done(result, sizes[result.path])
        order = {str(path): index for index, path in enumerate(files)}
        return sorted(results, key=lambda r: order.get(r.path, 0))

    def one(self, path: Path) -> FileResult:
        """Inspect and send one file (or find its bytes are already in); never raises for the file's own problems."""
        result = FileResult(path=str(path))
        try:
            try:
                local = inspect_file(path)
            except RejectedInput as rejection:  # not an image: refused here, nothing is sent
                result.status, result.reason, result.error = "REJECTED", rejection.reason, str(rejection)
                return result
            existing = self.api.existing(local.sha256)
            if existing and existing["status"] in {"READY", "DUPLICATE", "PROCESSING"}:
                result.skipped = True  # these bytes are already in (or on their way through) the pipeline
                self._fill(result, existing)
            else:
                result.media_id = self._send(local)
                result.sent_at = time.time()
                result.status = "PROCESSING"
        except (UploadFailed, requests.RequestException, OSError) as error:
            result.status, result.error = "FAILED", str(error)
        return result

    def _send(self, local: LocalFile) -> str:
        sent = self.progress.begin(local.path, local.size)
        try:
            if self.via == "drop":
                assert self.drop is not None, "--via drop needs the stack's bucket"
                return self.drop(local, sent)
            return self._via_api(local, sent)
        except AlreadyUploaded as already:
            return already.media_id
        finally:
            self.progress.end(local.path)

    def _grant(self, local: LocalFile) -> dict[str, Any]:
        body = {
            "filename": local.path.name,
            "content_type": local.content_type,
            "size": local.size,
            "sha256": local.sha256,
        }
        if self.callback_url:
            body["callback_url"] = self.callback_url
        created = self.api.request("POST", "/v1/uploads", json=body, headers={"Idempotency-Key": local.idempotency_key})
        if created.status_code == 409 and created.json().get("error", {}).get("code") == "already_uploaded":
            raise AlreadyUploaded(created.json()["error"]["media_id"])
        if created.status_code != 201:
            raise UploadFailed(f"{local.path}: the API refused the upload: {describe(created)}")
        return dict(created.json())

    def _via_api(self, local: LocalFile, sent: Callable[[int], None]) -> str:
        for attempt in range(ATTEMPTS):
            grant = self._grant(local)
            upload = grant["upload"]
            if upload["method"] == "MULTIPART":
                response = self._send_parts(local, upload, sent)
            else:
                response = self.api.send_bytes(upload["url"], upload["headers"], local.path, 0, local.size, sent)
            if response is None or response.status_code == 200:
                return str(grant["media_id"])
            # 403: the URL expired (a slow or resumed upload); ask for a new one. Anything else is final.
            if response.status_code != 403 or attempt == ATTEMPTS - 1:
                raise UploadFailed(f"{local.path}: the upload was refused: {describe(response)}")
            time.sleep(backoff(attempt))
        raise AssertionError("unreachable")

    def _send_parts(
        self, local: LocalFile, upload: dict[str, Any], sent: Callable[[int], None]
    ) -> requests.Response | None:
        """Send the parts S3 does not hold yet, then complete; a refused part is returned for the caller to judge."""
        offset = 0
        for part in upload["parts"]:
            if part["uploaded"]:
                sent(part["size"])  # resumed: S3 holds this part from an earlier run
            else:
                response = self.api.send_bytes(part["url"], part["headers"], local.path, offset, part["size"], sent)
                if response.status_code != 200:
                    return response
            offset += part["size"]
        completed = self.api.request("POST", upload["complete_url"])
        if completed.status_code != 200:
            raise UploadFailed(f"{local.path}: completing the upload failed: {describe(completed)}")
        return None

    @staticmethod
    def _fill(result: FileResult, media: dict[str, Any]) -> None:
        result.media_id = media["media_id"]
        result.status = media["status"]
        result.reason = media.get("reason")
        result.duplicate_of = media.get("duplicate_of")
        result.error = media.get("error")
        result.variants = media.get("variants", {})
        result.updated_at = media.get("updated_at")


def drop_object(s3: Any, bucket: str, key: str, path: Path, content_type: str, sent: Callable[[int], None]) -> str:
    """Write a file into the drop folder (boto3's managed transfer: multipart for big files) and return the media id
    the object will get (it depends on the ETag S3 gives it)."""
    s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type}, Callback=sent)
    return media_id_for_object(bucket, key, s3.head_object(Bucket=bucket, Key=key)["ETag"])


def drop_folder_writer(s3: Any, bucket: str, prefix: str) -> Callable[[LocalFile, Callable[[int], None]], str]:
    """Writes files under ``prefix`` (a folder under drop/); files of the same name from different folders do not
    overwrite each other."""

    def write(local: LocalFile, sent: Callable[[int], None]) -> str:
        key = f"{prefix}{local.sha256[:12]}/{local.path.name}"
        return drop_object(s3, bucket, key, local.path, local.content_type, sent)

    return write
