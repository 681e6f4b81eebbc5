"""rnnlab.onnx: exported files run in onnxruntime and compute what rnnlab computes.

Every cell, one and two layers, one direction and bidirectional, with and without lengths
and initial states, layers and networks (readout all and last, softmax and linear), run on
batch sizes, lengths and numbers of steps other than any seen at export; the graph's
interface and operators; the opsets; each refusal; the command line.
"""

import importlib
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import rnnlab
from rnnlab import cli
from rnnlab import io as rio
from rnnlab import onnx as ronnx
from rnnlab.cells import LSTMCell

#: test id -> (layer class, its options)
LAYERS = {
    "elman-tanh": (rnnlab.Elman, {"activation": "tanh"}),
    "elman-relu": (rnnlab.Elman, {"activation": "relu"}),
    "elman-sigmoid": (rnnlab.Elman, {"activation": "sigmoid"}),
    "lstm": (rnnlab.LSTM, {}),
    "gru": (rnnlab.GRU, {}),
}
D, H = 3, 5
TOL = {"rtol": 1e-5, "atol": 1e-5}
#: (B, T) shapes the files are run on; nothing about them is given at export
SHAPES = [(1, 1), (2, 9), (6, 4)]
DIRECTIONS = pytest.mark.parametrize("bidirectional", [False, True],
                                     ids=["one-way", "bidirectional"])


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def draw_lengths(rng, B, T):
    """Lengths in [0, T], a full one and (from B = 3 on) a zero among them."""
    lens = rng.integers(0, T + 1, size=B)
    lens[0] = T
    if B >= 3:
        lens[1] = 0
    return lens


def draw_state(rng, layer, B):
    zeros = layer.initial_state(B)
    parts = zeros if isinstance(zeros, tuple) else (zeros,)
    drawn = tuple(rng.normal(size=z.shape).astype(layer.dtype) for z in parts)
    return drawn if isinstance(zeros, tuple) else drawn[0]


def feed_for(rng, layer, B, T, lengths, states):
    """The onnxruntime feed and the matching (x, state, lengths) for rnnlab."""
    x = rng.normal(size=(B, T, layer.input_size)).astype(np.float32)
    feed, state, lens = {"x": x}, None, None
    if lengths:
        lens = draw_lengths(rng, B, T)
        feed["lengths"] = lens.astype(np.int64)
    if states:
        state = draw_state(rng, layer, B)
        parts = state if isinstance(state, tuple) else (state,)
        feed.update({f"{s}0": a.astype(np.float32) for s, a in zip("hc", parts, strict=False)})
    return feed, x, state, lens


@DIRECTIONS
@pytest.mark.parametrize("states", [False, True], ids=["zero-state", "states"])
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_a_layer_computes_what_infer_computes(tmp_path, kind, num_layers, lengths, states,
                                              bidirectional):
    cls, opts = LAYERS[kind]
    layer = cls(D, H, num_layers, seed=num_layers, bidirectional=bidirectional, **opts)
    path = ronnx.export(layer, tmp_path / "layer.onnx", lengths=lengths, states=states)
    s = session(path)
    rng = np.random.default_rng(7)
    for B, T in SHAPES:
        feed, x, state, lens = feed_for(rng, layer, B, T, lengths, states)
        y, final = layer.infer(x, state, lengths=lens)
        want = [y, *(final if isinstance(final, tuple) else (final,))]
        got = s.run(None, feed)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape and g.dtype == np.float32
            np.testing.assert_allclose(g, w, **TOL)


@DIRECTIONS
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("output", ["softmax", "linear"])
@pytest.mark.parametrize("readout", ["all", "last"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_a_network_computes_what_predict_computes(tmp_path, cell, num_layers, readout, output,
                                                  lengths, bidirectional):
    net = rnnlab.Network(D, H, 4, cell=cell, num_layers=num_layers, readout=readout,
                         output=output, bidirectional=bidirectional, seed=3)
    s = session(ronnx.export(net, tmp_path / "net.onnx", lengths=lengths))
    rng = np.random.default_rng(11)
    for B, T in SHAPES:
        feed, x, _, lens = feed_for(rng, net.rnn, B, T, lengths, False)
        (got,) = s.run(None, feed)
        want = net.predict(x, lengths=lens)
        assert got.shape == want.shape == ((B, T, 4) if readout == "all" else (B, 4))
        np.testing.assert_allclose(got, want, **TOL)


@DIRECTIONS
@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("readout", ["all", "last"])
def test_a_network_with_initial_states(tmp_path, readout, cell, bidirectional):
    net = rnnlab.Network(D, H, 3, cell=cell, num_layers=2, readout=readout,
                         bidirectional=bidirectional, seed=5)
    s = session(ronnx.export(net, tmp_path / "net.onnx", lengths=True, states=True))
    rng = np.random.default_rng(2)
    feed, x, state, lens = feed_for(rng, net.rnn, 5, 6, True, True)
    np.testing.assert_allclose(s.run(None, feed)[0], net.predict(x, lengths=lens, state=state),
                               **TOL)


def test_a_float64_model_is_written_in_float32(tmp_path):
    layer = rnnlab.GRU(D, H, 2, seed=0, dtype=np.float64)
    path = ronnx.export(layer, tmp_path / "gru.onnx", lengths=True)
    floats = [t for t in onnx.load(path).graph.initializer if t.data_type != onnx.TensorProto.INT64]
    assert floats and all(t.data_type == onnx.TensorProto.FLOAT for t in floats)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 7, D))
    lens = np.array([7, 3, 0, 5])
    y, h = layer.infer(x, lengths=lens)
    got_y, got_h = session(path).run(None, {"x": x.astype(np.float32), "lengths": lens})
    np.testing.assert_allclose(got_y, y, **TOL)
    np.testing.assert_allclose(got_h, h, **TOL)


# --------------------------------------------------------------------------------------
# what rnnlab's padding means, checked on its own


@pytest.mark.parametrize("kind", ["elman-tanh", "lstm", "gru"])
def test_padded_steps_output_zeros_and_the_state_is_the_last_real_steps(tmp_path, kind):
    cls, opts = LAYERS[kind]
    layer = cls(D, H, 1, seed=1, **opts)
    s = session(ronnx.export(layer, tmp_path / "m.onnx", lengths=True))
    x = np.random.default_rng(1).normal(size=(3, 6, D)).astype(np.float32)
    lens = np.array([6, 2, 4])
    y, h_n = s.run(None, {"x": x, "lengths": lens})[:2]
    for b, n in enumerate(lens):
        assert np.all(y[b, n:] == 0) and np.all(y[b, :n] != 0)
        np.testing.assert_allclose(h_n[0, b], y[b, n - 1], **TOL)
        # the steps past the length do not matter
        x2 = x.copy()
        x2[b, n:] = 100.0
        np.testing.assert_array_equal(s.run(None, {"x": x2, "lengths": lens})[1][0, b],
                                      h_n[0, b])


@pytest.mark.parametrize("kind", ["elman-tanh", "lstm", "gru"])
def test_the_reverse_direction_reads_each_sequence_backwards_within_its_length(tmp_path, kind):
    cls, opts = LAYERS[kind]
    layer = cls(D, H, 1, seed=1, bidirectional=True, **opts)
    s = session(ronnx.export(layer, tmp_path / "m.onnx", lengths=True))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 6, D)).astype(np.float32)
    lens = np.array([6, 2, 4])
    y, h_n = s.run(None, {"x": x, "lengths": lens})[:2]
    assert y.shape == (3, 6, 2 * H) and h_n.shape == (2, 3, H)
    # the reverse direction alone: a one-way layer with its weights, on each sequence
    # reversed within its length
    one_way = cls(D, H, 1, seed=0, **opts)
    one_way.params.update({k.replace("l0r.", "l0."): v.copy() for k, v in layer.params.items()
                           if k.startswith("l0r.")})
    for b, n in enumerate(lens):
        assert np.all(y[b, n:] == 0) and np.all(y[b, :n] != 0)
        np.testing.assert_allclose(h_n[0, b], y[b, n - 1, :H], **TOL)  # forward: at n - 1
        np.testing.assert_allclose(h_n[1, b], y[b, 0, H:], **TOL)  # reverse: at step 0
        y_r, h_r = one_way.infer(x[b:b + 1, :n][:, ::-1])
        np.testing.assert_allclose(y[b, :n, H:], y_r[0, ::-1], **TOL)
        np.testing.assert_allclose(h_n[1, b], (h_r[0] if isinstance(h_r, tuple) else h_r)[0, 0],
                                   **TOL)
        # the steps past the length matter to neither direction
        x2 = x.copy()
        x2[b, n:] = 100.0
        y2, h2 = s.run(None, {"x": x2, "lengths": lens})[:2]
        np.testing.assert_array_equal(y2[b], y[b])
        np.testing.assert_array_equal(h2[:, b], h_n[:, b])


@DIRECTIONS
@pytest.mark.parametrize("kind", ["elman-tanh", "lstm", "gru"])
def test_a_sequence_of_length_zero_keeps_its_initial_state(tmp_path, kind, bidirectional):
    # onnxruntime's operators give zeros for it; the graph gives the initial state, as rnnlab
    cls, opts = LAYERS[kind]
    layer = cls(D, H, 2, seed=1, bidirectional=bidirectional, **opts)
    s = session(ronnx.export(layer, tmp_path / "m.onnx", lengths=True, states=True))
    rng = np.random.default_rng(3)
    feed, _, state, _ = feed_for(rng, layer, 2, 5, False, True)
    feed["lengths"] = np.array([0, 5])
    out = s.run(None, feed)
    parts = state if isinstance(state, tuple) else (state,)
    for got, given in zip(out[1:], parts, strict=True):
        np.testing.assert_array_equal(got[:, 0], given[:, 0])
        assert np.abs(got[:, 1] - given[:, 1]).max() > 1e-3
    assert np.all(out[0][0] == 0)


# --------------------------------------------------------------------------------------
# the graph


def dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@DIRECTIONS
@pytest.mark.parametrize("states", [False, True])
@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("kind", ["elman-tanh", "lstm", "gru"])
def test_the_interface_of_a_layer(tmp_path, kind, lengths, states, bidirectional):
    cls, opts = LAYERS[kind]
    layer = cls(D, H, 2, seed=0, bidirectional=bidirectional, **opts)
    model = onnx.load(ronnx.export(layer, tmp_path / "m.onnx", lengths=lengths, states=states))
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph
    names = ("h", "c") if kind == "lstm" else ("h",)
    N = 2 if bidirectional else 1
    want_in = {"x": ["batch", "time", D]}
    if lengths:
        want_in["lengths"] = ["batch"]
    if states:
        want_in.update({f"{s}0": [2 * N, "batch", H] for s in names})
    want_out = {"y": ["batch", "time", N * H],
                **{f"{s}_n": [2 * N, "batch", H] for s in names}}
    assert {v.name: dims(v) for v in graph.input} == want_in
    assert [v.name for v in graph.input] == list(want_in)
    assert {v.name: dims(v) for v in graph.output} == want_out
    assert [v.name for v in graph.output] == list(want_out)
    types = {v.name: v.type.tensor_type.elem_type for v in graph.input}
    assert types.pop("lengths", onnx.TensorProto.INT64) == onnx.TensorProto.INT64
    assert set(types.values()) == {onnx.TensorProto.FLOAT}
    inputs, outputs = ronnx.signature(layer, lengths=lengths, states=states)
    assert {k: list(v) for k, v in inputs.items()} == want_in
    assert {k: list(v) for k, v in outputs.items()} == want_out


@DIRECTIONS
@pytest.mark.parametrize("readout, want", [("all", ["batch", "time", 4]), ("last", ["batch", 4])])
def test_the_interface_of_a_network(tmp_path, readout, want, bidirectional):
    net = rnnlab.Network(D, H, 4, cell="gru", readout=readout, bidirectional=bidirectional,
                         seed=0)
    model = onnx.load(ronnx.export(net, tmp_path / "n.onnx", lengths=True, states=True))
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph
    assert [(v.name, dims(v)) for v in graph.input] == [
        ("x", ["batch", "time", D]), ("lengths", ["batch"]),
        ("h0", [2 if bidirectional else 1, "batch", H])]
    assert [(v.name, dims(v)) for v in graph.output] == [("y", want)]


@pytest.mark.parametrize("kind, op", [("elman-relu", "RNN"), ("lstm", "LSTM"), ("gru", "GRU")])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_one_standard_operator_per_layer_in_the_default_layout(tmp_path, kind, op, num_layers):
    cls, opts = LAYERS[kind]
    model = onnx.load(ronnx.export(cls(D, H, num_layers, seed=0, **opts), tmp_path / "m.onnx",
                                   lengths=True))
    nodes = model.graph.node
    ops = [n for n in nodes if n.op_type in ("RNN", "LSTM", "GRU")]
    assert [n.op_type for n in ops] == [op] * num_layers
    assert all(n.domain == "" for n in nodes)  # the standard operators only
    assert [n.op_type for n in nodes].count("Transpose") == 2
    for n in ops:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert attrs.pop("hidden_size") == H
        assert attrs.get("layout", 0) == 0 and "direction" not in attrs
        assert n.input[4] == "lengths_int32"  # sequence_lens: int64 lengths cast to int32
        if op == "GRU":
            assert attrs == {"linear_before_reset": 1}
        elif op == "RNN":
            assert attrs == {"activations": [b"Relu"]}
        else:
            assert attrs == {}
    assert model.producer_name == "rnnlab"


@pytest.mark.parametrize("kind, op", [("elman-relu", "RNN"), ("lstm", "LSTM"), ("gru", "GRU")])
def test_a_bidirectional_layer_is_one_bidirectional_operator_per_layer(tmp_path, kind, op):
    cls, opts = LAYERS[kind]
    model = onnx.load(ronnx.export(cls(D, H, 2, bidirectional=True, seed=0, **opts),
                                   tmp_path / "m.onnx", lengths=True))
    ops = [n for n in model.graph.node if n.op_type in ("RNN", "LSTM", "GRU")]
    assert [n.op_type for n in ops] == [op] * 2
    for n in ops:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["direction"] == b"bidirectional" and attrs.get("layout", 0) == 0
        if op == "RNN":  # one activation per direction
            assert attrs["activations"] == [b"Relu", b"Relu"]
    inits = {t.name: onnx.numpy_helper.to_array(t).shape for t in model.graph.initializer}
    G = {"RNN": 1, "LSTM": 4, "GRU": 3}[op]
    assert inits["l0.W"] == (2, G * H, D) and inits["l1.W"] == (2, G * H, 2 * H)
    assert inits["l0.R"] == inits["l1.R"] == (2, G * H, H)
    assert inits["l0.B"] == inits["l1.B"] == (2, 2 * G * H)


def test_the_weights_are_the_layers_in_onnx_gate_order(tmp_path):
    layer = rnnlab.LSTM(D, H, 1, seed=0)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in
             onnx.load(ronnx.export(layer, tmp_path / "m.onnx")).graph.initializer}
    W_x, W_h, b = (layer.params[f"l0.{n}"] for n in ("W_x", "W_h", "b"))
    blocks = {g: slice(i * H, (i + 1) * H) for i, g in enumerate("ifgo")}
    for j, g in enumerate("iofg"):  # ONNX's i, o, f, c
        rows = slice(j * H, (j + 1) * H)
        np.testing.assert_array_equal(inits["l0.W"][0, rows], W_x[:, blocks[g]].T)
        np.testing.assert_array_equal(inits["l0.R"][0, rows], W_h[:, blocks[g]].T)
        np.testing.assert_array_equal(inits["l0.B"][0, rows], b[blocks[g]])
    assert np.all(inits["l0.B"][0, 4 * H:] == 0)  # the recurrent bias: b holds the sum


def test_a_bidirectional_layers_weights_are_forward_then_reverse(tmp_path):
    layer = rnnlab.GRU(D, H, 1, bidirectional=True, seed=0)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in
             onnx.load(ronnx.export(layer, tmp_path / "m.onnx")).graph.initializer}
    order = [1, 0, 2]  # rnnlab's r, z, n -> ONNX's z, r, h
    for d, prefix in enumerate(("l0", "l0r")):
        W_x, W_h, b, b_h = (layer.params[f"{prefix}.{n}"] for n in ("W_x", "W_h", "b", "b_h"))
        for j, i in enumerate(order):
            rows, cols = slice(j * H, (j + 1) * H), slice(i * H, (i + 1) * H)
            np.testing.assert_array_equal(inits["l0.W"][d, rows], W_x[:, cols].T)
            np.testing.assert_array_equal(inits["l0.R"][d, rows], W_h[:, cols].T)
            np.testing.assert_array_equal(inits["l0.B"][d, rows], b[cols])
            np.testing.assert_array_equal(inits["l0.B"][d, 3 * H:][rows], b_h[cols])


# --------------------------------------------------------------------------------------
# opsets


def test_the_default_opset_is_stated_and_written(tmp_path):
    model = onnx.load(ronnx.export(rnnlab.LSTM(D, H, seed=0), tmp_path / "m.onnx"))
    assert ronnx.DEFAULT_OPSET == 17
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.ir_version == 8  # the IR version of opset 17, for runtimes of its time


@pytest.mark.parametrize("which", ["min", "max"])
def test_the_oldest_and_newest_opsets_check_and_run(tmp_path, which):
    opset = ronnx.MIN_OPSET if which == "min" else ronnx.max_opset()
    net = rnnlab.Network(D, H, 3, cell="lstm", num_layers=2, readout="all", seed=0)
    path = ronnx.export(net, tmp_path / "n.onnx", lengths=True, states=True, opset=opset)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == opset
    rng = np.random.default_rng(0)
    feed, x, state, lens = feed_for(rng, net.rnn, 3, 5, True, True)
    np.testing.assert_allclose(session(path).run(None, feed)[0],
                               net.predict(x, lengths=lens, state=state), **TOL)


@pytest.mark.parametrize("opset", [12, "max+1", "17", 17.0, True])
def test_an_opset_out_of_range_is_refused(tmp_path, opset):
    if opset == "max+1":
        opset = ronnx.max_opset() + 1
    with pytest.raises(ValueError, match=rf"opset must be an integer from 13 to "
                                         rf"{ronnx.max_opset()}.*got {opset!r}"):
        ronnx.export(rnnlab.GRU(D, H, seed=0), tmp_path / "m.onnx", opset=opset)
    assert not (tmp_path / "m.onnx").exists()


# --------------------------------------------------------------------------------------
# refusals: one line naming what cannot be exported


class PeepholeCell(LSTMCell):
    """A cell of one's own: its step may differ from the standard LSTM's."""


class PeepholeLSTM(rnnlab.LSTM):
    Cell = PeepholeCell


def refused(model, match, tmp_path, **options):
    with pytest.raises(ValueError, match=match) as e:
        ronnx.export(model, tmp_path / "m.onnx", **options)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_a_cell_without_a_standard_operator_is_refused(tmp_path):
    refused(PeepholeLSTM(D, H, seed=0), "PeepholeLSTM: its cell PeepholeCell has no standard "
                                        "ONNX operator", tmp_path)


def test_an_activation_onnx_lacks_is_refused(tmp_path, monkeypatch):
    from rnnlab import activations

    monkeypatch.setitem(activations.ACTIVATIONS, "softsign", (lambda a: a / (1 + np.abs(a)),
                                                              lambda y: (1 - np.abs(y)) ** 2))
    refused(rnnlab.Elman(D, H, activation="softsign", seed=0), "activation 'softsign'", tmp_path)


def test_what_is_not_a_model_is_refused(tmp_path):
    refused({"l0.W_x": np.zeros((3, 5))}, r"expected an rnnlab Network or recurrent layer "
                                          r"\(Elman, LSTM, GRU\), got dict", tmp_path)


@pytest.mark.parametrize("value, what", [(np.nan, "NaN or Inf"),
                                         (1e300, "values beyond float32's range")])
def test_a_parameter_float32_cannot_hold_is_refused(tmp_path, value, what):
    net = rnnlab.Network(D, H, 2, cell="gru", seed=0, dtype=np.float64)
    net.params["rnn.l0.W_h"][1, 2] = value
    refused(net, f"parameter rnn.l0.W_h holds {what}", tmp_path)


@pytest.mark.parametrize("peepholes", [False, True])
def test_an_output_projection_is_refused(tmp_path, peepholes):
    layer = rnnlab.LSTM(D, H, seed=0, bidirectional=True, proj_size=2, peepholes=peepholes)
    refused(layer, "LSTM with proj_size=2: ONNX's standard LSTM operator has no output "
                   "projection", tmp_path)
    refused(rnnlab.Network(D, H, 2, proj_size=2, seed=0), "proj_size=2", tmp_path)


@pytest.mark.parametrize("option", ["lengths", "states"])
def test_options_must_be_booleans(tmp_path, option):
    refused(rnnlab.GRU(D, H, seed=0), f"{option} must be True or False, got 1", tmp_path,
            **{option: 1})


def test_a_path_that_is_a_folder_or_in_no_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        ronnx.export(rnnlab.GRU(D, H, seed=0), tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        ronnx.export(rnnlab.GRU(D, H, seed=0), tmp_path / "nowhere" / "m.onnx")


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = ronnx.export(rnnlab.GRU(D, H, seed=0), tmp_path / "m.onnx")
    before = path.read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rio.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        ronnx.export(rnnlab.LSTM(D, H, seed=1), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left


# --------------------------------------------------------------------------------------
# the onnx package


def test_the_top_level_onnx_package_is_imported_not_this_module():
    package = ronnx._import_onnx()
    assert package is importlib.import_module("onnx") and package is not ronnx
    assert package.__name__ == "onnx" and hasattr(package, "helper")
    assert Path(rnnlab.__file__).parent not in Path(package.__file__).parents
    assert rnnlab.onnx is ronnx  # the package root's lazy attribute is this module


def test_without_onnx_export_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` fails as if not installed
    with pytest.raises(ModuleNotFoundError) as e:
        ronnx.export(rnnlab.GRU(D, H, seed=0), tmp_path / "m.onnx")
    assert 'pip install "rnnlab[onnx]"' in str(e.value) and "\n" not in str(e.value)
    model = tmp_path / "gru.rnnlab"
    rnnlab.save(rnnlab.GRU(D, H, seed=0), model)
    assert cli.main(["export", str(model), "--onnx", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "rnnlab[onnx]"' in err[0]
    assert not (tmp_path / "m.onnx").exists()


# --------------------------------------------------------------------------------------
# the command line


TEXT = "".join(f"the {w} sat on the mat.\n" for w in ["cat", "dog", "bat", "rat"] * 4)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    (root / "tiny.txt").write_text(TEXT, encoding="utf-8")
    assert cli.main(["train", "--data", str(root / "tiny.txt"), "--steps", "2", "--out",
                     str(root / "run"), "--hidden", "8", "--bptt", "8", "--batch", "4",
                     "--cell", "gru", "--layers", "2", "--no-progress"]) == 0
    return root / "run"


def test_export_a_language_model_run(lm_run, tmp_path, capsys):
    out = tmp_path / "lm.onnx"
    assert cli.main(["export", str(lm_run), "--onnx", str(out), "--lengths"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {out} (ONNX opset 17)") and "lengths (batch)" in line
    net = rnnlab.lm.open_run(lm_run).net
    V = net.output_size
    ids = np.random.default_rng(0).integers(0, V, size=(3, 10))
    x = np.eye(V, dtype=np.float32)[ids]  # one-hot characters, as the run was trained on
    lens = np.array([10, 4, 7])
    np.testing.assert_allclose(session(out).run(None, {"x": x, "lengths": lens})[0],
                               net.predict(x, lengths=lens), **TOL)


def test_export_a_task_run(tmp_path, capsys):
    from rnnlab.apps import TASK_FORMAT, TASK_VERSION

    run = tmp_path / "task"
    run.mkdir()
    net = rnnlab.Network(D, H, 2, cell="lstm", readout="last", seed=4)
    net.save(run / "model.rnnlab")
    rio.write_json(run / "run.json", {"format": TASK_FORMAT, "version": TASK_VERSION})
    out = tmp_path / "task.onnx"
    assert cli.main(["export", str(run), "--onnx", str(out), "--opset", "13"]) == 0
    assert "(ONNX opset 13)" in capsys.readouterr().out
    x = np.random.default_rng(0).normal(size=(4, 6, D)).astype(np.float32)
    np.testing.assert_allclose(session(out).run(None, {"x": x})[0], net.predict(x), **TOL)


def test_export_a_model_file_of_a_layer(tmp_path, capsys):
    layer = rnnlab.LSTM(D, H, 2, seed=0)
    rnnlab.save(layer, tmp_path / "lstm.rnnlab")
    out = tmp_path / "lstm.onnx"
    assert cli.main(["export", str(tmp_path / "lstm.rnnlab"), "--onnx", str(out),
                     "--states"]) == 0
    assert "outputs y (batch, time, 5), h_n (2, batch, 5), c_n (2, batch, 5)" in \
        capsys.readouterr().out
    rng = np.random.default_rng(0)
    feed, x, state, _ = feed_for(rng, layer, 2, 3, False, True)
    y, (h, c) = layer.infer(x, state)
    for got, want in zip(session(out).run(None, feed), (y, h, c), strict=True):
        np.testing.assert_allclose(got, want, **TOL)


def test_export_a_model_file_of_a_bidirectional_network(tmp_path, capsys):
    net = rnnlab.Network(D, H, 3, cell="gru", num_layers=2, readout="last",
                         bidirectional=True, seed=2)
    net.save(tmp_path / "bi.rnnlab")
    out = tmp_path / "bi.onnx"
    assert cli.main(["export", str(tmp_path / "bi.rnnlab"), "--onnx", str(out), "--lengths",
                     "--states"]) == 0
    assert "h0 (4, batch, 5)" in capsys.readouterr().out
    rng = np.random.default_rng(0)
    feed, x, state, lens = feed_for(rng, net.rnn, 4, 6, True, True)
    np.testing.assert_allclose(session(out).run(None, feed)[0],
                               net.predict(x, lengths=lens, state=state), **TOL)
