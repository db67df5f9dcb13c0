"""Each format read once, correctly: orientation in every container, BigTIFF, frame-extent bombs, broken streams,
and reasons a person can read."""

from __future__ import annotations

import re
import struct
import time
import tracemalloc
import zlib

import pytest
from PIL import Image

from photopipe_core import errors, imaging
from photopipe_core.imaging import Limits, VariantSpec
from tests import corpus

LIMITS = Limits()
VARIANTS = [VariantSpec("thumb", 256), VariantSpec("medium", 1024)]


def rendered_thumb(data: bytes) -> tuple[Image.Image, imaging.Rendered]:
    info = imaging.inspect(data, LIMITS)
    rendered = imaging.render(data, info, VARIANTS)
    return rendered.variants["thumb"].convert("RGB"), rendered


def upright(thumb: Image.Image) -> bool:
    """The quadrant picture the right way up: red, green / blue, white."""
    w, h = thumb.size
    probes = [(w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4)]
    return all(
        all(abs(a - b) <= 40 for a, b in zip(thumb.getpixel(p), colour, strict=True))  # type: ignore[arg-type]
        for p, colour in zip(probes, corpus.QUADRANTS, strict=True)
    )


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["TIFF", "WEBP", "PNG"])
def test_orientation_is_applied_once_in_every_container(fmt: str, orientation: int) -> None:
    thumb, rendered = rendered_thumb(corpus.oriented(fmt, orientation))
    assert thumb.size == (256, 192)
    assert upright(thumb)
    assert (rendered.facts.width, rendered.facts.height) == (400, 300)


def test_bigtiff_is_accepted_and_read() -> None:
    data = corpus.bigtiff()
    assert data[:4] == b"II+\x00"
    thumb, _ = rendered_thumb(data)
    assert upright(thumb)


@pytest.mark.parametrize("extent", [(65535, 65535), (20000, 20000), (65535, 1000)])
def test_a_gif_frame_larger_than_the_limit_is_refused_from_its_header(extent: tuple[int, int]) -> None:
    bomb = corpus.gif_with_frame_extent(*extent)
    assert len(bomb) < 400
    tracemalloc.start()
    began = time.perf_counter()
    with pytest.raises(errors.TooManyPixels):
        imaging.inspect(bomb, LIMITS)
    seconds = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MB allocated"
    assert seconds < 5  # the bomb decoded takes minutes and gigabytes; refused, it takes milliseconds


def test_a_png_whose_pixel_stream_is_broken_is_corrupt() -> None:
    data = corpus.png_with_broken_zlib()
    with pytest.raises(errors.CorruptImage, match="PNG pixel data"):
        imaging.render(data, imaging.inspect(data, LIMITS), VARIANTS)


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,  # a PNG signature and nothing readable after it
        b"GIF89a" + b"\xff" * 30,
        b"II*\x00" + b"\xff" * 30,
        b"\xff\xd8\xff" + b"\x00" * 30,
    ],
)
def test_reasons_say_what_is_wrong_without_python_internals(data: bytes) -> None:
    with pytest.raises(errors.RejectedInput) as refused:
        info = imaging.inspect(data, LIMITS)
        imaging.render(data, info, VARIANTS)
    detail = str(refused.value)
    assert not re.search(r"0x[0-9a-f]{6,}|<[^>]+ object|takes .* arguments|\(\d+ given\)|Traceback", detail), detail
    assert detail[0].isupper() or detail.startswith("the "), detail


@pytest.mark.parametrize("orientation", range(1, 9))
def test_heic_with_exif_orientation_comes_out_upright(orientation: int) -> None:
    data = corpus.oriented("HEIF", orientation, quality=90)
    assert imaging.sniff(data) == "HEIF"
    thumb, rendered = rendered_thumb(data)
    assert thumb.size == (256, 192) and upright(thumb)
    assert rendered.facts.orientation == orientation
    assert (rendered.facts.width, rendered.facts.height) == (400, 300)


def test_heic_is_accepted_under_its_declared_types() -> None:
    data = corpus.heic(corpus.quadrants())
    for declared in ("image/heic", "image/heif", "application/octet-stream", None):
        assert imaging.inspect(data, LIMITS, declared).content_type == "image/heic"
    with pytest.raises(errors.TypeMismatch):
        imaging.inspect(data, LIMITS, "image/jpeg")


def test_heic_with_a_wide_gamut_profile_is_converted_to_srgb() -> None:
    # Pure red under a profile whose red and green primaries are swapped is sRGB green.
    data = corpus.heic(Image.new("RGB", (64, 48), (255, 0, 0)), icc_profile=corpus.swapped_primaries_icc())
    thumb, _ = rendered_thumb(data)
    red, green, _blue = thumb.getpixel((32, 24))  # type: ignore[misc]
    assert green > 200 and red < 60


def test_heic_over_the_pixel_limit_is_refused_from_its_header() -> None:
    data = corpus.heic(corpus.quadrants(400, 300))
    tracemalloc.start()
    with pytest.raises(errors.TooManyPixels):
        imaging.inspect(data, Limits(max_pixels=100_000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * 2**20  # the header is read, no pixel is decoded


def test_heic_alpha_is_kept() -> None:
    source = Image.new("RGBA", (64, 48), (10, 200, 30, 0))
    source.paste((10, 200, 30, 255), (0, 0, 32, 48))
    thumb = imaging.render(data := corpus.heic(source), imaging.inspect(data, LIMITS), VARIANTS).variants["thumb"]
    assert thumb.mode == "RGBA"
    assert thumb.getpixel((8, 24))[3] > 200 and thumb.getpixel((56, 24))[3] < 50  # type: ignore[index]


def refused_cheaply(data: bytes, error: type[errors.RejectedInput]) -> str:
    """``data`` is refused with ``error`` by Validate and Resize's own reading, quickly and with little memory."""
    tracemalloc.start()
    began = time.perf_counter()
    with pytest.raises(error) as refused:
        imaging.render(data, imaging.inspect(data, LIMITS), VARIANTS)
    seconds = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MB allocated"
    assert seconds < 5
    return str(refused.value)


@pytest.mark.parametrize(
    "chunk",
    [
        corpus.png_chunk(b"zTXt", b"Comment\x00\x00" + corpus.zlib_bomb()),
        corpus.png_chunk(b"iTXt", b"Comment\x00\x01\x00\x00\x00" + corpus.zlib_bomb()),
        corpus.png_chunk(b"iCCP", b"icc\x00\x00" + corpus.zlib_bomb()),
    ],
    ids=["zTXt", "iTXt", "iCCP"],
)
def test_a_png_text_or_profile_chunk_that_inflates_to_hundreds_of_mb_is_refused(chunk: bytes) -> None:
    detail = refused_cheaply(corpus.png_with_chunks([chunk]), errors.CorruptImage)
    assert "inflates to more than 1 MB" in detail and "MAX_TEXT" not in detail


def test_a_png_with_many_text_chunks_is_refused() -> None:
    chunks = [corpus.png_chunk(b"zTXt", b"k%d\x00\x00" % n + zlib.compress(b"a" * 900_000, 9)) for n in range(100)]
    refused_cheaply(corpus.png_with_chunks(chunks), errors.CorruptImage)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_an_animation_past_the_frame_limit_is_refused(fmt: str) -> None:
    refused_cheaply(corpus.animation(fmt, LIMITS.max_frames + 5), errors.TooManyFrames)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_an_animation_within_the_limits_is_its_first_frame(fmt: str) -> None:
    data = corpus.animation(fmt, 3)
    info = imaging.inspect(data, LIMITS)
    assert info.frames == 3
    thumb = imaging.render(data, info, VARIANTS).variants["thumb"].convert("RGB")
    assert abs(thumb.getpixel((8, 8))[0] - 0) <= 8  # type: ignore[index]  # frame 1's red is 0, frame 2's 37


def test_an_apng_that_declares_billions_of_frames_is_refused() -> None:
    data = bytearray(corpus.animation("PNG", 3))
    at = data.index(b"acTL") + 4
    data[at : at + 4] = struct.pack(">I", 2**31 - 1)
    refused_cheaply(bytes(data), errors.RejectedInput)


@pytest.mark.parametrize("canvas", [(16383, 16383), (8000, 7000)])
def test_an_animated_webp_whose_canvas_is_over_the_limit_is_refused_from_its_header(canvas: tuple[int, int]) -> None:
    refused_cheaply(corpus.animated_webp_with_canvas(*canvas), errors.TooManyPixels)


@pytest.mark.parametrize(
    "params",
    [
        {"tiffinfo": {322: 256, 323: 256}},  # tiles of 256 × 256
        {"compression": "tiff_deflate"},
        {"compression": "tiff_lzw"},
        {"save_all": True, "append_images": [Image.new("RGB", (50, 50))] * 3},  # four pages: the first is the photo
    ],
    ids=["tiled", "deflate", "lzw", "four-pages"],
)
def test_tiff_layouts_are_read_as_one_upright_picture(params: dict[str, object]) -> None:
    thumb, rendered = rendered_thumb(corpus.save(corpus.quadrants(), "TIFF", **params))
    assert thumb.size == (256, 192) and upright(thumb)
    assert (rendered.facts.width, rendered.facts.height) == (400, 300)


@pytest.mark.parametrize("mode", ["CMYK", "LAB"])
def test_cmyk_and_lab_tiffs_come_out_in_rgb(mode: str) -> None:
    thumb, _ = rendered_thumb(corpus.save(corpus.quadrants().convert(mode), "TIFF"))
    assert upright(thumb)


def test_an_mpo_or_ultra_hdr_jpeg_is_its_base_image() -> None:
    second = Image.new("RGB", (400, 300), (0, 0, 0))  # a second image (depth map, gain map …) after the base one
    data = corpus.save(corpus.quadrants(), "MPO", save_all=True, append_images=[second])
    assert imaging.sniff(data) == "JPEG"
    thumb, _ = rendered_thumb(data)
    assert upright(thumb)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_avif_orientation_is_applied_once(orientation: int) -> None:
    thumb, rendered = rendered_thumb(corpus.oriented("AVIF", orientation, quality=90))
    assert thumb.size == (256, 192) and upright(thumb)
    assert (rendered.facts.width, rendered.facts.height) == (400, 300)


@pytest.mark.parametrize("primary", [0, 1])
def test_the_primary_image_of_a_multi_image_heic_is_the_one_rendered(primary: int) -> None:
    images = [Image.new("RGB", (400, 300), (0, 0, 0)), Image.new("RGB", (400, 300), (0, 0, 0))]
    images[primary] = corpus.quadrants()
    thumb, _ = rendered_thumb(corpus.heic_images(images, primary))
    assert upright(thumb)


def test_a_10_bit_heic_keeps_its_colours() -> None:
    thumb, _ = rendered_thumb(corpus.heic_16_bit(corpus.quadrants()))
    assert upright(thumb)


@pytest.mark.parametrize(
    "data",
    [
        corpus.gif_with_screen(65535, 65535),
        corpus.jpeg_declaring(65000, 65000),
        corpus.tiff_declaring(60000, 60000),
        corpus.tiff_declaring(60000, 60000, tile=256),
        corpus.tiff_declaring(1 << 31, 2),
    ],
    ids=["gif-screen", "jpeg-sof", "tiff-strip", "tiff-tiles", "tiff-wide"],
)
def test_a_header_that_declares_too_many_pixels_is_refused_before_decoding(data: bytes) -> None:
    assert len(data) < 1000
    refused_cheaply(data, errors.TooManyPixels)


def test_a_tiff_whose_tiles_are_larger_than_the_image_is_refused_cheaply() -> None:
    data = corpus.tiff_declaring(64, 64, tile=65536)  # a 65536 × 65536 tile buffer would be 4 GB
    assert "the file ends before its image data does" in refused_cheaply(data, errors.CorruptImage)


def test_a_png_colour_key_is_transparency_in_the_variants() -> None:
    picture = corpus.quadrants()  # its white quarter is the key: clear in the variants
    thumb = imaging.render(
        data := corpus.save(picture, "PNG", transparency=(255, 255, 255)), imaging.inspect(data, LIMITS), VARIANTS
    )
    variant = thumb.variants["thumb"]
    assert variant.mode == "RGBA"
    assert variant.getpixel((192, 144))[3] == 0 and variant.getpixel((64, 48))[3] == 255  # type: ignore[index]


def test_a_16_bit_png_colour_key_is_transparency_in_the_variants() -> None:
    grey = Image.new("I;16", (64, 48), 40000)
    grey.paste(Image.new("I;16", (32, 48), 300), (32, 0))
    data = corpus.save(grey, "PNG", transparency=300)
    variant = imaging.render(data, imaging.inspect(data, LIMITS), VARIANTS).variants["thumb"]
    assert variant.getpixel((8, 24))[3] == 255 and variant.getpixel((56, 24))[3] == 0  # type: ignore[index]


def test_a_later_frame_that_cannot_be_read_leaves_the_first_one_the_photo() -> None:
    data = bytearray(corpus.animation("PNG", 3))
    second = data.index(b"fcTL", data.index(b"fcTL") + 4) + 4  # the second frame control chunk's sequence number
    data[second : second + 4] = struct.pack(">I", 99)  # out of sequence: Pillow refuses to go past frame 1
    data[second + 26 : second + 30] = struct.pack(">I", zlib.crc32(bytes(data[second - 4 : second + 26])))
    info = imaging.inspect(bytes(data), LIMITS)
    assert info.frames == 1
    imaging.render(bytes(data), info, VARIANTS)


def test_an_mpo_whose_second_picture_is_missing_is_its_first() -> None:
    data = corpus.save(corpus.quadrants(), "MPO", save_all=True, append_images=[Image.new("RGB", (400, 300))])
    cut = data[: data.rindex(b"\xff\xd8")]  # the second picture's bytes are gone; its directory entry is not
    thumb, _ = rendered_thumb(cut)
    assert upright(thumb)


def test_a_still_over_the_pixel_limit_says_how_big_it_is() -> None:
    data = corpus.heic(corpus.quadrants(1000, 800))  # Pillow's own guard refuses it on open, before photopipe's check
    with pytest.raises(errors.TooManyPixels, match=r"^0\.8 MP is over the limit of 0\.1 MP$"):
        imaging.inspect(data, Limits(max_pixels=100_000))


def test_an_unexpected_decoder_fault_is_read_again_not_a_permanent_rejection(monkeypatch: pytest.MonkeyPatch) -> None:
    faults = iter([TypeError("a passing fault")])
    real_open = Image.open

    def open_with_one_fault(*args: object, **kwargs: object) -> Image.Image:
        fault = next(faults, None)
        if fault:
            raise fault
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(imaging.Image, "open", open_with_one_fault)
    data = corpus.save(corpus.quadrants(), "GIF")
    assert imaging.inspect(data, LIMITS).format == "GIF"


def test_a_fault_that_repeats_is_the_files_and_a_rejection(monkeypatch: pytest.MonkeyPatch) -> None:
    def trips(*_: object, **__: object) -> Image.Image:
        raise TypeError("the file makes the plugin trip")

    monkeypatch.setattr(imaging.Image, "open", trips)
    with pytest.raises(errors.CorruptImage, match="the decoder could not read it"):
        imaging.inspect(corpus.save(corpus.quadrants(), "GIF"), LIMITS)


@pytest.mark.parametrize(("fmt", "name"), [("BMP", "a BMP image"), ("ICO", "an ICO icon"), ("JPEG2000", "a JPEG 2000")])
def test_an_image_format_photopipe_does_not_take_is_named_in_the_refusal(fmt: str, name: str) -> None:
    with pytest.raises(errors.UnsupportedType, match=name):
        imaging.inspect(corpus.save(corpus.quadrants(64, 48), fmt), LIMITS)


def test_a_camera_hif_declared_as_avif_is_no_mismatch() -> None:
    data = corpus.heic(corpus.quadrants())
    assert imaging.inspect(data, LIMITS, "image/avif").content_type == "image/heic"  # what `aws s3 cp x.HIF` says
    assert imaging.inspect(corpus.animation("PNG", 2), LIMITS, "image/apng").content_type == "image/png"
