"""S3 object bytes live in files on disk, opened only while a request reads or writes them.

Upstream: ``localstack.services.s3.storage.ephemeral.EphemeralS3ObjectStore``, which the S3 provider creates
(``S3Provider.__init__``) to hold every object's bytes in a ``SpooledTemporaryFile``: in memory up to 512 KB, then an
unnamed temporary file whose descriptor stays open for the object's whole life. A photo's variants (tens to hundreds
of KB each) all stayed in LocalStack's memory, and each original over 512 KB kept a file descriptor open: at 20,000
(the process limit here) LocalStack could open no more files or sockets. Its folder was also a fixed
``/tmp/localstack-s3-storage``, shared by every LocalStack on the machine and never emptied.

``DiskS3ObjectStore`` keeps the upstream store's behaviour (its stored objects, locks, multipart parts) and changes
where an object's bytes are: one file per object version, named by the sha256 of bucket, key and version, under the
snapshot folder when the state is kept across restarts (``photopipe_infra.persistence``), else under LocalStack's
temporary folder (which the launcher empties when LocalStack starts or stops). The file is opened when a request
opens the object and closed when the last one is done with it. The ``on_infra_start`` hook makes the S3 provider
create this store instead.

Objects created with the same ACL share one: upstream builds a new ``AccessControlPolicy`` (owner, grants: ≈ 620
bytes) for every object from ``get_access_control_policy_for_new_resource_request``, and an object's ACL is only
ever read or replaced whole (``PutObjectAcl`` assigns a new one), never changed in place.

``UPSTREAM_SHA256`` pins the upstream sources; a test fails when an upgrade changes them.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import threading
from pathlib import Path
from typing import IO, Any, Literal

from localstack.runtime import hooks
from localstack.services.s3 import provider
from localstack.services.s3.models import S3Object
from localstack.services.s3.storage import ephemeral
from readerwriterlock import rwlock

from photopipe_infra.snapshot import kept_folder

LOG = logging.getLogger(__name__)
# sha256 of the upstream ephemeral store's module and the provider's new-object ACL function in localstack-core 4.14.0.
UPSTREAM_SHA256 = "deb982d3195332a9a58f5f568d4992450e1329b7cfb19b48d077fa3508a3dae3"


def upstream_sha256() -> str:
    digest = hashlib.sha256(inspect.getsource(ephemeral).encode())
    digest.update(inspect.getsource(provider.get_access_control_policy_for_new_resource_request).encode())
    return digest.hexdigest()


MAX_SHARED_ACLS = 256  # distinct ACLs are few (canned ACLs × owners); past this, objects keep their own


def _share_new_object_acls() -> None:
    new_acl = provider.get_access_control_policy_for_new_resource_request
    if getattr(new_acl, "shares_acls", False):
        return
    shared: dict[str, Any] = {}

    @functools.wraps(new_acl)
    def shared_acl(*args: Any, **kwargs: Any) -> Any:
        acl = new_acl(*args, **kwargs)
        key = json.dumps(acl, sort_keys=True, default=str)
        if key in shared or len(shared) < MAX_SHARED_ACLS:
            return shared.setdefault(key, acl)
        return acl

    shared_acl.shares_acls = True  # type: ignore[attr-defined]
    provider.get_access_control_policy_for_new_resource_request = shared_acl


# Guards every DiskFile's count of users (held only to count, open and close).
_USERS_LOCK = threading.Lock()


class DiskFile:
    """One object's bytes in a named file; the file is open only while at least one stored object uses it.

    It offers what upstream's ``LockedFileMixin`` gives a stored object (``position_lock``, ``readwrite_lock``,
    ``internal_last_modified``), but holds the two locks only while the file is in use: upstream keeps six
    ``threading`` locks per object for its whole life, ≈ 1 KB of LocalStack's memory for each of a photo's four
    objects. Stored objects use the locks only between ``attach`` and ``detach`` (they attach before taking the
    reader-writer lock and detach after releasing it), so locks made on the first attach and dropped on the last
    detach are the same ones for everyone using the file at the same time.
    """

    __slots__ = ("_file", "_users", "internal_last_modified", "path", "position_lock", "readwrite_lock")

    def __init__(self, path: Path) -> None:
        self.path = str(path)  # a str: a Path object caches its parts, several hundred bytes per object
        Path(self.path).touch()
        self._file: IO[bytes] | None = None
        self._users = 0
        self.internal_last_modified = 0
        self.position_lock: threading.RLock | None = None
        self.readwrite_lock: rwlock.RWLockWrite | None = None

    def attach(self) -> None:
        with _USERS_LOCK:
            if self._users == 0:
                self._file = open(self.path, "r+b")  # noqa: SIM115, PTH123 - closed on the last detach
                self.position_lock = threading.RLock()
                self.readwrite_lock = rwlock.RWLockWrite()
            self._users += 1

    def detach(self) -> None:
        with _USERS_LOCK:
            self._users -= 1
            if self._users == 0:
                if self._file is not None:
                    self._file.close()
                self._file = None
                self.position_lock = self.readwrite_lock = None

    @property
    def _open(self) -> IO[bytes]:
        if self._file is None:
            raise ValueError(f"{Path(self.path).name} is not open")
        return self._file

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._open.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        return self._open.read(size)

    def write(self, data: bytes) -> int:
        return self._open.write(data)

    def truncate(self, size: int | None = None) -> int:
        return self._open.truncate(size)

    def tell(self) -> int:
        return self._open.tell()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        """The object was deleted: its bytes go."""
        self.release()
        Path(self.path).unlink(missing_ok=True)

    def release(self) -> None:
        """LocalStack stops: the file is closed and stays (the launcher empties the folder unless the state is
        kept, see ``photopipe_infra.persistence``)."""
        with _USERS_LOCK:
            if self._file is not None:
                self._file.close()
                self._file = None


class DiskS3StoredObject(ephemeral.EphemeralS3StoredObject):
    """The upstream stored object over a ``DiskFile``, which it keeps open from ``open`` to ``close``."""

    def __init__(self, s3_object: Any, file: DiskFile, mode: Literal["r", "w"] = "r") -> None:
        file.attach()
        try:
            super().__init__(s3_object=s3_object, file=file, mode=mode)  # type: ignore[arg-type]
        except BaseException:
            file.detach()
            raise

    def close(self) -> None:
        if not self.closed:
            if self._mode == "w":
                self.file.flush()  # before S3 answers: the bytes it acknowledges are the kernel's, not Python's
            super().close()
            self.file.detach()  # type: ignore[attr-defined]


class DiskS3StoredMultipart(ephemeral.EphemeralS3StoredMultipart):
    """A multipart upload's parts in files too (one per part number, in the upload's folder), so an upload in
    progress survives a restart when the state is kept: the parts S3 acknowledged are still there to complete."""

    def open(self, s3_part: Any, mode: Literal["r", "w"] = "r") -> DiskS3StoredObject:  # type: ignore[override]
        file = self.parts.get(s3_part.part_number)
        if file is None:
            path = Path(self.upload_dir) / str(s3_part.part_number)
            file = self.parts.setdefault(s3_part.part_number, DiskFile(path))  # type: ignore[arg-type]
        return DiskS3StoredObject(s3_object=s3_part, file=file, mode=mode)  # type: ignore[arg-type]

    def release(self) -> None:
        for file in self.parts.values():
            file.release()  # type: ignore[attr-defined]
        self.parts.clear()


class DiskS3ObjectStore(ephemeral.EphemeralS3ObjectStore):
    def __init__(self, root_directory: str | None = None) -> None:
        # The snapshot's folder (or LocalStack's own temporary one), not the fixed one every instance shared.
        super().__init__(str(kept_folder("photopipe-s3")))
        Path(self.root_directory).mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """LocalStack stops (upstream's ``close`` deletes every object's and part's bytes): every file is closed
        and kept."""
        for bucket in self._filesystem.values():
            for file in bucket.get("keys", {}).values():
                file.release()
            bucket.get("keys", {}).clear()
            for multipart in bucket.get("multiparts", {}).values():
                multipart.release()
            bucket.get("multiparts", {}).clear()

    def open(self, bucket: str, s3_object: S3Object, mode: Literal["r", "w"] = "r") -> DiskS3StoredObject:  # type: ignore[override]
        key = self._key_from_s3_object(s3_object)
        keys: dict[str, Any] = self._filesystem[bucket]["keys"]
        file = keys.get(key)
        if file is None:
            path = self._path(bucket, s3_object)
            path.parent.mkdir(parents=True, exist_ok=True)
            file = DiskFile(path)
            # the bytes a restarted LocalStack finds are those of the object it loaded (a new one's stamp is 0)
            file.internal_last_modified = s3_object.internal_last_modified
            file = keys.setdefault(key, file)
        return DiskS3StoredObject(s3_object=s3_object, file=file, mode=mode)

    def remove(self, bucket: str, s3_object: S3Object | list[S3Object]) -> None:
        """Upstream removes the files of the objects it has opened; one no request opened since a restart has
        its file too."""
        super().remove(bucket, s3_object)
        for obj in s3_object if isinstance(s3_object, list) else [s3_object]:
            self._path(bucket, obj).unlink(missing_ok=True)

    def _path(self, bucket: str, s3_object: S3Object) -> Path:
        name = hashlib.sha256(f"{bucket}/{s3_object.key}?{s3_object.version_id or 'null'}".encode()).hexdigest()
        return Path(self.root_directory, bucket, name)

    def get_multipart(self, bucket: str, s3_multipart: Any) -> DiskS3StoredMultipart:
        with self._lock_multipart_create:
            multipart = self._get_multipart(bucket, s3_multipart.id)
            if multipart is None:
                upload_dir = self._create_upload_directory(bucket, s3_multipart.id)
                multipart = DiskS3StoredMultipart(self, bucket, s3_multipart, upload_dir)
                self._filesystem[bucket]["multiparts"][s3_multipart.id] = multipart
        return multipart  # type: ignore[return-value]


@functools.cache
def _use_disk_store() -> None:
    if upstream_sha256() != UPSTREAM_SHA256:
        LOG.warning("LocalStack's ephemeral S3 store differs from what photopipe_infra.s3_disk_store expects")
    provider.EphemeralS3ObjectStore = DiskS3ObjectStore  # type: ignore[misc]
    _share_new_object_acls()


@hooks.on_infra_start()
def store_s3_objects_on_disk() -> None:
    _use_disk_store()
    LOG.debug("S3 object bytes are kept in files under %s", kept_folder("photopipe-s3"))
