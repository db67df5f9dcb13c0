"""The soak's report: what it says about lost photos, memory growth and throughput, and its chart."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from photopipe.soak import Sample, chart, summary, tiny_photo


def sample(photos: int, img_s: float, rss: float, statuses: dict[str, int]) -> Sample:
    return Sample(
        photos=photos,
        seconds=100.0,
        img_s=img_s,
        localstack_threads=180,
        localstack_mappings=850,
        localstack_rss_mb=rss,
        localstack_cpu_ms_per_photo=img_s * 100,
        machine_cpu_ms_per_photo=img_s * 250,
        machine_busy=0.9,
        localstack_gc_ms_per_photo=img_s * 5,
        lambda_processes=19,
        lambdas_rss_mb=1270.0,
        lambda_max_rss_mb=90.0,
        statuses=statuses,
    )


def test_summary_counts_lost_photos_and_growth_after_the_first_burst() -> None:
    samples = [
        sample(1000, 2.0, 450.0, {"READY": 1000}),
        sample(2000, 1.9, 470.0, {"READY": 999, "REJECTED": 1}),
        sample(3000, 1.8, 500.0, {"READY": 998, "PROCESSING": 1, "MISSING": 1}),
    ]
    report = summary(samples, sent=3000)
    assert report["terminal"] == 2998 and report["lost"] == 2
    assert report["rss_growth_mb_per_1000_after_first"] == 25.0  # (500 - 450) MB over 2,000 photos
    assert report["throughput_last_vs_first"] == 0.9
    assert report["mappings_first_last"] == [850, 850]
    assert report["localstack_cpu_ms_per_photo_first_last"] == [200.0, 180.0]
    assert report["machine_cpu_ms_per_photo_first_last"] == [500.0, 450.0]


def test_chart_is_a_png_with_both_panels(tmp_path: Path) -> None:
    path = chart([sample(1000, 2.0, 450.0, {}), sample(2000, 2.1, 460.0, {})], tmp_path / "soak.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (900, 560)
        # the throughput line is drawn in its colour somewhere in the top panel
        assert (0x2B, 0x7B, 0xB9) in {image.getpixel((x, y)) for x in range(70, 880) for y in range(40, 260)}


def test_tiny_photos_differ_by_index_and_run() -> None:
    photos = {tiny_photo(n, run) for n in range(20) for run in ("a", "b")}
    assert len(photos) == 40
    with Image.open(io.BytesIO(tiny_photo(0, "a"))) as image:
        assert image.format == "JPEG" and image.size == (96, 64)
