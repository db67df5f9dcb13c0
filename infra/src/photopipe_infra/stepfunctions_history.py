"""A closed Step Functions execution keeps its event history on disk instead of in LocalStack's memory.

Upstream: ``localstack.services.stepfunctions.backend.execution.BaseExecutionWorkerCommunication.terminated``, called
once when an execution's program has ended (after its last history event), and ``EventManager``, which holds every
history event of an execution as Python objects for as long as LocalStack runs. A photo's run has some thirty
events carrying each state's input and output (≈ 24 KB as JSON, several times that as objects): most of LocalStack's
memory growth per photo, without bound, for a history that is rarely read again.

The ``on_infra_start`` hook wraps ``terminated``: once the original has recorded the final status (and published the
status-change event), the history is written to one file per execution and the execution's worker — with its whole
evaluation environment — is replaced by a ``ClosedWorker`` whose history reads the file back when
``GetExecutionHistory`` asks, and which answers "not here" to task-token and Map-run lookups (they only concern
running executions). ``describe-execution`` and ``list-executions`` read the execution's own fields, which stay in
memory. The files live beside the snapshot when the state is kept (``photopipe_infra.persistence``), else in
LocalStack's temporary folder, which the launcher empties when LocalStack starts or stops.

An EXPRESS execution's history is not kept at all: ``GetExecutionHistory`` refuses EXPRESS runs, as on AWS (their
events are in the state machine's log group).

A closed execution also lets go of its private copies of what it shares with others: ``StartExecution`` deep-copies
the state machine (definition, tags, configuration) into every execution, and each keeps its own
``{"included": true}`` input and output details. Once closed, an execution's copy of the state machine is swapped for
the one other closed executions of the same revision already hold (nothing changes a closed execution's state
machine; an update of the machine makes a new revision, so executions that ran the old one keep describing it).
``UPSTREAM_SHA256`` pins the upstream sources this relies on; a test fails when a LocalStack upgrade changes them.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localstack.aws.api.stepfunctions import StateMachineType
from localstack.runtime import hooks
from localstack.services.stepfunctions.asl.eval.event import event_manager
from localstack.services.stepfunctions.backend import execution, state_machine

from photopipe_infra.snapshot import kept_folder

LOG = logging.getLogger(__name__)
# sha256 of the sources of the three upstream modules (see upstream_sha256) in localstack-core 4.14.0.
UPSTREAM_SHA256 = "84c652f1ce05171be383a55cbeeee08870cdf9f818692f65602d8c92bb1d22c7"


def upstream_sha256() -> str:
    digest = hashlib.sha256()
    for module in (execution, event_manager, state_machine):
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()


def spill_dir() -> Path:
    return kept_folder("photopipe-sfn-history")


class SpilledHistory:
    """Stands in for a closed execution's ``EventManager``: its events are read back from their file when asked
    (found by name in the folder of histories, which may have moved with the saved state)."""

    def __init__(self, path: Path) -> None:
        self.name = path.name

    def get_event_history(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = pickle.loads((spill_dir() / self.name).read_bytes())  # noqa: S301 - ours
        return events


@dataclass
class KeptHistory:
    """A copy of the history of an execution that closed while the state was being saved (before it spilled)."""

    events: list[dict[str, Any]]

    def get_event_history(self) -> list[dict[str, Any]]:
        return self.events


def closed_stand_in(history: Any) -> ClosedWorker:
    """What a closed execution keeps instead of its worker, over a history (spilled, or kept)."""
    return ClosedWorker(_ClosedEnvironment(history))


class _NoCallbacks:
    """A closed execution waits for no task token and runs no Map: every lookup says 'not here'."""

    def heartbeat(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def notify(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def get(self, *args: Any, **kwargs: Any) -> None:
        return None

    def get_all(self) -> list[Any]:
        return []


@dataclass
class _ClosedEnvironment:
    event_manager: SpilledHistory | KeptHistory
    callback_pool_manager: _NoCallbacks = field(default_factory=_NoCallbacks)
    map_run_record_pool_manager: _NoCallbacks = field(default_factory=_NoCallbacks)


@dataclass
class ClosedWorker:
    """Stands in for a closed execution's ``ExecutionWorker``, whose evaluation environment (every state's context,
    the program's frames, the history) is no longer needed once the execution's own fields hold its outcome."""

    env: _ClosedEnvironment

    def stop(self, *args: Any, **kwargs: Any) -> None:
        """A closed execution has nothing left to stop."""


MAX_SHARED_REVISIONS = 256  # state machines × revisions of them; past this, executions keep their own copy
_shared_revisions: dict[tuple[Any, ...], Any] = {}
_INCLUDED = {"included": True}


def share_what_is_shared(closed: Any) -> None:
    """Swap a closed execution's private copies of its state machine and its data details for shared ones."""
    machine = closed.state_machine
    key = (
        type(machine).__name__,
        machine.arn,
        machine.revision_id,
        machine.definition,
        machine.role_arn,
        repr(machine.logging_config),
        repr(machine.tracing_config),
    )
    shared = _shared_revisions.get(key)
    if shared is None and len(_shared_revisions) < MAX_SHARED_REVISIONS:
        shared = _shared_revisions.setdefault(key, machine)
    if shared is not None:
        closed.state_machine = shared
    for name in ("input_details", "output_details"):
        if getattr(closed, name, None) == _INCLUDED:
            setattr(closed, name, _INCLUDED)


def spill(closed: Any) -> Path | None:
    """Move a closed execution's history to disk and let go of its evaluation environment; return the file (None
    when there is nothing to move)."""
    worker = closed.exec_worker
    if worker is None or isinstance(worker, ClosedWorker) or getattr(worker, "env", None) is None:
        return None
    if closed.sm_type == StateMachineType.EXPRESS:  # no API reads an EXPRESS run's history: nothing to keep
        closed.exec_worker = closed_stand_in(KeptHistory([]))
        return None
    path = spill_dir() / f"{hashlib.sha256(closed.exec_arn.encode()).hexdigest()}.pickle"
    path.write_bytes(pickle.dumps(worker.env.event_manager.get_event_history(), protocol=pickle.HIGHEST_PROTOCOL))
    closed.exec_worker = closed_stand_in(SpilledHistory(path))
    return path


@functools.cache
def _wrap_terminated() -> None:
    if upstream_sha256() != UPSTREAM_SHA256:
        LOG.warning("Step Functions' execution or event manager differs from what stepfunctions_history expects")
    original = execution.BaseExecutionWorkerCommunication.terminated

    def terminated(self: execution.BaseExecutionWorkerCommunication) -> None:
        original(self)
        try:
            spill(self.execution)
            share_what_is_shared(self.execution)
        except Exception:  # the history stays in memory: correct, only larger
            LOG.exception("Could not move the history of %s to disk", self.execution.exec_arn)

    execution.BaseExecutionWorkerCommunication.terminated = terminated  # type: ignore[method-assign]


@hooks.on_infra_start()
def spill_closed_execution_history() -> None:
    _wrap_terminated()
    LOG.debug("Closed Step Functions executions keep their history in %s", spill_dir())
