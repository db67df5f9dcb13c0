"""The benchmark's own helpers (the measurements themselves are not tests)."""

from __future__ import annotations

import hashlib
import io
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
