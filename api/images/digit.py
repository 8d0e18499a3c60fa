"""A picture of one digit -> the model's input, made the way MNIST was made.

MNIST: the ink is size-normalised into a 20x20 box (aspect kept, anti-aliased) and placed in a
28x28 frame so that its centre of mass is the frame's centre. The same idea at other sizes: the
box is 20/28 of the frame; below 16 pixels a side (scikit-learn's 8x8 digits, made from 32x32
bitmaps whose digits fill the frame: all 1,797 are 8 rows tall) the box is the whole frame.
Small frames are composed at >= 28 pixels a side and block-averaged down, as the 8x8 digits
were (4x4 blocks of a 32x32 bitmap): placing a digit to the whole pixel in an 8x8 frame moves
it by an eighth of its size, which cost 4 to 5 points of accuracy on the digits set.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

MNIST_BOX_FRACTION = 20 / 28
COMPOSE_SIDE = 28  # small frames are composed at least this large, then block-averaged
SMALL_FRAME = 16  # frames below this many pixels a side are filled like the 8x8 digits
BORDER_FRACTION = 0.03  # the outer 3% of each side is taken as paper
BLANK_CONTRAST = 0.04  # ink weaker than this (0..1) is no digit at all
NOISE_FLOOR = 0.05  # ink below this fraction of the strongest stroke is paper grain
OUTLIER_MASS = 0.005  # the crop may leave out this fraction of the ink (specks, dust)


def normalize_digit(lightness: np.ndarray, height: int, width: int) -> np.ndarray:
    """Lightness (h, w) in [0, 1] (1 = white) -> ink (height, width) in [0, 1], strokes at 1.

    Paper colour is estimated from the border, strokes are made bright whatever the paper
    (dark ink on light paper or light chalk on a dark board), contrast is stretched so the
    strongest stroke is 1, the ink is cropped, scaled into the digit box and centred by mass.
    A blank picture gives all zeros.
    """
    ink = stroke_intensity(np.asarray(lightness, dtype=np.float64))
    if not ink.any():
        return np.zeros((height, width))
    top, bottom = ink_span(ink.sum(axis=1))
    left, right = ink_span(ink.sum(axis=0))
    crop = ink[top:bottom, left:right]
    k = max(1, -(-COMPOSE_SIDE // min(height, width)))  # oversampling factor (ceil)
    box_height, box_width = digit_box(height, width)
    digit = fit_into_box(crop, box_height * k, box_width * k)
    frame = centred_by_mass(digit, height * k, width * k)
    return frame.reshape(height, k, width, k).mean(axis=(1, 3))


def stroke_intensity(lightness: np.ndarray) -> np.ndarray:
    """Lightness -> ink in [0, 1] relative to the paper: 0 on paper, 1 on the strongest stroke."""
    border = _border(lightness)
    paper = float(np.median(border))
    darker = paper - float(np.percentile(lightness, 1))
    lighter = float(np.percentile(lightness, 99)) - paper
    ink = (paper - lightness) if darker >= lighter else (lightness - paper)
    # paper texture and JPEG ringing: how much the border deviates from the paper colour, as a
    # robust spread (4 x the scaled median absolute deviation), since strokes may touch the edge
    noise = 4 * 1.4826 * float(np.median(np.abs(border - paper)))
    peak = float(ink.max())
    if peak < max(BLANK_CONTRAST, 2 * noise):
        return np.zeros_like(lightness)
    floor = max(noise, NOISE_FLOOR * peak)
    return np.clip((ink - floor) / (peak - floor), 0.0, 1.0)


def ink_span(profile: np.ndarray) -> tuple[int, int]:
    """[start, stop) of a row or column profile holding all but ``OUTLIER_MASS`` of the ink:
    a stray speck of paper grain far from the digit must not stretch the crop."""
    cumulative = np.cumsum(profile) / profile.sum()
    start = int(np.searchsorted(cumulative, OUTLIER_MASS / 2, side="right"))
    stop = int(np.searchsorted(cumulative, 1 - OUTLIER_MASS / 2, side="left")) + 1
    return start, max(stop, start + 1)


def digit_box(height: int, width: int) -> tuple[int, int]:
    """(box height, box width) the digit is scaled into: 20/28 of the frame, or all of it."""
    if min(height, width) < SMALL_FRAME:
        return height, width
    return max(1, round(height * MNIST_BOX_FRACTION)), max(1, round(width * MNIST_BOX_FRACTION))


def fit_into_box(crop: np.ndarray, box_height: int, box_width: int) -> np.ndarray:
    """Scale ``crop`` (aspect kept) so it just fits the box: area-averaged when shrinking."""
    scale = min(box_height / crop.shape[0], box_width / crop.shape[1])
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    scaled = Image.fromarray(crop.astype(np.float32)).resize(size, resample)
    return np.clip(np.asarray(scaled, dtype=np.float64), 0.0, 1.0)


def centred_by_mass(digit: np.ndarray, height: int, width: int) -> np.ndarray:
    """``digit`` pasted into a (height, width) frame with its centre of mass at the centre
    (kept whole inside the frame)."""
    frame = np.zeros((height, width))
    mass = digit.sum()
    if mass <= 0:
        return frame
    ys, xs = np.indices(digit.shape)
    centre_y, centre_x = (ys * digit).sum() / mass, (xs * digit).sum() / mass
    top = _clamped(round((height - 1) / 2 - centre_y), height - digit.shape[0])
    left = _clamped(round((width - 1) / 2 - centre_x), width - digit.shape[1])
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return frame


def _clamped(offset: int, largest: int) -> int:
    return min(max(offset, 0), largest)


def _border(pixels: np.ndarray) -> np.ndarray:
    """The pixels of the outer frame (``BORDER_FRACTION`` of each side, at least one pixel)."""
    depth_y = max(1, round(pixels.shape[0] * BORDER_FRACTION))
    depth_x = max(1, round(pixels.shape[1] * BORDER_FRACTION))
    mask = np.zeros(pixels.shape, dtype=bool)
    mask[:depth_y], mask[-depth_y:], mask[:, :depth_x], mask[:, -depth_x:] = True, True, True, True
    return pixels[mask]
