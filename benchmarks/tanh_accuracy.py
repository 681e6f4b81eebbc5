"""Accuracy and speed of the fused kernels' tanh and sigmoid, float32 and float64.

    python benchmarks/tanh_accuracy.py                # dense samples and timing, ~1 min
    python benchmarks/tanh_accuracy.py --exhaustive   # every float32 of the ranges, ~10 min

The functions measured are the ones the kernels run, called through the same jitted
helpers: ``add_tanh`` and ``add_sigmoid`` (the gate loops of the LSTM and the GRU, with a
bias of -0.0, which leaves every input as it is), and a loop compiled with the kernels'
options that calls ``tanh_`` and ``sigmoid_`` directly, as the Elman loop and the LSTM's
``tanh(c)`` do (its results must be the same bits).

The error is in ulp of the result's float32 (or float64) binade, against the exactly
computed value: NumPy's float64 ``tanh`` and ``exp`` for float32 results (their own error,
about 1e-16, is below 1e-8 float32 ulp), NumPy's extended precision (or mpmath where that
is plain float64) for float64 results. Inputs: every 128th float32 of [0, 10] and its
negative, 4M points evenly spaced over [-10, 10], 1M log-spaced magnitudes in
[1e-30, 1e-3] of both signs, every 8th subnormal, every float32 of [8.5, 10] (where tanh
rounds to 1), and the special values; ``--exhaustive`` replaces the 128th by every float32.
The sigmoid's range is [-87.33, 87.33] (results of at least the smallest normal float;
below it, results are subnormal and then 0 from -87.68, reported apart). The machine code
of the loop around ``tanh_``/``sigmoid_`` is searched for its division, to report the
vector width the loop runs at (16 float32 on AVX-512).

Timing compares each new helper with the previous one, kept below as a reference copy (the
rational tanh Eigen uses, and the sigmoid as ``0.5 tanh(x/2) + 0.5``) compiled with the
options the kernels had: in alternating blocks over one row of the gate block (4H = 1024
values at H = 256, and H = 256 values), medians of the blocks and the median of the paired
ratios (new over old; above 1: slower now). Whole training and inference steps before and
after are measured by ``benchmarks/compare_revisions.py``.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time

import numpy as np
from numba import njit, types
from numba.extending import overload

from rnnlab.kernels._jit import JIT, add_sigmoid, add_tanh, sigmoid_, tanh_

NOCACHE = {**JIT, "cache": False}
F32_MAX_BITS = int(np.float32(10).view(np.uint32))


# the previous float32 tanh, for timing only -----------------------------------------


def old_tanh(x):
    return math.tanh(x)


@overload(old_tanh, jit_options={"fastmath": JIT["fastmath"], "error_model": "numpy"})
def _old_tanh_impl(x):
    if x == types.float32:
        lim = np.float32(7.90531110763549805)
        a1, a3, a5 = np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04), \
            np.float32(1.48572235717979e-05)
        a7, a9, a11 = np.float32(5.12229709037114e-08), np.float32(-8.60467152213735e-11), \
            np.float32(2.00018790482477e-13)
        a13 = np.float32(-2.76076847742355e-16)
        b0, b2, b4, b6 = np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03), \
            np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06)

        def impl(x):
            x = min(max(x, -lim), lim)
            x2 = x * x
            p = x2 * a13 + a11
            p = x2 * p + a9
            p = x2 * p + a7
            p = x2 * p + a5
            p = x2 * p + a3
            p = x2 * p + a1
            q = x2 * b6 + b4
            q = x2 * q + b2
            q = x2 * q + b0
            return x * p / q

        return impl
    return lambda x: math.tanh(x)


@njit(**NOCACHE)
def old_add_tanh(a, g):
    for j in range(g.shape[0]):
        g[j] = old_tanh(g[j] + a[j])


def old_sigmoid(x):
    return 0.5 * math.tanh(0.5 * x) + 0.5


@overload(old_sigmoid, jit_options={"fastmath": JIT["fastmath"], "error_model": "numpy"})
def _old_sigmoid_impl(x):
    if x == types.float32:
        half = np.float32(0.5)
        return lambda x: half * old_tanh(half * x) + half
    return lambda x: 0.5 * old_tanh(0.5 * x) + 0.5


@njit(**NOCACHE)
def old_add_sigmoid(a, g):
    for j in range(g.shape[0]):
        g[j] = old_sigmoid(g[j] + a[j])


@njit(**NOCACHE)
def loop_tanh(x, out):
    """``tanh_`` called inside a loop, as the Elman loop and the LSTM's ``tanh(c)`` do."""
    for j in range(x.shape[0]):
        out[j] = tanh_(x[j])


@njit(**NOCACHE)
def loop_sigmoid(x, out):
    for j in range(x.shape[0]):
        out[j] = sigmoid_(x[j])


def direct(which, x, out):
    (loop_tanh, loop_sigmoid)[which](x, out)


# accuracy ----------------------------------------------------------------------------


def ulps(y, ref, dtype):
    """|y - ref| in ulp of ``dtype`` at ``ref`` (the spacing of ref's binade)."""
    mant, emin = (24, -149) if dtype == np.float32 else (53, -1074)
    ref = np.asarray(ref, np.longdouble if dtype == np.float64 else np.float64)
    _, e = np.frexp(np.abs(ref).astype(np.float64))
    ulp = np.ldexp(1.0, np.maximum(e - mant, emin)).astype(ref.dtype)
    err = (np.abs(y.astype(ref.dtype) - ref) / ulp).astype(np.float64)
    same = (y.astype(ref.dtype) == ref) | (np.isnan(y) & np.isnan(ref))
    return np.where(same, 0.0, err)


def ref_tanh(x):
    return np.tanh(x.astype(np.float64))


def ref_sigmoid(x):
    x = x.astype(np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def run_helper(helper, x):
    g = x.copy()
    helper(np.full_like(x, -0.0), g)
    return g


def pattern_range(lo, hi, stride):
    """Every ``stride``-th float32 with bit patterns in [lo, hi] (non-negative floats)."""
    return np.arange(lo, hi + 1, stride, dtype=np.int64).astype(np.uint32).view(np.float32)


def float32_inputs(stride, top, chunk=1 << 23):
    """The float32 inputs of the accuracy table, in chunks: every ``stride``-th float32 of
    [-top, top], then the evenly spaced, log-spaced, subnormal, near-saturation and special
    values."""
    top_bits = int(np.float32(top).view(np.uint32))
    for b0 in range(0, top_bits + 1, chunk * stride):
        x = pattern_range(b0, min(b0 + chunk * stride - 1, top_bits), stride)
        yield np.concatenate([x, -x])
    yield np.linspace(-10, 10, 1 << 22, dtype=np.float32)
    small = np.logspace(-30, -3, 1 << 19).astype(np.float32)
    yield np.concatenate([small, -small])
    sub = pattern_range(1, (1 << 23) - 1, 8)
    yield np.concatenate([sub, -sub])
    sat = pattern_range(int(np.float32(8.5).view(np.uint32)), F32_MAX_BITS, 1)
    yield np.concatenate([sat, -sat])
    yield np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 3.4e38, -3.4e38, 1e30, -1e30, 100,
                    -100, 20, -20, 1.17549435e-38, -1.17549435e-38], np.float32)


class Stats:
    """Running maximum and mean of an error."""

    def __init__(self):
        self.max, self.at, self.sum, self.n = 0.0, None, 0.0, 0

    def add(self, err, x):
        i = int(np.argmax(err))
        if err[i] > self.max or self.at is None:
            self.max, self.at = float(err[i]), float(x[i])
        self.sum += float(err.sum())
        self.n += err.size

    def row(self, name, unit="ulp"):
        at = f" (x = {self.at:.7g})" if self.max > 0 else ""
        fmt = ".2f" if unit == "ulp" else ".2g"
        return f"| {name} | {self.n:,} | {self.max:{fmt}} {unit}{at} | " \
            f"{self.sum / max(self.n, 1):{'.4f' if unit == 'ulp' else '.2g'}} |"


def float32_accuracy(stride):
    """Rows of the float32 table and the lines of the checks."""
    rows, checks = [], []
    for name, helper, which, ref, top, lo in (("tanh", add_tanh, 0, ref_tanh, 10.0, None),
                                              ("sigmoid", add_sigmoid, 1, ref_sigmoid, 87.33,
                                               -87.33)):
        stats, same_bits, saturated = Stats(), True, True
        for x in float32_inputs(stride, top):
            if lo is not None:
                x = x[~(x < lo) | (x == -np.inf)]
            y = run_helper(helper, x)
            d = np.empty_like(x)
            direct(which, x, d)
            same_bits &= bool(np.array_equal(y.view(np.uint32), d.view(np.uint32)))
            r = ref(x)
            stats.add(ulps(y, r, np.float32), x)
            r32 = r.astype(np.float32)
            sat = np.abs(r32) == 1
            saturated &= bool(np.all(y[sat] == r32[sat]))
        span = f"[-{top:g}, {top:g}]" if lo is None else f"[{lo:g}, {top:g}]"
        rows.append(stats.row(f"float32 {name}, every {stride}th float32 of {span}, "
                              f"and the other inputs" if stride > 1 else
                              f"float32 {name}, every float32 of {span}, and the other inputs"))
        checks.append(f"float32 {name}: calls of {name}_ in a loop give the helper's bits: "
                      f"{same_bits}; exactly {'+-1' if lo is None else '1'} wherever the true "
                      f"value rounds to it: {saturated}")
    x = np.linspace(-87.68, -87.33, 1 << 16, dtype=np.float32)
    err = np.abs(run_helper(add_sigmoid, x).astype(np.float64) - ref_sigmoid(x))
    xs = np.array([-87.69, -88, -100, -1e30, -np.inf], np.float32)
    zero = bool(np.all(run_helper(add_sigmoid, xs) == 0))
    checks.append(f"float32 sigmoid for x in [-87.68, -87.33] (subnormal results): max "
                  f"absolute error {err.max():.2g} ({err.max() / 2.0**-149:.2f} ulp of the "
                  f"subnormals); exactly 0 below -87.68 (true value < 8.3e-39): {zero}")
    return rows, checks


def float64_accuracy(n=1 << 20, seed=0):
    """Rows for the float64 functions, which call libm's ``tanh``."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.uniform(-20, 20, n), np.logspace(-300, 0, n // 4),
                        -np.logspace(-300, 0, n // 4)])
    extended = np.finfo(np.longdouble).nmant >= 63
    if not extended:  # long double is float64 here: mpmath, on fewer points
        import mpmath

        x = x[::16]
    rows = []
    for which in (0, 1):
        y = np.empty_like(x)
        direct(which, x, y)
        if extended:
            xl = x.astype(np.longdouble)
            ref = np.tanh(xl) if which == 0 else 1 / (1 + np.exp(-xl))
        else:
            f = mpmath.tanh if which == 0 else (lambda v: 1 / (1 + mpmath.exp(-v)))
            ref = np.array([f(mpmath.mpf(float(v))) for v in x], dtype=np.longdouble)
        if which == 0:
            s = Stats()
            s.add(ulps(y, ref, np.float64), x)
            rows.append(s.row("float64 tanh (libm), random in [-20, 20] and 1e-300..1 "
                              "log-spaced, both signs"))
        else:  # 0.5 tanh(x/2) + 0.5: ulp for x >= 0, absolute error below
            pos = x >= 0
            s = Stats()
            s.add(ulps(y[pos], ref[pos], np.float64), x[pos])
            rows.append(s.row("float64 sigmoid (0.5 tanh(x/2) + 0.5), the same inputs >= 0"))
            s = Stats()
            s.add(np.abs(y - ref).astype(np.float64), x)
            rows.append(s.row("float64 sigmoid, all those inputs: absolute error", "abs."))
    return rows


# timing ------------------------------------------------------------------------------


def _runner(helper):
    @njit(**NOCACHE)
    def run(a, g, reps):
        for _ in range(reps):
            helper(a, g)

    return run


def timing(rounds=31, target=0.01):
    rows = ["| loop | n | old, ns per value | new, ns per value | new / old (median of pairs) |",
            "|---|---|---|---|---|"]
    rng = np.random.default_rng(0)
    for name, old, new in (("add_tanh", old_add_tanh, add_tanh),
                           ("add_sigmoid", old_add_sigmoid, add_sigmoid)):
        runs = {"old": _runner(old), "new": _runner(new)}
        for n in (1024, 256):
            a = rng.normal(size=n).astype(np.float32) * np.float32(0.1)
            g0 = rng.normal(size=n).astype(np.float32) * np.float32(3)
            for r in runs.values():
                r(a, g0.copy(), 10)
            t = time.perf_counter()
            runs["new"](a, g0.copy(), 1000)
            reps = max(10, int(target / max((time.perf_counter() - t) / 1000, 1e-9)))
            times = {"old": [], "new": []}
            for i in range(rounds):
                order = ("old", "new") if i % 2 else ("new", "old")
                for who in order:
                    g = g0.copy()
                    t = time.perf_counter()
                    runs[who](a, g, reps)
                    times[who].append((time.perf_counter() - t) / reps / n * 1e9)
            o, w = np.array(times["old"]), np.array(times["new"])
            rows.append(f"| {name} | {n} | {np.median(o):.3f} | {np.median(w):.3f} | "
                        f"{np.median(w / o):.2f} |")
    return rows


def timing_float64(n=1024, reps=200, rounds=15):
    """ns per value of the float64 ``tanh_`` (libm) in a loop: median of ``rounds`` blocks."""
    x = np.random.default_rng(0).normal(size=n) * 3
    out = np.empty_like(x)
    direct(0, x, out)
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            direct(0, x, out)
        times.append((time.perf_counter() - t) / reps / n * 1e9)
    return float(np.median(times))


def vector_width() -> dict:
    """name -> the float32 lanes of the widest division in its loop's machine code."""
    found = {}
    for name, loop in (("tanh_", loop_tanh), ("sigmoid_", loop_sigmoid)):
        x = np.zeros(64, np.float32)
        loop(x, x.copy())
        asm = next(a for sig, a in loop.inspect_asm().items() if sig[0].dtype == types.float32)
        lines = [ln for ln in asm.splitlines() if "vdivps" in ln or "divss" in ln]
        found[name] = next((w for w, reg in ((16, "%zmm"), (8, "%ymm"), (4, "%xmm"))
                            if any("vdivps" in ln and reg in ln for ln in lines)), 1)
    return found


def cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                  if ln.startswith("model name")), platform.machine())
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines()
                      if ln.startswith("flags")), []))
    have = {f: f in flags for f in ("avx512f", "avx512_bf16")}
    have["amx"] = any(f.startswith("amx") for f in flags)
    return f"{model}; " + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in have.items())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exhaustive", action="store_true",
                    help="every float32 of the ranges instead of every 128th (minutes)")
    ap.add_argument("--no-timing", action="store_true")
    args = ap.parse_args(argv)
    print(f"CPU: {cpu()}")
    print(f"Python {platform.python_version()}, NumPy {np.__version__}\n")
    rows, checks = float32_accuracy(1 if args.exhaustive else 128)
    print("| function and inputs | values | max error | mean error |\n|---|---|---|---|")
    for r in rows + float64_accuracy():
        print(r)
    print()
    for c in checks:
        print(c)
    if not args.no_timing:
        print()
        for r in timing():
            print(r)
        print(f"\nfloat64 tanh_ (libm, one call per value): {timing_float64():.2f} ns per value")
    lanes = ", ".join(f"{k} {v} float32 per division" for k, v in vector_width().items())
    print(f"vectorised loops: {lanes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
