"""`photopipe upload` against the deployed stack: a folder of photos, JSON lines, re-runs that skip, the drop folder."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from photopipe import samples
from photopipe.cli import main
from photopipe.stack import Stack


def photo_folder(root: Path, count: int, seed: int) -> Path:
    folder = root / "photos"
    (folder / "nested").mkdir(parents=True)
    for index in range(count):
        target = folder / ("nested" if index % 3 == 0 else ".") / f"p{index:02d}.jpg"
        target.write_bytes(samples.jpeg_bytes(samples.photo(640, 480, seed=seed + index)))
    (folder / "readme.txt").write_text("not a photo\n")
    return folder


def run(stack: Stack, *args: str) -> tuple[int, list[dict[str, object]]]:
    result = CliRunner().invoke(main, ["--endpoint-url", stack.settings.endpoint_url, "upload", *args, "--json"])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, lines


def test_folder_upload_waits_prints_json_lines_and_a_rerun_skips(stack: Stack, tmp_path: Path) -> None:
    folder = photo_folder(tmp_path, 20, seed=900)

    code, lines = run(stack, str(folder), "--wait")

    assert code == 0
    assert len(lines) == 21
    by_name = {Path(str(line["path"])).name: line for line in lines}
    assert by_name["readme.txt"]["status"] == "REJECTED" and by_name["readme.txt"]["reason"] == "unsupported_type"
    photos = [line for name, line in by_name.items() if name.endswith(".jpg")]
    assert {line["status"] for line in photos} == {"READY"}
    assert all(set(line["variants"]) == {"thumb", "medium", "large"} for line in photos)  # type: ignore[arg-type]
    first_ids = {line["path"]: line["media_id"] for line in photos}

    code, again = run(stack, str(folder))

    assert code == 0
    assert {line["path"]: line["media_id"] for line in again if line["status"] == "READY"} == first_ids


def test_via_drop(stack: Stack, tmp_path: Path) -> None:
    folder = photo_folder(tmp_path, 3, seed=950)
    code, lines = run(stack, str(folder), "--via", "drop", "--wait")
    assert code == 0
    assert sorted(str(line["status"]) for line in lines) == ["READY", "READY", "READY", "REJECTED"]
