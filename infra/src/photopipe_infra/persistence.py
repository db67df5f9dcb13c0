"""The embedded LocalStack keeps its state across restarts: a snapshot of every service the stack uses.

LocalStack's open-source runtime keeps all state in memory (saving and loading it are not part of it). This plugin
uses its open building blocks — the services' state containers (``AccountRegionBundle`` stores and moto
``BackendDict`` backends), its dill-based pickler, the services' ``on_after_state_load`` hooks — to save them and
load them again:

- **Bytes** of S3 objects are already files (``photopipe_infra.s3_disk_store``), named by bucket, key and version; with
  persistence they live under the snapshot folder, so every acknowledged PUT is on disk. So do closed Step Functions
  histories (``photopipe_infra.stepfunctions_history``).
- **State** of the services in ``CONTAINERS`` is pickled, service by service, into one file written atomically
  (``photopipe_infra.snapshot``): on shutdown, and every few seconds after a request changed something (only the
  services that changed are pickled again). Its header names the format and the LocalStack version; the launcher
  refuses a snapshot of another version before starting anything.
- **Loading** happens in ``on_infra_start``, before the gateway serves a request: the containers' contents are
  replaced in place (other modules hold references to them), then the S3 journal is replayed over them (objects
  acknowledged after the last snapshot, see ``S3Journal``). In ``on_infra_ready`` every service is started and taken
  through LocalStack's load hooks (Lambda starts its functions and event source mappings again, CloudWatch its
  alarms; EventBridge's rules and schedules are rebuilt here), and the Step Functions executions that were running
  are run again from their start under their own names (the pipeline's steps are safe to repeat). The launcher
  waits for that: LocalStack's init "READY" stage completes after it.
- A snapshot that cannot be loaded stops LocalStack (exit code 3) with the reason in its log: an empty stack saved
  over it would lose the library.

``PHOTOPIPE_SNAPSHOT_DIR`` (set by the launcher; unset means persistence is off) is the folder.
"""

from __future__ import annotations

import contextlib
import copyreg
import functools
import importlib
import io
import json
import logging
import os
import pickle
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from localstack import version as localstack_version
from localstack.aws import handlers
from localstack.aws.api.stepfunctions import ExecutionStatus
from localstack.aws.connect import connect_to
from localstack.runtime import hooks
from localstack.services.events.event_bus import EventBusService
from localstack.services.events.models import events_stores
from localstack.services.events.rule import RuleService
from localstack.services.plugins import SERVICE_PLUGINS
from localstack.services.s3.models import s3_stores
from localstack.services.stepfunctions.backend.execution import Execution
from localstack.services.stepfunctions.backend.store import sfn_stores
from localstack.state import pickle as state_pickle

from photopipe_infra.dynamodb_provider import BACKEND_LOCK
from photopipe_infra.snapshot import (
    JOURNAL_FILE,
    STATE_FILE,
    STOPPED_CLEANLY_FILE,
    SnapshotError,
    read_payload,
    snapshot_dir,
    write_snapshot,
)
from photopipe_infra.stepfunctions_history import ClosedWorker, KeptHistory, closed_stand_in

LOG = logging.getLogger(__name__)

SAVE_EVERY_SECONDS = 5.0
# Saving a large library takes longer: the pause after a save is at least this many times what it took, so saving
# uses a tenth of a core at most (the S3 journal and the reconciler cover what a longer pause leaves unsaved).
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
# What other shutdown hooks write after the last save (batched metrics and log lines): a stop is clean without it.
NOT_NEEDED_AFTER_A_STOP = frozenset({"cloudwatch", "logs"})
# Operations that change nothing a snapshot holds (reads; receiving a message only hides it for a while).
READ_PREFIXES = ("Get", "List", "Describe", "Head", "Receive", "Query", "Scan", "BatchGet", "Lookup", "Filter")


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


def _restore_object(cls: type, state: dict[str, Any]) -> Any:
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


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
        except RuntimeError as error:  # "dictionary changed size during iteration"
            if "changed size" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.01)
    raise AssertionError("unreachable")


# --- save and load -------------------------------------------------------------------------------------------
def pickle_service(service: str) -> bytes:
    """One service's containers, pickled (services share no objects, so each can be saved on its own). DynamoDB's
    are pickled under the lock every moto call holds (``dynamodb_provider``): never half of a transaction."""
    register_reducers()
    lock = BACKEND_LOCK if service == "dynamodb" else contextlib.nullcontext()
    try:
        with lock:
            return _dumps_whole(containers()[service])
    except Exception as error:
        raise SnapshotError(f"cannot save {service}'s state: {error}") from error


def save(folder: Path, pickled: dict[str, bytes]) -> dict[str, Any]:
    """Write the snapshot of every service, each given pickled."""
    payload = pickle.dumps(pickled, protocol=pickle.HIGHEST_PROTOCOL)
    return write_snapshot(folder, payload, localstack_version.version)


def _replace(target: Any, loaded: Any) -> None:
    """Put the loaded container's contents into the live one (a dict: a bundle of stores, or moto backends)."""
    vars(target).update(vars(loaded))
    dict.clear(target)
    dict.update(target, loaded)


def load(folder: Path) -> dict[str, bytes] | None:
    """Load the snapshot in ``folder`` into the services' containers; returns each service's pickle as it was
    saved (None: there is no snapshot)."""
    began = time.monotonic()
    payload = read_payload(folder, localstack_version.version)
    if payload is None:
        return None
    register_reducers()
    pickled: dict[str, bytes] = pickle.loads(payload)  # noqa: S301 - our own file, checked against its header
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
    return pickled


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
        if saved is None:
            continue
        client = connect_to(aws_access_key_id=run.account_id, region_name=run.region).stepfunctions
        try:
            client.start_execution(stateMachineArn=run.state_machine_arn, name=run.name, input=run.input)
        except Exception:
            LOG.exception("Could not run the interrupted execution %s again; it stays as it was", run.name)
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


# --- when: a response handler that marks what changed and journals S3, a saver thread, the hooks --------------
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


class S3Journal:
    """Every change S3 acknowledges to an object, appended before its response leaves: the state of that key (the
    object, or all its versions in a versioned bucket; None once it is gone). The bytes are already in their file,
    so after a crash (LocalStack killed between two snapshots) replaying the journal over the last snapshot brings
    back every object whose write was acknowledged. A record that a kill cut short is ignored.

    Saving rotates it: the journal becomes ``.saving`` just before S3's state is pickled, and goes once the
    snapshot holding that state is written (a failed save leaves it, and the next rotation appends to it)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / JOURNAL_FILE
        self.saving_path = folder / f"{JOURNAL_FILE}.saving"
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None

    def record(self, context: Any) -> None:
        """Append the state of the keys an acknowledged object change touched (raises if it cannot: the caller
        turns the response into an error rather than acknowledge what a crash would lose)."""
        request = context.service_request or {}
        bucket_name = request.get("Bucket")
        if request.get("Key"):
            keys = [request["Key"]]
        else:
            keys = [entry["Key"] for entry in (request.get("Delete") or {}).get("Objects", [])]
        if not bucket_name or not keys:
            return
        bucket = s3_stores[context.account_id][context.region].buckets.get(bucket_name)
        if bucket is None:
            return
        with self._lock:  # read and written in one go: records of one key are in the order of its changes
            objects = bucket.objects._store  # noqa: SLF001
            data = _dumps_whole([(context.account_id, context.region, bucket_name, k, objects.get(k)) for k in keys])
            if self._file is None:
                self._file = self.path.open("ab")
            self._file.write(struct.pack(">Q", len(data)) + data)
            self._file.flush()  # in the kernel's hands: a killed LocalStack loses none of it

    def rotate(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            if not self.path.exists():
                return
            if self.saving_path.exists():
                with self.saving_path.open("ab") as saving:
                    saving.write(self.path.read_bytes())
                self.path.unlink()
            else:
                self.path.replace(self.saving_path)

    def saved(self) -> None:
        self.saving_path.unlink(missing_ok=True)

    def exists(self) -> bool:
        return self.path.exists() or self.saving_path.exists()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.saving_path.unlink(missing_ok=True)

    def replay(self) -> int:
        """Apply both journals, oldest first, over the loaded state; returns how many keys were set."""
        applied = 0
        for path in (self.saving_path, self.path):
            for account_id, region, bucket_name, key, state in self._records(path):
                bucket = s3_stores[account_id][region].buckets.get(bucket_name)
                if bucket is None:
                    continue
                store = bucket.objects._store  # noqa: SLF001
                if state is None:
                    store.pop(key, None)
                else:
                    store[key] = state
                applied += 1
        return applied

    @staticmethod
    def _records(path: Path) -> Iterator[tuple[str, str, str, str, Any]]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        offset = 0
        while offset + 8 <= len(data):
            (size,) = struct.unpack_from(">Q", data, offset)
            record = data[offset + 8 : offset + 8 + size]
            if len(record) < size:
                LOG.warning("The last record of %s was cut short (LocalStack was killed writing it)", path)
                return
            yield from _loads(record)
            offset += 8 + size


class Saver:
    """Saves the state every few seconds after a request changed something, and once more at shutdown. Only the
    services a request changed are pickled again (IAM's managed policies and CloudFormation's templates, megabytes,
    change with a deploy, not with a photo); Step Functions is, whenever anything changed (its executions move on
    without a request to it)."""

    ALWAYS = ("stepfunctions",)

    def __init__(self, folder: Path, pickled: dict[str, bytes] | None = None) -> None:
        self.folder = folder
        self.journal = S3Journal(folder)
        self._pickled = dict(pickled or {})
        self._dirty: set[str] = set(CONTAINERS) - set(self._pickled)
        self._dirty_lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="photopipe-snapshot", daemon=True)
        self._pause = SAVE_EVERY_SECONDS

    def on_response(self, _chain: Any, context: Any, response: Any) -> None:
        """A response handler, run before the response leaves: marks the service of a request that may have
        changed it, and journals an acknowledged change of an S3 object."""
        operation = getattr(context, "operation", None)
        service = getattr(context, "service", None)
        if operation is None or service is None or operation.name.startswith(READ_PREFIXES):
            return
        name = service.service_name
        if name in CONTAINERS:
            with self._dirty_lock:
                self._dirty.add(name)
        if name == "s3" and operation.name in OBJECT_CHANGES and getattr(response, "status_code", 500) < 300:
            try:
                self.journal.record(context)
            except Exception:
                LOG.exception("Could not journal %s; the client is told it failed", operation.name)
                response.status_code = 500  # S3 clients retry a 500; an acknowledged change would be at risk

    def listen(self) -> None:
        """From before the gateway serves: no change goes unmarked or unjournaled."""
        handlers.run_custom_response_handlers.append(self.on_response)

    def start(self) -> None:
        self._thread.start()

    def save_if_changed(self, everything: bool = False) -> bool:
        """Save what changed; False when saving failed (the last snapshot stays)."""
        with self._save_lock:
            with self._dirty_lock:
                if not (everything or self._dirty):
                    return True
            began = time.monotonic()
            pickled = dict(self._pickled)
            dirty: set[str] = set()
            try:
                # Step Functions before the services its runs write to, and before taking what changed: a run that
                # ends meanwhile is saved running (and run again after a crash: its steps are safe to repeat) with
                # its writes marked for the next save, never saved finished beside a table that missed its end.
                for service in self.ALWAYS:
                    pickled[service] = pickle_service(service)
                with self._dirty_lock:
                    dirty, self._dirty = (set(CONTAINERS) if everything else self._dirty), set()
                for service in sorted(dirty - set(self.ALWAYS)):
                    if service == "s3":
                        self.journal.rotate()
                    pickled[service] = pickle_service(service)
                header = save(self.folder, pickled)
            except Exception:
                LOG.exception("Could not save the state; the last snapshot stays")
                with self._dirty_lock:
                    self._dirty |= dirty | set(self.ALWAYS)
                return False
            self._pickled = pickled
            if "s3" in dirty:
                self.journal.saved()
            self._pause = max(SAVE_EVERY_SECONDS, SAVE_PAUSE_FACTOR * (time.monotonic() - began))
            LOG.info(
                "Saved the state (%d bytes; %s) in %.2f s",
                header["bytes"],
                ", ".join(sorted({*dirty, *self.ALWAYS})),
                time.monotonic() - began,
            )
            return True

    def nothing_changed(self) -> bool:
        """Nothing the library needs changed since the last save (metrics and log lines that other shutdown hooks
        flush after it do not count)."""
        with self._dirty_lock:
            return not self._dirty - NOT_NEEDED_AFTER_A_STOP

    def _run(self) -> None:
        while not self._stop.wait(self._pause):
            self.save_if_changed()

    def stop(self, complete: bool) -> None:
        """The last save, of everything (a change no request announced is not lost). The state is marked as saved
        whole only when nothing changed after it and the start had completed; otherwise the next start treats it
        as after a crash (the reconciler looks for what is missing)."""
        self._stop.set()
        if self.save_if_changed(everything=True) and complete and self.nothing_changed():
            (self.folder / STOPPED_CLEANLY_FILE).touch()


_saver: Saver | None = None
_loaded = False
_resumed = False
_interrupted: list[Interrupted] = []


@hooks.on_infra_start(priority=100)
def load_saved_state() -> None:
    """Before anything is served: the snapshot's state in the services' containers, the S3 journal replayed over
    it and saved at once (so no journal is ever appended to after a crash), or LocalStack stops."""
    global _saver, _loaded, _interrupted  # noqa: PLW0603 - one per LocalStack process
    folder = snapshot_dir()
    if folder is None:
        return
    for leftover in folder.glob(f".{STATE_FILE}.*.tmp"):  # a save a kill cut short
        leftover.unlink(missing_ok=True)
    try:
        pickled = load(folder)
        journal = S3Journal(folder)
        if pickled is None:
            journal.discard()  # of a LocalStack killed before its first snapshot: no bucket it names exists
        elif journal.exists():
            LOG.info("Replayed %d S3 change(s) made after the last snapshot", journal.replay())
            pickled.pop("s3")  # newer in memory than in the snapshot
        saver = Saver(folder, pickled)
        # S3 saved now, the journals with it: records are never appended after one a kill cut short
        if pickled is not None and "s3" not in pickled and not saver.save_if_changed():
            raise SnapshotError("the state with the journal replayed could not be saved")
        (folder / STOPPED_CLEANLY_FILE).unlink(missing_ok=True)  # until this one stops as asked
    except Exception as error:
        LOG.exception("photopipe: the saved state in %s could not be loaded: %s", folder, error)
        # Starting empty would save an empty library over the snapshot at the first change.
        os._exit(LOAD_FAILED_EXIT_CODE)
    _loaded = pickled is not None
    _interrupted = interrupted_executions()
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
        _resumed = True
    finally:
        _saver.start()


@hooks.on_infra_shutdown(priority=100)
def save_on_shutdown() -> None:
    if _saver is not None:
        _saver.stop(complete=_resumed)
