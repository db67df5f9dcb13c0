from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from PIL import Image

from photopipe import samples
from photopipe_core import errors, imaging
from photopipe_core.imaging import Limits, VariantSpec, WebpSettings
from tests import corpus

VARIANTS = [VariantSpec("thumb", 256), VariantSpec("medium", 1024), VariantSpec("large", 2048)]
LIMITS = Limits()
ROOT = Path(__file__).resolve().parents[2]


def process(data: bytes, declared: str | None = None) -> tuple[imaging.SourceInfo, imaging.Rendered]:
    info = imaging.inspect(data, LIMITS, declared)
    return info, imaging.render(data, info, VARIANTS)


def webp(image: Image.Image) -> bytes:
    return imaging.encode_webp(image, WebpSettings())


def near(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_comes_out_upright(orientation: int) -> None:
    _, rendered = process(corpus.oriented_jpeg(orientation))
    thumb = Image.open(io.BytesIO(webp(rendered.variants["thumb"]))).convert("RGB")
    assert thumb.size == (256, 192)
    w, h = thumb.size
    probes = [(w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4)]
    assert [near(thumb.getpixel(p), c) for p, c in zip(probes, corpus.QUADRANTS, strict=True)] == [True] * 4
    assert rendered.facts.orientation == (orientation if orientation != 1 else 1)
    assert (rendered.facts.width, rendered.facts.height) == (400, 300)


def test_outputs_carry_no_exif_gps_xmp_or_icc() -> None:
    exif = corpus.exif_with(orientation=1, gps=True, camera=True, taken_at="2024:05:06 07:08:09")
    data = corpus.save(corpus.quadrants(), "JPEG", exif=exif, icc_profile=corpus.swapped_primaries_icc())
    _, rendered = process(data)
    for image in rendered.variants.values():
        out = webp(image)
        assert b"EXIF" not in out and b"XMP " not in out and b"ICCP" not in out
        decoded = Image.open(io.BytesIO(out))
        assert len(decoded.getexif()) == 0
        assert "icc_profile" not in decoded.info
    # The facts are kept in metadata instead.
    assert rendered.facts.camera_make == "PhotoCam"
    assert rendered.facts.camera_model == "PC-1"
    assert rendered.facts.taken_at == "2024-05-06T07:08:09"
    assert rendered.facts.gps is not None
    assert rendered.facts.gps.latitude == pytest.approx(52.37, abs=0.01)
    assert rendered.facts.gps.longitude == pytest.approx(-4.8917, abs=0.001)


def test_embedded_icc_profile_is_converted_to_srgb() -> None:
    red = Image.new("RGB", (64, 64), (255, 0, 0))
    tagged = corpus.save(red, "PNG", icc_profile=corpus.swapped_primaries_icc())
    _, rendered = process(tagged)
    r, g, b = rendered.variants["thumb"].convert("RGB").getpixel((10, 10))
    assert g > 200 and r < 60  # the profile says "red" means sRGB green; untouched pixels would stay red
    _, untagged = process(corpus.save(red, "PNG"))
    assert near(untagged.variants["thumb"].getpixel((10, 10)), (255, 0, 0), 5)


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (300, 200), (0, 255, 255, 0))  # full magenta + yellow = red
    _, rendered = process(corpus.save(cmyk, "JPEG"))
    image = rendered.variants["thumb"]
    assert image.mode == "RGB"
    assert near(image.getpixel((50, 50)), (255, 0, 0), 60)


def test_16_bit_greyscale_is_scaled_not_clipped() -> None:
    grey = Image.new("I;16", (200, 100), 65535)
    grey.paste(Image.new("I;16", (100, 100), 32768), (100, 0))
    _, rendered = process(corpus.save(grey, "PNG"))
    image = rendered.variants["thumb"].convert("L")
    assert image.getpixel((20, 50)) == 255
    assert abs(image.getpixel((180, 50)) - 128) <= 2


def test_palette_transparency_becomes_alpha() -> None:
    palette = Image.new("P", (100, 100), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (50, 0, 100, 100))
    data = corpus.save(palette, "PNG", transparency=0)
    _, rendered = process(data)
    out = Image.open(io.BytesIO(webp(rendered.variants["thumb"])))
    assert out.mode == "RGBA"
    assert out.getpixel((10, 50))[3] == 0  # transparent half stays transparent
    assert near(out.getpixel((90, 50)), (0, 0, 255, 255), 10)


def test_rgba_png_keeps_alpha_through_webp() -> None:
    image = Image.new("RGBA", (3000, 2000), (0, 128, 0, 255))
    image.paste((0, 0, 0, 0), (0, 0, 1500, 2000))
    _, rendered = process(corpus.save(image, "PNG"))
    out = Image.open(io.BytesIO(webp(rendered.variants["large"])))
    assert out.size == (2048, 1365)
    assert out.getpixel((100, 100))[3] == 0
    assert out.getpixel((2000, 100))[3] == 255


def test_greyscale_jpeg() -> None:
    _, rendered = process(corpus.save(Image.new("L", (500, 400), 90), "JPEG"))
    assert rendered.variants["thumb"].size == (256, 205)
    assert abs(rendered.variants["thumb"].convert("L").getpixel((5, 5)) - 90) <= 3


def test_one_by_one_is_not_upscaled() -> None:
    info, rendered = process(corpus.save(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"))
    assert (info.width, info.height) == (1, 1)
    assert {name: image.size for name, image in rendered.variants.items()} == {
        "thumb": (1, 1),
        "medium": (1, 1),
        "large": (1, 1),
    }


def test_panorama_keeps_its_aspect_on_the_long_edge() -> None:
    _, rendered = process(corpus.save(Image.new("RGB", (6000, 500), (1, 2, 3)), "JPEG"))
    assert {name: image.size for name, image in rendered.variants.items()} == {
        "large": (2048, 171),
        "medium": (1024, 85),
        "thumb": (256, 21),
    }


def test_small_source_is_never_upscaled() -> None:
    _, rendered = process(corpus.save(Image.new("RGB", (800, 600)), "JPEG"))
    assert rendered.variants["large"].size == (800, 600)
    assert rendered.variants["medium"].size == (800, 600)
    assert rendered.variants["thumb"].size == (256, 192)


@pytest.mark.parametrize(("width", "height"), [(12000, 6000), (20000, 20000)])
def test_pixel_bombs_are_rejected_before_decoding(width: int, height: int) -> None:
    bomb = corpus.png_bomb(width, height)
    assert len(bomb) < 1_000_000
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(errors.TooManyPixels, match="MP"):
        imaging.inspect(bomb, LIMITS)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5_000_000  # bytes: the pixels (72 MP / 400 MP) were never allocated
    assert elapsed < 1.0


def test_too_large_is_rejected_by_size_alone() -> None:
    with pytest.raises(errors.TooLarge):
        imaging.inspect(b"\xff\xd8\xff" + b"\0" * 2000, Limits(max_bytes=1000))


def test_too_many_frames() -> None:
    frames = [Image.new("RGB", (10, 10), (50 * i, 0, 255 - 50 * i)) for i in range(5)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(errors.TooManyFrames):
        imaging.inspect(gif.getvalue(), Limits(max_frames=3))
    info = imaging.inspect(gif.getvalue(), LIMITS)
    assert info.frames == 5


def test_the_beginning_of_a_file_settles_only_a_single_frame_jpeg() -> None:
    """Validate reads only the start of a big upload whose SHA-256 S3 verified, and trusts that reading only for
    a JPEG: other formats may have frames further on."""
    jpeg = corpus.save(corpus.quadrants(1200, 900), "JPEG", quality=90)
    start = imaging.inspect(jpeg[:4096], LIMITS, size=len(jpeg), sha256="ab" * 32)
    assert (start.width, start.height, start.bytes, start.sha256, start.frames) == (1200, 900, len(jpeg), "ab" * 32, 1)
    assert imaging.header_suffices(start)
    with pytest.raises(errors.TooLarge):  # the whole file's size is what the limit is about
        imaging.inspect(jpeg[:4096], Limits(max_bytes=len(jpeg) - 1), size=len(jpeg), sha256="ab" * 32)

    frames = [Image.new("RGB", (10, 10), (50 * i, 0, 255 - 50 * i)) for i in range(2)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    png = corpus.save(corpus.quadrants(64, 48), "PNG")
    assert not imaging.header_suffices(imaging.inspect(gif.getvalue(), LIMITS))
    assert not imaging.header_suffices(imaging.inspect(png, LIMITS))


def test_animated_gif_uses_its_first_frame() -> None:
    first, second = Image.new("RGB", (40, 40), (255, 0, 0)), Image.new("RGB", (40, 40), (0, 0, 255))
    gif = io.BytesIO()
    first.save(gif, "GIF", save_all=True, append_images=[second])
    _, rendered = process(gif.getvalue())
    assert near(rendered.variants["thumb"].convert("RGB").getpixel((20, 20)), (255, 0, 0), 10)


def test_truncated_jpeg_is_corrupt() -> None:
    data = corpus.save(corpus.quadrants(1200, 900), "JPEG", quality=90)
    truncated = data[: len(data) // 2]
    info = imaging.inspect(truncated, LIMITS)  # the header is fine ...
    with pytest.raises(errors.CorruptImage):
        imaging.render(truncated, info, VARIANTS)  # ... the pixels are not


def test_garbage_after_a_valid_magic_is_corrupt() -> None:
    with pytest.raises(errors.CorruptImage):
        imaging.inspect(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, LIMITS)


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"", errors.EmptyInput, "empty"),
        (b"hello, this is plain text\n", errors.UnsupportedType, "unrecognised"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", errors.UnsupportedType, "HTML"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', errors.UnsupportedType, "SVG"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", errors.UnsupportedType, "PDF"),
        (b"#!/bin/sh\nrm -rf /\n", errors.UnsupportedType, "script"),
    ],
)
def test_non_images_are_refused_with_a_reason(data: bytes, error: type[errors.RejectedInput], words: str) -> None:
    with pytest.raises(error, match=words) as raised:
        imaging.inspect(data, LIMITS)
    assert raised.value.reason in errors.REASON_CODES


def test_declared_type_that_names_another_image_type_is_a_mismatch() -> None:
    data = corpus.save(Image.new("RGB", (10, 10)), "PNG")
    with pytest.raises(errors.TypeMismatch, match="image/jpeg"):
        imaging.inspect(data, LIMITS, "image/jpeg")
    assert imaging.inspect(data, LIMITS, "application/octet-stream").content_type == "image/png"
    assert imaging.inspect(data, LIMITS, "image/png; charset=binary").declared_type == "image/png"


def test_jpeg_with_a_payload_appended_comes_out_clean() -> None:
    payload = b"<?php system($_GET['c']); ?>" * 20
    data = corpus.save(corpus.quadrants(), "JPEG") + payload
    _, rendered = process(data)
    for image in rendered.variants.values():
        out = webp(image)
        assert payload[:20] not in out
        assert Image.open(io.BytesIO(out)).format == "WEBP"


def test_hashes_are_stable_across_re_encodes() -> None:
    picture = samples.photo(1600, 1200, seed=3)
    high = corpus.save(picture, "JPEG", quality=95)
    low = corpus.save(picture, "JPEG", quality=60)
    as_png = corpus.save(picture, "PNG")
    hashes = [process(data)[1].phash for data in (high, low, as_png)]
    assert max(imaging.hamming(hashes[0], other) for other in hashes[1:]) <= 4
    assert imaging.sha256_hex(high) != imaging.sha256_hex(low)
    other = samples.photo(1600, 1200, seed=4)
    assert imaging.hamming(hashes[0], process(corpus.save(other, "JPEG"))[1].phash) > 16


def test_webp_encode_uses_the_settings() -> None:
    image = samples.photo(1024, 768, seed=5)
    small = imaging.encode_webp(image, WebpSettings(quality=20, method=4))
    large = imaging.encode_webp(image, WebpSettings(quality=95, method=4))
    assert len(small) < len(large)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "TIFF"])
def test_damaged_files_only_ever_end_as_rejections(fmt: str) -> None:
    """Random byte damage (seeded) to a valid file: the outcome is an image or a RejectedInput, nothing else."""
    rng = random.Random(fmt)
    original = corpus.save(samples.photo(120, 90, seed=9).convert("RGB"), fmt)
    outcomes = {"ok": 0, "rejected": 0}
    for _ in range(60):
        damaged = bytearray(original)
        for _ in range(rng.randint(1, 12)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        if rng.random() < 0.3:
            damaged = damaged[: rng.randrange(1, len(damaged))]
        try:
            info = imaging.inspect(bytes(damaged), LIMITS)
            rendered = imaging.render(bytes(damaged), info, VARIANTS)
            webp(rendered.variants["thumb"])
            outcomes["ok"] += 1
        except errors.RejectedInput as rejection:
            assert rejection.reason in errors.REASON_CODES
            outcomes["rejected"] += 1
    assert outcomes["rejected"] > 0  # the damage did reach the rejection paths, not only harmless bytes


RENDER_TWICE = """
import resource
from photopipe import samples
from photopipe_core import imaging
from tests.unit.test_imaging import LIMITS, VARIANTS, webp
data = samples.jpeg_bytes(samples.photo(4000, 3000, seed=5))
info = imaging.inspect(data, LIMITS, "image/jpeg")
for _ in range(2):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for image in imaging.render(data, info, VARIANTS).variants.values():
        webp(image)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_a_render_process_reuses_the_memory_of_the_photo_before() -> None:
    """With RENDER_PROCESS_ENV (the Resize function's environment), rendering a second 12 MP photo maps no new
    memory: the decoded image's blocks and the encoder's buffers of the first are reused, not faulted in again."""
    env = {**os.environ, **imaging.RENDER_PROCESS_ENV}
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", RENDER_TWICE], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    # 0 measured; without the setting 3 600 here (this script's photo making already raised glibc's own
    # mapping threshold) and ~20 000 per photo in a Resize process.
    assert int(done.stdout) < 1_000


@pytest.mark.parametrize(
    ("offset_tag", "gps_time", "expected"),
    [
        ("+05:30", None, "+05:30"),  # OffsetTimeOriginal, as phones write it
        (None, ("2023:01:01", (20.0, 4.0, 5.0)), "+07:00"),  # local 03:04 on the 2nd; GPS says 20:04 UTC the 1st
        (None, ("2023:01:02", (8.0, 33.0, 50.0)), "-05:30"),  # to the quarter hour (-5:29:45)
        ("+99:00", None, None),  # not an offset
        (None, ("2023:01:05", (3.0, 4.0, 5.0)), None),  # three days apart: not a clock offset
        (None, None, None),  # the camera's local time, unplaced
    ],
)
def test_the_offset_of_the_time_taken_comes_from_exif_or_else_from_the_gps_clock(
    offset_tag: str | None, gps_time: tuple[str, tuple[float, float, float]] | None, expected: str | None
) -> None:
    exif = corpus.exif_with(taken_at="2023:01:02 03:04:05")
    if offset_tag:
        exif.get_ifd(0x8769)[0x9011] = offset_tag
    if gps_time:
        exif[0x8825] = {1: "N", 2: (52.0, 22.0, 12.0), 3: "W", 4: (4.0, 53.0, 30.0), 7: gps_time[1], 29: gps_time[0]}
    data = corpus.save(Image.new("RGB", (64, 48), (90, 120, 150)), "JPEG", exif=exif)
    with Image.open(io.BytesIO(data)) as image:
        facts = imaging.photo_facts(image)
    assert (facts.taken_at, facts.taken_offset) == ("2023-01-02T03:04:05", expected)
