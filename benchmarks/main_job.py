"""The default ``rnnlab train`` update against PyTorch, fp32 and bf16, side by side.

    python benchmarks/main_job.py [--repeats 30] [--threads N] [--system-malloc] [--json FILE]

The update of ``rnnlab train`` (1x256 LSTM, V = 80, 32 streams of 64 steps, Adam, clip 1):
rnnlab fed token ids at each precision this CPU runs natively (``fp32``, and ``bf16``
where it has BF16 matrix instructions), against what a PyTorch user writes for the same
model: ``nn.LSTM`` over one-hot inputs and an ``nn.Linear`` head, cross-entropy, Adam,
``clip_grad_norm_``, in fp32 and under ``torch.autocast("cpu", dtype=torch.bfloat16)``
(the bf16 column only where the CPU has BF16 instructions; elsewhere PyTorch emulates it
and the column would time the emulation). Also the same model's forward only (the scores
for every step), in inference mode. Each is timed in short alternating blocks in one process
(:func:`rnnlab.bench.timing.median_times`); the medians and their ratios are printed with
the CPU and its features.

As ``rnnlab train`` does, the process first calls :func:`rnnlab.kernels.keep_freed_memory`
(glibc keeps freed blocks for the next update instead of unmapping them and faulting them
in again); the setting is the process's, so PyTorch's updates run with it too.
``--system-malloc`` leaves glibc's defaults, for both.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

import rnnlab
from rnnlab import kernels
from rnnlab.bench import cpu_description, cpu_features
from rnnlab.bench.timing import import_torch, median_times
from rnnlab.kernels import blas

V, H, B, T = 80, 256, 32, 64


def rnnlab_update(precision: str):
    rng = np.random.default_rng(0)
    net = rnnlab.Network(V, H, V, cell="lstm", output="softmax", readout="all", seed=0,
                         precision=precision)
    trainer = rnnlab.Trainer(net, "adam", 1e-3, clip_norm=1.0, log=None, progress=False)
    ids, y = rng.integers(0, V, size=(B, T)), rng.integers(0, V, size=(B, T))
    return (lambda: trainer.train_step(ids, y)), (lambda: net.infer(ids))


def torch_update(torch, bf16: bool):
    nn = torch.nn
    torch.manual_seed(0)
    lstm, head = nn.LSTM(V, H, batch_first=True), nn.Linear(H, V)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(0, V, size=(B, T)))
    x = torch.nn.functional.one_hot(ids, V).float()
    y = torch.from_numpy(rng.integers(0, V, size=(B, T)))

    def context():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def update():
        opt.zero_grad(set_to_none=True)
        with context():
            out, _ = lstm(x)
            loss = nn.functional.cross_entropy(head(out).reshape(B * T, V).float(),
                                               y.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    def forward():  # the scores, as rnnlab's infer returns them
        with torch.inference_mode(), context():
            head(lstm(x)[0])

    return update, forward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--system-malloc", action="store_true",
                    help="leave glibc's malloc defaults (rnnlab train changes them)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    if not args.system_malloc:
        kernels.keep_freed_memory()
    torch = import_torch()
    if torch is None:
        raise SystemExit("benchmarks/main_job.py compares with PyTorch: pip install "
                         "'rnnlab[test]'")
    torch.set_num_threads(args.threads)
    native = blas.bf16_native()
    precisions = ["fp32"] + (["bf16"] if native else [])
    updates, forwards = {}, {}
    for p in precisions:
        updates[f"rnnlab {p}"], forwards[f"rnnlab {p}"] = rnnlab_update(p)
    updates["torch fp32"], forwards["torch fp32"] = torch_update(torch, False)
    if native:
        updates["torch bf16"], forwards["torch bf16"] = torch_update(torch, True)
    with kernels.threads(args.threads):
        up, _ = median_times(updates, args.repeats, warmup=2)
        fw, _ = median_times(forwards, args.repeats, warmup=2)
    kept = kernels.freed_memory_kept()
    print(f"{cpu_description()}; {args.threads} threads; {args.repeats} timed calls each, "
          f"in alternating blocks; freed memory kept: {kept}")
    print(f"bf16 matrix instructions: {native or 'none (bf16 columns left out)'}")
    print("\n| work | " + " | ".join(updates) + " |")
    print("|---|" + "---|" * len(updates))
    print("| update, updates/s | " + " | ".join(f"{1 / up[k]:.1f}" for k in updates) + " |")
    print("| inference forward, ms | " + " | ".join(f"{fw[k] * 1e3:.2f}" for k in forwards)
          + " |")
    print()
    for work, med in (("update", up), ("inference", fw)):
        for k in med:
            if k.startswith("rnnlab"):
                for ref in (r for r in med if r.startswith("torch")):
                    print(f"{work}: {k} / {ref} time ratio {med[k] / med[ref]:.3f}")
    if args.json:
        record = {"cpu": cpu_description(), "cpu_features": cpu_features(),
                  "bf16": native, "threads": args.threads, "repeats": args.repeats,
                  "keep_freed_memory": kept,
                  "update_seconds": up, "inference_seconds": fw}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
