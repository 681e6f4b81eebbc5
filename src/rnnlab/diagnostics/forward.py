"""Float64 copies of a model, and one layer's forward recorded step by step.

Shape legend: B batch, T time, D input features, H hidden units, L layers.

Every diagnostic runs on a float64 copy, the caller's model and arrays untouched:
:func:`layer64` and :func:`network64` make the copies (refusing non-finite weights),
:func:`level_index` checks which stacked layer is meant, and :func:`run_forward` runs the
library's reference loop (:mod:`rnnlab.recurrent`) up to that layer, keeping what each
step saved in a :class:`Forward`.
"""

from __future__ import annotations

import copy
import numbers
from dataclasses import dataclass

import numpy as np

from .. import checks, recurrent
from ..cells.base import RecurrentLayer
from ..network import Network


def _finite_params(params: dict, prefix: str = "") -> None:
    for name, v in params.items():
        a = np.asarray(v)
        if not np.isfinite(a).all():
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
            raise ValueError(f"parameter {prefix}{name} contains NaN or Inf (first at index "
                             f"{bad}); a model with non-finite weights cannot be diagnosed")


def layer64(model) -> RecurrentLayer:
    """A float64 shallow copy of the model's recurrent layer (Network: its ``rnn``)."""
    if isinstance(model, Network):
        # Network.params is the source of truth (an optimiser may have replaced entries)
        params = {k[4:]: v for k, v in model.params.items() if k.startswith("rnn.")}
        _finite_params(params, "rnn.")
        layer = model.rnn
    elif isinstance(model, RecurrentLayer):
        params = model.params
        _finite_params(params)
        layer = model
    else:
        raise ValueError("expected an rnnlab layer (Elman, LSTM, GRU) or a Network, got "
                         f"{type(model).__name__}")
    if not layer.recurrent:
        raise ValueError(f"diagnostics follow the state of a recurrence through time; the "
                         f"{layer.cell_name} layer has none (it reads a window of inputs)")
    if layer.bidirectional:
        raise ValueError("diagnostics follow the state forward in time; a bidirectional "
                         "model is not supported (diagnose a unidirectional one)")
    out = copy.copy(layer)  # cells are stateless, so sharing layer.cell is safe
    out.dtype = np.dtype(np.float64)
    out.params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    return out


def network64(net: Network) -> Network:
    """A float64 shallow copy of a Network whose forward does not touch the original."""
    if not isinstance(net, Network):
        raise ValueError(f"expected an rnnlab Network, got {type(net).__name__}")
    _finite_params(net.params)
    out = copy.copy(net)
    out.rnn = layer64(net)
    out.params = {k: np.array(v, dtype=np.float64) for k, v in net.params.items()}
    return out


def level_index(layer: RecurrentLayer, level) -> int:
    L = layer.num_layers
    if isinstance(level, bool) or not isinstance(level, numbers.Integral) or not -L <= level < L:
        raise ValueError(f"level must be a layer index in [{-L}, {L}) for this {L}-layer "
                         f"stack, got {level!r}")
    return int(level) % L


@dataclass
class Forward:
    """One layer's forward, recorded step by step for the per-step measurements."""

    params: dict  # that layer's W_x, W_h, b (b_h), float64
    cache: recurrent.LayerCache  # the reference loop's, ``saved`` a list over steps
    final: tuple  # each sequence's state after its last real step, tuple of (B, H)
    lengths: np.ndarray  # (B,) real steps per sequence

    @property
    def saved(self) -> list:
        return self.cache.saved

    @property
    def outputs(self) -> np.ndarray:
        """(T, B, H) the layer's h_1 .. h_T (padded steps repeat the state)."""
        return self.cache.hs[1:]

    @property
    def mask(self):
        return self.cache.mask


def run_forward(layer: RecurrentLayer, x, state, lengths, level: int) -> Forward:
    """Run layers 0..level of a float64 layer in the reference loop; keep ``level``."""
    x = checks.array(x, "x", (None, None, layer.input_size), np.float64)
    B, T, _ = x.shape
    if B == 0 or T == 0:
        raise ValueError(f"x must hold at least one sequence of at least one step, got shape "
                         f"{x.shape}")
    lens = np.full(B, T, np.int64) if lengths is None else checks.lengths(lengths, B, T)
    if lens.max() == 0:
        raise ValueError("every sequence is empty (all lengths are 0): nothing to diagnose")
    states = layer.split_state(state, B)
    mask, partial = None, None
    if (lens < T).any():
        mask = (np.arange(T)[:, None] < lens[None, :])[:, :, None]  # (T, B, 1)
        partial = ~mask.all(axis=(1, 2))
    inp = np.ascontiguousarray(x.transpose(1, 0, 2))  # (T, B, D)
    for k in range(level + 1):
        p = recurrent.layer_params(layer.params, k)
        # the next layer reads zeros at padded steps, as from layer.forward
        inp, final, cache = recurrent.layer_forward(layer.cell, p, inp, states[k], mask,
                                                    partial)
    return Forward(p, cache, final, lens)
