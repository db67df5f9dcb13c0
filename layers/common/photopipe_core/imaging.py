"""The imaging core: pure functions over bytes and Pillow images (no AWS anywhere).

- ``inspect`` decides the type by content and enforces the limits from the header alone, before any decode,
  so a decompression bomb costs a few kilobytes of reading.
- ``render`` decodes once (JPEG ``draft()`` to the largest size needed), resizes the largest variant from the
  source and each smaller one from the previous (a cascade), then applies EXIF orientation and converts to sRGB
  on the already reduced image. Animated inputs contribute their first frame.
- ``encode_webp`` writes a variant with no EXIF, XMP or ICC data.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from PIL import Image, ImageCms, ImageMath, PngImagePlugin, features

from photopipe_core.errors import (
    CorruptImage,
    EmptyInput,
    RejectedInput,
    TooLarge,
    TooManyFrames,
    TooManyPixels,
    TypeMismatch,
    UnsupportedType,
)
from photopipe_core.models import GpsPosition, PhotoFacts, Placeholder
from photopipe_core.placeholder import placeholder
from photopipe_core.rules import (
    CONTENT_TYPES,
    GENERIC_TYPES,
    Limits,
    VariantSpec,
    WebpSettings,
    hamming,
    normalise_declared,
)

__all__ = ["CONTENT_TYPES", "Limits", "VariantSpec", "WebpSettings", "hamming", "normalise_declared"]
LOG = logging.getLogger(__name__)

# HEIC and AVIF are both HEIF files (one container, two codecs): a declared one for the other is no mismatch. Camera
# HEIF files end in .HIF, which Python's mimetypes (and so the AWS CLI) declares image/avif.
HEIF_FAMILY = frozenset({"image/heic", "image/avif"})
# PNG text (tEXt, zTXt, iTXt) a file may inflate to, in all: far above any photo's metadata, far below a bomb.
PNG_TEXT_BYTES = 16 * 2**20
# Pillow's own bomb check guards every size a decoder meets, frames and canvases included (a GIF frame may declare
# extents far beyond its logical screen): ``pillow_limit`` sets it to photopipe's pixel limit and makes its warning
# (past the limit, below twice it) an error like the one past twice the limit. photopipe checks the header first.
_BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)
# What a decoder says in its messages that means nothing to a person: object reprs with addresses.
_REPR = re.compile(r"\s*<[^<>]*\bat 0x[0-9a-fA-F]+>")
# What decoders raise for a malformed file (anything else is unexpected of them: see once_more_if_unexpected).
DECODER_ERRORS = (OSError, ValueError, EOFError, SyntaxError, struct.error, zlib.error, IndexError)
# Decoder messages that name library internals, as a person would say them.
_DECODER_WORDS = [
    (re.compile(r"MAX_TEXT_CHUNK"), "a text or colour-profile chunk inflates to more than 1 MB"),
    (re.compile(r"MAX_TEXT_MEMORY"), f"its text chunks inflate to more than {PNG_TEXT_BYTES // 2**20} MB"),
    (re.compile(r"^decoder error -?\d+$"), "its compressed image data cannot be decoded"),
    (re.compile(r"^image file is truncated"), "the file ends before its image data does"),
]

# glibc malloc settings for a process that renders photos one after another (the Resize function's environment in
# template.yaml; `photopipe bench` runs every kernel row with them). By default glibc maps each large buffer (the
# decoded image's 16 MiB blocks, the encoders' work areas) fresh and unmaps it when freed, so every photo faults
# its ~90 MB in again, page by page: about 20 000 page faults and 10 % of the step's CPU. Kept in one arena instead
# (below the 32 MiB maximum mapping threshold, never trimmed), the next photo reuses them; with one arena for all
# threads, the encoder thread parks nothing of its own, and the peak stays near what one photo needs.
RENDER_PROCESS_ENV = {
    "GLIBC_TUNABLES": ":".join(
        ("glibc.malloc.mmap_threshold=33554432", "glibc.malloc.trim_threshold=268435456", "glibc.malloc.arena_max=1")
    )
}

# HEIC/HEIF through pillow-heif (a maintained wheel that bundles libheif); AVIF is Pillow's own.
AVIF_BRANDS = frozenset({b"avif", b"avis"})
HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"})
try:
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - the layer and the dev install both have it
    HEIF_SUPPORTED = False
else:
    register_heif_opener()
    HEIF_SUPPORTED = True

_SRGB = ImageCms.createProfile("sRGB")
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_ORIENTATION, _MAKE, _MODEL, _DATETIME_ORIGINAL = 0x0112, 0x010F, 0x0110, 0x9003
_OFFSET_TIME, _OFFSET_TIME_ORIGINAL = 0x9010, 0x9011
_GPS_TIME, _GPS_DATE = 0x0007, 0x001D


@dataclass(frozen=True)
class SourceInfo:
    """What the header says about an acceptable input."""

    format: str
    content_type: str
    declared_type: str
    width: int
    height: int
    frames: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Rendered:
    variants: dict[str, Image.Image]
    facts: PhotoFacts
    phash: str
    placeholder: Placeholder


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sniff(data: bytes) -> str:
    """The Pillow format of ``data`` judged by its magic bytes; never by a file name or declared type."""
    if not data:
        raise EmptyInput("the file is empty (0 bytes)")
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # classic TIFF and BigTIFF
        return "TIFF"
    if head[4:8] == b"ftyp":
        brands = ftyp_brands(data)
        if brands & AVIF_BRANDS and features.check("avif"):
            return "AVIF"
        if brands & HEIF_BRANDS and HEIF_SUPPORTED:
            return "HEIF"
    raise UnsupportedType(f"not a supported image ({describe_content(head)}); accepted: {', '.join(accepted_names())}")


def accepted_names() -> list[str]:
    names = ["JPEG", "PNG", "GIF", "WebP", "TIFF"]
    return names + (["AVIF"] if features.check("avif") else []) + (["HEIC/HEIF"] if HEIF_SUPPORTED else [])


def ftyp_brands(data: bytes) -> set[bytes]:
    """The major and compatible brands of an ISO media file's ``ftyp`` box (what kind of file it says it is)."""
    size = int.from_bytes(data[:4], "big")
    box = data[8 : min(max(size, 16), 4096)]
    return {box[0:4]} | {box[n : n + 4] for n in range(8, len(box) - 3, 4)}


# Image formats photopipe does not take, by their first bytes, so that a refusal names what the file is.
OTHER_IMAGES = (
    (b"BM", "a BMP image"),
    (b"\x00\x00\x01\x00", "an ICO icon"),
    (b"8BPS", "a Photoshop document"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
    (b"qoif", "a QOI image"),
    (b"DDS ", "a DDS texture"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "a JPEG XL image"),
)


def describe_content(head: bytes) -> str:
    """A human name for common non-image content, for error messages."""
    for magic, name in OTHER_IMAGES:
        if head.startswith(magic):
            return name
    text = head.lstrip().lower()
    if head[4:8] == b"ftyp":
        return f"ISO media '{head[8:12].decode(errors='replace')}'"
    for prefix, name in (
        (b"%pdf", "a PDF document"),
        (b"<svg", "an SVG drawing"),
        (b"<?xml", "an XML document"),
        (b"<!doctype html", "an HTML page"),
        (b"<html", "an HTML page"),
        (b"#!", "a script"),
        (b"pk\x03\x04", "a ZIP archive"),
    ):
        if text.startswith(prefix):
            return name
    return "unrecognised content"


def inspect(
    data: bytes,
    limits: Limits,
    declared_type: str | None = None,
    *,
    size: int | None = None,
    sha256: str | None = None,
) -> SourceInfo:
    """Check an input against the rules before any pixel is decoded; raise a RejectedInput subclass if it fails.

    ``data`` is the whole file, or only its beginning when the whole file's ``size`` and ``sha256`` are given
    (see ``header_suffices`` for when the beginning says all there is to say).

    Type policy: a declared type that names a *different* image type than the content is ``type_mismatch``;
    generic declared types (application/octet-stream, none) are accepted and the sniffed type is recorded.
    """
    size = len(data) if size is None else size
    if size > limits.max_bytes:
        raise TooLarge(f"{size} bytes is over the limit of {limits.max_bytes} bytes")
    fmt = sniff(data)
    content_type = CONTENT_TYPES[fmt]
    declared = normalise_declared(declared_type)
    if declared not in GENERIC_TYPES and declared != content_type and {declared, content_type} != HEIF_FAMILY:
        raise TypeMismatch(f"declared as {declared} but the content is {content_type}")

    def read_header() -> tuple[int, int, int]:
        with pillow_limit(limits), Image.open(io.BytesIO(data), formats=[fmt]) as image:  # reads the header only
            check_pixels(*image.size, limits)
            return (*image.size, count_frames(image, limits))

    try:
        width, height, frames = once_more_if_unexpected(read_header)
    except RejectedInput:
        raise
    except _BOMB as error:
        raise TooManyPixels(bomb_detail(error, fmt, limits)) from error
    except Exception as error:  # noqa: BLE001 - whatever a decoder throws at a malformed file means "corrupt"
        if isinstance(error, MemoryError):
            raise
        raise CorruptImage(f"the {fmt} header cannot be read ({human(error)})") from error
    if width <= 0 or height <= 0:
        raise CorruptImage(f"the {fmt} image has no pixels ({width}×{height})")
    if fmt == "PNG":
        check_png_stream(data)
    return SourceInfo(fmt, content_type, declared, width, height, frames, size, sha256 or sha256_hex(data))


def header_suffices(info: SourceInfo) -> bool:
    """Whether ``inspect`` of a file's beginning settles it: a JPEG has one frame and its size in the header, so
    nothing after the beginning can change the verdict; formats with more frames are counted over the whole file.
    """
    return info.format == "JPEG" and info.frames == 1


@contextmanager
def pillow_limit(limits: Limits) -> Iterator[None]:
    """Within the block, Pillow refuses any size past the pixel limit that a decoder meets (its warning past the
    limit is an error, like its error past twice the limit) and PNG text past ``PNG_TEXT_BYTES`` inflated (Pillow
    allows 64 MB; a photo's text is its XMP, a few KB); the previous settings come back afterwards. Not for
    threads that open images at the same time: both settings are the process's (photopipe opens on one thread)."""
    previous = Image.MAX_IMAGE_PIXELS, PngImagePlugin.MAX_TEXT_MEMORY
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = limits.max_pixels
        PngImagePlugin.MAX_TEXT_MEMORY = PNG_TEXT_BYTES
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS, PngImagePlugin.MAX_TEXT_MEMORY = previous


def check_pixels(width: int, height: int, limits: Limits, what: str = "") -> None:
    if width * height > limits.max_pixels:
        raise TooManyPixels(
            f"{what}{width}×{height} = {width * height / 1e6:.1f} MP is over the limit of "
            f"{limits.max_pixels / 1e6:.1f} MP"
        )


def count_frames(image: Image.Image, limits: Limits) -> int:
    """Frames in the image, counting no further than one past the limit; each frame's size is checked too (a frame
    may declare extents far beyond the first one, and seeking to it grows the canvas). A later frame that cannot be
    read ends the count: the photo is the frame a viewer shows first, and browsers show it too (an APNG whose later
    frames are out of sequence, an MPO whose second picture points past the end)."""
    if not getattr(image, "is_animated", False):
        return 1
    start = image.tell()  # the frame a viewer shows: the first, or a HEIF file's primary image
    frames = 0
    while frames <= limits.max_frames:
        try:
            image.seek(frames)
        except EOFError:
            break
        except _BOMB:
            raise
        except Exception:  # noqa: BLE001 - a later frame that cannot be read ends the animation, as in a viewer
            if frames <= start:
                raise
            break
        check_pixels(*image.size, limits, what=f"frame {frames + 1}: ")
        frames += 1
    if frames > limits.max_frames:
        raise TooManyFrames(f"more than {limits.max_frames} frames")
    image.seek(start)
    return frames


def check_png_stream(data: bytes) -> None:
    """A PNG's compressed pixel stream must be whole and intact: decoders stop once they have every row, so a
    stream broken after a valid start, or whose checksum is wrong, would otherwise pass as a picture. Inflated in
    pieces and thrown away, never held whole."""
    inflater = zlib.decompressobj()
    position = 8
    try:
        while position + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[position : position + 8])
            chunk = data[position + 8 : position + 8 + length]
            position += 12 + length
            if kind == b"IDAT":
                pending = chunk
                while pending and not inflater.eof:
                    inflater.decompress(pending, 1 << 20)
                    pending = inflater.unconsumed_tail
            elif kind == b"IEND":
                break
    except zlib.error as error:
        raise CorruptImage(f"the PNG pixel data is damaged ({error})") from error
    if not inflater.eof:
        raise CorruptImage("the PNG pixel data ends before the image does")


def once_more_if_unexpected[T](read: Callable[[], T]) -> T:
    """``read()``; when it raises what a decoder does not raise for a malformed file (not an OSError, ValueError …:
    a TypeError, a KeyError), it is logged and read once more, so that a passing fault does not become a
    permanent rejection. The same error again is the file's: the caller rejects it as corrupt."""
    try:
        return read()
    except (RejectedInput, MemoryError, *_BOMB, *DECODER_ERRORS):
        raise
    except Exception as error:  # noqa: BLE001 - logged, then read again
        LOG.warning(
            "an unexpected %s while reading an image; reading it once more", type(error).__name__, exc_info=True
        )
        return read()


def human(error: BaseException) -> str:
    """What a decoder's error says, for a person: no object reprs; programming errors inside a decoder (a wrong
    argument count, a missing attribute) become a plain 'the decoder could not read it'."""
    if not isinstance(error, DECODER_ERRORS):
        return "the decoder could not read it"
    text = _REPR.sub("", str(error)).strip().rstrip(".:")
    for pattern, plain in _DECODER_WORDS:
        if pattern.search(text):
            return plain
    return text[:200] or "the decoder could not read it"


def bomb_detail(error: BaseException, fmt: str, limits: Limits) -> str:
    """Pillow's bomb error as photopipe's sentence, with the size when Pillow says it."""
    size = re.search(r"\((\d+) pixels\)", str(error))
    what = f"{int(size.group(1)) / 1e6:.1f} MP" if size else f"a frame of the {fmt} file"
    return f"{what} is over the limit of {limits.max_pixels / 1e6:.1f} MP"


def target_size(width: int, height: int, long_edge: int) -> tuple[int, int]:
    """The size with the long edge at ``long_edge`` (never larger than the original), aspect kept."""
    scale = min(1.0, long_edge / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def render(data: bytes, info: SourceInfo, specs: list[VariantSpec], limits: Limits | None = None) -> Rendered:
    """Decode once and produce every variant, upright and in sRGB, largest first, each from the previous; nothing
    the file declares beyond its header may make the decoder exceed ``limits``' pixels."""

    def decode() -> Rendered:
        with pillow_limit(limits or Limits()):
            return _render(data, info, specs)

    try:
        return once_more_if_unexpected(decode)
    except RejectedInput:
        raise
    except _BOMB as error:
        raise TooManyPixels(f"the {info.format} image is larger than its header said ({human(error)})") from error
    except Exception as error:  # noqa: BLE001 - a file the decoder cannot turn into pixels is "corrupt"
        if isinstance(error, MemoryError):
            raise
        raise CorruptImage(f"the {info.format} data cannot be decoded ({human(error)})") from error


def _render(data: bytes, info: SourceInfo, specs: list[VariantSpec]) -> Rendered:
    ordered = sorted(specs, key=lambda spec: spec.long_edge, reverse=True)
    image = Image.open(io.BytesIO(data), formats=[info.format])
    facts = photo_facts(image)
    largest = target_size(info.width, info.height, ordered[0].long_edge)
    if info.format == "JPEG":
        image.draft(image.mode if image.mode in ("RGB", "L") else None, largest)
    image.load()  # the frame it opened on: the first, or a HEIF file's primary image
    orientation = pending_orientation(image, info.format, data, facts.orientation or 1)
    base = to_working_mode(image)
    variants: dict[str, Image.Image] = {}
    previous = base
    for spec in ordered:
        size = target_size(info.width, info.height, spec.long_edge)
        resized = previous if previous.size == size else previous.resize(size, resample_filter(previous, base))
        previous = resized
        variants[spec.name] = resized
    icc = image.info.get("icc_profile")
    finished = {name: to_srgb(upright(img, orientation), icc) for name, img in variants.items()}
    smallest = finished[ordered[-1].name]
    oriented_w, oriented_h = (info.height, info.width) if orientation in (5, 6, 7, 8) else (info.width, info.height)
    facts = facts.model_copy(update={"width": oriented_w, "height": oriented_h})
    return Rendered(variants=finished, facts=facts, phash=perceptual_hash(smallest), placeholder=placeholder(smallest))


def pending_orientation(image: Image.Image, fmt: str, data: bytes, orientation: int) -> int:
    """The orientation still to apply to the decoded pixels, so that it is applied exactly once.

    - TIFF: Pillow turns the pixels upright as it loads them and drops the tag — nothing is pending.
    - HEIC/HEIF: the container's own transforms (``irot``/``imir``) are applied by libheif as it decodes, and the
      EXIF orientation then only describes them (pillow-heif resets it to 1 and keeps the value as
      ``original_orientation``); only a file without transforms relies on its EXIF orientation.
    - Everything else: the EXIF orientation, as the header said.
    """
    if orientation == 1:
        return 1
    if fmt == "HEIF":
        return 1 if heif_has_transforms(data) else orientation
    return orientation if image.getexif().get(_ORIENTATION) == orientation else 1


def heif_has_transforms(data: bytes) -> bool:
    """Whether a HEIF file's ``meta`` box holds rotation or mirror properties (``irot``/``imir``)."""
    position = 0
    while position + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        if size == 1 and position + 16 <= len(data):
            size = struct.unpack(">Q", data[position + 8 : position + 16])[0]
        if kind == b"meta":
            box = data[position : position + size] if size else data[position:]
            return b"irot" in box or b"imir" in box
        if size < 8:
            return False
        position += size
    return False


def resample_filter(source: Image.Image, decoded: Image.Image) -> Image.Resampling:
    """Bilinear for the one large reduction from the decoded image, Lanczos for the cascade of smaller variants.

    Pillow's reductions are area-aware (the filter support grows with the scale), so at the 2–4× factor of a camera
    photo to the largest variant a bilinear kernel is already antialiased: it is 40 % cheaper than bicubic there and
    the medium variant stays at SSIM 0.995 against the naive all-Lanczos path (`photopipe bench` reports it). The
    cascade steps are cheap, so they keep Lanczos."""
    return Image.Resampling.BILINEAR if source is decoded else Image.Resampling.LANCZOS


def to_working_mode(image: Image.Image) -> Image.Image:
    """An 8-bit L, RGB or RGBA image (alpha kept, a colour key too; 16-bit scaled, not clipped; palettes
    expanded)."""
    mode = image.mode
    keyed = "transparency" in image.info and mode not in ("P", "PA")  # a PNG tRNS colour key: that colour is clear
    if mode in ("RGB", "L"):
        return image.convert("RGBA") if keyed else image
    if mode == "RGBA":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        maximum = 65535 if mode.startswith("I;16") or (image.getextrema()[1] or 0) > 255 else 255  # type: ignore[operator]
        grey = image.convert("I").point(lambda value: value * (255 / maximum)).convert("L")
        if not keyed:
            return grey
        key = image.info["transparency"]
        clear = ImageMath.lambda_eval(lambda args: (args["a"] != key) * 255, a=image.convert("I"))
        grey.putalpha(clear.convert("L"))
        return grey.convert("RGBA")
    if mode == "F":
        return image.convert("L")
    if mode in ("P", "PA"):
        return image.convert("RGBA" if image.has_transparency_data else "RGB")
    if mode in ("LA", "La"):
        return image.convert("RGBA")
    if mode == "1":
        return image.convert("L")
    if mode == "CMYK":
        return image  # converted with its ICC profile (or plainly) in to_srgb
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """Apply an EXIF orientation (1–8) to pixels."""
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return image.transpose(method) if method is not None else image


def to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert to sRGB through the embedded ICC profile when there is one."""
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            output_mode = "RGBA" if image.mode == "RGBA" else ("L" if image.mode == "L" else "RGB")
            if output_mode == "L":
                return image  # a grey profile: nothing to gain from a colour transform
            converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=output_mode)
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile is ignored: the pixels are used as they are
    if image.mode == "CMYK":
        return image.convert("RGB")
    return image


def encode_webp(image: Image.Image, settings: WebpSettings) -> bytes:
    """WebP bytes with no metadata at all (no EXIF, XMP or ICC)."""
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=settings.quality, method=settings.method, exif=b"", xmp=b"", icc_profile=b"")
    return buffer.getvalue()


def perceptual_hash(image: Image.Image) -> str:
    """A 64-bit difference hash (16 hex digits): close pictures give hashes a few bits apart."""
    grey = image.convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    pixels = grey.tobytes()
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (pixels[row * 9 + col] > pixels[row * 9 + col + 1])
    return f"{bits:016x}"


def photo_facts(image: Image.Image) -> PhotoFacts:
    """Facts worth keeping from EXIF (GPS only here, never in outputs)."""
    try:
        exif = image.getexif()
        # pillow-heif resets a HEIF file's EXIF orientation to 1 and keeps what the file said here.
        orientation = image.info.get("original_orientation") or exif.get(_ORIENTATION)
        details = exif.get_ifd(_EXIF_IFD)
        gps = exif.get_ifd(_GPS_IFD)
    except Exception:  # noqa: BLE001 - broken EXIF loses the facts, not the photo
        return PhotoFacts(width=image.width, height=image.height)
    taken_at = exif_datetime(details.get(_DATETIME_ORIGINAL) or exif.get(0x0132))
    return PhotoFacts(
        width=image.width,
        height=image.height,
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None,
        taken_at=taken_at,
        taken_offset=exif_offset(details.get(_OFFSET_TIME_ORIGINAL) or details.get(_OFFSET_TIME))
        or gps_offset(taken_at, gps),
        camera_make=clean_text(exif.get(_MAKE)),
        camera_model=clean_text(exif.get(_MODEL)),
        gps=gps_position(gps),
    )


def clean_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 ").strip()
    return value[:128] or None


def exif_datetime(value: Any) -> str | None:
    text = clean_text(value)
    if not text:
        return None
    try:
        return datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def exif_offset(value: Any) -> str | None:
    """An EXIF offset tag (``+02:00``) as written, when it is one (±14 h at most)."""
    text = clean_text(value)
    if not text or not re.fullmatch(r"[+-](0\d|1[0-4]):[0-5]\d", text):
        return None
    return text


def gps_offset(taken_at: str | None, gps: dict[int, Any]) -> str | None:
    """The offset of the camera's clock from the GPS clock's UTC time of the same photo, to the quarter hour (a
    phone writes both; a camera with a GPS often no offset tag): None when either is missing or it is beyond ±14 h."""
    try:
        day = datetime.strptime(clean_text(gps[_GPS_DATE]) or "", "%Y:%m:%d")
        hours, minutes, seconds = (float(part) for part in gps[_GPS_TIME])
        utc = day + timedelta(hours=hours, minutes=minutes, seconds=seconds)
        local = datetime.fromisoformat(taken_at) if taken_at else None
    except (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    if local is None:
        return None
    quarters = round((local - utc).total_seconds() / 900)
    if abs(quarters) > 14 * 4:
        return None
    sign, quarters = ("-" if quarters < 0 else "+"), abs(quarters)
    return f"{sign}{quarters // 4:02d}:{quarters % 4 * 15:02d}"


def gps_position(gps: dict[int, Any]) -> GpsPosition | None:
    try:
        lat = _degrees(gps[2]) * (-1 if clean_text(gps.get(1)) == "S" else 1)
        lon = _degrees(gps[4]) * (-1 if clean_text(gps.get(3)) == "W" else 1)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return GpsPosition(latitude=round(lat, 7), longitude=round(lon, 7))


def _degrees(value: Any) -> float:
    d, m, s = (float(part) for part in value)
    return d + m / 60 + s / 3600
