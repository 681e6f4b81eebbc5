"""How far back does the gradient reach? A fresh Elman net against a fresh LSTM.

Both have 64 hidden units and PyTorch's default uniform initialisation (the LSTM with its
forget-gate bias at 1). On 8 random sequences of 100 steps, we measure the exact
Jacobian dh_T/dh_{T-k} for every lag k, print where it falls below 1 % of lag 0, and
write the two curves to gradient_flow.png. Nothing is trained: this is the starting
point that training has to work from.

    python examples/gradient_flow.py [output.png]
"""

import sys
import time

import numpy as np

import rnnlab
from rnnlab import diagnostics as dg

H, T, B, D = 64, 100, 8, 8
x = np.random.default_rng(0).normal(size=(B, T, D))  # (B, T, D) standard normal input
models = {
    "Elman (tanh)": rnnlab.Elman(D, H, activation="tanh", init="uniform", seed=0),
    "LSTM (forget bias 1)": rnnlab.LSTM(D, H, init="uniform", seed=0),
}

flows = {}
for name, layer in models.items():
    start = time.perf_counter()
    report = dg.diagnose(layer, x)
    seconds = time.perf_counter() - start
    spectral = dg.gradient_flow(layer, x, norm="spectral", relative=True)
    flows[name] = report.flow
    print(f"== {name}: measured in {seconds:.2f} s")
    print(report.summary())
    print(f"memory length by the spectral norm (largest gain of any perturbation): "
          f"{dg.memory_length(spectral, 0.01)} steps\n")

try:
    from rnnlab import plots

    out = plots.plot_flow(flows, sys.argv[1] if len(sys.argv) > 1 else "gradient_flow.png",
                          fraction=0.01, title=f"Gradient flow at initialisation, H={H}, "
                                               f"{B} random sequences")
    print(f"wrote {out}")
except ImportError as e:
    print(f"no plot: {e}")
