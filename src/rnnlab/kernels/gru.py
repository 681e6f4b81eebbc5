r"""Fused GRU kernels, PyTorch's formulation as in :mod:`rnnlab.cells.gru`, compiled; also
those of the layer-normalised GRU (``*_ln``, kernel id ``gru_ln``), below the plain ones.

Shape legend: T time, B batch, H hidden units. Fused gate order ``r, z, n``.

The recurrent product has its own bias ``b_h`` and its ``n`` block is multiplied by
``r``, so forward keeps that block (``hn``, (T, B, H)) for backward, and backward
produces two gradients that differ in the ``n`` block only: at the input projection,
``dxp`` (T, B, 3H), and at the recurrent product, whose ``r, z`` blocks equal ``dxp``'s
and whose ``n`` block is kept apart as ``dhn`` (T, B, H); storing the two in full would
cost 3H more per step and row. ``mask`` and ``reset`` as in :mod:`rnnlab.kernels.lstm`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._jit import (
    JIT,
    add_into,
    add_sigmoid,
    all_finite,
    mm,
    one_like,
    product,
    reset_rows,
    sigmoid_,
    tanh_,
)
from .lstm import LN_EPS, norm_back_row, norm_row


@njit(**JIT)
def _cell_row(a, b_h, bias, g, h, hn, h_new, H):
    """``a`` (3H) = h W_h, ``g`` (3H) in: ``x W_x``, out: ``r, z, n``."""
    for j in range(3 * H):
        a[j] += b_h[j]
    for j in range(3 * H):
        g[j] += bias[j]
    add_sigmoid(a[:2 * H], g[:2 * H])
    r, z, n, an = g[:H], g[H:2 * H], g[2 * H:], a[2 * H:]
    for j in range(H):
        hn[j] = an[j]
    for j in range(H):
        n[j] = tanh_(n[j] + r[j] * an[j])
    for j in range(H):
        h_new[j] = n[j] + z[j] * (h[j] - n[j])


@njit(**JIT)
def forward(gemm, tile, W_h, Wp, x, W_x, Wxp, b_h, bias, xg, hs, hns, mask, reset, b0, b1):
    """Run rows ``b0:b1`` of the batch over all steps.

    Parameters
    ----------
    gemm, tile : see :func:`rnnlab.kernels._jit.product`
    W_h : ndarray (H, 3H); ``Wp`` the same packed for ``tile``
    x, W_x, Wxp : as in :func:`rnnlab.kernels.lstm.forward`
    b_h, bias : ndarray (3H,), the recurrent and the input-side bias
    xg : ndarray (T, B, 3H); in: ``x_t W_x`` (or nothing, see ``Wxp``), out: ``r, z, n``
    hs : ndarray (T+1, B, H); in: ``hs[0]``, out: the state after each step
    hns : ndarray (T, B, H), out: the ``n`` block of ``h_{t-1} W_h + b_h``
    mask : ndarray (T, B) of bool; (0, 0) when no step is padded
    reset : ndarray (T, B) of bool; (0, 0) when no state is reset
    b0, b1 : int, the rows this call runs (rows are independent; see :func:`forward_par`)

    Inference keeps neither: ``xg`` (1, B, 3H) and ``hns`` (1, B, H) then serve every
    step (and ``Wxp`` must be given).
    """
    T = hs.shape[0] - 1
    H = hs.shape[2]
    keep = xg.shape[0] == T
    a = np.empty((b1 - b0, 3 * H), hs.dtype)  # this step's h W_h, allocated once
    masked, fused, resetting = mask.shape[0] > 0, Wxp.shape[0] > 0, reset.shape[0] > 0
    prev = np.empty((b1 - b0 if resetting else 0, H), hs.dtype)
    for t in range(T):
        g = t if keep else 0
        if fused:
            product(gemm, tile, W_x, Wxp, x[t, b0:b1], xg[g, b0:b1], 0)
        fresh = resetting and reset_rows(hs[t, b0:b1], reset[t, b0:b1], prev)
        if fresh:
            product(gemm, tile, W_h, Wp, prev, a, 0)
        else:
            product(gemm, tile, W_h, Wp, hs[t, b0:b1], a, 0)
        for b in range(b0, b1):
            h_prev = prev[b - b0] if fresh else hs[t, b]
            if not masked or mask[t, b]:
                _cell_row(a[b - b0], b_h, bias, xg[g, b], h_prev, hns[g, b], hs[t + 1, b], H)
            else:
                hs[t + 1, b] = h_prev


@njit(parallel=True, **JIT)
def forward_par(gemm, tile, W_h, Wp, x, W_x, Wxp, b_h, bias, xg, hs, hns, mask, reset, chunks):
    """:func:`forward` with the batch cut into ``chunks`` runs of rows, one per thread."""
    B = hs.shape[1]
    for c in prange(chunks):
        forward(gemm, tile, W_h, Wp, x, W_x, Wxp, b_h, bias, xg, hs, hns, mask, reset,
                c * B // chunks, (c + 1) * B // chunks)


@njit(**JIT)
def _back_row(g, h, hn, dh, dxp, dhn, dhp, carry, H):
    """One row: ``dxp`` (3H), ``dhn`` (H) kept for the weight gradients, ``dhp`` (3H) and
    ``carry = dh * z`` (H) for this step's recurrent product."""
    one = one_like(h[0])
    r, z, n = g[:H], g[H:2 * H], g[2 * H:]
    dr, dz, dn = dxp[:H], dxp[H:2 * H], dxp[2 * H:]
    for j in range(H):
        d = dh[j]
        dan = d * (one - z[j]) * (one - n[j] * n[j])
        dr[j] = dan * hn[j] * r[j] * (one - r[j])
        dz[j] = d * (h[j] - n[j]) * z[j] * (one - z[j])
        dn[j] = dan
        dhn[j] = dan * r[j]
    for j in range(2 * H):
        dhp[j] = dxp[j]
    hp_n = dhp[2 * H:]
    for j in range(H):
        hp_n[j] = dhn[j]
    for j in range(H):
        carry[j] = dh[j] * z[j]


@njit(**JIT)
def backward(gemm, tile, W_hT, Wp, gates, hs, hns, mask, reset, dy, dy_bt, dh, dxp, dhn, db,
             dbn, b0, b1):
    """Backpropagate rows ``b0:b1`` of the batch through all steps.

    Parameters
    ----------
    W_hT : ndarray (3H, H), ``W_h.T`` made contiguous; ``Wp`` the same packed for ``tile``
    gates, hs, hns : from :func:`forward`
    mask : ndarray (T, B) of bool; (0, 0) when no step is padded
    reset : ndarray (T, B) of bool; (0, 0) when no state is reset
    dy : ndarray (T, B, H), gradient with respect to the outputs; (0, 0, 0) for none
    dy_bt : bool, ``dy`` is laid out (B, T, H) instead (the public API's batch-first
        array, read in place rather than copied)
    dh : ndarray (B, H); in: gradient at the final state, out: at the initial one
    dxp : ndarray (T, B, 3H), out: gradient at the input projection ``x_t W_x + b``
    dhn : ndarray (T, B, H), out: the ``n`` block of the gradient at ``h_{t-1} W_h + b_h``,
        whose ``r, z`` blocks equal those of ``dxp``
    db : ndarray (3H,) of float64, zeros in; out: the sum of ``dxp`` (the input bias's gradient)
    dbn : ndarray (H,) of float64, zeros in; out: the sum of ``dhn`` (``b_h``'s ``n`` block)
    b0, b1 : int, the rows this call runs; ``db`` and ``dbn`` sum over these rows
    """
    T, B, G = gates.shape
    H = G // 3
    carry = dh[b0:b1].copy()
    dhp = np.empty((b1 - b0, G), gates.dtype)  # this step's gradient at the recurrent product
    masked, has_dy, resetting = mask.shape[0] > 0, dy.shape[0] > 0, reset.shape[0] > 0
    zero = np.zeros(H, hs.dtype)  # the state that entered a reset step
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            r = b - b0
            if not masked or mask[t, b]:
                if has_dy:
                    dh[b] += dy[b, t] if dy_bt else dy[t, b]
                h_prev = zero if resetting and reset[t, b] else hs[t, b]
                _back_row(gates[t, b], h_prev, hns[t, b], dh[b], dxp[t, b], dhn[t, b], dhp[r],
                          carry[r], H)
                add_into(db, dxp[t, b])
                add_into(dbn, dhn[t, b])
            else:
                dxp[t, b] = 0
                dhn[t, b] = 0
                dhp[r] = 0
                carry[r] = dh[b]
        product(gemm, tile, W_hT, Wp, dhp, carry, 1)
        dh[b0:b1] = carry
        if resetting:  # a reset state was a constant zero: nothing flows on to the one before
            for b in range(b0, b1):
                if reset[t, b]:
                    dh[b] = 0


@njit(parallel=True, **JIT)
def backward_par(gemm, tile, W_hT, Wp, gates, hs, hns, mask, reset, dy, dy_bt, dh, dxp, dhn, db,
                 dbn, chunks):
    """:func:`backward` in ``chunks`` runs of rows, one per thread; ``db`` (chunks, 3H) and
    ``dbn`` (chunks, H) receive each run's bias gradients."""
    B = gates.shape[1]
    for c in prange(chunks):
        backward(gemm, tile, W_hT, Wp, gates, hs, hns, mask, reset, dy, dy_bt, dh, dxp, dhn, db[c],
                 dbn[c], c * B // chunks, (c + 1) * B // chunks)


@njit(**JIT)
def step(gemm, W_x, W_h, bias, b_h, x, h, h_out):
    """One streaming step: ``x`` (B, D), ``h`` (B, H) -> ``h_out``.

    Returns whether ``x`` and ``h`` were all finite. The scratch is allocated here (see
    :func:`rnnlab.kernels.elman.step`).
    """
    H = h.shape[1]
    xg = np.empty((x.shape[0], W_h.shape[1]), x.dtype)
    a = np.empty_like(xg)
    hn = np.empty_like(h)
    mm(gemm, x, W_x, xg, False, 0)
    mm(gemm, h, W_h, a, False, 0)
    for b in range(x.shape[0]):
        _cell_row(a[b], b_h, bias, xg[b], h[b], hn[b], h_out[b], H)
    return all_finite(x) and all_finite(h)


# --- the layer-normalised GRU (kernel id "gru_ln") ---------------------------------------------
#
# As the layer-normalised LSTM's (:mod:`rnnlab.kernels.lstm`): the input side's
# ``LN(x_t W_x) gamma_x + b`` over all steps before the loop, its backward after; the loop
# normalises the recurrent product, then adds ``b_h``, at each step.


@njit(**JIT)
def _ln_row(vx, nh, gamma_h, b_h, g, h, hn, h_new, H):
    """One row's step: ``vx`` (3H) the input side, ``nh`` (3H) ``LN(h W_h)``; ``g`` out:
    ``r, z, n``; ``hn`` out: the ``n`` block of ``LN(h W_h) gamma_h + b_h``."""
    for j in range(3 * H):
        g[j] = vx[j] + nh[j] * gamma_h[j] + b_h[j]
    for j in range(2 * H):
        g[j] = sigmoid_(g[j])
    r, z, n = g[:H], g[H:2 * H], g[2 * H:]
    gn, bn, vn = gamma_h[2 * H:], b_h[2 * H:], vx[2 * H:]
    nn = nh[2 * H:]
    for j in range(H):
        hn[j] = nn[j] * gn[j] + bn[j]
    for j in range(H):
        n[j] = tanh_(vn[j] + r[j] * hn[j])
    for j in range(H):
        h_new[j] = n[j] + z[j] * (h[j] - n[j])


@njit(**JIT)
def forward_ln(gemm, tile, W_h, Wp, vx, gamma_h, b_h, hp, nh, sh, gates, hs, hns, mask, reset,
               b0, b1):
    """Run rows ``b0:b1`` of the batch over all steps.

    Parameters
    ----------
    W_h : ndarray (H, 3H); ``Wp`` the same packed for ``tile``
    vx : ndarray (T, B, 3H), ``LN(x_t W_x) gamma_x + b``
    gamma_h, b_h : ndarray (3H,)
    hp : ndarray (B, 3H), one step's ``h_{t-1} W_h`` (scratch)
    nh : ndarray (T, B, 3H), out: ``LN(h_{t-1} W_h)``; ``sh`` (T, B) its inverse deviations
    gates : ndarray (T, B, 3H), out: ``r, z, n``
    hs : ndarray (T+1, B, H); hns : ndarray (T, B, H), out: the ``n`` block of ``v_h``
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
                _ln_row(vx[t, b], nh[t, b], gamma_h, b_h, gates[t, b],
                        zero if fresh else hs[t, b], hns[t, b], hs[t + 1, b], H)
            elif fresh:
                hs[t + 1, b] = 0
            else:
                hs[t + 1, b] = hs[t, b]


@njit(parallel=True, **JIT)
def forward_ln_par(gemm, tile, W_h, Wp, vx, gamma_h, b_h, hp, nh, sh, gates, hs, hns, mask,
                   reset, chunks):
    """:func:`forward_ln` with the batch cut into ``chunks`` runs of rows, one per thread."""
    B = hs.shape[1]
    for c in prange(chunks):
        forward_ln(gemm, tile, W_h, Wp, vx, gamma_h, b_h, hp, nh, sh, gates, hs, hns, mask,
                   reset, c * B // chunks, (c + 1) * B // chunks)


@njit(**JIT)
def backward_ln(gemm, tile, W_hT, Wp, gamma_h, gates, nh, sh, hs, hns, mask, reset, dy, dy_bt,
                dh, dvx, dhp, b0, b1):
    """Backpropagate rows ``b0:b1`` of the batch through all steps.

    ``dvx`` (T, B, 3H) out: the gradient at ``v_x`` (the input side after its
    normalisation and bias; zero at padded steps), whose ``r, z`` blocks are also those at
    ``v_h`` and whose ``n`` block times ``r`` is ``v_h``'s; ``dhp`` (T, B, 3H) out: the
    gradient at ``h_{t-1} W_h``. The rest as in :func:`backward`.
    """
    T, B, G = gates.shape
    H = G // 3
    carry = dh[b0:b1].copy()
    masked, has_dy, resetting = mask.shape[0] > 0, dy.shape[0] > 0, reset.shape[0] > 0
    zero = np.zeros(H, hs.dtype)
    dn = np.empty(G, hs.dtype)
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            if not masked or mask[t, b]:
                if has_dy:
                    dh[b] += dy[b, t] if dy_bt else dy[t, b]
                h = zero if resetting and reset[t, b] else hs[t, b]
                g, d, hn, dhb = gates[t, b], dvx[t, b], hns[t, b], dh[b]
                one = one_like(g[0])
                r, z, n = g[:H], g[H:2 * H], g[2 * H:]
                d_r, d_z, d_n = d[:H], d[H:2 * H], d[2 * H:]
                for j in range(H):
                    dan = dhb[j] * (one - z[j]) * (one - n[j] * n[j])
                    d_n[j] = dan
                    d_r[j] = dan * hn[j] * r[j] * (one - r[j])
                    d_z[j] = dhb[j] * (h[j] - n[j]) * z[j] * (one - z[j])
                gr, gz, gn = gamma_h[:H], gamma_h[H:2 * H], gamma_h[2 * H:]
                for j in range(H):
                    dn[j] = d_r[j] * gr[j]
                    dn[H + j] = d_z[j] * gz[j]
                    dn[2 * H + j] = d_n[j] * r[j] * gn[j]
                norm_back_row(dn, nh[t, b], sh[t, b], dhp[t, b], 0)
                c = carry[b - b0]
                for j in range(H):
                    c[j] = dhb[j] * z[j]
            else:
                dvx[t, b] = 0
                dhp[t, b] = 0
                carry[b - b0] = dh[b]
        product(gemm, tile, W_hT, Wp, dhp[t, b0:b1], carry, 1)
        dh[b0:b1] = carry
        if resetting:
            for b in range(b0, b1):
                if reset[t, b]:
                    dh[b] = 0


@njit(parallel=True, **JIT)
def backward_ln_par(gemm, tile, W_hT, Wp, gamma_h, gates, nh, sh, hs, hns, mask, reset, dy,
                    dy_bt, dh, dvx, dhp, chunks):
    """:func:`backward_ln` in ``chunks`` runs of rows, one per thread."""
    B = gates.shape[1]
    for c in prange(chunks):
        backward_ln(gemm, tile, W_hT, Wp, gamma_h, gates, nh, sh, hs, hns, mask, reset, dy,
                    dy_bt, dh, dvx, dhp, c * B // chunks, (c + 1) * B // chunks)
