"""One training step of the multi-host CNN, layer by layer: nnlib next to PyTorch, 1 thread each.

The model is ``bench/multihost_models.py``'s ``cnn`` (float32, (N, 1, 28, 28)). Both frameworks
run in this process on the same Fashion-MNIST batch with BLAS / torch intra-op limited to one
thread (what each multi-host worker gets). Every round times one nnlib step then one torch step
(then the other order next round), each layer's forward and backward separately, and the step's
total; printed are the medians over rounds of the per-round ratio nnlib / torch, so load that
comes and goes on a shared machine hits both sides of a ratio alike.

Per-layer torch times come from running each module on a detached input (its own small graph),
which is how torch's autograd spends the time anyway; the "step" rows are whole steps (nnlib's
``loss_and_gradients``; torch's ``loss.backward()`` on the chained model), timed separately.
The first layer's input gradient is not computed by either side.

    OMP_NUM_THREADS=1 python bench/cnn_layers.py [--batch 512] [--rounds 15]

What it showed (2026-11-29, load 3-6 on 2 cores): the step is 1.04-1.16x torch's, and conv2
(32->64, 5x5 on 14x14) is all of the gap: forward 1.1-1.3x, backward 1.35-1.6x; every other
layer is at or below torch. Its three GEMMs (10.3 GFLOP each) run at 75-95 GFLOP/s in OpenBLAS
against ~108 for oneDNN; the im2col copies are ~10% of the layer. Tried and not kept (no gain in
paired runs): smaller/larger chunks, dx by dcols + col2im, kw folded into the dx GEMM's N,
padding rows trimmed out of K, dW from the dout columns (no input im2col).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.blas_kernels import describe, use_this_cpus_kernels  # noqa: E402

use_this_cpus_kernels()  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402

from bench.multihost_models import model_spec, torch_model  # noqa: E402
from worker.huge_pages import advise_huge_pages  # noqa: E402

CLOCK = time.perf_counter


def nnlib_step(model, loss, x, y, times: dict) -> None:
    """Forward, loss, backward (no input gradient below the first trainable layer), per layer."""
    for i, layer in enumerate(model.layers):
        started = CLOCK()
        x = layer.forward(x, True)
        times.setdefault(f"{i} {_name(layer)} fwd", []).append(CLOCK() - started)
    loss.forward(x, y)
    dout = loss.backward()
    for i in range(len(model.layers) - 1, -1, -1):
        layer = model.layers[i]
        started = CLOCK()
        dout = layer.backward(dout, input_grad=i > 0)
        times.setdefault(f"{i} {_name(layer)} bwd", []).append(CLOCK() - started)


def _name(layer) -> str:
    return getattr(layer, "name", None) or layer.type_name


def torch_step(modules, x, y, times: dict, names: list[str]) -> None:
    """Each module on a detached copy of its input, so its backward is timed alone."""
    import torch

    inputs, outputs = [], []
    for i, module in enumerate(modules):
        x = x.detach().requires_grad_(i > 0)
        started = CLOCK()
        out = module(x)
        times.setdefault(f"{names[i]} fwd", []).append(CLOCK() - started)
        inputs.append(x)
        outputs.append(out)
        x = out
    value = torch.nn.functional.cross_entropy(x, y)
    grad = torch.autograd.grad(value, x)[0]
    for i in range(len(modules) - 1, -1, -1):
        started = CLOCK()
        outputs[i].backward(grad)
        times.setdefault(f"{names[i]} bwd", []).append(CLOCK() - started)
        grad = inputs[i].grad


def torch_names(nnlib_model, modules) -> list[str]:
    """nnlib's row name for each torch module: nnlib runs ReLU after a max-pool (same maths)."""
    order = [_name(layer) for layer in nnlib_model.layers]
    torch_kinds = {
        "Conv2d": "conv2d", "ReLU": "relu", "MaxPool2d": "maxpool2d", "Flatten": "flatten",
        "Linear": "dense",
    }  # fmt: skip
    names, used = [], set()
    for module in modules:
        kind = torch_kinds[type(module).__name__]
        i = next(i for i, n in enumerate(order) if n == kind and i not in used)
        used.add(i)
        names.append(f"{i} {kind}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    import nnlib
    from nnlib import parallel
    from worker.datasets import load_dataset

    torch.set_num_threads(1)
    parallel.set_num_threads(1)
    parallel.set_blas_serial(True)
    data = load_dataset({"name": "fashion-mnist"}, seed=0)
    x = np.ascontiguousarray(data.x_train[: args.batch], dtype=np.float32)
    y = data.y_train[: args.batch]
    model = nnlib.build_model(model_spec("cnn"), data.input_shape, seed=0)
    loss = nnlib.losses.get("cross_entropy")
    net = torch_model("cnn")
    modules = list(net)
    names = torch_names(model, modules)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    ratios: dict[str, list[float]] = {}
    print(f"load before: {os.getloadavg()}", flush=True)
    advise_huge_pages()  # as a worker does: BLAS buffers on huge pages
    print(describe(), flush=True)
    with threadpool_limits(limits=1):
        for r in range(args.rounds + 2):
            ours, theirs = one_round(model, loss, (x, y), net, (xt, yt), names, torch_first=r % 2)
            if r < 2:  # warm-up rounds
                continue
            for key in ours:
                if key in theirs:
                    ratios.setdefault(key, []).append(ours[key][0] / theirs[key][0])
                    ratios.setdefault(f"{key} ms", []).append(ours[key][0] * 1e3)
                    ratios.setdefault(f"{key} torch ms", []).append(theirs[key][0] * 1e3)
    print(f"load after: {os.getloadavg()}", flush=True)
    print(f"batch {args.batch}, 1 thread, {args.rounds} rounds: medians")
    print(f"{'layer':22s} {'nnlib ms':>9s} {'torch ms':>9s} {'ratio':>7s}")
    for key in ratios:
        if key.endswith(" ms"):
            continue
        ms, tms = (statistics.median(ratios[f"{key}{s}"]) for s in (" ms", " torch ms"))
        print(f"{key:22s} {ms:9.2f} {tms:9.2f} {statistics.median(ratios[key]):7.2f}")


def one_round(model, loss, batch, net, torch_batch, names, torch_first: bool) -> tuple:
    """Per-layer and whole-step seconds of one nnlib step and one torch step each."""
    import nnlib

    ours: dict[str, list[float]] = {}
    theirs: dict[str, list[float]] = {}
    runs = [
        lambda: nnlib_step(model, loss, *batch, ours),
        lambda: torch_step(list(net), *torch_batch, theirs, names),
        lambda: _whole(ours, lambda: nnlib.loss_and_gradients(model, loss, *batch)),
        lambda: _whole(theirs, lambda: _torch_whole(net, *torch_batch)),
    ]
    order = [1, 0, 3, 2] if torch_first else [0, 1, 2, 3]
    for i in order:
        runs[i]()
    return ours, theirs


def _whole(times: dict, fn) -> None:
    started = CLOCK()
    fn()
    times.setdefault("step", []).append(CLOCK() - started)


def _torch_whole(net, x, y) -> None:
    import torch

    net.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(net(x), y).backward()


if __name__ == "__main__":
    main()
