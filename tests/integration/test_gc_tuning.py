"""The embedded runtime's Python collects cyclic garbage less often, and says how long collecting took
(photopipe_infra.gc_tuning): at CPython's default thresholds the objects of requests in flight were promoted and
made full collections of the whole library come ever more often as it grew."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests


def test_the_runtime_collects_its_young_garbage_every_hundred_thousand_allocations_and_times_it(
    endpoint: str, aws_client: Callable[[str], Any]
) -> None:
    def clock() -> dict[str, Any]:
        answer = requests.get(f"{endpoint}/_photopipe/gc", timeout=10)
        assert answer.status_code == 200
        return dict(answer.json())

    before = clock()
    assert before["threshold"] == [100_000, 20, 10]
    sqs = aws_client("sqs")
    for _ in range(300):  # each request allocates thousands of objects in the runtime
        sqs.list_queues()
    after = clock()
    assert after["collections"][0] > before["collections"][0]
    assert after["seconds"][0] >= before["seconds"][0]
