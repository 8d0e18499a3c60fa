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


def test_input_shape_may_be_a_list_tuple_or_array():
    for shape in ([5], (5,), np.array([5])):
        assert build_model(MLP, shape).input_shape == (5,)


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


CNN = {
    "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "batchnorm"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 6, "kernel_size": [3, 2], "stride": 1},
        {"type": "relu"},
        {"type": "avgpool2d", "pool_size": 2},
        {"type": "flatten"},
        {"type": "dropout", "rate": 0.3},
        {"type": "dense", "units": 5, "activation": "gelu"},
        {"type": "batchnorm"},
        {"type": "dense", "units": 3, "activation": "softmax"},
    ]
}


def test_cnn_shape_inference_names_and_layouts():
    model = build_model(CNN, [2, 10, 10], seed=0)

    shapes = {k: v.shape for k, v in model.parameters().items()}
    assert shapes == {
        "0.W": (4, 2, 3, 3),
        "0.b": (4,),
        "1.gamma": (4,),
        "1.beta": (4,),
        "3.W": (6, 4, 3, 2),
        "3.b": (6,),
        "8.W": (6 * 1 * 2, 5),
        "8.b": (5,),
        "9.gamma": (5,),
        "9.beta": (5,),
        "10.W": (5, 3),
        "10.b": (3,),
    }
    assert list(model.buffers()) == [
        "1.running_mean",
        "1.running_var",
        "9.running_mean",
        "9.running_var",
    ]
    assert model.output_shape == (3,)
    assert set(model.state_dict()) == set(model.parameters()) | set(model.buffers())


def test_cnn_backward_matches_finite_differences_with_dropout_fixed():
    model = build_model(CNN, [2, 10, 10], seed=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((4, 2, 10, 10))
    r = np.random.default_rng(1).standard_normal((4, 3))
    model.forward(x, training=True)
    dropout = next(layer for layer in model.layers if hasattr(layer, "fix_mask"))
    dropout.fix_mask(dropout.mask)

    def loss():
        return float((model.forward(x, training=True) * r).sum())

    model.forward(x, training=True)
    model.backward(r)
    grads = {k: v.copy() for k, v in model.gradients().items()}
    for name in ["0.W", "1.gamma", "3.b", "8.W", "9.beta", "10.W"]:
        numeric = numerical_gradient(loss, model.parameters()[name])
        assert relative_error(grads[name], numeric) < 1e-6, name


def test_batchnorm_training_updates_running_stats_and_eval_uses_them():
    model = build_model({"layers": [{"type": "batchnorm", "momentum": 0.5}]}, [3], seed=0)
    x = np.random.default_rng(0).normal(4.0, 2.0, (64, 3)).astype(np.float32)

    y_train = model.forward(x, training=True)
    running = model.buffers()

    np.testing.assert_allclose(running["0.running_mean"], 0.5 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(running["0.running_var"], 0.5 + 0.5 * x.var(0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(y_train.mean(0), 0, atol=1e-5)
    y_eval = model.forward(x, training=False)
    expected = (x - running["0.running_mean"]) / np.sqrt(running["0.running_var"] + 1e-5)
    np.testing.assert_allclose(y_eval, expected, rtol=1e-5)


def test_dropout_is_seeded_by_the_model_seed_and_identity_in_eval():
    spec = {"layers": [{"type": "dropout", "rate": 0.5}]}
    x = np.ones((8, 50), dtype=np.float32)

    a = build_model(spec, [50], seed=1).forward(x, training=True)
    b = build_model(spec, [50], seed=1).forward(x, training=True)
    c = build_model(spec, [50], seed=2).forward(x, training=True)

    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert set(np.unique(a)) == {0.0, 2.0}
    np.testing.assert_array_equal(build_model(spec, [50], seed=1).forward(x, training=False), x)


def test_dropout_layers_do_not_change_the_other_weights():
    plain = build_model({"layers": [{"type": "dense", "units": 4}]}, [3], seed=5)
    with_dropout = build_model(
        {"layers": [{"type": "dropout", "rate": 0.1}, {"type": "dense", "units": 4}]}, [3], seed=5
    )

    np.testing.assert_array_equal(plain.parameters()["0.W"], with_dropout.parameters()["1.W"])


def test_conv_model_same_seed_bit_identical():
    a = build_model(CNN, [2, 10, 10], seed=9).state_dict()
    b = build_model(CNN, [2, 10, 10], seed=9).state_dict()

    assert all(a[k].tobytes() == b[k].tobytes() for k in a)


def test_layer_configs_round_trip_to_an_equivalent_model():
    model = build_model(CNN, [2, 10, 10], seed=3)
    configs = [layers[0].config() for _, layers in model.groups]
    again = build_model({"layers": configs}, [2, 10, 10], seed=3)

    assert [layers[0].config() for _, layers in again.groups] == configs
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[k], v)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_relu_runs_after_max_pool_with_identical_outputs_and_gradients(activation):
    spec = {
        "layers": [
            {"type": "conv2d", "filters": 3, "kernel_size": 3, "activation": activation},
            {"type": "maxpool2d", "pool_size": 2, "stride": 1},
            {"type": "conv2d", "filters": 2, "kernel_size": 2},
            {"type": activation},
            {"type": "maxpool2d", "pool_size": 2},
        ]
    }
    model = build_model(spec, [1, 9, 9], seed=0, dtype=np.float64)
    x = np.zeros((3, 1, 9, 9))  # blank background: ties in every pool window outside the blob
    x[:, :, 3:6, 2:7] = np.random.default_rng(0).standard_normal((3, 1, 3, 5))
    dout = np.random.default_rng(1).standard_normal((3, *model.output_shape))

    y = model.forward(x, training=True)
    dx = model.backward(dout)
    grads = {k: v.copy() for k, v in model.gradients().items()}

    spec_order = [layer for _, layers in model.groups for layer in layers]
    assert spec_order != model.layers  # the swap did happen
    a = x
    for layer in spec_order:
        a = layer.forward(a, True)
    g = dout
    for layer in reversed(spec_order):
        g = layer.backward(g)
    np.testing.assert_array_equal(y, a)
    np.testing.assert_array_equal(dx, g)
    for k, v in model.gradients().items():
        np.testing.assert_array_equal(grads[k], v)
    assert model.output_shape == (2, 2, 2) == y.shape[1:]


def test_backward_after_an_eval_forward_gives_the_eval_mode_gradients():
    model = build_model(CNN, [2, 10, 10], seed=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((4, 2, 10, 10))
    model.forward(x, training=True)  # move the running statistics away from 0 / 1
    r = np.random.default_rng(1).standard_normal((4, 3))

    def loss():
        return float((model.forward(x, training=False) * r).sum())

    model.forward(x, training=False)
    dx = model.backward(r)
    grads = {k: v.copy() for k, v in model.gradients().items()}

    assert relative_error(dx, numerical_gradient(loss, x)) < 1e-6
    for name in ["0.W", "1.gamma", "3.W", "8.b", "9.beta", "10.W"]:
        numeric = numerical_gradient(loss, model.parameters()[name])
        assert relative_error(grads[name], numeric) < 1e-6, name


def test_every_layer_type_keeps_float32_forward_and_backward():
    model = build_model(CNN, [2, 10, 10], seed=0)
    x = np.random.default_rng(0).standard_normal((4, 2, 10, 10)).astype(np.float32)

    for training in (True, False):
        y = model.forward(x, training=training)
        dx = model.backward(np.ones_like(y))
        assert y.dtype == dx.dtype == np.float32
        assert all(g.dtype == np.float32 for g in model.gradients().values())
        assert all(b.dtype == np.float32 for b in model.buffers().values())


def test_a_bad_alpha_after_a_dense_layer_is_a_value_error_naming_the_layer():
    spec = {"layers": [{"type": "dense", "units": 4}, {"type": "leaky_relu", "alpha": "x"}]}

    with pytest.raises(ValueError, match=r"layer 1 .*alpha"):
        build_model(spec, (3,))


def test_a_large_first_dense_layer_runs_in_row_blocks_last_rows_first():
    model = build_model({"layers": [{"type": "flatten"}, {"type": "dense", "units": 256}]}, [784])
    small = build_model({"layers": [{"type": "dense", "units": 8}]}, [64])

    assert model.layers[1].input_blocks == [(576, 784), (384, 576), (192, 384), (0, 192)]
    assert model.primable()
    assert small.layers[0].input_blocks is None and not small.primable()


def test_a_blocked_product_advanced_block_by_block_is_the_forward_bit_for_bit():
    from nnlib.layers.dense import BlockedProduct

    spec = {
        "layers": [
            {"type": "flatten"},
            {"type": "dense", "units": 300},
            {"type": "dense", "units": 4},
        ]
    }
    model = build_model(spec, [1, 28, 28], seed=1)
    model.layers[1].params["b"] += 0.5
    x = np.random.default_rng(0).standard_normal((33, 1, 28, 28)).astype(np.float32)
    dense = model.layers[1]

    product = BlockedProduct(dense, x.reshape(33, -1))
    steps = 0
    while product.advance():
        steps += 1
    primed = product.result()
    out_primed = model.forward(x, training=True, primed=primed)
    grads_primed = {k: v.copy() for k, v in _grads_after(model, out_primed).items()}
    out = model.forward(x, training=True)

    assert steps == len(dense.input_blocks) > 1
    assert primed.tobytes() == dense.forward(x.reshape(33, -1), True).tobytes()
    assert out_primed.tobytes() == out.tobytes()
    for name, grad in _grads_after(model, out).items():
        assert grad.tobytes() == grads_primed[name].tobytes()  # backward saw the same input
    np.testing.assert_allclose(
        primed, x.reshape(33, -1) @ dense.params["W"] + dense.params["b"], rtol=1e-5, atol=1e-5
    )


def _grads_after(model, out):
    model.backward(np.ones_like(out), input_grad=False)
    return model.gradients()
