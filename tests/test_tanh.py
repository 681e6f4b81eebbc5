"""The fused kernels' float32 tanh and sigmoid: within 2 ulp, and exact at the ends.

Measured through the helpers the gate loops call (``add_tanh``, ``add_sigmoid``, with a
bias of -0.0 that leaves each input as it is) and through ``tanh_``/``sigmoid_`` called in
a loop, as the Elman loop and the LSTM's ``tanh(c)`` do. A seeded sample of the float32
range stands in for benchmarks/tanh_accuracy.py, which measures all of it.
"""

import numpy as np
import pytest

pytest.importorskip("numba")

from numba import njit  # noqa: E402

from rnnlab.kernels._jit import JIT, add_sigmoid, add_tanh, sigmoid_, tanh_  # noqa: E402

BOUND = 2.0  # ulp


@njit(**{**JIT, "cache": False})
def direct(which, x, out):
    if which == 0:
        for j in range(x.shape[0]):
            out[j] = tanh_(x[j])
    else:
        for j in range(x.shape[0]):
            out[j] = sigmoid_(x[j])


def helper(fn, x):
    g = x.copy()
    fn(np.full_like(x, -0.0), g)
    return g


def ulps(y, ref):
    """|y - ref| in float32 ulp at ``ref`` (float64), the spacing of ref's binade."""
    _, e = np.frexp(np.abs(ref))
    err = np.abs(y.astype(np.float64) - ref) / np.ldexp(1.0, np.maximum(e - 24, -149))
    return np.where((y == ref) | (np.isnan(y) & np.isnan(ref)), 0.0, err)


def sample(top, n=1 << 20, seed=0):
    """n float32 spread evenly over the bit patterns of [-top, top] (so log-uniform in
    magnitude, subnormals included), 2^18 evenly over [-10, 10], 2^18 over the interval of
    tanh's largest error, and special values."""
    rng = np.random.default_rng(seed)
    top_bits = int(np.float32(top).view(np.uint32))
    x = rng.integers(0, top_bits + 1, n, dtype=np.uint32).view(np.float32)
    x = np.where(rng.random(n) < 0.5, -x, x)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 3.4e38, -3.4e38, 1e-45, -1e-45,
                        1.17549435e-38, 9.0109, 9.02, -9.02, 20.0, -20.0], np.float32)
    return np.concatenate([x, rng.uniform(-10, 10, 1 << 18).astype(np.float32),
                           rng.uniform(0.15, 0.35, 1 << 18).astype(np.float32), special])


def test_float32_tanh_within_two_ulp():
    x = sample(10.0)
    y = helper(add_tanh, x)
    ref = np.tanh(x.astype(np.float64))
    err = ulps(y, ref)
    worst = int(np.argmax(err))
    assert err[worst] <= BOUND, f"{err[worst]:.2f} ulp at x = {x[worst]!r}"
    d = np.empty_like(x)
    direct(0, x, d)
    np.testing.assert_array_equal(d.view(np.uint32), y.view(np.uint32))
    # +-1 exactly wherever the true value rounds to it, and beyond the clamp
    sat = np.abs(ref.astype(np.float32)) == 1
    assert sat.sum() > 1000
    np.testing.assert_array_equal(y[sat], np.sign(x[sat]))


def test_float32_tanh_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -3e-39, 1e-30], np.float32)
    y = helper(add_tanh, x)
    np.testing.assert_array_equal(y[2:4], [1, -1])
    assert np.isnan(y[4])
    np.testing.assert_array_equal(y[[0, 1, 5, 6, 7]], x[[0, 1, 5, 6, 7]])  # tanh x = x
    assert not np.signbit(y[0]) and np.signbit(y[1])


def test_float32_sigmoid_within_two_ulp():
    x = sample(87.33)
    x = x[x >= -87.33]
    y = helper(add_sigmoid, x)
    x64 = x.astype(np.float64)
    e = np.exp(-np.abs(x64))
    ref = np.where(x64 >= 0, 1 / (1 + e), e / (1 + e))
    err = ulps(y, ref)
    worst = int(np.argmax(err))
    assert err[worst] <= BOUND, f"{err[worst]:.2f} ulp at x = {x[worst]!r}"
    d = np.empty_like(x)
    direct(1, x, d)
    np.testing.assert_array_equal(d.view(np.uint32), y.view(np.uint32))


def test_float32_sigmoid_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 17.5, -87.69, -100.0, -1e30], np.float32)
    y = helper(add_sigmoid, x)
    np.testing.assert_array_equal(y[[0, 1, 2, 3, 5, 6, 7, 8]], [0.5, 0.5, 1, 0, 1, 0, 0, 0])
    assert np.isnan(y[4])


def test_float64_uses_libm_tanh():
    x = np.random.default_rng(1).normal(size=1 << 16) * 5
    y, s = np.empty_like(x), np.empty_like(x)
    direct(0, x, y)
    direct(1, x, s)
    np.testing.assert_allclose(y, np.tanh(x), rtol=1e-15, atol=0)
    # the same formula as the plain path, up to the rounding of its last step
    np.testing.assert_allclose(s, 0.5 * np.tanh(0.5 * x) + 0.5, rtol=0, atol=2.3e-16)
