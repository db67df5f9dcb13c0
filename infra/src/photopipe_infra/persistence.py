"""The embedded LocalStack keeps its state across restarts: a snapshot of every service the stack uses.

LocalStack's open-source runtime keeps all state in memory (saving and loading it are not part of it). This plugin
uses its open building blocks — the services' state containers (``AccountRegionBundle`` stores and moto
``BackendDict`` backends), its dill-based pickler, the services' ``on_after_state_load`` hooks — to save them and
load them again:

- **Bytes** of S3 objects are already files (``photopipe_infra.s3_disk_store``), named by bucket, key and version; with
  persistence they live under the snapshot folder, so every acknowledged PUT is on disk. So do closed Step Functions
  histories (``photopipe_infra.stepfunctions_history``).
- **State** of the services in ``CONTAINERS`` is pickled, service by service, into files written atomically
  (``photopipe_infra.snapshot``): on shutdown, and every few seconds after a request changed something (only the
  services that changed are pickled again). Their headers name the format and the LocalStack version; the launcher
  refuses a snapshot of another version before starting anything.
- **Journals**: what grows with the library is not pickled again every few seconds. Every change S3 acknowledges
  to an object and every item DynamoDB writes is appended to the service's journal before the answer leaves, and
  the service is pickled into its own file only when its journal has grown as large as that file (``Journal``);
  every execution Step Functions starts is journaled too, so a run the table knows of is never missing after a
  kill, and every message sent to or deleted from a standard SQS queue (folded into the next snapshot). A closed
  execution, which never changes again, is pickled once into an append-only archive and kept out of the snapshots
  (``ClosedExecutions``). Saving therefore costs the same per photo however large the library is.
- **Loading** happens in ``on_infra_start``, before the gateway serves a request: the containers' contents are
  replaced in place (other modules hold references to them), then the journals are replayed over them. In
  ``on_infra_ready`` every service is started and taken through LocalStack's load hooks (Lambda starts its
  functions and event source mappings again, CloudWatch its alarms; EventBridge's rules and schedules are rebuilt
  here), and the Step Functions executions that were running, or started after the last snapshot, are run again
  from their start under their own names (the pipeline's steps are safe to repeat). The launcher
  waits for that: LocalStack's init "READY" stage completes after it.
- **Settling**: CloudFormation and Lambda move on by themselves after the request that changed them (a deploy goes
  on after ExecuteChangeSet answered); they are pickled again at every save until they have settled (``SETTLING``).
- A snapshot that cannot be loaded stops LocalStack (exit code 3) with the reason in its log: an empty stack saved
  over it would lose the library.

``PHOTOPIPE_SNAPSHOT_DIR`` (set by the launcher; unset means persistence is off) is the folder.
"""

from __future__ import annotations

import base64
import contextlib
import copyreg
import functools
import hashlib
import heapq
import importlib
import inspect
import io
import json
import logging
import os
import pickle
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from localstack import version as localstack_version
from localstack.aws import handlers
from localstack.aws.api.stepfunctions import ExecutionStatus
from localstack.aws.connect import connect_to
from localstack.runtime import hooks
from localstack.services.events.event_bus import EventBusService
from localstack.services.events.models import events_stores
from localstack.services.events.rule import RuleService
from localstack.services.plugins import SERVICE_PLUGINS
from localstack.services.s3.models import KeyStore, S3DeleteMarker, S3Object, VersionedKeyStore, s3_stores
from localstack.services.sqs.models import StandardQueue, sqs_stores
from localstack.services.stepfunctions.backend.execution import Execution
from localstack.services.stepfunctions.backend.store import SFNStore, sfn_stores
from localstack.services.stores import LOCAL_ATTR_PREFIX
from localstack.state import pickle as state_pickle
from localstack.utils.aws.arns import parse_arn
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

from photopipe_infra.dynamodb_provider import BACKEND_LOCK
from photopipe_infra.snapshot import (
    JOURNALED,
    STATE_FILE,
    STOPPED_CLEANLY_FILE,
    SnapshotError,
    journal_file,
    read_payload,
    snapshot_dir,
    state_file,
    write_snapshot,
)
from photopipe_infra.stepfunctions_history import ClosedWorker, KeptHistory, closed_stand_in, share_what_is_shared

LOG = logging.getLogger(__name__)

SAVE_EVERY_SECONDS = 5.0
# Saving a large library takes longer: the pause after a save is at least this many times what it took, so saving
# uses a tenth of a core at most (the journals and the reconciler cover what a longer pause leaves unsaved).
SAVE_PAUSE_FACTOR = 10.0
LOAD_FAILED_EXIT_CODE = 3

# Service → the state containers (module, attribute) that hold all of its state. A change here, or in what the
# pickles refer to (the reducers, ClosedWorker), makes older snapshots unreadable: raise snapshot.FORMAT with it.
CONTAINERS: dict[str, list[tuple[str, str]]] = {
    "s3": [("localstack.services.s3.models", "s3_stores")],
    "dynamodb": [("moto.dynamodb.models", "dynamodb_backends")],
    "sqs": [("localstack.services.sqs.models", "sqs_stores")],
    "stepfunctions": [("localstack.services.stepfunctions.backend.store", "sfn_stores")],
    "lambda": [("localstack.services.lambda_.invocation.models", "lambda_stores")],
    "cloudformation": [("localstack.services.cloudformation.stores", "cloudformation_stores")],
    "apigateway": [
        ("localstack.services.apigateway.models", "apigateway_stores"),
        ("moto.apigateway.models", "apigateway_backends"),
    ],
    "events": [("localstack.services.events.models", "events_stores")],
    "iam": [("moto.iam.models", "iam_backends")],
    "logs": [("localstack.services.logs.models", "logs_stores"), ("moto.logs.models", "logs_backends")],
    "cloudwatch": [("localstack.services.cloudwatch.models", "cloudwatch_stores")],
}


def _stores(service: str) -> Iterator[Any]:
    """Every account's and region's store of a service (in its first container)."""
    module, name = CONTAINERS[service][0]
    for _account, _region, store in getattr(importlib.import_module(module), name).iter_stores():
        yield store


def _deploying() -> bool:
    """A stack is being created, updated or deleted (CloudFormation moves it on in a thread of its own; a change set
    waiting for review does not move)."""
    return any(
        str(stack.status).endswith("_IN_PROGRESS") and str(stack.status) != "REVIEW_IN_PROGRESS"
        for store in _stores("cloudformation")
        for stack in (*store.stacks.values(), *store.stacks_v2.values())
    )


def _functions_settling() -> bool:
    """A function version is still being made or updated, or an event source mapping is changing state."""
    for store in _stores("lambda"):
        for function in store.functions.values():
            for version in function.versions.values():
                last_update = version.config.last_update
                if str(version.config.state.state) == "Pending" or (
                    last_update is not None and str(last_update.status) == "InProgress"
                ):
                    return True
        if any(str(m.get("State", "")).endswith("ing") for m in store.event_source_mappings.values()):
            return True
    return False


# Services whose state moves on by itself after the request that changed it (a deploy goes on for a minute after
# ExecuteChangeSet answered): saved again at every save until this says they have settled, so a kill after the
# last request finds them as they ended, not half-way — for SETTLE_WITHIN after their last request at most (a
# stack loaded half-deployed after a kill never moves on: its deploy's thread is gone).
SETTLING: dict[str, Callable[[], bool]] = {"cloudformation": _deploying, "lambda": _functions_settling}
SETTLE_WITHIN = 15 * 60.0
# What other shutdown hooks write after the last save (batched metrics and log lines): a stop is clean without it.
NOT_NEEDED_AFTER_A_STOP = frozenset({"cloudwatch", "logs"})
# Operations that change nothing a snapshot holds (reads; receiving a message only hides it for a while).
READ_PREFIXES = ("Get", "List", "Describe", "Head", "Receive", "Query", "Scan", "BatchGet", "Lookup", "Filter")


# What SETTLING, the SQS journal and the bucket reducer read of LocalStack's stores (``upstream_sha256``): queues'
# message containers, the receipt-handle format, stacks' statuses, function versions' states, a bucket's key store.
def upstream_sha256() -> str:
    from localstack.services.cloudformation.engine.entities import Stack  # noqa: PLC0415 - read for the pin only
    from localstack.services.cloudformation.stores import CloudFormationStore  # noqa: PLC0415
    from localstack.services.cloudformation.v2.entities import Stack as StackV2  # noqa: PLC0415
    from localstack.services.lambda_.invocation.lambda_models import VersionFunctionConfiguration  # noqa: PLC0415
    from localstack.services.sqs.models import SqsMessage, SqsQueue  # noqa: PLC0415
    from localstack.services.sqs.utils import encode_receipt_handle  # noqa: PLC0415

    digest = hashlib.sha256()
    for code in (
        SqsQueue,
        StandardQueue,
        SqsMessage,
        encode_receipt_handle,
        CloudFormationStore,
        Stack,
        StackV2,
        VersionFunctionConfiguration,
        KeyStore,
        VersionedKeyStore,
    ):
        digest.update(inspect.getsource(code).encode())
    return digest.hexdigest()


UPSTREAM_SHA256 = "1e1712ad005c37e312a9990691c102d950867fa8b2a88363d64da0069083fd41"


# --- pickling ------------------------------------------------------------------------------------------------
# Locks come back new and unlocked (dill would restore an RLock's owner and count: it could never be taken again);
# a Condition comes back around its own lock, shared as before.
def _reduce_lock(_obj: Any) -> tuple[Any, ...]:
    return threading.Lock, ()


def _reduce_rlock(_obj: Any) -> tuple[Any, ...]:
    return threading.RLock, ()


def _reduce_condition(obj: Any) -> tuple[Any, ...]:
    return threading.Condition, (obj._lock,)  # noqa: SLF001


def _reduce_execution(obj: Any) -> tuple[Any, ...]:
    """A Step Functions execution met outside its store's own list (which keeps archived ones out): a closed one
    whose history is on disk (it never changes again) by reference to its copy in the archive, any other whole."""
    if _closed is not None and isinstance(obj.__dict__.get("exec_worker"), ClosedWorker):
        return _closed.reference(obj)
    return _reduce_execution_whole(obj)


def _reduce_execution_whole(obj: Any) -> tuple[Any, ...]:
    """A Step Functions execution without its worker (threads, the program being evaluated) and its CloudWatch
    Logs session (a client, a thread pool): one still running is saved as interrupted; a closed one keeps its
    spilled history."""
    state = dict(obj.__dict__)  # the live execution is left as it is: its own thread may still be closing it
    worker = state.get("exec_worker")
    if worker is not None and not isinstance(worker, ClosedWorker):
        closed = obj.exec_status not in (None, ExecutionStatus.RUNNING) and getattr(worker, "env", None) is not None
        # closed a moment ago, before it spilled: saved with a copy of its history; a running one without
        state["exec_worker"] = (
            closed_stand_in(KeptHistory(list(worker.env.event_manager.get_event_history()))) if closed else None
        )
    state["_cloud_watch_logging_session"] = None
    return _restore_object, (type(obj), state)


# DynamoDB items by their attributes' names: pickling an object the default way reads its ``__dict__``, and since
# Python 3.12 an object keeps its attributes inline until that is asked for, so every item pickled (journaled, or
# saved) kept a dict per attribute value afterwards: tens of MB per 1,000 photos of LocalStack's memory.
def _reduce_dynamo_type(obj: DynamoType) -> tuple[Any, ...]:
    return _dynamo_type, (obj.type, obj.value)


def _dynamo_type(kind: str, value: Any) -> DynamoType:
    made = DynamoType.__new__(DynamoType)
    made.type, made.value = kind, value
    return made


def _reduce_item(obj: Item) -> tuple[Any, ...]:
    return _item, (obj.hash_key, obj.range_key, dict(obj.attrs))


def _item(hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, DynamoType]) -> Item:
    made = Item.__new__(Item)
    made.hash_key, made.range_key, made.attrs = hash_key, range_key, LimitedSizeDict()
    dict.update(made.attrs, attrs)
    return made


@functools.cache
def _declared(cls: type) -> tuple[str, ...] | None:
    """The instance attributes ``cls`` declares (its annotations), if they are every attribute a new one has; None
    when they are not (its objects are then pickled the default way)."""
    names = tuple(name for klass in reversed(cls.__mro__) for name in getattr(klass, "__annotations__", {}))
    try:
        probe = cls("probe")
    except Exception:  # noqa: BLE001 - a class that cannot be probed is pickled the default way
        return None
    return names if set(vars(probe)) <= set(names) else None


def _reduce_declared(obj: Any) -> Any:
    """An S3 object by the attributes its class declares, read by name (see ``_reduce_dynamo_type``)."""
    names = _declared(type(obj))
    if names is None:
        return obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
    state = {name: getattr(obj, name) for name in names if hasattr(obj, name)}
    return _restore_object, (type(obj), state)


def _restore_object(cls: type, state: dict[str, Any]) -> Any:
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


def _reduce_key_store(obj: KeyStore | VersionedKeyStore) -> tuple[Any, ...]:
    """A bucket's objects by a copy of their dict, taken at once: uploads go on while S3 is pickled, and in a large
    bucket under load the pickler iterating the live dict met a new key on every try ("dictionary changed size"), so
    S3 was never folded and its journal only grew. ``dict(d)`` copies without letting another thread run; a
    versioned store's inner dicts are copied one by one (each a version list of one key, consistent on its own)."""
    store = obj._store  # noqa: SLF001 - a key store's only state (pinned in upstream_sha256)
    if isinstance(obj, VersionedKeyStore):
        copied: dict[Any, Any] = {key: dict(versions) for key, versions in list(store.items())}
        return _restore_key_store, (type(obj), copied)
    return _restore_key_store, (type(obj), dict(store))


def _restore_key_store(cls: type, store: dict[Any, Any]) -> Any:
    key_store = cls()
    key_store._store.update(store)  # noqa: SLF001 - see _reduce_key_store
    return key_store


def _subclasses(cls: type) -> list[type]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in _subclasses(direct))]


@functools.cache
def reducers() -> dict[type, Any]:
    table: dict[type, Any] = {
        type(threading.Lock()): _reduce_lock,
        type(threading.RLock()): _reduce_rlock,
        threading.Condition: _reduce_condition,
    }
    table.update(dict.fromkeys(_subclasses(Execution), _reduce_execution))
    table[SFNStore] = _reduce_sfn_store
    table.update({DynamoType: _reduce_dynamo_type, Item: _reduce_item})
    table.update({KeyStore: _reduce_key_store, VersionedKeyStore: _reduce_key_store})
    table.update({cls: _reduce_declared for cls in (S3Object, S3DeleteMarker) if _declared(cls) is not None})
    return table


@functools.cache
def register_reducers() -> None:
    """The same reducers for LocalStack's dill pickler (the fallback, and what loads every snapshot)."""
    for cls, reduce in reducers().items():
        state_pickle.register(cls)(lambda pickler, obj, reduce=reduce: pickler.save_reduce(*reduce(obj), obj=obj))


def _dumps(state: Any) -> bytes:
    """The standard library's C pickler, with the reducers: for moto's DynamoDB items it is some twenty times as
    fast as dill, which matters as the table is pickled under the lock every DynamoDB call takes. What it cannot
    pickle goes to LocalStack's dill pickler."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, **reducers()}
    try:
        pickler.dump(state)
    except (pickle.PicklingError, TypeError, AttributeError):
        register_reducers()
        return bytes(state_pickle.dumps(state))
    return buffer.getvalue()


def _loads(data: bytes) -> Any:
    """What ``_dumps`` wrote: the standard library's unpickler (dill's is written in Python), or dill's for what
    only dill could pickle."""
    try:
        return pickle.loads(data)  # noqa: S301 - our own files, checked against their header
    except Exception:  # noqa: BLE001 - whatever stops the fast path, dill's unpickler is the one to try
        register_reducers()
        return state_pickle.loads(data)


def containers() -> dict[str, list[Any]]:
    """Each service's live state containers."""
    return {
        service: [getattr(importlib.import_module(module), name) for module, name in pairs]
        for service, pairs in CONTAINERS.items()
    }


def _dumps_whole(state: Any, attempts: int = 20) -> bytes:
    """Pickle the state while the services keep running: a dict that changed size under the pickler is tried
    again (the next attempt sees it after the change)."""
    for attempt in range(attempts):
        try:
            return _dumps(state)
        except RuntimeError as error:  # "dictionary changed size …", "OrderedDict mutated during iteration"
            changed = "changed size" in str(error) or "mutated during iteration" in str(error)
            if not changed or attempt == attempts - 1:
                raise
            time.sleep(0.01)
    raise AssertionError("unreachable")


# --- closed Step Functions executions: pickled once each ------------------------------------------------------
CLOSED_FILE = "stepfunctions-closed"
EXECUTIONS = LOCAL_ATTR_PREFIX + "executions"  # where a store keeps its executions (a LocalAttribute)


def read_records(path: Path) -> Iterator[Any]:
    """The records of an append-only file (each a length and a pickle); a last record that a kill cut short is cut
    off the file, so that what is appended next follows the last whole record."""
    for _end, record in read_records_at(path):
        yield record


def read_records_at(path: Path) -> Iterator[tuple[int, Any]]:
    """``read_records``, each with the file's length up to its end."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    offset = 0
    while offset + 8 <= len(data):
        (size,) = struct.unpack_from(">Q", data, offset)
        if offset + 8 + size > len(data):
            break
        yield offset + 8 + size, _loads(data[offset + 8 : offset + 8 + size])
        offset += 8 + size
    if offset < len(data):
        LOG.warning("The last record of %s was cut short (LocalStack was killed writing it): cut off", path)
        os.truncate(path, offset)


def append_record(file: BinaryIO, record: Any) -> int:
    """Append one record; the bytes it took."""
    data = _dumps_whole(record)
    file.write(struct.pack(">Q", len(data)) + data)
    file.flush()  # in the kernel's hands: a killed LocalStack loses none of it
    return 8 + len(data)


class _ArchivePickler(pickle.Pickler):
    """Pickles one closed execution whole, its state machine by reference to the archive's copy."""

    def __init__(self, file: BinaryIO, machine: Any, key: str) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.dispatch_table = {
            **copyreg.dispatch_table,
            **reducers(),
            **dict.fromkeys(_subclasses(Execution), _reduce_execution_whole),
        }
        self._machine, self._key = machine, key

    def persistent_id(self, obj: Any) -> Any:
        return ("machine", self._key) if obj is self._machine else None


class _ArchiveUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, machines: dict[str, Any]) -> None:
        super().__init__(file)
        self._machines = machines

    def persistent_load(self, pid: Any) -> Any:
        return self._machines[pid[1]]


class ClosedExecutions:
    """Closed Step Functions executions whose history is on disk never change again; each is pickled once, into
    an append-only file, and kept out of the snapshots, which hold only the file's length when they were taken
    (a library's every run otherwise made every snapshot larger and slower: pickled again, or referred to, every
    few seconds). Their state machines, the same for thousands of runs, are in the file once each.

    Loading puts back every execution the file held at that length; what was appended after it is of runs that
    closed after the snapshot: they are run again (their start is journaled), so it is cut off. A snapshot of the
    format before refers to its closed executions by ARN (``reference``); the file is then rewritten with just
    those."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / CLOSED_FILE
        self._lock = threading.Lock()
        self._archived: set[str] = set()
        self._loading: dict[str, list[tuple[int, bytes]]] = {}  # ARN → its records (end in the file, pickle)
        self._restored: dict[str, Any] = {}
        self._machines: dict[str, Any] = {}
        self._machine_ends: dict[str, int] = {}
        self._keys: dict[int, tuple[str, Any]] = {}  # id of a machine → its key (and the machine, kept alive)
        self._file: BinaryIO | None = None
        self._unsynced = False
        self._end = 0
        self._mark: int | None = None  # the length of the file the loaded snapshot went with

    def read(self) -> None:
        """The file's records, before the snapshot that goes with them is loaded."""
        for end, record in read_records_at(self.path):
            for kind, key, data in record:
                if kind == "machine":
                    machine = _loads(data)
                    self._machines[key] = machine
                    self._machine_ends.setdefault(key, end)
                    self._keys[id(machine)] = (key, machine)
                else:
                    self._loading.setdefault(key, []).append((end, data))
            self._end = end

    def seen_mark(self, mark: int) -> None:
        """A loaded snapshot's store went with the file at this length."""
        self._mark = max(self._mark or 0, mark)

    def loaded(self) -> None:
        """Put back the closed executions the loaded snapshot went with, and cut off the rest."""
        if self._mark is None:
            self._keep_referenced()
        else:
            self._put_back(self._mark)
        self._loading.clear()
        self._restored.clear()

    def _put_back(self, mark: int) -> None:
        touched = set()
        for arn, records in self._loading.items():
            data = next((data for end, data in reversed(records) if end <= mark), None)
            if data is None:
                continue
            arn_parts = parse_arn(arn)
            executions = sfn_stores[arn_parts["account"]][arn_parts["region"]].executions
            if arn not in executions:  # a snapshot that holds it whole knows better
                executions[arn] = self._unpickle(data)
                touched.add(id(executions))
            self._archived.add(arn)
        for _account, _region, store in sfn_stores.iter_stores():
            if id(store.executions) in touched:  # in the order they started, as they were
                ordered = sorted(store.executions.items(), key=lambda pair: _started(pair[1]))
                store.executions.clear()
                store.executions.update(ordered)
        if self._end > mark:
            LOG.info("Cut off %d B of %s archived after the snapshot (run again)", self._end - mark, self.path)
            os.truncate(self.path, mark)
            self._end = mark
            cut = {key for key, end in self._machine_ends.items() if end > mark}
            for key in cut:
                del self._machines[key], self._machine_ends[key]
            self._keys = {ident: known for ident, known in self._keys.items() if known[0] not in cut}

    def _keep_referenced(self) -> None:
        """After a snapshot that referred to its closed executions by ARN: the file holds just those from now on
        (the others were archived before a kill that came before the snapshot: their runs run again)."""
        self._archived = set(self._restored)
        if not self._end:
            return
        keep = [[("machine", key, _dumps(machine))] for key, machine in self._machines.items()]
        keep += [[("execution", arn, self._loading[arn][-1][1])] for arn in self._restored]
        partial = self.path.with_name(self.path.name + ".tmp")
        with partial.open("wb") as file:
            self._end = sum(append_record(file, record) for record in keep)
            os.fsync(file.fileno())
        partial.replace(self.path)
        self._machine_ends = dict.fromkeys(self._machines, self._end)

    def execution(self, arn: str) -> Any:
        """A closed execution a snapshot of the format before referred to by ARN."""
        if arn not in self._restored:
            try:
                data = self._loading[arn][-1][1]
            except KeyError:
                raise SnapshotError(f"the closed execution {arn} is missing from {self.path}") from None
            self._restored[arn] = self._unpickle(data)
        return self._restored[arn]

    def _unpickle(self, data: bytes) -> Any:
        execution = _ArchiveUnpickler(io.BytesIO(data), self._machines).load()
        share_what_is_shared(execution)
        return execution

    def keep_out(self, executions: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """What a snapshot holds of a store's executions: those not archived, once the ones that closed since are;
        and the file's length that goes with it."""
        kept = type(executions)()
        with self._lock:
            for arn, execution in list(executions.items()):  # one C call: atomic under the GIL
                if arn in self._archived:
                    continue
                if isinstance(execution.__dict__.get("exec_worker"), ClosedWorker) and self._archive(execution):
                    continue
                kept[arn] = execution
            return kept, self._end

    def reference(self, execution: Any) -> tuple[Any, ...]:
        """A closed execution met elsewhere than in its store: by ARN."""
        with self._lock:
            if execution.exec_arn not in self._archived and not self._archive(execution):
                return _reduce_execution_whole(execution)
        return _archived_execution, (execution.exec_arn,)

    def _archive(self, execution: Any) -> bool:
        """Append a closed execution (False: it cannot be pickled, and is saved whole)."""
        arn, machine = execution.exec_arn, execution.state_machine
        try:
            key, records = self._records(execution, machine)
        except (pickle.PicklingError, TypeError, AttributeError):
            LOG.warning("The closed execution %s is saved whole, not in %s", arn, self.path, exc_info=True)
            return False
        if self._file is None:
            self._file = self.path.open("ab")
        self._end += append_record(self._file, records)
        self._unsynced = True
        self._archived.add(arn)
        # known only once written: a later execution refers to its machine by key
        if key not in self._machines:
            self._machines[key] = machine
            self._machine_ends[key] = self._end
        self._keys[id(machine)] = (key, machine)
        return True

    def _records(self, execution: Any, machine: Any) -> tuple[str, list[tuple[str, str, bytes]]]:
        """The machine's key, and the records to append: the machine unless the file has it, the execution."""
        records = []
        known = self._keys.get(id(machine))
        if known is None:
            data = _dumps(machine)
            key = hashlib.sha256(data).hexdigest()
            if key not in self._machines:
                records.append(("machine", key, data))
        else:
            key = known[0]
        buffer = io.BytesIO()
        _ArchivePickler(buffer, machine, key).dump(execution)
        records.append(("execution", execution.exec_arn, buffer.getvalue()))
        return key, records

    def sync(self) -> None:
        """On disk before a snapshot that refers to what was appended."""
        with self._lock:
            if self._file is not None and self._unsynced:
                os.fsync(self._file.fileno())
                self._unsynced = False


def _started(execution: Any) -> tuple[Any, ...]:
    started = getattr(execution, "start_date", None)
    return (0, started) if started is not None else (1,)


_closed: ClosedExecutions | None = None


def _reduce_sfn_store(obj: SFNStore) -> tuple[Any, ...]:
    """A Step Functions store without its archived executions, and the archive's length that goes with it."""
    state = dict(obj.__dict__)
    executions = state.get(EXECUTIONS)
    if _closed is None or executions is None:
        return _restore_sfn_store, (type(obj), state, None)
    state[EXECUTIONS], mark = _closed.keep_out(executions)
    return _restore_sfn_store, (type(obj), state, mark)


def _restore_sfn_store(cls: type, state: dict[str, Any], mark: int | None) -> Any:
    if mark is not None and _closed is not None:
        _closed.seen_mark(mark)
    return _restore_object(cls, state)


def _archived_execution(arn: str) -> Any:
    if _closed is None:
        raise SnapshotError("a snapshot refers to closed executions, but their archive is not open")
    return _closed.execution(arn)


# --- save and load -------------------------------------------------------------------------------------------
def pickle_service(service: str, before: Callable[[], None] | None = None) -> bytes:
    """One service's containers, pickled (services share no objects, so each can be saved on its own); ``before``
    runs just before, inside the same lock. DynamoDB's are pickled under the lock every moto call holds
    (``dynamodb_provider``): never half of a transaction."""
    register_reducers()
    lock = BACKEND_LOCK if service == "dynamodb" else contextlib.nullcontext()
    try:
        with lock:
            if before is not None:
                before()
            return _dumps_whole(containers()[service])
    except Exception as error:
        raise SnapshotError(f"cannot save {service}'s state: {error}") from error


def save(folder: Path, pickled: dict[str, bytes], service: str | None = None) -> dict[str, Any]:
    """Write the state file of the services in ``pickled`` (of the journaled ``service``, or of all the others)."""
    payload = pickled[service] if service is not None else pickle.dumps(pickled, protocol=pickle.HIGHEST_PROTOCOL)
    return write_snapshot(folder, payload, localstack_version.version, state_file(service))


def _replace(target: Any, loaded: Any) -> None:
    """Put the loaded container's contents into the live one (a dict: a bundle of stores, or moto backends)."""
    vars(target).update(vars(loaded))
    dict.clear(target)
    dict.update(target, loaded)


@dataclass
class Loaded:
    """What a start found: each service's pickle as saved (the journaled ones in ``own``, by the size of their own
    file; a journaled service in ``state.pickle`` is from a snapshot written before it had its own file)."""

    pickled: dict[str, bytes]
    own: dict[str, int]


def load(folder: Path) -> Loaded | None:
    """Load the snapshot in ``folder`` into the services' containers (None: there is no snapshot)."""
    began = time.monotonic()
    payload = read_payload(folder, localstack_version.version)
    if payload is None:
        return None
    register_reducers()
    pickled: dict[str, bytes] = pickle.loads(payload)  # noqa: S301 - our own file, checked against its header
    own: dict[str, int] = {}
    for service in JOURNALED:
        if (data := read_payload(folder, localstack_version.version, state_file(service))) is not None:
            pickled[service] = data  # newer than a copy in state.pickle: that is dropped after the own file is written
            own[service] = len(data)
    live = containers()
    if set(pickled) != set(live):
        raise SnapshotError(f"{folder / STATE_FILE} holds other services than this version saves")
    for service, targets in live.items():
        loaded = _loads(pickled[service])
        if len(loaded) != len(targets):
            raise SnapshotError(f"{folder / STATE_FILE} holds other {service} state than this version saves")
        for target, source in zip(targets, loaded, strict=True):
            _replace(target, source)
    LOG.info("Loaded the state in %.2f s", time.monotonic() - began)
    return Loaded({k: v for k, v in pickled.items() if k not in JOURNALED}, own)


@dataclass(frozen=True)
class Interrupted:
    """An execution that was running when the state was saved (its worker, the program it ran, is not saved)."""

    account_id: str
    region: str
    arn: str
    state_machine_arn: str
    name: str
    input: str


def interrupted_executions() -> list[Interrupted]:
    """The executions that were running when the state was saved (they have no worker). Each is run again from
    its start, under its own name, once the services run (every step of the pipeline is safe to repeat): a media's
    run ends as if the restart had not happened, with one execution of its name. Until then they stay as they
    were (a LocalStack stopped before that keeps them for its next start)."""
    return [
        Interrupted(
            account_id=account_id,
            region=region,
            arn=arn,
            state_machine_arn=execution.state_machine_arn,
            name=execution.name,
            input=json.dumps(execution.input_data or {}),
        )
        for account_id, region, store in sfn_stores.iter_stores()
        for arn, execution in list(store.executions.items())
        if execution.exec_status in (None, ExecutionStatus.RUNNING) and execution.exec_worker is None
    ]


def run_again(interrupted: list[Interrupted]) -> None:
    for run in interrupted:
        executions = sfn_stores[run.account_id][run.region].executions
        saved = executions.pop(run.arn, None)
        if saved is None and run not in _started_after_snapshot:
            continue
        client = connect_to(aws_access_key_id=run.account_id, region_name=run.region).stepfunctions
        try:
            client.start_execution(stateMachineArn=run.state_machine_arn, name=run.name, input=run.input)
        except Exception:
            LOG.exception("Could not run the interrupted execution %s again; it stays as it was", run.name)
            if saved is not None:
                executions.setdefault(run.arn, saved)
        else:
            LOG.info("Running the interrupted execution %s again", run.name)


def restart_services() -> None:
    """Start every service whose state was loaded and take it through LocalStack's load protocol (its providers
    were made after the load, so they saw the state at their start; the hooks rebuild what providers keep beside
    their stores: Lambda's running functions and event source mappings, CloudWatch's alarm schedules, API Gateway's
    routes are registered at the start). EventBridge, which has no such hook, is rebuilt here."""
    # EventBridge first: S3's notifications of objects written meanwhile go through its rules.
    for name in sorted(CONTAINERS, key=lambda name: name != "events"):
        hook = SERVICE_PLUGINS.require(name).lifecycle_hook
        hook.on_before_state_load()
        hook.on_after_state_load()
        if name == "events":
            restore_event_rules(hook)


def restore_event_rules(provider: Any) -> None:
    """EventBridge's provider keeps a service object per bus and rule, a sender per target and a job per schedule
    beside its store; they are made again from the loaded buses and rules."""
    for account_id, region, store in events_stores.iter_stores():
        for bus in store.event_buses.values():
            provider._event_bus_services_store[bus.arn] = EventBusService(bus)  # noqa: SLF001
            for rule in bus.rules.values():
                rule_service = RuleService(rule)
                provider._rule_services_store[rule.arn] = rule_service  # noqa: SLF001
                for target in rule.targets.values():
                    provider.create_target_sender(target, rule.arn, rule.name, region, account_id)
                if rule_service.schedule_cron:
                    job = provider._get_scheduled_rule_job_function(account_id, region, rule)  # noqa: SLF001
                    rule_service.create_schedule_job(job)


# --- when: a response handler that marks what changed and journals changes, a saver thread, the hooks ----------
# The S3 operations that change an object (the others change buckets, which the next snapshot holds, or multipart
# uploads in progress, whose parts are files and whose list the next snapshot holds).
OBJECT_CHANGES = frozenset(
    {
        "PutObject",
        "CopyObject",
        "CompleteMultipartUpload",
        "DeleteObject",
        "DeleteObjects",
        "PutObjectTagging",
        "DeleteObjectTagging",
        "PutObjectAcl",
        "PutObjectRetention",
        "PutObjectLegalHold",
        "RestoreObject",
    }
)
# The DynamoDB operations that change items (the others change tables: the next snapshot holds them).
ITEM_CHANGES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
# Changes saved before their answer leaves: API keys are made and revoked in API Gateway (beside their owner's
# item in the table, which is journaled); a kill a moment after `photopipe keys create` must not lose the key.
SAVED_BEFORE_ANSWER = frozenset(
    {
        ("apigateway", "CreateApiKey"),
        ("apigateway", "UpdateApiKey"),
        ("apigateway", "DeleteApiKey"),
        ("apigateway", "CreateUsagePlanKey"),
        ("apigateway", "DeleteUsagePlanKey"),
    }
)
# A journal is folded into its service's own state file once it is as large as that file, and not before this.
JOURNAL_MIN_BYTES = 32 * 1024 * 1024

Record = tuple[Any, ...]


def s3_changes(context: Any) -> list[Record]:
    """The state of each key an acknowledged object change touched: the object, or all its versions in a versioned
    bucket; None once it is gone."""
    request = context.service_request or {}
    bucket_name = request.get("Bucket")
    if request.get("Key"):
        keys = [request["Key"]]
    else:
        keys = [entry["Key"] for entry in (request.get("Delete") or {}).get("Objects", [])]
    bucket = s3_stores[context.account_id][context.region].buckets.get(bucket_name) if bucket_name else None
    if bucket is None:
        return []
    objects = bucket.objects._store  # noqa: SLF001
    return [(context.account_id, context.region, bucket_name, key, objects.get(key)) for key in keys]


def apply_s3_change(account_id: str, region: str, bucket_name: str, key: str, state: Any) -> None:
    bucket = s3_stores[account_id][region].buckets.get(bucket_name)
    if bucket is None:
        return
    store = bucket.objects._store  # noqa: SLF001
    if state is None:
        store.pop(key, None)
    else:
        store[key] = state


def _written_items(request: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(table, key or whole item) of each item a write request names."""
    if "TableName" in request:
        yield request["TableName"], request.get("Key") or request.get("Item") or {}
    for table, writes in (request.get("RequestItems") or {}).items():
        for write in writes:
            yield table, (write.get("PutRequest") or {}).get("Item") or (write.get("DeleteRequest") or {}).get("Key")
    for entry in request.get("TransactItems") or []:
        for kind in ("Put", "Update", "Delete"):
            if kind in entry:
                yield entry[kind]["TableName"], entry[kind].get("Key") or entry[kind].get("Item") or {}


def dynamodb_changes(context: Any) -> list[Record]:
    """The state of each item an acknowledged write touched (None once it is gone), read under the backend lock."""
    backend = dynamodb_backends[context.account_id][context.region]
    records: list[Record] = []
    for table_name, attributes in _written_items(context.service_request or {}):
        table = backend.tables.get(table_name.rsplit("/", 1)[-1])
        if table is None or table.hash_key_attr not in attributes:
            continue
        hash_key = DynamoType(attributes[table.hash_key_attr])
        range_key = DynamoType(attributes[table.range_key_attr]) if table.range_key_attr else None
        partition = table.items.get(hash_key)
        item = partition if range_key is None or partition is None else partition.get(range_key)
        records.append((context.account_id, context.region, table.name, hash_key, range_key, item))
    return records


def apply_dynamodb_change(
    account_id: str, region: str, table_name: str, hash_key: Any, range_key: Any, item: Any
) -> None:
    table = dynamodb_backends[account_id][region].tables.get(table_name)
    if table is None:
        return
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
    elif item is None:
        table.items.get(hash_key, {}).pop(range_key, None)
    else:
        table.items[hash_key][range_key] = item


def started_executions(context: Any) -> list[Record]:
    """The execution a StartExecution started (the state machine's runs write the table, which is journaled: a run
    the table knows of must not be missing after a crash)."""
    request = context.service_request or {}
    arn = (getattr(context, "service_response", None) or {}).get("executionArn")
    if not arn:
        return []
    return [
        (
            context.account_id,
            context.region,
            arn,
            request["stateMachineArn"],
            arn.rsplit(":", 1)[-1],
            request.get("input") or "{}",
        )
    ]


# The SQS operations that add or take away messages (the others, and messages moved by SQS itself, are in the
# next snapshot).
MESSAGE_CHANGES = frozenset({"SendMessage", "SendMessageBatch", "DeleteMessage", "DeleteMessageBatch"})


def _queue(account_id: str, region: str, name: str) -> Any:
    queue = sqs_stores[account_id][region].queues.get(name)
    return queue if isinstance(queue, StandardQueue) else None  # a FIFO queue is saved by snapshots only


def _held(queue: Any) -> Iterator[Any]:
    """Every message a standard queue holds: visible, delayed and in flight."""
    yield from list(queue.visible.queue)
    yield from list(queue.delayed)
    yield from list(queue.inflight)


def sqs_changes(context: Any) -> list[Record]:
    """Each message an acknowledged send added, as it is in its queue, or None for each message a delete took away.

    A message already received when its send is recorded is not (its delete may be journaled first); one received
    and not yet in flight at that very moment is missed, and is then only in the next snapshot if it is still
    there: a consumer was taking it anyway (for IngestQueue the reconciler sends lost events again)."""
    request = context.service_request or {}
    response = getattr(context, "service_response", None) or {}
    account_id, name = urlsplit(request.get("QueueUrl", "")).path.strip("/").split("/")[-2:]
    if context.operation.name.startswith("Delete"):
        if "ReceiptHandle" in request:
            handles = [request["ReceiptHandle"]]
        else:  # a batch answers 200 with the entries it refused apart
            deleted = {entry["Id"] for entry in response.get("Successful") or []}
            handles = [entry["ReceiptHandle"] for entry in request.get("Entries") or [] if entry["Id"] in deleted]
        records: list[Record] = []
        for handle in handles:
            with contextlib.suppress(ValueError, UnicodeDecodeError, IndexError, KeyError):
                _uid, queue_arn, message_id, _received = base64.b64decode(handle).decode().split(" ")
                if parse_arn(queue_arn)["resource"] == name:  # a handle of another queue deletes nothing here
                    records.append((account_id, context.region, name, message_id, None))
        return records
    sent = {response["MessageId"]} if "MessageId" in response else set()
    sent |= {entry["MessageId"] for entry in response.get("Successful") or []}
    queue = _queue(account_id, context.region, name)
    if queue is None or not sent:
        return []
    with queue.mutex:
        found = [message for message in _held(queue) if message.message["MessageId"] in sent]
    return [(account_id, context.region, name, message.message["MessageId"], message) for message in found]


def apply_sqs_change(account_id: str, region: str, name: str, message_id: str, message: Any) -> None:
    queue = _queue(account_id, region, name)
    if queue is None:
        return
    held = next((m for m in _held(queue) if m.message["MessageId"] == message_id), None)
    if message is None and held is not None:  # deleted after the snapshot
        if held in queue.inflight:
            del queue.inflight[held]
        elif held in queue.delayed:
            queue.delayed.discard(held)
        else:
            queue.visible.queue.remove(held)
            heapq.heapify(queue.visible.queue)
        for handle in held.receipt_handles:
            queue.receipts.pop(handle, None)
    elif message is not None and held is None:  # sent after the snapshot: waiting to be received, as sent
        message.receipt_handles.clear()
        message.visibility_deadline = None
        if message.is_delayed:
            queue.delayed.add(message)
        else:
            queue.visible.put_nowait(message)


_started_after_snapshot: list[Interrupted] = []
_started_arns: set[str] = set()


def apply_started_execution(account_id: str, region: str, arn: str, machine: str, name: str, data: str) -> None:
    """A run started after the snapshot is run again when ready, once: a start killed while it ran the interrupted
    runs again journaled each a second time (run twice, the second start took the first one's run out of the
    store, and two runs of one media ended one FAILED)."""
    if arn in _started_arns or arn in sfn_stores[account_id][region].executions:
        return
    _started_arns.add(arn)
    _started_after_snapshot.append(Interrupted(account_id, region, arn, machine, name, data))


@dataclass(frozen=True)
class Journaling:
    """What a journaled service records, how a record is applied, and the lock its changes are made under."""

    operations: frozenset[str]
    changes: Callable[[Any], list[Record]]
    apply: Callable[..., None]
    lock: Any


JOURNALING = {
    "s3": Journaling(OBJECT_CHANGES, s3_changes, apply_s3_change, contextlib.nullcontext()),
    "dynamodb": Journaling(ITEM_CHANGES, dynamodb_changes, apply_dynamodb_change, BACKEND_LOCK),
    "stepfunctions": Journaling(
        frozenset({"StartExecution"}), started_executions, apply_started_execution, contextlib.nullcontext()
    ),
    "sqs": Journaling(MESSAGE_CHANGES, sqs_changes, apply_sqs_change, contextlib.nullcontext()),
}


class Journal:
    """Every change a service acknowledges (an S3 object, a DynamoDB item), appended before its response leaves:
    the state of what it touched after the change. The last snapshot of the service and its journal replayed over
    it are the service as it was when LocalStack stopped, or was killed: every acknowledged change is there. A
    record that a kill cut short is cut off the file when it is replayed.

    Folding it into the service's own state file rotates it: the journal becomes ``.saving`` just before the
    service is pickled, and goes once the file holding that state is written (a failed save leaves it, and the
    next rotation appends to it). Replaying a record twice, or one older than the snapshot, changes nothing: each
    holds the whole state of its key as read after the change, and records of one key are in the order of its
    changes."""

    def __init__(self, folder: Path, service: str) -> None:
        self.service = service
        self.journaling = JOURNALING[service]
        self.path = folder / journal_file(service)
        self.saving_path = folder / f"{journal_file(service)}.saving"
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None

    def record(self, context: Any) -> None:
        """Append the state of what an acknowledged change touched (raises if it cannot: the caller turns the
        response into an error rather than acknowledge what a crash would lose)."""
        with self.journaling.lock, self._lock:  # read and written in one go: a key's records in its changes' order
            records = self.journaling.changes(context)
            if not records:
                return
            if self._file is None:
                self._file = self.path.open("ab")
            append_record(self._file, records)

    def size(self) -> int:
        with contextlib.suppress(FileNotFoundError):
            return self.path.stat().st_size
        return 0

    def rotate(self) -> None:
        with self._lock:
            self._close()
            if not self.path.exists():
                return
            if self.saving_path.exists():
                with self.saving_path.open("ab") as saving:
                    saving.write(self.path.read_bytes())
                self.path.unlink()
            else:
                self.path.replace(self.saving_path)

    def close(self) -> None:
        with self.journaling.lock, self._lock:
            self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def saved(self) -> None:
        self.saving_path.unlink(missing_ok=True)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.saving_path.unlink(missing_ok=True)

    def replay(self) -> int:
        """Apply both journals, oldest first, over the loaded state; returns how many records were applied."""
        applied = 0
        for path in (self.saving_path, self.path):
            for records in read_records(path):
                for record in records:
                    self.journaling.apply(*record)
                    applied += 1
        return applied


class Saver:
    """Saves the state every few seconds after a request changed something, and once more at shutdown. Only the
    services a request changed are pickled again (IAM's managed policies and CloudFormation's templates, megabytes,
    change with a deploy, not with a photo); Step Functions is, whenever anything changed (its executions move on
    without a request to it). S3 objects and DynamoDB items are journaled as they change instead: those two
    services, whose state grows with the library, are pickled again (into their own files) when a request changed
    something else of theirs (a bucket, a table) or their journal has grown as large as their file — so the work of
    saving per photo stays the same however large the library is. Messages sent to and deleted from SQS queues are
    journaled too, and the journal folded into ``state.pickle`` at the next save (queues hold what waits, not the
    library: they stay small)."""

    ALWAYS = ("stepfunctions",)
    FOLDED_INTO_STATE = ("sqs",)

    def __init__(self, folder: Path, loaded: Loaded | None = None) -> None:
        self.folder = folder
        self.journals = {service: Journal(folder, service) for service in JOURNALING}
        self.keep_started = False  # the journal of started executions holds runs not yet started again
        self._pickled = dict(loaded.pickled) if loaded else {}
        self._own = dict(loaded.own) if loaded else {}
        # a service not in the files yet, or a journaled one still in state.pickle, is saved at the first save
        self._dirty: set[str] = set(CONTAINERS) - set(self._pickled) - set(self._own)
        self._dirty_lock = threading.Lock()
        self._changed_at: dict[str, float] = {}  # service → when a request last marked it (time.monotonic)
        self._save_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="photopipe-snapshot", daemon=True)
        self._pause = SAVE_EVERY_SECONDS

    def on_response(self, _chain: Any, context: Any, response: Any) -> None:
        """A response handler, run before the response leaves: journals an acknowledged change of an S3 object or
        a DynamoDB item, and marks the service of any other request that may have changed it."""
        operation = getattr(context, "operation", None)
        service = getattr(context, "service", None)
        if operation is None or service is None or operation.name.startswith(READ_PREFIXES):
            return
        name = service.service_name
        journal = self.journals.get(name)
        if journal is not None and operation.name in journal.journaling.operations:
            if str((context.service_request or {}).get("QueueUrl", "")).endswith(".fifo"):  # not journaled
                with self._dirty_lock:
                    self._dirty.add(name)
            if getattr(response, "status_code", 500) < 300:
                try:
                    journal.record(context)
                except Exception:
                    LOG.exception("Could not journal %s; the client is told it failed", operation.name)
                    response.status_code = 500  # clients retry a 500; an acknowledged change would be at risk
            return
        if name in CONTAINERS:
            with self._dirty_lock:
                self._dirty.add(name)
                self._changed_at[name] = time.monotonic()
        ok = getattr(response, "status_code", 500) < 300
        if ok and (name, operation.name) in SAVED_BEFORE_ANSWER and not self.save_if_changed():
            response.status_code = 500  # not saved: the client is told it failed (and asks again)

    def listen(self) -> None:
        """From before the gateway serves: no change goes unmarked or unjournaled."""
        handlers.run_custom_response_handlers.append(self.on_response)

    def start(self) -> None:
        self._thread.start()

    def _due(self, dirty: set[str]) -> list[str]:
        """The journaled services to pickle again: changed other than by journaled requests, or a journal as large
        as the service's own file."""
        return [
            service
            for service in JOURNALED
            if service in dirty or self.journals[service].size() > max(JOURNAL_MIN_BYTES, self._own.get(service, 0))
        ]

    def save_if_changed(self, everything: bool = False) -> bool:
        """Save what changed (``everything``: every service not journaled, as if it had); False when saving failed
        (the last snapshot stays)."""
        with self._save_lock:
            with self._dirty_lock:
                if not (everything or self._dirty or self._due(set()) or self._folding()):
                    return True
            began = time.monotonic()
            pickled = dict(self._pickled)
            dirty: set[str] = set()
            timings: dict[str, float] = {}
            sizes: dict[str, int] = {}
            try:
                # Step Functions before the services its runs write to, and before taking what changed: a run that
                # ends meanwhile is saved running (and run again after a crash: its steps are safe to repeat) with
                # its writes marked for the next save (or journaled), never saved finished beside a service that
                # missed its end.
                started = self.journals["stepfunctions"]
                for service in self.ALWAYS:
                    rotate = started.rotate if service == "stepfunctions" and not self.keep_started else None
                    pickled[service] = self._timed(timings, service, before=rotate)
                with self._dirty_lock:
                    dirty, self._dirty = self._dirty, set()
                dirty |= set(self._folding())
                if everything:
                    dirty |= set(CONTAINERS) - set(JOURNALED)
                for service in self._due(dirty):
                    journal = self.journals[service]
                    data = self._timed(timings, service, before=journal.rotate)
                    save(self.folder, {service: data}, service)
                    journal.saved()
                    sizes[service] = self._own[service] = len(data)
                for service in sorted(dirty - set(self.ALWAYS) - set(JOURNALED)):
                    settling = self._settling(service)  # asked first: a pickle after it
                    rotate = self.journals[service].rotate if service in self.FOLDED_INTO_STATE else None
                    pickled[service] = self._timed(timings, service, before=rotate)  # may still show it unsettled
                    if settling:
                        with self._dirty_lock:
                            self._dirty.add(service)
                if _closed is not None:
                    _closed.sync()
                header = save(self.folder, pickled)  # after the journaled services' own files: it drops their copy
                for service in set(dirty) & set(self.FOLDED_INTO_STATE):
                    self.journals[service].saved()
            except Exception:
                LOG.exception("Could not save the state; the last snapshot stays")
                with self._dirty_lock:
                    self._dirty |= dirty | set(self.ALWAYS)
                return False
            self._pickled = pickled
            if not self.keep_started:
                started.saved()
            self._pause = max(SAVE_EVERY_SECONDS, SAVE_PAUSE_FACTOR * (time.monotonic() - began))
            sizes[STATE_FILE] = header["bytes"]
            LOG.info(
                "Saved the state (%s; %s) in %.2f s",
                ", ".join(f"{name} {size} B" for name, size in sizes.items()),
                ", ".join(f"{service} {took:.3f} s" for service, took in timings.items()),
                time.monotonic() - began,
            )
            return True

    def _settling(self, service: str) -> bool:
        """The service changed by a request lately and has not settled since (or cannot tell, being changed)."""
        if service not in SETTLING or time.monotonic() - self._changed_at.get(service, -SETTLE_WITHIN) > SETTLE_WITHIN:
            return False
        try:
            return SETTLING[service]()
        except RuntimeError:  # a dict changed size while it was read: it is moving on
            return True

    def _folding(self) -> list[str]:
        """The services folded into state.pickle whose journal holds changes."""
        return [service for service in self.FOLDED_INTO_STATE if self.journals[service].size()]

    @staticmethod
    def _timed(timings: dict[str, float], service: str, before: Callable[[], None] | None = None) -> bytes:
        began = time.monotonic()
        pickled = pickle_service(service, before)
        timings[service] = time.monotonic() - began
        return pickled

    def nothing_changed(self) -> bool:
        """Nothing the library needs changed since the last save (metrics and log lines that other shutdown hooks
        flush after it do not count; journaled changes are saved as they happen)."""
        with self._dirty_lock:
            return not self._dirty - NOT_NEEDED_AFTER_A_STOP

    def _run(self) -> None:
        while not self._stop.wait(self._pause):
            self.save_if_changed()

    def stop(self, complete: bool) -> None:
        """The last save, of everything not journaled (a change no request announced is not lost). The state is
        marked as saved whole only when nothing changed after it and the start had completed; otherwise the next
        start treats it as after a crash (the reconciler looks for what is missing)."""
        self._stop.set()
        saved = self.save_if_changed(everything=True)
        for journal in self.journals.values():
            journal.close()
        if saved and complete and self.nothing_changed():
            (self.folder / STOPPED_CLEANLY_FILE).touch()


_saver: Saver | None = None
_loaded = False
_resumed = False
_interrupted: list[Interrupted] = []


@hooks.on_infra_start(priority=100)
def load_saved_state() -> None:
    """Before anything is served: the snapshot's state in the services' containers and the journals replayed over
    it, or LocalStack stops."""
    global _saver, _loaded, _interrupted, _closed  # noqa: PLW0603 - one per LocalStack process
    folder = snapshot_dir()
    if folder is None:
        return
    for leftover in folder.glob(".state*.pickle.*.tmp"):  # a save a kill cut short
        leftover.unlink(missing_ok=True)
    try:
        _closed = ClosedExecutions(folder)
        _closed.read()
        loaded = load(folder)
        _closed.loaded()
        if loaded is None:  # what a LocalStack killed before its first snapshot left refers to nothing that exists
            _closed.path.unlink(missing_ok=True)
            _closed = ClosedExecutions(folder)
        saver = Saver(folder, loaded)
        for service, journal in saver.journals.items():
            if loaded is None:
                journal.discard()
                (folder / state_file(service)).unlink(missing_ok=True)
            elif applied := journal.replay():
                LOG.info("Replayed %d %s change(s) made after the last snapshot", applied, service)
        (folder / STOPPED_CLEANLY_FILE).unlink(missing_ok=True)  # until this one stops as asked
    except Exception as error:
        LOG.exception("photopipe: the saved state in %s could not be loaded: %s", folder, error)
        # Starting empty would save an empty library over the snapshot at the first change.
        os._exit(LOAD_FAILED_EXIT_CODE)
    _loaded = loaded is not None
    started = {run.arn for run in _started_after_snapshot}
    _interrupted = [run for run in interrupted_executions() if run.arn not in started] + _started_after_snapshot
    saver.keep_started = bool(_started_after_snapshot)
    saver.listen()
    _saver = saver


@hooks.on_infra_ready(priority=100)
def resume_after_load() -> None:
    """After the gateway serves (Lambda fetches its code through it), before init's READY stage completes."""
    global _resumed  # noqa: PLW0603
    if _saver is None:
        return
    try:
        if _loaded:
            restart_services()
        run_again(_interrupted)
        _saver.keep_started = False
        _resumed = True
    finally:
        _saver.start()


@hooks.on_infra_shutdown(priority=100)
def save_on_shutdown() -> None:
    if _saver is not None:
        _saver.stop(complete=_resumed)
