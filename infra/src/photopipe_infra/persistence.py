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

import functools
import importlib
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

from photopipe_infra.snapshot import (
    JOURNAL_FILE,
    STATE_FILE,
    STOPPED_CLEANLY_FILE,
    SnapshotError,
    read_payload,
    snapshot_dir,
    write_snapshot,
)
from photopipe_infra.stepfunctions_history import ClosedWorker

LOG = logging.getLogger(__name__)

SAVE_EVERY_SECONDS = 5.0
LOAD_FAILED_EXIT_CODE = 3

# Service → the state containers (module, attribute) that hold all of its state.
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
# Operations that change nothing a snapshot holds (reads; receiving a message only hides it for a while).
READ_PREFIXES = ("Get", "List", "Describe", "Head", "Receive", "Query", "Scan", "BatchGet", "Lookup", "Filter")


# --- pickling ------------------------------------------------------------------------------------------------
# Locks come back new and unlocked (dill would restore an RLock's owner and count: it could never be taken again);
# a Condition comes back around its own lock, shared as before.
def _new_lock(pickler: Any, obj: Any) -> None:
    pickler.save_reduce(threading.Lock, (), obj=obj)


def _new_rlock(pickler: Any, obj: Any) -> None:
    pickler.save_reduce(threading.RLock, (), obj=obj)


def _new_condition(pickler: Any, obj: Any) -> None:
    pickler.save_reduce(threading.Condition, (obj._lock,), obj=obj)  # noqa: SLF001


def _execution(pickler: Any, obj: Any) -> None:
    """A Step Functions execution without its worker (threads, the program being evaluated) and its CloudWatch
    Logs session (a client, a thread pool): one still running is saved as interrupted; a closed one keeps its
    spilled history."""
    state = dict(obj.__dict__)
    worker = state.get("exec_worker")
    if worker is not None and not isinstance(worker, ClosedWorker):
        state["exec_worker"] = None
    state["_cloud_watch_logging_session"] = None
    pickler.save_reduce(_restore_object, (type(obj), state), obj=obj)


def _restore_object(cls: type, state: dict[str, Any]) -> Any:
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


@functools.cache
def register_reducers() -> None:
    state_pickle.register(type(threading.Lock()))(_new_lock)
    state_pickle.register(type(threading.RLock()))(_new_rlock)
    state_pickle.register(threading.Condition)(_new_condition)
    state_pickle.register(Execution, subclasses=True)(_execution)


def containers() -> dict[str, list[Any]]:
    return {
        service: [getattr(importlib.import_module(module), name) for module, name in pairs]
        for service, pairs in CONTAINERS.items()
    }


def _dumps_whole(state: Any, attempts: int = 20) -> bytes:
    """Pickle the state while the services keep running: a dict that changed size under the pickler is tried
    again (the next attempt sees it after the change)."""
    for attempt in range(attempts):
        try:
            return state_pickle.dumps(state)
        except RuntimeError as error:  # "dictionary changed size during iteration"
            if "changed size" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.01)
    raise AssertionError("unreachable")


# --- save and load -------------------------------------------------------------------------------------------
def pickle_service(service: str) -> bytes:
    """One service's containers, pickled (services share no objects, so each can be saved on its own)."""
    register_reducers()
    try:
        return _dumps_whole([getattr(importlib.import_module(m), a) for m, a in CONTAINERS[service]])
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
        loaded = state_pickle.loads(pickled[service])
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
    state_machine_arn: str
    name: str
    input: str


def take_interrupted_executions() -> list[Interrupted]:
    """Take the executions that were running out of the loaded state: each is run again from its start, under its
    own name, once the services run (every step of the pipeline is safe to repeat). A media's run thus ends as if
    the restart had not happened, with one execution of its name."""
    interrupted = []
    for account_id, region, store in sfn_stores.iter_stores():
        for arn, execution in list(store.executions.items()):
            if execution.exec_status == ExecutionStatus.RUNNING and execution.exec_worker is None:
                interrupted.append(
                    Interrupted(
                        account_id=account_id,
                        region=region,
                        state_machine_arn=execution.state_machine_arn,
                        name=execution.name,
                        input=json.dumps(execution.input_data or {}),
                    )
                )
                del store.executions[arn]
    return interrupted


def run_again(interrupted: list[Interrupted]) -> None:
    for run in interrupted:
        client = connect_to(aws_access_key_id=run.account_id, region_name=run.region).stepfunctions
        try:
            client.start_execution(stateMachineArn=run.state_machine_arn, name=run.name, input=run.input)
        except Exception:
            LOG.exception("Could not run the interrupted execution %s again", run.name)
        else:
            LOG.info("Running the interrupted execution %s again", run.name)


def restart_services() -> None:
    """Start every service whose state was loaded and take it through LocalStack's load protocol (its providers
    were made after the load, so they saw the state at their start; the hooks rebuild what providers keep beside
    their stores: Lambda's running functions and event source mappings, CloudWatch's alarm schedules, API Gateway's
    routes are registered at the start). EventBridge, which has no such hook, is rebuilt here."""
    for name in CONTAINERS:
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


# --- when: a counter of changing requests, a saver thread, the hooks -------------------------------------------
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
        state = [(context.account_id, context.region, bucket_name, key, bucket.objects._store.get(key)) for key in keys]  # noqa: SLF001
        data = state_pickle.dumps(state)
        with self._lock:
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
            yield from state_pickle.loads(record)
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

    def count(self, _chain: Any, context: Any, response: Any) -> None:
        """A response handler: marks the service of a request that may have changed it."""
        operation = getattr(context, "operation", None)
        service = getattr(context, "service", None)
        if operation is None or service is None or operation.name.startswith(READ_PREFIXES):
            return
        name = service.service_name
        if name in CONTAINERS:
            with self._dirty_lock:
                self._dirty.add(name)
        if name == "s3" and getattr(response, "status_code", 500) < 300:
            self.journal.record(context)

    def start(self) -> None:
        handlers.run_custom_response_handlers.append(self.count)
        self._thread.start()

    def save_if_changed(self, everything: bool = False) -> bool:
        """Save what changed; False when saving failed (the last snapshot stays)."""
        with self._save_lock:
            with self._dirty_lock:
                dirty, self._dirty = (set(CONTAINERS) if everything else self._dirty), set()
            if not dirty:
                return True
            began = time.monotonic()
            try:
                # Step Functions first: a run that ends while the others are pickled is run again after a crash
                # (its steps are safe to repeat), rather than found finished by a table that missed its end.
                for service in sorted({*dirty, *self.ALWAYS}, key=lambda name: (name not in self.ALWAYS, name)):
                    if service == "s3":
                        self.journal.rotate()
                    self._pickled[service] = pickle_service(service)
                header = save(self.folder, self._pickled)
                if "s3" in dirty:
                    self.journal.saved()
            except Exception:
                LOG.exception("Could not save the state; the last snapshot stays")
                with self._dirty_lock:
                    self._dirty |= dirty
                return False
            LOG.info(
                "Saved the state (%d bytes; %s) in %.2f s",
                header["bytes"],
                ", ".join(sorted({*dirty, *self.ALWAYS})),
                time.monotonic() - began,
            )
            return True

    def _run(self) -> None:
        while not self._stop.wait(SAVE_EVERY_SECONDS):
            self.save_if_changed()

    def stop(self) -> None:
        """The last save, of everything (a change no request announced is not lost)."""
        self._stop.set()
        if self.save_if_changed(everything=True):
            (self.folder / STOPPED_CLEANLY_FILE).touch()


_saver: Saver | None = None
_loaded = False
_interrupted: list[Interrupted] = []


@hooks.on_infra_start(priority=100)
def load_saved_state() -> None:
    """Before anything is served: the snapshot's state in the services' containers (or LocalStack stops)."""
    global _saver, _loaded, _interrupted  # noqa: PLW0603 - one per LocalStack process
    folder = snapshot_dir()
    if folder is None:
        return
    try:
        pickled = load(folder)
        replayed = S3Journal(folder).replay()
        (folder / STOPPED_CLEANLY_FILE).unlink(missing_ok=True)  # until this one stops as asked
    except Exception as error:
        LOG.exception("photopipe: the saved state in %s could not be loaded: %s", folder, error)
        # Starting empty would save an empty library over the snapshot at the first change.
        os._exit(LOAD_FAILED_EXIT_CODE)
    _loaded = pickled is not None
    _interrupted = take_interrupted_executions()
    if replayed:
        LOG.info("Replayed %d S3 change(s) made after the last snapshot", replayed)
        if pickled is not None:
            pickled.pop("s3", None)  # the state in memory is newer than the snapshot's: saved again
    _saver = Saver(folder, pickled)


@hooks.on_infra_ready(priority=100)
def resume_after_load() -> None:
    """After the gateway serves (Lambda fetches its code through it), before init's READY stage completes."""
    if _saver is None:
        return
    if _loaded:
        restart_services()
    _saver.start()
    run_again(_interrupted)


@hooks.on_infra_shutdown(priority=100)
def save_on_shutdown() -> None:
    if _saver is not None:
        _saver.stop()
