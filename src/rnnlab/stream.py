"""Online inference: a layer run one step per call, its state kept between calls.

Shape legend: B batch, D input features, H hidden units, L layers.
"""

from __future__ import annotations

import numpy as np

from . import checks, engine


class Stream:
    """Online inference over a layer: one step per call, the state kept here.

    Computes exactly what repeated ``layer.step(x_t, state)`` calls compute (through the
    same :func:`rnnlab.engine.step`), but keeps the state in the loop's own layout and
    skips ``layer.step``'s checks of the state (finite values, shapes) and its
    conversions, which at batch 1 cost about as much as the step itself. The layer's
    current parameters are used at every step (training the layer in between is seen).

    Parameters
    ----------
    layer : rnnlab.Elman, rnnlab.LSTM or rnnlab.GRU
    batch_size : int
    state : initial state in the public layout (see ``layer.forward``), or None for zeros
    fast : bool or None, as in :func:`rnnlab.engine.layer_forward`

    Examples
    --------
    >>> stream = Stream(layer)
    >>> for x_t in frames:                 # each (1, D)
    ...     y_t = stream.step(x_t)         # (1, H)
    >>> stream.state                       # the public layout, as layer.step returns it
    """

    def __init__(self, layer, batch_size: int = 1, state=None, *, fast=None):
        if getattr(layer, "bidirectional", False):
            raise ValueError("a Stream needs a unidirectional layer: a bidirectional one reads "
                             "whole sequences (its reverse direction starts at their end)")
        self.layer = layer
        # a list over layers of tuples (B, H); the ffnn's own (h, window)
        self._states = layer.split_state(state, batch_size)
        # a layer that is not a recurrence (the ffnn) steps itself, its state as it is
        self._own = None if getattr(layer, "recurrent", True) else layer.stream_step
        self._shape = (batch_size, layer.input_size)
        self._fast = fast

    @property
    def state(self):
        """The current state in the public layout: (L, B, H), or (h, c) for the LSTM."""
        return self.layer.join_state(self._states)

    def step(self, x_t, reset=None) -> np.ndarray:
        """Advance one step: ``x_t`` (B, D) -> the top layer's output (B, H).

        ``reset`` (B,) of bool, optional: the streams whose state is set to zeros before
        this step (a new document begins at their ``x_t``), as ``reset`` in
        ``layer.forward`` does. The returned array is the new ``h`` itself, fresh at every
        step (the caller may keep it)."""
        x = np.ascontiguousarray(x_t, dtype=self.layer.dtype)
        if x.shape != self._shape:
            raise ValueError(f"x_t must have shape {self._shape}, got {x.shape}")
        states = self._states
        rows = None if reset is None else checks.reset_rows(reset, self._shape[0])  # (B, 1)
        if self._own is not None:
            y, self._states = self._own(x, states, rows)
            return y
        if rows is not None:
            states = [tuple(np.where(rows, s.dtype.type(0), s) for s in st) for st in states]
        layer_ps, prepared = self.layer.step_params()
        y, states, finite = engine.step(self.layer.cell, layer_ps, x, states,
                                        prepared=prepared, fast=self._fast)
        if not finite:  # the state stays as it was
            checks.array(x, "x_t", self._shape, self.layer.dtype)  # names the bad entry
            raise ValueError("the stream's state holds NaN or Inf")
        self._states = states
        return y
