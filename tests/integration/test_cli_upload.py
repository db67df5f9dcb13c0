"""`photopipe upload` against the deployed stack: a folder of photos, JSON lines, re-runs that skip, the drop folder."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests
from click.testing import CliRunner

from photopipe import samples
from photopipe.cli import main
from photopipe.stack import Stack
from photopipe.upload import ApiClient, Uploader, inspect_file
from tests import corpus


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


def test_a_multipart_upload_interrupted_after_one_part_resumes_where_it_stopped(
    stack: Stack, tmp_path: Path, operator_key: str
) -> None:
    path = tmp_path / "large.png"
    path.write_bytes(corpus.big_png(2800, 2600, seed=61))
    local = inspect_file(path)
    api = ApiClient(stack.outputs.ApiUrl, operator_key)
    body = {"filename": path.name, "content_type": local.content_type, "size": local.size, "sha256": local.sha256}
    # What an earlier run did before it was killed: created the upload (same Idempotency-Key) and sent part 1.
    grant = api.request("POST", "/v1/uploads", json=body, headers={"Idempotency-Key": local.idempotency_key}).json()
    first = grant["upload"]["parts"][0]
    with path.open("rb") as handle:
        assert requests.put(first["url"], data=handle.read(first["size"]), headers=first["headers"]).status_code == 200

    session = CountingSession()
    results = Uploader(ApiClient(stack.outputs.ApiUrl, operator_key, session), wait=True, wait_timeout=180).run([path])

    assert [(r.media_id, r.status) for r in results] == [(grant["media_id"], "READY")]
    assert session.puts == len(grant["upload"]["parts"]) - 1  # only the parts S3 did not hold


def test_a_run_killed_mid_upload_then_run_again_processes_every_photo_once(stack: Stack, tmp_path: Path) -> None:
    folder = tmp_path / "roll"
    folder.mkdir()
    for index in range(24):
        (folder / f"r{index:02d}.jpg").write_bytes(samples.jpeg_bytes(samples.photo(1600, 1200, seed=700 + index)))
    cli = str(Path(sys.executable).with_name("photopipe"))  # the installed console script
    command = [cli, "--endpoint-url", stack.settings.endpoint_url, "upload"]
    errors = tmp_path / "first-run.stderr"
    with errors.open("wb") as stderr:
        first = subprocess.Popen(  # noqa: S603 - our own CLI
            [*command, str(folder), "--concurrency", "2", "--json"], stdout=subprocess.PIPE, stderr=stderr
        )
    try:
        assert first.stdout is not None
        lines = [first.stdout.readline() for _ in range(4)]  # four files are through; others are not
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(timeout=30)
    # A run that ended before four files were through says why on its stderr.
    assert all(lines), errors.read_text()[-3000:]
    early = [json.loads(line) for line in lines]
    assert all(line["status"] == "PROCESSING" for line in early)

    rerun = subprocess.run(  # noqa: S603
        [*command, str(folder), "--wait", "--json"], capture_output=True, text=True, timeout=600, check=False
    )

    lines = [json.loads(line) for line in rerun.stdout.splitlines()]
    assert rerun.returncode == 0, [line for line in lines if line["status"] != "READY"] or rerun.stderr[-2000:]
    assert len(lines) == 24 and {line["status"] for line in lines} == {"READY"}
    by_path = {line["path"]: line["media_id"] for line in lines}
    assert len(set(by_path.values())) == 24
    assert all(by_path[line["path"]] == line["media_id"] for line in early)  # no second media for sent files
    sfn = stack.client("stepfunctions")
    names = [
        execution["name"]
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=stack.outputs.PipelineStateMachineArn)
        for execution in page["executions"]
    ]
    for media_id in by_path.values():
        assert [n for n in names if n.startswith(media_id)] == [media_id]  # one run each, no repeats


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.puts = 0

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if method == "PUT":
            self.puts += 1
        return super().request(method, url, *args, **kwargs)
