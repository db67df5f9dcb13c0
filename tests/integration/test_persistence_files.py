"""The append-only files of the embedded runtime's persistence (photopipe_infra.persistence): a record a kill cut
short is cut off, and what is appended next follows the last whole record."""

from __future__ import annotations

import subprocess
import textwrap

from photopipe_infra import venvs

TORN_TAIL = textwrap.dedent(
    """
    import sys, tempfile
    from pathlib import Path
    from photopipe_infra.persistence import append_record, read_records

    path = Path(tempfile.mkdtemp()) / "journal"
    with path.open("ab") as file:
        for number in range(3):
            append_record(file, [("record", number)])
    whole = path.stat().st_size
    with path.open("ab") as file:  # a kill in the middle of the fourth record
        file.write((1000).to_bytes(8, "big") + b"half a pickle")
    first = [record for records in read_records(path) for record in records]
    cut_to = path.stat().st_size
    with path.open("ab") as file:
        append_record(file, [("record", 3)])
    second = [record for records in read_records(path) for record in records]
    print(first == [("record", n) for n in range(3)], cut_to == whole, second == [("record", n) for n in range(4)])
    """
)


def test_a_record_cut_short_by_a_kill_is_cut_off_and_the_next_follows_the_last_whole_one() -> None:
    python = venvs.ensure(venvs.LOCALSTACK).python
    result = subprocess.run([str(python), "-c", TORN_TAIL], capture_output=True, text=True, timeout=120, check=True)  # noqa: S603
    assert result.stdout.split() == ["True", "True", "True"], result.stderr[-2000:]


ITEMS_STAY_LEAN = textwrap.dedent(
    """
    import gc, tracemalloc
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from photopipe_infra.persistence import _dumps, _loads

    def item(n):
        attrs = {f"a{k}": {"S": f"value {n} {k}"} for k in range(20)}
        attrs["nested"] = {"M": {"x": {"N": str(n)}, "l": {"L": [{"S": "one"}, {"N": "2"}]}}}
        return Item(DynamoType({"S": f"MEDIA#{n}"}), DynamoType({"S": "META"}), attrs)

    from localstack.services.s3.models import S3Object

    objects = [S3Object(f"media/{n}/small.webp", etag=f"e{n}", size=n, user_metadata={"n": str(n)}) for n in range(500)]
    items = [item(n) for n in range(2000)] + objects
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    data = _dumps(items)
    del data
    gc.collect()
    kept = sum(d.size_diff for d in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    again = _loads(_dumps(items))
    same = [i.to_json() for i in again[:2000]] == [i.to_json() for i in items[:2000]]
    same = same and [vars(o) for o in again[2000:]] == [vars(o) for o in objects]
    print(kept < 200_000, same, kept)
    """
)


def test_pickling_table_items_and_s3_objects_leaves_them_as_small_as_before_and_loses_nothing() -> None:
    """Pickling an object the default way left a dict behind on each (Python 3.12+ keeps attributes inline until
    asked): 3.6 MB more for these 2,000 items before their reducers, 1.5 KB after."""
    python = venvs.ensure(venvs.LOCALSTACK).python
    result = subprocess.run(
        [str(python), "-c", ITEMS_STAY_LEAN], capture_output=True, text=True, timeout=120, check=True
    )  # noqa: S603
    assert result.stdout.split()[:2] == ["True", "True"], result.stdout + result.stderr[-2000:]


CLOSED_ARCHIVE = textwrap.dedent(
    """
    import tempfile
    from pathlib import Path
    from photopipe_infra.persistence import ClosedExecutions

    class Machine:
        arn, revision_id, definition, role_arn = "arn:machine", None, "{}", "arn:role"
        logging_config = tracing_config = None

    class Run:
        def __init__(self, arn, machine, detail):
            self.exec_arn, self.state_machine, self.detail = arn, machine, detail

    folder = Path(tempfile.mkdtemp())
    machine = Machine()
    archive = ClosedExecutions(folder)
    archive.reference(Run("arn:run:0", machine, lambda: None))  # cannot be pickled: kept whole in the snapshot
    archive.reference(Run("arn:run:1", machine, "done"))
    archive.sync()
    # a later start: the snapshot refers to run 1 only (run 2 was archived, then a kill came before the snapshot)
    archive.reference(Run("arn:run:2", machine, "first try"))
    archive.sync()
    again = ClosedExecutions(folder)
    again.read()
    loaded = again.execution("arn:run:1")
    again.loaded()
    again.reference(Run("arn:run:2", machine, "run again"))  # the run, started again, closes once more
    again.sync()
    third = ClosedExecutions(folder)
    third.read()
    print(loaded.detail == "done", third.execution("arn:run:2").detail == "run again")
    """
)


def test_closed_runs_archive_loads_after_a_run_that_could_not_be_archived_and_keeps_a_run_closed_again() -> None:
    python = venvs.ensure(venvs.LOCALSTACK).python
    result = subprocess.run(
        [str(python), "-c", CLOSED_ARCHIVE], check=False, capture_output=True, text=True, timeout=120
    )  # noqa: S603
    assert result.stdout.split() == ["True", "True"], result.stdout + result.stderr[-2000:]


KEPT_OUT = textwrap.dedent(
    """
    import datetime, tempfile
    from pathlib import Path
    from localstack.services.stepfunctions.backend.store import sfn_stores
    from photopipe_infra import persistence
    from photopipe_infra.persistence import ClosedExecutions, _dumps_whole, _loads, _replace
    from photopipe_infra.stepfunctions_history import ClosedWorker

    class Machine:
        arn, revision_id, definition, role_arn = "arn:machine", None, "{}", "arn:role"
        logging_config = tracing_config = None

    class Run:
        def __init__(self, n, machine, detail, closed=True):
            self.exec_arn = f"arn:aws:states:us-east-1:000000000000:execution:machine:run-{n}"
            self.state_machine, self.detail = machine, detail
            self.start_date = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(seconds=n)
            self.exec_worker = ClosedWorker(None) if closed else None

    def add(run):
        sfn_stores["000000000000"]["us-east-1"].executions[run.exec_arn] = run

    def start(folder):
        sfn_stores.reset()
        archive = persistence._closed = ClosedExecutions(folder)
        archive.read()
        return archive

    def load(archive, snapshot):
        _replace(sfn_stores, _loads(snapshot))
        archive.loaded()
        return sfn_stores["000000000000"]["us-east-1"].executions

    folder = Path(tempfile.mkdtemp())
    archive = start(folder)
    machine = Machine()
    for n in range(1000):
        add(Run(n, machine, f"closed {n}" + "x" * 500))
    add(Run(1000, machine, "running", closed=False))
    first = _dumps_whole(sfn_stores)
    archive.sync()
    second = _dumps_whole(sfn_stores)  # nothing closed since: the same small snapshot
    add(Run(1001, machine, "closed before a kill"))
    _dumps_whole(sfn_stores)  # archived while a snapshot was taken that a kill stopped short of the disk
    archive.sync()
    length_before_kill = archive.path.stat().st_size

    archive = start(folder)
    executions = load(archive, second)
    runs = list(executions.values())
    print(
        len(first) < 5_000,
        len(second) == len(first),
        [run.detail[:10] for run in runs[:2]] == ["closed 0xx", "closed 1xx"],
        runs[999].detail.startswith("closed 999"),
        runs[1000].detail == "running" and runs[1000].exec_worker is None,
        runs[1].state_machine is runs[2].state_machine,
        len(runs) == 1001,
        archive.path.stat().st_size < length_before_kill,
    )
    add(Run(1001, machine, "closed again"))  # run again, it closes once more
    third = _dumps_whole(sfn_stores)
    archive.sync()
    archive = start(folder)
    executions = load(archive, third)
    print(len(executions) == 1002, list(executions.values())[-1].detail == "closed again")
    """
)


def test_a_snapshot_keeps_closed_runs_out_and_loading_puts_back_exactly_those_it_went_with() -> None:
    """Every snapshot pickled a reference to every closed run (+10 ms of LocalStack's CPU per photo at 10,000):
    now it holds none of them, only the archive's length, and what a kill left after that length is cut off."""
    python = venvs.ensure(venvs.LOCALSTACK).python
    result = subprocess.run([str(python), "-c", KEPT_OUT], check=False, capture_output=True, text=True, timeout=120)  # noqa: S603
    assert result.stdout.split() == ["True"] * 10, result.stdout + result.stderr[-3000:]


BUSY_BUCKET = textwrap.dedent(
    """
    import threading, time
    from localstack.services.s3.models import KeyStore, S3Object, VersionedKeyStore
    from photopipe_infra.persistence import _dumps_whole, _loads

    def objects(store, prefix, count):
        for n in range(count):
            store.set(f"{prefix}/{n}", S3Object(f"{prefix}/{n}", etag=f"e{n}", size=n, version_id="v1"))

    plain, versioned = KeyStore(), VersionedKeyStore()
    objects(plain, "media", 20000)
    objects(versioned, "media", 20000)
    stop = threading.Event()

    def uploads():  # a new object every few hundred microseconds, as a burst of uploads makes them
        n = 0
        while not stop.is_set():
            objects(plain, f"new{n}", 1)
            objects(versioned, f"new{n}", 1)
            n += 1
            time.sleep(0.0002)

    writer = threading.Thread(target=uploads)
    writer.start()
    try:
        time.sleep(0.05)
        before = len(plain._store), len(versioned._store)
        again_plain, again_versioned = _loads(_dumps_whole([plain, versioned], attempts=3))
    finally:
        stop.set()
        writer.join()
    print(
        len(again_plain._store) >= before[0],
        len(again_versioned._store) >= before[1],
        vars(again_plain.get("media/7")) == vars(plain.get("media/7")),
        vars(again_versioned.get("media/7")) == vars(versioned.get("media/7")),
    )
    """
)


def test_a_bucket_receiving_uploads_is_pickled_at_the_first_try_with_every_object_it_held() -> None:
    """Folding S3's journal pickles every bucket while uploads go on; the pickler iterating a large bucket's live
    dict met a new key on every try, so S3 was never folded under sustained load and its journal only grew."""
    python = venvs.ensure(venvs.LOCALSTACK).python
    result = subprocess.run([str(python), "-c", BUSY_BUCKET], capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
    assert result.stdout.split() == ["True"] * 4, result.stdout + result.stderr[-2000:]


STARTED_TWICE = textwrap.dedent(
    """
    from photopipe_infra import persistence
    from photopipe_infra.persistence import apply_started_execution

    arn = "arn:aws:states:us-east-1:000000000000:execution:machine:run-1"
    machine = "arn:aws:states:us-east-1:000000000000:stateMachine:machine"
    # the journal of a start that was killed while it ran its interrupted runs again holds each start twice:
    # the original one, and the one that ran it again
    apply_started_execution("000000000000", "us-east-1", arn, machine, "run-1", "{}")
    apply_started_execution("000000000000", "us-east-1", arn, machine, "run-1", "{}")
    print([run.arn for run in persistence._started_after_snapshot] == [arn])
    """
)


def test_a_run_journaled_as_started_twice_is_run_again_once() -> None:
    """Killed while it ran the interrupted runs again, a start left each of them twice in the journal of started
    runs; the next start ran each twice, the second start taking the first one's run out of the store: two runs of
    one media, which ended FAILED (a kill drill in CI, seed 271287)."""
    python = venvs.ensure(venvs.LOCALSTACK).python
    result = subprocess.run(
        [str(python), "-c", STARTED_TWICE], check=False, capture_output=True, text=True, timeout=120
    )  # noqa: S603
    assert result.stdout.split() == ["True"], result.stdout + result.stderr[-3000:]
