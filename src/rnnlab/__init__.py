"""rnnlab: recurrent neural networks with exact, hand-written backpropagation through time.

Layers :class:`Elman`, :class:`LSTM` and :class:`GRU` run batch-first sequences forward and
backward (BPTT) in NumPy; :class:`FFNN` is the feedforward baseline over a window of inputs
behind the same front; :class:`Network` adds an output head and a loss.

Everything here imports on first use: ``import rnnlab.checks`` loads neither the trainer
nor the kernels (numba), and ``rnnlab.Trainer`` loads the trainer when it is first read.
"""

import importlib

from ._version import __version__

# public name -> the module that defines it
_NAMES = {
    "Elman": "cells", "FFNN": "cells", "GRU": "cells", "LSTM": "cells", "RecurrentLayer": "cells",
    "layer_from_config": "cells", "Network": "network", "Stream": "stream",
    "Trainer": "train", "load": "saving", "save": "saving",
}
# submodules that import on first use as attributes (rnnlab.interop, rnnlab.diagnostics, ...)
_LAZY = ("interop", "diagnostics", "data", "optim", "schedules", "clip", "losses", "init",
         "kernels", "plots", "bench", "lm", "demo", "bptt", "io", "checkpoint", "saving", "apps",
         "checks", "cells", "network", "recurrent", "engine", "stream", "train", "progress",
         "activations", "cli", "onnx", "sklearn")


def __getattr__(name):
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
        globals()[name] = value  # once found, a plain attribute
        return value
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_NAMES, *_LAZY})


__all__ = ["FFNN", "GRU", "LSTM", "Elman", "Network", "RecurrentLayer", "Stream", "Trainer",
           "__version__", "layer_from_config", "load", "save"]
