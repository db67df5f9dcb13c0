"""What a gallery shows while a variant loads: a ThumbHash of the photo and its dominant colour.

ThumbHash (https://evanw.github.io/thumbhash/) rather than BlurHash: at about the same size (20–25 bytes, 28–34
characters of base64, against 20–30 for a 4×3 BlurHash) it keeps the photo's aspect ratio and alpha, and its colours
are closer (it splits luminance from two chroma channels and gives luminance more terms). Decoders exist for every
platform a client may use (JavaScript, Swift, Kotlin, Rust, Python).

The encoder is written here, from the format's description (it gives the same bytes as other encoders), as sums
over a small image: the DCT terms are separable, so each row is projected once per horizontal term
(``sum(map(mul, …))`` runs in C). The hash keeps at most 7 terms a side, which 16 pixels resolve: the placeholder
decoded from a hash of the 16-pixel image is as close to the photo as one from 32 or 100 pixels (measured at 8×8),
and the whole placeholder costs about half a millisecond (``photopipe bench`` reports it).
"""

from __future__ import annotations

import base64
import functools
import math
from operator import mul

from PIL import Image

from photopipe_core.models import Placeholder

# The longest side the hash is computed from (the format allows 100; its low terms need far fewer pixels).
HASH_SIDE = 16
# The colours the dominant one is chosen among.
DOMINANT_AMONG = 8


def placeholder(image: Image.Image) -> Placeholder:
    """The placeholder of a rendered variant (sRGB, upright): its ThumbHash (base64) and dominant colour."""
    small = image.copy()
    small.thumbnail((HASH_SIDE, HASH_SIDE), Image.Resampling.BOX)
    rgba = small.convert("RGBA")
    return Placeholder(thumbhash=base64.b64encode(thumbhash(rgba)).decode("ascii"), color=dominant_color(rgba))


def dominant_color(image: Image.Image) -> str:
    """The colour most of the image is (of its ``DOMINANT_AMONG`` median-cut colours), as ``#rrggbb``; of its
    visible pixels only, when it has transparent ones (whose hidden colour is often black)."""
    rgba = image.convert("RGBA")
    alpha = rgba.getchannel("A").tobytes()
    rgb = rgba.convert("RGB")
    visible = [rgb.getpixel((n % rgba.width, n // rgba.width)) for n, a in enumerate(alpha) if a >= 128]
    if visible and len(visible) < rgba.width * rgba.height:
        opaque = Image.new("RGB", (len(visible), 1))
        opaque.putdata(visible)
    else:
        opaque = rgb
    paletted = opaque.quantize(colors=DOMINANT_AMONG, method=Image.Quantize.MEDIANCUT)
    counts = paletted.histogram()  # pixels per palette index
    at = 3 * max(range(len(counts)), key=counts.__getitem__)
    red, green, blue = (paletted.getpalette() or [0, 0, 0])[at : at + 3]
    return f"#{red:02x}{green:02x}{blue:02x}"


def _round(value: float) -> int:
    """Half up, as the format's reference rounds (JavaScript's Math.round; Python's round goes to even)."""
    return math.floor(value + 0.5)


def thumbhash(image: Image.Image) -> bytes:
    """The ThumbHash of an RGBA image of at most 100×100 pixels."""
    width, height = image.size
    if width > 100 or height > 100:
        raise ValueError(f"a ThumbHash is computed from at most 100×100 pixels, not {width}×{height}")
    bands = [[value / 255 for value in image.getchannel(band).tobytes()] for band in range(4)]
    alphas = bands[3]
    total_alpha = sum(alphas)
    has_alpha = total_alpha < width * height
    luminance_terms = 5 if has_alpha else 7
    lx = max(1, _round(luminance_terms * width / max(width, height)))
    ly = max(1, _round(luminance_terms * height / max(width, height)))
    if has_alpha:  # composited on the average colour
        average = [sum(map(mul, band, alphas)) / total_alpha if total_alpha else 0.0 for band in bands[:3]]
        bands[:3] = [
            [avg * (1 - alpha) + alpha * value for value, alpha in zip(band, alphas, strict=True)]
            for avg, band in zip(average, bands[:3], strict=True)
        ]
    reds, greens, blues = bands[:3]
    luma = [(r + g + b) / 3 for r, g, b in zip(reds, greens, blues, strict=True)]
    yellow_blue = [(r + g) / 2 - b for r, g, b in zip(reds, greens, blues, strict=True)]
    red_green = [r - g for r, g in zip(reds, greens, strict=True)]

    dct = _Dct(width, height)
    l_dc, l_ac, l_scale = dct.encode(luma, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = dct.encode(yellow_blue, 3, 3)
    q_dc, q_ac, q_scale = dct.encode(red_green, 3, 3)
    landscape = width > height
    header24 = (
        _round(63 * l_dc)
        | _round(31.5 + 31.5 * p_dc) << 6
        | _round(31.5 + 31.5 * q_dc) << 12
        | _round(31 * l_scale) << 18
        | int(has_alpha) << 23
    )
    header16 = (ly if landscape else lx) | _round(63 * p_scale) << 3 | _round(63 * q_scale) << 9 | int(landscape) << 15
    hashed = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    groups = [l_ac, p_ac, q_ac]
    if has_alpha:
        a_dc, a_ac, a_scale = dct.encode(alphas, 5, 5)
        hashed.append(_round(15 * a_dc) | _round(15 * a_scale) << 4)
        groups.append(a_ac)
    terms = [_round(15 * value) for group in groups for value in group]
    terms += [0] * (len(terms) % 2)
    hashed += [low | high << 4 for low, high in zip(terms[::2], terms[1::2], strict=True)]
    return bytes(hashed)


class _Dct:
    """The format's DCT of one channel of a width×height image, term by term in its order."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height

    def encode(self, channel: list[float], nx: int, ny: int) -> tuple[float, list[float], float]:
        """The DC term, the AC terms (scaled into 0..1) and their scale."""
        width, height = self.width, self.height
        fx, fy = _cosines(width, nx), _cosines(height, ny)
        rows = [channel[y * width : (y + 1) * width] for y in range(height)]
        projected = [[sum(map(mul, row, fx[cx])) for row in rows] for cx in range(nx)]  # [cx][y]
        terms = [
            sum(map(mul, projected[cx], fy[cy])) / (width * height)
            for cy in range(ny)
            for cx in range(nx)
            if cx * ny < nx * (ny - cy)
        ]
        dc, ac = terms[0], terms[1:]
        scale = max((abs(value) for value in ac), default=0.0)
        if scale:
            ac = [0.5 + 0.5 / scale * value for value in ac]
        return dc, ac, scale


@functools.cache
def _cosines(pixels: int, terms: int) -> list[list[float]]:
    """cos(π/pixels · term · (pixel + ½)) for each term and pixel."""
    return [[math.cos(math.pi / pixels * term * (pixel + 0.5)) for pixel in range(pixels)] for term in range(terms)]
