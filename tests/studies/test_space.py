"""Search-space helpers: JSON paths into job specs, grids, corners and samples."""

from __future__ import annotations

import tracemalloc

import pytest

from worker.studies.space import (
    apply_point,
    corners,
    grid_count,
    grid_size,
    grid_values,
    missing_part,
    parse_path,
    random_points,
)

SPEC = {"optimizer": {"lr": 0.01}, "model": {"layers": [{"units": 8}, {"units": 10}]}, "epochs": 3}
LR = {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}
UNITS = {"type": "int", "low": 8, "high": 32, "step": 8}
BATCH = {"type": "categorical", "choices": [32, 64, 128]}


def test_a_path_is_keys_and_indexes():
    assert parse_path("model.layers[0].units") == ["model", "layers", 0, "units"]
    assert parse_path("batch_size") == ["batch_size"]


@pytest.mark.parametrize("path", ["", "a..b", "a[x]", "[0]", "a.b[0", "a-b", "a.0"])
def test_anything_else_is_refused_with_the_path_in_the_message(path):
    with pytest.raises(ValueError, match="is not a path"):
        parse_path(path)


def test_missing_part_names_the_first_part_that_is_not_in_the_spec():
    assert missing_part(SPEC, "model.layers[1].units") is None
    assert missing_part(SPEC, "model.layers[2].units") == "[2]"
    assert missing_part(SPEC, "optimizer.momentum") == "momentum"
    assert missing_part(SPEC, "epochs.value") == "value"  # epochs is a number, not an object


def test_apply_point_sets_every_path_on_a_copy():
    trial = apply_point(SPEC, {"optimizer.lr": 0.05, "model.layers[0].units": 16})

    assert trial["optimizer"]["lr"] == 0.05 and trial["model"]["layers"][0]["units"] == 16
    assert SPEC["optimizer"]["lr"] == 0.01 and SPEC["model"]["layers"][0]["units"] == 8


def test_grid_values_enumerate_finite_dimensions_only():
    assert grid_values(UNITS) == [8, 16, 24, 32]
    assert grid_values(BATCH) == [32, 64, 128]
    assert grid_values({"type": "float", "low": 0.1, "high": 0.3, "step": 0.1}) == [0.1, 0.2, 0.3]
    assert grid_values(LR) is None
    assert grid_size({"u": UNITS, "b": BATCH}) == 12 and grid_size({"lr": LR, "b": BATCH}) is None


def test_corners_combine_the_ends_and_every_choice():
    points = corners({"lr": LR, "units": UNITS, "batch": BATCH}, limit=100)

    assert len(points) == 2 * 2 * 3
    assert {p["lr"] for p in points} == {1e-3, 1e-1} and {p["units"] for p in points} == {8, 32}
    assert len(corners({"lr": LR, "units": UNITS, "batch": BATCH}, limit=5)) == 5


def test_random_points_stay_inside_the_space_and_follow_the_seed():
    points = random_points({"lr": LR, "units": UNITS, "batch": BATCH}, 200, seed=4)

    assert all(1e-3 <= p["lr"] <= 1e-1 for p in points)
    assert {p["units"] for p in points} == {8, 16, 24, 32}
    assert {p["batch"] for p in points} == {32, 64, 128}
    assert points == random_points({"lr": LR, "units": UNITS, "batch": BATCH}, 200, seed=4)


def test_huge_finite_dimensions_are_counted_and_sampled_without_listing_their_values():
    # an int in [1, 2**31] used to be listed in full for its corners and samples: the API
    # grew by gigabytes and stopped answering (issue 10's "no hang")
    wide = {"type": "int", "low": 1, "high": 2**31}
    fine = {"type": "float", "low": 0.0, "high": 1.0, "step": 1e-12}
    tracemalloc.start()
    points = corners({"u": wide, "f": fine}, limit=32) + random_points({"u": wide, "f": fine}, 64)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert peak < 1_000_000, peak
    assert grid_count(wide) == 2**31 and grid_count(fine) == 10**12 + 1
    assert grid_size({"u": wide, "f": fine}) == 2**31 * (10**12 + 1)
    ends = {(p["u"], p["f"]) for p in points[:4]}
    assert ends == {(1, 0.0), (1, 1.0), (2**31, 0.0), (2**31, 1.0)}
    assert all(1 <= p["u"] <= 2**31 and 0.0 <= p["f"] <= 1.0 for p in points)
