"""Learning-rate schedules at their key steps."""

from __future__ import annotations

import pytest

from nnlib import schedules


def test_none_and_constant_keep_the_base_rate():
    for spec in (None, {"type": "constant"}):
        lr = schedules.build(spec, 0.1, 100)
        assert [lr(s) for s in (0, 50, 99, 1000)] == [0.1] * 4


def test_warmup_rises_linearly_then_hands_over():
    lr = schedules.build({"type": "constant", "warmup_steps": 4}, 0.2, 100)

    assert [lr(s) for s in range(6)] == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.2, 0.2])


def test_step_schedule_multiplies_by_gamma_every_step_size():
    lr = schedules.build({"type": "step", "step_size": 10, "gamma": 0.5}, 0.4, 100)

    assert [lr(s) for s in (0, 9, 10, 19, 20, 35)] == pytest.approx([0.4, 0.4, 0.2, 0.2, 0.1, 0.05])


def test_step_schedule_counts_from_the_end_of_warmup():
    spec = {"type": "step", "step_size": 10, "gamma": 0.5, "warmup_steps": 5}
    lr = schedules.build(spec, 0.4, 100)

    assert [lr(4), lr(5), lr(14), lr(15)] == pytest.approx([0.4, 0.4, 0.4, 0.2])


def test_cosine_goes_from_base_to_min_over_the_run():
    lr = schedules.build({"type": "cosine", "min_lr": 0.01}, 0.11, 100)

    assert lr(0) == pytest.approx(0.11)
    assert lr(50) == pytest.approx(0.06)  # half-way: the mean of base and min
    assert lr(100) == pytest.approx(0.01)
    assert lr(500) == pytest.approx(0.01)
    assert all(lr(s) >= lr(s + 1) for s in range(100))


def test_cosine_with_warmup_anneals_over_the_remaining_steps():
    lr = schedules.build({"type": "cosine", "warmup_steps": 10}, 1.0, 110)

    assert lr(9) == pytest.approx(1.0)
    assert lr(10) == pytest.approx(1.0)
    assert lr(60) == pytest.approx(0.5)
    assert lr(110) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"type": "linear"}, "'linear'"),
        ({"type": "step"}, "step_size: required"),
        ({"type": "step", "step_size": 0}, "step_size must be an integer >= 1, got 0"),
        ({"type": "step", "step_size": 5, "gamma": -1}, "gamma must be > 0, got -1"),
        ({"type": "cosine", "min_lr": 0.5}, r"min_lr must be in \[0, 0.1\], got 0.5"),
        ({"type": "constant", "warmup_steps": -1}, "warmup_steps must be an integer >= 0, got -1"),
        ({"type": "constant", "gamma": 0.5}, r"\['gamma'\] do not apply to 'constant'"),
    ],
)
def test_bad_specs_are_refused_naming_field_and_value(spec, message):
    with pytest.raises(ValueError, match=message):
        schedules.build(spec, 0.1, 100)
