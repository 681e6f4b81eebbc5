"""The compiler settings and the scalar maths shared by every fused kernel.

Shape legend: M, N, K the sizes of one matrix product ``C (M, N) = A (M, K) @ B (K, N)``.

Everything here is compiled by numba. The activations are defined per dtype at compile
time (``numba.extending.overload``): float64, the dtype of every gradient check, uses
libm's ``tanh`` so the fast path matches the plain one to rounding; float32
computes tanh and the sigmoid from its own branch-free, vectorising ``exp``/``expm1``
(range reduction by ln 2, a minimax polynomial, the power of two written into the
exponent bits), because numba without Intel's SVML calls libm's scalar ``tanhf`` per
element, which is many times slower (measurements: docs/performance.md). Both float32
functions are within 2 ulp of the exact value (docs/reliability.md, section
"An accurate float32 tanh"; ``benchmarks/tanh_accuracy.py`` measures it).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types, uint32
from numba.extending import intrinsic, overload

from .tile import MR

#: Options of every kernel. ``error_model="numpy"`` drops the division-by-zero checks
#: that stop LLVM vectorising; the fastmath flags allow FMA contraction and reciprocal
#: approximations, but not ``nnan``/``ninf``: a NaN must still travel to the loss, where
#: the training loop's NaN guard looks for it. Nor ``reassoc``: with it, a kernel compiled
#: in a process and the same kernel loaded from numba's cache summed in different orders
#: (1-4 float32 ulps apart in the LSTM's and GRU's backward, on an AMD Zen 4), so a run
#: resumed in another process was no longer bit for bit a straight one. Sums that want
#: vector lanes say so (:func:`sum_lanes`).
JIT = {
    "cache": True,
    "error_model": "numpy",
    "fastmath": {"nsz", "arcp", "contract", "afn"},
    "nogil": True,
}


@njit(inline="always", **JIT)
def sum_lanes(u, v):
    """``(sum(u), sum(u * v))`` in float64, each in eight interleaved partial sums combined
    pairwise: an order fixed by the code, which LLVM can run in vector lanes without being
    allowed to reassociate (see :data:`JIT`)."""
    N = u.shape[0]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = 0.0
    E = N - N % 8
    for j in range(0, E, 8):
        x0, x1, x2, x3 = float(u[j]), float(u[j + 1]), float(u[j + 2]), float(u[j + 3])
        x4, x5, x6, x7 = float(u[j + 4]), float(u[j + 5]), float(u[j + 6]), float(u[j + 7])
        a0 += x0
        a1 += x1
        a2 += x2
        a3 += x3
        a4 += x4
        a5 += x5
        a6 += x6
        a7 += x7
        b0 += x0 * v[j]
        b1 += x1 * v[j + 1]
        b2 += x2 * v[j + 2]
        b3 += x3 * v[j + 3]
        b4 += x4 * v[j + 4]
        b5 += x5 * v[j + 5]
        b6 += x6 * v[j + 6]
        b7 += x7 * v[j + 7]
    a = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    b = ((b0 + b1) + (b2 + b3)) + ((b4 + b5) + (b6 + b7))
    for j in range(E, N):
        a += u[j]
        b += float(u[j]) * v[j]
    return a, b


@njit(inline="always", **JIT)
def squares_about(u, mu):
    """``sum((u - mu)^2)`` in float64, in eight interleaved partial sums as
    :func:`sum_lanes`'s."""
    N = u.shape[0]
    c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = 0.0
    E = N - N % 8
    for j in range(0, E, 8):
        d0, d1, d2, d3 = u[j] - mu, u[j + 1] - mu, u[j + 2] - mu, u[j + 3] - mu
        d4, d5, d6, d7 = u[j + 4] - mu, u[j + 5] - mu, u[j + 6] - mu, u[j + 7] - mu
        c0 += d0 * d0
        c1 += d1 * d1
        c2 += d2 * d2
        c3 += d3 * d3
        c4 += d4 * d4
        c5 += d5 * d5
        c6 += d6 * d6
        c7 += d7 * d7
    c = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7))
    for j in range(E, N):
        d = u[j] - mu
        c += d * d
    return c


# CBLAS enumerations
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def tanh_(x):
    """tanh; float32 within 2 ulp (max 1.88 over every float32 in [-10, 10])."""
    return math.tanh(x)


@intrinsic
def _pow2(typingctx, k):
    """``2.0**n`` in float32 from ``k = 1.5 * 2**23 + n`` (float32, n an integer in
    [-127, 127]): n sits in the low bits of ``k``, and shifting them into the exponent
    field writes the power of two without a conversion; n = -127 gives +0."""
    sig = types.float32(types.float32)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        bits = builder.shl(builder.bitcast(args[0], i32), i32(23))  # k's high bits drop out
        return builder.bitcast(builder.add(bits, i32(127 << 23)), ir.FloatType())

    return sig, codegen


# The float32 activations below are compiled with FMA contraction as their only fast-math
# flag: reassociation would fold ``(z * c + _ROUND) - _ROUND`` into ``z * c`` and undo the
# rounding to an integer, and the error bounds hold for the operations in the order written.
# Each is one straight-line sequence (selects, no branches), so the loops around it
# vectorise. The polynomials are minimax fits of the relative error of expm1 on the reduced
# interval, their coefficients rounded to float32 one at a time with the rest refitted.
_F32_OPTIONS = {"fastmath": {"contract"}, "error_model": "numpy"}
_ROUND = np.float32(1.5 * 2**23)  # z * c + _ROUND - _ROUND is z * c rounded to an integer
_ONE, _HALF = np.float32(1.0), np.float32(0.5)
# tanh
_TANH_LIM = np.float32(9.5)  # tanh rounds to 1 in float32 from 9.011; keeps 2**n finite
_TWO_OVER_LN2, _HALF_LN2 = np.float32(2.88539), np.float32(0.3465736)
# expm1(2r) / 2 = r + r^2 (t0 + t1 r + ... + t4 r^4) for |r| <= ln2 / 4, rel. error 1.4e-8
_T0, _T1, _T2, _T3, _T4 = np.float32(1.0), np.float32(0.6666619), np.float32(0.33333474), \
    np.float32(0.1338581), np.float32(0.04447756)
# sigmoid
_SIG_LO, _SIG_HI = np.float32(-88.0), np.float32(18.0)  # n >= -127; sigmoid is 1 from 17.33
_INV_LN2 = np.float32(1.442695)
_LN2_HI, _LN2_LO = np.float32(0.69314575), np.float32(1.4286068e-06)  # n * _LN2_HI exact
_SIG_CUT = np.float32(-0.6931472)  # exp(x) < 1/2 below: the form with the damped rounding
# expm1(r) = r + r^2 (e0 + e1 r + ... + e4 r^4) for |r| <= ln2 / 2, rel. error 3.7e-9
_E0, _E1, _E2, _E3, _E4 = np.float32(0.5), np.float32(0.16666535), np.float32(0.04166724), \
    np.float32(0.008367438), np.float32(0.001386344)


@overload(tanh_, jit_options=_F32_OPTIONS)
def _tanh_impl(x):
    if x == types.float32:

        def impl(x):
            # tanh z = h / (1 + h) with h = expm1(2z) / 2 and z = |x| (tanh is odd);
            # 2z = n ln2 + 2r, |r| <= ln2 / 4, so h = 2^n expm1(2r) / 2 + (2^n - 1) / 2.
            z = min(abs(x), _TANH_LIM)
            k = z * _TWO_OVER_LN2 + _ROUND
            n = k - _ROUND
            r = z - n * _HALF_LN2  # ln2/2 rounds to float32 within 2.7e-9 relative: one
            # term is enough, tanh being insensitive to 2z at the n where n * 2.7e-9 grows
            r2 = r * r
            p = (_T4 * r2 + (_T3 * r + _T2)) * r2 + (_T1 * r + _T0)
            q = r2 * p + r  # expm1(2r) / 2
            s = _pow2(k)
            h = s * q + (s * _HALF - _HALF)
            v = h / (h + _ONE)
            # for h < 1/2, h - h v: the rounding of 1 + h, a full ulp of a small result,
            # reaches it only through h v, damped by v < 1/3
            w = h - h * v
            return math.copysign(w if h < _HALF else v, x)

        return impl
    return lambda x: math.tanh(x)


def sigmoid_(x):
    """Logistic function; float64 as ``0.5 tanh(x/2) + 0.5``, the plain path's formula;
    float32 as ``e / (1 + e)``, ``e = exp(x)``: within 2 ulp (max 1.69) for x >= -87.33,
    where the results are normal floats; subnormal results below, and 0 for x < -87.68."""
    return 0.5 * math.tanh(0.5 * x) + 0.5


@overload(sigmoid_, jit_options=_F32_OPTIONS)
def _sigmoid_impl(x):
    if x == types.float32:

        def impl(x):
            # e = exp(z) = 2^n (1 + expm1(r)), z = n ln2 + r, |r| <= ln2 / 2; n = -127
            # (z < -87.68) makes e, and the result, exactly 0
            z = min(max(x, _SIG_LO), _SIG_HI)
            k = z * _INV_LN2 + _ROUND
            n = k - _ROUND
            r = (z - n * _LN2_HI) - n * _LN2_LO
            r2 = r * r
            p = (_E4 * r2 + (_E3 * r + _E2)) * r2 + (_E1 * r + _E0)
            q = r2 * p + r  # expm1(r)
            s = _pow2(k)
            e = s * q + s
            v = e / (e + _ONE)
            w = e - e * v  # for e < 1/2, as in tanh
            return w if z < _SIG_CUT else v

        return impl
    return lambda x: 0.5 * tanh_(0.5 * x) + 0.5


def one_like(x):
    """The constant 1 in ``x``'s dtype, so float32 arithmetic is never promoted."""
    return 1.0


@overload(one_like)
def _one_like_impl(x):
    if x == types.float32:
        one = np.float32(1.0)
        return lambda x: one
    return lambda x: 1.0


# Row helpers. Every loop in the kernels runs from 0 over slices rather than at an offset
# (``g[2 * H + j]``): numba wraps negative indices, and with an offset of unknown sign
# LLVM keeps that check and stops vectorising (measurements: docs/performance.md).


@njit(**JIT)
def add_sigmoid(a, g):
    """``g = sigmoid(g + a)`` elementwise, in place; ``a``, ``g`` 1-D of equal length."""
    for j in range(g.shape[0]):
        g[j] = sigmoid_(g[j] + a[j])


@njit(**JIT)
def add_tanh(a, g):
    """``g = tanh(g + a)`` elementwise, in place."""
    for j in range(g.shape[0]):
        g[j] = tanh_(g[j] + a[j])


@njit(**JIT)
def add_into(acc, a):
    """``acc += a`` elementwise; ``acc`` float64, so long sums keep their precision."""
    for j in range(a.shape[0]):
        acc[j] += a[j]


@njit(**JIT)
def reset_rows(h, reset_t, out):
    """The state that enters a step with resets: ``out = h`` with the rows where
    ``reset_t`` (rows,) is True set to zero; returns whether any row was reset (``out`` is
    left untouched when none is, and the caller reads ``h`` itself)."""
    hit = False
    for b in range(reset_t.shape[0]):
        hit = hit or reset_t[b]
    if not hit:
        return False
    for b in range(reset_t.shape[0]):
        if reset_t[b]:
            out[b] = 0
        else:
            out[b] = h[b]
    return True


@njit(**JIT)
def add_rows(ids, rows, out):
    """``out[ids[r]] += rows[r]`` for every row ``r``: the input weights' gradient of token
    ids, in one pass over ``rows`` (T*B, G*H) into ``out`` (V, G*H), float64 sums kept in
    ``out`` only as its dtype allows."""
    for r in range(rows.shape[0]):
        o = out[ids[r]]
        row = rows[r]
        for j in range(row.shape[0]):
            o[j] += row[j]


@njit(**JIT)
def all_finite(a):
    """Whether the 2-D C-contiguous array ``a`` holds no NaN and no Inf.

    ``v * 0`` is 0 for a finite ``v`` and NaN for an infinite or NaN one; the sum is
    then NaN exactly when some value is not finite, and the loop vectorises (no early
    exit). The compiler flags keep NaN semantics (no ``nnan``/``ninf``), so this is
    not folded away.
    """
    acc = 0.0
    flat = a.reshape(a.size)
    for j in range(flat.shape[0]):
        acc += flat[j] * 0
    return acc == acc


def _gemm_intrinsic(int_bits):
    """A call of CBLAS ``?gemm`` through its address, with ``int_bits``-wide integers.

    The BLAS function travels into the kernels as a plain integer address (with a flag
    for its integer width) instead of a ctypes object: numba then needs no ctypes
    conversion on every call (more than the streaming step can afford; measurements:
    docs/performance.md), and the compiled code holds no process-specific address, so it
    caches.
    """

    @intrinsic
    def call(typingctx, addr, trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc):
        sig = types.void(addr, trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc)

        def codegen(context, builder, signature, args):
            addr_, ta, tb, m, n, k, a, lda_, b, ldb_, beta_, c, ldc_ = args
            aty = signature.args[6]
            real = context.get_value_type(aty.dtype)
            i32, ii, p8 = ir.IntType(32), ir.IntType(int_bits), ir.IntType(8).as_pointer()
            fnty = ir.FunctionType(ir.VoidType(),
                                   [i32, i32, i32, ii, ii, ii, real, p8, ii, p8, ii, real, p8, ii])
            fn = builder.inttoptr(addr_, fnty.as_pointer())

            def integer(v, ty):
                return builder.trunc(context.cast(builder, v, ty, types.int64), ii) \
                    if int_bits == 32 else context.cast(builder, v, ty, types.int64)

            def data(v, ty):
                return builder.bitcast(context.make_array(ty)(context, builder, v).data, p8)

            def trans(v, ty):
                return builder.select(context.cast(builder, v, ty, types.boolean),
                                      i32(TRANS), i32(NO_TRANS))

            ints = signature.args
            builder.call(fn, [
                i32(ROW_MAJOR), trans(ta, ints[1]), trans(tb, ints[2]),
                integer(m, ints[3]), integer(n, ints[4]), integer(k, ints[5]),
                context.cast(builder, context.get_constant(types.float64, 1.0), types.float64,
                             aty.dtype),
                data(a, aty), integer(lda_, ints[7]),
                data(b, signature.args[8]), integer(ldb_, ints[9]),
                context.cast(builder, beta_, signature.args[10], aty.dtype),
                data(c, signature.args[11]), integer(ldc_, ints[12]),
            ])
            return context.get_dummy_value()

        return sig, codegen

    return call


_gemm64 = _gemm_intrinsic(64)
_gemm32 = _gemm_intrinsic(32)


@njit(**JIT)
def vm(a, B, c, beta):
    """``c = a @ B (+ c if beta)`` for one row ``a`` (K,), ``B`` (K, N) C-contiguous.

    The streaming step's products at batch 1, which read every weight once and are
    bound by memory (an LSTM step at D=128, H=256 reads 1.5 MB of weights, more than an
    L2 cache per core commonly holds), so the fewest passes over memory win: this loop
    beats both OpenBLAS's ``gemm``, which pays its call and packing overhead every step,
    and a plain loop (measurements: docs/performance.md). Four rows of ``B`` per pass
    over ``c`` cut the loads and stores of ``c`` fourfold.
    """
    K, N = B.shape
    if beta == 0:
        c[:] = 0
    K4 = K - K % 4
    for k in range(0, K4, 4):
        a0, a1, a2, a3 = a[k], a[k + 1], a[k + 2], a[k + 3]
        b0, b1, b2, b3 = B[k], B[k + 1], B[k + 2], B[k + 3]
        for n in range(N):
            c[n] += a0 * b0[n] + a1 * b1[n] + a2 * b2[n] + a3 * b3[n]
    for k in range(K4, K):
        ak, bk = a[k], B[k]
        for n in range(N):
            c[n] += ak * bk[n]


@njit(**JIT)
def mm(gemm, A, B, C, trans_b, beta):
    """``C = A @ B (+ C if beta)`` in row-major, B transposed when ``trans_b``.

    Parameters
    ----------
    gemm : (address, ilp64) of CBLAS ``?gemm`` in NumPy's own BLAS for this dtype, or
        None for the compiled loop below
    A : ndarray (M, K), C-contiguous
    B : ndarray (K, N), or (N, K) when ``trans_b``; C-contiguous
    C : ndarray (M, N), C-contiguous, written
    trans_b : bool
    beta : 0 or 1, whether to accumulate into C

    Notes
    -----
    Calling NumPy's BLAS (found by :mod:`rnnlab.kernels.blas`) keeps one BLAS and one
    thread pool for the whole program; numba's own ``np.dot`` would load SciPy's copy,
    and two OpenBLAS pools spinning against each other slow each other down (measurements:
    docs/performance.md).
    """
    M, K = A.shape
    N = C.shape[1]
    if M == 1 and not trans_b:
        vm(A[0], B, C[0], beta)
    elif gemm is None:
        if beta == 0:
            C[:] = 0
        for m in range(M):
            a, c = A[m], C[m]
            if trans_b:
                for n in range(N):
                    s = c[n]
                    bn = B[n]
                    for k in range(K):
                        s += a[k] * bn[k]
                    c[n] = s
            else:
                for k in range(K):
                    ak, bk = a[k], B[k]
                    for n in range(N):
                        c[n] += ak * bk[n]
    else:
        ldb = N if not trans_b else K
        if gemm[1]:
            _gemm64(gemm[0], False, trans_b, M, N, K, A, K, B, ldb, float(beta), C, N)
        else:
            _gemm32(gemm[0], False, trans_b, M, N, K, A, K, B, ldb, float(beta), C, N)


@njit(**JIT)
def gemm_views(gemm, trans_a, A, trans_b, B, C):
    """``C = op(A) @ op(B)`` for 2-D views whose rows are strided but whose elements
    within a row are contiguous (slices of C-contiguous arrays); ``gemm`` not None."""
    M, N = C.shape
    K = A.shape[0] if trans_a else A.shape[1]
    lda, ldb, ldc = A.strides[0] // A.itemsize, B.strides[0] // B.itemsize, \
        C.strides[0] // C.itemsize
    if gemm[1]:
        _gemm64(gemm[0], trans_a, trans_b, M, N, K, A, lda, B, ldb, 0.0, C, ldc)
    else:
        _gemm32(gemm[0], trans_a, trans_b, M, N, K, A, lda, B, ldb, 0.0, C, ldc)


@njit(parallel=True, **JIT)
def gradients_par(gemm, x, h, da, dn, W_x, dW_x, dW_h, dx, chunks):
    """The batched products of a layer's backward, in ``chunks`` parts, one per thread.

    Over the K = T*B rows of the unrolled sequence: ``x`` (K, D) the inputs, ``h`` (K, H)
    the states each step started from, ``da`` (K, GH) the gradient at the
    pre-activations, ``dn`` (K, H) the GRU's gradient at its recurrent candidate product
    ((0, 0) for the other cells). Thread ``c`` takes rows ``K*c//chunks`` to the next
    part's start and writes ``dW_x[c] = x^T da`` and ``dW_h[c] = h^T da`` over them
    (partial sums, ``dW_h[c]``'s last H columns from ``dn`` when given) and its rows of
    ``dx = da W_x^T`` (none when ``dx`` has no rows: the input gradient is not wanted).
    Each part is one single-threaded GEMM (the caller sets the BLAS to one thread): no
    second thread pool runs, so no BLAS thread is left spinning against the time loops.
    """
    K, D = x.shape
    GH = da.shape[1]
    split = dW_h.shape[2] - dn.shape[1] if dn.shape[0] > 0 else GH
    for c in prange(chunks):
        k0, k1 = K * c // chunks, K * (c + 1) // chunks
        gemm_views(gemm, True, x[k0:k1], False, da[k0:k1], dW_x[c])
        gemm_views(gemm, True, h[k0:k1], False, da[k0:k1, :split], dW_h[c, :, :split])
        if dn.shape[0] > 0:
            gemm_views(gemm, True, h[k0:k1], False, dn[k0:k1], dW_h[c, :, split:])
        if dx.shape[0] > 0:
            gemm_views(gemm, False, da[k0:k1], True, W_x, dx[k0:k1])


@njit(parallel=True, **JIT)
def matmul_par(gemm, A, trans_a, B, C, parts):
    """``op(A) @ B`` in ``parts`` parts, one per thread, each one single-threaded GEMM.

    Without ``trans_a``: ``A`` (M, K), ``C`` (1, M, N), and the parts are runs of rows.
    With it: ``A`` (K, M), ``B`` (K, N), ``C`` (parts, M, N) receives partial sums over
    runs of the K rows, for the caller to add.
    """
    if trans_a:
        K = A.shape[0]
        for c in prange(parts):
            k0, k1 = K * c // parts, K * (c + 1) // parts
            gemm_views(gemm, True, A[k0:k1], False, B[k0:k1], C[c])
    else:
        M = A.shape[0]
        for c in prange(parts):
            m0, m1 = M * c // parts, M * (c + 1) // parts
            gemm_views(gemm, False, A[m0:m1], False, B, C[0, m0:m1])


# the register-blocked tile (rnnlab.kernels.tile) ------------------------------------


@intrinsic
def _call_tile(typingctx, addr, K, a, aks, ars, bp, c, ldc, beta, mr, nc):
    """Call the tile function at address ``addr``; pointers arrive as integers."""
    sig = types.void(addr, K, a, aks, ars, bp, c, ldc, beta, mr, nc)

    def codegen(context, builder, signature, args):
        i64, i32, p8 = ir.IntType(64), ir.IntType(32), ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i64, p8, i64, i64, p8, p8, i64, i32, i64, i64])
        v = [context.cast(builder, a, t, types.int64)
             for a, t in zip(args, signature.args, strict=True)]
        fn = builder.inttoptr(v[0], fnty.as_pointer())
        builder.call(fn, [v[1], builder.inttoptr(v[2], p8), v[3], v[4],
                          builder.inttoptr(v[5], p8), builder.inttoptr(v[6], p8), v[7],
                          builder.trunc(v[8], i32), v[9], v[10]])
        return context.get_dummy_value()

    return sig, codegen


@njit(**JIT)
def pack_b(B, Bp):
    """``Bp`` (P, K, NR) = ``B`` (K, N) cut into panels of NR columns, the last zero-padded."""
    K, N = B.shape
    P, _, NR = Bp.shape
    zero = 0 * B[0, 0] if B.size else Bp.dtype.type(0)
    for p in range(P):
        for k in range(K):
            row, out = B[k], Bp[p, k]
            for j in range(NR):
                col = p * NR + j
                out[j] = row[col] if col < N else zero


@njit(**JIT)
def mm_tiled(tile, A, Bp, C, beta):
    """``C = A @ B (+ C if beta)`` with ``B`` packed by :func:`pack_b`, tile by tile.

    ``A`` (M, K) and ``C`` (M, N) may be row ranges of larger arrays (each row of ``C``
    contiguous); ``A`` is read through its strides, rows in place, or k-major (a
    transposed view, as :func:`to_bf16_row_pairs` lays out the weight gradients' A). The
    tile reads the rows of ``A`` in place (packing them k-major first
    did not pay at the per-step sizes, least of all at K = 4H in backward; measurements:
    docs/performance.md), panel by panel
    so that each panel of ``B`` meets every block of rows while it is in the L1 cache
    (at H=256 the packed ``W_h`` is 1 MB and would otherwise stream from L2 per block).
    """
    M, K = A.shape
    N = C.shape[1]
    P, _, NR = Bp.shape
    size = A.itemsize
    lda, aks, ldc = A.strides[0] // size, A.strides[1] // size, C.strides[0] // size
    a0, c0, bp = A.ctypes.data, C.ctypes.data, Bp.ctypes.data
    blocks = (M + MR - 1) // MR
    for p in range(P):
        for i in range(blocks):
            _call_tile(tile, K, a0 + i * MR * lda * size, aks, lda, bp + p * K * NR * size,
                       c0 + (i * MR * ldc + p * NR) * size, ldc, beta, min(MR, M - i * MR),
                       min(NR, N - p * NR))


@njit(**JIT)
def product(gemm, tile, W, Wp, A, C, beta):
    """``C = A @ W (+ C if beta)``: through the tile when ``tile`` (an address) is not 0,
    with ``Wp`` = ``W`` packed, else through :func:`mm`. The per-step product of the loops.

    ``Wp`` packed in bf16 pairs (uint32, :func:`pack_b_bf16`) makes it a bf16 product:
    the rows of ``A`` are rounded to bf16 first and ``tile`` is a bf16 tile (float32 sums).
    """
    if tile != 0:
        _tiled(tile, A, Wp, C, beta)
    else:
        mm(gemm, A, W, C, False, beta)


def _tiled(tile, A, Wp, C, beta):
    """``C = A @ B (+ C if beta)`` by the tile, ``Wp`` = ``B`` packed (compiled only)."""


@overload(_tiled, jit_options=JIT)
def _tiled_impl(tile, A, Wp, C, beta):
    if Wp.dtype == types.uint32:

        def impl(tile, A, Wp, C, beta):
            pairs = np.empty((A.shape[0], Wp.shape[1]), np.uint32)
            to_bf16_pairs(A, pairs)
            mm_tiled(tile, pairs, Wp, C, beta)

        return impl
    return lambda tile, A, Wp, C, beta: mm_tiled(tile, A, Wp, C, beta)


# bf16 operands for the bf16 tiles ---------------------------------------------------
# bf16 is the high half of a float32 (8 exponent bits, 7 stored fraction bits); two of
# them, for k and k + 1, share one uint32 (k in the low half), the order the AVX512_BF16
# dot product reads. Rounding is to nearest, ties to even, as the instructions' own
# conversion (VCVTNEPS2BF16) does, except that float32 subnormals are kept (that
# instruction flushes them to zero); a NaN stays a (quiet) NaN, so it still reaches the
# loss and the training loop's guard.


@intrinsic
def _bits(typingctx, x):
    """The bits of a float32 as a uint32."""
    sig = types.uint32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@njit(inline="always", **JIT)
def _bf16_bits(u):
    """The bf16 nearest the float32 of bits ``u`` (uint32; ties to even), its 16 bits in a
    uint32. Written in uint32 arithmetic without branches, so that LLVM vectorises the
    loops that call it (16 lanes with AVX-512): no float32 that is not a NaN overflows
    ``u + 0x8000``, and a NaN takes the other arm of the select."""
    rounded = (u + uint32(0x7FFF) + ((u >> uint32(16)) & uint32(1))) >> uint32(16)
    quiet = (u >> uint32(16)) | uint32(0x40)
    return quiet if (u & uint32(0x7FFFFFFF)) > uint32(0x7F800000) else rounded


@njit(inline="always", **JIT)
def _bf16_pair(lo, hi):
    """Two float32 rounded to bf16 in one uint32: ``lo`` in the low half."""
    return _bf16_bits(_bits(lo)) | (_bf16_bits(_bits(hi)) << uint32(16))


@njit(**JIT)
def to_bf16_pairs(A, out):
    """``out`` (M, ceil(K/2)) = the rows of ``A`` (M, K) float32 rounded to bf16, two
    consecutive columns per uint32 (the last one's high half zero when K is odd)."""
    M, K = A.shape
    K2 = K // 2
    for m in range(M):
        a, o = A[m], out[m]
        for k in range(K2):
            o[k] = _bf16_pair(a[2 * k], a[2 * k + 1])
        if K % 2:
            o[K2] = _bf16_bits(_bits(a[K - 1]))


@njit(parallel=True, **JIT)
def to_bf16_row_pairs(A, out, parts):
    """``out`` (ceil(K/2), M) = ``A`` (K, M) float32 rounded to bf16, rows ``2i`` and
    ``2i + 1`` paired in each uint32 (the last row's high half zero when K is odd), in
    ``parts`` runs of rows.

    ``out.T`` is then ``A.T`` as bf16 pairs along its rows, laid out k-major (strides
    ``(1, M)`` words): the A operand of the tile for ``A.T @ B`` (the weight gradients),
    converted row by row in contiguous passes rather than by a transposing one (five times
    faster at 2048 x 256; measurements: docs/performance.md).
    """
    K, M = A.shape
    K2 = out.shape[0]
    for c in prange(parts):
        for i in range(K2 * c // parts, K2 * (c + 1) // parts):
            lo, o = A[2 * i], out[i]
            if 2 * i + 1 < K:
                hi = A[2 * i + 1]
                for m in range(M):
                    o[m] = _bf16_pair(lo[m], hi[m])
            else:
                for m in range(M):
                    o[m] = _bf16_bits(_bits(lo[m]))


@njit(parallel=True, **JIT)
def pack_b_bf16(B, Bp, parts):
    """``Bp`` (P, ceil(K/2), NR) = ``B`` (K, N) float32 in panels of NR columns as
    :func:`pack_b` cuts them, rounded to bf16 and paired along K (zero-padded), in
    ``parts`` runs of panels."""
    K, N = B.shape
    P, K2, NR = Bp.shape
    for c in prange(parts):
        for p in range(P * c // parts, P * (c + 1) // parts):
            c0 = p * NR
            w = min(NR, N - c0)
            for i in range(K2):
                out, lo = Bp[p, i], B[2 * i, c0:c0 + w]
                if 2 * i + 1 < K:
                    hi = B[2 * i + 1, c0:c0 + w]
                    for j in range(w):
                        out[j] = _bf16_pair(lo[j], hi[j])
                else:
                    for j in range(w):
                        out[j] = _bf16_bits(_bits(lo[j]))
                for j in range(w, NR):
                    out[j] = 0


@njit(parallel=True, **JIT)
def mm_tiled_par(tile, A, Bp, C, parts):
    """:func:`mm_tiled` (``beta`` 0) with the panels of ``Bp`` shared out among ``parts``
    threads: for the batched products (weight gradients, output layer) in bf16."""
    P, _, NR = Bp.shape
    N = C.shape[1]
    for c in prange(parts):
        p0, p1 = P * c // parts, P * (c + 1) // parts
        if p1 > p0:
            mm_tiled(tile, A, Bp[p0:p1], C[:, p0 * NR:min(N, p1 * NR)], 0)

