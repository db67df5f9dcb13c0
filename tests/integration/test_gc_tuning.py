"""The embedded runtime's Python collects cyclic garbage less often, and says how long collecting took
(photopipe_infra.gc_tuning): at CPython's default thresholds the objects of requests in flight were promoted and
made full collections of the whole library come ever more often as it grew."""

from __future__ import annotations

import json
import subprocess
import textwrap

import requests

from photopipe_infra import venvs

CLOCK_SCRIPT = textwrap.dedent(
    """
    import gc, json
    from photopipe_infra.gc_tuning import CollectionClock

    clock = CollectionClock()
    gc.callbacks.append(clock)
    garbage = [[] for _ in range(10_000)]
    for a, b in zip(garbage, garbage[1:]):
        a.append(b), b.append(a)  # cycles: only the collector frees them
    del garbage, a, b
    gc.collect(0)
    gc.collect(2)
    print(json.dumps(clock.as_dict()))
    """
)


def test_the_runtime_collects_its_young_garbage_every_hundred_thousand_allocations(endpoint: str) -> None:
    answer = requests.get(f"{endpoint}/_photopipe/gc", timeout=10)
    assert answer.status_code == 200
    clock = answer.json()
    assert clock["threshold"] == [100_000, 20, 10]
    assert len(clock["collections"]) == len(clock["seconds"]) == 3


def test_the_clock_counts_and_times_each_generations_collections() -> None:
    python = venvs.ensure(venvs.LOCALSTACK).python
    result = subprocess.run([str(python), "-c", CLOCK_SCRIPT], capture_output=True, text=True, timeout=120, check=True)  # noqa: S603
    clock = json.loads(result.stdout.strip().splitlines()[-1])
    assert clock["collections"][0] >= 1
    assert clock["collections"][2] >= 1
    assert clock["seconds"][2] > 0
