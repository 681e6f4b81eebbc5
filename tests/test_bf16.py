"""bf16 products: rounding, the bf16 tile, the layers' bf16 path and the precision setting.

The bf16 path rounds both operands of every matrix product to bfloat16 (8 significant
bits: unit roundoff u = 2**-8) and sums in float32; everything else is float32. On a CPU
with AVX512_BF16 the tile uses the instruction; elsewhere the tests run the same maths
in generic instructions (``bf16_instructions("emulate")``), so every check here runs on
every CPU, and the native tile is checked against the emulated one where it exists.

Tolerances, from the rounding:

* a float32 sum of K products of bf16 values (each exact in float32: 8 x 8 bits) is
  within gamma_K = K * 2**-24 / (1 - K * 2**-24) of sum |a_k b_k| (Higham, Accuracy and
  Stability of Numerical Algorithms, 3.1); the tile is held to that bound.
* the layers' bf16 path against a float64 emulation that rounds the same operands at the
  same points: the two differ by float32 arithmetic only (sums, tanh, sigmoid: ~1e-7
  relative per operation, growing over steps), so they agree to 1e-4 of the largest
  value, twenty times below the gap between the bf16 and the fp32 paths (which the tests
  also assert, so a path that forgot to round would fail).
* against the fp32 path: each product is off by at most 2u * sum |a_k b_k| (u = 2**-8),
  so outputs and gradients are compared to 3 % of their largest value over 12 steps.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest

import rnnlab
from rnnlab import engine, kernels
from rnnlab.cells import LAYERS

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")

U32 = 2.0 ** -24  # float32 unit roundoff


def bf(a) -> np.ndarray:
    """``a`` rounded to float32, then to bf16 (nearest, ties to even), as float64."""
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    nan = np.isnan(np.asarray(a, np.float32))
    r = np.where(nan, 0x7FC00000, r)
    return r.astype(np.uint32).view(np.float32).astype(np.float64)


@pytest.fixture
def emulate():
    with kernels.bf16_instructions("emulate"):
        yield


# rounding --------------------------------------------------------------------------------


def test_rounding_matches_ml_dtypes_on_every_kind_of_float32():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    from rnnlab.kernels._jit import to_bf16_pairs

    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    special = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7F7FFFFF, 0x00000001,
                        0x007FFFFF, 0x3F808000, 0x3F818000, 0x3F80FFFF, 0x7F7F8000,
                        0x7F800001, 0xFF800001, 0x7FC00000],
                       np.uint32)  # zeros, infinities, the largest, subnormals, ties, NaNs
                                   # whose payload lies in the bits rounding drops
    bits = np.concatenate([special, bits])
    x = bits.view(np.float32)
    x = x[:x.size // 2 * 2].reshape(1, -1)
    pairs = np.empty((1, x.shape[1] // 2), np.uint32)
    to_bf16_pairs(x, pairs)
    got = np.stack([pairs & 0xFFFF, pairs >> 16], axis=-1).reshape(-1).astype(np.uint16)
    with np.errstate(invalid="ignore"):
        want = x.reshape(-1).astype(ml_dtypes.bfloat16).view(np.uint16)
    finite = np.isfinite(x.reshape(-1)) | np.isinf(x.reshape(-1))
    assert np.array_equal(got[finite], want[finite])
    nan = ~finite
    assert nan.any()
    assert np.isnan(got[nan].astype(np.uint32).__lshift__(16).view(np.float32)).all()


def test_odd_k_pads_with_zero():
    from rnnlab.kernels._jit import to_bf16_pairs

    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    out = np.empty((1, 2), np.uint32)
    to_bf16_pairs(x, out)
    assert out[0, 1] >> 16 == 0 and (out[0, 1] & 0xFFFF) << 16 == np.float32(3).view(np.uint32)


@pytest.mark.parametrize("K,M", [(1, 1), (2, 3), (7, 5), (64, 33), (255, 17)])
def test_row_pairs_are_the_pairs_of_the_transpose(K, M):
    from rnnlab.kernels._jit import to_bf16_pairs, to_bf16_row_pairs

    A = np.random.default_rng(K + M).standard_normal((K, M)).astype(np.float32)
    want = np.empty((M, (K + 1) // 2), np.uint32)
    to_bf16_pairs(np.ascontiguousarray(A.T), want)
    got = np.full(((K + 1) // 2, M), 0xDEADBEEF, np.uint32)
    to_bf16_row_pairs(A, got, 2)
    assert np.array_equal(got.T, want)


# the tile ------------------------------------------------------------------------------------


@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (7, 33, 31), (8, 64, 32), (17, 256, 100),
                                   (32, 255, 1024), (3, 2048, 40)])
@pytest.mark.parametrize("trans_a", [False, True])
def test_tile_is_the_exact_product_of_the_rounded_operands(emulate, M, K, N, trans_a):
    rng = np.random.default_rng(M * K + N)
    A = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    B = rng.standard_normal((K, N)).astype(np.float32)
    got = kernels.fast_layers().matmul_bf16(A, B, trans_a=trans_a)
    Ar, Br = bf(A), bf(B)
    exact = (Ar.T if trans_a else Ar) @ Br
    bound = K * U32 / (1 - K * U32) * (np.abs(Ar.T if trans_a else Ar) @ np.abs(Br))
    assert got.dtype == np.float32
    assert (np.abs(got - exact) <= bound + 1e-30).all()
    # and it did round: the fp32 product differs by far more than the bound somewhere
    fp = (A.T if trans_a else A).astype(np.float64) @ B
    assert K < 4 or (np.abs(fp - exact) > bound).any()


def test_native_tile_is_compiled_with_the_instruction_for_a_cpu_that_has_it():
    from rnnlab.kernels import tile

    asm = tile.assembly(("tile_bf16",), "sapphirerapids")
    assert len(re.findall(r"vdpbf16ps", asm)) >= 8
    assert "vdpbf16ps" not in tile.assembly(("tile_bf16e",), "sapphirerapids")
    assert tile.has_bf16("+avx2,+avx512bf16") and not tile.has_bf16("+avx2,-avx512bf16")
    assert "tile_bf16" not in tile.functions("+avx2,-avx512bf16")


@pytest.mark.skipif(not kernels.bf16_native(), reason="this CPU has no AVX512_BF16")
def test_native_tile_agrees_with_the_emulated_one():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((40, 300)).astype(np.float32)
    B = rng.standard_normal((300, 70)).astype(np.float32)
    native = kernels.fast_layers().matmul_bf16(A, B)
    with kernels.bf16_instructions("emulate"):
        emulated = kernels.fast_layers().matmul_bf16(A, B)
    bound = 2 * 300 * U32 * (np.abs(bf(A)) @ np.abs(bf(B)))  # two float32 orders of summing
    assert (np.abs(native - emulated) <= bound).all()


# detection and the setting ---------------------------------------------------------------------


def test_forcing_the_instructions_off_makes_auto_fp32_and_bf16_warn_once():
    with kernels.bf16_instructions("off"):
        assert kernels.bf16_native() is None and not kernels.bf16_available()
        assert engine.resolved_precision("auto") == "fp32"
        engine._noted.discard("bf16")
        with pytest.warns(RuntimeWarning, match="precision bf16 asked for"):
            assert engine.resolved_precision("bf16") == "fp32"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert engine.resolved_precision("bf16") == "fp32"  # said once only
        assert engine.precision_record("bf16") == {"asked": "bf16", "computes_in": "fp32",
                                                   "bf16_instructions": None}


def test_emulation_runs_bf16_when_asked_but_auto_only_with_the_instructions(emulate):
    assert engine.resolved_precision("bf16") == "bf16"
    assert engine.resolved_precision("auto") == "fp32"  # no native instructions counted
    assert engine.resolved_precision("bf16", np.float64) == "fp32"  # float64 stays exact
    with kernels.use_fast(False):
        assert engine.resolved_precision("bf16", warn=False) == "fp32"  # no kernel, no bf16


def test_bad_precision_is_refused_in_one_line():
    expected = r"unknown precision 'fp16'; expected one of \['fp32', 'bf16', 'auto'\]"
    with pytest.raises(ValueError, match=expected):
        rnnlab.Network(3, 4, 2, precision="fp16")
    net = rnnlab.Network(3, 4, 2)
    with pytest.raises(ValueError, match="precision"):
        net.precision = "half"
    with pytest.raises(ValueError, match="precision"):
        rnnlab.Trainer(net, precision=16)


def test_precision_is_not_part_of_the_model(tmp_path):
    net = rnnlab.Network(3, 4, 2, precision="bf16", seed=0)
    assert net.precision == "bf16" and "precision" not in net.config
    net.save(tmp_path / "m.rnnlab")
    assert rnnlab.load(tmp_path / "m.rnnlab").precision == "fp32"


def test_fp32_and_switched_off_bf16_are_bit_for_bit_the_default():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 9, 6)).astype(np.float32)
    y = rng.integers(0, 3, (5, 9))
    outs = []
    for precision, mode in (("fp32", None), ("auto", "off"), ("bf16", "off")):
        net = rnnlab.Network(6, 16, 3, cell="lstm", seed=3, precision=precision)
        with kernels.bf16_instructions(mode), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = net.loss_and_grad(x, y)
        outs.append(r)
    for r in outs[1:]:
        assert r.loss == outs[0].loss
        assert all(np.array_equal(r.grads[k], outs[0].grads[k]) for k in r.grads)


# the layers' bf16 path ------------------------------------------------------------------------


def _sig(a):
    return 0.5 * np.tanh(0.5 * a) + 0.5


def lstm_emulated(p, x, dy):
    """One LSTM layer (gates i, f, g, o) in float64 with the operands of every product
    rounded to bf16 where the bf16 kernels round them; ``x`` (T, B, D), ``dy`` (T, B, H).
    Returns ``(hs[1:], grads, dx)``."""
    W_x, W_h, b = (p[k].astype(np.float64) for k in ("W_x", "W_h", "b"))
    T, B, _ = x.shape
    H = W_h.shape[0]
    h, c = np.zeros((B, H)), np.zeros((B, H))
    hs, cs, gs = [h], [c], []
    for t in range(T):
        a = bf(x[t]) @ bf(W_x) + bf(h) @ bf(W_h) + b
        g = _sig(a)
        g[:, 2 * H:3 * H] = np.tanh(a[:, 2 * H:3 * H])
        i, f, gg, o = np.split(g, 4, axis=1)
        c = f * c + i * gg
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
        gs.append(g)
    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dx = np.zeros(x.shape)
    dh, dc = np.zeros((B, H)), np.zeros((B, H))
    for t in range(T - 1, -1, -1):
        dh = dh + dy[t]
        i, f, gg, o = np.split(gs[t], 4, axis=1)
        tc = np.tanh(cs[t + 1])
        dc = dc + dh * o * (1 - tc * tc)
        da = np.concatenate([dc * gg * i * (1 - i), dc * cs[t] * f * (1 - f),
                             dc * i * (1 - gg * gg), dh * tc * o * (1 - o)], axis=1)
        dW_h += bf(hs[t]).T @ bf(da)
        dW_x += bf(x[t]).T @ bf(da)
        db += da.sum(axis=0)
        dx[t] = bf(da) @ bf(W_x).T
        dh = bf(da) @ bf(W_h).T
        dc = dc * f
    return np.stack(hs[1:]), {"W_x": dW_x, "W_h": dW_h, "b": db}, dx


def elman_emulated(p, x, dy):
    W_x, W_h, b = (p[k].astype(np.float64) for k in ("W_x", "W_h", "b"))
    T, B, _ = x.shape
    H = W_h.shape[0]
    hs = [np.zeros((B, H))]
    for t in range(T):
        hs.append(np.tanh(bf(x[t]) @ bf(W_x) + bf(hs[-1]) @ bf(W_h) + b))
    g = {k: np.zeros_like(v) for k, v in (("W_x", W_x), ("W_h", W_h), ("b", b))}
    dx, dh = np.zeros(x.shape), np.zeros((B, H))
    for t in range(T - 1, -1, -1):
        da = (dh + dy[t]) * (1 - hs[t + 1] ** 2)
        g["W_h"] += bf(hs[t]).T @ bf(da)
        g["W_x"] += bf(x[t]).T @ bf(da)
        g["b"] += da.sum(axis=0)
        dx[t] = bf(da) @ bf(W_x).T
        dh = bf(da) @ bf(W_h).T
    return np.stack(hs[1:]), g, dx


def _relative(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


@pytest.mark.parametrize("cell,emulated", [("lstm", lstm_emulated), ("elman", elman_emulated)])
@pytest.mark.parametrize("B", [1, 6])
def test_bf16_layer_rounds_exactly_where_the_emulation_does(emulate, cell, emulated, B):
    rng = np.random.default_rng(4)
    T, D, H = 12, 10, 24
    layer = LAYERS[cell](D, H, seed=5)
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    dy = rng.standard_normal((B, T, H)).astype(np.float32)
    p = {k[3:]: v for k, v in layer.params.items()}
    y_ref, g_ref, dx_ref = emulated(p, x.transpose(1, 0, 2), dy.transpose(1, 0, 2))
    y32, _, c32 = layer.forward(x)
    g32, dx32, _ = layer.backward(c32, dy)
    layer.precision = "bf16"
    y, _, cache = layer.forward(x)
    g, dx, _ = layer.backward(cache, dy)
    assert cache.layers[0].saved.bf16
    close = 1e-4
    checks = [(y.transpose(1, 0, 2), y_ref, y32.transpose(1, 0, 2)),
              (dx.transpose(1, 0, 2), dx_ref, dx32.transpose(1, 0, 2))]
    checks += [(g[f"l0.{k}"], g_ref[k], g32[f"l0.{k}"]) for k in g_ref]
    for got, ref, fp32 in checks:
        assert _relative(got, ref) < close
        assert _relative(got, fp32) < 0.03
    # the fp32 path is visibly elsewhere: the check above can tell the two apart
    assert max(_relative(fp32, ref) for _, ref, fp32 in checks) > 20 * close


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman"])
def test_bf16_path_follows_fp32_with_lengths_resets_ids_and_layers(emulate, cell):
    rng = np.random.default_rng(6)
    B, T, V, H = 7, 15, 11, 40
    ids = rng.integers(0, V, (B, T))
    lengths = rng.integers(1, T + 1, B)
    reset = rng.random((B, T)) < 0.1
    dy = rng.standard_normal((B, T, H)).astype(np.float32)
    layer = LAYERS[cell](V, H, num_layers=2, seed=7)
    runs = {}
    for precision in ("fp32", "bf16"):
        layer.precision = precision
        y, state, cache = layer.forward(ids, lengths=lengths, reset=reset)
        grads, _, d0 = layer.backward(cache, dy)
        runs[precision] = (y, grads)
    (y32, g32), (y16, g16) = runs["fp32"], runs["bf16"]
    assert _relative(y16, y32) < 0.03
    for k in g32:
        assert _relative(g16[k], g32[k]) < 0.05, k
    assert _relative(y16, y32) > 1e-5  # it did compute in bf16
    pad = np.arange(T)[None, :] >= lengths[:, None]
    assert (y16[pad] == 0).all()


def test_bf16_inference_matches_bf16_forward(emulate):
    rng = np.random.default_rng(8)
    net = rnnlab.Network(5, 32, 4, cell="gru", seed=1, precision="bf16")
    x = rng.standard_normal((3, 20, 5)).astype(np.float32)
    z, _, _ = net.forward(x)
    zi, _ = net.infer(x)
    assert np.array_equal(z, zi)
    net.precision = "fp32"
    assert 1e-6 < _relative(zi, net.infer(x)[0]) < 0.03


def test_head_products_run_in_bf16_and_backward_follows_forward(emulate):
    rng = np.random.default_rng(9)
    net = rnnlab.Network(6, 32, 50, cell="lstm", seed=2, precision="bf16")
    x = rng.standard_normal((4, 10, 6)).astype(np.float32)
    z, _, cache = net.forward(x)
    assert cache.bf16
    W = net.params["head.W_y"]
    h = cache.h.astype(np.float64)
    exact = bf(h) @ bf(W) + net.params["head.b_y"]
    assert _relative(z.reshape(-1, 50), exact) < 1e-5
    net.precision = "fp32"  # a change after forward does not change that forward's backward
    dz = rng.standard_normal(z.shape).astype(np.float32)
    grads, _, _ = net.backward(cache, dz)
    want = bf(h).T @ bf(dz.reshape(-1, 50))
    assert _relative(grads["head.W_y"], want) < 1e-5


def test_float64_network_ignores_bf16_and_stays_exact(emulate):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 6, 4))
    y = rng.integers(0, 3, (3, 6))
    a = rnnlab.Network(4, 8, 3, seed=0, dtype=np.float64).loss_and_grad(x, y)
    b = rnnlab.Network(4, 8, 3, seed=0, dtype=np.float64, precision="bf16").loss_and_grad(x, y)
    assert a.loss == b.loss
    assert all(np.array_equal(a.grads[k], b.grads[k]) for k in a.grads)


def test_bf16_training_learns_like_fp32(emulate):
    """A seeded copy task: both precisions learn it; bf16 ends near fp32."""
    rng = np.random.default_rng(11)
    V, T = 6, 12
    ids = rng.integers(0, V, (64, T))
    y = np.roll(ids, 1, axis=1)  # the previous token
    losses = {}
    for precision in ("fp32", "bf16"):
        net = rnnlab.Network(V, 32, V, cell="lstm", seed=0)
        trainer = rnnlab.Trainer(net, "adam", 1e-2, clip_norm=1.0, log=None, progress=False,
                                 precision=precision)
        for _ in range(150):
            info, _ = trainer.train_step(ids, y)
        losses[precision] = info.loss
    assert losses["fp32"] < 0.3 and losses["bf16"] < 0.3  # from ln 6 = 1.79
    assert abs(losses["bf16"] - losses["fp32"]) < 0.01  # 0.1325 both (floor: ln 6 / 12)


# where the setting shows -------------------------------------------------------------------


@pytest.mark.parametrize("with_torch", [False, True])
def test_bench_has_bf16_columns_when_asked(emulate, tmp_path, monkeypatch, with_torch):
    import rnnlab.bench
    from rnnlab.bench import run_bench, timing

    if with_torch:
        pytest.importorskip("torch")
        # the bf16 roof on a small product: PyTorch emulates bf16 on a CPU without it
        monkeypatch.setattr(rnnlab.bench, "bf16_gemm_peak",
                            lambda torch: timing.bf16_gemm_peak(torch, n=64))
    result = run_bench(cells=("gru",), shapes=((3, 6, 5, 8),), repeats=1, warmup=1,
                       memory=False, compile_time=False, torch=with_torch, bf16=True,
                       out_dir=str(tmp_path))
    row = result["rows"][0]
    assert row["train"]["rnnlab_bf16_ms"] > 0 and row["infer"]["rnnlab_bf16_ms"] > 0
    if with_torch:  # each row's share of the bf16 roof, for both libraries
        peak = result["machine"]["bf16_gemm_peak_gflops"]
        assert set(peak) == {"torch", "rnnlab", "best"} and peak["best"] > 0
        for kind in ("train", "infer"):
            for lib in ("rnnlab_bf16", "torch_bf16"):
                share = row[kind][f"{lib}_fraction_of_bf16_peak"]
                assert share == pytest.approx(row[kind][f"{lib}_gflops"] / peak["best"])
    md = (tmp_path / "bench.md").read_text()
    assert 'bf16 (rnnlab precision="bf16"' in md and "| gru | 3,6,5,8 |" in md
    assert "bf16_instructions" in result["machine"]


def test_bench_refuses_bf16_columns_where_bf16_cannot_run():
    from rnnlab.bench import run_bench

    with kernels.bf16_instructions("off"), pytest.raises(ValueError, match="bf16 columns"):
        run_bench(cells=("gru",), shapes=((3, 6, 5, 8),), repeats=1, memory=False,
                  compile_time=False, torch=False, bf16=True, out_dir=None)


def test_cli_records_the_precision_and_notes_when_bf16_is_absent(tmp_path, capsys):
    import json

    from rnnlab.cli import main

    data = tmp_path / "text.txt"
    data.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    with kernels.bf16_instructions("off"):
        code = main(["train", "--data", str(data), "--steps", "2", "--hidden", "8",
                     "--batch", "2", "--bptt", "8", "--precision", "bf16",
                     "--out", str(tmp_path / "run")])
    assert code == 0
    out = capsys.readouterr().out
    assert "precision bf16 asked for" in out and "fp32) on" in out
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["precision"] == {"asked": "bf16", "computes_in": "fp32",
                                 "bf16_instructions": None}
    assert 'precision = "bf16"' in (tmp_path / "run" / "config.toml").read_text()


def test_the_environment_sets_the_mode_of_a_whole_process():
    import subprocess
    import sys

    code = ("from rnnlab import engine, kernels; "
            "print(kernels.bf16_native(), engine.resolved_precision('bf16', warn=False))")
    runs = {}
    for mode in ("off", "emulate", "sideways"):
        runs[mode] = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                    text=True, env={**os.environ, "RNNLAB_BF16": mode})
    assert runs["off"].stdout.split() == ["None", "fp32"]
    assert runs["emulate"].stdout.split() == ["None", "bf16"]
    assert runs["sideways"].returncode != 0
    assert "RNNLAB_BF16='sideways': expected 'off' or 'emulate'" in runs["sideways"].stderr
