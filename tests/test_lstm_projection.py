"""The LSTM with a projection (``proj_size``, PyTorch's LSTMP): its reference against
central finite differences (float64), its shapes, and everything built on it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnlab
from gradcheck import numerical_grad, rel_error

TOL = 1e-6


def random_state(layer, B, rng):
    L = layer.num_layers * layer.directions
    return tuple(rng.normal(size=(L, B, w)) for w in layer.state_sizes)


def check_finite_differences(layer, rng, *, with_lengths, with_reset=False):
    """Every gradient of a random linear loss on the outputs and the final state against
    central differences; shared with the peephole tests."""
    B, T = 3, 5
    x = rng.normal(size=(B, T, layer.input_size))
    h0 = random_state(layer, B, rng)
    lengths = np.array([5, 2, 4]) if with_lengths else None
    reset = np.zeros((B, T), bool)
    reset[0, 3] = reset[2, 1] = True
    reset = reset if with_reset else None
    wy = rng.normal(size=(B, T, layer.output_features))
    ws = [rng.normal(size=s.shape) for s in h0]

    def loss():
        y, s, _ = layer.forward(x, h0, lengths=lengths, reset=reset)
        return np.sum(y * wy) + sum(np.sum(a * w) for a, w in zip(s, ws, strict=True))

    _, _, cache = layer.forward(x, h0, lengths=lengths, reset=reset)
    grads, dx, d0 = layer.backward(cache, wy, tuple(ws))
    assert set(grads) == set(layer.params)
    for name, p in layer.params.items():
        assert rel_error(grads[name], numerical_grad(loss, p)) < TOL, name
    assert rel_error(dx, numerical_grad(loss, x)) < TOL
    for a, s in zip(d0, h0, strict=True):
        assert rel_error(a, numerical_grad(loss, s)) < TOL


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_projection_matches_finite_differences(num_layers, bidirectional, with_lengths):
    rng = np.random.default_rng(11 + num_layers)
    layer = rnnlab.LSTM(3, 5, num_layers, proj_size=2, bidirectional=bidirectional, seed=4,
                        dtype=np.float64)
    check_finite_differences(layer, rng, with_lengths=with_lengths)


def test_projection_with_resets_matches_finite_differences():
    layer = rnnlab.LSTM(3, 5, 2, proj_size=3, seed=5, dtype=np.float64)
    check_finite_differences(layer, np.random.default_rng(2), with_lengths=True,
                             with_reset=True)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_shapes_follow_pytorch(bidirectional):
    layer = rnnlab.LSTM(3, 6, 2, proj_size=4, bidirectional=bidirectional, seed=0)
    dirs = 2 if bidirectional else 1
    assert layer.params["l0.W_h"].shape == (4, 24)
    assert layer.params["l0.W_hr"].shape == (6, 4)
    assert layer.params["l1.W_x"].shape == (4 * dirs, 24)
    y, (h, c) = layer.infer(np.zeros((2, 7, 3), np.float32))
    assert y.shape == (2, 7, 4 * dirs)
    assert h.shape == (2 * dirs, 2, 4) and c.shape == (2 * dirs, 2, 6)


@pytest.mark.parametrize("value,words", [(6, "less than hidden_size 6"), (-1, "proj_size"),
                                         (1.5, "proj_size")])
def test_bad_proj_size_is_named(value, words):
    with pytest.raises(ValueError, match=words):
        rnnlab.LSTM(3, 6, proj_size=value)


# --- PyTorch: nn.LSTM(proj_size=...) both ways, float64 parity ------------------------------

ATOL = 1e-10


def _torch_run(torch, module, x, state, lengths, wy, ws):
    """PyTorch's outputs, final state and every gradient under the same linear loss."""
    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in state]
    inp = xt
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.as_tensor(lengths), batch_first=True, enforce_sorted=False)
    y, final = module(inp, tuple(st))
    if lengths is not None:
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True,
                                                      total_length=x.shape[1])
    loss = (y * torch.from_numpy(wy)).sum()
    for f, w in zip(final, ws, strict=True):
        loss = loss + (f * torch.from_numpy(w)).sum()
    module.zero_grad()
    loss.backward()
    out = {"y": y, "h_n": final[0], "c_n": final[1], "dx": xt.grad, "dh0": st[0].grad,
           "dc0": st[1].grad}
    return {k: v.detach().numpy() for k, v in out.items()}


def _rnnlab_run(layer, x, state, lengths, wy, ws):
    y, final, cache = layer.forward(x, tuple(state), lengths=lengths)
    grads, dx, d0 = layer.backward(cache, wy, tuple(ws))
    return {"y": y, "h_n": final[0], "c_n": final[1], "dx": dx, "dh0": d0[0],
            "dc0": d0[1]}, grads


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("fast", [True, False], ids=["default", "plain"])
def test_matches_pytorch_lstmp_in_float64(num_layers, bidirectional, with_lengths, fast):
    torch = pytest.importorskip("torch")
    from rnnlab import interop
    torch.manual_seed(num_layers)
    module = torch.nn.LSTM(4, 6, num_layers, proj_size=3, batch_first=True,
                           bidirectional=bidirectional).double()
    layer = interop.from_torch(module)
    assert layer.proj_size == 3 and layer.dtype == np.float64
    rng = np.random.default_rng(5)
    B, T = 3, 7
    x = rng.normal(size=(B, T, 4))
    state = random_state(layer, B, rng)
    lengths = np.array([7, 3, 5]) if with_lengths else None
    wy = rng.normal(size=(B, T, layer.output_features))
    ws = [rng.normal(size=s.shape) for s in state]
    theirs = _torch_run(torch, module, x, state, lengths, wy, ws)
    with rnnlab.kernels.use_fast(fast):
        ours, grads = _rnnlab_run(layer, x, state, lengths, wy, ws)
    for name, a in ours.items():
        assert a.shape == theirs[name].shape, name
        assert np.max(np.abs(a - theirs[name])) <= ATOL, name
    their_grads = interop.grads_from_torch(module)
    assert set(their_grads) == set(grads)
    for name, g in grads.items():
        assert np.max(np.abs(g - their_grads[name])) <= ATOL, name


def _parity(torch, module, layer, rng, B, T, with_lengths):
    from rnnlab import interop
    x = rng.normal(size=(B, T, layer.input_size))
    state = random_state(layer, B, rng)
    lengths = rng.integers(1, T + 1, size=B) if with_lengths else None
    wy = rng.normal(size=(B, T, layer.output_features))
    ws = [rng.normal(size=s.shape) for s in state]
    theirs = _torch_run(torch, module, x, state, lengths, wy, ws)
    ours, grads = _rnnlab_run(layer, x, state, lengths, wy, ws)
    for name, a in ours.items():
        assert np.max(np.abs(a - theirs[name])) <= ATOL, name
    for name, g in interop.grads_from_torch(module).items():
        assert np.max(np.abs(grads[name] - g)) <= ATOL, name


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 2), st.booleans(), st.booleans(), st.integers(1, 4), st.integers(1, 6),
       st.integers(1, 4), st.integers(2, 6), st.data())
def test_matches_pytorch_lstmp_on_random_shapes(num_layers, bidirectional, with_lengths, B, T,
                                                D, H, data):
    torch = pytest.importorskip("torch")
    from rnnlab import interop
    P = data.draw(st.integers(1, H - 1), label="P")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    torch.manual_seed(seed)
    module = torch.nn.LSTM(D, H, num_layers, proj_size=P, batch_first=True,
                           bidirectional=bidirectional).double()
    _parity(torch, module, interop.from_torch(module), np.random.default_rng(seed), B, T,
            with_lengths)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_to_torch_and_back_is_exact(bidirectional):
    torch = pytest.importorskip("torch")
    from rnnlab import interop
    layer = rnnlab.LSTM(3, 5, 2, proj_size=2, bidirectional=bidirectional, seed=3,
                        dtype=np.float64)
    module = interop.to_torch(layer)
    assert module.proj_size == 2
    assert module.weight_hr_l1.shape == (2, 5)
    back = interop.from_torch(module)
    assert back.config == {**layer.config, "init": "uniform"}
    for name, v in layer.params.items():
        np.testing.assert_array_equal(back.params[name], v, err_msg=name)
    x = np.random.default_rng(1).normal(size=(2, 4, 3))
    with torch.no_grad():
        y, (h, c) = module(torch.from_numpy(x))
    ours, (h2, c2) = layer.infer(x)
    assert np.max(np.abs(ours - y.numpy())) <= ATOL
    assert np.max(np.abs(h2 - h.numpy())) <= ATOL and np.max(np.abs(c2 - c.numpy())) <= ATOL


# --- Network, model files, CLI ----------------------------------------------------------------

@pytest.mark.parametrize("readout", ["all", "last"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_network_reads_the_projection(readout, bidirectional):
    net = rnnlab.Network(3, 5, 2, cell="lstm", num_layers=2, proj_size=2, readout=readout,
                         output="linear", bidirectional=bidirectional, seed=1,
                         dtype=np.float64)
    dirs = 2 if bidirectional else 1
    assert net.params["head.W_y"].shape == (2 * dirs, 2)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 3))
    z, _, cache = net.forward(x)
    wz = rng.normal(size=z.shape)
    grads, _, _ = net.backward(cache, wz)
    from gradcheck import numerical_grad, rel_error

    def loss():
        return float(np.sum(net.forward(x)[0] * wz))

    for name in ("rnn.l0.W_hr", "rnn.l1.W_h", "head.W_y"):
        assert rel_error(grads[name], numerical_grad(loss, net.params[name])) < TOL, name


def test_network_refuses_the_options_for_other_cells():
    with pytest.raises(ValueError, match="proj_size applies to the lstm cell only"):
        rnnlab.Network(3, 5, 2, cell="gru", proj_size=2)
    with pytest.raises(ValueError, match="peepholes applies to the lstm cell only"):
        rnnlab.Network(3, 5, 2, cell="elman", peepholes=True)


@pytest.mark.parametrize("kind", ["network", "layer"])
def test_model_files_keep_the_projection(tmp_path, kind):
    from rnnlab.saving import n_params
    if kind == "network":
        obj = rnnlab.Network(3, 6, 4, num_layers=2, proj_size=3, bidirectional=True, seed=2)
    else:
        obj = rnnlab.LSTM(3, 6, 2, proj_size=3, bidirectional=True, seed=2)
    assert n_params(kind, obj.config) == sum(v.size for v in obj.params.values())
    rnnlab.save(obj, tmp_path / "m.rnnlab")
    back = rnnlab.load(tmp_path / "m.rnnlab")
    assert back.config == obj.config
    for name, v in obj.params.items():
        np.testing.assert_array_equal(back.params[name], v)
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.infer(x)[0], obj.infer(x)[0])


def test_a_plain_network_config_is_unchanged():
    """Files and checkpoints written before the option existed keep matching."""
    assert "proj_size" not in rnnlab.Network(3, 6, 4, seed=0).config
    assert rnnlab.Network(3, 6, 4, proj_size=2, seed=0).config["proj_size"] == 2


def test_cli_trains_a_projected_language_model(tmp_path, capsys):
    from rnnlab import cli, lm
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("the cat sat on the mat.\n" * 80, encoding="utf-8")
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(corpus), "--steps", "3", "--out", str(out),
                     "--hidden", "12", "--proj-size", "5", "--bptt", "8", "--batch", "4",
                     "--no-progress"]) == 0
    run = lm.open_run(out)
    assert run.config.proj_size == 5 and run.net.rnn.proj_size == 5
    assert run.net.rnn.params["l0.W_hr"].shape == (12, 5)
    assert cli.main(["train", "--resume", str(out), "--steps", "5", "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["train", "--data", str(corpus), "--cell", "gru", "--proj-size", "5",
                     "--out", str(tmp_path / "bad"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "proj_size applies to the lstm cell only" in err[0], err
    assert cli.main(["train", "--data", str(corpus), "--hidden", "8", "--proj-size", "8",
                     "--out", str(tmp_path / "bad2"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "less than hidden_size 8" in err[0], err


def test_cli_trains_a_projected_task(tmp_path):
    pytest.importorskip("sklearn")
    import json

    from rnnlab import cli
    out = tmp_path / "digits"
    assert cli.main(["train", "--task", "digits", "--epochs", "1", "--hidden", "8",
                     "--proj-size", "3", "--max-train", "100", "--max-test", "50",
                     "--no-progress", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["proj_size"] == 3
    assert rnnlab.load(out / "model.rnnlab").rnn.proj_size == 3


# --- streaming, truncated BPTT, diagnostics: both variants and the two together --------------

VARIANTS = pytest.mark.parametrize("opts", [{"proj_size": 2}, {"peepholes": True},
                                            {"proj_size": 3, "peepholes": True}],
                                   ids=["proj", "peepholes", "both"])


@VARIANTS
@pytest.mark.parametrize("num_layers", [1, 2])
def test_streaming_steps_match_forward(opts, num_layers):
    layer = rnnlab.LSTM(3, 5, num_layers, seed=2, dtype=np.float64, **opts)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 6, 3))
    state = random_state(layer, 2, rng)
    y, final = layer.infer(x, state)
    s, stream = state, rnnlab.Stream(layer, 2, state)
    for t in range(6):
        y_t, s = layer.step(x[:, t], s)
        np.testing.assert_allclose(y_t, y[:, t], rtol=0, atol=1e-14)
        np.testing.assert_allclose(stream.step(x[:, t]), y[:, t], rtol=0, atol=1e-14)
    for a, b, c in zip(s, stream.state, final, strict=True):
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-14)
        np.testing.assert_allclose(b, c, rtol=0, atol=1e-14)


@VARIANTS
@pytest.mark.parametrize("lengths", [None, [12, 7, 3, 10]])
def test_truncated_bptt_reaching_the_start_equals_full_bptt(opts, lengths):
    from rnnlab import bptt
    from test_bptt import weighted_sum
    rng = np.random.default_rng(0)
    net = rnnlab.Network(3, 5, 4, num_layers=2, seed=1, dtype=np.float64, **opts)
    x, y = rng.normal(size=(4, 12, 3)), rng.integers(0, 4, size=(4, 12))
    full = net.loss_and_grad(x, y, lengths=lengths)
    loss, grads = weighted_sum(bptt.Truncated(net, x, y, lengths, 3, 12))
    assert loss == pytest.approx(full.loss, rel=1e-13)
    assert set(grads) == set(full.grads)
    for k, v in full.grads.items():
        np.testing.assert_allclose(grads[k], v, rtol=1e-11, atol=1e-13, err_msg=k)
    # a short reach is another gradient, for the projection's weights too
    _, short = weighted_sum(bptt.Truncated(net, x, y, lengths, 3, 3))
    name = "rnn.l0.W_hr" if "proj_size" in opts else "rnn.l0.p_f"
    assert not np.allclose(short[name], full.grads[name], rtol=1e-3)


@VARIANTS
def test_many_to_one_truncation_matches_its_reference(opts):
    from rnnlab import bptt
    from test_bptt import last_steps_reference
    rng = np.random.default_rng(3)
    net = rnnlab.Network(3, 5, 4, num_layers=2, readout="last", seed=1, dtype=np.float64,
                         **opts)
    x, y = rng.normal(size=(4, 12, 3)), rng.integers(0, 4, size=4)
    lengths = [12, 7, 3, 10]
    res = bptt.last_steps(net, x, y, lengths, 4)
    loss, grads = last_steps_reference(net, x, y, lengths, 4)
    assert res.loss == pytest.approx(loss, rel=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(res.grads[name], g, rtol=1e-10, atol=1e-14, err_msg=name)


@VARIANTS
def test_gradient_flow_is_the_jacobian_of_h(opts):
    """Lag 1 of the flow is ||dh_2 / dh_1|| (c_1 held), here by central differences."""
    from rnnlab import diagnostics
    layer = rnnlab.LSTM(3, 5, seed=4, dtype=np.float64, **opts)
    x = np.random.default_rng(2).normal(size=(1, 2, 3))
    flow = diagnostics.gradient_flow(layer, x)
    P = layer.state_sizes[0]
    assert flow[0] == pytest.approx(np.sqrt(P))  # the identity on h
    _, (h1, c1) = layer.infer(x[:, :1])
    J = np.zeros((P, P))
    for j in range(P):
        e = np.zeros_like(h1)
        e[0, 0, j] = 1e-6
        up = layer.infer(x[:, 1:], (h1 + e, c1))[1][0][0, 0]
        down = layer.infer(x[:, 1:], (h1 - e, c1))[1][0][0, 0]
        J[:, j] = (up - down) / 2e-6
    assert flow[1] == pytest.approx(np.linalg.norm(J), rel=1e-7)


@VARIANTS
def test_diagnose_reports_on_a_network(opts):
    from rnnlab import diagnostics
    net = rnnlab.Network(3, 5, 4, seed=0, **opts)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 8, 3)), rng.integers(0, 4, size=(3, 8))
    report = diagnostics.diagnose(net, x, y)
    text = report.summary()
    assert ("P=" in text) == ("proj_size" in opts)
    assert ("peepholes" in text) == ("peepholes" in opts)
    assert np.isfinite(report.loss_gradients).all() and len(report.loss_gradients) == 8


# --- the fused kernel ("lstmp") against the reference, on every test run -----------------------

KTOL = {np.float64: dict(rtol=0, atol=1e-10), np.float32: dict(rtol=2e-4, atol=2e-5)}


def kernel_case(num_layers, dtype, with_lengths, B=4, T=6, D=3, H=5, P=2, seed=0, **opts):
    rng = np.random.default_rng(seed)
    layer = rnnlab.LSTM(D, H, num_layers, proj_size=P, seed=seed + 1, dtype=dtype, **opts)
    x = rng.normal(size=(B, T, D)).astype(dtype)
    lengths = rng.integers(0, T + 1, size=B) if with_lengths else None
    if with_lengths:
        lengths[0], lengths[-1] = T, 0  # a full sequence and an empty one
    dy = rng.normal(size=(B, T, layer.output_features)).astype(dtype)
    h0 = tuple(a.astype(dtype) for a in random_state(layer, B, rng))
    ds = tuple(a.astype(dtype) for a in random_state(layer, B, rng))
    return layer, x, h0, lengths, dy, ds


def test_each_variant_declares_its_kernel_and_the_two_together_none():
    assert rnnlab.LSTM(3, 5, proj_size=2).cell.own_kernel == "lstmp"
    assert rnnlab.LSTM(3, 5, peepholes=True).cell.own_kernel == "lstm_peepholes"
    assert rnnlab.LSTM(3, 5, proj_size=2, peepholes=True).cell.own_kernel is None


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("B", [1, 4])
def test_kernel_matches_the_reference(num_layers, with_lengths, dtype, B):
    pytest.importorskip("numba")
    from test_kernels import run
    args = kernel_case(num_layers, dtype, with_lengths, B=B)
    plain, fast = run(*args, fast=False), run(*args, fast=True)
    assert plain.keys() == fast.keys() and "grad l0.W_hr" in plain
    for name in plain:
        assert fast[name].dtype == plain[name].dtype, name
        np.testing.assert_allclose(fast[name], plain[name], err_msg=name, **KTOL[dtype])


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_kernel_in_runs_of_rows_with_resets_and_no_dy(threads, bidirectional, monkeypatch):
    """Many rows cut into runs on threads, resets, a gradient from the final state only;
    inference (one step's buffers) gives forward's values."""
    pytest.importorskip("numba")
    from rnnlab import kernels
    from rnnlab.kernels import blas, layers
    monkeypatch.setattr(blas, "PARALLEL_FROM", 0)
    chunks, real = [], layers._rows
    monkeypatch.setattr(layers, "_rows", lambda module, kernel, c, *a: (
        chunks.append((kernel, c)), real(module, kernel, c, *a))[1])
    layer, x, h0, lengths, dy, ds = kernel_case(2, np.float64, True, B=9, T=7, D=6, H=11, P=4,
                                                bidirectional=bidirectional)
    reset = np.random.default_rng(5).random((9, 7)) < 0.2
    res = []
    for fast in (False, True):
        with kernels.use_fast(fast), kernels.threads(threads):
            y, state, cache = layer.forward(x, h0, lengths=lengths, reset=reset)
            first = cache.layers[0][0] if bidirectional else cache.layers[0]
            assert isinstance(first.saved, kernels.Tape) == fast
            grads, dx, d0 = layer.backward(cache, None, ds)
            y_inf, s_inf = layer.infer(x, h0, lengths=lengths, reset=reset)
        np.testing.assert_array_equal(y_inf, y)
        res.append([y, *state, dx, *d0, *(grads[k] for k in sorted(grads))])
    for a, b in zip(*res, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-10)
    kernels_run = {k for k, _ in chunks}
    assert kernels_run == {"forward_proj", "backward_proj"}
    assert (max(c for _, c in chunks) > 1) == (threads > 1)


def test_kernel_without_blas_and_for_token_ids(monkeypatch):
    pytest.importorskip("numba")
    from rnnlab import kernels
    from rnnlab.kernels import layers
    from test_kernels import run
    args = kernel_case(2, np.float64, True)
    plain = run(*args, fast=False)
    with monkeypatch.context() as m:
        m.setattr(layers, "gemm_for", lambda dtype: None)
        m.setattr(layers, "tile_for", lambda dtype: 0)
        fast = run(*args, fast=True)
    for name in plain:
        np.testing.assert_allclose(fast[name], plain[name], err_msg=name, **KTOL[np.float64])
    layer = rnnlab.LSTM(7, 6, proj_size=3, seed=0, dtype=np.float64)
    ids = np.random.default_rng(0).integers(0, 7, size=(3, 5))
    out = []
    for fast in (False, True):
        with kernels.use_fast(fast):
            y, _, cache = layer.forward(ids)
            out.append((y, layer.backward(cache, np.ones_like(y))[0]))
    np.testing.assert_allclose(out[1][0], out[0][0], rtol=0, atol=1e-12)
    for k, g in out[0][1].items():
        np.testing.assert_allclose(out[1][1][k], g, rtol=0, atol=1e-10, err_msg=k)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_streaming_step_runs_the_kernel(num_layers, monkeypatch):
    pytest.importorskip("numba")
    from rnnlab import kernels
    from rnnlab.kernels import layers
    calls = []
    real = layers.step_one
    monkeypatch.setattr(layers, "step_one", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    layer, x, h0, _, _, _ = kernel_case(num_layers, np.float64, False)
    stream = rnnlab.Stream(layer, x.shape[0], h0)
    with kernels.use_fast(False):
        y_ref, _ = layer.infer(x, h0)
    for t in range(x.shape[1]):
        np.testing.assert_allclose(stream.step(x[:, t]), y_ref[:, t], rtol=0, atol=1e-12)
    assert calls == ["lstmp"] * (num_layers * x.shape[1])


def test_files_written_before_the_options_still_load(tmp_path):
    """A layer's record without ``proj_size`` and ``peepholes`` in its config (as files
    were written before) loads as the plain LSTM it is."""
    from rnnlab import io as rio
    layer = rnnlab.LSTM(3, 4, 2, seed=0)
    old = {k: v for k, v in layer.config.items() if k not in ("proj_size", "peepholes")}
    rio.write_record(tmp_path / "old.rnnlab", "layer", old, layer.params)
    back = rnnlab.load(tmp_path / "old.rnnlab")
    assert back.proj_size == 0 and back.peepholes is False
    assert back.config == layer.config
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.infer(x)[0], layer.infer(x)[0])
