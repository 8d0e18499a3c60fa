"""Model building: shape inference, parameter names and layouts, seeds, state, prediction."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import Model, build_model
from nnlib.gradcheck import numerical_gradient, relative_error

MLP = {
    "layers": [
        {"type": "dense", "units": 8, "activation": "relu"},
        {"type": "dense", "units": 6},
        {"type": "tanh"},
        {"type": "dense", "units": 3},
    ]
}


def test_mlp_parameter_names_layouts_and_count():
    model = build_model(MLP, [5], seed=0)

    shapes = {k: v.shape for k, v in model.parameters().items()}
    assert shapes == {
        "0.W": (5, 8),
        "0.b": (8,),
        "1.W": (8, 6),
        "1.b": (6,),
        "3.W": (6, 3),
        "3.b": (3,),
    }
    assert list(model.gradients()) == list(model.parameters())
    assert model.num_parameters() == 5 * 8 + 8 + 8 * 6 + 6 + 6 * 3 + 3
    assert model.input_shape == (5,) and model.output_shape == (3,)
    assert isinstance(model, Model) and model.spec == MLP


def test_same_seed_gives_bit_identical_weights_and_other_seeds_differ():
    a = build_model(MLP, [5], seed=3).parameters()
    b = build_model(MLP, [5], seed=3).parameters()
    c = build_model(MLP, [5], seed=4).parameters()

    for key in a:
        assert a[key].tobytes() == b[key].tobytes()
    assert a["0.W"].tobytes() != c["0.W"].tobytes()


def test_float32_model_stays_float32_end_to_end():
    model = build_model(MLP, [5], seed=0)
    y = model.forward(np.ones((4, 5), dtype=np.float64), training=True)
    dx = model.backward(np.ones_like(y, dtype=np.float64))

    assert y.dtype == dx.dtype == np.float32
    assert all(p.dtype == np.float32 for p in model.parameters().values())
    assert all(g.dtype == np.float32 for g in model.gradients().values())


def test_he_init_for_relu_layers_and_xavier_otherwise():
    model = build_model(
        {
            "layers": [
                {"type": "dense", "units": 400, "activation": "relu"},
                {"type": "dense", "units": 400},
            ]
        },
        [400],
        seed=0,
    )
    w_relu, w_linear = model.parameters()["0.W"], model.parameters()["1.W"]

    assert w_relu.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    limit = np.sqrt(6 / 800)
    assert np.abs(w_linear).max() <= limit
    assert w_linear.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)


def test_model_backward_matches_finite_differences_for_all_parameters():
    model = build_model(MLP, [5], seed=1, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((4, 5))
    r = np.random.default_rng(1).standard_normal((4, 3))

    def loss():
        return float((model.forward(x, training=True) * r).sum())

    model.forward(x, training=True)
    dx = model.backward(r)

    assert relative_error(dx, numerical_gradient(loss, x)) < 1e-6
    for name, p in model.parameters().items():
        assert relative_error(model.gradients()[name], numerical_gradient(loss, p)) < 1e-6, name


def test_backward_without_input_grad_gives_the_same_parameter_gradients():
    model = build_model(MLP, [5], seed=1, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((4, 5))
    r = np.ones((4, 3))
    model.forward(x, True)
    model.backward(r)
    full = {k: v.copy() for k, v in model.gradients().items()}

    model.forward(x, True)
    assert model.backward(r, input_grad=False) is None
    for k, v in model.gradients().items():
        np.testing.assert_array_equal(v, full[k])


def test_state_dict_round_trip_restores_outputs_and_keeps_array_identity():
    a = build_model(MLP, [5], seed=1)
    b = build_model(MLP, [5], seed=2)
    b_arrays = b.parameters()
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)

    b.load_state_dict(a.state_dict())

    np.testing.assert_array_equal(a.forward(x, False), b.forward(x, False))
    assert all(b.parameters()[k] is b_arrays[k] for k in b_arrays)


def test_state_dict_is_a_copy():
    model = build_model(MLP, [5], seed=1)
    state = model.state_dict()
    state["0.W"][...] = 0

    assert np.any(model.parameters()["0.W"] != 0)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s.pop("0.b"), "missing ['0.b']"),
        (lambda s: s.update({"9.W": np.zeros(1)}), "unexpected ['9.W']"),
        (lambda s: s.update({"0.W": np.zeros((8, 5))}), "'0.W'"),
    ],
)
def test_load_state_dict_rejects_mismatched_keys_and_shapes(mutate, message):
    model = build_model(MLP, [5], seed=1)
    state = model.state_dict()
    mutate(state)

    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        model.load_state_dict(state)


def test_predict_in_batches_equals_one_forward_pass():
    model = build_model(MLP, [5], seed=1)
    x = np.random.default_rng(0).standard_normal((10, 5)).astype(np.float32)

    np.testing.assert_allclose(model.predict(x, batch_size=3), model.forward(x, False), rtol=1e-6)
    assert model.predict(x[:0]).shape == (0, 3)


def test_forward_rejects_wrong_input_shape():
    model = build_model(MLP, [5], seed=1)

    with pytest.raises(ValueError, match=r"\(N, 5\).*\(2, 4\)"):
        model.forward(np.zeros((2, 4)), False)
