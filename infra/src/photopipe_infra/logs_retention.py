"""CloudWatch Logs in the embedded stack keep the newest events of each log stream and of each log group, not every
event ever written.

Upstream: ``moto.logs.models.LogStream`` (LocalStack's Logs provider stores events in moto) keeps every event in its
``events`` list for as long as LocalStack runs, and moto never applies a log group's retention; LocalStack's own
``put_log_events`` (``localstack.services.logs.provider.moto_put_log_events``, which replaces moto's) adds to it with
``self.events += events``. Each Lambda process writes one stream, a few events per invocation: ≈ 15 KB of
LocalStack's memory per photo, without bound.

The ``on_infra_start`` hook wraps ``LogStream.__init__`` so that a stream's ``events`` is a ``RecentEvents`` list,
which keeps its newest ``EVENTS_PER_STREAM`` events when events are added (older ones are dropped, as retention
would drop them on AWS; the stream's stored-bytes figure still counts everything written). A bound per stream does
not bound a group: every Lambda execution environment writes a stream of its own, and environments come and go
(a 1,000-photo burst through the API left 35 streams in the API function's group). So when a group holds more than
``EVENTS_PER_GROUP`` events, its streams written to longest ago are deleted, oldest first, as retention would
expire them; the stream being written is kept. ``UPSTREAM_SHA256`` pins both upstream sources; a test fails when an
upgrade changes them.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import threading
from collections.abc import Iterable
from typing import Any, Self

from localstack.runtime import hooks
from moto.logs import models

LOG = logging.getLogger(__name__)
EVENTS_PER_STREAM = 3000  # ≈ 1 MB of a chatty function's log per process stream
EVENTS_PER_GROUP = 5000  # ≈ 1.5 MB per function (≈ 300 bytes an event, as LocalStack holds them)
_GROUPS_LOCK = threading.Lock()
# sha256 of moto's LogStream and LocalStack's moto_put_log_events sources in LocalStack 4.14.0.
UPSTREAM_SHA256 = "fa9326030cb061107cc242ab539e0394e6393037a5fa42ff59313d683338b1d4"


def upstream_sha256() -> str:
    from localstack.services.logs import provider  # noqa: PLC0415 - the provider module is loaded on demand

    digest = hashlib.sha256(inspect.getsource(models.LogStream).encode())
    digest.update(inspect.getsource(provider.moto_put_log_events).encode())
    return digest.hexdigest()


class RecentEvents(list[Any]):
    """A stream's events: ``+=`` (how events are added upstream) keeps the newest ``limit`` only, and keeps the
    stream's group within its budget."""

    limit = EVENTS_PER_STREAM

    def __init__(self, events: Iterable[Any], stream: Any = None) -> None:
        super().__init__(events)
        self.stream = stream

    def __iadd__(self, events: Iterable[Any]) -> Self:  # type: ignore[override,misc]
        self.extend(events)
        if len(self) > self.limit:
            del self[: len(self) - self.limit]
        if self.stream is not None:
            keep_group_within_budget(self.stream.log_group, self.stream)
        return self


def keep_group_within_budget(group: Any, writing: Any, budget: int = EVENTS_PER_GROUP) -> list[str]:
    """Delete the group's streams written to longest ago (never ``writing``) while it holds more than ``budget``
    events; the names of those deleted."""
    with _GROUPS_LOCK:
        streams = list(group.streams.items())
        held = sum(len(stream.events) for _, stream in streams)
        if held <= budget:
            return []
        dropped = []
        by_age = sorted(streams, key=lambda item: item[1].last_ingestion_time or item[1].creation_time)
        for name, stream in by_age:
            if held <= budget:
                break
            if stream is writing:
                continue
            group.streams.pop(name, None)
            held -= len(stream.events)
            dropped.append(name)
        return dropped


@functools.cache
def _wrap_log_stream() -> None:
    original = models.LogStream.__init__

    @functools.wraps(original)
    def __init__(self: models.LogStream, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        original(self, *args, **kwargs)
        self.events = RecentEvents(self.events, stream=self)

    models.LogStream.__init__ = __init__  # type: ignore[method-assign]


@hooks.on_infra_start()
def bound_log_streams() -> None:
    _wrap_log_stream()
    LOG.debug("Log streams keep their newest %d events, log groups %d", EVENTS_PER_STREAM, EVENTS_PER_GROUP)
