"""`photopipe bench`'s pipeline half against the embedded stack: photos reach READY and the CPU they cost is
attributed to the processes that spent it."""

from __future__ import annotations

from pathlib import Path

from photopipe import bench
from photopipe.stack import Stack
from photopipe.upload import ApiClient
from photopipe_infra.launcher import EmbeddedLocalStack


def test_the_pipeline_run_reports_where_the_cpu_went(
    stack: Stack, api: ApiClient, localstack: EmbeddedLocalStack, tmp_path: Path
) -> None:
    corpus = bench.write_corpus(bench.corpus_folder(), 2, seed=1)
    photos = bench.stamped_copies(corpus, tmp_path, "integration")

    report = bench.run_pipeline(stack, api, photos, None, 120.0, localstack.processes)

    assert report["ready"] == 2
    cpu = report["cpu_s_per_photo"]
    # Every 12 MP photo is decoded and encoded three times in a Resize process: tenths of a CPU-second at least.
    assert cpu["ResizeFunction"] > 0.1
    assert cpu["localstack"] > 0 and cpu["ValidateFunction"] > 0 and cpu["FinalizeFunction"] > 0
    assert 0 < report["host_busy"] <= 1
