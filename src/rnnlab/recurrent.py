"""The one reference loop over time: forward and backward through time for any cell.

Shape legend: B batch, T time, D input features, H hidden units, G gates per cell
(1 Elman, 4 LSTM, 3 GRU). Public arrays are batch-first, ``(B, T, D)`` in and
``(B, T, H)`` out; here everything is time-major ``(T, B, .)`` so each step reads and
writes contiguous memory.

The loop knows nothing of any particular cell: it calls the cell's ``step`` and
``step_back`` (the protocol of :mod:`rnnlab.cells.cell`). Everything that touches time,
weight sharing, padding and resets is written here, once: the input projection of all
steps is one GEMM, the weight gradients are one GEMM each over all steps, padded steps
neither change the state nor contribute gradient (the masked pass-through, below and
nowhere else), and a reset replaces the state entering a step by zeros (a new document
begins there), so no gradient flows on through it.

This is the reference that the fused kernels (:mod:`rnnlab.kernels`) are checked
against; it imports none of them. :mod:`rnnlab.engine` chooses between the two for each
call. A per-step ``hook`` lets diagnostics watch (and probe) the loop instead of writing
loops of their own.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LayerCache(NamedTuple):
    """What backward needs for one layer, all time-major."""

    x: np.ndarray  # (T, B, D) the layer's input, or (T, B) of ints: token ids
    hs: np.ndarray  # (T+1, B, H) h_0 .. h_T as carried (padded steps repeat the state)
    saved: object  # per step, what step_back needs (a list); a kernels.Tape on the fast path
    mask: np.ndarray | None  # (T, B, 1) True on real steps; None when no step is padded
    partial: np.ndarray | None  # (T,) True where some sequence is padded at that step
    reset: np.ndarray | None = None  # (T, B, 1) True where the state entering is zeros
    drop: np.ndarray | None = None  # (B, P) recurrent dropout's scaled mask, or None
    inp: np.ndarray | None = None  # (T, B, D) the dropout mask ``x`` was multiplied by, or None


def input_projection(x, W_x):
    """``x W_x`` for all steps, (T, B, G*H): one GEMM, or for token ids ``x`` (T, B) the
    rows ``W_x[x]`` (what a one-hot input's product gives, without the product)."""
    if x.ndim == 2:
        return W_x[x]
    T, B, D = x.shape
    return (x.reshape(T * B, D) @ W_x).reshape(T, B, -1)


def input_weight_gradient(x, dxp2, D):
    """The gradient of ``W_x`` (D, G*H) from ``dxp2`` (T*B, G*H), the gradient at the input
    projection: ``x^T dxp2``, or for token ids the rows of ``dxp2`` added up per id."""
    if x.ndim == 3:
        return x.reshape(-1, D).T @ dxp2
    out = np.zeros((D, dxp2.shape[1]), dxp2.dtype)
    np.add.at(out, x.reshape(-1), dxp2)
    return out


def layer_params(params, k):
    """The parameters of layer ``k`` from a stack's dict, without the ``l{k}.`` prefix."""
    prefix = f"l{k}."
    return {name[len(prefix):]: v for name, v in params.items() if name.startswith(prefix)}


def _held(mask_t, new, old):
    """The masked pass-through: rows of ``new`` where ``mask_t`` (B, 1) is True, else
    ``old`` (a padded step keeps the state, and its gradient passes straight back)."""
    return tuple(np.where(mask_t, n, o) for n, o in zip(new, old, strict=True))


def _zeroed(reset_t, state):
    """``state`` with the rows where ``reset_t`` (B, 1) is True replaced by zeros."""
    return tuple(np.where(reset_t, s.dtype.type(0), s) for s in state)


def resets(reset):
    """(T, B, 1) reset mask -> ``(mask, steps)``: ``steps`` (T,) True where some row
    resets; ``(None, None)`` when ``reset`` is None."""
    return (None, None) if reset is None else (reset, reset.any(axis=(1, 2)))


def layer_forward(cell, p, x, state0, mask, partial, *, keep=True, hook=None, reset=None,
                  drop=None, zone=None):
    """Run one layer over a sequence with the cell's plain ``step`` (its ``masked_step``
    under train-time masks).

    Parameters
    ----------
    cell : a cell (:class:`rnnlab.cells.Cell`)
    p : dict with ``W_x`` (D, G*H), ``W_h`` (H, G*H), ``b`` (G*H,) and maybe ``b_h``
    x : ndarray (T, B, D), or (T, B) of ints in [0, D): token ids, as their one-hot
        vectors but with the input projection a row gather
    state0 : tuple of ``n_state`` arrays (B, H)
    mask : ndarray (T, B, 1) of bool, or None
    partial : ndarray (T,) of bool, or None: the steps where some sequence is padded
    reset : ndarray (T, B, 1) of bool, or None: True where the state entering step ``t``
        is zeros instead of the one carried
    drop : ndarray (B, P) or None
        Recurrent dropout: ``h_{t-1} * drop`` enters the recurrent product at every step
        (the cell's ``masked_step``; the same mask at every step).
    zone : tuple over the states of (T, B, W) arrays (or None entries), or None
        Zoneout's masks, 1 where a unit keeps its previous value at step ``t``; only for a
        zoneout cell (:class:`rnnlab.cells.zoneout.ZoneoutCell`), which stores them in
        what it saves for backward.
    keep : bool
        Keep what backward needs; False (inference) returns None for the cache.
    hook : callable ``hook(t, state, saved)`` or None
        Called after each step ``t`` with the state after it (padding applied) and what
        ``step`` saved.

    Returns
    -------
    y : ndarray (T, B, H), zero at padded steps; without padding a view of the cache's
        states, which the layers' public ``forward`` hands out read-only
    state : tuple of (B, H), each sequence's state after its last real step
    cache : LayerCache, or None when not ``keep``
    """
    T, B = x.shape[:2]
    H = p["W_h"].shape[0]
    xp = input_projection(x, p["W_x"])  # (T, B, G*H) all steps at once
    if cell.loop_biases:  # else the cell adds b itself, after normalising x W_x
        xp += p["b"]
    dtype = p["W_h"].dtype
    hs = np.empty((T + 1, B, H), dtype=dtype)
    hs[0] = state0[0]
    saved = []
    state = state0
    reset, reset_steps = resets(reset)
    masked = drop is not None or zone is not None
    for t in range(T):
        if reset is not None and reset_steps[t]:
            state = _zeroed(reset[t], state)
        if masked:
            new, s = cell.masked_step(p, xp[t], state, drop,
                                      None if zone is None else tuple(
                                          None if z is None else z[t] for z in zone))
        else:
            new, s = cell.step(p, xp[t], state)
        if partial is not None and partial[t]:
            new = _held(mask[t], new, state)
        state = new
        hs[t + 1] = state[0]
        if keep:
            saved.append(s)
        if hook is not None:
            hook(t, state, s)
    y = hs[1:] if mask is None else hs[1:] * mask  # a view of the cache's states (see Returns)
    return y, state, (LayerCache(x, hs, saved, mask, partial, reset, drop) if keep else None)


def layer_backward(cell, p, cache, dy, dstate, *, need_dx=True, need_weights=True, hook=None):
    """Backpropagate through one layer's unfolded sequence (BPTT).

    Parameters
    ----------
    cache : LayerCache of :func:`layer_forward`; its ``saved`` may be any sequence
        indexable by step (diagnostics pass a lazy one); ``x`` and ``hs`` are read only
        for the weight gradients
    dy : ndarray (T, B, H) or None, gradient with respect to the layer's outputs
    dstate : tuple of (B, H), gradient with respect to the final state
    need_dx : bool, False to skip the input gradient (one product of the three)
    need_weights : bool, False to skip the weight gradients (``grads`` is then None)
    hook : callable ``hook(t, d) -> d or None`` or None
        Called at each step ``t`` (from T-1 down) with ``d``, the tuple of gradients with
        respect to the state after step ``t`` (``dy[t]`` included), before the step is
        backpropagated; a tuple it returns replaces ``d``.

    Returns
    -------
    grads : dict like ``p``, or None without ``need_weights``
    dx : ndarray (T, B, D), or None without ``need_dx`` or for token ids
    dstate0 : tuple of (B, H), gradient with respect to the initial state
    """
    x, hs, saved, mask, partial, reset, drop = cache[:7]
    need_dx = need_dx and (x is None or x.ndim == 3)  # token ids have no gradient
    reset, reset_steps = resets(reset)
    T, B = len(saved), dstate[0].shape[0]
    GH = p["W_h"].shape[1]
    dtype = dstate[0].dtype
    keep_d = need_dx or need_weights
    dxp = np.empty((T, B, GH), dtype=dtype) if keep_d else None
    apart = (cell.recurrent_bias or not cell.loop_biases) and need_weights  # gh is not gx
    dhp = dxp if not apart else np.empty((T, B, GH), dtype)
    if dy is not None and mask is not None:
        dy = dy * mask  # padded outputs are constant zeros: no gradient flows from them
    d = tuple(dstate)
    # per step, the factors of the gradients of the cell's own parameters (the LSTM's
    # projection, its peepholes), reduced over all steps at once below
    own = bool(cell.extra_params)
    extra = [] if own and need_weights else None
    for t in range(T - 1, -1, -1):
        if dy is not None:
            d = (d[0] + dy[t],) + d[1:]
        if hook is not None:
            d = hook(t, d) or d
        out = (cell.step_back(p, saved[t], d) if drop is None
               else cell.masked_step_back(p, saved[t], d, drop))
        if own:
            gx, gh, prev, factors = out
        else:
            gx, gh, prev = out
        if partial is not None and partial[t]:
            m = mask[t]
            shared = gh is gx
            gx = gx * m
            gh = gx if shared else gh * m
            prev = _held(m, prev, d)
            if extra is not None:
                factors = tuple(f * m for f in factors)
        if extra is not None:
            extra.append(factors)
        if reset is not None and reset_steps[t]:
            prev = _zeroed(reset[t], prev)
        if keep_d:
            dxp[t] = gx
            if dhp is not dxp:
                dhp[t] = gh
        d = prev
    if not keep_d:
        return None, None, d
    dxp2 = dxp.reshape(T * B, GH)
    grads = None
    if need_weights:
        dhp2 = dhp.reshape(T * B, GH)
        entering = hs[:-1] if reset is None else np.where(reset, hs.dtype.type(0), hs[:-1])
        if drop is not None:  # what the recurrent product read
            entering = entering * drop
        grads = {
            "W_x": input_weight_gradient(x, dxp2, p["W_x"].shape[0]),
            "W_h": entering.reshape(T * B, -1).T @ dhp2,
            "b": dxp2.sum(axis=0) if cell.loop_biases else None,  # else from extra_grads
        }
        if cell.recurrent_bias and cell.loop_biases:
            grads["b_h"] = dhp2.sum(axis=0)
        if extra is not None:
            stacked = tuple(np.concatenate(f, axis=0) for f in zip(*extra[::-1], strict=True))
            grads.update(cell.extra_grads(p, stacked))
    dx = (dxp2 @ p["W_x"].T).reshape(T, B, -1) if need_dx else None
    return grads, dx, d


def step(cell, p, x_t, state):
    """One plain step of one layer: ``x_t`` (B, D), ``state`` a tuple of (B, H) -> the new
    state (a tuple of (B, H)); the reference of the streaming kernels."""
    xp = x_t @ p["W_x"]
    new, _ = cell.step(p, xp + p["b"] if cell.loop_biases else xp, state)
    return new


def reversal(lengths, T: int, B: int):
    """The time index that reads each sequence backwards within its own length: (T, B) of
    ints, ``index[t, b] = len_b - 1 - t`` on real steps and ``t`` on padding (which stays
    where it is). Its own inverse; ``lengths`` None means every sequence is T steps."""
    t = np.arange(T)[:, None]
    if lengths is None:
        return np.broadcast_to(T - 1 - t, (T, B))
    lens = np.asarray(lengths)[None, :]
    return np.where(t < lens, lens - 1 - t, t)


def reversed_in_time(a, index):
    """``a`` (T, B, ...) read through :func:`reversal`'s ``index``: a new array."""
    return a[index, np.arange(a.shape[1])[None, :]]


def reversed_resets(reset, index):
    """The reset mask of the reverse direction, (T, B, 1) or None: a document that begins
    at step t (forward) ends at t - 1, so read backwards the state entering step t - 1 is
    zeros; a reset at the first step says nothing about the reverse direction."""
    if reset is None:
        return None
    before = np.zeros_like(reset)
    before[:-1] = reset[1:]
    out = reversed_in_time(before, index)
    return out if out.any() else None
