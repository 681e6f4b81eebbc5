"""The LSTM with peepholes (Gers & Schmidhuber 2000): its reference against central finite
differences (float64), its parameters, ONNX export through the ``P`` input, and the
refusals where there is no counterpart."""

import numpy as np
import pytest

import rnnlab
from test_lstm_projection import check_finite_differences


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_peepholes_match_finite_differences(num_layers, bidirectional, with_lengths):
    rng = np.random.default_rng(21 + num_layers)
    layer = rnnlab.LSTM(3, 4, num_layers, peepholes=True, bidirectional=bidirectional,
                        seed=6, dtype=np.float64)
    check_finite_differences(layer, rng, with_lengths=with_lengths)


def test_peepholes_with_projection_and_resets_match_finite_differences():
    layer = rnnlab.LSTM(3, 5, 2, peepholes=True, proj_size=2, seed=7, dtype=np.float64)
    check_finite_differences(layer, np.random.default_rng(3), with_lengths=True,
                             with_reset=True)


def test_peepholes_change_the_outputs():
    layer = rnnlab.LSTM(3, 4, peepholes=True, seed=1, dtype=np.float64)
    assert layer.params["l0.p_i"].shape == (4,)
    x = np.random.default_rng(0).normal(size=(2, 6, 3))
    y, _ = layer.infer(x)
    plain = rnnlab.LSTM(3, 4, seed=1, dtype=np.float64)
    plain.params.update({k: v for k, v in layer.params.items() if k in plain.params})
    assert np.allclose(plain.infer(x)[0], y) is False
    for name in ("l0.p_i", "l0.p_f", "l0.p_o"):
        layer.params[name][...] = 0
    np.testing.assert_allclose(layer.infer(x)[0], plain.infer(x)[0], rtol=0, atol=1e-14)


def test_to_torch_refuses_peepholes():
    pytest.importorskip("torch")
    from rnnlab import interop
    with pytest.raises(ValueError, match="peepholes") as e:
        interop.to_torch(rnnlab.LSTM(3, 4, peepholes=True))
    assert "\n" not in str(e.value)


def test_model_files_keep_the_peepholes(tmp_path):
    from rnnlab.saving import n_params
    net = rnnlab.Network(3, 6, 4, num_layers=2, peepholes=True, seed=2)
    assert net.config["peepholes"] is True
    assert n_params("network", net.config) == net.n_params
    rnnlab.save(net, tmp_path / "m.rnnlab")
    back = rnnlab.load(tmp_path / "m.rnnlab")
    assert back.config == net.config and back.rnn.peepholes
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.infer(x)[0], net.infer(x)[0])


def test_cli_trains_with_peepholes(tmp_path):
    from rnnlab import cli, lm
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("the cat sat on the mat.\n" * 80, encoding="utf-8")
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(corpus), "--steps", "3", "--out", str(out),
                     "--hidden", "12", "--peepholes", "--bptt", "8", "--batch", "4",
                     "--no-progress"]) == 0
    run = lm.open_run(out)
    assert run.config.peepholes and "l0.p_o" in run.net.rnn.params


# --- ONNX: the standard LSTM operator's P input -------------------------------------------------

@pytest.mark.parametrize("bidirectional", [False, True], ids=["one-way", "bidirectional"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
def test_onnx_export_through_the_p_input(tmp_path, bidirectional, num_layers, lengths):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import onnx

    from rnnlab import onnx as ronnx
    from test_onnx import feed_for, session
    layer = rnnlab.LSTM(3, 5, num_layers, peepholes=True, bidirectional=bidirectional,
                        seed=num_layers)
    for p in layer.params.values():  # peepholes large enough that a wrong order shows
        if p.ndim == 1 and p.shape == (5,):
            p *= 4
    path = ronnx.export(layer, tmp_path / "peep.onnx", lengths=lengths, states=True)
    nodes = [n for n in onnx.load(path).graph.node if n.op_type == "LSTM"]
    assert len(nodes) == num_layers and all(len(n.input) == 8 for n in nodes)
    s = session(path)
    rng = np.random.default_rng(4)
    for B, T in [(1, 1), (2, 9), (6, 4)]:
        feed, x, state, lens = feed_for(rng, layer, B, T, lengths, True)
        y, final = layer.infer(x, state, lengths=lens)
        got = s.run(None, feed)
        for g, w in zip(got, [y, *final], strict=True):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    # the same weights without the peepholes compute something else (the check can fail)
    plain = rnnlab.LSTM(3, 5, num_layers, bidirectional=bidirectional, seed=0)
    plain.params.update({k: v for k, v in layer.params.items() if k in plain.params})
    assert not np.allclose(plain.infer(x, state, lengths=lens)[0], got[0], atol=1e-3)


def test_onnx_export_of_a_peephole_network(tmp_path):
    pytest.importorskip("onnxruntime")
    from rnnlab import onnx as ronnx
    from test_onnx import session
    net = rnnlab.Network(3, 5, 4, num_layers=2, peepholes=True, readout="last", seed=3)
    s = session(ronnx.export(net, tmp_path / "net.onnx"))
    x = np.random.default_rng(0).normal(size=(3, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(s.run(None, {"x": x})[0], net.predict(x), rtol=1e-5, atol=1e-5)


# --- the fused kernel ("lstm_peepholes") against the reference ----------------------------------

@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("B", [1, 4])
def test_kernel_matches_the_reference(num_layers, with_lengths, dtype, B):
    pytest.importorskip("numba")
    from test_kernels import run
    from test_lstm_projection import KTOL, kernel_case
    args = kernel_case(num_layers, dtype, with_lengths, B=B, P=0, peepholes=True)
    plain, fast = run(*args, fast=False), run(*args, fast=True)
    assert plain.keys() == fast.keys() and "grad l0.p_o" in plain
    for name in plain:
        assert fast[name].dtype == plain[name].dtype, name
        np.testing.assert_allclose(fast[name], plain[name], err_msg=name, **KTOL[dtype])


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_kernel_in_runs_of_rows_with_resets_and_no_dy(threads, bidirectional, monkeypatch):
    pytest.importorskip("numba")
    from rnnlab import kernels
    from rnnlab.kernels import blas, layers
    from test_lstm_projection import kernel_case
    monkeypatch.setattr(blas, "PARALLEL_FROM", 0)
    chunks, real = [], layers._rows
    monkeypatch.setattr(layers, "_rows", lambda module, kernel, c, *a: (
        chunks.append((kernel, c)), real(module, kernel, c, *a))[1])
    layer, x, h0, lengths, _, ds = kernel_case(2, np.float64, True, B=9, T=7, D=6, H=11, P=0,
                                               peepholes=True, bidirectional=bidirectional)
    reset = np.random.default_rng(5).random((9, 7)) < 0.2
    res = []
    for fast in (False, True):
        with kernels.use_fast(fast), kernels.threads(threads):
            y, state, cache = layer.forward(x, h0, lengths=lengths, reset=reset)
            first = cache.layers[0][0] if bidirectional else cache.layers[0]
            assert isinstance(first.saved, kernels.Tape) == fast
            grads, dx, d0 = layer.backward(cache, None, ds)
            y_inf, _ = layer.infer(x, h0, lengths=lengths, reset=reset)
        np.testing.assert_array_equal(y_inf, y)
        res.append([y, *state, dx, *d0, *(grads[k] for k in sorted(grads))])
    for a, b in zip(*res, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-10)
    assert {k for k, _ in chunks} == {"forward_peep", "backward_peep"}
    assert (max(c for _, c in chunks) > 1) == (threads > 1)


def test_kernel_without_blas_and_streaming(monkeypatch):
    pytest.importorskip("numba")
    from rnnlab import kernels
    from rnnlab.kernels import layers
    from test_kernels import run
    from test_lstm_projection import KTOL, kernel_case
    args = kernel_case(2, np.float64, True, P=0, peepholes=True)
    plain = run(*args, fast=False)
    with monkeypatch.context() as m:
        m.setattr(layers, "gemm_for", lambda dtype: None)
        m.setattr(layers, "tile_for", lambda dtype: 0)
        fast = run(*args, fast=True)
    for name in plain:
        np.testing.assert_allclose(fast[name], plain[name], err_msg=name, **KTOL[np.float64])
    calls = []
    real = layers.step_one
    monkeypatch.setattr(layers, "step_one", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    layer, x, h0 = args[:3]
    stream = rnnlab.Stream(layer, x.shape[0], h0)
    with kernels.use_fast(False):
        y_ref, _ = layer.infer(x, h0)
    for t in range(x.shape[1]):
        np.testing.assert_allclose(stream.step(x[:, t]), y_ref[:, t], rtol=0, atol=1e-12)
    assert calls == ["lstm_peepholes"] * (2 * x.shape[1])
