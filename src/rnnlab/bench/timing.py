"""Timing for ``rnnlab bench``: one row's callables, timed library by library.

Shape legend: B batch, T time, D input features, H hidden units, G gates per cell.

:func:`time_row` builds an rnnlab layer and its PyTorch twin with the same weights and
times a training step, inference and the two streaming steps of each with
:func:`median_times`; :func:`sgemm_peak` is the machine's float32 GEMM rate the
throughput is compared against. Throughput counts the matrix-product FLOPs only
(:func:`matmul_flops`).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from ..cells import LAYERS, RECURRENT
from ..stream import Stream

#: gates per cell, from each cell's own facts
GATES = {name: LAYERS[name].Cell.n_gates for name in RECURRENT}  # what the bench times


def import_torch():
    """The torch module, or None when it cannot be imported."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def median_times(fns: dict, repeats: int, warmup: int, block: int = 3) -> tuple[dict, dict]:
    """Median and minimum seconds of each callable, timed in blocks, one library at a time.

    Both libraries keep thread pools whose idle threads spin for a while before they
    sleep (OpenBLAS's, the OpenMP runtimes of numba and PyTorch). Alternating single
    calls would time each library against the other's spinning threads, which on a
    machine with few cores slows whichever runs second. So each library runs ``warmup``
    untimed calls and then a block of at most ``block`` timed ones; passes over the
    libraries, in alternating order, share out ``repeats``. Short blocks spread each
    library's calls over the whole run: on a shared virtual machine the speed drifts for
    seconds at a time, and one long block per library can catch such a slow phase and
    skew the ratio. The median is the figure reported; the minimum is kept too, to show
    bursts of load (measurements: docs/performance.md).
    """
    times = {k: [] for k in fns}
    keys = list(fns)
    left, flip = repeats, False
    while left > 0:
        n = min(block, left)
        for k in (keys[::-1] if flip else keys):
            for _ in range(max(warmup, 1)):
                fns[k]()
            for _ in range(n):
                t = time.perf_counter()
                fns[k]()
                times[k].append(time.perf_counter() - t)
        left -= n
        flip = not flip
    return ({k: statistics.median(v) for k, v in times.items()},
            {k: min(v) for k, v in times.items()})


def sgemm_peak(torch) -> dict:
    """Best float32 GEMM rate (GFLOP/s) of NumPy's BLAS and of PyTorch, n = 2048."""
    n = 2048
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    c = np.empty_like(a)
    fns = {"numpy": lambda: np.matmul(a, a, out=c)}
    if torch is not None:
        ta, tc = torch.from_numpy(a), torch.empty(n, n)
        fns["torch"] = lambda: torch.matmul(ta, ta, out=tc)
    best = {k: 2 * n**3 / 1e9 / min(_repeat(f, 5)) for k, f in fns.items()}
    best["best"] = max(best.values())
    return best


def bf16_gemm_peak(torch, n: int = 2048) -> dict:
    """Best bf16 GEMM rate (GFLOP/s, float32 sums) of PyTorch and of rnnlab's bf16 tile,
    n x n x n: the roof the bf16 rows are measured against."""
    from ..kernels import fast_layers

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    ta = torch.from_numpy(a).to(torch.bfloat16)
    tc = torch.empty(n, n, dtype=torch.bfloat16)
    fns = {"torch": lambda: torch.matmul(ta, ta, out=tc),
           "rnnlab": lambda: fast_layers().matmul_bf16(a, a)}
    best = {k: 2 * n**3 / 1e9 / min(_repeat(f, 3)) for k, f in fns.items()}
    best["best"] = max(best.values())
    return best


def _repeat(f, k):
    f()
    out = []
    for _ in range(k):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return out


def make_row(cell, shape, seed, torch):
    """rnnlab layer, its PyTorch twin (same weights) and the inputs of one row."""
    B, T, D, H = shape
    rng = np.random.default_rng(seed)
    layer = LAYERS[cell](D, H, seed=seed)
    x = rng.standard_normal((B, T, D), dtype=np.float32)
    dy = rng.standard_normal((B, T, H), dtype=np.float32)
    module = None
    if torch is not None:
        from ..interop import to_torch

        module = to_torch(layer)
    return layer, module, x, dy


def matmul_flops(cell, shape) -> float:
    B, T, D, H = shape
    return 2.0 * B * T * (D + H) * GATES[cell] * H


def time_row(cell, shape, cfg, torch) -> dict:
    layer, module, x, dy = make_row(cell, shape, cfg.seed, torch)
    B, T, D, H = shape

    def r_train():
        _, _, cache = layer.forward(x)
        layer.backward(cache, dy)

    def r_infer():
        layer.infer(x)  # nothing kept for backward, as under torch.inference_mode

    x1 = x[:1, 0]  # (1, D)

    def r_stream():
        state = None
        for _ in range(cfg.stream_steps):
            _, state = layer.step(x1, state)

    streamer = Stream(layer, 1)

    def r_stream_lean():
        for _ in range(cfg.stream_steps):
            streamer.step(x1)

    train, infer = {"rnnlab": r_train}, {"rnnlab": r_infer}
    if cfg.bf16:  # the same weights, the products in bf16
        layer16 = make_row(cell, shape, cfg.seed, None)[0]
        layer16.precision = "bf16"

        def r_train16():
            _, _, cache = layer16.forward(x)
            layer16.backward(cache, dy)

        train["rnnlab_bf16"], infer["rnnlab_bf16"] = r_train16, lambda: layer16.infer(x)
    stream, stream_lean = {"rnnlab": r_stream}, {"rnnlab": r_stream_lean}
    agree = None
    if module is not None:
        xt, dyt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dy)
        x1t = torch.from_numpy(np.ascontiguousarray(x[:1, :1]))  # (1, 1, D)

        def t_train():
            module.zero_grad(set_to_none=True)
            xt.grad = None
            y, _ = module(xt)
            y.backward(dyt)

        def t_infer():
            with torch.inference_mode():
                module(xt)

        def t_stream():
            state = None
            with torch.inference_mode():
                for _ in range(cfg.stream_steps):
                    _, state = module(x1t, state)

        train["torch"], infer["torch"] = t_train, t_infer
        if cfg.bf16:  # what a PyTorch user writes for bf16 on the CPU
            def t_train16():
                module.zero_grad(set_to_none=True)
                xt.grad = None
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    y, _ = module(xt)
                y.float().backward(dyt)

            def t_infer16():
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                    module(xt)

            try:  # PyTorch's bf16 LSTM needs oneDNN's bf16 kernels, i.e. such a CPU
                t_train16()
                train["torch_bf16"], infer["torch_bf16"] = t_train16, t_infer16
            except RuntimeError:
                pass
        stream["torch"] = stream_lean["torch"] = t_stream
        with torch.inference_mode():
            y_torch = module(torch.from_numpy(x))[0].numpy()
        agree = float(np.abs(y_torch - layer.forward(x)[0]).max())  # same weights, same maths
    fl = matmul_flops(cell, shape)
    row = {"cell": cell, "shape": {"B": B, "T": T, "D": D, "H": H},
           "max_abs_diff_outputs": agree}
    if torch is not None:
        row["gemm_only"] = _gemm_only(cell, shape, cfg, torch)
    for kind, fns, flops, scale in (
        ("train", train, 3 * fl, 1.0),
        ("infer", infer, fl, 1.0),
        ("stream", stream, matmul_flops(cell, (1, 1, D, H)), 1.0 / cfg.stream_steps),
        ("stream_lean", stream_lean, matmul_flops(cell, (1, 1, D, H)), 1.0 / cfg.stream_steps),
    ):
        med, low = median_times(fns, cfg.repeats, cfg.warmup)
        entry = {"gflop": flops / 1e9}
        for lib, sec in med.items():
            entry[f"{lib}_ms"] = sec * scale * 1e3
            entry[f"{lib}_min_ms"] = low[lib] * scale * 1e3
            entry[f"{lib}_gflops"] = flops / (sec * scale) / 1e9
        if "torch" in med:
            entry["ratio"] = med["rnnlab"] / med["torch"]
            entry["ratio_of_minima"] = low["rnnlab"] / low["torch"]
        if "torch_bf16" in med:  # rnnlab bf16 against PyTorch bf16 autocast, and fp32
            entry["ratio_bf16"] = med["rnnlab_bf16"] / med["torch_bf16"]
            entry["ratio_bf16_to_torch_fp32"] = med["rnnlab_bf16"] / med["torch"]
        row[kind] = entry
    return row


def _gemm_only(cell, shape, cfg, torch) -> dict:
    """The matrix products of one training step alone, in NumPy's BLAS and in PyTorch's.

    Same shapes as rnnlab's step: the input projection, T recurrent products forward and
    T backward, both weight gradients and ``dx``, each into a preallocated output. The
    ratio NumPy/PyTorch is what the BLAS alone allows; both loops pay Python's per-call
    overhead (a little more for PyTorch), which rnnlab's compiled loop does not.
    """
    B, T, D, H = shape
    GH = GATES[cell] * H
    rng = np.random.default_rng(cfg.seed)
    a = {k: rng.standard_normal(s, dtype=np.float32) for k, s in (
        ("x", (T * B, D)), ("W_x", (D, GH)), ("h", (B, H)), ("W_h", (H, GH)),
        ("W_hT", (GH, H)), ("da", (T * B, GH)), ("hs", (T * B, H)))}
    o = {k: np.empty(s, np.float32) for k, s in (
        ("xp", (T * B, GH)), ("hp", (B, GH)), ("dh", (B, H)), ("dWx", (D, GH)),
        ("dWh", (H, GH)), ("dx", (T * B, D)))}

    def run(mm, a, o):
        mm(a["x"], a["W_x"], out=o["xp"])
        for _ in range(T):
            mm(a["h"], a["W_h"], out=o["hp"])
        for t in range(T):
            mm(a["da"][t * B:(t + 1) * B], a["W_hT"], out=o["dh"])
        mm(a["x"].T, a["da"], out=o["dWx"])
        mm(a["hs"].T, a["da"], out=o["dWh"])
        mm(a["da"], a["W_x"].T, out=o["dx"])

    ta = {k: torch.from_numpy(v) for k, v in a.items()}
    to = {k: torch.from_numpy(v.copy()) for k, v in o.items()}
    med, low = median_times({"numpy": lambda: run(np.matmul, a, o),
                              "torch": lambda: run(torch.matmul, ta, to)},
                             cfg.repeats, cfg.warmup)
    return {"numpy_ms": med["numpy"] * 1e3, "torch_ms": med["torch"] * 1e3,
            "ratio": med["numpy"] / med["torch"], "ratio_of_minima": low["numpy"] / low["torch"]}
