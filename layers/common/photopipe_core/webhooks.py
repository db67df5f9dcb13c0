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
import http.client
import ipaddress
import json
import logging
import re
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from photopipe_core.models import WebhookState, utc_now

LOG = logging.getLogger(__name__)
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
PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
CALLBACK_URL = re.compile(rf"https?://[A-Za-z0-9.-]+(:{PORT})?([/?][\x21-\x7e]*)?")


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


class Refused(Exception):
    """A callback URL the stack does not send to (what it resolves to is not a public address, or is the stack's
    own AWS endpoint)."""


def destination(url: str, allow_private: bool, own_endpoint: str | None = None) -> tuple[str, int, str]:
    """(host, port, address to connect to) of a callback URL, every address its host resolves to checked: never a
    link-local (cloud metadata), multicast, unspecified or reserved one, nor the stack's own AWS endpoint
    (``own_endpoint``, AWS_ENDPOINT_URL where it is set); a private or loopback one only with ``allow_private``
    (the embedded stack's own machine). The connection goes to the address checked, not to a second lookup."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise Refused(f"{host} does not resolve: {error}") from error
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    forbidden = _endpoint_addresses(own_endpoint)
    for address in addresses:
        if address.is_link_local or address.is_multicast or address.is_unspecified or address.is_reserved:
            raise Refused(f"{host} resolves to {address}, which is not a public address")
        if (address.is_private or address.is_loopback) and not allow_private:
            raise Refused(f"{host} resolves to {address}, a private address (WebhookPrivateNetworks is deny)")
        if (address, port) in forbidden:
            raise Refused(f"{host}:{port} is the stack's own AWS endpoint")
    return host, port, str(addresses[0])


def _endpoint_addresses(endpoint: str | None) -> set[tuple[Any, int]]:
    if not endpoint:
        return set()
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(parts.hostname or "", port, type=socket.SOCK_STREAM)
    except OSError:
        return set()
    return {(ipaddress.ip_address(str(info[4][0]).split("%")[0]), port) for info in found}


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address
        self._tls = ssl.create_default_context()

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    allow_private: bool = False,
    own_endpoint: str | None = None,
    timeout: float = DELIVERY_TIMEOUT_SECONDS,
) -> Answer:
    """POST ``body`` to ``url`` (checked by ``destination``); delivered on a 2xx answer. A redirect is an answer
    like any other non-2xx (the signed body goes nowhere the owner did not name); of an answer only its status
    line is kept (a receiver's body is not shown to the uploader)."""
    try:
        host, port, address = destination(url, allow_private, own_endpoint)
    except Refused as refused:
        return Answer(False, None, f"not sent: {refused}"[:ERROR_TEXT])
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kind = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    connection = kind(host, port, address, timeout)
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(1024)
        ok = 200 <= response.status < 300  # noqa: PLR2004
        return Answer(ok, response.status, None if ok else f"HTTP {response.status} {response.reason}"[:ERROR_TEXT])
    except (OSError, http.client.HTTPException) as error:
        return Answer(False, None, f"{type(error).__name__}: {error}"[:ERROR_TEXT])
    finally:
        connection.close()


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
        outcome = WebhookState(
            state=state,
            version=delivery.version,
            attempts=attempt,
            at=utc_now(),
            status_code=answer.status_code,
            error=answer.error,
        )
        try:
            self._record(delivery.media_id, outcome)
        except Exception:
            if not answer.delivered:
                raise  # tried again anyway: recorded then
            LOG.warning("Delivered, but its outcome could not be kept on the media", exc_info=True)
        if not answer.delivered:
            raise DeliveryFailed(delivery, answer, None if last else retry_delay(attempt, self.retry_seconds))
        return answer
