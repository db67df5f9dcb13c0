"""The files the embedded LocalStack's state is saved in: one JSON header line, then the pickled state.

``state.pickle`` holds most services; a service with a journal (S3, DynamoDB: their state grows with the library)
has its own file, rewritten only when its journal has grown as large as it.

The header says which format and which LocalStack wrote it, and the size and sha256 of what follows: the launcher
reads it (without LocalStack's packages) to refuse a snapshot of another version before anything starts, and the
loader refuses a damaged one. Writing is atomic (write, fsync, rename, fsync the folder): a crash leaves the old
file or the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SNAPSHOT_ENV = "PHOTOPIPE_SNAPSHOT_DIR"  # set by the launcher: where the state is kept (unset: it is not)
FORMAT = 1
STATE_FILE = "state.pickle"
JOURNALED = ("s3", "dynamodb")  # services whose every change is journaled; each has its own state file
# Written after the last save of a LocalStack that stopped as asked; gone while one runs.
STOPPED_CLEANLY_FILE = "stopped-cleanly"


class SnapshotError(RuntimeError):
    """The snapshot cannot be loaded into this LocalStack; the message says why and what to do."""


def snapshot_dir() -> Path | None:
    """The folder of the snapshot, or None when persistence is off."""
    folder = os.environ.get(SNAPSHOT_ENV)
    return Path(folder) if folder else None


def kept_folder(name: str) -> Path:
    """A folder for files that are part of the state (S3 object bytes, closed executions' histories): in the
    snapshot folder when persistence is on, else in LocalStack's temporary folder (emptied at start and stop)."""
    root = snapshot_dir()
    folder = (root if root is not None else Path(tempfile.gettempdir())) / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def state_file(service: str | None = None) -> str:
    """The file of a journaled service's state, or of the others' (None)."""
    return STATE_FILE if service is None else f"state-{service}.pickle"


def journal_file(service: str) -> str:
    return f"{service}-journal"


def stopped_without_saving(folder: Path) -> bool:
    """A state was kept in ``folder`` and the LocalStack that kept it did not stop cleanly (it was killed, or the
    machine stopped): changes after its last snapshot other than the journaled services' may be missing."""
    kept = (folder / STATE_FILE).exists() or any((folder / journal_file(s)).exists() for s in JOURNALED)
    return kept and not (folder / STOPPED_CLEANLY_FILE).exists()


def expected_header(localstack_version: str) -> dict[str, Any]:
    return {"format": FORMAT, "localstack": localstack_version}


def write_snapshot(folder: Path, payload: bytes, localstack_version: str, name: str = STATE_FILE) -> dict[str, Any]:
    header = {
        **expected_header(localstack_version),
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "bytes": len(payload),
    }
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    temporary = target.with_name(f".{name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as file:
            file.write(json.dumps(header).encode() + b"\n")
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # the rename is durable once the folder is synced
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    return header


def read_header(folder: Path, name: str = STATE_FILE) -> dict[str, Any] | None:
    """The header of the snapshot file ``name`` in ``folder`` (None: there is none)."""
    try:
        with (folder / name).open("rb") as file:
            line = file.readline()
    except FileNotFoundError:
        return None
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise SnapshotError(f"{folder / name} is not a photopipe snapshot (its first line is no header)")
    return header


def check_header(header: dict[str, Any], folder: Path, localstack_version: str) -> None:
    expected = expected_header(localstack_version)
    if {key: header.get(key) for key in expected} != expected:
        raise SnapshotError(
            f"the saved state in {folder} was written by another version (format {header.get('format')}, "
            f"LocalStack {header.get('localstack')}; this one is format {expected['format']}, LocalStack "
            f"{expected['localstack']}). It is left as it is; `photopipe up --fresh` moves it aside and starts "
            "with an empty stack."
        )


def read_payload(folder: Path, localstack_version: str, name: str = STATE_FILE) -> bytes | None:
    """The pickled state in file ``name``, checked against its header (None: there is no such file)."""
    header = read_header(folder, name)
    if header is None:
        return None
    check_header(header, folder, localstack_version)
    with (folder / name).open("rb") as file:
        file.readline()
        payload = file.read()
    if len(payload) != header.get("bytes") or hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise SnapshotError(f"{folder / name} is damaged: its size or sha256 is not the one its header names")
    return payload
