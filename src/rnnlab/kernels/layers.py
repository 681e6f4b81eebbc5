"""The fast path of one layer: the batched products in NumPy, the time loop in a kernel.

Shape legend: T time, B batch, D input features, H hidden units, G gates per cell
(1 Elman, 4 LSTM, 3 GRU). A leaf: arrays and a kernel id in, arrays out; the functions
compute what :func:`rnnlab.recurrent.layer_forward` and
:func:`~rnnlab.recurrent.layer_backward` compute (the reference) and what one step of a
cell's ``step`` computes, and :mod:`rnnlab.engine` decides which runs.

What runs per step, inside the compiled loop: the recurrent product, the input
projection ``x_t W_x`` (rnnlab's tile, :mod:`rnnlab.kernels.tile`, with ``W_h`` and ``W_x``
packed once per call; at batch 1 the projection runs for all steps before the loop), and
the fused gate maths. What is batched over time, in NumPy's
BLAS: the weight gradients (GEMMs over all T*B rows) and the input gradient ``dx``, large
ones in parts on rnnlab's threads (:func:`rnnlab.kernels.blas.product_chunks`); with
``use_blas("numpy")`` the input projection too, and the recurrent product goes to BLAS
step by step. With more than one thread allowed and enough
work (:func:`rnnlab.kernels.blas.loop_chunks`), the batch is cut into runs of rows, one
per thread, each running the whole time loop over its rows.

With ``bf16`` (:func:`layer_forward`), every one of these products rounds its operands to
bf16 and sums in float32 on the bf16 tile, the batched ones too (:func:`matmul_bf16`);
the tape records it, so backward does the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import elman, gru, lstm
from ._jit import (
    add_rows,
    gemm_views,
    gradients_par,
    matmul_par,
    mm_tiled,
    mm_tiled_par,
    pack_b,
    pack_b_bf16,
    to_bf16_pairs,
    to_bf16_row_pairs,
)
from .blas import (
    allowed_threads,
    bf16_tile,
    gemm_for,
    loop_chunks,
    product_chunks,
    tile_for,
    uses_numpy_blas,
)
from .tape import Tape
from .tile import nr


def _drop_stale_cache() -> None:
    """Delete cached kernels compiled before the last edit of the files they depend on.

    numba keys each cached function on its own source file only, and the compiled code
    includes the helpers it calls from ``_jit.py`` and the constants it takes from
    ``tile.py`` (the tile's rows, MR); without this an edit there would leave the kernels
    running old helpers or a wrong MR. Only the in-tree cache is checked.
    """
    here = Path(__file__).parent
    try:
        tile_edit = (here / "tile.py").stat().st_mtime
        jit_edit = max((here / "_jit.py").stat().st_mtime, tile_edit)
        for index in (here / "__pycache__").glob("*.nbi"):
            limit = tile_edit if index.name.startswith("_jit.") else jit_edit
            if index.stat().st_mtime < limit:
                index.unlink()
    except OSError:
        pass


_drop_stale_cache()


#: batch size from which the forward loop computes ``x_t W_x`` step by step (see
#: :func:`layer_forward`); below it, one tile product over all steps, which uses each
#: panel of ``W_x`` for every step while it is in cache instead of reading all of ``W_x``
#: again at each one-row step: faster at batch 1, no different at a few rows
#: (measurements: docs/performance.md).
INPUT_IN_LOOP_FROM = 2
#: inference at batch 1 projects all steps before the loop only while they take at most
#: this many bytes; beyond, it keeps one step's buffer (a long sequence would otherwise
#: hold G times its output's memory in ``x W_x``)
INPUT_BEFORE_LOOP_MAX_BYTES = 1 << 20

_NO_MASK = np.zeros((0, 0), bool)  # kernels take empty arrays for absent ones (one variant)


def _mask2d(mask):
    return _NO_MASK if mask is None else np.ascontiguousarray(mask[:, :, 0])  # (T, B)


def _entering(hs, reset):
    """The states that entered each step, (T*B, H): ``hs[:-1]`` with those of the steps in
    ``reset`` (T, B, 1) zeroed (a copy then), for the recurrent weights' gradient."""
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    prev = hs[:-1] if reset is None else np.where(reset, hs.dtype.type(0), hs[:-1])
    return prev.reshape(T * B, H)


def _batched(gemm):
    """The BLAS for the batched products: None for NumPy's own (``@``), else ``gemm``.

    A BLAS other than NumPy's (MKL, see :func:`rnnlab.kernels.blas.use_blas`) runs
    sequentially, so it serves the batched products too only on a single thread.
    """
    return None if uses_numpy_blas() or allowed_threads() > 1 else gemm


def _matmul(gemm, A, B, *, ta=False, tb=False):
    """``op(A) @ op(B)`` for 2-D C-contiguous ``A``, ``B``: NumPy's ``@``, or ``gemm``."""
    if gemm is None:
        return (A.T if ta else A) @ (B.T if tb else B)
    M = A.shape[1] if ta else A.shape[0]
    N = B.shape[0] if tb else B.shape[1]
    C = np.empty((M, N), A.dtype)
    gemm_views(gemm, ta, A, tb, B, C)
    return C


def _packed(tile, W, bf16=False):
    """``W`` (K, N) packed in panels for the tile product; an empty stand-in without it.
    With ``bf16`` (``W`` float32), rounded to bf16 and paired along K for the bf16 tile
    (uint32, (panels, ceil(K/2), NR))."""
    if not tile:
        return np.zeros((0, 0, 0), W.dtype)
    K, N = W.shape
    panel = nr(W.itemsize)
    if bf16:
        Wp = np.empty((-(-N // panel), -(-K // 2), panel), np.uint32)
        pack_b_bf16(W, Wp, _parts(K * N))
        return Wp
    Wp = np.empty((-(-N // panel), K, panel), W.dtype)
    pack_b(W, Wp)
    return Wp


#: elements from which the bf16 conversions run on rnnlab's threads
CONVERT_PARALLEL_FROM = 1 << 16


def _parts(elements: int) -> int:
    """Threads for converting ``elements`` values to bf16."""
    return allowed_threads() if elements >= CONVERT_PARALLEL_FROM else 1


def _tile_product(tile, A, Wp, C):
    """``C = A @ B`` for ``A`` (M, K) C-contiguous and ``Wp`` = ``B`` packed by
    :func:`_packed` (bf16 pairs or not), on one thread."""
    if Wp.dtype == np.uint32:
        pairs = np.empty((A.shape[0], Wp.shape[1]), np.uint32)
        to_bf16_pairs(A, pairs)
        A = pairs
    mm_tiled(tile, A, Wp, C, 0)


def matmul_bf16(A, B, trans_a=False, tile=None):
    """``A @ B`` (``A.T @ B`` with ``trans_a``) with both rounded to bf16 and float32 sums,
    on the bf16 tile (``tile``, default :func:`rnnlab.kernels.blas.bf16_tile`, which must
    not be 0), its panels shared out among rnnlab's threads; float32 in and out."""
    tile = bf16_tile() if tile is None else tile
    A = np.ascontiguousarray(A, dtype=np.float32)
    K, M = A.shape if trans_a else A.shape[::-1]
    N = B.shape[1]
    parts = allowed_threads() if M * N * K >= PRODUCTS_PARALLEL_FROM_BF16 else 1
    if trans_a:  # A.T's pairs laid out k-major, converted in contiguous passes
        pairs = np.empty((-(-K // 2), M), np.uint32)
        to_bf16_row_pairs(A, pairs, _parts(A.size))
        pairs = pairs.T
    else:
        pairs = np.empty((M, -(-K // 2)), np.uint32)
        to_bf16_pairs(A, pairs)
    Bp = _packed(tile, np.ascontiguousarray(B, dtype=np.float32), bf16=True)
    C = np.empty((M, N), np.float32)
    mm_tiled_par(tile, pairs, Bp, C, min(parts, Bp.shape[0]))
    return C


#: multiply-adds from which a bf16 product's panels are shared among threads
PRODUCTS_PARALLEL_FROM_BF16 = 1 << 20


def _dy_layout(dy, dtype):
    """``dy`` (T, B, H) as the kernels take it: ``(array, batch_major)``.

    The public API hands over a transposed view of a batch-first (B, T, H) array; the
    kernels read that in place instead of copying T*B*H values (memory and time).
    """
    if dy is None:
        return np.zeros((0, 0, 0), dtype), False
    bt = dy.transpose(1, 0, 2)
    if bt.dtype == dtype and bt.flags.c_contiguous:
        return bt, True
    return np.ascontiguousarray(dy, dtype=dtype), False


def _params(p, dtype):
    """``p`` as C-contiguous arrays of ``dtype``: the kernels hand raw pointers to BLAS,
    which would misread a transposed view or another dtype (no copy when already so)."""
    return {k: np.ascontiguousarray(v, dtype=dtype) for k, v in p.items()}


def _peepholes(p):
    """The LSTM's peepholes ``p_i, p_f, p_o`` as the kernels take them, (3, H)."""
    return np.ascontiguousarray(np.stack([p["p_i"], p["p_f"], p["p_o"]]))


def _rows(module, kernel, chunks, B, *args):
    """Run the time loop ``module.<kernel>`` over the ``B`` rows of the batch: in one call
    when ``chunks`` is 1, else through its parallel twin ``<kernel>_par``, which runs
    ``chunks`` runs of rows at once, one per thread (the rows are independent)."""
    if chunks == 1:
        getattr(module, kernel)(*args, 0, B)
    else:
        getattr(module, kernel + "_par")(*args, chunks)


def layer_forward(kernel, p, x, state0, mask, keep=True, activation="tanh", *, reset=None,
                  bf16=False):
    """The fast :func:`rnnlab.recurrent.layer_forward` of the cell ``kernel`` names.

    ``x`` (T, B, D) C-contiguous, or (T, B) of token ids (the input projection is then
    the rows ``W_x[x]``, gathered before the loop), ``state0`` a tuple of (B, H), ``mask``
    and ``reset`` (T, B, 1) or None; ``activation`` the Elman cell's. Returns
    ``(y, final, hs, tape)``: ``hs`` (T+1, B, H) the states and ``tape`` the
    :class:`Tape` that :func:`layer_backward` reads (None when not ``keep``).

    ``bf16`` (float32 only): the products in bf16 with float32 sums, on the bf16 tile
    (:func:`rnnlab.kernels.blas.bf16_tile`; the caller checks that it is not 0), and the
    backward of the tape too. Everything else (gates, states, sums) stays float32.

    ``keep=False`` (inference): no cache (None), and with the tile the gates (and the
    LSTM's cell states) live in one step's buffer, overwritten every step, instead of T
    steps' worth of memory (at batch 1 only beyond :data:`INPUT_BEFORE_LOOP_MAX_BYTES`). ``y`` is
    a view of the states (the cache's ``hs[1:]``) unless ``mask`` zeroes its padded
    steps: copying it cost a visible share of a training step (measurements:
    docs/performance.md).
    """
    name = kernel
    ids = x if x.ndim == 2 else None
    p = _params(p, p["W_h"].dtype if ids is not None else x.dtype)
    if name in LAYER_NORM:
        hs, final, arrays = _ln_forward(name, p, x, state0, mask, reset)
        y = hs[1:] if mask is None else hs[1:] * mask
        return y, final, hs, (Tape(name, arrays) if keep else None)
    if ids is not None:  # the kernels' x, never read: the loop gets x W_x ready
        x = np.zeros(ids.shape + (0,), p["W_h"].dtype)
    T, B, D = x.shape
    H = p["W_h"].shape[0]
    GH = p["W_h"].shape[1]
    gemm, tile = gemm_for(x.dtype), tile_for(x.dtype)
    bf16 = bool(bf16) and x.dtype == np.float32
    if bf16:
        tile = bf16_tile()
    Wp = _packed(tile, p["W_h"], bf16)
    # token ids need no packed W_x (its rows are gathered): an empty one of Wp's type
    Wxp = _packed(tile, p["W_x"], bf16) if ids is None else Wp[:0]
    # with the tile and B >= INPUT_IN_LOOP_FROM, x_t W_x is computed step by step inside
    # the loop (each run of rows on its thread, the rows still in cache for the gates);
    # for one row the tile would read all of W_x for that row alone every step, so the T
    # rows go through it at once here, MR rows per read (as they go to BLAS without it);
    # inference only while that stays small
    in_loop = bool(tile) and ids is None and (B >= INPUT_IN_LOOP_FROM or (
        not keep and T * B * GH * x.itemsize > INPUT_BEFORE_LOOP_MAX_BYTES))
    rolling = in_loop and not keep  # the kernels reuse one step's buffers (see their docs)
    if ids is not None:
        xg = p["W_x"][ids]  # (T, B, GH) a new array: the rows of the ids
    elif in_loop:
        xg = np.empty((1 if rolling else T, B, GH), x.dtype)
    elif tile:
        xg = np.empty((T, B, GH), x.dtype)
        _tile_product(tile, x.reshape(T * B, D), Wxp, xg.reshape(T * B, GH))
        Wxp = Wxp[:0]
    else:
        xg = _matmul(_batched(gemm), x.reshape(T * B, D), p["W_x"]).reshape(T, B, GH)
    hs = np.empty((T + 1, B, H), dtype=x.dtype)
    hs[0] = state0[0]
    m, r = _mask2d(mask), _mask2d(reset)
    with loop_chunks(T, B, (H + D) * GH if tile else H * GH, blas_inside=not tile) as chunks:
        if name == "elman":
            _rows(elman, "forward", chunks, B, gemm, tile, elman.ACTIVATIONS[activation],
                  p["W_h"], Wp, x, p["W_x"], Wxp, p["b"], xg, hs, m, r)
            arrays, final = (), (hs[T].copy(),)
        elif name == "lstm":
            cs = np.empty((2 if rolling else T + 1, B, H), x.dtype)
            cs[0] = state0[1]
            _rows(lstm, "forward", chunks, B, gemm, tile, p["W_h"], Wp, x, p["W_x"], Wxp,
                  p["b"], xg, hs, cs, m, r)
            arrays, final = (xg, cs), (hs[T].copy(), cs[T % 2 if rolling else T].copy())
        elif name == "lstm_peepholes":
            cs = np.empty((2 if rolling else T + 1, B, H), x.dtype)
            cs[0] = state0[1]
            _rows(lstm, "forward_peep", chunks, B, gemm, tile, p["W_h"], Wp, x, p["W_x"], Wxp,
                  p["b"], _peepholes(p), xg, hs, cs, m, r)
            arrays, final = (xg, cs), (hs[T].copy(), cs[T % 2 if rolling else T].copy())
        elif name == "lstmp":  # H above is P, the width of h; the cell state is W_hr's rows
            Hc = p["W_hr"].shape[0]
            cs = np.empty((2 if rolling else T + 1, B, Hc), x.dtype)
            cs[0] = state0[1]
            ms = np.empty((xg.shape[0], B, Hc), x.dtype)  # o * tanh(c), as xg: T or 1 steps
            _rows(lstm, "forward_proj", chunks, B, gemm, tile, p["W_h"], Wp, p["W_hr"],
                  _packed(tile, p["W_hr"], bf16), x, p["W_x"], Wxp, p["b"], xg, hs, cs, ms, m, r)
            arrays = (xg, cs, ms)
            final = (hs[T].copy(), cs[T % 2 if rolling else T].copy())
        else:
            hns = np.empty((1 if rolling else T, B, H), x.dtype)
            _rows(gru, "forward", chunks, B, gemm, tile, p["W_h"], Wp, x, p["W_x"], Wxp,
                  p["b_h"], p["b"], xg, hs, hns, m, r)
            arrays, final = (xg, hns), (hs[T].copy(),)
    y = hs[1:] if mask is None else hs[1:] * mask  # a view: the caller protects it
    return y, final, hs, (Tape(name, arrays, bf16) if keep else None)


def layer_backward(p, x, hs, tape, mask, dy, dstate, need_dx=True, activation="tanh", *,
                   reset=None):
    """The fast :func:`rnnlab.recurrent.layer_backward` from what :func:`layer_forward`
    returned (``hs``, ``tape``) for ``x``, ``mask`` and ``reset``; ``(grads, dx, dstate0)``
    (``dx`` None for token ids)."""
    if tape.kernel in LAYER_NORM:
        return _ln_backward(p, x, hs, tape, mask, dy, dstate, need_dx, reset)
    ids = x if x.ndim == 2 else None
    if ids is not None:  # the weight gradient of W_x is summed per id below
        x, need_dx = np.zeros(ids.shape + (1,), p["W_h"].dtype), False
    p = _params(p, x.dtype)
    T, B, D = x.shape
    H, GH = p["W_h"].shape
    gemm, tile = gemm_for(x.dtype), tile_for(x.dtype)
    bf16 = tape.bf16
    if bf16:
        tile = bf16_tile()
    m, r = _mask2d(mask), _mask2d(reset)
    dy, dy_bt = _dy_layout(dy, x.dtype)
    dh = np.array(dstate[0], dtype=x.dtype, order="C")  # (B, H), becomes dL/dh_0
    W_hT = np.ascontiguousarray(p["W_h"].T)  # (G*H, H)
    Wp = _packed(tile, W_hT, bf16)
    dxp = np.empty((T, B, GH), x.dtype)  # gradient at the pre-activations x_t W_x + b
    with loop_chunks(T, B, H * GH, blas_inside=not tile) as chunks:
        # float64 sums, one row per run of rows, summed inside the loop while each row is
        # in cache
        db = np.zeros((chunks, GH))
        if tape.kernel == "elman":
            _rows(elman, "backward", chunks, B, gemm, tile, elman.ACTIVATIONS[activation],
                  W_hT, Wp, hs, m, r, dy, dy_bt, dh, dxp, db if chunks > 1 else db[0])
            d0 = (dh,)
        elif tape.kernel == "lstm":
            gates, cs = tape.arrays
            dc = np.array(dstate[1], dtype=x.dtype, order="C")
            _rows(lstm, "backward", chunks, B, gemm, tile, W_hT, Wp, gates, hs, cs, m, r, dy,
                  dy_bt, dh, dc, dxp, db if chunks > 1 else db[0])
            d0 = (dh, dc)
        elif tape.kernel == "lstm_peepholes":
            gates, cs = tape.arrays
            dc = np.array(dstate[1], dtype=x.dtype, order="C")
            dp = np.zeros((chunks, 3 * H))  # float64 sums, as db
            _rows(lstm, "backward_peep", chunks, B, gemm, tile, W_hT, Wp, _peepholes(p), gates,
                  hs, cs, m, r, dy, dy_bt, dh, dc, dxp, db if chunks > 1 else db[0],
                  dp if chunks > 1 else dp[0])
            d0 = (dh, dc)
        elif tape.kernel == "lstmp":  # H here is P, the width of h
            gates, cs, ms = tape.arrays
            dc = np.array(dstate[1], dtype=x.dtype, order="C")
            W_hrT = np.ascontiguousarray(p["W_hr"].T)  # (P, H_c)
            dhs = np.empty((T, B, H), x.dtype)  # dL/dh_t at each step, for W_hr's gradient
            _rows(lstm, "backward_proj", chunks, B, gemm, tile, W_hT, Wp, W_hrT,
                  _packed(tile, W_hrT, bf16), gates, hs, cs, m, r, dy, dy_bt, dh, dc, dxp, dhs,
                  db if chunks > 1 else db[0])
            d0 = (dh, dc)
        else:
            gates, hns = tape.arrays
            dhn = np.empty((T, B, H), x.dtype)
            dbn = np.zeros((chunks, H))
            _rows(gru, "backward", chunks, B, gemm, tile, W_hT, Wp, gates, hs, hns, m, r, dy,
                  dy_bt, dh, dxp, dhn, db if chunks > 1 else db[0], dbn if chunks > 1 else dbn[0])
            d0 = (dh,)
    del W_hT, Wp  # not needed by the products below, which are the step's memory peak
    dxp2 = dxp.reshape(T * B, GH)
    hs2 = _entering(hs, reset)
    x2 = x.reshape(T * B, D)
    dhn2 = dhn.reshape(T * B, H) if tape.kernel == "gru" else None
    W_x_ids = None if ids is None else summed_by_id(ids, dxp2, p["W_x"].shape[0])
    work = 0 if gemm is None else T * B * ((2 if need_dx else 1) * D + H) * GH
    with product_chunks(T * B, 0 if bf16 else work) as parts:
        if bf16:
            W_x, W_h, dx = _products_bf16(tile, x2, hs2, dxp2, dhn2, p["W_x"],
                                          need_dx and ids is None, ids is None)
        elif parts > 1:
            W_x, W_h, dx = _products_par(gemm, parts, x2, hs2, dxp2, dhn2, p["W_x"], need_dx)
        else:
            g2 = _batched(gemm)
            if tape.kernel != "gru":
                W_h = _matmul(g2, hs2, dxp2, ta=True)  # the recurrent product's gradient
            else:
                # the recurrent product's gradient: dxp's r, z blocks, then dhn
                W_h = np.concatenate([hs2.T @ dxp2[:, :2 * H], _matmul(g2, hs2, dhn2, ta=True)],
                                     axis=1)
            W_x = _matmul(g2, x2, dxp2, ta=True)
            dx = _matmul(g2, dxp2, p["W_x"], tb=True) if need_dx else None
    b = db.sum(axis=0).astype(x.dtype)
    if W_x_ids is not None:
        W_x = W_x_ids
    grads = {"W_x": W_x, "W_h": W_h, "b": b}  # the plain path's order
    if tape.kernel == "lstm_peepholes":
        p_i, p_f, p_o = dp.sum(axis=0).astype(x.dtype).reshape(3, H)
        grads.update(p_i=p_i, p_f=p_f, p_o=p_o)
    if tape.kernel == "lstmp":  # sum over steps of (o * tanh(c_t))^T dL/dh_t
        grads["W_hr"] = matmul(ms.reshape(T * B, -1), dhs.reshape(T * B, H), trans_a=True)
    if tape.kernel == "gru":
        grads["b_h"] = np.concatenate([b[:2 * H], dbn.sum(axis=0).astype(x.dtype)])
    return grads, None if dx is None else dx.reshape(T, B, D), d0


def _products_bf16(tile, x2, hs2, dxp2, dhn2, W_x, need_dx, dense):
    """The weight gradients and ``dx`` of :func:`layer_backward` in bf16 (float32 sums):
    ``(dW_x, dW_h, dx)``, ``dW_x`` None for token ids (summed per id by the caller) and
    ``dx`` None unless ``need_dx``; ``W_x`` the layer's input weights (D, G*H)."""
    H = hs2.shape[1]
    if dhn2 is None:
        dW_h = matmul_bf16(hs2, dxp2, trans_a=True, tile=tile)
    else:  # the GRU: dxp's r, z blocks, then dhn
        dW_h = np.concatenate([
            matmul_bf16(hs2, np.ascontiguousarray(dxp2[:, :2 * H]), trans_a=True, tile=tile),
            matmul_bf16(hs2, dhn2, trans_a=True, tile=tile)], axis=1)
    dW_x = matmul_bf16(x2, dxp2, trans_a=True, tile=tile) if dense else None
    dx = matmul_bf16(dxp2, np.ascontiguousarray(W_x.T), tile=tile) if need_dx else None
    return dW_x, dW_h, dx


def summed_by_id(ids, rows, n: int):
    """``out[i] = rows[ids == i].sum(axis=0)`` for ``i < n``: the gradient of ``W_x`` (n,
    G*H) for token ids (T, B) from ``rows`` (T*B, G*H), the gradient at the input
    projection, in one compiled pass (``np.add.at`` is the reference's)."""
    out = np.zeros((n, rows.shape[1]), rows.dtype)
    add_rows(np.ascontiguousarray(ids.reshape(-1)), rows, out)
    return out


def _products_par(gemm, chunks, x2, hs2, dxp2, dhn2, W_x, need_dx=True):
    """The weight gradients and ``dx`` (None without ``need_dx``) in ``chunks`` parts on
    rnnlab's threads (:func:`rnnlab.kernels._jit.gradients_par`); the partial sums added
    here."""
    K, D = x2.shape
    H, GH = hs2.shape[1], dxp2.shape[1]
    dW_x = np.empty((chunks, D, GH), x2.dtype)
    dW_h = np.empty((chunks, H, GH), x2.dtype)
    dx = np.empty((K if need_dx else 0, D), x2.dtype)
    dn = np.zeros((0, 0), x2.dtype) if dhn2 is None else dhn2
    gradients_par(gemm, x2, hs2, dxp2, dn, W_x, dW_x, dW_h, dx, chunks)
    return _summed(dW_x), _summed(dW_h), (dx if need_dx else None)


def matmul(A, B, trans_a=False):
    """``A @ B`` (``A.T @ B`` with ``trans_a``) for 2-D float arrays of one dtype; large
    products run on rnnlab's threads as :func:`_products_par` does, others in NumPy
    with BLAS held to one thread (see :func:`rnnlab.kernels.blas.product_chunks`)."""
    gemm = gemm_for(A.dtype) if A.dtype == B.dtype and A.dtype in (np.float32, np.float64) \
        else None
    K, M = A.shape if trans_a else A.shape[::-1]
    N = B.shape[1]
    work = 0 if gemm is None or min(M, N, K) == 0 else M * N * K
    with product_chunks(A.shape[0], work, hold=True) as parts:
        if parts == 1:
            return (A.T if trans_a else A) @ B
        A, B = np.ascontiguousarray(A), np.ascontiguousarray(B)
        C = np.empty((parts if trans_a else 1, M, N), A.dtype)
        matmul_par(gemm, A, trans_a, B, C, parts)
        return _summed(C)


def _summed(parts):
    out = parts[0]
    for part in parts[1:]:
        out += part
    return out


def step_one(kernel, p, x_t, state, out, activation="tanh") -> bool:
    """One streaming step of one layer: ``x_t`` (B, D), ``state`` and ``out`` tuples of
    (B, H); ``p``, ``x_t``, ``state`` and ``out`` all C-contiguous arrays of one dtype (the
    caller checks: the kernels hand raw pointers to BLAS), ``out`` not aliasing ``state``.

    Writes the new state into ``out``; returns whether ``x_t`` and ``state`` were all
    finite (checked inside the kernel, where it costs nothing)."""
    name = kernel
    if name in LAYER_NORM:
        if not (np.isfinite(x_t).all() and all(np.isfinite(s).all() for s in state)):
            return False
        _, final, _ = _ln_forward(name, p, x_t[None], tuple(state), None, None)
        for o, f in zip(out, final, strict=True):
            o[...] = f
        return True
    gemm = gemm_for(x_t.dtype)
    if name == "elman":
        return elman.step(gemm, elman.ACTIVATIONS[activation], p["W_x"], p["W_h"], p["b"],
                          x_t, state[0], out[0])
    if name == "lstm":
        return lstm.step(gemm, p["W_x"], p["W_h"], p["b"], x_t, state[0], state[1], out[0],
                         out[1])
    if name == "lstm_peepholes":
        return lstm.step_peep(gemm, p["W_x"], p["W_h"], p["b"], _peepholes(p), x_t, state[0],
                              state[1], out[0], out[1])
    if name == "lstmp":
        return lstm.step_proj(gemm, p["W_x"], p["W_h"], p["W_hr"], p["b"], x_t, state[0],
                              state[1], out[0], out[1])
    return gru.step(gemm, p["W_x"], p["W_h"], p["b"], p["b_h"], x_t, state[0], out[0])


# --- the layer-normalised cells ("lstm_ln", "gru_ln") -------------------------------------------
#
# The input side, ``LN(x_t W_x) gamma_x + b``, is normalised for all steps at once before the
# loop (one product and a few passes over (T, B, G*H) in NumPy), and its backward after the
# loop, with the weight gradients; the loop (``forward_ln`` / ``backward_ln`` of
# :mod:`rnnlab.kernels.lstm` and :mod:`rnnlab.kernels.gru`) normalises the recurrent product
# (and the LSTM's cell state) step by step. The per-step input projection inside the loop
# and the inference's one-step buffers of the plain kernels are not used here.

#: the kernels of the layer-normalised cells
LAYER_NORM = ("lstm_ln", "gru_ln")


def _normalised(u):
    """The rows (last axis) of ``u`` normalised, and their inverse deviations (..., 1):
    the cells' ``normalised``, over any leading axes."""
    mu = u.mean(axis=-1, keepdims=True)
    d = u - mu
    s = 1.0 / np.sqrt((d * d).mean(axis=-1, keepdims=True) + lstm.LN_EPS)
    return d * s, s.astype(u.dtype, copy=False)


def _normalised_back(dn, n, s):
    """The gradient at :func:`_normalised`'s input from ``dn`` at its output ``n``."""
    return s * (dn - dn.mean(axis=-1, keepdims=True)
                - n * (dn * n).mean(axis=-1, keepdims=True))


def _ln_forward(name, p, x, state0, mask, reset):
    """The forward loop of a layer-normalised cell: ``(hs, final, arrays)``, ``arrays``
    what :func:`_ln_backward` reads; ``p`` C-contiguous in one dtype, ``x`` (T, B, D) or
    token ids (T, B)."""
    W_h = p["W_h"]
    dtype = W_h.dtype
    T, B = x.shape[:2]
    H, GH = W_h.shape
    gemm, tile = gemm_for(dtype), tile_for(dtype)
    if x.ndim == 2:
        u = p["W_x"][x]
    else:
        u = _matmul(_batched(gemm), np.ascontiguousarray(x).reshape(T * B, -1),
                    p["W_x"]).reshape(T, B, GH)
    nx, sx = _normalised(u)  # (T, B, GH), (T, B, 1)
    ax = nx * p["ln_x_g"] + p["b"]
    del u
    hs = np.empty((T + 1, B, H), dtype)
    hs[0] = state0[0]
    # padded steps leave these unwritten; zeros keep the sums over all steps finite
    empty = np.empty if mask is None else np.zeros
    hp, nh = np.empty((B, GH), dtype), empty((T, B, GH), dtype)
    sh, gates = np.empty((T, B), dtype), empty((T, B, GH), dtype)
    Wp = _packed(tile, W_h)
    m, r = _mask2d(mask), _mask2d(reset)
    with loop_chunks(T, B, H * GH, blas_inside=not tile) as chunks:
        if name == "lstm_ln":
            cs = np.empty((T + 1, B, H), dtype)
            cs[0] = state0[1]
            ncs, scs = np.empty((T, B, H), dtype), np.empty((T, B), dtype)
            _rows(lstm, "forward_ln", chunks, B, gemm, tile, W_h, Wp, ax, p["ln_h_g"],
                  p["ln_c_g"], p["ln_c_b"], hp, nh, sh, gates, hs, cs, ncs, scs, m, r)
            return hs, (hs[T].copy(), cs[T].copy()), (nx, sx, nh, sh, gates, cs, ncs, scs)
        hns = np.empty((T, B, H), dtype)
        _rows(gru, "forward_ln", chunks, B, gemm, tile, W_h, Wp, ax, p["ln_h_g"], p["b_h"], hp,
              nh, sh, gates, hs, hns, m, r)
        return hs, (hs[T].copy(),), (nx, sx, nh, sh, gates, hns)


def _ln_backward(p, x, hs, tape, mask, dy, dstate, need_dx, reset):
    """:func:`layer_backward` for the tape of :func:`_ln_forward`."""
    ids = x if x.ndim == 2 else None
    p = _params(p, hs.dtype)
    dtype = hs.dtype
    T, B = x.shape[:2]
    H, GH = p["W_h"].shape
    gemm, tile = gemm_for(dtype), tile_for(dtype)
    m, r = _mask2d(mask), _mask2d(reset)
    dy, dy_bt = _dy_layout(dy, dtype)
    dh = np.array(dstate[0], dtype=dtype, order="C")
    W_hT = np.ascontiguousarray(p["W_h"].T)
    Wp = _packed(tile, W_hT)
    da = np.empty((T, B, GH), dtype)  # at the pre-activations (the GRU's: at v_x)
    dhp = np.empty((T, B, GH), dtype)  # at h_{t-1} W_h
    with loop_chunks(T, B, H * GH, blas_inside=not tile) as chunks:
        if tape.kernel == "lstm_ln":
            nx, sx, nh, sh, gates, cs, ncs, scs = tape.arrays
            dc = np.array(dstate[1], dtype=dtype, order="C")
            dg_c, db_c = np.zeros((chunks, H)), np.zeros((chunks, H))  # float64 sums
            _rows(lstm, "backward_ln", chunks, B, gemm, tile, W_hT, Wp, p["ln_h_g"],
                  p["ln_c_g"], p["ln_c_b"], gates, nh, sh, cs, ncs, scs, m, r, dy, dy_bt, dh,
                  dc, da, dhp, dg_c if chunks > 1 else dg_c[0], db_c if chunks > 1 else db_c[0])
            d0 = (dh, dc)
            dvh = da
        else:
            nx, sx, nh, sh, gates, hns = tape.arrays
            _rows(gru, "backward_ln", chunks, B, gemm, tile, W_hT, Wp, p["ln_h_g"], gates, nh,
                  sh, hs, hns, m, r, dy, dy_bt, dh, da, dhp)
            d0 = (dh,)
            dvh = da.copy()  # at v_h: v_x's, with the n block times r
            dvh[:, :, 2 * H:] *= gates[:, :, :H]
    del W_hT, Wp
    dux = _normalised_back(da * p["ln_x_g"], nx, sx).reshape(T * B, GH)  # at x_t W_x
    dhp2 = dhp.reshape(T * B, GH)
    if ids is not None:
        W_x, dx = summed_by_id(ids, dux, p["W_x"].shape[0]), None
    else:
        x2 = np.ascontiguousarray(x).reshape(T * B, -1)
        W_x = matmul(x2, dux, trans_a=True)
        dx = matmul(dux, np.ascontiguousarray(p["W_x"].T)).reshape(T, B, -1) if need_dx \
            else None
    grads = {"W_x": W_x, "W_h": matmul(_entering(hs, reset), dhp2, trans_a=True),
             "b": da.reshape(T * B, GH).sum(axis=0)}
    if tape.kernel == "gru_ln":
        grads["b_h"] = dvh.reshape(T * B, GH).sum(axis=0)
    grads["ln_x_g"] = (da * nx).reshape(T * B, GH).sum(axis=0)
    grads["ln_h_g"] = (dvh * nh).reshape(T * B, GH).sum(axis=0)
    if tape.kernel == "lstm_ln":
        grads["ln_c_g"] = dg_c.sum(axis=0).astype(dtype)
        grads["ln_c_b"] = db_c.sum(axis=0).astype(dtype)
    return grads, dx, d0
