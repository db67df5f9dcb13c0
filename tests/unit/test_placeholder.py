"""The placeholder of a READY photo: a ThumbHash another implementation reads as the photo, and its dominant colour."""

from __future__ import annotations

import base64

import pytest
import thash
from PIL import Image, ImageChops, ImageDraw, ImageStat

from photopipe import samples
from photopipe_core.placeholder import dominant_color, placeholder, thumbhash


def decoded(hashed: str) -> Image.Image:
    """The placeholder as a client shows it, decoded by another ThumbHash implementation."""
    width, height, rgba = thash.thumb_hash_to_rgba(list(base64.b64decode(hashed)))
    return Image.frombytes("RGBA", (width, height), bytes(rgba))


def difference_at_8x8(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of the two images' colours, each reduced to 8×8 (0–255)."""
    small = [image.convert("RGB").resize((8, 8), Image.Resampling.BOX) for image in (a, b)]
    return float(sum(ImageStat.Stat(ImageChops.difference(*small)).mean) / 3)


@pytest.mark.parametrize("size", [(16, 12), (12, 16), (16, 16), (16, 5), (3, 16), (1, 1)])
def test_the_hash_is_the_formats_bytes_as_another_encoder_writes_them(size: tuple[int, int]) -> None:
    image = samples.photo(320, 240, seed=sum(size)).resize(size).convert("RGBA")
    assert thumbhash(image) == bytes(thash.rgba_to_thumb_hash(*size, image.tobytes()))


@pytest.mark.parametrize("seed", range(8))
def test_the_placeholder_decodes_to_the_photos_colours(seed: int) -> None:
    # Given a thumb (as Resize renders it) of a photo, and of another photo
    thumb = samples.photo(256, 192, seed=seed)
    other = samples.photo(256, 192, seed=seed + 100)

    # When its placeholder is made and decoded by another implementation
    made = placeholder(thumb)
    shown = decoded(made.thumbhash)

    # Then it has the photo's shape, and at 8×8 its colours are the photo's: closer than the photo's average colour
    # spread flat, and than the other photo
    assert abs(shown.width / shown.height - 4 / 3) < 0.15
    flat = Image.new("RGB", thumb.size, tuple(round(value) for value in ImageStat.Stat(thumb).mean))
    assert difference_at_8x8(shown, thumb) < min(25, difference_at_8x8(flat, thumb), difference_at_8x8(shown, other))
    assert len(base64.b64decode(made.thumbhash)) <= 25


def test_a_portrait_photo_stays_portrait() -> None:
    thumb = samples.photo(192, 256, seed=3)
    shown = decoded(placeholder(thumb).thumbhash)
    assert shown.height > shown.width
    assert difference_at_8x8(shown, thumb) < 25


def test_a_photo_with_transparency_says_so_and_keeps_its_see_through_part() -> None:
    # Given a logo: an opaque red disc on a transparent square
    logo = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(logo).ellipse((8, 8, 56, 56), fill=(220, 30, 30, 255))

    # When its placeholder is made and decoded
    made = placeholder(logo)
    shown = decoded(made.thumbhash)

    # Then the corners are see-through and the middle is the disc's red
    assert shown.getpixel((0, 0))[3] < 80
    red, green, blue, alpha = shown.getpixel((shown.width // 2, shown.height // 2))
    assert alpha > 200 and red > 150 and green < 90 and blue < 90
    # and its dominant colour is the disc's, not the black hidden under the transparent corners
    assert made.color == "#dc1e1e", made.color


def test_the_dominant_colour_is_what_most_of_the_photo_is() -> None:
    # Given a photo that is two thirds sky blue and one third grass green
    image = Image.new("RGB", (90, 60), (90, 160, 230))
    ImageDraw.Draw(image).rectangle((0, 40, 89, 59), fill=(40, 140, 50))

    # Then its dominant colour is the sky's
    colour = dominant_color(image)
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    assert abs(red - 90) < 12 and abs(green - 160) < 12 and abs(blue - 230) < 12, colour


def test_a_hash_is_refused_from_more_pixels_than_the_format_takes() -> None:
    with pytest.raises(ValueError, match="100×100"):
        thumbhash(Image.new("RGBA", (101, 20)))
