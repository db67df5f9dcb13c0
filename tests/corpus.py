"""Generated test images: every input the imaging rules care about, made on the fly (nothing binary committed)."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image

from photopipe import samples
from photopipe.samples import png_bomb  # noqa: F401 - part of the corpus too

# The four quadrant colours of the upright reference picture: top-left, top-right, bottom-left, bottom-right.
QUADRANTS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255))
# Pixels to apply for each EXIF orientation so that the *displayed* picture is the upright reference.
INVERSE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def quadrants(width: int = 400, height: int = 300) -> Image.Image:
    image = Image.new("RGB", (width, height))
    half_w, half_h = width // 2, height // 2
    for index, color in enumerate(QUADRANTS):
        x, y = (index % 2) * half_w, (index // 2) * half_h
        image.paste(color, (x, y, x + half_w, y + half_h))
    return image


def save(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def exif_with(
    orientation: int | None = None, gps: bool = False, camera: bool = False, taken_at: str | None = None
) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if camera:
        exif[0x010F] = "PhotoCam"
        exif[0x0110] = "PC-1"
    if taken_at:
        exif.get_ifd(0x8769)[0x9003] = taken_at
    if gps:
        exif[0x8825] = {1: "N", 2: (52.0, 22.0, 12.0), 3: "W", 4: (4.0, 53.0, 30.0)}
    return exif


def oriented_jpeg(orientation: int) -> bytes:
    """A JPEG whose pixels, shown with EXIF ``orientation`` applied, are the upright quadrant picture."""
    method = INVERSE[orientation]
    pixels = quadrants() if method is None else quadrants().transpose(method)
    return save(pixels, "JPEG", quality=95, exif=exif_with(orientation))


def swapped_primaries_icc() -> bytes:
    """An RGB ICC profile whose red and green primaries are swapped relative to sRGB (linear curves).

    Pixels (255, 0, 0) tagged with it are *green* in sRGB: a test can see whether the profile was applied.
    """

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + b"\0" * 4 + s15(x) + s15(y) + s15(z)

    text = b"swapped primaries"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text) + 1) + text + b"\0" + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    curve = b"curv" + b"\0" * 4 + struct.pack(">I", 0)  # identity
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.3851, 0.7169, 0.0971)),  # sRGB's green
        (b"gXYZ", xyz(0.4361, 0.2225, 0.0139)),  # sRGB's red
        (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        padded = body + b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += padded
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"\0" * 4
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + b"\0" * 4
        + b"\0" * 16
        + b"\0" * 28
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def big_png(width: int, height: int, seed: int) -> bytes:
    """A PNG that does not compress (photo-like shapes under fine noise), so a few megapixels make tens of MB."""
    base = samples.photo(width, height, seed=seed)
    noise = Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3))
    buffer = io.BytesIO()
    Image.blend(base, noise, 0.5).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def oriented(fmt: str, orientation: int, **params: object) -> bytes:
    """A ``fmt`` file whose pixels, shown with EXIF/TIFF ``orientation`` applied, are the upright quadrant picture."""
    method = INVERSE[orientation]
    pixels = quadrants() if method is None else quadrants().transpose(method)
    if fmt == "TIFF":
        return save(pixels, "TIFF", tiffinfo={0x0112: orientation}, **params)
    return save(pixels, fmt, exif=exif_with(orientation), **params)


def gif_with_frame_extent(width: int, height: int) -> bytes:
    """A tiny two-frame GIF whose second frame's image descriptor declares a ``width`` × ``height`` frame at 0,0
    (the logical screen is 1×1): a few hundred bytes that make a decoder allocate the whole canvas."""
    first = io.BytesIO()
    Image.new("P", (1, 1)).save(first, "GIF")
    data = first.getvalue()
    trailer = data.rindex(b";")
    descriptor = b"," + struct.pack("<HHHH", 0, 0, width, height) + b"\x00"
    # LZW minimum code size 2, then one sub-block: clear code and end of information (a frame with no pixels).
    pixels = b"\x02\x02\x4c\x01\x00"
    return data[:trailer] + descriptor + pixels + b";"


def png_with_broken_zlib(width: int = 64, height: int = 64) -> bytes:
    """A PNG whose chunks are well formed (CRCs right) but whose compressed pixel stream is broken midway."""
    raw = save(samples.photo(width, height, seed=5), "PNG", compress_level=6)
    start = raw.index(b"IDAT") - 4
    length = struct.unpack(">I", raw[start : start + 4])[0]
    body = bytearray(raw[start + 8 : start + 8 + length])
    for n in range(len(body) // 3, len(body) // 3 + 16):  # overwrite part of the deflate stream
        body[n] ^= 0x5A
    chunk = b"IDAT" + bytes(body)
    fixed = struct.pack(">I", length) + chunk + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    return raw[:start] + fixed + raw[start + 12 + length :]


def bigtiff(width: int = 400, height: int = 300) -> bytes:
    return save(quadrants(width, height), "TIFF", big_tiff=True)


def heic(image: Image.Image, **params: object) -> bytes:
    """A HEIC file (pillow-heif's encoder), e.g. with ``exif=`` or ``icc_profile=``."""
    return save(image, "HEIF", quality=90, **params)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_with_chunks(chunks: list[bytes], width: int = 16, height: int = 16) -> bytes:
    """A small, valid grey-and-colour PNG with ``chunks`` (made with ``png_chunk``) between its header and pixels."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    rows = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + header
        + b"".join(chunks)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def zlib_bomb(inflated: int = 200 * 2**20) -> bytes:
    """A zlib stream of ≈ 200 KB that inflates to ``inflated`` bytes of zeros."""
    squeezer = zlib.compressobj(9)
    block = bytes(2**20)
    out = [squeezer.compress(block) for _ in range(inflated // len(block))]
    return b"".join(out) + squeezer.flush()


def animation(fmt: str, frames: int, size: tuple[int, int] = (16, 16)) -> bytes:
    """An animated ``fmt`` (PNG → APNG, WEBP, GIF) of ``frames`` frames."""
    images = [Image.new("RGB", size, (n * 37 % 256, 90, 200)) for n in range(frames)]
    return save(images[0], fmt, save_all=True, append_images=images[1:], duration=40)


def animated_webp_with_canvas(width: int, height: int) -> bytes:
    """A two-frame animated WebP of 16×16 frames whose VP8X header declares a ``width`` × ``height`` canvas."""
    data = bytearray(animation("WEBP", 2))
    at = data.index(b"VP8X") + 8 + 4  # chunk header, then 4 bytes of flags: canvas width − 1, height − 1 (24 bits)
    data[at : at + 3] = (width - 1).to_bytes(3, "little")
    data[at + 3 : at + 6] = (height - 1).to_bytes(3, "little")
    return bytes(data)


def heic_images(images: list[Image.Image], primary: int) -> bytes:
    """A HEIF file holding several images, ``primary`` the one a viewer shows."""
    import pillow_heif  # noqa: PLC0415 - only the HEIF helpers need it

    container = pillow_heif.from_pillow(images[0])
    for image in images[1:]:
        container.add_from_pillow(image)
    buffer = io.BytesIO()
    container.save(buffer, quality=90, primary_index=primary)
    return buffer.getvalue()


def heic_16_bit(image: Image.Image) -> bytes:
    """``image`` (RGB) stored at more than 8 bits a channel (10 bits in the HEIC)."""
    import pillow_heif  # noqa: PLC0415

    rgb = image.convert("RGB")
    wide = b"".join(struct.pack("<H", channel * 257) for channel in rgb.tobytes())  # RGB;16, little-endian
    container = pillow_heif.HeifFile()
    container.add_frombytes("RGB;16", rgb.size, wide)
    buffer = io.BytesIO()
    container.save(buffer, quality=-1)
    return buffer.getvalue()


def gif_with_screen(width: int, height: int) -> bytes:
    """A 1×1 GIF whose logical screen descriptor declares a ``width`` × ``height`` screen."""
    data = bytearray(save(Image.new("P", (1, 1)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) declares ``width`` × ``height``."""
    data = bytearray(save(Image.new("RGB", (16, 16), (200, 30, 30)), "JPEG"))
    at = data.index(b"\xff\xc0") + 5  # marker, length (2), precision (1): then height and width
    data[at : at + 4] = struct.pack(">HH", height, width)
    return bytes(data)


def tiff_declaring(width: int, height: int, tile: int | None = None) -> bytes:
    """A grey TIFF of a few hundred bytes whose first IFD declares ``width`` × ``height``, in one strip or in
    ``tile`` × ``tile`` tiles, with only a few bytes of pixel data."""
    pixels_at, pixels = 8, b"\x80" * 64
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (277, 3, 1)]
    if tile is None:
        entries += [(273, 4, pixels_at), (278, 4, height), (279, 4, len(pixels))]
    else:
        entries += [(322, 4, tile), (323, 4, tile), (324, 4, pixels_at), (325, 4, len(pixels))]
    entries.sort()
    ifd_at = pixels_at + len(pixels)
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        packed = struct.pack("<I", value) if kind == 4 else struct.pack("<HH", value, 0)  # noqa: PLR2004
        ifd += struct.pack("<HHI", tag, kind, 1) + packed
    return b"II*\x00" + struct.pack("<I", ifd_at) + pixels + ifd + struct.pack("<I", 0)
