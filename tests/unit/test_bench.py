"""The benchmark's own helpers (the measurements themselves are not tests)."""

from __future__ import annotations

import hashlib
import io
from collections import namedtuple
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageFilter

from photopipe import bench, samples


def test_a_stamped_jpeg_has_new_bytes_and_the_same_pixels() -> None:
    original = samples.jpeg_bytes(samples.photo(320, 240, seed=3))
    stamped = bench.stamped(original, "run-1")
    assert hashlib.sha256(stamped).digest() != hashlib.sha256(original).digest()
    before, after = Image.open(io.BytesIO(original)), Image.open(io.BytesIO(stamped))
    assert ImageChops.difference(before.convert("RGB"), after.convert("RGB")).getbbox() is None


def test_ssim_is_one_for_the_same_image_and_lower_for_a_blurred_one() -> None:
    image = samples.photo(128, 96, seed=4).convert("L")
    assert bench._ssim(image, image) == 1.0
    assert bench._ssim(image, image.filter(ImageFilter.GaussianBlur(3))) < 0.95


def test_the_chart_has_a_bar_per_measure(tmp_path: Path) -> None:
    report = {"kernel": {"photopipe_img_s": 1.8, "naive_pillow_img_s": 1.3, "pyvips_img_s": None, "floor_img_s": 2.4}}
    chart = bench.chart({**report, "pipeline": {"img_s": 1.1}}, tmp_path / "chart.png")
    image = Image.open(chart)
    assert image.format == "PNG" and image.height == 60 + 34 * 4


@pytest.mark.parametrize("kernel", ["photopipe", "naive_pillow", "pyvips"])
def test_every_kernel_row_writes_the_same_three_upright_variants(kernel: str) -> None:
    if kernel == "pyvips" and not bench.pyvips_available():
        pytest.skip("pyvips is not installed (the optional `vips` extra)")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: every row must turn it upright
    photo = samples.jpeg_bytes(samples.photo(3000, 2250, seed=8).transpose(Image.Transpose.ROTATE_90), exif=exif)
    outputs = [Image.open(io.BytesIO(body)) for body in bench.KERNELS[kernel](bench.BenchPhoto.of(photo))]
    assert [(image.format, image.size) for image in outputs] == [
        ("WEBP", (2048, 1536)),
        ("WEBP", (1024, 768)),
        ("WEBP", (256, 192)),
    ]


def test_cpu_per_photo_adds_up_each_role_across_its_processes() -> None:
    before = {1: ("client", 10.0), 2: ("localstack", 100.0), 3: ("ResizeFunction", 50.0), 4: ("ApiFunction", 5.0)}
    after = {
        1: ("client", 11.0),
        2: ("localstack", 120.0),
        3: ("ResizeFunction", 80.0),
        5: ("ResizeFunction", 20.0),  # started during the run: all of its time counts
        # 4 ended during the run: what it spent is not known, nothing counts
    }
    spent = bench.cpu_per_photo(before, after, photos=100, cores=2)
    assert spent == {
        "ResizeFunction": 0.5,
        "localstack": 0.2,
        "client": 0.01,
        "total": 0.71,
        "cpu_bound_img_s": round(2 / 0.71, 3),
    }
    assert list(spent)[:3] == ["ResizeFunction", "localstack", "client"]  # biggest first


def test_host_busy_is_the_share_of_time_not_idle() -> None:
    times = namedtuple("times", "user system idle iowait")
    assert bench.host_busy(times(0, 0, 0, 0), times(60.0, 10.0, 25.0, 5.0)) == 0.7
    with_guest = namedtuple("with_guest", "user system idle iowait guest")
    # guest time is counted inside user time already (Linux /proc/stat)
    assert bench.host_busy(with_guest(0, 0, 0, 0, 0), with_guest(60.0, 10.0, 25.0, 5.0, 20.0)) == 0.7


def test_a_kernel_row_keeps_its_fastest_round_and_its_highest_memory() -> None:
    rounds = [
        {"img_s": 2.0, "peak_rss_mb": 180.0},
        {"img_s": 2.2, "peak_rss_mb": 170.0},
        {"img_s": 1.9, "peak_rss_mb": 190.0},
    ]
    best = None
    for row in rounds:
        best = bench.best_round(best, row)
    assert best == {"img_s": 2.2, "peak_rss_mb": 190.0}
