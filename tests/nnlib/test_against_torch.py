"""Optional cross-check: optimizers and losses agree with PyTorch in float64 (skipped without)."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import losses, optimizers

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

CASES = [
    ({"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ({"type": "adam", "lr": 0.01, "betas": [0.8, 0.99], "weight_decay": 0.1},
     lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    ({"type": "adamw", "lr": 0.01, "weight_decay": 0.1},
     lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
    ({"type": "rmsprop", "lr": 0.01, "alpha": 0.9, "weight_decay": 0.1},
     lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, weight_decay=0.1, eps=1e-8)),
]  # fmt: skip


@pytest.mark.parametrize("spec,make_torch", CASES, ids=[c[0]["type"] for c in CASES])
def test_five_steps_match_torch_optim(spec, make_torch):
    rng = np.random.default_rng(0)
    ours = {"0.W": rng.normal(size=(3, 4)), "0.b": rng.normal(size=4)}
    theirs = [torch.tensor(v.copy(), requires_grad=True) for v in ours.values()]
    opt, reference = optimizers.build(spec, ours), make_torch(theirs)

    for _ in range(5):
        grads = {k: rng.normal(size=v.shape) for k, v in ours.items()}
        opt.step(grads)
        for tensor, g in zip(theirs, grads.values(), strict=True):
            tensor.grad = torch.tensor(g)
        reference.step()

    for value, tensor in zip(ours.values(), theirs, strict=True):
        np.testing.assert_allclose(value, tensor.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_losses_and_gradients_match_torch():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(6, 5)) * 4, rng.integers(0, 5, size=6)
    binary, targets = rng.normal(size=(6, 1)) * 4, rng.integers(0, 2, size=(6, 1)).astype(float)
    pairs = [
        (losses.get("cross_entropy", label_smoothing=0.1), logits, labels,
         torch.nn.CrossEntropyLoss(label_smoothing=0.1), torch.tensor(labels)),
        (losses.get("binary_cross_entropy"), binary, targets,
         torch.nn.BCEWithLogitsLoss(), torch.tensor(targets)),
        (losses.get("mse"), binary, targets, torch.nn.MSELoss(), torch.tensor(targets)),
    ]  # fmt: skip
    for ours, outputs, y, reference, y_torch in pairs:
        value = ours.forward(outputs, y)
        grad = ours.backward()
        tensor = torch.tensor(outputs, requires_grad=True)
        expected = reference(tensor, y_torch)
        expected.backward()

        assert value == pytest.approx(expected.item(), rel=1e-12)
        np.testing.assert_allclose(grad, tensor.grad.numpy(), rtol=1e-10, atol=1e-15)
