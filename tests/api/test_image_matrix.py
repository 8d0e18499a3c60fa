"""The image path over its whole input space: every Pillow mode, all 8 EXIF orientations,
papers and contrasts, sizes from 8x8 to the pixel limit. Read by the example digits MLP."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from api.images import image_to_sample, lightness_of, normalize_digit
from api.input_error import InputTooLarge
from api.predict import preprocess
from tests.api.drawings import encoded, in_mode, picture, png_header_only, with_orientation
from tests.api.models_fixture import trained_example_model

LIMIT = 16_777_216
DIGITS = (0, 3, 7)


def digit_read_from(sample: np.ndarray) -> int:
    """The example model's answer for one raw (1, 64) sample in the digits' 0..16 range."""
    model, data = trained_example_model()
    return int(model.predict(preprocess(sample, data.preprocessing)).argmax())


def digit_in(content: bytes, max_pixels: int = LIMIT) -> int:
    return digit_read_from(image_to_sample(content, (64,), 16.0, max_pixels))


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK"])
@pytest.mark.parametrize("digit", DIGITS)
def test_every_pillow_mode_shows_the_same_digit(mode, digit):
    image = in_mode(picture(digit), mode)
    assert image.mode == mode
    ink = normalize_digit(lightness_of(image), 8, 8)
    assert digit_read_from(ink.reshape(1, 64) * 16.0) == digit


@pytest.mark.parametrize(("mode", "image_format"), [("LA", "PNG"), ("P", "PNG"), ("CMYK", "JPEG")])
def test_modes_survive_their_file_formats(mode, image_format):
    assert digit_in(encoded(in_mode(picture(7), mode), image_format)) == 7


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("digit", DIGITS)
def test_all_eight_exif_orientations_are_applied(orientation, digit):
    assert digit_in(with_orientation(picture(digit, 96), orientation)) == digit


def test_exif_orientation_is_read_from_png_too():
    assert digit_in(with_orientation(picture(7), 6, "PNG")) == 7


@pytest.mark.parametrize(("orientation", "image_format"), [(6, "PNG"), (8, "JPEG"), (5, "PNG")])
def test_large_pictures_are_shrunk_and_still_turned_upright(orientation, image_format):
    content = with_orientation(picture(7, 1600), orientation, image_format)
    assert digit_in(content) == 7


PAPERS = {
    "white, black ink": ((255, 255, 255), (0, 0, 0)),
    "grey paper": ((225, 222, 215), (0, 0, 0)),
    "off-white, blue ink": ((240, 236, 224), (20, 30, 120)),
    "mid grey, low contrast": ((150, 150, 150), (90, 90, 90)),
    "light pencil": ((250, 250, 250), (190, 190, 190)),
    "chalk on a dark board": ((30, 40, 35), (235, 235, 235)),
    "white on black (MNIST-like)": ((0, 0, 0), (255, 255, 255)),
}


@pytest.mark.parametrize("paper", PAPERS, ids=list(PAPERS))
@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
@pytest.mark.parametrize("digit", DIGITS)
def test_paper_colours_and_contrasts_do_not_change_the_digit(paper, image_format, digit):
    background, ink = PAPERS[paper]
    content = encoded(picture(digit, 160, paper=background, ink=ink), image_format)
    assert digit_in(content) == digit


@pytest.mark.parametrize("size", [8, 13, 28, 64, 150, 511, 1024])
@pytest.mark.parametrize("digit", DIGITS)
def test_sizes_from_8_pixels_up_read_the_same(size, digit):
    assert digit_in(encoded(picture(digit, size))) == digit


def test_a_small_digit_anywhere_on_a_large_page_is_found_and_centred():
    page = Image.new("RGB", (900, 600), (230, 228, 220))
    page.paste(picture(3, 120, paper=(230, 228, 220)), (700, 40))
    assert digit_in(encoded(page, "JPEG")) == 3


@pytest.mark.slow
def test_an_image_of_exactly_the_default_limit_is_read():
    side = int(LIMIT**0.5)  # 4096 x 4096
    assert digit_in(encoded(picture(7, side), "JPEG")) == 7


def test_one_pixel_over_the_limit_is_refused_before_decoding():
    with pytest.raises(InputTooLarge, match="file: image is 4097x4096"):
        image_to_sample(png_header_only(4097, 4096), (64,), 16.0, LIMIT)
