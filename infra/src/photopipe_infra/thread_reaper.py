"""LocalStack's finished threads give their stacks back.

Upstream: ``localstack.utils.threads.TMP_THREADS``, the module-global list that ``start_thread`` and, directly, the
Step Functions interpreter (``ExecutionWorker.start``, ``Program.eval``, ``ExecutionState._eval_state_with_timeout``
… one thread per execution, per program and per Task state) append every thread they start to, so that
``cleanup_threads_and_processes`` can stop them at shutdown. Nothing ever removes a thread from it before then.

Since Python 3.13 a thread that has finished but is neither joined nor released keeps its stack (8 MiB of address
space) and guard page mapped: the finished ``Thread`` objects in that list held on to every stack. A photo runs
about eight such threads, and ``vm.max_map_count`` (65,530) allows ≈ 32,000 stacks: after a few thousand photos
LocalStack could start no thread at all (``RuntimeError: can't start new thread``) and every request failed.

The correction is one ``on_infra_start`` hook: a reaper thread (started here, not through ``start_thread``) takes
finished threads out of ``TMP_THREADS`` and joins them, which releases their stacks at once whoever else still
refers to the ``Thread`` object. Threads still running, and threads appended before ``start()`` (``Program.eval``
appends first), are left alone; what is in the list at shutdown is stopped as before. ``UPSTREAM_SHA256`` is the
hash of the upstream module this relies on; a test fails when a LocalStack upgrade changes it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import logging
import threading
import time

from localstack.runtime import hooks
from localstack.utils import threads

LOG = logging.getLogger(__name__)
REAP_SECONDS = 0.5
# sha256 of the source of localstack.utils.threads in localstack-core 4.14.0 (see upstream_sha256).
UPSTREAM_SHA256 = "eab1b8dd64278ad2a49ae006b48180cc6ad177fb15150a70d54211652494f095"


def upstream_sha256() -> str:
    """The sha256 of the upstream module whose list this prunes, to notice a LocalStack upgrade that changes it."""
    return hashlib.sha256(inspect.getsource(threads).encode()).hexdigest()


def reap_finished(registry: list[object]) -> int:
    """Remove the finished threads from ``registry`` and join them; return how many were reaped."""
    reaped = 0
    for thread in list(registry):
        if not isinstance(thread, threading.Thread) or thread.ident is None or thread.is_alive():
            continue  # not a thread, not started yet, or still running
        with contextlib.suppress(ValueError):  # another caller (shutdown) may have cleared the list meanwhile
            registry.remove(thread)
        thread.join()
        reaped += 1
    return reaped


def _reap_forever() -> None:
    while True:
        time.sleep(REAP_SECONDS)
        try:
            reap_finished(threads.TMP_THREADS)
        except Exception:  # the reaper must outlive any surprise; the next round tries again
            LOG.exception("Reaping finished LocalStack threads failed")


@functools.cache
def _start_reaper() -> threading.Thread:
    if upstream_sha256() != UPSTREAM_SHA256:
        LOG.warning("localstack.utils.threads differs from the version photopipe_infra.thread_reaper was written for")
    reaper = threading.Thread(target=_reap_forever, name="photopipe-thread-reaper", daemon=True)
    reaper.start()
    LOG.debug("Finished LocalStack threads are joined every %.1f s", REAP_SECONDS)
    return reaper


@hooks.on_infra_start()
def reap_finished_threads() -> None:
    _start_reaper()  # once per process
