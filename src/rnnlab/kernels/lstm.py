r"""Fused LSTM kernels: the whole time loop of forward and backward, compiled; also those of
the projected LSTM (``*_proj``, kernel id ``lstmp``), of the peephole LSTM (``*_peep``,
kernel id ``lstm_peepholes``) and of the layer-normalised LSTM (``*_ln``, kernel id
``lstm_ln``), below the plain ones.

Shape legend: T time, B batch, H hidden units, G = 4H, P projected units. Fused gate order
``i, f, g, o`` (:mod:`rnnlab.cells.lstm` states the equations; this module implements
exactly them).

Each step is one BLAS call that adds ``h_{t-1} @ W_h`` onto the input projection
``x_t W_x`` (computed for all steps by one GEMM, outside), then one pass over the
(B, 4H) gate block that adds the bias and activates in place, leaving the gates that
backward needs; nothing is allocated per step. ``tanh(c_t)`` is recomputed in
backward instead of stored (one tanh per unit is cheaper than the memory).
Loops are split so each touches few arrays: numba cannot tell LLVM the arrays do not
alias, and with too many of them LLVM gives up vectorising (measurements:
docs/performance.md).

``mask`` (T, B) of bool: False marks a padded step, which keeps the state and passes
the gradient of the state straight back. ``reset`` (T, B) of bool: True where the state
entering step t is zero instead of the one carried (a new document begins at ``x_t``);
no gradient then flows on to the carried state. Absent arguments are empty arrays rather than
None (``mask`` (0, 0), ``dy`` (0, 0, 0)): numba compiles one variant per argument type,
and a None would double the variants, and the first-call compile time, per argument.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._jit import (
    JIT,
    add_into,
    add_sigmoid,
    add_tanh,
    all_finite,
    mm,
    one_like,
    product,
    reset_rows,
    sigmoid_,
    squares_about,
    sum_lanes,
    tanh_,
)


@njit(**JIT)
def _gates_row(a, g, H):
    """``g = act(g + a)`` on one row: sigmoid for i, f, o and tanh for g."""
    add_sigmoid(a[:2 * H], g[:2 * H])
    add_tanh(a[2 * H:3 * H], g[2 * H:3 * H])
    add_sigmoid(a[3 * H:], g[3 * H:])


@njit(**JIT)
def _state_row(g, c, c_new, h_new, H):
    i, f, gg, o = g[:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:]
    for j in range(H):
        c_new[j] = f[j] * c[j] + i[j] * gg[j]
    for j in range(H):
        h_new[j] = o[j] * tanh_(c_new[j])


@njit(**JIT)
def forward(gemm, tile, W_h, Wp, x, W_x, Wxp, bias, xg, hs, cs, mask, reset, b0, b1):
    """Run rows ``b0:b1`` of the batch over all steps.

    Parameters
    ----------
    gemm, tile : see :func:`rnnlab.kernels._jit.product`
    W_h : ndarray (H, 4H); ``Wp`` the same packed for ``tile``
    x, W_x, Wxp : ndarray (T, B, D), (D, 4H) and ``W_x`` packed, to compute ``x_t W_x``
        step by step, rows still in cache for the gates; ``Wxp`` (0, 0, 0) when ``xg``
        already holds it
    bias : ndarray (4H,)
    xg : ndarray (T, B, 4H)
        In: ``x_t W_x`` (or nothing, see ``Wxp``). Out: the gates ``i, f, g, o`` (garbage
        at padded steps). Inference keeps no gates: ``xg`` (1, B, 4H) then serves every
        step (and ``Wxp`` must be given).
    hs : ndarray (T+1, B, H)
        In: ``hs[0]`` the initial state. Out: the states after each step.
    cs : ndarray (T+1, B, H), as ``hs`` for the cell state; for inference (2, B, H),
        ``cs[t % 2]`` holding ``c_t``
    mask : ndarray (T, B) of bool; (0, 0) when no step is padded
    reset : ndarray (T, B) of bool; (0, 0) when no state is reset
    b0, b1 : int, the rows this call runs (rows are independent; see :func:`forward_par`)
    """
    T = hs.shape[0] - 1
    H = hs.shape[2]
    keep = xg.shape[0] == T  # else one step's gates, overwritten at every step
    masked, fused, resetting = mask.shape[0] > 0, Wxp.shape[0] > 0, reset.shape[0] > 0
    prev = np.empty((b1 - b0 if resetting else 0, H), hs.dtype)
    zero = np.zeros(H, hs.dtype)  # the cell state that enters a reset step
    for t in range(T):
        g = t if keep else 0
        c0, c1 = (t, t + 1) if keep else (t % 2, (t + 1) % 2)
        if fused:
            product(gemm, tile, W_x, Wxp, x[t, b0:b1], xg[g, b0:b1], 0)
        if resetting and reset_rows(hs[t, b0:b1], reset[t, b0:b1], prev):
            product(gemm, tile, W_h, Wp, prev, xg[g, b0:b1], 1)
        else:
            product(gemm, tile, W_h, Wp, hs[t, b0:b1], xg[g, b0:b1], 1)
        for b in range(b0, b1):
            fresh = resetting and reset[t, b]
            if not masked or mask[t, b]:
                _gates_row(bias, xg[g, b], H)
                _state_row(xg[g, b], zero if fresh else cs[c0, b], cs[c1, b], hs[t + 1, b], H)
            elif fresh:
                hs[t + 1, b] = 0
                cs[c1, b] = 0
            else:
                hs[t + 1, b] = hs[t, b]
                cs[c1, b] = cs[c0, b]


@njit(**JIT)
def _back_row(g, c_prev, c, dh, dc, da, H):
    """One row of the step's backward; ``dc`` in: dL/dc_t, out: dL/dc_{t-1}."""
    one = one_like(g[0])
    i, f, gg, o = g[:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:]
    da_i, da_f, da_g, da_o = da[:H], da[H:2 * H], da[2 * H:3 * H], da[3 * H:]
    for j in range(H):
        tc = tanh_(c[j])
        dc[j] += dh[j] * o[j] * (one - tc * tc)
        da_o[j] = dh[j] * tc * o[j] * (one - o[j])
    for j in range(H):
        d = dc[j]
        da_i[j] = d * gg[j] * i[j] * (one - i[j])
        da_f[j] = d * c_prev[j] * f[j] * (one - f[j])
        da_g[j] = d * i[j] * (one - gg[j] * gg[j])
        dc[j] = d * f[j]


@njit(parallel=True, **JIT)
def forward_par(gemm, tile, W_h, Wp, x, W_x, Wxp, bias, xg, hs, cs, mask, reset, chunks):
    """:func:`forward` with the batch cut into ``chunks`` runs of rows, one per thread."""
    B = hs.shape[1]
    for c in prange(chunks):
        forward(gemm, tile, W_h, Wp, x, W_x, Wxp, bias, xg, hs, cs, mask, reset,
                c * B // chunks, (c + 1) * B // chunks)


@njit(**JIT)
def backward(gemm, tile, W_hT, Wp, gates, hs, cs, mask, reset, dy, dy_bt, dh, dc, da, db, b0,
             b1):
    """Backpropagate rows ``b0:b1`` of the batch through all steps.

    Parameters
    ----------
    W_hT : ndarray (4H, H), ``W_h.T`` made contiguous (OpenBLAS runs the transposed
        product slower at these sizes; measurements: docs/performance.md); ``Wp`` the
        same packed for ``tile``
    gates : ndarray (T, B, 4H), from :func:`forward`
    hs, cs : ndarray (T+1, B, H), from :func:`forward`
    dy : ndarray (T, B, H), gradient with respect to the outputs; (0, 0, 0) for none
    dy_bt : bool, ``dy`` is laid out (B, T, H) instead (the public API's batch-first
        array, read in place rather than copied)
    dh, dc : ndarray (B, H)
        In: gradient with respect to the final state. Out: with respect to the initial one.
    da : ndarray (T, B, 4H), out: gradient at the gate pre-activations (zero at padded steps)
    db : ndarray (4H,) of float64, zeros in; out: the bias gradient, the sum of ``da``
        over these rows
    b0, b1 : int, the rows this call runs
    """
    T, B, G = gates.shape
    H = G // 4
    carry = dh[b0:b1].copy()  # ping-pong partner of dh's rows for the recurrent product
    masked, has_dy, resetting = mask.shape[0] > 0, dy.shape[0] > 0, reset.shape[0] > 0
    zero = np.zeros(H, hs.dtype)  # the cell state that entered a reset step
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            if not masked or mask[t, b]:
                if has_dy:
                    dh[b] += dy[b, t] if dy_bt else dy[t, b]
                c_prev = zero if resetting and reset[t, b] else cs[t, b]
                _back_row(gates[t, b], c_prev, cs[t + 1, b], dh[b], dc[b], da[t, b], H)
                add_into(db, da[t, b])
                carry[b - b0] = 0
            else:
                da[t, b] = 0
                carry[b - b0] = dh[b]  # a padded step hands its gradient straight back
        product(gemm, tile, W_hT, Wp, da[t, b0:b1], carry, 1)
        dh[b0:b1] = carry
        if resetting:  # a reset state was a constant zero: nothing flows on to the one before
            for b in range(b0, b1):
                if reset[t, b]:
                    dh[b] = 0
                    dc[b] = 0


@njit(parallel=True, **JIT)
def backward_par(gemm, tile, W_hT, Wp, gates, hs, cs, mask, reset, dy, dy_bt, dh, dc, da, db,
                 chunks):
    """:func:`backward` in ``chunks`` runs of rows, one per thread; ``db`` (chunks, 4H)
    receives each run's bias gradient."""
    B = gates.shape[1]
    for c in prange(chunks):
        backward(gemm, tile, W_hT, Wp, gates, hs, cs, mask, reset, dy, dy_bt, dh, dc, da, db[c],
                 c * B // chunks, (c + 1) * B // chunks)


@njit(**JIT)
def step(gemm, W_x, W_h, bias, x, h, c, h_out, c_out):
    """One streaming step: ``x`` (B, D), state ``h, c`` (B, H) -> ``h_out, c_out``.

    ``h_out``/``c_out`` may not alias ``h``/``c``. Returns whether ``x``, ``h`` and ``c``
    were all finite. The scratch is allocated here (see :func:`rnnlab.kernels.elman.step`).
    """
    B = x.shape[0]
    H = h.shape[1]
    a = np.empty((B, W_h.shape[1]), x.dtype)
    mm(gemm, h, W_h, a, False, 0)
    mm(gemm, x, W_x, a, False, 1)
    for b in range(B):
        _gates_row(bias, a[b], H)
        _state_row(a[b], c[b], c_out[b], h_out[b], H)
    return all_finite(x) and all_finite(h) and all_finite(c)


# -- the projected LSTM (LSTMP): h_t = (o * tanh(c_t)) W_hr ------------------------------------
# Shape legend beyond the module's: P projected units, the width of h; H stays the width of
# c and of each gate block. A step costs one product more each way, (B, H) x (H, P).


@njit(**JIT)
def forward_proj(gemm, tile, W_h, Wp, W_hr, Wrp, x, W_x, Wxp, bias, xg, hs, cs, ms, mask,
                 reset, b0, b1):
    """:func:`forward` with a projection: ``W_h`` (P, 4H), ``W_hr`` (H, P) (``Wrp`` packed
    for the tile), ``hs`` (T+1, B, P) and ``ms`` (T, B, H) out: the unprojected outputs
    ``o * tanh(c_t)`` (zero at padded steps), what the gradient of ``W_hr`` reads; (1, B, H)
    for inference, as ``xg``. The other arguments as :func:`forward`'s."""
    T = hs.shape[0] - 1
    P, H = hs.shape[2], cs.shape[2]
    keep = xg.shape[0] == T
    masked, fused, resetting = mask.shape[0] > 0, Wxp.shape[0] > 0, reset.shape[0] > 0
    prev = np.empty((b1 - b0 if resetting else 0, P), hs.dtype)
    zero = np.zeros(H, hs.dtype)
    for t in range(T):
        g = t if keep else 0
        c0, c1 = (t, t + 1) if keep else (t % 2, (t + 1) % 2)
        if fused:
            product(gemm, tile, W_x, Wxp, x[t, b0:b1], xg[g, b0:b1], 0)
        if resetting and reset_rows(hs[t, b0:b1], reset[t, b0:b1], prev):
            product(gemm, tile, W_h, Wp, prev, xg[g, b0:b1], 1)
        else:
            product(gemm, tile, W_h, Wp, hs[t, b0:b1], xg[g, b0:b1], 1)
        for b in range(b0, b1):
            fresh = resetting and reset[t, b]
            if not masked or mask[t, b]:
                _gates_row(bias, xg[g, b], H)
                _state_row(xg[g, b], zero if fresh else cs[c0, b], cs[c1, b], ms[g, b], H)
            else:
                ms[g, b] = 0  # no contribution to W_hr's gradient (and no NaN from garbage)
                if fresh:
                    cs[c1, b] = 0
                else:
                    cs[c1, b] = cs[c0, b]
        product(gemm, tile, W_hr, Wrp, ms[g, b0:b1], hs[t + 1, b0:b1], 0)
        if masked:  # a padded step keeps h (or zeros it at a reset), over the product's
            for b in range(b0, b1):
                if not mask[t, b]:
                    if resetting and reset[t, b]:
                        hs[t + 1, b] = 0
                    else:
                        hs[t + 1, b] = hs[t, b]


@njit(parallel=True, **JIT)
def forward_proj_par(gemm, tile, W_h, Wp, W_hr, Wrp, x, W_x, Wxp, bias, xg, hs, cs, ms, mask,
                     reset, chunks):
    """:func:`forward_proj` with the batch cut into ``chunks`` runs of rows."""
    B = hs.shape[1]
    for c in prange(chunks):
        forward_proj(gemm, tile, W_h, Wp, W_hr, Wrp, x, W_x, Wxp, bias, xg, hs, cs, ms, mask,
                     reset, c * B // chunks, (c + 1) * B // chunks)


@njit(**JIT)
def backward_proj(gemm, tile, W_hT, Wp, W_hrT, Wrp, gates, hs, cs, mask, reset, dy, dy_bt, dh,
                  dc, da, dhs, db, b0, b1):
    """:func:`backward` with a projection: ``W_hT`` (4H, P), ``W_hrT`` (P, H) (``Wrp``
    packed), ``dh`` (B, P) and ``dy`` (T, B, P); ``dhs`` (T, B, P) out: the gradient with
    respect to each step's ``h_t`` (zero at padded steps), what the gradient of ``W_hr``
    reads. The other arguments as :func:`backward`'s."""
    T, B, G = gates.shape
    H = G // 4
    carry = dh[b0:b1].copy()
    dm = np.empty((b1 - b0, H), dh.dtype)  # gradient at o * tanh(c_t), before projection
    masked, has_dy, resetting = mask.shape[0] > 0, dy.shape[0] > 0, reset.shape[0] > 0
    zero = np.zeros(H, hs.dtype)
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            if not masked or mask[t, b]:
                if has_dy:
                    dh[b] += dy[b, t] if dy_bt else dy[t, b]
                dhs[t, b] = dh[b]
            else:
                dhs[t, b] = 0
        product(gemm, tile, W_hrT, Wrp, dh[b0:b1], dm, 0)
        for b in range(b0, b1):
            if not masked or mask[t, b]:
                c_prev = zero if resetting and reset[t, b] else cs[t, b]
                _back_row(gates[t, b], c_prev, cs[t + 1, b], dm[b - b0], dc[b], da[t, b], H)
                add_into(db, da[t, b])
                carry[b - b0] = 0
            else:
                da[t, b] = 0
                carry[b - b0] = dh[b]
        product(gemm, tile, W_hT, Wp, da[t, b0:b1], carry, 1)
        dh[b0:b1] = carry
        if resetting:
            for b in range(b0, b1):
                if reset[t, b]:
                    dh[b] = 0
                    dc[b] = 0


@njit(parallel=True, **JIT)
def backward_proj_par(gemm, tile, W_hT, Wp, W_hrT, Wrp, gates, hs, cs, mask, reset, dy, dy_bt,
                      dh, dc, da, dhs, db, chunks):
    """:func:`backward_proj` in ``chunks`` runs of rows; ``db`` (chunks, 4H)."""
    B = gates.shape[1]
    for c in prange(chunks):
        backward_proj(gemm, tile, W_hT, Wp, W_hrT, Wrp, gates, hs, cs, mask, reset, dy, dy_bt,
                      dh, dc, da, dhs, db[c], c * B // chunks, (c + 1) * B // chunks)


@njit(**JIT)
def step_proj(gemm, W_x, W_h, W_hr, bias, x, h, c, h_out, c_out):
    """:func:`step` with a projection: ``h`` (B, P), ``c`` (B, H), ``W_hr`` (H, P)."""
    B = x.shape[0]
    H = c.shape[1]
    a = np.empty((B, W_h.shape[1]), x.dtype)
    m = np.empty((B, H), x.dtype)
    mm(gemm, h, W_h, a, False, 0)
    mm(gemm, x, W_x, a, False, 1)
    for b in range(B):
        _gates_row(bias, a[b], H)
        _state_row(a[b], c[b], c_out[b], m[b], H)
    mm(gemm, m, W_hr, h_out, False, 0)
    return all_finite(x) and all_finite(h) and all_finite(c)


# -- peepholes (Gers & Schmidhuber 2000): a_i += p_i c_{t-1}, a_f += p_f c_{t-1}, a_o += p_o c_t --
# ``peep`` (3, H) holds p_i, p_f, p_o; elementwise work only, the products are the LSTM's.


@njit(**JIT)
def _peep_row(bias, g, c, c_new, h_new, peep, H):
    """One row of a peephole step: ``g`` (4H) in: ``x_t W_x + h W_h``; out: the gates."""
    for j in range(H):
        g[j] = sigmoid_(g[j] + bias[j] + peep[0, j] * c[j])
        g[H + j] = sigmoid_(g[H + j] + bias[H + j] + peep[1, j] * c[j])
        g[2 * H + j] = tanh_(g[2 * H + j] + bias[2 * H + j])
    for j in range(H):
        c_new[j] = g[H + j] * c[j] + g[j] * g[2 * H + j]
    for j in range(H):
        o = sigmoid_(g[3 * H + j] + bias[3 * H + j] + peep[2, j] * c_new[j])
        g[3 * H + j] = o
        h_new[j] = o * tanh_(c_new[j])


@njit(**JIT)
def forward_peep(gemm, tile, W_h, Wp, x, W_x, Wxp, bias, peep, xg, hs, cs, mask, reset, b0,
                 b1):
    """:func:`forward` with peepholes ``peep`` (3, H); the other arguments as its."""
    T = hs.shape[0] - 1
    H = hs.shape[2]
    keep = xg.shape[0] == T
    masked, fused, resetting = mask.shape[0] > 0, Wxp.shape[0] > 0, reset.shape[0] > 0
    prev = np.empty((b1 - b0 if resetting else 0, H), hs.dtype)
    zero = np.zeros(H, hs.dtype)
    for t in range(T):
        g = t if keep else 0
        c0, c1 = (t, t + 1) if keep else (t % 2, (t + 1) % 2)
        if fused:
            product(gemm, tile, W_x, Wxp, x[t, b0:b1], xg[g, b0:b1], 0)
        if resetting and reset_rows(hs[t, b0:b1], reset[t, b0:b1], prev):
            product(gemm, tile, W_h, Wp, prev, xg[g, b0:b1], 1)
        else:
            product(gemm, tile, W_h, Wp, hs[t, b0:b1], xg[g, b0:b1], 1)
        for b in range(b0, b1):
            fresh = resetting and reset[t, b]
            if not masked or mask[t, b]:
                _peep_row(bias, xg[g, b], zero if fresh else cs[c0, b], cs[c1, b],
                          hs[t + 1, b], peep, H)
            elif fresh:
                hs[t + 1, b] = 0
                cs[c1, b] = 0
            else:
                hs[t + 1, b] = hs[t, b]
                cs[c1, b] = cs[c0, b]


@njit(parallel=True, **JIT)
def forward_peep_par(gemm, tile, W_h, Wp, x, W_x, Wxp, bias, peep, xg, hs, cs, mask, reset,
                     chunks):
    """:func:`forward_peep` with the batch cut into ``chunks`` runs of rows."""
    B = hs.shape[1]
    for c in prange(chunks):
        forward_peep(gemm, tile, W_h, Wp, x, W_x, Wxp, bias, peep, xg, hs, cs, mask, reset,
                     c * B // chunks, (c + 1) * B // chunks)


@njit(**JIT)
def _peep_back_row(g, c_prev, c, dh, dc, da, peep, dp, H):
    """:func:`_back_row` with peepholes; ``dp`` (3H,) float64 accumulates the gradients of
    ``p_i, p_f, p_o``."""
    one = one_like(g[0])
    for j in range(H):
        o = g[3 * H + j]
        tc = tanh_(c[j])
        do = dh[j] * tc * o * (one - o)
        da[3 * H + j] = do
        dc[j] += dh[j] * o * (one - tc * tc) + do * peep[2, j]
        dp[2 * H + j] += do * c[j]
    for j in range(H):
        d = dc[j]
        i, f, gg = g[j], g[H + j], g[2 * H + j]
        di = d * gg * i * (one - i)
        df = d * c_prev[j] * f * (one - f)
        da[j] = di
        da[H + j] = df
        da[2 * H + j] = d * i * (one - gg * gg)
        dc[j] = d * f + di * peep[0, j] + df * peep[1, j]
        dp[j] += di * c_prev[j]
        dp[H + j] += df * c_prev[j]


@njit(**JIT)
def backward_peep(gemm, tile, W_hT, Wp, peep, gates, hs, cs, mask, reset, dy, dy_bt, dh, dc, da,
                  db, dp, b0, b1):
    """:func:`backward` with peepholes ``peep`` (3, H); ``dp`` (3H,) of float64, zeros in,
    out: the gradients of ``p_i, p_f, p_o`` over these rows."""
    T, B, G = gates.shape
    H = G // 4
    carry = dh[b0:b1].copy()
    masked, has_dy, resetting = mask.shape[0] > 0, dy.shape[0] > 0, reset.shape[0] > 0
    zero = np.zeros(H, hs.dtype)
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            if not masked or mask[t, b]:
                if has_dy:
                    dh[b] += dy[b, t] if dy_bt else dy[t, b]
                c_prev = zero if resetting and reset[t, b] else cs[t, b]
                _peep_back_row(gates[t, b], c_prev, cs[t + 1, b], dh[b], dc[b], da[t, b], peep,
                               dp, H)
                add_into(db, da[t, b])
                carry[b - b0] = 0
            else:
                da[t, b] = 0
                carry[b - b0] = dh[b]
        product(gemm, tile, W_hT, Wp, da[t, b0:b1], carry, 1)
        dh[b0:b1] = carry
        if resetting:
            for b in range(b0, b1):
                if reset[t, b]:
                    dh[b] = 0
                    dc[b] = 0


@njit(parallel=True, **JIT)
def backward_peep_par(gemm, tile, W_hT, Wp, peep, gates, hs, cs, mask, reset, dy, dy_bt, dh, dc,
                      da, db, dp, chunks):
    """:func:`backward_peep` in ``chunks`` runs of rows; ``db`` (chunks, 4H), ``dp``
    (chunks, 3H)."""
    B = gates.shape[1]
    for c in prange(chunks):
        backward_peep(gemm, tile, W_hT, Wp, peep, gates, hs, cs, mask, reset, dy, dy_bt, dh, dc,
                      da, db[c], dp[c], c * B // chunks, (c + 1) * B // chunks)


@njit(**JIT)
def step_peep(gemm, W_x, W_h, bias, peep, x, h, c, h_out, c_out):
    """:func:`step` with peepholes ``peep`` (3, H)."""
    B = x.shape[0]
    H = h.shape[1]
    a = np.empty((B, W_h.shape[1]), x.dtype)
    mm(gemm, h, W_h, a, False, 0)
    mm(gemm, x, W_x, a, False, 1)
    for b in range(B):
        _peep_row(bias, a[b], c[b], c_out[b], h_out[b], peep, H)
    return all_finite(x) and all_finite(h) and all_finite(c)


# --- the layer-normalised LSTM (kernel id "lstm_ln") -------------------------------------------
#
# The input side's normalisation, LN(x_t W_x) gamma_x + b over all steps, is one batched
# NumPy pass before the loop (:mod:`rnnlab.kernels.layers`), and its backward one after;
# the loop normalises the recurrent product and the cell state at each step.

#: the variance offset of every layer normalisation (the cells' ``LN_EPS``)
LN_EPS = 1e-5


@njit(**JIT)
def norm_row(u, n, eps):
    """``n = (u - mean(u)) / sqrt(var(u) + eps)`` for one row (sums in float64); returns
    the inverse deviation."""
    N = u.shape[0]
    total, _ = sum_lanes(u, u)
    mu = total / N
    # the variance as E[u^2] - mu^2 would lose digits where mu is large against the
    # spread; summed about mu instead, in a second pass
    s = 1.0 / math.sqrt(squares_about(u, mu) / N + eps)
    for j in range(N):
        n[j] = (u[j] - mu) * s
    return s


@njit(**JIT)
def norm_back_row(dn, n, s, du, beta):
    """The gradient at :func:`norm_row`'s ``u`` from ``dn`` at its ``n``:
    ``du = s (dn - mean(dn) - n mean(dn n))``, added to ``du`` when ``beta`` is 1."""
    N = dn.shape[0]
    a, b = sum_lanes(dn, n)
    a, b = a / N, b / N
    if beta:
        for j in range(N):
            du[j] += s * (dn[j] - a - n[j] * b)
    else:
        for j in range(N):
            du[j] = s * (dn[j] - a - n[j] * b)


@njit(**JIT)
def _ln_row(ax, nh, gamma_h, gamma_c, beta_c, g, c, c_new, nc, h_new, H):
    """One row's step from the normalised products; returns the cell state's inverse
    deviation."""
    for j in range(4 * H):
        g[j] = ax[j] + nh[j] * gamma_h[j]
    for j in range(2 * H):
        g[j] = sigmoid_(g[j])
    gg = g[2 * H:3 * H]
    for j in range(H):
        gg[j] = tanh_(gg[j])
    o = g[3 * H:]
    for j in range(H):
        o[j] = sigmoid_(o[j])
    i, f = g[:H], g[H:2 * H]
    for j in range(H):
        c_new[j] = f[j] * c[j] + i[j] * gg[j]
    s = norm_row(c_new, nc, LN_EPS)
    for j in range(H):
        h_new[j] = o[j] * tanh_(nc[j] * gamma_c[j] + beta_c[j])
    return s


@njit(**JIT)
def forward_ln(gemm, tile, W_h, Wp, ax, gamma_h, gamma_c, beta_c, hp, nh, sh, gates, hs, cs,
               ncs, scs, mask, reset, b0, b1):
    """Run rows ``b0:b1`` of the batch over all steps.

    Parameters
    ----------
    W_h : ndarray (H, 4H); ``Wp`` the same packed for ``tile``
    ax : ndarray (T, B, 4H), ``LN(x_t W_x) gamma_x + b``
    gamma_h : (4H,); gamma_c, beta_c : (H,)
    hp : ndarray (B, 4H), one step's ``h_{t-1} W_h`` (scratch)
    nh : ndarray (T, B, 4H), out: ``LN(h_{t-1} W_h)``; ``sh`` (T, B) its inverse deviations
    gates : ndarray (T, B, 4H), out: ``i, f, g, o``
    hs, cs : ndarray (T+1, B, H), in: the initial states, out: the states after each step
    ncs : ndarray (T, B, H), out: ``LN(c_t)``; ``scs`` (T, B) its inverse deviations
    mask, reset, b0, b1 : as in :func:`forward`
    """
    T = hs.shape[0] - 1
    H = hs.shape[2]
    masked, resetting = mask.shape[0] > 0, reset.shape[0] > 0
    prev = np.empty((b1 - b0 if resetting else 0, H), hs.dtype)
    zero = np.zeros(H, hs.dtype)
    for t in range(T):
        if resetting and reset_rows(hs[t, b0:b1], reset[t, b0:b1], prev):
            product(gemm, tile, W_h, Wp, prev, hp[b0:b1], 0)
        else:
            product(gemm, tile, W_h, Wp, hs[t, b0:b1], hp[b0:b1], 0)
        for b in range(b0, b1):
            fresh = resetting and reset[t, b]
            if not masked or mask[t, b]:
                sh[t, b] = norm_row(hp[b], nh[t, b], LN_EPS)
                scs[t, b] = _ln_row(ax[t, b], nh[t, b], gamma_h, gamma_c, beta_c, gates[t, b],
                                    zero if fresh else cs[t, b], cs[t + 1, b], ncs[t, b],
                                    hs[t + 1, b], H)
            elif fresh:
                hs[t + 1, b] = 0
                cs[t + 1, b] = 0
            else:
                hs[t + 1, b] = hs[t, b]
                cs[t + 1, b] = cs[t, b]


@njit(parallel=True, **JIT)
def forward_ln_par(gemm, tile, W_h, Wp, ax, gamma_h, gamma_c, beta_c, hp, nh, sh, gates, hs,
                   cs, ncs, scs, mask, reset, chunks):
    """:func:`forward_ln` with the batch cut into ``chunks`` runs of rows, one per thread."""
    B = hs.shape[1]
    for c in prange(chunks):
        forward_ln(gemm, tile, W_h, Wp, ax, gamma_h, gamma_c, beta_c, hp, nh, sh, gates, hs,
                   cs, ncs, scs, mask, reset, c * B // chunks, (c + 1) * B // chunks)


@njit(**JIT)
def _ln_back_row(g, c_prev, nc, sc, gamma_c, beta_c, dh, dc, da, dln, dg_c, db_c, H):
    """One row of the step's backward down to the pre-activations ``da``; ``dc`` in:
    dL/dc_t, out: dL/dc_{t-1}; ``dg_c``, ``db_c`` (float64) collect the cell norm's
    gain and offset gradients; ``dln`` (H) scratch."""
    one = one_like(g[0])
    i, f, gg, o = g[:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:]
    da_i, da_f, da_g, da_o = da[:H], da[H:2 * H], da[2 * H:3 * H], da[3 * H:]
    for j in range(H):
        tc = tanh_(nc[j] * gamma_c[j] + beta_c[j])
        da_o[j] = dh[j] * tc * o[j] * (one - o[j])
        d = dh[j] * o[j] * (one - tc * tc)
        dg_c[j] += d * nc[j]
        db_c[j] += d
        dln[j] = d * gamma_c[j]
    norm_back_row(dln, nc, sc, dc, 1)
    for j in range(H):
        d = dc[j]
        da_i[j] = d * gg[j] * i[j] * (one - i[j])
        da_f[j] = d * c_prev[j] * f[j] * (one - f[j])
        da_g[j] = d * i[j] * (one - gg[j] * gg[j])
        dc[j] = d * f[j]


@njit(**JIT)
def backward_ln(gemm, tile, W_hT, Wp, gamma_h, gamma_c, beta_c, gates, nh, sh, cs, ncs, scs,
                mask, reset, dy, dy_bt, dh, dc, da, dhp, dg_c, db_c, b0, b1):
    """Backpropagate rows ``b0:b1`` of the batch through all steps.

    Parameters
    ----------
    W_hT : ndarray (4H, H), ``W_h.T`` made contiguous; ``Wp`` the same packed for ``tile``
    gates, nh, sh, cs, ncs, scs : from :func:`forward_ln`
    dy, dy_bt, dh, dc : as in :func:`backward`
    da : ndarray (T, B, 4H), out: the gradient at the pre-activations (zero at padded steps)
    dhp : ndarray (T, B, 4H), out: the gradient at ``h_{t-1} W_h`` (zero at padded steps)
    dg_c, db_c : ndarray (H,) of float64, zeros in; out: the gradients of the cell norm's
        gain and offset over these rows
    """
    T, B, G = gates.shape
    H = G // 4
    carry = dh[b0:b1].copy()
    masked, has_dy, resetting = mask.shape[0] > 0, dy.shape[0] > 0, reset.shape[0] > 0
    zero = np.zeros(H, cs.dtype)
    dln = np.empty(H, cs.dtype)
    dn = np.empty(G, cs.dtype)
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            if not masked or mask[t, b]:
                if has_dy:
                    dh[b] += dy[b, t] if dy_bt else dy[t, b]
                c_prev = zero if resetting and reset[t, b] else cs[t, b]
                _ln_back_row(gates[t, b], c_prev, ncs[t, b], scs[t, b], gamma_c, beta_c, dh[b],
                             dc[b], da[t, b], dln, dg_c, db_c, H)
                d = da[t, b]
                for j in range(G):
                    dn[j] = d[j] * gamma_h[j]
                norm_back_row(dn, nh[t, b], sh[t, b], dhp[t, b], 0)
                carry[b - b0] = 0
            else:
                da[t, b] = 0
                dhp[t, b] = 0
                carry[b - b0] = dh[b]
        product(gemm, tile, W_hT, Wp, dhp[t, b0:b1], carry, 1)
        dh[b0:b1] = carry
        if resetting:
            for b in range(b0, b1):
                if reset[t, b]:
                    dh[b] = 0
                    dc[b] = 0


@njit(parallel=True, **JIT)
def backward_ln_par(gemm, tile, W_hT, Wp, gamma_h, gamma_c, beta_c, gates, nh, sh, cs, ncs, scs,
                    mask, reset, dy, dy_bt, dh, dc, da, dhp, dg_c, db_c, chunks):
    """:func:`backward_ln` in ``chunks`` runs of rows, one per thread; ``dg_c``, ``db_c``
    (chunks, H) receive each run's sums."""
    B = gates.shape[1]
    for c in prange(chunks):
        backward_ln(gemm, tile, W_hT, Wp, gamma_h, gamma_c, beta_c, gates, nh, sh, cs, ncs, scs,
                    mask, reset, dy, dy_bt, dh, dc, da, dhp, dg_c[c], db_c[c],
                    c * B // chunks, (c + 1) * B // chunks)
