"""Webhooks: a media's final-status event delivered to the ``callback_url`` its upload named, signed.

The event is the one the stack's bus carries (``photopipe_core.events``), as EventBridge hands it to the webhook
queue; its bytes are the request body. ``Photopipe-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is the
HMAC-SHA256, keyed with the owner's webhook secret (its UTF-8 bytes), of ``<t>.<body>``. A receiver recomputes it,
compares in constant time and refuses a ``t`` older than a few minutes (a replayed delivery); the event's ``id`` and
``detail.version`` tell a repeated delivery from a new one (delivery is at least once).

A delivery that does not get a 2xx answer within ``DELIVERY_TIMEOUT_SECONDS`` (an error, a redirect, a timeout, a
refused connection) is tried again after ``retry_delay`` — exponential, capped — up to the queue's receive count;
then the event waits in the webhook dead-letter queue (``photopipe failed``). Each attempt's outcome is kept on the
media (``webhook``), which ``photopipe status`` and the API show.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from photopipe_core.models import WebhookState, utc_now

SIGNATURE_HEADER = "Photopipe-Signature"
EVENT_ID_HEADER = "Photopipe-Event-Id"
ATTEMPT_HEADER = "Photopipe-Delivery-Attempt"
SECRET_PREFIX = "whsec_"
DELIVERY_TIMEOUT_SECONDS = 10.0
MAX_RETRY_SECONDS = 900  # SQS's longest delay: a message is hidden for at most 12 hours, a wait this long is plenty
REPLAY_TOLERANCE_SECONDS = 300
MAX_CALLBACK_URL = 2048
ERROR_TEXT = 200  # how much of a failed answer is kept on the media
# The API document's CallbackUrl pattern, without its anchors.
CALLBACK_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?([/?][\x21-\x7e]*)?")


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def check_callback_url(url: str) -> str:
    """An http(s) URL of a host name or IPv4 address, with an optional port and path or query, in printable ASCII
    (no spaces, no credentials: the deliveries are signed instead), at most ``MAX_CALLBACK_URL`` characters — what
    the API document's ``CallbackUrl`` pattern says — or ValueError saying so."""
    if len(url) > MAX_CALLBACK_URL:
        raise ValueError(f"is longer than {MAX_CALLBACK_URL} characters")
    if not CALLBACK_URL.fullmatch(url):
        raise ValueError(
            "must be http:// or https://, a host name or IPv4 address, an optional :port, then an optional path or "
            "query, in printable ASCII without spaces or credentials (e.g. https://example.com/hooks/photopipe)"
        )
    return url


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance: int = REPLAY_TOLERANCE_SECONDS) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its timestamp is within ``tolerance`` of ``now``
    (what the README's receiver example does)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), fields.get("v1", ""))


def retry_delay(attempt: int, base_seconds: int) -> int:
    """Seconds before attempt ``attempt + 1`` after ``attempt`` failed: base, 2×base, 4×base …, capped."""
    return int(min(MAX_RETRY_SECONDS, base_seconds * 2 ** max(attempt - 1, 0)))


@dataclass(frozen=True)
class Answer:
    delivered: bool
    status_code: int | None  # None: no HTTP answer (refused, timed out)
    error: str | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer like any other non-2xx: the signed body is not sent anywhere the owner did not
    name."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = DELIVERY_TIMEOUT_SECONDS) -> Answer:
    """POST ``body`` to ``url``; delivered on a 2xx answer."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - checked URL
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return Answer(200 <= response.status < 300, response.status)
    except urllib.error.HTTPError as error:
        text = error.read(ERROR_TEXT).decode(errors="replace")
        return Answer(False, error.code, f"HTTP {error.code}: {text}".strip())
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return Answer(False, None, str(reason)[:ERROR_TEXT])


@dataclass(frozen=True)
class Delivery:
    """One event to send: its body as received from the bus, and what the attempt needs to know of it."""

    body: bytes
    event_id: str
    media_id: str
    owner: str
    version: int
    callback_url: str

    @classmethod
    def of_event(cls, body: str) -> Delivery:
        event = json.loads(body)
        detail = event["detail"]
        return cls(
            body=body.encode(),
            event_id=str(event["id"]),
            media_id=str(detail["media_id"]),
            owner=str(detail["owner"]),
            version=int(detail.get("version", 0)),
            callback_url=check_callback_url(str(detail["callback_url"])),
        )

    def headers(self, secret: str, attempt: int, now: float | None = None) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": "photopipe-webhook/1",
            SIGNATURE_HEADER: signature_header(secret, int(now if now is not None else time.time()), self.body),
            EVENT_ID_HEADER: self.event_id,
            ATTEMPT_HEADER: str(attempt),
        }


class DeliveryFailed(Exception):
    """The attempt got no 2xx answer; ``retry_in`` seconds until the next (the message stays in the queue)."""

    def __init__(self, delivery: Delivery, answer: Answer, retry_in: int | None) -> None:
        then = f"tried again in {retry_in} s" if retry_in is not None else "no attempts left: kept in the DLQ"
        to = f"{delivery.event_id} of {delivery.media_id} to {delivery.callback_url}"
        super().__init__(f"{to}: {answer.error}; {then}")
        self.retry_in = retry_in


class Webhooks:
    """Delivers an event and keeps the outcome on the media. ``secret_of`` gives an owner's secret (cached),
    ``record`` keeps a ``WebhookState`` on the media, ``send`` POSTs (``post``)."""

    def __init__(
        self,
        secret_of: Callable[[str], str],
        record: Callable[[str, WebhookState], bool],
        max_attempts: int,
        retry_seconds: int,
        send: Callable[[str, bytes, dict[str, str]], Answer] = post,
    ) -> None:
        self._secret_of = secret_of
        self._record = record
        self._send = send
        self.max_attempts = max_attempts
        self.retry_seconds = retry_seconds

    def deliver(self, delivery: Delivery, attempt: int) -> Answer:
        """Attempt ``attempt`` (1 for the first); DeliveryFailed when it got no 2xx answer."""
        headers = delivery.headers(self._secret_of(delivery.owner), attempt)
        answer = self._send(delivery.callback_url, delivery.body, headers)
        last = attempt >= self.max_attempts
        state = "delivered" if answer.delivered else "failed" if last else "retrying"
        self._record(
            delivery.media_id,
            WebhookState(
                state=state,
                version=delivery.version,
                attempts=attempt,
                at=utc_now(),
                status_code=answer.status_code,
                error=answer.error,
            ),
        )
        if not answer.delivered:
            raise DeliveryFailed(delivery, answer, None if last else retry_delay(attempt, self.retry_seconds))
        return answer
