"""CloudWatch Logs in the embedded stack keep the newest events of each log stream, not every event ever written.

Upstream: ``moto.logs.models.LogStream`` (LocalStack's Logs provider stores events in moto) keeps every event in its
``events`` list for as long as LocalStack runs, and moto never applies a log group's retention; LocalStack's own
``put_log_events`` (``localstack.services.logs.provider.moto_put_log_events``, which replaces moto's) adds to it with
``self.events += events``. Each Lambda process writes one stream, a few events per invocation: ≈ 15 KB of
LocalStack's memory per photo, without bound.

The ``on_infra_start`` hook wraps ``LogStream.__init__`` so that a stream's ``events`` is a ``RecentEvents`` list,
which keeps its newest ``EVENTS_PER_STREAM`` events when events are added (older ones are dropped, as retention
would drop them on AWS; the stream's stored-bytes figure still counts everything written). ``UPSTREAM_SHA256`` pins
both upstream sources; a test fails when an upgrade changes them.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
from collections.abc import Iterable
from typing import Any, Self

from localstack.runtime import hooks
from moto.logs import models

LOG = logging.getLogger(__name__)
EVENTS_PER_STREAM = 3000  # ≈ 2 MB of a chatty function's log per process stream
# sha256 of moto's LogStream and LocalStack's moto_put_log_events sources in LocalStack 4.14.0.
UPSTREAM_SHA256 = "fa9326030cb061107cc242ab539e0394e6393037a5fa42ff59313d683338b1d4"


def upstream_sha256() -> str:
    from localstack.services.logs import provider  # noqa: PLC0415 - the provider module is loaded on demand

    digest = hashlib.sha256(inspect.getsource(models.LogStream).encode())
    digest.update(inspect.getsource(provider.moto_put_log_events).encode())
    return digest.hexdigest()


class RecentEvents(list[Any]):
    """A stream's events: ``+=`` (how events are added upstream) keeps the newest ``limit`` only."""

    limit = EVENTS_PER_STREAM

    def __iadd__(self, events: Iterable[Any]) -> Self:  # type: ignore[override,misc]
        self.extend(events)
        if len(self) > self.limit:
            del self[: len(self) - self.limit]
        return self


@functools.cache
def _wrap_log_stream() -> None:
    original = models.LogStream.__init__

    @functools.wraps(original)
    def __init__(self: models.LogStream, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        original(self, *args, **kwargs)
        self.events = RecentEvents(self.events)

    models.LogStream.__init__ = __init__  # type: ignore[method-assign]


@hooks.on_infra_start()
def bound_log_streams() -> None:
    _wrap_log_stream()
    LOG.debug("Log streams keep their newest %d events", EVENTS_PER_STREAM)
