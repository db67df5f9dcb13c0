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
