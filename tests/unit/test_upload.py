"""The upload client's own pieces: retries and streamed byte ranges (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from photopipe import upload


def answer(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    return response


def test_connection_errors_and_5xx_are_retried_and_other_statuses_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload.time, "sleep", lambda _: None)
    outcomes: list[object] = [requests.ConnectionError("reset"), answer(503), answer(403), answer(200)]

    def call() -> requests.Response:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        assert isinstance(outcome, requests.Response)
        return outcome

    assert upload.retried(call).status_code == 403  # a refusal is an answer, not a fault
    assert len(outcomes) == 1  # stopped at the refusal; the 200 after it was never asked for


def test_the_last_fault_stands_after_every_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload.time, "sleep", lambda _: None)
    calls = []

    def call() -> requests.Response:
        calls.append(1)
        raise requests.Timeout("slow")

    with pytest.raises(requests.Timeout):
        upload.retried(call)
    assert len(calls) == upload.ATTEMPTS


def test_a_file_slice_reads_its_range_and_reports_what_it_read(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 4)
    reported: list[int] = []
    piece = upload.FileSlice(path, 100, 300, reported.append)
    chunks = []
    while chunk := piece.read(128):
        chunks.append(chunk)
    piece.close()
    assert b"".join(chunks) == (bytes(range(256)) * 4)[100:400]
    assert len(piece) == 300 and sum(reported) == 300 == piece.sent
