"""Export of layers and networks to ONNX, with the standard ``RNN``, ``LSTM`` and ``GRU``
operators.

Shape legend: B batch, T time, D input features, H hidden units, L layers, K outputs,
G gates per cell (1 Elman, 4 LSTM, 3 GRU).

The graph is batch-first at its edges, as rnnlab is, and time-major inside: the operators
keep their default ``layout=0`` (onnxruntime's CPU kernels refuse ``layout=1``), with a
``Transpose`` on either side. One operator per layer, chained, their direction axis
squeezed away; a bidirectional layer's operator has ``direction="bidirectional"`` and its
two directions' outputs are joined to (T, B, 2H), forward features then reverse, as
rnnlab's. Its interface (:func:`signature`), with N = 1, or 2 for a bidirectional layer:

* inputs: ``x`` (B, T, D) float32; with ``lengths=True`` ``lengths`` (B,) int64; with
  ``states=True`` ``h0`` (and ``c0`` for the LSTM) (N*L, B, H); B and T are dynamic;
* outputs of a layer: ``y`` (B, T, N*H), ``h_n`` (and ``c_n``) (N*L, B, H), what
  :meth:`RecurrentLayer.infer <rnnlab.cells.RecurrentLayer.infer>` returns (layer k's
  forward direction at 2k, its reverse at 2k + 1 when bidirectional); of a
  :class:`~rnnlab.Network`: ``y``, what :meth:`Network.predict <rnnlab.Network.predict>`
  returns, (B, T, K) for readout "all" and (B, K) for "last" and "attention".

A network's attention readout is written out with standard operators: the scores
``MatMul(y, w_a)`` (T, B, 1), set to -inf past each length, ``Softmax`` over time, and
``ReduceSum`` over time of their ``Mul`` with the top outputs. The other pooled readouts
("mean", "max") are refused.

The operators store the same numbers as rnnlab, differently (each cell states the facts:
:attr:`rnnlab.cells.Cell.onnx_operator`, ``onnx_gates``, ``onnx_attributes``):

* ``W`` (N, G*H, D_k) and ``R`` (N, G*H, H) are ``W_x`` and ``W_h`` transposed, their
  gate blocks in the operator's order (LSTM ``i, o, f, c``; GRU ``z, r, h``); a
  bidirectional layer's are stacked, forward (``l{k}.*``) then reverse (``l{k}r.*``);
* ``B`` (N, 2*G*H) is the input bias then the recurrent one: ``b`` and zeros for the Elman
  and LSTM cells (their biases only enter as a sum), ``b`` and ``b_h`` for the GRU, which
  is ONNX's ``linear_before_reset=1``;
* the inputs after the initial states, where a cell has them
  (:meth:`rnnlab.cells.Cell.onnx_extra_inputs`): the LSTM's peepholes ``P`` (N, 3H),
  ``p_i, p_o, p_f``. An LSTM with a projection (``proj_size``) is refused: the standard
  operator has none.

Padding: the operators' ``sequence_lens`` (int32, cast in the graph) skips the steps past
each length, as rnnlab does; the reverse direction reads each sequence backwards within
its own length, as rnnlab's does. Two things the standard leaves open are made explicit in the
graph: the top layer's output is set to zero past each length (rnnlab's padded outputs;
onnxruntime writes zeros there too), and a sequence of length 0 keeps its initial state
(onnxruntime gives zeros for it, which differs from rnnlab when ``h0`` is not zero).

The ``onnx`` package is imported inside the functions, never at import time, so rnnlab
works without it; export never goes through PyTorch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import checks, io
from ._version import __version__
from .cells import RecurrentLayer
from .network import Network

#: the opset written when none is asked for: run by onnxruntime since 1.13 and by most
#: other runtimes (IR version 8)
DEFAULT_OPSET = 17
#: the oldest opset the graph is valid in: ``Squeeze``/``Unsqueeze`` take their axes as
#: inputs and ``Softmax`` normalises over one axis from opset 13 on
MIN_OPSET = 13

_INSTALL = 'rnnlab.onnx needs the onnx package; install it with pip install "rnnlab[onnx]"'


def _import_onnx():
    """The top-level ``onnx`` package (not this module, whose name it shares)."""
    try:
        import onnx
        from onnx import checker, helper, numpy_helper  # noqa: F401  (submodules used)
    except ImportError as e:
        raise ModuleNotFoundError(_INSTALL) from e
    return onnx


def max_opset() -> int:
    """The newest opset that the installed ``onnx`` package knows."""
    return int(_import_onnx().defs.onnx_opset_version())


def _parts(model):
    """``(layer, network or None)`` of a model whose kind can be exported; a ValueError
    naming what cannot."""
    if isinstance(model, Network):
        layer, net = model.rnn, model
    elif isinstance(model, RecurrentLayer):
        layer, net = model, None
    else:
        raise ValueError(f"expected an rnnlab Network or recurrent layer (Elman, LSTM, GRU), "
                         f"got {type(model).__name__}")
    if net is not None and net.readout not in ("all", "last", "attention"):
        raise ValueError(f"cannot export a network with readout={net.readout!r}: rnnlab.onnx "
                         f"exports readouts 'all', 'last' and 'attention'")
    cell = layer.cell
    # an output projection changes what the graph must compute, and ONNX's LSTM has none
    value = getattr(layer, "proj_size", None)
    if value not in (None, 0):
        raise ValueError(f"cannot export {type(layer).__name__} with proj_size={value!r}: "
                         f"ONNX's standard LSTM operator has no output projection")
    if getattr(layer, "layer_norm", False):
        raise ValueError(f"cannot export {type(layer).__name__} with layer_norm=True: no "
                         f"standard ONNX operator normalises the gate pre-activations")
    # train-time options: the export is the inference model, where dropout and recurrent
    # dropout are the identity; zoneout's is its expectation, a mix no standard operator has
    zoneout = getattr(layer, "zoneout", ())
    if any(zoneout):
        raise ValueError(f"cannot export {type(layer).__name__} with zoneout={list(zoneout)}: "
                         f"its inference form s_t = z s_(t-1) + (1 - z) s~_t is not "
                         f"expressible with ONNX's {layer.Cell.onnx_operator} operator")
    if cell.own_onnx_operator is None:
        raise ValueError(f"cannot export {type(layer).__name__}: its cell "
                         f"{type(cell).__name__} has no standard ONNX operator (rnnlab's "
                         f"Elman, LSTM and GRU cells have RNN, LSTM and GRU)")
    cell.onnx_attributes()  # a ValueError for what the operator cannot compute
    return layer, net


def _float32_params(model) -> dict:
    """The parameters as float32; a ValueError naming one that holds NaN or Inf or a value
    beyond float32's range (a float64 model's)."""
    out, largest = {}, float(np.finfo(np.float32).max)
    for name, v in model.params.items():
        v = np.asarray(v)
        if not np.isfinite(v).all():
            raise ValueError(f"cannot export: parameter {name} holds NaN or Inf")
        if np.abs(v).max(initial=0) > largest:
            raise ValueError(f"cannot export: parameter {name} holds values beyond float32's "
                             f"range (largest magnitude {np.abs(v).max():.3g})")
        out[name] = v.astype(np.float32)
    return out


def _check_opset(opset, newest: int) -> int:
    if opset is None:
        return DEFAULT_OPSET
    if (isinstance(opset, (bool, np.bool_)) or not isinstance(opset, (int, np.integer))
            or not MIN_OPSET <= opset <= newest):
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to {newest} (the newest "
                         f"the installed onnx package knows), got {opset!r}")
    return int(opset)


def signature(model, *, lengths: bool = False, states: bool = False):
    """The graph's inputs and outputs that :func:`export` writes for ``model``.

    Parameters
    ----------
    model : Network or recurrent layer
    lengths, states : bool
        As :func:`export`.

    Returns
    -------
    inputs, outputs : dict[str, tuple]
        Name -> shape, in order; ``"batch"`` and ``"time"`` are the dynamic axes. Every
        array is float32 but ``lengths``, int64.
    """
    layer, net = _parts(model)
    lengths, states = checks.boolean(lengths, "lengths"), checks.boolean(states, "states")
    L, H = layer.num_layers * layer.directions, layer.hidden_size  # L: state rows
    names = layer.cell.state  # ("h",) or ("h", "c")
    inputs = {"x": ("batch", "time", layer.input_size)}
    if lengths:
        inputs["lengths"] = ("batch",)
    if states:
        inputs.update({f"{s}0": (L, "batch", H) for s in names})
    if net is None:
        outputs = {"y": ("batch", "time", layer.output_features),
                   **{f"{s}_n": (L, "batch", H) for s in names}}
    else:
        steps = ("batch", "time") if net.readout == "all" else ("batch",)
        outputs = {"y": (*steps, net.output_size)}
    return inputs, outputs


def export(model, path, *, lengths: bool = False, states: bool = False,
           opset: int | None = None) -> Path:
    """Write ``model`` as an ONNX file that computes what rnnlab computes.

    Parameters
    ----------
    model : Network, Elman, LSTM or GRU
        Any ``num_layers``, one direction or bidirectional; an Elman layer with activation
        tanh, relu or sigmoid; a network with readout "all", "last" or "attention" and a
        softmax or linear head. A float64 model is written in float32 (its weights rounded), like
        every exported model.
    path : str or Path
        The ``.onnx`` file, written atomically: a failure leaves what was there.
    lengths : bool
        Add the input ``lengths`` (B,) int64, each sequence's real steps in [0, T]; steps
        past it are padding, as ``lengths=`` of :meth:`~rnnlab.cells.RecurrentLayer.infer`.
    states : bool
        Add the inputs ``h0`` (and ``c0`` for the LSTM), (L, B, H), or (2L, B, H) for a
        bidirectional model: the initial state, as ``state=`` of ``infer``. Without them
        the state starts at zeros.
    opset : int or None
        The ONNX opset, from :data:`MIN_OPSET` to the newest the installed onnx package
        knows; None for :data:`DEFAULT_OPSET`.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        For anything but a Network or an rnnlab layer, a cell without a standard ONNX
        operator (a subclass of a cell: its step may differ), an Elman activation that
        ONNX's RNN lacks, a parameter holding NaN or Inf or beyond float32's range, an
        opset out of range, or a ``path`` that is a folder or in no folder.
    ModuleNotFoundError
        When the onnx package is not installed (``pip install "rnnlab[onnx]"``).

    Notes
    -----
    The graph's interface is :func:`signature`; its layout is described in this module's
    docstring. The file is checked by ``onnx.checker.check_model`` before it is written.
    """
    onnx = _import_onnx()
    inputs, outputs = signature(model, lengths=lengths, states=states)
    opset = _check_opset(opset, max_opset())
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder; expected an .onnx file path")
    layer, net = _parts(model)
    params = _float32_params(model)
    if net is not None:  # the layer's under the names the layer knows them by
        params = {k.removeprefix("rnn."): v for k, v in params.items()}
    proto = _model_proto(onnx, layer, net, params, inputs, outputs, opset)
    proto.graph.doc_string = repr(model)
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    io.atomic_write(path, lambda f: f.write(data))
    return path


# ----------------------------------------------------------------------------------------
# the graph


class _Graph:
    """Nodes and initializers being collected, with the ``onnx.helper`` calls in one place."""

    def __init__(self, onnx):
        self.helper, self.numpy_helper, self.TensorProto = (
            onnx.helper, onnx.numpy_helper, onnx.TensorProto)
        self.nodes, self.initializers, self._consts = [], [], {}

    def weight(self, name: str, a) -> str:
        self.initializers.append(self.numpy_helper.from_array(
            np.ascontiguousarray(a, np.float32), name))
        return name

    def const(self, value, dtype=np.int64) -> str:
        """A constant (a scalar or a list), one initializer per distinct value."""
        a = np.asarray(value, dtype)
        key = (a.dtype.str, a.shape, a.tobytes())
        if key not in self._consts:
            name = f"const_{len(self._consts)}"
            self.initializers.append(self.numpy_helper.from_array(a, name))
            self._consts[key] = name
        return self._consts[key]

    def op(self, op_type: str, inputs, outputs, **attrs):
        """Add one node; ``outputs`` a name or a list of names, returned as given."""
        outs = [outputs] if isinstance(outputs, str) else list(outputs)
        while inputs and inputs[-1] == "":  # omitted optional inputs at the end are dropped
            inputs = inputs[:-1]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs,
                                                name=f"{op_type}:{outs[0]}", **attrs))
        return outputs

    def value_info(self, name: str, shape, dtype=np.float32):
        elem = self.TensorProto.INT64 if np.dtype(dtype) == np.int64 else self.TensorProto.FLOAT
        return self.helper.make_tensor_value_info(name, elem, list(shape))


def _blocks(a: np.ndarray, order, axis: int) -> np.ndarray:
    """``a`` with its ``len(order)`` equal blocks along ``axis`` put in the order ``order``."""
    parts = np.split(np.asarray(a), len(order), axis=axis)
    return np.concatenate([parts[i] for i in order], axis=axis)


def _stack(g: _Graph, layer, params: dict, x: str, lens32, empty, initial: dict):
    """The layers' operators over the time-major input ``x`` (T, B, D).

    ``params`` are the layer's, in float32; ``lens32`` the int32 sequence_lens or None;
    ``empty`` the (B, 1) mask of the sequences of length 0 when a given initial state must
    survive them, else None; ``initial`` the state inputs (``{"h": "h0", ...}``, empty for
    zeros). Returns the top layer's output (T, B, N*H) and, per state array (``"h"``,
    ``"c"``), the list over layers of the final states, (N, B, H) each; N is the number of
    directions, the operator's ``num_directions``, forward first.
    """
    cell, H, L, N = layer.cell, layer.hidden_size, layer.num_layers, layer.directions
    order, attrs, names = cell.onnx_order(), dict(cell.onnx_attributes()), cell.state
    if N == 2:
        attrs["direction"] = "bidirectional"
        if "activations" in attrs:  # one list per direction, forward then reverse
            attrs["activations"] = list(attrs["activations"]) * 2
    finals = {s: [] for s in names}
    for k in range(L):
        W, R, B, extra = [], [], [], []
        for prefix in (f"l{k}", f"l{k}r")[:N]:  # forward, then reverse
            p = {n[len(prefix) + 1:]: v for n, v in params.items()
                 if n.startswith(prefix + ".")}
            extra.append(cell.onnx_extra_inputs(p))  # the LSTM's peepholes P (3H,)
            W.append(_blocks(p["W_x"], order, axis=1).T)  # (G*H, D_k)
            R.append(_blocks(p["W_h"], order, axis=1).T)  # (G*H, H)
            b_in = _blocks(p["b"], order, axis=0)
            b_rec = (_blocks(p["b_h"], order, axis=0) if cell.recurrent_bias
                     else np.zeros_like(b_in))
            B.append(np.concatenate([b_in, b_rec]))  # (2*G*H,)
        W = g.weight(f"l{k}.W", np.stack(W))  # (N, G*H, D_k)
        R = g.weight(f"l{k}.R", np.stack(R))  # (N, G*H, H)
        B = g.weight(f"l{k}.B", np.stack(B))  # (N, 2*G*H)
        rows = list(range(N * k, N * (k + 1)))  # this layer's rows of h0 (and c0)
        init = {s: (initial[s] if L == 1 else g.op("Gather", [initial[s], g.const(rows)],
                                                   f"l{k}.{s}0", axis=0))
                for s in initial}  # (N, B, H) each
        args = [x, W, R, B, lens32 or ""] + [init.get(s, "") for s in names]
        for j, arrays in enumerate(zip(*extra, strict=True)):  # after the states, stacked
            args.append(g.weight(f"l{k}.extra{j}", np.stack(arrays)))  # (N, ...)
        outs = [f"l{k}.Y"] + [f"l{k}.Y_{s}" for s in names]  # (T, N, B, H), (N, B, H)...
        g.op(cell.own_onnx_operator, args, outs, hidden_size=H, **attrs)
        if N == 1:
            x = g.op("Squeeze", [outs[0], g.const([1])], f"l{k}.y")  # (T, B, H)
        else:  # the two directions side by side, forward features then reverse
            y = g.op("Transpose", [outs[0]], f"l{k}.Y_tbnh", perm=[0, 2, 1, 3])  # (T, B, 2, H)
            x = g.op("Reshape", [y, g.const([0, 0, N * H])], f"l{k}.y")  # (T, B, 2H)
        for s, out in zip(names, outs[1:], strict=True):
            if empty is not None:  # a sequence of length 0 keeps its initial state
                out = g.op("Where", [empty, init[s], out], f"l{k}.{s}_n")
            finals[s].append(out)
    return x, finals


def _model_proto(onnx, layer, net, params: dict, inputs: dict, outputs: dict, opset: int):
    g = _Graph(onnx)
    names = layer.cell.state
    lens32 = empty = None
    if "lengths" in inputs:
        lens32 = g.op("Cast", ["lengths"], "lengths_int32", to=onnx.TensorProto.INT32)
        if "h0" in inputs:
            zero_length = g.op("Equal", ["lengths", g.const(0)], "zero_length")  # (B,)
            empty = g.op("Unsqueeze", [zero_length, g.const([1])], "zero_length_b1")  # (B, 1)
    x = g.op("Transpose", ["x"], "x_time_major", perm=[1, 0, 2])  # (T, B, D)
    initial = {s: f"{s}0" for s in names if f"{s}0" in inputs}
    y, finals = _stack(g, layer, params, x, lens32, empty, initial)
    real = None
    if lens32 is not None and (net is None or net.readout in ("all", "attention")):
        T = g.op("Gather", [g.op("Shape", ["x"], "x_shape"), g.const(1)], "T", axis=0)
        steps = g.op("Range", [g.const(0), T, g.const(1)], "steps")  # (T,)
        steps = g.op("Unsqueeze", [steps, g.const([1])], "steps_t1")  # (T, 1)
        real = g.op("Less", [steps, "lengths"], "real")  # (T, B)
        real = g.op("Unsqueeze", [real, g.const([2])], "real_tb1")  # (T, B, 1)
    if real is not None and (net is None or net.readout == "all"):
        # zeros past each length, as rnnlab's padded steps (the operators leave it open)
        y = g.op("Where", [real, y, g.const(0.0, np.float32)], "y_masked")
    if net is None:
        g.op("Transpose", [y], "y", perm=[1, 0, 2])  # (B, T, N*H)
        for s in names:
            parts = finals[s]
            if len(parts) == 1:
                g.op("Identity", parts, f"{s}_n")
            else:
                g.op("Concat", parts, f"{s}_n", axis=0)  # (N*L, B, H), rnnlab's order
    else:
        if net.readout == "all":
            h = g.op("Transpose", [y], "h", perm=[1, 0, 2])  # (B, T, N*H)
        elif net.readout == "attention":  # α = softmax over the real steps of y_t · w_a
            w_a = g.weight("head.w_a", params["head.w_a"][:, None])  # (N*H, 1)
            scores = g.op("MatMul", [y, w_a], "scores")  # (T, B, 1)
            if real is not None:  # padded steps get no weight
                scores = g.op("Where", [real, scores, g.const(-np.inf, np.float32)],
                              "scores_real")
            alpha = g.op("Softmax", [scores], "alpha", axis=0)  # (T, B, 1)
            h = g.op("ReduceSum", [g.op("Mul", [alpha, y], "alpha_y"), g.const([0])], "h",
                     keepdims=0)  # (B, N*H): Σ_t α_t y_t
        elif layer.directions == 1:  # the top layer's state after each sequence's last real step
            h = g.op("Squeeze", [finals["h"][-1], g.const([0])], "h")  # (B, H)
        else:  # the top layer's final h of both directions, side by side, as rnnlab
            h = g.op("Transpose", [finals["h"][-1]], "h_top", perm=[1, 0, 2])  # (B, 2, H)
            h = g.op("Reshape", [h, g.const([0, 2 * layer.hidden_size])], "h")  # (B, 2H)
        W_y = g.weight("head.W_y", params["head.W_y"])  # (N*H, K)
        b_y = g.weight("head.b_y", params["head.b_y"])  # (K,)
        z = g.op("Add", [g.op("MatMul", [h, W_y], "hW"), b_y], "z")  # (B, T, K) or (B, K)
        if net.output == "softmax":
            g.op("Softmax", [z], "y", axis=-1)
        else:
            g.op("Identity", [z], "y")
    helper = onnx.helper
    graph = helper.make_graph(
        g.nodes, f"rnnlab_{layer.cell_name}",
        [g.value_info(n, s, np.int64 if n == "lengths" else np.float32)
         for n, s in inputs.items()],
        [g.value_info(n, s) for n, s in outputs.items()],
        g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=opsets, producer_name="rnnlab",
                             producer_version=__version__,
                             ir_version=helper.find_min_ir_version_for(opsets))
