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


def told_to_wait(status: int, retry_after: str) -> requests.Response:
    response = answer(status)
    response.headers["Retry-After"] = retry_after
    return response


def test_a_429_is_waited_for_as_long_as_it_asks_without_using_up_the_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(upload.time, "sleep", slept.append)
    # more 429s than there are attempts, each asking for 10 s: all waited for, then the answer
    outcomes = [told_to_wait(429, "10") for _ in range(upload.ATTEMPTS + 2)] + [answer(201)]
    assert upload.retried(lambda: outcomes.pop(0)).status_code == 201
    assert len(slept) == upload.ATTEMPTS + 2 and all(10 <= pause <= 11 for pause in slept)


def test_a_429_that_asks_for_longer_than_is_worth_waiting_is_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(upload.time, "sleep", slept.append)
    over_quota = told_to_wait(429, "40000")  # a daily quota: until midnight
    assert upload.retried(lambda: over_quota) is over_quota
    assert slept == []


def test_waiting_as_asked_stops_at_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(upload.time, "sleep", slept.append)
    busy = told_to_wait(429, "100")
    assert upload.retried(lambda: busy) is busy
    assert upload.RETRY_AFTER_BUDGET - 101 * 1 <= sum(slept) <= upload.RETRY_AFTER_BUDGET


def test_retry_after_as_an_http_date() -> None:
    response = told_to_wait(503, "Wed, 21 Oct 2015 07:28:00 GMT")  # in the past: no wait
    assert upload.retry_after(response) == 0.0
    assert upload.retry_after(told_to_wait(429, "7")) == 7.0
    assert upload.retry_after(answer(429)) is None


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


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class StatusApi(upload.ApiClient):
    """Media ``m000``… finish one after another, ``per_second`` of them a second from ``first_at`` on."""

    def __init__(self, clock: FakeClock, count: int, first_at: float, per_second: float) -> None:
        super().__init__("http://api.invalid", "a-key")
        self.clock = clock
        self.done_at = {f"m{index:03d}": first_at + index / per_second for index in range(count)}
        self.questions = 0

    def request(self, method: str, path_or_url: str, **kwargs: object) -> requests.Response:
        self.questions += 1
        media_id = path_or_url.rsplit("/", 1)[-1]
        status = "READY" if self.clock.now >= self.done_at[media_id] else "PROCESSING"
        response = answer(200)
        response._content = f'{{"media_id": "{media_id}", "status": "{status}"}}'.encode()
        return response


@pytest.mark.parametrize("first_at", [3.0, -60.0])  # -60: 120 of them were finished before the waiting began
def test_waiting_for_a_batch_asks_about_once_per_photo(monkeypatch: pytest.MonkeyPatch, first_at: float) -> None:
    clock = FakeClock()
    monkeypatch.setattr(upload.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(upload.time, "sleep", clock.sleep)
    api = StatusApi(clock, count=500, first_at=first_at, per_second=2.0)
    found = api.wait_for(list(api.done_at), timeout=600)
    assert all(media is not None and media["status"] == "READY" for media in found.values())
    assert clock.now <= api.done_at["m499"] + 2.5  # the last one is noticed soon after it finishes
    assert api.questions <= 1.5 * 500  # one per photo, plus one per round of a few photos


def test_waiting_for_one_photo_notices_it_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(upload.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(upload.time, "sleep", clock.sleep)
    api = StatusApi(clock, count=1, first_at=0.9, per_second=1.0)
    found = api.wait_for(["m000"], timeout=60)
    assert found["m000"] is not None and found["m000"]["status"] == "READY"
    assert clock.now < 1.6
    assert api.questions <= 4


def test_a_stuck_photo_times_out_alone_and_a_long_batch_keeps_waiting_while_photos_finish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given 100 photos finishing 2 a second (50 s in all, longer than the timeout) and the first one stuck for good
    clock = FakeClock()
    monkeypatch.setattr(upload.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(upload.time, "sleep", clock.sleep)
    api = StatusApi(clock, count=100, first_at=1.0, per_second=2.0)
    api.done_at["m000"] = float("inf")
    # When waiting with a 30 s timeout
    found = api.wait_for(list(api.done_at), timeout=30)
    # Then every other photo is found READY, soon after it finished, and only the stuck one is not final
    assert [m for m, media in found.items() if media is None or media["status"] != "READY"] == ["m000"]
    # it gave up on the stuck one 30 s after the last finish (one round late at most)
    assert clock.now <= api.done_at["m099"] + 30 + 5
    assert api.questions <= 2 * 100
