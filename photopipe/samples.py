"""Seeded, photo-like sample images (gradients, shapes and grain), so nothing binary is committed."""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Iterator

from PIL import Image, ImageDraw, ImageFilter


def photo(width: int, height: int, seed: int) -> Image.Image:
    """A picture with smooth areas, edges and fine detail, like a photo rather than a flat test card."""
    rng = random.Random(seed)
    top = tuple(rng.randrange(40, 220) for _ in range(3))
    bottom = tuple(rng.randrange(20, 200) for _ in range(3))
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), gradient)
    draw = ImageDraw.Draw(image)
    scale = max(width, height)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(scale // 40 + 1, scale // 6 + 2)
        color = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=color)
        else:
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=color)
    image = image.filter(ImageFilter.GaussianBlur(radius=max(1, scale // 800)))
    grain = Image.effect_noise((width, height), 24).convert("RGB")
    return Image.blend(image, grain, 0.08)


def jpeg_bytes(image: Image.Image, quality: int = 88, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, **params)
    return buffer.getvalue()


# A camera roll's mix: landscape and portrait 12 MP, smaller shots, a panorama.
ROLL_SIZES = ((4000, 3000), (3000, 2000), (2400, 3200), (1600, 1200), (6000, 1500))
EXIF_ORIENTATION, EXIF_MAKE, EXIF_MODEL, EXIF_IFD, EXIF_DATETIME_ORIGINAL = 0x0112, 0x010F, 0x0110, 0x8769, 0x9003


def camera_roll(count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """``count`` photo-like JPEGs named like a camera's, with EXIF (camera, time taken; every fourth stored sideways
    with orientation 6). The same seed gives the same bytes."""
    rng = random.Random(seed)
    for index in range(count):
        width, height = ROLL_SIZES[index % len(ROLL_SIZES)]
        exif = Image.Exif()
        exif[EXIF_MAKE], exif[EXIF_MODEL] = "PhotoCam", "PC-1"
        exif.get_ifd(EXIF_IFD)[EXIF_DATETIME_ORIGINAL] = f"2026:0{1 + index % 9}:1{index % 10} 1{index % 10}:00:00"
        if index % 4 == 3:
            exif[EXIF_ORIENTATION] = 6
            width, height = height, width  # stored sideways
        yield (
            f"IMG_{seed % 10000:04d}_{index + 1:03d}.jpg",
            jpeg_bytes(photo(width, height, rng.randrange(2**32)), exif=exif),
        )


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width``×``height`` zeros: tiny on disk, enormous when decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
