"""The file the embedded LocalStack's state is kept in: a header, then the state; refused whole when it is not ours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from photopipe_infra import venvs
from photopipe_infra.launcher import EmbeddedLocalStack, LauncherError
from photopipe_infra.snapshot import (
    STATE_FILE,
    STOPPED_CLEANLY_FILE,
    SnapshotError,
    read_header,
    read_payload,
    stopped_without_saving,
    write_snapshot,
)
from photopipe_infra.venvs import LOCALSTACK_VERSION


def test_what_is_written_is_read_back_with_its_header(tmp_path: Path) -> None:
    header = write_snapshot(tmp_path, b"the state", "4.14.0")

    assert read_payload(tmp_path, "4.14.0") == b"the state"
    assert read_header(tmp_path) == header
    assert header["bytes"] == 9 and header["format"] == 1 and header["localstack"] == "4.14.0"
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]  # no temporary file left beside it


def test_no_snapshot_reads_as_none(tmp_path: Path) -> None:
    assert read_header(tmp_path) is None
    assert read_payload(tmp_path, "4.14.0") is None


def test_a_snapshot_of_another_localstack_is_refused_and_says_how_to_start_over(tmp_path: Path) -> None:
    write_snapshot(tmp_path, b"state", "4.13.0")

    with pytest.raises(SnapshotError, match=r"LocalStack 4\.13\.0.*`photopipe up --fresh`"):
        read_payload(tmp_path, "4.14.0")


def test_a_damaged_snapshot_is_refused(tmp_path: Path) -> None:
    write_snapshot(tmp_path, b"the whole state", "4.14.0")
    path = tmp_path / STATE_FILE
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one bit of the state flipped
    path.write_bytes(bytes(data))

    with pytest.raises(SnapshotError, match="damaged"):
        read_payload(tmp_path, "4.14.0")


def test_a_file_that_is_not_a_snapshot_is_refused(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_bytes(b"\x80\x05 a pickle with no header")

    with pytest.raises(SnapshotError, match="not a photopipe snapshot"):
        read_header(tmp_path)


def test_a_state_left_by_a_killed_localstack_is_told_apart_from_a_clean_stop(tmp_path: Path) -> None:
    assert not stopped_without_saving(tmp_path)  # nothing kept: a first start
    write_snapshot(tmp_path, b"state", "4.14.0")
    assert stopped_without_saving(tmp_path)
    (tmp_path / STOPPED_CLEANLY_FILE).touch()
    assert not stopped_without_saving(tmp_path)


def test_the_launcher_refuses_a_state_of_another_version_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_start(*_args: object) -> None:
        raise AssertionError("the launcher went on to start LocalStack")

    monkeypatch.setattr(venvs, "ensure", no_start)
    instance = EmbeddedLocalStack(port=4597, folder=tmp_path, persist=True)
    write_snapshot(instance.saved_dir, b"state", "3.0.0")

    with pytest.raises(
        LauncherError, match=r"LocalStack 3\.0\.0; this one is format 1, LocalStack " + LOCALSTACK_VERSION
    ):
        instance.start()

    assert not instance.pid_file.exists()
    assert json.loads((instance.saved_dir / STATE_FILE).read_bytes().split(b"\n")[0])["localstack"] == "3.0.0"


def test_fresh_sets_the_saved_state_aside_and_keeps_it(tmp_path: Path) -> None:
    instance = EmbeddedLocalStack(port=4597, folder=tmp_path, persist=True)
    write_snapshot(instance.saved_dir, b"state", "4.14.0")

    aside = instance.set_saved_state_aside()

    assert aside is not None and (aside / STATE_FILE).exists()
    assert not instance.saved_dir.exists()
    assert instance.set_saved_state_aside() is None


def test_without_persistence_localstack_is_given_no_folder_to_keep_state_in(tmp_path: Path) -> None:
    assert "PHOTOPIPE_SNAPSHOT_DIR" not in EmbeddedLocalStack(folder=tmp_path, persist=False).environment()
    kept = EmbeddedLocalStack(folder=tmp_path, persist=True).environment()
    assert kept["PHOTOPIPE_SNAPSHOT_DIR"] == str(tmp_path / "saved")
