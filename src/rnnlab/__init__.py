"""rnnlab: recurrent neural networks with exact, hand-written backpropagation through time.

Layers :class:`Elman`, :class:`LSTM` and :class:`GRU` run batch-first sequences forward and
backward (BPTT) in NumPy; :class:`Network` adds an output head and a loss.
"""

import importlib

from .cells import GRU, LSTM, Elman, RecurrentLayer, layer_from_config
from .io import load, save
from .network import Network
from .stream import Stream
from .train import Trainer

__version__ = "0.1.0"

# submodules that import on first use (rnnlab.interop, rnnlab.diagnostics, ...)
_LAZY = ("interop", "diagnostics", "data", "optim", "schedules", "clip", "losses", "init",
         "kernels", "plots", "bench", "lm", "demo", "bptt")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")


__all__ = ["GRU", "LSTM", "Elman", "Network", "RecurrentLayer", "Stream", "Trainer",
           "layer_from_config", "load", "save"]
