"""Reset masks: the state entering a step set to zeros where a new document begins.

Three independent checks, on every cell, both paths (the plain loop and the kernels, in
one run of rows, in parts on threads, and with NumPy's BLAS serving the products):

* a reset run equals the documents run one by one from zeros (float64, 1e-12);
* its gradients equal central finite differences (float64, relative error < 1e-6), with
  padding too;
* the kernels equal the plain loop (float64 1e-10 absolute, as in ``test_kernels``).
"""

import numpy as np
import pytest

import rnnlab
from gradcheck import numerical_grad, rel_error
from rnnlab import kernels
from rnnlab.kernels import blas

LAYERS = {"elman": rnnlab.Elman, "lstm": rnnlab.LSTM, "gru": rnnlab.GRU}
PATHS = ["plain", "fast", "parts", "numpy-blas"]


class path:
    """The context of one path: ``plain`` the reference loop; ``fast`` the kernels on one
    run of rows; ``parts`` the kernels with the batch cut over 3 threads; ``numpy-blas``
    the kernels with NumPy's BLAS doing the per-step products (no tile)."""

    def __init__(self, name, monkeypatch):
        self.name, self.mp = name, monkeypatch

    def __enter__(self):
        self.stack = [kernels.use_fast(self.name != "plain")]
        if self.name == "parts":
            self.mp.setattr(blas, "PARALLEL_FROM", 0)
            self.stack.append(kernels.threads(3))
        if self.name == "numpy-blas":
            self.stack.append(blas.use_blas("numpy"))
        for c in self.stack:
            c.__enter__()

    def __exit__(self, *exc):
        for c in reversed(self.stack):
            c.__exit__(*exc)


def parts(state):
    return list(state) if isinstance(state, tuple) else [state]


def joined(states):
    return states[0] if len(states) == 1 else tuple(states)


def random_state(layer, B, rng):
    shape = (layer.num_layers, B, layer.hidden_size)
    return joined([rng.normal(size=shape) for _ in range(layer.n_state)])


def rows(state, b):
    """Row ``b`` of a state, batch of one."""
    return joined([s[:, b:b + 1].copy() for s in parts(state)])


def setting(cell, num_layers=2, B=4, T=9, seed=0):
    rng = np.random.default_rng(seed)
    layer = LAYERS[cell](3, 5, num_layers, seed=seed + 1, dtype=np.float64)
    x = rng.normal(size=(B, T, 3))
    reset = np.zeros((B, T), bool)
    reset[0, [3, 4, T - 1]] = True  # two resets in a row, and one at the last step
    reset[1, 0] = True  # the given state is not read
    if B > 3:
        reset[2, 5] = True  # row 3 never resets
    return layer, x, random_state(layer, B, rng), reset, rng


@pytest.mark.parametrize("cell", list(LAYERS))
@pytest.mark.parametrize("where", PATHS)
def test_a_reset_run_equals_the_documents_run_one_by_one(cell, where, monkeypatch):
    layer, x, h0, reset, _ = setting(cell)
    with path(where, monkeypatch):
        y, final, _ = layer.forward(x, h0, reset=reset)
        y_inf, final_inf = layer.infer(x, h0, reset=reset)
    np.testing.assert_array_equal(y_inf, y)  # inference: the same arithmetic, no tape
    for b in range(x.shape[0]):
        cuts = [0, *np.flatnonzero(reset[b]), x.shape[1]]
        state, pieces = rows(h0, b), []
        for a, e in zip(cuts[:-1], cuts[1:], strict=True):
            if e == a:
                continue
            yb, state = layer.infer(x[b:b + 1, a:e], None if reset[b, a] else state)
            pieces.append(yb)
        np.testing.assert_allclose(y[b:b + 1], np.concatenate(pieces, axis=1), rtol=0,
                                   atol=1e-12, err_msg=f"row {b}")
        for got, want in zip(parts(final), parts(state), strict=True):
            np.testing.assert_allclose(got[:, b:b + 1], want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", list(LAYERS))
@pytest.mark.parametrize("where", ["plain", "fast", "parts"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_gradients_through_resets_match_finite_differences(cell, where, with_lengths,
                                                            monkeypatch):
    layer, x, h0, reset, rng = setting(cell, B=3, T=7)
    lengths = np.array([7, 4, 2]) if with_lengths else None
    if with_lengths:
        reset[2, 4] = True  # a reset on a padded step: the carried state becomes zeros
    dy = rng.normal(size=(3, 7, 5))
    dstate = random_state(layer, 3, rng)

    def loss():
        y, final, _ = layer.forward(x, h0, lengths=lengths, reset=reset)
        return float((y * dy).sum() + sum((f * d).sum() for f, d in
                                           zip(parts(final), parts(dstate), strict=True)))

    with path(where, monkeypatch):
        _, _, cache = layer.forward(x, h0, lengths=lengths, reset=reset)
        grads, dx, d0 = layer.backward(cache, dy, dstate)
        for name, p in layer.params.items():
            assert rel_error(grads[name], numerical_grad(loss, p)) < 1e-6, name
        assert rel_error(dx, numerical_grad(loss, x)) < 1e-6
        for i, (g, s) in enumerate(zip(parts(d0), parts(h0), strict=True)):
            assert rel_error(g, numerical_grad(loss, s)) < 1e-6, f"state {i}"
            assert not g[:, 1].any()  # row 1 resets at step 0: its given state is unused
            assert g[:, 0].any()


@pytest.mark.parametrize("cell", list(LAYERS))
@pytest.mark.parametrize("where", ["fast", "parts", "numpy-blas"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_kernels_match_the_plain_loop_with_resets(cell, where, with_lengths, monkeypatch):
    layer, x, h0, _, rng = setting(cell, B=6, T=11)
    reset = rng.random((6, 11)) < 0.3
    lengths = np.array([11, 8, 0, 5, 11, 1]) if with_lengths else None
    dy = rng.normal(size=(6, 11, 5))
    out = {}
    for name in ("plain", where):
        with path(name, monkeypatch):
            y, final, cache = layer.forward(x, h0, lengths=lengths, reset=reset)
            grads, dx, d0 = layer.backward(cache, dy, None)
        out[name] = [y, dx, *parts(final), *parts(d0), *grads.values()]
    for a, b in zip(out["plain"], out[where], strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-10)


@pytest.mark.parametrize("cell", list(LAYERS))
def test_a_reset_per_step_resets_every_sequence(cell):
    layer, x, h0, _, _ = setting(cell)
    per_step = np.zeros(9, bool)
    per_step[[2, 6]] = True
    y1, s1 = layer.infer(x, h0, reset=per_step)
    y2, s2 = layer.infer(x, h0, reset=np.tile(per_step, (4, 1)))
    np.testing.assert_array_equal(y1, y2)
    for a, b in zip(parts(s1), parts(s2), strict=True):
        np.testing.assert_array_equal(a, b)
    y0, _ = layer.infer(x, h0)
    assert np.abs(y1 - y0)[:, 2:].max() > 1e-3  # the resets changed what follows them
    np.testing.assert_array_equal(y1[:, :2], y0[:, :2])


@pytest.mark.parametrize("cell", list(LAYERS))
@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
def test_stream_step_resets_the_streams_it_names(cell, fast):
    layer, x, h0, reset, _ = setting(cell)
    y, final = layer.infer(x, h0, reset=reset)
    stream = rnnlab.Stream(layer, 4, h0, fast=fast)
    for t in range(x.shape[1]):
        np.testing.assert_allclose(stream.step(x[:, t], reset=reset[:, t]), y[:, t],
                                   rtol=0, atol=1e-12)
    for a, b in zip(parts(stream.state), parts(final), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_network_and_trainer_take_resets():
    rng = np.random.default_rng(0)
    net = rnnlab.Network(3, 6, 4, cell="gru", output="softmax", readout="all", seed=0,
                         dtype=np.float64)
    x, y = rng.normal(size=(2, 8, 3)), rng.integers(0, 4, size=(2, 8))
    reset = np.zeros((2, 8), bool)
    reset[1, 4] = True
    res = net.loss_and_grad(x, y, reset=reset)
    assert res.loss == pytest.approx(net.loss(x, y, reset=reset), abs=1e-12)
    np.testing.assert_allclose(net.predict(x, reset=reset)[1, 4:],
                               net.predict(x[1:, 4:])[0], rtol=0, atol=1e-12)

    def f():
        return net.loss(x, y, reset=reset)

    name = "rnn.l0.W_h"
    assert rel_error(res.grads[name], numerical_grad(f, net.params[name])) < 1e-6
    trainer = rnnlab.Trainer(net, "sgd", 0.1, log=None, progress=False)
    before = net.params[name].copy()
    info, state = trainer.train_step(x, y, reset=reset)
    np.testing.assert_allclose(net.params[name], before - 0.1 * res.grads[name], atol=1e-12)
    assert info.loss == pytest.approx(res.loss)


@pytest.mark.parametrize("bad,msg", [
    (np.zeros((4, 8), bool), r"reset must have shape \(4, 9\) .* or \(9,\) .*got \(4, 8\)"),
    (np.zeros(4), r"got \(4,\)"),
    (np.full((4, 9), 2), r"reset must hold booleans \(or 0 and 1\), got dtype int64 with a "
                         r"value 2"),
    (np.full((4, 9), "a"), r"reset must hold booleans .* got dtype <U1$"),
])
def test_bad_reset_masks_are_refused_in_one_line(bad, msg):
    layer, x, h0, _, _ = setting("lstm")
    with pytest.raises(ValueError, match=msg):
        layer.forward(x, h0, reset=bad)


def test_zero_one_masks_count_as_booleans_and_an_empty_one_changes_nothing():
    layer, x, h0, reset, _ = setting("elman")
    y_bool, _ = layer.infer(x, h0, reset=reset)
    y_int, _ = layer.infer(x, h0, reset=reset.astype(int))
    np.testing.assert_array_equal(y_bool, y_int)
    y_none, _ = layer.infer(x, h0, reset=np.zeros((4, 9), bool))
    np.testing.assert_array_equal(y_none, layer.infer(x, h0)[0])


def test_stream_refuses_a_bad_reset():
    stream = rnnlab.Stream(rnnlab.GRU(3, 4), 2)
    with pytest.raises(ValueError, match=r"reset must have shape \(2,\), one flag per stream"):
        stream.step(np.zeros((2, 3), np.float32), reset=[True])
