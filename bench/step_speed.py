"""Forward+backward milliseconds per batch: nnlib (float32) vs PyTorch CPU, same thread count.

    python bench/step_speed.py [--padding valid|same] [--threads 2] [--repeats 20]

Times the training step without the optimizer (the layers' share of an epoch) for the issue's
CNN and MLP at batch 128 on 28x28 inputs, plus a per-layer breakdown of nnlib's CNN.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.blas_kernels import describe, use_this_cpus_kernels  # noqa: E402

use_this_cpus_kernels()  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from nnlib import build_model, parallel  # noqa: E402
from worker.huge_pages import advise_huge_pages  # noqa: E402

CLOCK = time.perf_counter


def cnn_spec(padding: str) -> dict:
    return {
        "layers": [
            {
                "type": "conv2d",
                "filters": 32,
                "kernel_size": 5,
                "padding": padding,
                "activation": "relu",
            },
            {"type": "maxpool2d", "pool_size": 2},
            {
                "type": "conv2d",
                "filters": 64,
                "kernel_size": 5,
                "padding": padding,
                "activation": "relu",
            },
            {"type": "maxpool2d", "pool_size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 128, "activation": "relu"},
            {"type": "dense", "units": 10},
        ]
    }


MLP = {
    "layers": [
        {"type": "dense", "units": 256, "activation": "relu"},
        {"type": "dense", "units": 128, "activation": "relu"},
        {"type": "dense", "units": 10},
    ]
}


def best_ms(step, repeats: int) -> float:
    """Minimum over repeats: the machine is shared, and interference only ever adds time."""
    step()
    times = []
    for _ in range(repeats):
        t0 = CLOCK()
        step()
        times.append(CLOCK() - t0)
    return 1000 * min(times)


def interleaved_ms(a, b, repeats: int) -> tuple[float, float]:
    """Minimum times of two steps measured alternately, so both see the same machine load."""
    ta, tb = [], []
    a(), b()
    for _ in range(repeats):
        for step, out in ((a, ta), (b, tb)):
            t0 = CLOCK()
            step()
            out.append(CLOCK() - t0)
    return 1000 * min(ta), 1000 * min(tb)


def nnlib_step(model, x, dout):
    def step():
        model.forward(x, training=True)
        model.backward(dout, input_grad=False)

    return step


def serial_blas_step(step, blas_threads: int | None):
    """The CNN step with NumPy's BLAS on ``blas_threads`` (default 1, so nnlib's threads run the
    convolution chunks, GEMMs included: nnlib.parallel.set_blas_serial)."""
    limit = 1 if blas_threads is None else blas_threads

    def limited():
        parallel.set_blas_serial(limit == 1)  # only for this step: the MLP's BLAS has threads
        try:
            with threadpool_limits(limits=limit, user_api="blas"):
                step()
        finally:
            parallel.set_blas_serial(False)

    return limited


def layer_breakdown(model, x, dout, repeats: int) -> list[tuple[str, float, float]]:
    rows = []
    acts = [x]
    for layer in model.layers:
        acts.append(layer.forward(acts[-1], True))
    grads = [dout]
    for layer in reversed(model.layers):
        grads.append(layer.backward(grads[-1]))
    grads = grads[::-1]
    for i, layer in enumerate(model.layers):
        f = best_ms(lambda: layer.forward(acts[i], True), repeats)  # noqa: B023
        b = best_ms(lambda: layer.backward(grads[i + 1], input_grad=i > 0), repeats)  # noqa: B023
        rows.append((type(layer).__name__, f, b))
    return rows


def torch_models(padding: str):
    import torch
    from torch import nn

    pad = 2 if padding == "same" else 0
    side = 28 if padding == "same" else 24
    side = (side // 2 + 2 * pad - 4) // 2
    cnn = nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * side * side, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip
    mlp = nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
    )
    return torch, cnn, mlp


def torch_step(torch, model, x, y):
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--padding", default="valid")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument(
        "--blas-threads", type=int, default=None,
        help="BLAS threads for nnlib's CNN (default 1: nnlib's threads run the conv chunks)",
    )  # fmt: skip
    parser.add_argument(
        "--cpu", action="store_true", help="process CPU time, not wall time (for a busy machine)"
    )
    args = parser.parse_args()
    if args.cpu:
        global CLOCK
        CLOCK = time.process_time
    advise_huge_pages()  # as a worker does: BLAS buffers on huge pages
    print(describe())
    rng = np.random.default_rng(0)
    x_img = rng.random((128, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, 128)
    dout = rng.standard_normal((128, 10)).astype(np.float32) / 128
    try:
        torch, tcnn, tmlp = torch_models(args.padding)
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    parallel.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        cnn = build_model(cnn_spec(args.padding), (1, 28, 28), seed=0)
        mlp = build_model(MLP, (784,), seed=0)
        if args.breakdown:
            parallel.set_blas_serial(args.blas_threads in (None, 1))
            limit = args.blas_threads or 1
            with threadpool_limits(limits=limit, user_api="blas"):
                rows = layer_breakdown(cnn, x_img, dout, args.repeats)
            parallel.set_blas_serial(False)
            for name, f, b in rows:
                print(f"  {name:16s} forward {f:7.2f} ms  backward {b:7.2f} ms")
        for name, model, x in (("cnn", cnn, x_img), ("mlp", mlp, x_img.reshape(128, -1))):
            ours = nnlib_step(model, x, dout)
            if name == "cnn":
                ours = serial_blas_step(ours, args.blas_threads)
            if torch is None:
                print(f"{name}: nnlib {best_ms(ours, args.repeats):7.2f} ms/batch")
                continue
            tmodel = tcnn if name == "cnn" else tmlp
            theirs = torch_step(torch, tmodel, torch.from_numpy(x), torch.from_numpy(labels))
            a, b = interleaved_ms(ours, theirs, args.repeats)
            print(f"{name}: nnlib {a:7.2f} ms/batch  torch {b:7.2f} ms/batch  ratio {a / b:.2f}")


if __name__ == "__main__":
    main()
