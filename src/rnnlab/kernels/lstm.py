r"""Fused LSTM kernels: the whole time loop of forward and backward, compiled.

Shape legend: T time, B batch, H hidden units, G = 4H. Fused gate order ``i, f, g, o``
(:mod:`rnnlab.cells.lstm` states the equations; this module implements exactly them).

Each step is one BLAS call for ``h_{t-1} @ W_h`` and one pass over the (B, 4H) gate
block; nothing is allocated per step. The gate pre-activations arrive as the input
projection ``x_t W_x + b`` of all steps (one GEMM, outside) and are overwritten in place
by the activated gates, which is what backward needs. ``tanh(c_t)`` is recomputed in
backward instead of stored (one rational tanh per unit is cheaper than the memory).
Loops are split so each touches few arrays: numba cannot tell LLVM the arrays do not
alias, and with too many of them LLVM gives up vectorising (measured 21 ns per unit
fused into one loop, 9 ns split).

``mask`` (T, B) of bool, or None: False marks a padded step, which keeps the state,
and passes the gradient of the state straight back.
"""

from __future__ import annotations

from numba import njit

from ._jit import JIT, mm, one_like, sigmoid_, tanh_


@njit(**JIT)
def _gates_row(a, g, H):
    """``g = act(g + a)`` on one row: sigmoid for i, f, o and tanh for g."""
    for j in range(2 * H):
        g[j] = sigmoid_(g[j] + a[j])
    for j in range(2 * H, 3 * H):
        g[j] = tanh_(g[j] + a[j])
    for j in range(3 * H, 4 * H):
        g[j] = sigmoid_(g[j] + a[j])


@njit(**JIT)
def _state_row(g, c, c_new, h_new, H):
    for j in range(H):
        c_new[j] = g[H + j] * c[j] + g[j] * g[2 * H + j]
    for j in range(H):
        h_new[j] = g[3 * H + j] * tanh_(c_new[j])


@njit(**JIT)
def forward(gemm, W_h, xg, hs, cs, mask):
    """Run the layer over all steps.

    Parameters
    ----------
    gemm : see :func:`rnnlab.kernels._jit.mm`
    W_h : ndarray (H, 4H)
    xg : ndarray (T, B, 4H)
        In: ``x_t W_x + b``. Out: the gates ``i, f, g, o`` (garbage at padded steps).
    hs, cs : ndarray (T+1, B, H)
        In: ``hs[0]``, ``cs[0]`` the initial state. Out: the states after each step.
    mask : ndarray (T, B) of bool, or None
    """
    T, B, G = xg.shape
    H = G // 4
    a = xg[0].copy()  # (B, 4H) the recurrent product; allocated once, not per step
    for t in range(T):
        mm(gemm, hs[t], W_h, a, False, 0)
        for b in range(B):
            if mask is None or mask[t, b]:
                _gates_row(a[b], xg[t, b], H)
                _state_row(xg[t, b], cs[t, b], cs[t + 1, b], hs[t + 1, b], H)
            else:
                hs[t + 1, b] = hs[t, b]
                cs[t + 1, b] = cs[t, b]


@njit(**JIT)
def _back_row(g, c_prev, c, dh, dc, da, H):
    """One row of the step's backward; ``dc`` in: dL/dc_t, out: dL/dc_{t-1}."""
    one = one_like(g[0])
    for j in range(H):
        tc = tanh_(c[j])
        o = g[3 * H + j]
        dc[j] += dh[j] * o * (one - tc * tc)
        da[3 * H + j] = dh[j] * tc * o * (one - o)
    for j in range(H):
        i, f, gg = g[j], g[H + j], g[2 * H + j]
        d = dc[j]
        da[j] = d * gg * i * (one - i)
        da[H + j] = d * c_prev[j] * f * (one - f)
        da[2 * H + j] = d * i * (one - gg * gg)
        dc[j] = d * f


@njit(**JIT)
def backward(gemm, W_h, gates, hs, cs, mask, dy, dh, dc, da):
    """Backpropagate through all steps.

    Parameters
    ----------
    gates : ndarray (T, B, 4H), from :func:`forward`
    hs, cs : ndarray (T+1, B, H), from :func:`forward`
    dy : ndarray (T, B, H) or None, gradient with respect to the outputs
    dh, dc : ndarray (B, H)
        In: gradient with respect to the final state. Out: with respect to the initial one.
    da : ndarray (T, B, 4H), out: gradient at the gate pre-activations (zero at padded steps)
    """
    T, B, G = gates.shape
    H = G // 4
    carry = dh.copy()  # (B, H) ping-pong partner of dh for the recurrent product
    for t in range(T - 1, -1, -1):
        for b in range(B):
            if mask is None or mask[t, b]:
                if dy is not None:
                    dh[b] += dy[t, b]
                _back_row(gates[t, b], cs[t, b], cs[t + 1, b], dh[b], dc[b], da[t, b], H)
                carry[b] = 0
            else:
                da[t, b] = 0
                carry[b] = dh[b]  # a padded step hands its gradient straight back
        mm(gemm, da[t], W_h, carry, True, 1)
        dh[:] = carry


@njit(**JIT)
def step(gemm, W_x, W_h, bias, x, h, c, a, h_out, c_out):
    """One streaming step: ``x`` (B, D), state ``h, c`` (B, H) -> ``h_out, c_out``.

    ``a`` (B, 4H) is scratch; ``h_out``/``c_out`` may not alias ``h``/``c``.
    """
    B = x.shape[0]
    H = h.shape[1]
    mm(gemm, h, W_h, a, False, 0)
    mm(gemm, x, W_x, a, False, 1)
    for b in range(B):
        ab = a[b]
        for j in range(4 * H):
            ab[j] += bias[j]
        for j in range(2 * H):
            ab[j] = sigmoid_(ab[j])
        for j in range(2 * H, 3 * H):
            ab[j] = tanh_(ab[j])
        for j in range(3 * H, 4 * H):
            ab[j] = sigmoid_(ab[j])
        _state_row(ab, c[b], c_out[b], h_out[b], H)
