"""The attention readout (``readout="attention"``): softmax weights over each sequence's
real steps, their weighted sum of the top outputs, the head; values, gradients against
central finite differences in float64 with unequal lengths, and PyTorch autograd."""

import numpy as np
import pytest

from gradcheck import numerical_grad, rel_error
from rnnlab import Network, Trainer, load


def attention_net(cell="gru", seed=0, **kw):
    """A float64 attention network whose scoring vector is not zero (the default), so the
    weights differ from step to step."""
    net = Network(2, 5, 3, cell=cell, readout="attention", seed=seed, dtype=np.float64, **kw)
    rng = np.random.default_rng(seed + 100)
    net.params["head.w_a"] = rng.standard_normal(net.params["head.w_a"].shape)
    return net


def padded(rng, B=3, T=7, lengths=(7, 4, 2)):
    x = rng.standard_normal((B, T, 2))
    for i, n in enumerate(lengths):
        x[i, n:] = 0.0
    return x, np.array(lengths)


def fd_error(net, x, y, lengths) -> dict:
    """The norm-wise relative error of each parameter's gradient (tests/gradcheck.py)."""
    r = net.loss_and_grad(x, y, lengths=lengths)
    return {name: rel_error(r.grads[name], numerical_grad(
        lambda: net.loss_and_grad(x, y, lengths=lengths).loss, p))
        for name, p in net.params.items()}


@pytest.mark.parametrize("cell", ["gru", "lstm", "elman"])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_attention_gradients(cell, with_lengths):
    rng = np.random.default_rng(0)
    x, lengths = padded(rng)
    net = attention_net(cell)
    errors = fd_error(net, x, np.array([0, 2, 1]), lengths if with_lengths else None)
    assert set(errors) >= {"head.w_a", "head.W_y", "head.b_y"}
    assert max(errors.values()) < 1e-6, errors


def test_attention_gradients_bidirectional_two_layers_linear():
    rng = np.random.default_rng(1)
    x, lengths = padded(rng, B=3, T=6, lengths=(6, 3, 1))
    net = attention_net("lstm", seed=1, bidirectional=True, num_layers=2, output="linear")
    assert net.params["head.w_a"].shape == (10,)
    y = rng.standard_normal((3, 3))
    errors = fd_error(net, x, y, lengths)
    assert max(errors.values()) < 1e-6, errors


def test_attention_values():
    rng = np.random.default_rng(2)
    x, lengths = padded(rng, B=2, T=6, lengths=(6, 3))
    net = attention_net("gru", seed=2)
    W, b, w_a = (net.params[k] for k in ("head.W_y", "head.b_y", "head.w_a"))
    y, _, _, _ = net.rnn.run(x, None, lengths, keep=False)  # the top outputs (B, T, H)
    z, _ = net.infer(x, lengths=lengths)
    for i, n in enumerate(lengths):
        s = y[i, :n] @ w_a
        a = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
        np.testing.assert_allclose(z[i], (a[:, None] * y[i, :n]).sum(axis=0) @ W + b,
                                   rtol=1e-12)
    # padded steps do not count, whatever they hold
    x2 = x.copy()
    x2[1, 3:] = 50.0
    np.testing.assert_allclose(net.infer(x2, lengths=lengths)[0], z, rtol=1e-12)
    # a fresh network's scoring vector is zero: uniform weights, the mean readout
    fresh = Network(2, 5, 3, cell="gru", readout="attention", seed=2, dtype=np.float64)
    mean = Network(2, 5, 3, cell="gru", readout="mean", seed=2, dtype=np.float64)
    assert not fresh.params["head.w_a"].any()
    np.testing.assert_allclose(fresh.infer(x, lengths=lengths)[0],
                               mean.infer(x, lengths=lengths)[0], rtol=1e-12)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_attention_matches_torch_autograd(bidirectional):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from rnnlab import interop

    rng = np.random.default_rng(3)
    x, lengths = padded(rng, B=4, T=6, lengths=(6, 2, 5, 1))
    labels = np.array([0, 2, 1, 2])
    net = attention_net("lstm", seed=3, bidirectional=bidirectional)
    z, _, cache = net.forward(x, lengths=lengths)
    loss, dz = net.output_loss(z, labels)
    grads, dx, _ = net.backward(cache, dz)

    module = interop.to_torch(net.rnn)
    xt = torch.tensor(x, requires_grad=True)
    head = {k: torch.tensor(np.array(v), requires_grad=True)
            for k, v in net.params.items() if k.startswith("head.")}
    packed = pack_padded_sequence(xt, torch.as_tensor(lengths), batch_first=True,
                                  enforce_sorted=False)
    y, _ = pad_packed_sequence(module(packed)[0], batch_first=True, total_length=x.shape[1])
    real = torch.arange(x.shape[1])[None, :] < torch.as_tensor(lengths)[:, None]  # (B, T)
    scores = (y @ head["head.w_a"]).masked_fill(~real, float("-inf"))
    alpha = torch.softmax(scores, dim=1)  # (B, T)
    pooled = (alpha[:, :, None] * y).sum(dim=1)  # (B, H)
    logits = pooled @ head["head.W_y"] + head["head.b_y"]
    loss_t = torch.nn.functional.cross_entropy(logits, torch.as_tensor(labels))
    loss_t.backward()

    assert abs(loss - loss_t.item()) < 1e-12
    np.testing.assert_allclose(z, logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert rel_error(dx, xt.grad.numpy()) < 1e-10
    for k, t in head.items():
        assert rel_error(grads[k], t.grad.numpy()) < 1e-10, k
    for k, g in interop.grads_from_torch(module).items():
        assert rel_error(grads[f"rnn.{k}"], g) < 1e-10, k


def test_attention_learns_where_to_look(tmp_path):
    """The label is the sign of feature 0 at the one step that feature 1 marks, at a random
    place among steps of random signs: the mean readout dilutes that step over the
    sequence, attention can learn to find it (a margin over mean)."""
    rng = np.random.default_rng(4)
    N, T = 256, 20
    x = np.zeros((N, T, 2), dtype=np.float32)
    x[:, :, 0] = rng.choice([-1.0, 1.0], (N, T))
    where = rng.integers(0, T, N)
    sign = (x[np.arange(N), where, 0] > 0).astype(np.int64)
    x[np.arange(N), where, 1] = 1.0  # the marker of the step that matters
    xtr, ytr, xte, yte = x[:192], sign[:192], x[192:], sign[192:]
    scores = {}
    for readout in ("mean", "attention"):
        net = Network(2, 8, 2, cell="elman", readout=readout, seed=0)
        Trainer(net, "adam", lr=1e-2, batch_size=16, seed=0).fit(xtr, ytr, epochs=15)
        scores[readout] = float((net.predict(xte).argmax(axis=1) == yte).mean())
        if readout == "attention":
            assert np.abs(net.params["head.w_a"]).max() > 0.1  # it learned to weigh steps
            net.save(tmp_path / "m.rnnlab")
            back = load(tmp_path / "m.rnnlab")
            assert back.readout == "attention"
            np.testing.assert_array_equal(back.params["head.w_a"], net.params["head.w_a"])
            np.testing.assert_array_equal(back.predict(xte), net.predict(xte))
    assert scores["attention"] >= 0.9, scores
    assert scores["attention"] >= scores["mean"] + 0.2, scores


def test_attention_parameter_count_and_refusals():
    from rnnlab.saving import n_params

    net = Network(2, 5, 3, cell="gru", readout="attention", bidirectional=True, seed=0)
    assert n_params("network", net.config) == net.n_params
    one_way = Network(2, 5, 3, cell="gru", readout="attention", seed=0)
    assert n_params("network", one_way.config) == one_way.n_params
    with pytest.raises(ValueError, match="readout='attention'"):
        Trainer(one_way, "adam", bptt_steps=(3, 3))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_attention_exports_to_onnx(tmp_path, cell, lengths, bidirectional):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from rnnlab import onnx as rnnlab_onnx

    net = Network(3, 5, 4, cell=cell, num_layers=2, readout="attention",
                  bidirectional=bidirectional, seed=4)
    rng = np.random.default_rng(5)
    net.params["head.w_a"] = rng.standard_normal(net.params["head.w_a"].shape).astype(
        np.float32)
    path = rnnlab_onnx.export(net, tmp_path / "net.onnx", lengths=lengths)
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert {"MatMul", "Softmax", "Mul", "ReduceSum"} <= ops
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for B, T in [(1, 1), (3, 8), (5, 4)]:  # shapes other than any seen at export
        x = rng.standard_normal((B, T, 3)).astype(np.float32)
        lens = rng.integers(1, T + 1, size=B) if lengths else None
        feed = {"x": x} | ({"lengths": lens.astype(np.int64)} if lengths else {})
        (got,) = session.run(None, feed)
        want = net.predict(x, lengths=lens)
        assert got.shape == want.shape == (B, 4)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        if lengths:  # padded steps count for nothing, whatever they hold
            x[np.arange(T)[None, :] >= lens[:, None]] = 40.0
            np.testing.assert_allclose(session.run(None, feed | {"x": x})[0], want,
                                       rtol=1e-5, atol=1e-5)


def test_train_task_readout_attention(tmp_path):
    from rnnlab import apps, cli
    from test_apps_ucr import SMALL, make_set

    folder = make_set(tmp_path / "Toy", "Toy", D=2, lengths=[9, 6], seed=3)
    out = tmp_path / "run"
    assert cli.main(["train", "--task", f"ucr:{folder}", *SMALL, "--readout", "attention",
                     "--out", str(out)]) == 0
    net = apps.load(out / "model.rnnlab")
    assert net.readout == "attention" and net.params["head.w_a"].any()
    assert cli.main(["eval", str(out), "--json"]) == 0
