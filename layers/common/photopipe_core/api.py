"""The HTTP API's behaviour (DESIGN §4.2), independent of the web framework that routes to it.

Every client mistake is an ``ApiError`` with an HTTP status, a stable ``code`` and a sentence; the Chalice app
maps it to ``{"error": {"code", "message"}}`` in one place.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from photopipe_core.albums import ALBUM_ID, Album, albums
from photopipe_core.inflight import InFlightSlots
from photopipe_core.keys import MEDIA_ID_PATTERN, new_media_id, upload_key
from photopipe_core.models import MediaItem, Placeholder, Status, Variant
from photopipe_core.pipeline import AtCapacity, PipelineStarter
from photopipe_core.quotas import OverQuota, Quotas
from photopipe_core.repository import AlreadyExists, InvalidTransition, MediaRepository
from photopipe_core.rules import CONTENT_TYPES, TYPE_ALIASES
from photopipe_core.settings import Settings
from photopipe_core.storage import NoSuchUpload, ObjectStore, Presigner, UploadedPart
from photopipe_core.webhooks import check_callback_url

ACCEPTED_TYPES = frozenset(CONTENT_TYPES.values())
# Every spelling of ``content_type`` the API takes, exactly as written (the OpenAPI document's enum).
ACCEPTED_SPELLINGS = ACCEPTED_TYPES | frozenset(alias for alias, canonical in TYPE_ALIASES.items())
# Abandoned PENDING_UPLOAD items leave the table after this long (DynamoDB TTL).
PENDING_TTL_SECONDS = 24 * 3600
MAX_PAGE = 100
MAX_PARTS = 10_000  # S3's limit on parts per multipart upload
MAX_KEY_BYTES = 1024  # S3's limit on an object key (UTF-8)
RETRY_AFTER_SECONDS = 5  # a retry refused because every in-flight slot is taken: about when one frees up
# A media id, a status or an owner's name and a timestamp: no field of a next_token this API gives out is longer.
MAX_TOKEN_FIELD = 96


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **details: str
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}  # e.g. Retry-After on a 429
        self.details = details  # extra fields a client can act on (e.g. the media_id of an upload already made)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    filename: str = Field(min_length=1, max_length=1024)
    content_type: str = Field(min_length=1, max_length=255)
    size: int
    sha256: str | None = None
    callback_url: str | None = None  # where the media's final-status events are delivered, signed (webhooks.py)


def parse_upload_request(raw: bytes | str | None, settings: Settings) -> UploadRequest:
    """The request body as a model, or the ApiError that names what is wrong with it."""
    document = _json_object(raw)
    try:
        request = UploadRequest.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(400, "invalid_request", f"{field}: {first['msg']}") from error
    if not _is_unicode(request.filename):
        raise ApiError(400, "invalid_request", "filename: is not valid Unicode (a lone surrogate)")
    if request.content_type not in ACCEPTED_SPELLINGS:
        raise ApiError(
            400,
            "unsupported_type",
            f"content_type {request.content_type!r} is not accepted; use one of {sorted(ACCEPTED_SPELLINGS)}",
        )
    if request.size <= 0:
        raise ApiError(400, "invalid_size", "size must be greater than 0")
    if request.size > settings.max_upload_bytes:
        raise ApiError(400, "too_large", f"size {request.size} is over the limit of {settings.max_upload_bytes} bytes")
    if request.sha256 is not None and not _is_sha256(request.sha256):
        raise ApiError(400, "invalid_sha256", "sha256 must be 64 hexadecimal characters")
    if request.callback_url is not None:
        try:
            check_callback_url(request.callback_url)
        except ValueError as error:
            raise ApiError(400, "invalid_callback_url", f"callback_url {error}") from error
    return request.model_copy(
        update={
            "content_type": TYPE_ALIASES.get(request.content_type, request.content_type),
            "sha256": request.sha256.lower() if request.sha256 else None,
        }
    )


def _json_object(raw: bytes | str | None) -> dict[str, Any]:
    """The body as a JSON object whose ``size`` is a JSON integer and whose ``sha256`` and ``callback_url``, if
    there, are strings."""
    try:
        document = json.loads(raw or b"")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    if "sha256" in document and not isinstance(document["sha256"], str):
        raise ApiError(400, "invalid_sha256", "sha256 must be 64 hexadecimal characters (leave it out if unknown)")
    if "callback_url" in document and not isinstance(document["callback_url"], str):
        raise ApiError(400, "invalid_callback_url", "callback_url must be a URL string (leave it out for none)")
    size = document.get("size", 0)
    if isinstance(size, float) and size.is_integer():
        document["size"] = size = int(size)  # 5.0 is the integer 5 in JSON (and in the OpenAPI document)
    if isinstance(size, bool) or not isinstance(size, int):
        raise ApiError(400, "invalid_size", "size must be an integer number of bytes")
    return document


def _is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)


@dataclass(frozen=True)
class MediaQuery:
    """What ``GET /v1/media`` asks for: exactly one of ``key``, ``sha256`` or ``status`` (with ``limit`` and
    ``next_token``), as the OpenAPI document's three forms say."""

    key: str | None = None
    sha256: str | None = None
    status: Status | None = None
    limit: int | None = None
    next_token: str | None = None


_QUERY_FORMS = {
    "key": frozenset({"key"}),
    "sha256": frozenset({"sha256"}),
    "status": frozenset({"status", "limit", "next_token"}),
}


def parse_media_query(params: Mapping[str, str]) -> MediaQuery:
    """The query of ``GET /v1/media`` as one of its three forms, or the ApiError that says what is wrong."""
    names = set(params)
    if unknown := names - set().union(*_QUERY_FORMS.values()):
        raise ApiError(400, "unknown_query", f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    forms = [form for form in _QUERY_FORMS if form in names]
    if not forms:
        raise ApiError(400, "missing_query", "give ?key=<s3 key>, ?sha256=<hex> or ?status=<status>")
    if len(forms) > 1 or not names <= _QUERY_FORMS[forms[0]]:
        raise ApiError(
            400,
            "conflicting_query",
            "give exactly one of key, sha256 or status; limit and next_token go only with status",
        )
    if "key" in names:
        if not params["key"] or not _is_unicode(params["key"]):
            raise ApiError(400, "invalid_key", "key must be a non-empty S3 key")
        return MediaQuery(key=params["key"])
    if "sha256" in names:
        if not _is_sha256(params["sha256"]):
            raise ApiError(400, "invalid_sha256", "sha256 must be 64 hexadecimal characters")
        return MediaQuery(sha256=params["sha256"].lower())
    try:
        status = Status(params["status"])
    except ValueError as error:
        raise ApiError(400, "invalid_status", f"status must be one of {[s.value for s in Status]}") from error
    limit, next_token = _page(params)
    return MediaQuery(status=status, limit=limit, next_token=next_token)


def plan_parts(size: int, part_bytes: int) -> list[tuple[int, int]]:
    """(part number, length) of each part of a multipart upload of ``size`` bytes; every part but the last is
    ``part_bytes`` long (larger when needed to stay within S3's 10,000 parts)."""
    part = max(part_bytes, -(-size // MAX_PARTS))
    return [(number, min(part, size - offset)) for number, offset in enumerate(range(0, size, part), start=1)]


def status_path(media_id: str) -> str:
    """Where to follow a media, relative to the API's base URL (the stack output ApiUrl)."""
    return f"/v1/media/{media_id}"


def without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _sha256_base64(hex_digest: str) -> str:
    return base64.b64encode(binascii.unhexlify(hex_digest)).decode()


class MediaApi:
    def __init__(
        self,
        repo: MediaRepository,
        store: ObjectStore,
        presigner: Presigner,
        starter: PipelineStarter,
        slots: InFlightSlots,
        quotas: Quotas,
        settings: Settings,
    ) -> None:
        self._repo = repo
        self._quotas = quotas
        self._store = store
        self._presigner = presigner
        self._starter = starter
        self._slots = slots
        self._settings = settings

    # --- uploads ---------------------------------------------------------------------------------------------
    def create_upload(self, owner: str, request: UploadRequest, idempotency_key: str | None) -> dict[str, Any]:
        """A PENDING_UPLOAD media of ``owner`` and where to send its bytes: one presigned PUT bound to key, type,
        size (and sha256 when given), or presigned part URLs of a multipart upload for files over the threshold."""
        media_id = new_media_id()
        if idempotency_key:
            if len(idempotency_key) > 255:
                raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key is longer than 255 characters")
            # callback_url only when given: a request made before the field existed keeps the hash it was bound to
            unset = {"callback_url"} if request.callback_url is None else None
            body_hash = hashlib.sha256(request.model_dump_json(exclude=unset).encode()).hexdigest()
            bound_id, bound_hash = self._repo.claim_idempotency_key(owner, idempotency_key, body_hash, media_id)
            if bound_hash != body_hash:
                raise ApiError(
                    409, "idempotency_conflict", "this Idempotency-Key was already used with a different request body"
                )
            if bound_id != media_id:
                existing = self._repo.get(bound_id)
                if existing is not None:
                    if not self._is_multipart(request.size) and self._store.exists(existing.source.key):
                        raise self._already_uploaded(existing)  # the bytes arrived; the pipeline has them next
                    return self._grant(existing, request)
                media_id = bound_id  # the first request claimed the key but did not get as far as the item
        self._admit(owner, media_id, request.size)
        key = upload_key(media_id)
        source: dict[str, Any] = {
            "bucket": self._presigner.bucket,
            "key": key,
            "etag": "",
            "size": request.size,
            "filename": request.filename,
            "content_type": request.content_type,
        }
        if request.sha256:
            source["declared_sha256"] = request.sha256
        if self._is_multipart(request.size):
            source["upload_id"] = self._store.start_multipart(key, request.content_type)
        try:
            item = self._repo.create_pending(
                media_id, owner, source, int(time.time()) + PENDING_TTL_SECONDS, request.callback_url
            )
        except AlreadyExists:
            # A request with the same Idempotency-Key created it a moment before this one: the same media for both.
            if "upload_id" in source:
                self._store.abort_multipart(key, source["upload_id"])
            existing = self._repo.get(media_id)
            if existing is None:
                raise
            return self._grant(existing, request)
        return self._grant(item, request)

    def _admit(self, owner: str, media_id: str, size: int) -> None:
        """Count the new upload against the owner's limits, or answer 429 with when to ask again."""
        try:
            self._quotas.admit(owner, media_id, size)
        except OverQuota as error:
            raise ApiError(
                429, "over_quota", str(error), headers={"Retry-After": str(error.retry_after)}, limit=error.limit
            ) from error

    def _is_multipart(self, size: int) -> bool:
        return size > self._settings.multipart_threshold_bytes

    def _grant(self, item: MediaItem, request: UploadRequest) -> dict[str, Any]:
        if item.status != Status.PENDING_UPLOAD:
            raise self._already_uploaded(item)
        expires = self._settings.upload_url_expires_seconds
        if self._is_multipart(request.size):
            upload = self._multipart_grant(item, expires)
        else:
            checksum = _sha256_base64(request.sha256) if request.sha256 else None
            url, headers = self._presigner.put_url(
                item.source.key, request.content_type, request.size, checksum, expires
            )
            upload = {"method": "PUT", "url": url, "headers": headers}
        return {
            "media_id": item.media_id,
            "status": item.status.value,
            "upload": upload,
            "expires_in": expires,
            "status_url": status_path(item.media_id),
        }

    def _multipart_grant(self, item: MediaItem, expires: int) -> dict[str, Any]:
        """Part URLs for every part (a resumed upload learns which parts S3 already holds: ``uploaded``)."""
        key, upload_id = item.source.key, item.source.upload_id
        held: dict[int, UploadedPart] | None = None
        if upload_id is not None:
            with contextlib.suppress(NoSuchUpload):  # expired or aborted: a new one is started below
                held = self._store.uploaded_parts(key, upload_id)
        if upload_id is None or held is None:
            if self._store.exists(key):  # completed a moment ago; the pipeline has not picked it up yet
                raise self._already_uploaded(item)
            upload_id = self._store.start_multipart(key, item.source.content_type or "application/octet-stream")
            self._repo.set_upload_id(item.media_id, upload_id)
            held = {}
        parts = []
        for number, size in plan_parts(item.source.size, self._settings.multipart_part_bytes):
            url, headers = self._presigner.part_url(key, upload_id, number, size, expires)
            part = held.get(number)
            uploaded = part is not None and part.size == size
            parts.append({"part_number": number, "size": size, "url": url, "headers": headers, "uploaded": uploaded})
        return {
            "method": "MULTIPART",
            "upload_id": upload_id,
            "part_size": parts[0]["size"],  # every part but the last is this long
            "parts": parts,
            "complete_url": f"/v1/uploads/{item.media_id}/complete",
        }

    def complete_upload(self, owner: str, media_id: str) -> dict[str, Any]:
        """Assemble a multipart upload once every part is in S3 (safe to call again); the pipeline starts from
        the object S3 creates."""
        item = self._owned(owner, media_id)
        done = {"media_id": media_id, "status": item.status.value, "status_url": status_path(media_id)}
        if item.status != Status.PENDING_UPLOAD:
            return done
        key, upload_id = item.source.key, item.source.upload_id
        if upload_id is None:
            raise ApiError(
                409, "not_multipart", f"media {media_id} is uploaded with one PUT; there is nothing to complete"
            )
        try:
            held = self._store.uploaded_parts(key, upload_id)
            plan = plan_parts(item.source.size, self._settings.multipart_part_bytes)
            missing = [number for number, size in plan if number not in held or held[number].size != size]
            if missing:
                raise ApiError(
                    409,
                    "upload_incomplete",
                    f"parts {missing} of {len(plan)} are missing or of the wrong length; send them and complete again",
                )
            self._store.complete_multipart(key, upload_id, [held[number] for number, _ in plan])
        except NoSuchUpload:
            if self._store.exists(key):
                return done
            raise ApiError(
                409, "upload_expired", "the multipart upload expired or was aborted; POST /v1/uploads again"
            ) from None
        return done

    @staticmethod
    def _already_uploaded(item: MediaItem) -> ApiError:
        return ApiError(
            409,
            "already_uploaded",
            f"media {item.media_id} was already uploaded and is {item.status.value}; see {status_path(item.media_id)}",
            media_id=item.media_id,
        )

    # --- reading ---------------------------------------------------------------------------------------------
    def _owned(self, owner: str, media_id: str) -> MediaItem:
        """The owner's media ``media_id``; another owner's answers exactly as an unknown id does."""
        item = self._repo.get(media_id) if MEDIA_ID_PATTERN.match(media_id) else None
        if item is None or item.owner != owner:
            raise ApiError(404, "not_found", f"no media {media_id}")
        return item

    def get_media(self, owner: str, media_id: str) -> dict[str, Any]:
        return self.view(self._owned(owner, media_id))

    def find_by_key(self, owner: str, key: str) -> dict[str, Any]:
        # S3 keys are at most 1,024 bytes: a longer one names no object (and would be too long for the index).
        item = self._repo.find_by_key(key, owner) if len(key.encode()) <= MAX_KEY_BYTES else None
        if item is None:
            raise ApiError(404, "not_found", f"no media was created from the object {key!r}")
        return self.view(item)

    def find(self, owner: str, query: MediaQuery) -> dict[str, Any]:
        """``GET /v1/media``: one of the owner's media by key or sha256, or a page of them by status."""
        if query.key is not None:
            return self.find_by_key(owner, query.key)
        if query.sha256 is not None:
            return self.find_by_sha256(owner, query.sha256)
        assert query.status is not None
        return self.list_by_status(owner, query.status, query.next_token, query.limit)

    def find_by_sha256(self, owner: str, sha256: str) -> dict[str, Any]:
        """The owner's media with these exact bytes (the first one uploaded), so clients can skip re-uploads."""
        media_id = self._repo.media_with_sha256(owner, sha256.lower()) if _is_sha256(sha256) else None
        item = self._repo.get(media_id) if media_id else None
        if item is None or item.owner != owner:
            raise ApiError(404, "not_found", f"no media has the sha256 {sha256}")
        return self.view(item)

    def list_by_status(
        self, owner: str, status: Status, next_token: str | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        page_size = min(max(limit or 50, 1), MAX_PAGE)
        start = _start_key(next_token, status, owner) if next_token else None
        items, last = self._repo.list_by_status(status, page_size, start, owner)
        token = base64.urlsafe_b64encode(json.dumps(last).encode()).decode() if last else None
        return {"items": [self.view(item) for item in items], "next_token": token}

    def view(self, item: MediaItem) -> dict[str, Any]:
        """The media as the API shows it; variant URLs are presigned GETs (a duplicate shows its original's variants
        and placeholder)."""
        shown = item
        if item.status == Status.DUPLICATE and item.duplicate_of:
            original = self._repo.get(item.duplicate_of)
            shown = original if original else item.model_copy(update={"variants": {}, "placeholder": None})
        expires = self._settings.download_url_expires_seconds
        document = media_document(
            item, shown.variants, shown.placeholder, lambda key: self._presigner.get_url(key, expires)
        )
        if item.webhook is not None:  # the API's only: an event does not carry the delivery of an earlier one
            document["webhook"] = without_none(item.webhook.model_dump())
        return document

    # --- albums (albums.py) -----------------------------------------------------------------------------------
    def albums(self, owner: str) -> dict[str, Any]:
        return {"items": [album_summary(album) for album in albums(self._repo.album_photos(owner))]}

    def album(
        self, owner: str, album_id: str, limit: int | None = None, next_token: str | None = None
    ) -> dict[str, Any]:
        """One album and a page of its media (in the order taken), as ``GET /v1/media/{id}`` shows each."""
        found = None
        if ALBUM_ID.fullmatch(album_id):  # not an id the API gives out: not found, without a read
            found = next((a for a in albums(self._repo.album_photos(owner)) if a.album_id == album_id), None)
        if found is None:
            raise ApiError(404, "not_found", f"no album {album_id}")
        ids = [photo.media_id for photo in found.photos]
        start = _album_start(next_token, album_id, ids) if next_token else 0
        page = ids[start : start + min(max(limit or 50, 1), MAX_PAGE)]
        media = self._repo.get_many(page)
        end = start + len(page)
        token = _album_token(album_id, ids[end - 1]) if end < len(ids) else None
        return {
            "album": album_summary(found),
            "items": [self.view(media[media_id]) for media_id in page if media_id in media],
            "next_token": token,
        }

    # --- actions ---------------------------------------------------------------------------------------------
    def retry(self, owner: str, media_id: str) -> dict[str, Any]:
        item = self._owned(owner, media_id)
        if item.status != Status.FAILED:
            raise ApiError(409, "not_failed", f"media {media_id} is {item.status.value}; only FAILED media are retried")
        try:
            execution = self._starter.redrive(media_id, self._repo, self._slots)
        except InvalidTransition as error:
            raise ApiError(409, "not_failed", str(error)) from error
        except AtCapacity as error:
            raise ApiError(
                429,
                "at_capacity",
                f"the pipeline is processing as many photos as it may ({error}); retry media {media_id} later",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from error
        return {"media_id": media_id, "status": Status.PROCESSING.value, "execution": execution}


# The key a page of the by-status index continues from: exactly what DynamoDB handed out for that listing.
_START_KEY_FIELDS = frozenset({"pk", "sk", "gsi1pk", "gsi1sk"})


def _start_key(next_token: str, status: Status, owner: str) -> dict[str, str]:
    """The start key inside a ``next_token`` this API gave out for listing ``owner``'s media with ``status``;
    anything else (another owner's listing included) is a 400."""
    refused = ApiError(400, "invalid_next_token", "next_token is not one this API gave out")
    try:
        start = json.loads(base64.urlsafe_b64decode(next_token.encode()))
    except (ValueError, binascii.Error) as error:
        raise refused from error
    if (
        not isinstance(start, dict)
        or set(start) != _START_KEY_FIELDS
        or not all(isinstance(value, str) and value for value in start.values())
        or start["gsi1pk"] != f"STATUS#{status}"
        or not start["gsi1sk"].startswith(f"{owner}#")
        or not start["pk"].startswith("MEDIA#")
        or start["sk"] != "META"
        or max(len(value) for value in start.values()) > MAX_TOKEN_FIELD
    ):
        raise refused
    return start


def album_summary(album: Album) -> dict[str, Any]:
    center = album.center
    return without_none(
        {
            "album_id": album.album_id,
            "title": album.title,
            "kind": album.kind,
            "day": album.day.isoformat(),
            "start": album.start.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "end": album.end.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "count": len(album.photos),
            "cover": album.photos[0].media_id,
            "center": {"latitude": center[0], "longitude": center[1]} if center else None,
        }
    )


def _album_token(album_id: str, after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"album": album_id, "after": after}).encode()).decode()


def _album_start(next_token: str, album_id: str, ids: list[str]) -> int:
    """Where the page after a ``next_token`` this API gave out for this album starts; 400 for any other token, and
    for one whose media is no longer in the album (it changed: list it again)."""
    refused = ApiError(400, "invalid_next_token", "next_token is not one this API gave out for this album")
    try:
        start = json.loads(base64.urlsafe_b64decode(next_token.encode()))
    except (ValueError, binascii.Error) as error:
        raise refused from error
    if not isinstance(start, dict) or start.get("album") != album_id or start.get("after") not in ids:
        raise refused
    return ids.index(start["after"]) + 1


def parse_page_query(params: Mapping[str, str]) -> tuple[int | None, str | None]:
    """``limit`` and ``next_token`` of a paginated listing (nothing else), or the ApiError that says what is wrong."""
    if unknown := set(params) - {"limit", "next_token"}:
        raise ApiError(400, "unknown_query", f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    return _page(params)


def _page(params: Mapping[str, str]) -> tuple[int | None, str | None]:
    """``limit`` (1 to MAX_PAGE) and ``next_token``. A next_token that is not one this API gave out is refused where
    it is decoded; an empty one here, before it could be taken for no token at all."""
    limit = params.get("limit")
    if limit is not None and not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= MAX_PAGE):
        raise ApiError(400, "invalid_limit", f"limit must be an integer from 1 to {MAX_PAGE}")
    next_token = params.get("next_token")
    if next_token is not None and not next_token:
        raise ApiError(400, "invalid_next_token", "next_token is not one this API gave out")
    return (int(limit) if limit else None), next_token


def by_width(named: tuple[str, Variant]) -> int:
    return named[1].width


def media_document(
    item: MediaItem,
    variants: dict[str, Variant] | None = None,
    placeholder: Placeholder | None = None,
    url: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """A media as the API and its events show it: ``variants`` and ``placeholder`` are its own unless given (a
    duplicate's are its original's); with ``url``, each variant's URL and a srcset of them."""
    variants = item.variants if variants is None else variants
    placeholder = placeholder or item.placeholder
    urls = {name: url(v.key) for name, v in variants.items()} if url else {}
    body: dict[str, Any] = {
        "media_id": item.media_id,
        "owner": item.owner,
        "status": item.status.value,
        "reason": item.reason,
        "reason_detail": item.reason_detail,
        "error": item.error,
        "duplicate_of": item.duplicate_of,
        "similar_to": item.similar_to or None,
        "source": without_none(
            {
                "key": item.source.key,
                "filename": item.source.filename or item.source.key.rsplit("/", 1)[-1],
                "bytes": item.source.size,
                "content_type": item.content_type or item.source.content_type,
            }
        ),
        "sha256": item.sha256,
        "phash": item.phash,
        "width": item.width,
        "height": item.height,
        "taken_at": item.taken_at,
        "callback_url": item.callback_url,
        "placeholder": placeholder.model_dump() if placeholder else None,
        "srcset": ", ".join(f"{urls[name]} {v.width}w" for name, v in sorted(variants.items(), key=by_width))
        if urls
        else None,
        "variants": {
            name: without_none(
                {
                    "url": urls.get(name),
                    "key": v.key,
                    "width": v.width,
                    "height": v.height,
                    "bytes": v.bytes,
                    "format": v.format,
                }
            )
            for name, v in variants.items()
        },
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }
    return without_none(body)
