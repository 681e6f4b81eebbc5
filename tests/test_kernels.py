"""The fused kernels against the plain NumPy reference, on every cell and option.

float64 must agree to 1e-10 absolute (the kernels use the same formulas, so the only
differences are the order of floating-point operations); float32 to a tolerance that
allows the float32 kernels' own tanh and sigmoid (within 2 ulp) carried through time.
"""

import os
import sys

import numpy as np
import pytest

import rnnlab
from rnnlab import engine, kernels, recurrent

pytest.importorskip("numba")

CELLS = [
    ("elman", {"activation": "tanh"}),
    ("elman", {"activation": "relu"}),
    ("elman", {"activation": "sigmoid"}),
    ("lstm", {}),
    ("gru", {}),
]
CELL_IDS = ["elman-tanh", "elman-relu", "elman-sigmoid", "lstm", "gru"]
LAYERS = {"elman": rnnlab.Elman, "lstm": rnnlab.LSTM, "gru": rnnlab.GRU}
TOL = {np.float64: dict(rtol=0, atol=1e-10), np.float32: dict(rtol=2e-4, atol=2e-5)}


def parts(state):
    return list(state) if isinstance(state, tuple) else [state]


def random_state(layer, B, rng):
    shape = (layer.num_layers, B, layer.hidden_size)
    s = [rng.normal(size=shape).astype(layer.dtype) for _ in range(layer.n_state)]
    return s[0] if len(s) == 1 else tuple(s)


def run(layer, x, h0, lengths, dy, dstate, fast):
    """Everything the public API computes, on the path chosen by ``fast``."""
    with kernels.use_fast(fast):
        y, state, cache = layer.forward(x, h0, lengths=lengths)
        grads, dx, d0 = layer.backward(cache, dy, dstate)
        y_step, state_step = layer.step(x[:, 0], h0)
        y_inf, state_inf = layer.infer(x, h0, lengths=lengths)
    # inference runs the same arithmetic without the tape: the same values to the bit
    np.testing.assert_array_equal(y_inf, y)
    for a, b in zip(parts(state_inf), parts(state), strict=True):
        np.testing.assert_array_equal(a, b)
    saved = cache.layers[0].saved
    assert isinstance(saved, kernels.Tape) == fast, "the path that ran is not the one asked for"
    out = {"y": y, "dx": dx, "y_step": y_step}
    out.update({f"state{i}": s for i, s in enumerate(parts(state))})
    out.update({f"dstate0_{i}": s for i, s in enumerate(parts(d0))})
    out.update({f"step_state{i}": s for i, s in enumerate(parts(state_step))})
    out.update({f"grad {k}": v for k, v in grads.items()})
    return out


def case(cell, opts, num_layers, dtype, with_lengths, B=4, T=6, D=3, H=5, seed=0):
    rng = np.random.default_rng(seed)
    layer = LAYERS[cell](D, H, num_layers, seed=seed + 1, dtype=dtype, **opts)
    x = rng.normal(size=(B, T, D)).astype(dtype)
    lengths = rng.integers(0, T + 1, size=B) if with_lengths else None
    if with_lengths:
        lengths[0], lengths[-1] = T, 0  # a full sequence and an empty one
    dy = rng.normal(size=(B, T, H)).astype(dtype)
    return layer, x, random_state(layer, B, rng), lengths, dy, random_state(layer, B, rng)


@pytest.mark.parametrize("cell,opts", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_fast_path_matches_plain(cell, opts, num_layers, with_lengths, dtype):
    args = case(cell, opts, num_layers, dtype, with_lengths)
    plain = run(*args, fast=False)
    fast = run(*args, fast=True)
    assert plain.keys() == fast.keys()
    for name in plain:
        assert fast[name].dtype == plain[name].dtype, name
        np.testing.assert_allclose(fast[name], plain[name], err_msg=name, **TOL[dtype])


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("threads", [1, 3])
def test_inference_keeps_one_step_of_gates(cell, threads, monkeypatch):
    """``infer`` hands the kernels one step's gate buffer (and the LSTM two cell states)
    instead of T steps' worth, keeps no cache, and gets forward's values."""
    from rnnlab.kernels import blas, layers

    if blas.tile_for(np.float32) == 0:
        pytest.skip("the tile did not compile here")
    seen = []
    real = layers._rows

    def spy(module, kernel, chunks, B, *args):
        seen.append([a.shape for a in args if isinstance(a, np.ndarray) and a.ndim == 3])
        return real(module, kernel, chunks, B, *args)

    monkeypatch.setattr(layers, "_rows", spy)
    monkeypatch.setattr(blas, "PARALLEL_FROM", 0)
    layer, x, h0, lengths, _, _ = case(cell, {}, 2, np.float32, True, B=7, T=9, H=6)
    with kernels.threads(threads):
        y, state, _ = layer.forward(x, h0, lengths=lengths)
        n = len(seen)
        y_inf, state_inf = layer.infer(x, h0, lengths=lengths)
    G = {"elman": 1, "lstm": 4, "gru": 3}[cell]
    T, B, H = 9, 7, 6
    # the kernels' 3-D arguments: packed W_h, x, packed W_x, gates, states (and the
    # LSTM's cell states or the GRU's n blocks)
    assert [shapes[3] for shapes in seen[:n]] == [(T, B, G * H)] * 2  # forward: all steps
    for shapes in seen[n:]:  # inference, each layer of the stack
        assert shapes[3] == (1, B, G * H) and shapes[4] == (T + 1, B, H)
        if cell != "elman":
            assert shapes[5] == ((2, B, H) if cell == "lstm" else (1, B, H))
    np.testing.assert_array_equal(y_inf, y)
    for a, b in zip(parts(state_inf), parts(state), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell,opts", [CELLS[0], CELLS[3], CELLS[4]], ids=["elman", "lstm", "gru"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_batch_one_projects_the_inputs_before_the_loop(cell, opts, with_lengths, dtype,
                                                      monkeypatch):
    """At batch 1 the tile computes ``x W_x`` for all steps before the loop (one row per
    step would read all of ``W_x`` per row); at batch 2 inside it. Both agree with the
    plain path, and inference keeps T steps of gates at batch 1 unless they would take
    more than ``INPUT_BEFORE_LOOP_MAX_BYTES``."""
    from rnnlab.kernels import blas, layers

    if blas.tile_for(np.float32) == 0:
        pytest.skip("the tile did not compile here")
    seen = []
    real = layers._rows

    def spy(module, kernel, chunks, B, *args):
        if kernel == "forward":
            seen.append((B, [a.shape for a in args if isinstance(a, np.ndarray) and a.ndim == 3]))
        return real(module, kernel, chunks, B, *args)

    monkeypatch.setattr(layers, "_rows", spy)
    for B in (1, 2):
        args = case(cell, opts, 2, dtype, with_lengths, B=B, T=7)
        fast = run(*args, fast=True)
        plain = run(*args, fast=False)
        for name in plain:
            np.testing.assert_allclose(fast[name], plain[name], err_msg=name, **TOL[dtype])
    # per call: packed W_h, x, packed W_x (empty when projected before), gates, states...
    assert {B for B, _ in seen} == {1, 2}
    for B, shapes in seen:
        assert (shapes[2][0] == 0) == (B == 1)
        assert shapes[3][0] == 7 or B == 2  # batch 1: T steps of x W_x, also for infer
    # a long sequence's inference keeps one step's buffer instead
    monkeypatch.setattr(layers, "INPUT_BEFORE_LOOP_MAX_BYTES", 0)
    seen.clear()
    layer, x, h0, lengths, _, _ = case(cell, opts, 1, dtype, with_lengths, B=1, T=7)
    y, state, _ = layer.forward(x, h0, lengths=lengths)
    y_inf, state_inf = layer.infer(x, h0, lengths=lengths)
    (_, fwd), (_, inf) = seen
    assert fwd[2][0] == 0 and fwd[3][0] == 7  # training projects before the loop still
    assert inf[2][0] > 0 and inf[3][0] == 1
    np.testing.assert_allclose(y_inf, y, **TOL[dtype])
    for a, b in zip(parts(state_inf), parts(state), strict=True):
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("cell,opts", [CELLS[0], CELLS[3], CELLS[4]], ids=["elman", "lstm", "gru"])
@pytest.mark.parametrize("path", ["plain", "fast", "parts"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_backward_without_input_gradient(cell, opts, path, num_layers, monkeypatch):
    """``input_grad=False`` returns dx None and the same weight and state gradients, on the
    plain path, the fast one, and with the products split over threads (no dx rows)."""
    from rnnlab.kernels import blas, layers

    seen = []
    real = layers.gradients_par
    monkeypatch.setattr(layers, "gradients_par", lambda *a: seen.append(a[-2].shape[0])
                        or real(*a))
    if path == "parts":
        monkeypatch.setattr(blas, "PRODUCTS_PARALLEL_FROM", 0)
        monkeypatch.setattr(blas, "PRODUCTS_PARALLEL_FROM_ASLEEP", 0)
    layer, x, h0, lengths, dy, dstate = case(cell, opts, num_layers, np.float64, True)
    with kernels.use_fast(path != "plain"), kernels.threads(3 if path == "parts" else 1):
        _, _, cache = layer.forward(x, h0, lengths=lengths)
        g1, dx1, d1 = layer.backward(cache, dy, dstate)
        g2, dx2, d2 = layer.backward(cache, dy, dstate, input_grad=False)
    assert dx1.shape == x.shape and dx2 is None
    for name in g1:
        np.testing.assert_array_equal(g2[name], g1[name], err_msg=name)
    for a, b in zip(parts(d1), parts(d2), strict=True):
        np.testing.assert_array_equal(a, b)
    if path == "parts":  # per layer: dx rows with input_grad; the bottom one none without
        T, B = x.shape[1], x.shape[0]
        assert seen == [T * B] * num_layers + [T * B] * (num_layers - 1) + [0]


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_one_layer_step_is_one_kernel_call_and_agrees(cell, monkeypatch):
    """A one-layer ``step`` is one kernel call (``layers.step_one``) through the one
    streaming entry, and gives the plain path's values; a state in another dtype is
    converted first (the same values), and one holding NaN is named."""
    from rnnlab.kernels import layers

    calls = []
    real = layers.step_one
    monkeypatch.setattr(layers, "step_one", lambda *a, **k: calls.append(1) or real(*a, **k))
    layer, x, h0, _, _, _ = case(cell, {}, 1, np.float32, False, B=3)
    y1, s1 = layer.step(x[:, 0])  # state None
    y2, s2 = layer.step(x[:, 1], s1)
    assert len(calls) == 2
    with kernels.use_fast(False):
        p1, ps1 = layer.step(x[:, 0])
        p2, ps2 = layer.step(x[:, 1], ps1)
    assert len(calls) == 2  # the plain path calls no kernel
    for a, b in [(y1, p1), (y2, p2), *zip(parts(s2), parts(ps2), strict=True)]:
        np.testing.assert_allclose(a, b, **TOL[np.float32])
    wide = tuple(a.astype(np.float64) for a in parts(s1))
    y3, _ = layer.step(x[:, 1], wide if cell == "lstm" else wide[0])
    assert len(calls) == 3
    np.testing.assert_array_equal(y3, y2)
    bad = tuple(a.copy() for a in parts(s1))
    bad[0][0, 1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        layer.step(x[:, 1], bad if cell == "lstm" else bad[0])


@pytest.mark.parametrize("cell,opts", [CELLS[0], CELLS[3], CELLS[4]], ids=["elman", "lstm", "gru"])
def test_larger_batch_and_no_dy(cell, opts):
    """Many rows through BLAS; gradient from the final state only (``dy=None``)."""
    layer, x, h0, lengths, _, dstate = case(cell, opts, 1, np.float64, True, B=9, T=7, D=6, H=33)
    res = []
    for fast in (False, True):
        with kernels.use_fast(fast):
            _, state, cache = layer.forward(x, h0, lengths=lengths)
            grads, dx, d0 = layer.backward(cache, None, dstate)
        res.append([*parts(state), dx, *parts(d0), *(grads[k] for k in sorted(grads))])
    for a, b in zip(*res, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-10)


@pytest.mark.parametrize("cell,opts", [CELLS[1], CELLS[3], CELLS[4]], ids=["elman", "lstm", "gru"])
def test_loop_fallback_without_blas(cell, opts, monkeypatch):
    """When NumPy's BLAS cannot be found the kernels multiply in a compiled loop."""
    from rnnlab.kernels import layers

    args = case(cell, opts, 2, np.float64, True)
    plain = run(*args, fast=False)
    monkeypatch.setattr(layers, "gemm_for", lambda dtype: None)
    monkeypatch.setattr(layers, "tile_for", lambda dtype: 0)
    fast = run(*args, fast=True)
    for name in plain:
        np.testing.assert_allclose(fast[name], plain[name], err_msg=name, **TOL[np.float64])


def test_backward_follows_the_path_of_forward():
    layer, x, h0, lengths, dy, dstate = case("lstm", {}, 2, np.float64, True)
    with kernels.use_fast(False):
        _, _, plain_cache = layer.forward(x, h0, lengths=lengths)
    _, _, fast_cache = layer.forward(x, h0, lengths=lengths)
    g_plain = layer.backward(plain_cache, dy, dstate)[0]  # runs plain although fast is on
    with kernels.use_fast(False):
        g_fast = layer.backward(fast_cache, dy, dstate)[0]  # runs the kernel
    for k in g_plain:
        np.testing.assert_allclose(g_fast[k], g_plain[k], rtol=0, atol=1e-10)


def test_fast_argument_and_missing_numba(monkeypatch):
    layer = rnnlab.GRU(2, 3, seed=0)
    x = np.ones((2, 4, 2), np.float32)
    params = recurrent.layer_params(layer.params, 0)
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))
    state0 = (np.zeros((2, 3), np.float32),)
    _, _, cache = engine.layer_forward(layer.cell, params, xt, state0, None, None, fast=False)
    assert isinstance(cache.saved, list)
    _, _, cache = engine.layer_forward(layer.cell, params, xt, state0, None, None, fast=True)
    assert isinstance(cache.saved, kernels.Tape)
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    assert engine.kernel_of(layer.cell, fast=True) is None
    _, _, cache = layer.forward(x)
    assert isinstance(cache.layers[0].saved, list)


def test_unknown_cell_takes_the_plain_path():
    class MyCell(type(rnnlab.Elman(1, 1).cell)):
        pass

    assert engine.kernel_of(rnnlab.Elman(1, 1).cell, fast=True) == "elman"
    assert engine.kernel_of(MyCell("tanh"), fast=True) is None


def test_use_fast_and_threads_reject_bad_values():
    with pytest.raises(ValueError, match="True or False"):
        with kernels.use_fast("no"):
            pass
    with pytest.raises(ValueError, match="positive integer"):
        with kernels.threads(0):
            pass


def test_threads_context_restores_blas_setting():
    from rnnlab.kernels import blas

    before = blas.blas().get_threads()
    layer = rnnlab.LSTM(3, 8, seed=0)
    x = np.ones((2, 5, 3), np.float32)
    with kernels.threads(1):
        assert blas.allowed_threads() == 1
        assert blas.loop_threads(10**9) == 1
        if before is not None:
            assert blas.blas().get_threads() == 1
        y1 = layer.forward(x)[0]
    assert blas.blas().get_threads() == before
    np.testing.assert_array_equal(layer.forward(x)[0], y1)


@pytest.mark.parametrize("cell,opts", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_stream_matches_repeated_layer_step(cell, opts, fast, num_layers):
    """One layer takes the direct path to its kernel in both; two, the stack's."""
    layer, x, h0, _, _, _ = case(cell, opts, num_layers, np.float64, False)
    stream = rnnlab.Stream(layer, x.shape[0], h0, fast=fast)
    state = h0
    for t in range(x.shape[1]):
        y, state = layer.step(x[:, t], state)
        np.testing.assert_allclose(stream.step(x[:, t]), y, rtol=0, atol=1e-12)
    for a, b in zip(parts(stream.state), parts(state), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="x_t must have shape"):
        stream.step(x[:1, 0])


def test_keep_freed_memory_reports_whether_it_applied():
    assert kernels.keep_freed_memory() is True or not sys.platform.startswith("linux")
    assert kernels.freed_memory_kept() is kernels.keep_freed_memory()


BUILDS = """
import hashlib, numpy as np, rnnlab
rng = np.random.default_rng(0)
ids = rng.integers(0, 6, size=(4, 9))
digest = hashlib.sha256()
for cell in ("lstm", "gru"):
    for options in ({}, {"precision": "auto"}, {"layer_norm": True}):
        net = rnnlab.Network(6, 8, 6, cell=cell, seed=0, output="softmax", readout="all",
                             **options)
        _, grads = net.loss_and_grad(ids, ids)[:2]
        for k in sorted(grads):
            digest.update(np.ascontiguousarray(grads[k]).tobytes())
print(digest.hexdigest())
"""


def test_a_kernel_compiled_here_computes_what_its_cached_build_does(tmp_path):
    """The LSTM's and GRU's gradients (float32, bf16 where the CPU has it, layer norm) in
    a process that compiles the kernels and in one that loads them from the cache it
    wrote: bit for bit the same (with fastmath's ``reassoc`` they were not; see
    :data:`rnnlab.kernels._jit.JIT`)."""
    import subprocess

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    runs = [subprocess.run([sys.executable, "-c", BUILDS], env=env, capture_output=True,
                           text=True, timeout=600) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    assert any((tmp_path / "numba").rglob("*.nbc"))  # the first one compiled and cached
    assert runs[0].stdout == runs[1].stdout


PAGE_FAULTS = """
import json, resource, sys, numpy as np, rnnlab
from rnnlab import kernels
if sys.argv[1] == "keep":
    kernels.keep_freed_memory()
layer = rnnlab.LSTM(28, 128, seed=0)
x = np.random.default_rng(0).standard_normal((128, 28, 28)).astype(np.float32)
def step():
    y, _, cache = layer.forward(x)
    layer.backward(cache, dy=np.ones_like(y))
for _ in range(5):
    step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 10
print(json.dumps({"faults": faults, "kept": kernels.freed_memory_kept()}))
"""


def _faults(setting):
    import json
    import subprocess

    done = subprocess.run([sys.executable, "-c", PAGE_FAULTS, setting], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_kept_freed_memory_stops_the_steps_faulting():
    """An LSTM step at B=128, T=28, H=128 frees and allocates about 20 MB: with glibc's
    defaults each step faults those pages in again (about 2,700 faults per step measured;
    at least 300 asked here), kept they are reused (none measured; at most 20 asked)."""
    kept, system = _faults("keep"), _faults("system")
    assert kept["kept"] is True and system["kept"] is False
    assert kept["faults"] <= 20 and system["faults"] >= 300, (kept, system)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_bench_without_kept_memory_needs_a_process_that_did_not_keep_it():
    from rnnlab.bench import run_bench

    assert kernels.keep_freed_memory()
    with pytest.raises(ValueError, match="keep_freed_memory=False needs a process"):
        run_bench(cells=("elman",), shapes=((2, 3, 4, 5),), torch=False, memory=False,
                  compile_time=False, keep_freed_memory=False, out_dir=None)


@pytest.mark.parametrize("cell,opts", [CELLS[0], CELLS[3], CELLS[4]], ids=["elman", "lstm", "gru"])
def test_non_contiguous_parameters(cell, opts):
    """Parameters set by hand as transposed views still reach BLAS the right way round."""
    args = case(cell, opts, 2, np.float64, True)
    layer = args[0]
    for name, v in layer.params.items():
        if v.ndim == 2:
            layer.params[name] = np.asfortranarray(v)
    plain = run(*args, fast=False)
    fast = run(*args, fast=True)
    for name in plain:
        np.testing.assert_allclose(fast[name], plain[name], err_msg=name, **TOL[np.float64])


def _has_mkl():
    from rnnlab.kernels import blas

    return blas.mkl() is not None


@pytest.mark.skipif(not _has_mkl(), reason="Intel MKL (pip install mkl) not found")
@pytest.mark.parametrize("cell,opts", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_fast_path_on_mkl_matches_plain(cell, opts, n_threads):
    """With MKL serving the products (all of them on one thread) the results still agree."""
    from rnnlab.kernels import blas

    args = case(cell, opts, 2, np.float64, True, B=5, T=6, D=4, H=9)
    plain = run(*args, fast=False)
    with blas.use_blas("mkl"), kernels.threads(n_threads):
        fast = run(*args, fast=True)
    for name in plain:
        np.testing.assert_allclose(fast[name], plain[name], err_msg=name, **TOL[np.float64])


def test_use_blas_rejects_unknown_names():
    from rnnlab.kernels import blas

    with pytest.raises(ValueError, match="unknown BLAS"):
        with blas.use_blas("atlas"):
            pass


@pytest.mark.parametrize("cell,where", [(c, w) for c in LAYERS for w in ("x", "h")]
                         + [("lstm", "c")])
@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_step_and_stream_refuse_non_finite_input(cell, where, fast, bad, num_layers):
    """layer.step checks finiteness inside the step kernel; the error still names the value,
    and a Stream keeps its state when refusing."""
    layer = LAYERS[cell](3, 4, num_layers, seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3)).astype(np.float32)
    state = random_state(layer, 2, rng)
    st = parts(state)
    if where == "x":
        x[1, 2] = bad
        msg = r"x_t contains NaN or Inf \(first at index \(1, 2\)\)"
    else:
        st[0 if where == "h" else 1][num_layers - 1, 0, 3] = bad
        msg = rf"state.* contains NaN or Inf \(first at index \({num_layers - 1}, 0, 3\)\)"
    state = st[0] if layer.n_state == 1 else tuple(st)
    with kernels.use_fast(fast), pytest.raises(ValueError, match=msg):
        layer.step(x, state)
    if where == "x":
        stream = rnnlab.Stream(layer, 2, fast=fast)
        before = [s.copy() for s in parts(stream.state)]
        with pytest.raises(ValueError, match=msg):
            stream.step(x)
        for a, b in zip(parts(stream.state), before, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
def test_step_output_and_state_are_independent_and_follow_replaced_params(fast):
    layer = rnnlab.LSTM(3, 4, 2, seed=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    x, s0 = rng.normal(size=(2, 3)), random_state(layer, 2, rng)
    with kernels.use_fast(fast):
        y, (h, c) = layer.step(x, s0)
        np.testing.assert_array_equal(y, h[-1])
        y[:] = 7.0  # the output is the caller's own array, not a view of the state
        assert not np.any(h == 7.0)
        y1, _ = layer.step(x, s0)
        # a parameter replaced by a new (here non-contiguous) array is used at once ...
        layer.params["l1.W_h"] = np.asfortranarray(2 * layer.params["l1.W_h"])
        y2, _ = layer.step(x, s0)
        # ... and an in-place update too
        layer.params["l1.b"] += 1.0
        y3, _ = layer.step(x, s0)
    with kernels.use_fast(False):
        ref2, _ = layer.step(x, s0)
    assert not np.allclose(y1, y2) and not np.allclose(y2, y3)
    np.testing.assert_allclose(y3, ref2, rtol=0, atol=1e-12)


@pytest.fixture
def parallel_rows(monkeypatch):
    """Force the parallel time loops (3 runs of rows) and the backward's batched products
    in 3 parts; record the runs each loop took (``seen``) and the parts of each backward's
    products (``seen.products``)."""
    from rnnlab.kernels import blas, layers

    monkeypatch.setattr(blas, "PARALLEL_FROM", 0)
    monkeypatch.setattr(blas, "PRODUCTS_PARALLEL_FROM", 0)
    monkeypatch.setattr(blas, "_numba_threads", lambda: 3)

    class Seen(list):
        products: list

    seen = Seen()
    seen.products = []
    real, real_products = layers._rows, layers._products_par

    def spy(module, kernel, chunks, *args):
        seen.append(chunks)
        return real(module, kernel, chunks, *args)

    def spy_products(gemm, parts, *args):
        seen.products.append(parts)
        return real_products(gemm, parts, *args)

    monkeypatch.setattr(layers, "_rows", spy)
    monkeypatch.setattr(layers, "_products_par", spy_products)
    return seen


@pytest.mark.parametrize("cell,opts", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype,backend", [(np.float64, "tile"), (np.float32, "tile"),
                                           (np.float64, "numpy")], ids=["f64", "f32", "f64-blas"])
def test_parallel_runs_of_rows_match_plain(cell, opts, with_lengths, dtype, backend,
                                           parallel_rows):
    """The batch cut into 3 uneven runs of rows (7 rows), each on its own thread; the
    per-step products in the tile or in BLAS (then called from the threads at once); the
    weight gradients and dx in 3 parts of the T*B = 42 rows (partial sums added)."""
    args = case(cell, opts, 2, dtype, with_lengths, B=7, H=9)
    plain = run(*args, fast=False)
    with kernels.threads(3), kernels.use_blas(backend):
        fast = run(*args, fast=True)
    assert parallel_rows and set(parallel_rows) == {3}  # forward and backward of each layer
    assert parallel_rows.products == [3, 3]  # the backward of each layer
    for name in plain:
        np.testing.assert_allclose(fast[name], plain[name], err_msg=name, **TOL[dtype])


def test_parallel_loop_runs_serially_while_another_thread_is_inside(parallel_rows):
    """A second thread that finds the parallel loops busy runs its own loop serially."""
    from rnnlab.kernels import blas

    args = case("lstm", {}, 1, np.float64, True, B=7)
    with kernels.threads(3):
        with blas._parallel:
            busy = run(*args, fast=True)
        assert parallel_rows == [1, 1, 1] and parallel_rows.products == []  # with infer
        free = run(*args, fast=True)
        assert parallel_rows[3:] == [3, 3, 3] and parallel_rows.products == [3]
    for name in busy:
        np.testing.assert_allclose(busy[name], free[name], err_msg=name, rtol=0, atol=1e-12)
    assert not blas._parallel.locked()


@pytest.mark.parametrize("n,B,work,expect", [(1, 8, 10**9, 1), (2, 1, 10**9, 1), (2, 8, 10, 1),
                                             (2, 8, 10**9, 2), (4, 3, 10**9, 3)])
def test_loop_chunks_choice(n, B, work, expect, monkeypatch):
    """Parallel runs only with threads allowed, rows to share and enough work; at most
    one run per row; BLAS single-threaded inside and restored after."""
    from rnnlab.kernels import blas

    monkeypatch.setattr(blas, "_numba_threads", lambda: 8)
    before = blas.blas().get_threads()
    with kernels.threads(n):
        with blas.loop_chunks(1, B, work // B) as chunks:
            assert chunks == expect
            if chunks > 1 and before is not None:
                assert blas.blas().get_threads() == 1
        assert blas.blas().get_threads() in (None, n)
    assert blas.blas().get_threads() == before


@pytest.mark.parametrize("B,work,expect", [(1, 10**9, 1), (8, 10, 1), (8, 10**9, 2)])
def test_loop_chunks_without_blas_inside_leave_blas_alone(B, work, expect, monkeypatch):
    """A loop whose products run in the tile: the serial loop keeps BLAS's setting (the
    BLAS-per-step loop of a small product sets one thread), runs of rows as before."""
    from rnnlab.kernels import blas

    if blas.blas().get_threads() is None:
        pytest.skip("BLAS threads cannot be read here")
    monkeypatch.setattr(blas, "_numba_threads", lambda: 8)
    calls = []
    real = blas.blas().set_threads
    monkeypatch.setattr(blas.blas(), "set_threads", lambda n: (calls.append(n), real(n)))
    with kernels.threads(2):
        calls.clear()
        with blas.loop_chunks(1, B, work // B, blas_inside=False) as chunks:
            assert chunks == expect
            assert calls == ([] if chunks == 1 else [1])
        if chunks == 1:
            with blas.loop_chunks(1, B, 10 // B) as chunks:  # BLAS per step, small
                assert chunks == 1 and blas.blas().get_threads() == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_tile_product_matches_numpy(dtype):
    """Every row count of a tile (1..MR and more), ragged last panels, K = 0, beta 0/1,
    row ranges of larger arrays; nothing outside C's columns is touched."""
    from rnnlab.kernels import _jit, tile

    address = tile.addresses()["tile_f32" if dtype == np.float32 else "tile_f64"]
    rng = np.random.default_rng(0)
    panel = tile.nr(np.dtype(dtype).itemsize)
    for M, K, N in [(1, 1, 1), (3, 5, 7), (tile.MR, 64, panel), (13, 50, 200), (17, 33, 65),
                    (9, 0, 33), (2 * tile.MR + 1, 7, 3 * panel + 1)]:
        A = rng.normal(size=(M + 2, K)).astype(dtype)[1:M + 1]
        B = rng.normal(size=(K, N)).astype(dtype)
        Bp = np.empty((-(-N // panel), K, panel), dtype)
        _jit.pack_b(B, Bp)
        C0 = rng.normal(size=(M, N + 3)).astype(dtype)
        for beta in (0, 1):
            C = C0.copy()
            _jit.mm_tiled(address, A, Bp, C[:, :N], beta)
            want = A.astype(np.float64) @ B + (C0[:, :N] if beta else 0)
            tol = dict(rtol=0, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(C[:, :N], want, err_msg=f"{M, K, N} beta={beta}", **tol)
            np.testing.assert_array_equal(C[:, N:], C0[:, N:])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_batch_one_product_matches_numpy(dtype):
    """The streaming step's one-row product (``mm`` at M = 1, :func:`vm`): K in blocks of
    four and a remainder, beta 0 and 1, N not a multiple of the vector width."""
    from rnnlab.kernels import _jit, blas

    rng = np.random.default_rng(0)
    tol = dict(rtol=0, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    for K, N in [(1, 1), (3, 7), (4, 33), (130, 768), (257, 1024)]:
        A = rng.normal(size=(1, K)).astype(dtype)
        B = rng.normal(size=(K, N)).astype(dtype)
        C0 = rng.normal(size=(1, N)).astype(dtype)
        for beta in (0, 1):
            C = C0.copy()
            _jit.mm(blas.gemm_for(dtype), A, B, C, False, beta)
            want = A.astype(np.float64) @ B + (C0 if beta else 0)
            np.testing.assert_allclose(C, want, err_msg=f"{K, N} beta={beta}", **tol)


@pytest.mark.parametrize("cell,opts", CELLS, ids=CELL_IDS)
def test_per_step_products_in_numpy_blas_match_plain(cell, opts):
    """``use_blas("numpy")``: the per-step products through BLAS instead of the tile."""
    args = case(cell, opts, 2, np.float64, True, B=5, H=9)
    plain = run(*args, fast=False)
    with kernels.use_blas("numpy"):
        fast = run(*args, fast=True)
    for name in plain:
        np.testing.assert_allclose(fast[name], plain[name], err_msg=name, **TOL[np.float64])


def test_tile_that_fails_to_compile_falls_back_to_blas(monkeypatch):
    from rnnlab.kernels import blas, tile

    def broken():
        raise RuntimeError("no LLVM here")

    monkeypatch.setattr(tile, "addresses", broken)
    monkeypatch.setattr(blas, "_tile_failed", False)
    monkeypatch.setattr(blas, "_tile_addresses", {})
    args = case("gru", {}, 1, np.float64, True)
    plain = run(*args, fast=False)
    with pytest.warns(RuntimeWarning, match="no LLVM here"):
        fast = run(*args, fast=True)
    assert blas.tile_for(np.float64) == 0  # and it is not retried
    for name in plain:
        np.testing.assert_allclose(fast[name], plain[name], err_msg=name, **TOL[np.float64])


def test_tile_machine_code_is_cached_on_disk(tmp_path):
    """The first process compiles and stores the tile; the next loads it and gets the same
    products (NUMBA_CACHE_DIR chooses where, as for numba's kernels)."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np; from rnnlab.kernels import tile, _jit; "
            "a = tile.addresses()['tile_f64']; rng = np.random.default_rng(0); "
            "A = rng.normal(size=(5, 7)); B = rng.normal(size=(7, 40)); "
            "nr = tile.nr(8); Bp = np.empty((-(-40 // nr), 7, nr)); _jit.pack_b(B, Bp); "
            "C = np.empty((5, 40)); "
            "_jit.mm_tiled(a, A, Bp, C, 0); "
            "print(float(np.abs(C - A @ B).max()))")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    errors, stamps = [], []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout
        errors.append(float(out.strip().splitlines()[-1]))
        files = list(tmp_path.glob("tile-*.o"))
        assert len(files) == 1
        stamps.append(files[0].stat().st_mtime_ns)
    assert stamps[0] == stamps[1]  # loaded, not compiled and written again
    # a damaged file is not loaded: the next process compiles again and replaces it
    from rnnlab.kernels import tile

    files[0].write_bytes(files[0].read_bytes()[:-100] + b"\0" * 100)
    assert tile._read_checked(files[0]) is None
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    errors.append(float(out.strip().splitlines()[-1]))
    assert tile._read_checked(files[0]) is not None  # compiled and stored whole again
    assert max(errors) < 1e-12


@pytest.mark.parametrize("n,K,work,hold,expect,blas_inside",
                         [(1, 100, 10**12, True, 1, "as set"),
                          (2, 100, 10, True, 1, 1), (2, 100, 10, False, 1, "as set"),
                          (2, 100, 10**12, False, 2, 1), (4, 3, 10**12, True, 3, 1)])
def test_product_chunks_choice(n, K, work, hold, expect, blas_inside, monkeypatch):
    """Products go to rnnlab's threads only with threads allowed, rows to share and
    enough work; BLAS is held to one thread inside then, and for small products when
    ``hold``; its setting is restored after."""
    from rnnlab.kernels import blas

    monkeypatch.setattr(blas, "_numba_threads", lambda: 8)
    before = blas.blas().get_threads()
    if before is None:
        pytest.skip("NumPy's BLAS does not report its threads")
    with kernels.threads(n):
        with blas.product_chunks(K, work, hold) as parts:
            assert parts == expect
            assert blas.blas().get_threads() == (n if blas_inside == "as set" else blas_inside)
        assert blas.blas().get_threads() == n
    assert blas.blas().get_threads() == before


@pytest.mark.parametrize("spin", [True, False], ids=["spinning", "sleeping"])
def test_product_chunks_follow_the_threading_layer(spin, monkeypatch):
    """With spinning threads (OpenMP) small products hold BLAS to one thread unless told
    otherwise and products split from PRODUCTS_PARALLEL_FROM; with sleeping ones
    (workqueue) small products keep BLAS's threads and only larger ones split."""
    from rnnlab.kernels import blas

    monkeypatch.setattr(blas, "_numba_threads", lambda: 8)
    monkeypatch.setattr(blas, "threads_spin", lambda: spin)
    if blas.blas().get_threads() is None:
        pytest.skip("NumPy's BLAS does not report its threads")
    between = (blas.PRODUCTS_PARALLEL_FROM + blas.PRODUCTS_PARALLEL_FROM_ASLEEP) // 2
    assert blas.PRODUCTS_PARALLEL_FROM < between < blas.PRODUCTS_PARALLEL_FROM_ASLEEP
    with kernels.threads(2):
        with blas.product_chunks(100, 10) as parts:
            assert parts == 1
            assert blas.blas().get_threads() == (1 if spin else 2)
        with blas.product_chunks(100, 10, hold=False) as parts:
            assert parts == 1 and blas.blas().get_threads() == 2
        with blas.product_chunks(100, between) as parts:
            assert parts == (2 if spin else 1)


_LAYER_CODE = """
import numpy as np, numba, rnnlab
from rnnlab.kernels import blas
layer = rnnlab.LSTM(3, 64, seed=0)
x = np.random.default_rng(0).normal(size=(16, 40, 3))
with rnnlab.kernels.threads(2):
    y = layer.forward(x)[0]
print(numba.threading_layer(), blas._openmp_available(), blas.threads_spin())
"""


def test_threading_layer_default_and_user_choice():
    """rnnlab picks numba's OpenMP layer when it loads (else workqueue) unless the user
    chose one with NUMBA_THREADING_LAYER, which is kept."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    out = subprocess.run([sys.executable, "-c", _LAYER_CODE], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    layer, omp, spin = out[0], out[1] == "True", out[2] == "True"
    assert layer == ("omp" if omp else "workqueue") and spin == omp
    env["NUMBA_THREADING_LAYER"] = "workqueue"
    out = subprocess.run([sys.executable, "-c", _LAYER_CODE], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "workqueue" and out[2] == "False"


_FORK_CODE = """
import multiprocessing as mp, numpy as np, numba, rnnlab
from rnnlab.kernels import blas
layer = rnnlab.LSTM(3, 64, seed=0)
x = np.random.default_rng(0).normal(size=(16, 40, 3))

def child(q):
    with rnnlab.kernels.threads(2):
        q.put((layer.forward(x)[0], blas._forked_after_openmp))

if __name__ == "__main__":
    with rnnlab.kernels.threads(2):
        y = layer.forward(x)[0]
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    y_child, serial = q.get(timeout=120)
    p.join(timeout=60)
    print(p.exitcode, float(np.abs(y_child - y).max()), serial, numba.threading_layer())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_child_forked_after_parallel_loops_runs_and_agrees(tmp_path):
    """A child forked after rnnlab's parallel loops ran (GNU OpenMP cannot cross a fork)
    runs its loops serially, with the same results, instead of being ended."""
    import subprocess
    import sys

    script = tmp_path / "fork_child.py"
    script.write_text(_FORK_CODE)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    code, diff, serial, layer = out.stdout.split()
    assert code == "0" and float(diff) < 1e-12
    assert serial == str(layer == "omp")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("trans_a", [False, True], ids=["AB", "ATB"])
@pytest.mark.parametrize("forced", [False, True], ids=["numpy", "parts"])
def test_matmul_matches_numpy(dtype, trans_a, forced, monkeypatch):
    """kernels.matmul: in 3 parts on rnnlab's threads (rows, or partial sums over K) or
    whole in NumPy, the same product; non-contiguous operands are accepted."""
    from rnnlab.kernels import blas, layers

    calls = []
    real = layers.matmul_par
    monkeypatch.setattr(layers, "matmul_par", lambda *a: calls.append(a[-1]) or real(*a))
    if forced:
        monkeypatch.setattr(blas, "PRODUCTS_PARALLEL_FROM", 0)
        monkeypatch.setattr(blas, "_numba_threads", lambda: 3)
    rng = np.random.default_rng(0)
    A = rng.normal(size=(23, 11)).astype(dtype)
    B = rng.normal(size=(23 if trans_a else 11, 7)).astype(dtype)
    want = (A.T if trans_a else A) @ B
    with kernels.threads(3):
        got = kernels.matmul(A, B, trans_a)
        got_views = kernels.matmul(np.asfortranarray(A), B[:, ::-1], trans_a)
    tol = dict(rtol=1e-12, atol=0) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(got_views, want[:, ::-1], **tol)
    assert got.dtype == dtype and got.shape == want.shape
    assert calls == ([3, 3] if forced else [])
    with kernels.use_fast(False):
        np.testing.assert_array_equal(kernels.matmul(A, B, trans_a), want)


@pytest.mark.parametrize("readout", ["all", "last"])
def test_network_head_in_parts_matches_plain(readout, parallel_rows, monkeypatch):
    """A whole network's loss and gradients with the loops, the batched products and the
    head's products all split over threads, against the plain path (float64)."""
    from rnnlab.kernels import layers

    heads = []
    real = layers.matmul_par
    monkeypatch.setattr(layers, "matmul_par", lambda *a: heads.append(a[-1]) or real(*a))
    rng = np.random.default_rng(3)
    net = rnnlab.Network(4, 6, 3, cell="lstm", output="softmax", readout=readout, seed=0,
                         dtype=np.float64)
    x = rng.normal(size=(7, 5, 4))
    y = rng.integers(0, 3, size=(7, 5) if readout == "all" else (7,))
    with kernels.use_fast(False):
        plain = net.loss_and_grad(x, y)
    with kernels.threads(3):
        fast = net.loss_and_grad(x, y)
    assert parallel_rows.products == [3] and heads == [3, 3, 3]  # z, dW_y, dh
    assert fast.loss == pytest.approx(plain.loss, rel=1e-12)
    for k in plain.grads:
        np.testing.assert_allclose(fast.grads[k], plain.grads[k], rtol=0, atol=1e-10, err_msg=k)
