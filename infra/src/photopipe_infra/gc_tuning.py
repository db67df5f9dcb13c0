"""LocalStack's Python collects its cyclic garbage less often, so that a growing library is not scanned again and
again, and says how long collecting took.

CPython's collector runs its youngest generation every 2,000 allocations (3.13's default) and the middle one every
ten of those; whatever is alive then is promoted, and once the promoted objects are a quarter as many as the old
ones, the whole heap is traversed. In LocalStack, hundreds of requests are in flight at once and each lives for
tens of milliseconds, so most of their objects were alive at a young collection, were promoted and made the next
full collection come sooner; and a full collection traverses every object the library is made of (moto's items,
the S3 objects' records, the Step Functions executions). Measured with a native ``py-spy`` profile during a soak,
collecting was 14 % of the time LocalStack held the GIL at 5,000 photos, and growing with them: the main reason
LocalStack's CPU per photo rose from 190 to 265 ms over 5,000 photos.

With the youngest generation collected every ``THRESHOLDS[0]`` allocations and the middle one every
``THRESHOLDS[1]`` of those, an object is promoted only when it lived through about two million allocations (about
a second here): a request's objects are gone by then. Cyclic garbage still goes at the next young collection.

``GET /_photopipe/gc`` answers the collections and the seconds spent in them by generation since LocalStack
started (``gc.callbacks``), which ``photopipe bench --soak`` samples per burst. The seconds are wall time from a
collection's start to its end: a finalizer it runs may let other threads have the GIL meanwhile, so they are an
upper bound of the collector's own CPU.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from typing import Any

from localstack.http import Request, Response
from localstack.runtime import hooks
from localstack.services.edge import ROUTER

LOG = logging.getLogger(__name__)
THRESHOLDS = (100_000, 20, 10)
PATH = "/_photopipe/gc"


class CollectionClock:
    """The collections CPython made and the time they took, by generation (a ``gc.callbacks`` entry)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._began: float | None = None
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        # A collection runs in one thread with the GIL held: "start" and "stop" of one collection come in pairs.
        if phase == "start":
            self._began = time.perf_counter()
            return
        began, self._began = self._began, None
        if began is None:
            return
        generation = int(info.get("generation", 2))
        with self._lock:
            self.collections[generation] += 1
            self.seconds[generation] += time.perf_counter() - began

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "collections": list(self.collections),
                "seconds": [round(s, 4) for s in self.seconds],
                "threshold": list(gc.get_threshold()),
            }


CLOCK = CollectionClock()


def _answer(_request: Request) -> Response:
    return Response(json.dumps(CLOCK.as_dict()), 200, mimetype="application/json")


@hooks.on_infra_start()
def collect_garbage_less_often() -> None:
    if CLOCK not in gc.callbacks:
        gc.callbacks.append(CLOCK)
        ROUTER.add(path=PATH, endpoint=_answer, methods=["GET"])
    gc.set_threshold(*THRESHOLDS)
    LOG.debug("Garbage collection thresholds %s", THRESHOLDS)
