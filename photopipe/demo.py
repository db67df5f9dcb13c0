"""The demo's sample set: varied, seeded photos plus what a real camera roll brings (a duplicate, broken files)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from photopipe import samples


@dataclass(frozen=True)
class Sample:
    name: str
    body: bytes
    content_type: str
    expect: str


def sample_set() -> list[Sample]:
    landscape = samples.jpeg_bytes(samples.photo(4000, 3000, seed=11))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, shown upright
    exif[0x010F], exif[0x0110] = "PhotoCam", "PC-1"
    sideways = samples.jpeg_bytes(samples.photo(3200, 2400, seed=12), exif=exif)
    alpha = samples.photo(1600, 1600, seed=13).convert("RGBA")
    alpha.putalpha(Image.radial_gradient("L").resize(alpha.size).point(lambda v: 255 - v))
    png = io.BytesIO()
    alpha.save(png, "PNG")
    panorama = samples.jpeg_bytes(samples.photo(6000, 1000, seed=14))
    small = samples.jpeg_bytes(samples.photo(640, 480, seed=15))
    broken = samples.jpeg_bytes(samples.photo(2000, 1500, seed=16))
    return [
        Sample("landscape.jpg", landscape, "image/jpeg", "READY"),
        Sample("portrait-exif-6.jpg", sideways, "image/jpeg", "READY"),
        Sample("alpha.png", png.getvalue(), "image/png", "READY"),
        Sample("panorama.jpg", panorama, "image/jpeg", "READY"),
        Sample("small.jpg", small, "image/jpeg", "READY"),
        Sample("landscape-copy.jpg", landscape, "image/jpeg", "DUPLICATE"),
        Sample("truncated.jpg", broken[: len(broken) // 3], "image/jpeg", "REJECTED"),
        Sample("notes.txt.jpg", b"these are not the pixels you are looking for\n", "image/jpeg", "REJECTED"),
    ]
