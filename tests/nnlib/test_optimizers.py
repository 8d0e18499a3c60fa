"""Optimizers: one step against hand-computed values, exact state round trips, refused specs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnlib import optimizers


def params(*values) -> dict[str, np.ndarray]:
    return {"0.W": np.array(values, dtype=np.float64)}


def grads(*values) -> dict[str, np.ndarray]:
    return {"0.W": np.array(values, dtype=np.float64)}


def test_sgd_plain_step():
    p = params(1.0, -2.0)
    optimizers.build({"type": "sgd", "lr": 0.1}, p).step(grads(0.5, 1.0))

    np.testing.assert_allclose(p["0.W"], [1.0 - 0.1 * 0.5, -2.0 - 0.1 * 1.0], rtol=1e-15)


def test_sgd_momentum_two_steps():
    p = params(1.0, -2.0)
    opt = optimizers.build({"type": "sgd", "lr": 0.1, "momentum": 0.9}, p)

    opt.step(grads(0.5, 1.0))  # v = g = [0.5, 1.0]; p = [0.95, -2.1]
    np.testing.assert_allclose(p["0.W"], [0.95, -2.1], rtol=1e-15)
    opt.step(grads(0.5, 1.0))  # v = 0.9 v + g = [0.95, 1.9]; p -= 0.1 v
    np.testing.assert_allclose(p["0.W"], [0.95 - 0.095, -2.1 - 0.19], rtol=1e-15)
    np.testing.assert_allclose(opt.state_dict()["momentum.0.W"], [0.95, 1.9], rtol=1e-15)


def test_sgd_nesterov_step_uses_the_look_ahead_gradient():
    p = params(1.0, -2.0)
    opt = optimizers.build({"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True}, p)

    opt.step(grads(0.5, 1.0))  # v = [0.5, 1.0]; update = g + 0.9 v = [0.95, 1.9]

    np.testing.assert_allclose(p["0.W"], [1.0 - 0.095, -2.0 - 0.19], rtol=1e-15)


def test_sgd_weight_decay_adds_the_l2_gradient():
    p = params(1.0, -2.0)
    optimizers.build({"type": "sgd", "lr": 0.1, "weight_decay": 0.1}, p).step(grads(0.5, 1.0))

    # g + 0.1 p = [0.6, 0.8]
    np.testing.assert_allclose(p["0.W"], [1.0 - 0.06, -2.0 - 0.08], rtol=1e-15)


def test_adam_two_steps_with_bias_correction():
    p = params(1.0, -2.0)
    opt = optimizers.build({"type": "adam", "lr": 0.1, "betas": [0.9, 0.999], "eps": 1e-8}, p)
    opt.step(grads(0.5, 1.0))
    opt.step(grads(-0.5, 2.0))

    expected = []
    for p0, g1, g2 in [(1.0, 0.5, -0.5), (-2.0, 1.0, 2.0)]:
        m1, v1 = 0.1 * g1, 0.001 * g1 * g1
        p1 = p0 - 0.1 * (m1 / 0.1) / (math.sqrt(v1 / 0.001) + 1e-8)
        m2, v2 = 0.9 * m1 + 0.1 * g2, 0.999 * v1 + 0.001 * g2 * g2
        c1, c2 = 1 - 0.9**2, 1 - 0.999**2
        expected.append(p1 - 0.1 * (m2 / c1) / (math.sqrt(v2 / c2) + 1e-8))
    np.testing.assert_allclose(p["0.W"], expected, rtol=1e-12)
    assert int(opt.state_dict()["t"]) == 2


def test_adamw_decays_the_weights_before_the_adam_step():
    p = params(1.0, -2.0)
    opt = optimizers.build({"type": "adamw", "lr": 0.1, "weight_decay": 0.1}, p)
    opt.step(grads(0.5, 1.0))

    # p *= 1 - 0.1 * 0.1; then the first Adam step is lr * g / (|g| + eps)
    expected = [0.99 - 0.1 * 0.5 / (0.5 + 1e-8), -1.98 - 0.1 * 1.0 / (1.0 + 1e-8)]
    np.testing.assert_allclose(p["0.W"], expected, rtol=1e-12)


def test_rmsprop_step():
    p = params(1.0, -2.0)
    optimizers.build({"type": "rmsprop", "lr": 0.01, "alpha": 0.9}, p).step(grads(0.5, 1.0))

    # s = 0.1 g^2; p -= 0.01 g / (sqrt(s) + 1e-8)
    expected = [
        1.0 - 0.01 * 0.5 / (math.sqrt(0.1 * 0.25) + 1e-8),
        -2.0 - 0.01 * 1.0 / (math.sqrt(0.1 * 1.0) + 1e-8),
    ]
    np.testing.assert_allclose(p["0.W"], expected, rtol=1e-12)


def test_clip_norm_scales_all_gradients_by_the_global_norm_and_leaves_them_untouched():
    p = {"0.W": np.zeros(1), "0.b": np.zeros(1)}
    g = {"0.W": np.array([3.0]), "0.b": np.array([4.0])}  # global norm 5
    optimizers.build({"type": "sgd", "lr": 1.0, "clip_norm": 1.0}, p).step(g)

    np.testing.assert_allclose([p["0.W"][0], p["0.b"][0]], [-0.6, -0.8], rtol=1e-6)
    assert g["0.W"][0] == 3.0 and g["0.b"][0] == 4.0


def test_step_lr_overrides_the_spec_lr():
    p = params(1.0)
    optimizers.build({"type": "sgd", "lr": 0.1}, p).step(grads(1.0), lr=0.5)

    assert p["0.W"][0] == 0.5


SPECS = [
    {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    {"type": "adam", "lr": 0.01, "clip_norm": 0.5},
    {"type": "adamw", "lr": 0.01},
    {"type": "rmsprop", "lr": 0.01, "weight_decay": 1e-4},
]


@pytest.mark.parametrize("spec", SPECS, ids=[s["type"] for s in SPECS])
def test_float32_parameters_stay_float32_and_are_updated_in_place(spec):
    p = {"0.W": np.ones((3, 2), dtype=np.float32), "0.b": np.zeros(2, dtype=np.float32)}
    arrays = dict(p)
    g = {k: np.full_like(v, 0.25) for k, v in p.items()}
    opt = optimizers.build(spec, p)
    opt.step(g)

    for name, a in p.items():
        assert a is arrays[name] and a.dtype == np.float32
    assert all(v.dtype == np.float32 for k, v in opt.state_dict().items() if k != "t")


@pytest.mark.parametrize("spec", SPECS, ids=[s["type"] for s in SPECS])
def test_state_dict_round_trip_resumes_identically(spec):
    rng = np.random.default_rng(0)
    p = {"0.W": rng.normal(size=(4, 3)).astype(np.float32), "0.b": np.zeros(3, np.float32)}
    steps = [
        {k: rng.normal(size=v.shape).astype(np.float32) for k, v in p.items()} for _ in range(5)
    ]
    original = optimizers.build(spec, p)
    for g in steps[:3]:
        original.step(g)
    saved_params = {k: v.copy() for k, v in p.items()}
    saved_state = original.state_dict()
    for g in steps[3:]:
        original.step(g)

    resumed = optimizers.build(spec, saved_params)
    resumed.load_state_dict(saved_state)
    for g in steps[3:]:
        resumed.step(g)

    for name in p:
        np.testing.assert_array_equal(saved_params[name], p[name])
    for key, value in original.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[key], value)


def test_state_keys_are_named_after_the_parameters():
    p = {"0.W": np.zeros(2), "2.b": np.zeros(1)}

    assert set(optimizers.build({"type": "adam", "lr": 1e-3}, p).state_dict()) == {
        "t", "m.0.W", "m.2.b", "v.0.W", "v.2.b"
    }  # fmt: skip
    assert set(optimizers.build({"type": "sgd", "lr": 0.1, "momentum": 0.5}, p).state_dict()) == {
        "t", "momentum.0.W", "momentum.2.b"
    }  # fmt: skip


def test_loading_a_state_with_other_keys_is_refused():
    opt = optimizers.build({"type": "adam", "lr": 1e-3}, params(1.0))
    with pytest.raises(ValueError, match="keys"):
        opt.load_state_dict({"t": np.array(1)})


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"type": "sgd", "lr": 0}, "lr must be > 0, got 0"),
        ({"type": "sgd", "lr": -0.1}, "lr must be > 0, got -0.1"),
        ({"type": "sgd"}, "lr: required"),
        ({"type": "sgd", "lr": 0.1, "momentum": -0.5}, "momentum must be >= 0, got -0.5"),
        ({"type": "sgd", "lr": 0.1, "nesterov": True}, "nesterov: requires momentum"),
        (
            {"type": "adam", "lr": 0.1, "betas": [1.0, 0.99]},
            r"betas\[0\] must be in \[0, 1\), got 1.0",
        ),
        ({"type": "adam", "lr": 0.1, "betas": [0.9]}, r"betas must be a pair"),
        ({"type": "adam", "lr": 0.1, "eps": 0}, "eps must be > 0, got 0"),
        ({"type": "rmsprop", "lr": 0.1, "alpha": 1.5}, "alpha must be in .*1.5"),
        ({"type": "sgd", "lr": 0.1, "clip_norm": 0}, "clip_norm must be > 0, got 0"),
        ({"type": "sgd", "lr": 0.1, "weight_decay": -1}, "weight_decay must be >= 0, got -1"),
        ({"type": "lbfgs", "lr": 0.1}, "'lbfgs'"),
        ({"type": "sgd", "lr": 0.1, "betas": [0.9, 0.99]}, r"\['betas'\] do not apply to 'sgd'"),
        ({"type": "adam", "lr": 0.1, "learning_rate": 0.1}, "learning_rate"),
        ({"type": "sgd", "lr": "fast"}, "lr must be a finite number, got 'fast'"),
    ],
)
def test_bad_hyper_parameters_are_refused_naming_field_and_value(spec, message):
    with pytest.raises(ValueError, match=message):
        optimizers.build(spec, params(1.0))


SPAN_SPECS = [
    {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    {"type": "sgd", "lr": 0.1},
    {"type": "adam", "lr": 0.01, "weight_decay": 1e-4},
    {"type": "adamw", "lr": 0.01},
    {"type": "rmsprop", "lr": 0.01, "weight_decay": 1e-4},
]


@pytest.mark.parametrize("spec", SPAN_SPECS, ids=[s["type"] for s in SPAN_SPECS])
def test_a_step_applied_in_spans_has_the_bits_of_a_whole_step(spec):
    rng = np.random.default_rng(3)
    start = {"0.W": rng.normal(size=(5, 7)), "0.b": rng.normal(size=7), "1.W": rng.normal(size=3)}
    start = {k: v.astype(np.float32) for k, v in start.items()}
    whole, spans = ({k: v.copy() for k, v in start.items()} for _ in range(2))
    a, b = optimizers.build(spec, whole), optimizers.build(spec, spans)
    for step in range(3):
        g = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in start.items()}
        a.step(g, lr=0.5 / (step + 1))
        b.begin_step(g, lr=0.5 / (step + 1))
        # uneven pieces, out of order, as an exchange completes them
        for name, lo, hi in [("1.W", 0, 3), ("0.W", 20, 35), ("0.b", 0, 7), ("0.W", 0, 20)]:
            b.update_span(name, lo, hi)

    for name in start:
        assert spans[name].tobytes() == whole[name].tobytes()
        assert (spans[name] != start[name]).any()
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key], value)


def test_a_step_in_spans_refuses_clip_norm_which_needs_the_whole_gradient():
    p = {"0.W": np.ones(4)}
    opt = optimizers.build({"type": "sgd", "lr": 0.1, "clip_norm": 1.0}, p)

    with pytest.raises(ValueError, match="clip_norm"):
        opt.begin_step({"0.W": np.ones(4)})
    assert opt.t == 0
