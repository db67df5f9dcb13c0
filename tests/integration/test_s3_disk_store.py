"""S3 object bytes live in files (photopipe_infra.s3_disk_store) beside LocalStack's saved state, not in its memory,
and no file stays open between requests."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from photopipe_infra import venvs
from photopipe_infra.launcher import EmbeddedLocalStack


@pytest.fixture
def bucket(aws_client: Callable[[str], Any]) -> Iterator[str]:
    s3 = aws_client("s3")
    name = f"disk-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])
    s3.delete_bucket(Bucket=name)


def stored(localstack: EmbeddedLocalStack, bucket: str, key: str) -> Path:
    name = hashlib.sha256(f"{bucket}/{key}?null".encode()).hexdigest()
    return localstack.files_dir / "photopipe-s3" / bucket / name


def open_files(localstack: EmbeddedLocalStack) -> int:
    pid = localstack.owned_pid()
    assert pid is not None
    return len(psutil.Process(pid).open_files())


def test_objects_are_files_that_read_back_whole_and_in_ranges(
    localstack: EmbeddedLocalStack, aws_client: Callable[[str], Any], bucket: str
) -> None:
    s3 = aws_client("s3")
    small, large = os.urandom(100_000), os.urandom(700_000)  # under and over the upstream 512 KB in-memory limit
    s3.put_object(Bucket=bucket, Key="a/small photo.webp", Body=small)
    s3.put_object(Bucket=bucket, Key="a/large.jpg", Body=large)
    assert stored(localstack, bucket, "a/small photo.webp").read_bytes() == small
    assert stored(localstack, bucket, "a/large.jpg").read_bytes() == large
    assert s3.get_object(Bucket=bucket, Key="a/large.jpg")["Body"].read() == large
    ranged = s3.get_object(Bucket=bucket, Key="a/large.jpg", Range="bytes=1000-1999")["Body"].read()
    assert ranged == large[1000:2000]
    # An overwrite replaces the bytes in place; a delete removes the file.
    s3.put_object(Bucket=bucket, Key="a/small photo.webp", Body=b"new bytes")
    assert s3.get_object(Bucket=bucket, Key="a/small photo.webp")["Body"].read() == b"new bytes"
    s3.delete_object(Bucket=bucket, Key="a/large.jpg")
    assert not stored(localstack, bucket, "a/large.jpg").exists()


def test_many_objects_keep_no_file_open(
    localstack: EmbeddedLocalStack, aws_client: Callable[[str], Any], bucket: str
) -> None:
    s3 = aws_client("s3")
    before = open_files(localstack)
    for n in range(200):
        s3.put_object(Bucket=bucket, Key=f"big/{n}.jpg", Body=os.urandom(600_000))
    s3.get_object(Bucket=bucket, Key="big/7.jpg")["Body"].read()
    # Upstream, each of these kept an open temporary file (and the process allows 20,000 at most).
    assert open_files(localstack) - before < 20


# Runs in LocalStack's own venv: the store as the S3 provider uses it, without a server.
STORE_PROBE = r"""
import gc, json, tempfile, tracemalloc
from localstack.services.s3.models import S3Object
from photopipe_infra.s3_disk_store import DiskS3ObjectStore

store = DiskS3ObjectStore()
store.create_bucket("probe")
objects = [S3Object(key=f"media/{n}/thumb.webp") for n in range(2000)]
for obj in objects[:10]:  # warm up
    with store.open("probe", obj, mode="w") as stored:
        stored.write(__import__("io").BytesIO(b"x" * 100))
gc.collect()
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
for obj in objects[10:]:
    with store.open("probe", obj, mode="w") as stored:
        stored.write(__import__("io").BytesIO(b"x" * 100))
gc.collect()
grown = (tracemalloc.get_traced_memory()[0] - before) / (len(objects) - 10)
with store.open("probe", objects[500]) as stored:
    back = stored.read()
print(json.dumps({"grown_bytes_per_object": grown, "read_back": back == b"x" * 100}))
"""


def test_a_stored_object_costs_little_memory_between_requests() -> None:
    # Upstream, every object kept a position lock and a reader-writer lock (six locks) for its whole life: ≈ 1 KB
    # per object, four objects per photo.
    python = venvs.ensure(venvs.LOCALSTACK).python
    env = {**os.environ, "TMPDIR": tempfile.mkdtemp()}
    result = subprocess.run(
        [str(python), "-c", STORE_PROBE], capture_output=True, text=True, timeout=120, check=True, env=env
    )  # noqa: S603
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["read_back"]
    assert measured["grown_bytes_per_object"] < 450, measured


ACL_PROBE = r"""
import json
from localstack.services.s3 import provider
from localstack.services.s3.utils import get_owner_for_account_id
import photopipe_infra.s3_disk_store as store

store._share_new_object_acls()
owner = get_owner_for_account_id("000000000000")
first = provider.get_access_control_policy_for_new_resource_request({}, owner=owner)
second = provider.get_access_control_policy_for_new_resource_request({"Key": "other"}, owner=owner)
public = provider.get_access_control_policy_for_new_resource_request({"ACL": "public-read"}, owner=owner)
print(json.dumps({"shared": first is second, "public_differs": public is not first and public != first}))
"""


def test_objects_with_the_same_acl_share_one_and_a_changed_acl_stays_its_objects(
    aws_client: Callable[[str], Any], bucket: str
) -> None:
    # Each object kept its own copy of the same ACL (≈ 620 bytes, four objects per photo).
    python = venvs.ensure(venvs.LOCALSTACK).python
    result = subprocess.run([str(python), "-c", ACL_PROBE], capture_output=True, text=True, timeout=120, check=True)  # noqa: S603
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"shared": True, "public_differs": True}
    # Live: changing one object's ACL leaves the others' as they were
    s3 = aws_client("s3")
    s3.put_object(Bucket=bucket, Key="acl/a.webp", Body=b"a")
    s3.put_object(Bucket=bucket, Key="acl/b.webp", Body=b"b")
    s3.put_object_acl(Bucket=bucket, Key="acl/a.webp", ACL="public-read")
    grants_a = s3.get_object_acl(Bucket=bucket, Key="acl/a.webp")["Grants"]
    grants_b = s3.get_object_acl(Bucket=bucket, Key="acl/b.webp")["Grants"]
    assert {g["Permission"] for g in grants_a} == {"FULL_CONTROL", "READ"}
    assert [g["Permission"] for g in grants_b] == ["FULL_CONTROL"]
