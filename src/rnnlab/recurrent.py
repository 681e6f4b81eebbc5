"""One time loop for every cell: forward and backward through time, stacking and lengths.

Shape legend: B batch, T time, D input features, H hidden units, L layers, G gates per
cell (1 Elman, 4 LSTM, 3 GRU). Public arrays are batch-first, ``(B, T, D)`` in and
``(B, T, H)`` out; inside, everything is time-major ``(T, B, .)`` so each step reads and
writes contiguous memory.

A cell is a small object with

* ``n_gates``, ``n_state`` (1 for ``h``; 2 for ``(h, c)``), ``recurrent_bias`` (GRU's ``b_h``);
* ``step(p, xp_t, state) -> (new_state, saved)``: one step given the input projection
  ``xp_t = x_t @ W_x + b`` (B, G*H); ``new_state[0]`` is the output ``h_t``;
* ``step_back(p, saved, dstate) -> (d_xp, d_hp, dstate_prev)``: the gradients with respect
  to the input projection and to the recurrent product ``h_{t-1} @ W_h (+ b_h)``, both
  (B, G*H) (the same array for cells where the two enter only as a sum), and to the
  previous state.

Everything that touches time, weight sharing, masks and layers is written here, once:
the input projection of all steps is one GEMM, the weight gradients are one GEMM each
over all steps, and padded steps neither change the state nor contribute gradient.

These plain functions are the reference. When numba is available, each function hands
rnnlab's own cells to the fused kernels of :mod:`rnnlab.kernels`, which compute the same
thing with the time loop compiled; ``fast=False`` (or ``with rnnlab.kernels.use_fast(False)``)
keeps the plain path. A cache remembers which path made it, and backward takes that path.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import checks, kernels


class LayerCache(NamedTuple):
    """What backward needs for one layer, all time-major."""

    x: np.ndarray  # (T, B, D) the layer's input
    hs: np.ndarray  # (T+1, B, H) h_0 .. h_T as carried (padded steps repeat the state)
    saved: list | kernels.Tape  # per step, what step_back needs; a Tape on the fast path
    mask: np.ndarray | None  # (T, B, 1) True on real steps; None when no step is padded
    partial: np.ndarray | None  # (T,) True where some sequence is padded at that step


def layer_forward(cell, p, x, state0, mask, partial, *, fast=None, keep=True):
    """Run one layer over a sequence.

    Parameters
    ----------
    cell : the cell object
    p : dict with ``W_x`` (D, G*H), ``W_h`` (H, G*H), ``b`` (G*H,) and maybe ``b_h``
    x : ndarray (T, B, D)
    state0 : tuple of ``n_state`` arrays (B, H)
    mask : ndarray (T, B, 1) of bool, or None
    partial : ndarray (T,) of bool, or None
    fast : bool or None
        Use the fused kernel (True), the plain loop below (False), or follow
        :func:`rnnlab.kernels.use_fast` (None).
    keep : bool
        Keep what backward needs; False (inference) returns None for the cache, and the
        fast path then stores no per-step gates (but see
        :func:`rnnlab.kernels.layers.layer_forward` at batch 1).

    Returns
    -------
    y : ndarray (T, B, H), zero at padded steps; without padding a view of the cache's
        states, which the layers' public ``forward`` hands out read-only
    state : tuple of (B, H), each sequence's state after its last real step
    cache : LayerCache, or None when not ``keep``
    """
    if kernels.active(cell, fast):
        from .kernels import layers

        return layers.layer_forward(cell, p, x, state0, mask, partial, keep)
    T, B, D = x.shape
    H = p["W_h"].shape[0]
    xp = (x.reshape(T * B, D) @ p["W_x"]).reshape(T, B, -1)  # (T, B, G*H) all steps in one GEMM
    xp += p["b"]
    hs = np.empty((T + 1, B, H), dtype=x.dtype)
    hs[0] = state0[0]
    saved = []
    state = state0
    for t in range(T):
        new, s = cell.step(p, xp[t], state)
        if partial is not None and partial[t]:
            m = mask[t]
            new = tuple(np.where(m, n, o) for n, o in zip(new, state, strict=True))
        state = new
        hs[t + 1] = state[0]
        if keep:
            saved.append(s)
    y = hs[1:] if mask is None else hs[1:] * mask  # a view of the cache's states (see Returns)
    return y, state, (LayerCache(x, hs, saved, mask, partial) if keep else None)


def layer_backward(cell, p, cache, dy, dstate, *, need_dx=True):
    """Backpropagate through one layer's unfolded sequence (BPTT).

    Parameters
    ----------
    dy : ndarray (T, B, H) or None, gradient with respect to the layer's outputs
    dstate : tuple of (B, H), gradient with respect to the final state
    need_dx : bool, False to skip the input gradient (one product of the three)

    Returns
    -------
    grads : dict like ``p``
    dx : ndarray (T, B, D), or None without ``need_dx``
    dstate0 : tuple of (B, H), gradient with respect to the initial state
    """
    if isinstance(cache.saved, kernels.Tape):
        from .kernels import layers

        return layers.layer_backward(cell, p, cache, dy, dstate, need_dx)
    x, hs, saved, mask, partial = cache
    T, B, D = x.shape
    GH = p["W_h"].shape[1]
    dxp = np.empty((T, B, GH), dtype=x.dtype)
    dhp = dxp if not cell.recurrent_bias else np.empty_like(dxp)
    if dy is not None and mask is not None:
        dy = dy * mask  # padded outputs are constant zeros: no gradient flows from them
    d = tuple(dstate)
    for t in range(T - 1, -1, -1):
        if dy is not None:
            d = (d[0] + dy[t],) + d[1:]
        gx, gh, prev = cell.step_back(p, saved[t], d)
        if partial is not None and partial[t]:
            # a padded step passes the state through: its gradient passes straight back
            m = mask[t]
            shared = gh is gx
            gx = gx * m
            gh = gx if shared else gh * m
            prev = tuple(np.where(m, a, b) for a, b in zip(prev, d, strict=True))
        dxp[t] = gx
        if dhp is not dxp:
            dhp[t] = gh
        d = prev
    dxp2 = dxp.reshape(T * B, GH)
    dhp2 = dhp.reshape(T * B, GH)
    grads = {
        "W_x": x.reshape(T * B, D).T @ dxp2,
        "W_h": hs[:-1].reshape(T * B, -1).T @ dhp2,
        "b": dxp2.sum(axis=0),
    }
    if cell.recurrent_bias:
        grads["b_h"] = dhp2.sum(axis=0)
    dx = (dxp2 @ p["W_x"].T).reshape(T, B, D) if need_dx else None
    return grads, dx, d


def layer_params(params, k):
    """The parameters of layer ``k`` from a stack's dict, without the ``l{k}.`` prefix."""
    prefix = f"l{k}."
    return {name[len(prefix):]: v for name, v in params.items() if name.startswith(prefix)}


def stack_forward(cell, params, num_layers, x, states, mask, partial, *, fast=None,
                  keep=True):
    """Run ``num_layers`` layers; ``x`` (T, B, D), ``states`` a list of per-layer tuples.
    ``keep=False``: inference, the caches are None (see :func:`layer_forward`)."""
    caches, finals = [], []
    for k in range(num_layers):
        x, state, cache = layer_forward(cell, layer_params(params, k), x, states[k], mask,
                                        partial, fast=fast, keep=keep)
        caches.append(cache)
        finals.append(state)
    return x, finals, caches


def stack_backward(cell, params, num_layers, caches, dy, dstates, *, need_dx=True):
    """Backward through a stack; returns ``(grads with l{k}. names, dx, per-layer dstate0)``,
    ``dx`` None without ``need_dx`` (the bottom layer then skips that product)."""
    grads, d0 = {}, [None] * num_layers
    for k in range(num_layers - 1, -1, -1):
        g, dy, d0[k] = layer_backward(cell, layer_params(params, k), caches[k], dy, dstates[k],
                                      need_dx=need_dx or k > 0)
        grads.update({f"l{k}.{name}": v for name, v in g.items()})
    return grads, dy, d0


def step_stack(cell, layer_ps, x_t, states, out=None, *, prepared=False, fast=None):
    """One streaming step through a stack.

    Parameters
    ----------
    layer_ps : list over layers of parameter dicts (see :func:`layer_params`)
    x_t : ndarray (B, D)
    states : list over layers of tuples of (B, H)
    out : list over layers of tuples of (B, H) arrays that receive the new states, or
        None for fresh arrays
    prepared : every array is already C-contiguous in one dtype (the kernels skip their
        conversions)

    Returns
    -------
    h_top : ndarray (B, H), the top layer's new ``h`` (the same array as its new state)
    new : list over layers of tuples of (B, H)
    finite : bool, whether ``x_t`` and every state held only finite values
    """
    new = []
    finite = True
    step_layer = kernels.fast_layers().step_layer if kernels.active(cell, fast) else None
    for k, p in enumerate(layer_ps):
        dest = None if out is None else out[k]
        if step_layer is not None:
            state, ok = step_layer(cell, p, x_t, states[k], dest, prepared=prepared)
        else:
            if not all(np.isfinite(a).all() for a in (x_t, *states[k])):
                return x_t, new, False
            ok = True
            state, _ = cell.step(p, x_t @ p["W_x"] + p["b"], states[k])
            if dest is not None:
                for d, s in zip(dest, state, strict=True):
                    d[...] = s
                state = dest
        finite = finite and ok
        new.append(state)
        x_t = state[0]
    return x_t, new, finite


class Stream:
    """Online inference over a layer: one step per call, the state kept here.

    Computes exactly what repeated ``layer.step(x_t, state)`` calls compute, but keeps
    the state in the loop's own layout and skips ``layer.step``'s checks of the state
    (finite values, shapes) and its conversions, which at batch 1 cost about as much as
    the step itself. The layer's current parameters are used at every step (training the
    layer in between is seen).

    Parameters
    ----------
    layer : rnnlab.Elman, rnnlab.LSTM or rnnlab.GRU
    batch_size : int
    state : initial state in the public layout (see ``layer.forward``), or None for zeros
    fast : bool or None, as in :func:`layer_forward`

    Examples
    --------
    >>> stream = Stream(layer)
    >>> for x_t in frames:                 # each (1, D)
    ...     y_t = stream.step(x_t)         # (1, H)
    >>> stream.state                       # the public layout, as layer.step returns it
    """

    def __init__(self, layer, batch_size: int = 1, state=None, *, fast=None):
        self.layer = layer
        self._states = layer.split_state(state, batch_size)  # list over layers of tuples (B, H)
        self._shape = (batch_size, layer.input_size)
        self._fast = fast

    @property
    def state(self):
        """The current state in the public layout: (L, B, H), or (h, c) for the LSTM."""
        return self.layer.join_state(self._states)

    def step(self, x_t) -> np.ndarray:
        """Advance one step: ``x_t`` (B, D) -> the top layer's output (B, H)."""
        x = np.ascontiguousarray(x_t, dtype=self.layer.dtype)
        if x.shape != self._shape:
            raise ValueError(f"x_t must have shape {self._shape}, got {x.shape}")
        layer_ps, prepared = self.layer.step_params()
        cell = self.layer.cell
        if len(layer_ps) == 1 and prepared and kernels.active(cell, self._fast):
            # one layer: straight to its kernel, the new state in fresh arrays (the caller
            # may keep the returned output, which is the new h)
            old = self._states[0]
            new = (np.empty_like(old[0]),) if len(old) == 1 else \
                (np.empty_like(old[0]), np.empty_like(old[1]))  # no generator: 0.5 us less
            if kernels.fast_layers().step_one(cell, layer_ps[0], x, old, new):
                self._states = [new]
                return new[0]
            finite = False
        else:
            y, states, finite = step_stack(cell, layer_ps, x, self._states, prepared=prepared,
                                           fast=self._fast)
        if not finite:  # the state stays as it was
            checks.array(x, "x_t", self._shape, self.layer.dtype)  # names the bad entry
            raise ValueError("the stream's state holds NaN or Inf")
        self._states = states
        return y
