"""Peak memory of truncated BPTT against the sequence length: it should not grow with T.

    python benchmarks/tbptt_memory.py                       # T = 10^3 .. 10^6
    python benchmarks/tbptt_memory.py --steps 1000 100000 --k1 50 --k2 80

Each length runs in a fresh subprocess: one pass of ``Trainer.fit`` with truncated
BPTT(k1, k2) over a batch of B sequences of T steps, and reports the growth of the resident
set during the pass (Linux ``VmHWM``, reset before it, minus ``VmRSS`` before it). The
inputs and targets are made before the measurement starts; the trainer takes its batch as
a copy of them (``X[idx]``), so the growth beyond that copy is what training itself adds:
caches of at most k2 steps, gradients, optimiser state. Full BPTT over the same batch is
measured beside it for contrast (up to ``--full-max`` steps).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys

CHILD = r"""
import json, sys, numpy as np, rnnlab
T, B, D, H, k1, k2, full = (int(a) for a in sys.argv[1:8])

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024  # MB
    raise RuntimeError(key)

rng = np.random.default_rng(0)
X = rng.normal(size=(B, T, D)).astype(np.float32)
Y = rng.integers(0, 4, size=(B, T))
net = rnnlab.Network(D, H, 4, cell="lstm", seed=0)
trainer = rnnlab.Trainer(net, batch_size=B, bptt_steps=None if full else (k1, k2),
                         progress=False)
trainer.fit(X[:, :2 * k2], Y[:, :2 * k2], epochs=1)  # warm-up: kernels loaded, pools up
open("/proc/self/clear_refs", "w").write("5")  # reset VmHWM to the current RSS
before = status("VmRSS")
trainer.fit(X, Y, epochs=1)
print(json.dumps({"T": T, "grew_mb": status("VmHWM") - before,
                  "input_mb": (X.nbytes + Y.nbytes) / 2**20}))
"""


def measure(T, B, D, H, k1, k2, full):
    out = subprocess.run([sys.executable, "-c", CHILD, *map(str, (T, B, D, H, k1, k2,
                                                                    int(full)))],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[1000, 10000, 100000, 1000000])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--input", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--k1", type=int, default=50)
    ap.add_argument("--k2", type=int, default=50)
    ap.add_argument("--full-max", type=int, default=100000,
                    help="measure full BPTT up to this length")
    args = ap.parse_args(argv)
    print(f"{platform.processor() or platform.machine()}; LSTM D={args.input} "
          f"H={args.hidden} B={args.batch}, truncated BPTT({args.k1}, {args.k2})")
    print("| T | the batch (inputs and targets), MB | truncated: growth beyond the batch's "
          "copy, MB | full BPTT: the same, MB |")
    print("|---|---|---|---|")
    for T in args.steps:
        shape = (T, args.batch, args.input, args.hidden, args.k1, args.k2)
        tr = measure(*shape, full=False)
        beyond = tr["grew_mb"] - tr["input_mb"]
        fu = "–"
        if T <= args.full_max:
            f = measure(*shape, full=True)
            fu = f"{f['grew_mb'] - f['input_mb']:.1f}"
        print(f"| {T:,} | {tr['input_mb']:.1f} | {beyond:.1f} | {fu} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
