"""rnnlab: recurrent neural networks with exact, hand-written backpropagation through time.

Layers :class:`Elman`, :class:`LSTM` and :class:`GRU` run batch-first sequences forward and
backward (BPTT) in NumPy; :class:`Network` adds an output head and a loss.
"""

import importlib
import os as _os
import sys as _sys

# OpenBLAS's idle worker threads spin for 2**28 cycles (about 0.1 s) after every threaded
# call before they sleep, keeping a core busy. rnnlab's time loops, which run their batch
# on all cores, usually come right after such a call and ran up to 2x slower against
# the spinning worker (measured). 2**20 cycles (well under a millisecond) still bridges
# the gaps between back-to-back BLAS calls. OpenBLAS reads this once, when NumPy loads
# it, so it applies only if NumPy is not imported yet; a value the user set is kept.
if "numpy" not in _sys.modules:
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

from .cells import GRU, LSTM, Elman, RecurrentLayer, layer_from_config
from .io import load, save
from .network import Network
from .recurrent import Stream
from .train import Trainer

__version__ = "0.1.0"

# submodules that import on first use (rnnlab.interop, rnnlab.diagnostics, ...)
_LAZY = ("interop", "diagnostics", "data", "optim", "clip", "losses", "init", "kernels", "plots",
         "bench", "lm", "demo", "bptt")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")


__all__ = ["GRU", "LSTM", "Elman", "Network", "RecurrentLayer", "Stream", "Trainer",
           "layer_from_config", "load", "save"]
