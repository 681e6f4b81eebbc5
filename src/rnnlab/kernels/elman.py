r"""Fused Elman kernels: :math:`h_t = \Phi(x_t W_x + h_{t-1} W_h + b)`, compiled.

Shape legend: T time, B batch, H hidden units. The activation :math:`\Phi` is an integer
code (:data:`ACTIVATIONS`) whose branch sits outside the inner loops, so each loop
vectorises. ``mask``, ``reset`` and ``dy`` as in :mod:`rnnlab.kernels.lstm`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._jit import JIT, add_into, all_finite, mm, one_like, product, reset_rows, sigmoid_, tanh_

#: activation name -> code passed to the kernels
ACTIVATIONS = {"tanh": 0, "relu": 1, "sigmoid": 2}


@njit(**JIT)
def _act_row(act, a, xp, h_new):
    """``h_new = Phi(a + xp)`` on one row."""
    n = a.shape[0]
    if act == 0:
        for j in range(n):
            h_new[j] = tanh_(a[j] + xp[j])
    elif act == 1:
        zero = 0 * one_like(a[0])
        for j in range(n):
            h_new[j] = max(a[j] + xp[j], zero)
    else:
        for j in range(n):
            h_new[j] = sigmoid_(a[j] + xp[j])


@njit(**JIT)
def _grad_row(act, h, dh, da):
    """``da = dh * Phi'`` on one row, the derivative written from the output ``h``."""
    n = h.shape[0]
    one = one_like(h[0])
    if act == 0:
        for j in range(n):
            da[j] = dh[j] * (one - h[j] * h[j])
    elif act == 1:
        for j in range(n):
            da[j] = dh[j] if h[j] > 0 else 0 * one
    else:
        for j in range(n):
            da[j] = dh[j] * h[j] * (one - h[j])


@njit(**JIT)
def forward(gemm, tile, act, W_h, Wp, x, W_x, Wxp, bias, xp, hs, mask, reset, b0, b1):
    """Run rows ``b0:b1`` of the batch over all steps.

    Parameters
    ----------
    gemm, tile : see :func:`rnnlab.kernels._jit.product`
    act : int, activation code
    W_h : ndarray (H, H); ``Wp`` the same packed for ``tile``
    x, W_x, Wxp : as in :func:`rnnlab.kernels.lstm.forward`
    bias : ndarray (H,)
    xp : ndarray (T, B, H); in: ``x_t W_x`` (or nothing, see ``Wxp``), out: the
        pre-activations less the bias; for inference (1, B, H), serving every step (and
        ``Wxp`` must be given)
    hs : ndarray (T+1, B, H); in: ``hs[0]``, out: the state after each step
    mask : ndarray (T, B) of bool; (0, 0) when no step is padded
    reset : ndarray (T, B) of bool; (0, 0) when no state is reset
    b0, b1 : int, the rows this call runs (rows are independent; see :func:`forward_par`)
    """
    T = hs.shape[0] - 1
    keep = xp.shape[0] == T
    masked, fused, resetting = mask.shape[0] > 0, Wxp.shape[0] > 0, reset.shape[0] > 0
    prev = np.empty((b1 - b0 if resetting else 0, hs.shape[2]), hs.dtype)
    for t in range(T):
        g = t if keep else 0
        if fused:
            product(gemm, tile, W_x, Wxp, x[t, b0:b1], xp[g, b0:b1], 0)
        if resetting and reset_rows(hs[t, b0:b1], reset[t, b0:b1], prev):
            product(gemm, tile, W_h, Wp, prev, xp[g, b0:b1], 1)
        else:
            product(gemm, tile, W_h, Wp, hs[t, b0:b1], xp[g, b0:b1], 1)
        for b in range(b0, b1):
            if not masked or mask[t, b]:
                _act_row(act, bias, xp[g, b], hs[t + 1, b])
            elif resetting and reset[t, b]:
                hs[t + 1, b] = 0
            else:
                hs[t + 1, b] = hs[t, b]


@njit(parallel=True, **JIT)
def forward_par(gemm, tile, act, W_h, Wp, x, W_x, Wxp, bias, xp, hs, mask, reset, chunks):
    """:func:`forward` with the batch cut into ``chunks`` runs of rows, one per thread."""
    B = hs.shape[1]
    for c in prange(chunks):
        forward(gemm, tile, act, W_h, Wp, x, W_x, Wxp, bias, xp, hs, mask, reset,
                c * B // chunks, (c + 1) * B // chunks)


@njit(**JIT)
def backward(gemm, tile, act, W_hT, Wp, hs, mask, reset, dy, dy_bt, dh, da, db, b0, b1):
    """Backpropagate rows ``b0:b1`` of the batch through all steps.

    Parameters
    ----------
    W_hT : ndarray (H, H), ``W_h.T`` made contiguous; ``Wp`` the same packed for ``tile``
    hs : ndarray (T+1, B, H), from :func:`forward`
    dy : ndarray (T, B, H), gradient with respect to the outputs; (0, 0, 0) for none
    dy_bt : bool, ``dy`` is laid out (B, T, H) instead (the public API's batch-first
        array, read in place rather than copied)
    dh : ndarray (B, H); in: gradient at the final state, out: at the initial one
    da : ndarray (T, B, H), out: gradient at the pre-activations (zero at padded steps)
    db : ndarray (H,) of float64, zeros in; out: the bias gradient, the sum of ``da``
        over these rows
    b0, b1 : int, the rows this call runs
    """
    T = hs.shape[0] - 1
    carry = dh[b0:b1].copy()
    masked, has_dy, resetting = mask.shape[0] > 0, dy.shape[0] > 0, reset.shape[0] > 0
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            if not masked or mask[t, b]:
                if has_dy:
                    dh[b] += dy[b, t] if dy_bt else dy[t, b]
                _grad_row(act, hs[t + 1, b], dh[b], da[t, b])
                add_into(db, da[t, b])
                carry[b - b0] = 0
            else:
                da[t, b] = 0
                carry[b - b0] = dh[b]
        product(gemm, tile, W_hT, Wp, da[t, b0:b1], carry, 1)
        dh[b0:b1] = carry
        if resetting:  # a reset state was a constant zero: nothing flows on to the one before
            for b in range(b0, b1):
                if reset[t, b]:
                    dh[b] = 0


@njit(parallel=True, **JIT)
def backward_par(gemm, tile, act, W_hT, Wp, hs, mask, reset, dy, dy_bt, dh, da, db, chunks):
    """:func:`backward` in ``chunks`` runs of rows, one per thread; ``db`` (chunks, H)
    receives each run's bias gradient."""
    B = hs.shape[1]
    for c in prange(chunks):
        backward(gemm, tile, act, W_hT, Wp, hs, mask, reset, dy, dy_bt, dh, da, db[c],
                 c * B // chunks, (c + 1) * B // chunks)


@njit(**JIT)
def step(gemm, act, W_x, W_h, bias, x, h, h_out):
    """One streaming step: ``x`` (B, D), ``h`` (B, H) -> ``h_out``.

    Returns whether ``x`` and ``h`` were all finite (the caller's input check, for free).
    The scratch is allocated here: each array argument costs the call more than an
    allocation inside (measurements: docs/performance.md).
    """
    a = np.empty((x.shape[0], W_h.shape[1]), x.dtype)
    mm(gemm, h, W_h, a, False, 0)
    mm(gemm, x, W_x, a, False, 1)
    for b in range(x.shape[0]):
        _act_row(act, a[b], bias, h_out[b])
    return all_finite(x) and all_finite(h)
