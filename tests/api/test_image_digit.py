"""normalize_digit makes digits the way MNIST (and the 8x8 digits) were made."""

from __future__ import annotations

import numpy as np
import pytest

from api.images import normalize_digit


def page_with_a_stroke(height=300, width=400, paper=0.9, ink=0.2) -> np.ndarray:
    """Lightness of a page with a thick, lopsided '7'-like stroke off-centre."""
    page = np.full((height, width), paper)
    page[40:60, 250:380] = ink  # the bar
    page[60:220, 330:350] = ink  # the stem
    return page


def centre_of_mass(ink: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(ink.shape)
    return (ys * ink).sum() / ink.sum(), (xs * ink).sum() / ink.sum()


def ink_extent(ink: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(ink.max(1) > 0.05), np.flatnonzero(ink.max(0) > 0.05)
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def test_at_28x28_the_digit_fits_a_20x20_box_centred_by_mass():
    digit = normalize_digit(page_with_a_stroke(), 28, 28)
    height, width = ink_extent(digit)
    assert max(height, width) in (20, 21)  # 20 plus at most one anti-aliased edge pixel
    centre_y, centre_x = centre_of_mass(digit)
    assert abs(centre_y - 13.5) <= 0.75 and abs(centre_x - 13.5) <= 0.75
    assert digit.max() == pytest.approx(1.0, abs=0.05)  # contrast stretched


def test_the_same_idea_scales_to_other_frames():
    digit = normalize_digit(page_with_a_stroke(), 56, 40)
    height, width = ink_extent(digit)
    assert height in (40, 41) or width in (29, 30)  # 20/28 of the frame's side
    assert abs(centre_of_mass(digit)[1] - 19.5) <= 1.0


def test_8x8_frames_are_filled_like_the_digits_set():
    digit = normalize_digit(page_with_a_stroke(), 8, 8)
    assert ink_extent(digit)[0] == 8  # all 1,797 digits of the set are 8 rows tall


def test_dark_ink_on_light_paper_and_light_chalk_on_a_board_give_the_same_digit():
    ink_on_paper = normalize_digit(page_with_a_stroke(paper=0.85, ink=0.1), 28, 28)
    chalk_on_board = normalize_digit(page_with_a_stroke(paper=0.15, ink=0.9), 28, 28)
    np.testing.assert_allclose(ink_on_paper, chalk_on_board, atol=1e-9)


def test_paper_texture_is_not_ink():
    noisy = page_with_a_stroke() + np.random.default_rng(0).normal(0, 0.02, (300, 400))
    clean = normalize_digit(page_with_a_stroke(), 28, 28)
    assert np.abs(normalize_digit(noisy, 28, 28) - clean).mean() < 0.05


@pytest.mark.parametrize("lightness", [0.0, 0.5, 1.0])
def test_a_blank_page_is_all_zeros(lightness):
    assert not normalize_digit(np.full((50, 60), lightness), 28, 28).any()
