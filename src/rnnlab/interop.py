"""Conversion to and from PyTorch's ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU``.

Shape legend: D_k input features of layer k (D for the first, H above), H hidden units,
G gates per cell (1 Elman, 4 LSTM, 3 GRU).

The two libraries store the same numbers differently:

* rnnlab keeps ``W_x`` (D_k, G*H) and ``W_h`` (H, G*H) so a step is ``x @ W_x + h @ W_h``;
  PyTorch keeps ``weight_ih_l{k}`` (G*H, D_k) and ``weight_hh_l{k}`` (G*H, H), the transposes.
* The G H-wide gate blocks may come in a different order. Each cell states PyTorch's order
  (:attr:`rnnlab.cells.Cell.torch_gates`) and :data:`TORCH_GATE_ORDER` derives the
  permutations; today the orders agree (``i, f, g, o`` and ``r, z, n``), but every
  conversion still goes through them, so changing a cell's order changes one line there.
* An LSTM's projection (``proj_size`` P): rnnlab's ``W_hr`` (H, P) is PyTorch's
  ``weight_hr_l{k}`` (P, H) transposed, and ``W_h`` is then (P, G*H). rnnlab's peepholes
  have no PyTorch counterpart, and :func:`to_torch` refuses them.
* PyTorch has two biases, ``bias_ih`` and ``bias_hh``. For the Elman and LSTM cells they only
  ever enter as a sum, which is rnnlab's single ``b``; converting back puts all of ``b`` in
  ``bias_ih`` and zeros in ``bias_hh``. The GRU needs both, because the reset gate multiplies
  the recurrent one only: ``b = bias_ih`` and ``b_h = bias_hh``.

PyTorch is imported inside the functions, never at import time, so rnnlab works without it.
"""

from __future__ import annotations

import warnings

import numpy as np

from . import checks
from .cells import LAYERS, RecurrentLayer

#: rnnlab cell name -> for each of PyTorch's gate blocks in PyTorch's order, the index of the
#: same gate among rnnlab's blocks (from each cell's own facts; today every one the identity)
TORCH_GATE_ORDER: dict[str, tuple[int, ...]] = {
    name: layer.Cell.torch_order() for name, layer in LAYERS.items()
}


def _reorder_blocks(a: np.ndarray, order, axis: int) -> np.ndarray:
    """``a`` with its ``len(order)`` equal blocks along ``axis`` put in the order ``order``."""
    blocks = np.split(a, len(order), axis=axis)
    return np.concatenate([blocks[i] for i in order], axis=axis)


def _rnnlab_to_torch_layout(cell: str, W_x, W_h, bias):
    """One layer's ``W_x``, ``W_h`` and a list of biases in rnnlab's layout -> PyTorch's."""
    order = TORCH_GATE_ORDER[cell]
    w_ih = _reorder_blocks(W_x, order, axis=1).T  # (G*H, D_k)
    w_hh = _reorder_blocks(W_h, order, axis=1).T  # (G*H, H)
    return w_ih, w_hh, [_reorder_blocks(b, order, axis=0) for b in bias]


def _torch_to_rnnlab_layout(cell: str, w_ih, w_hh, bias):
    """The inverse of :func:`_rnnlab_to_torch_layout`, with the inverse permutation."""
    inverse = tuple(int(i) for i in np.argsort(TORCH_GATE_ORDER[cell]))
    W_x = _reorder_blocks(w_ih.T, inverse, axis=1)  # (D_k, G*H)
    W_h = _reorder_blocks(w_hh.T, inverse, axis=1)  # (H, G*H)
    return W_x, W_h, [_reorder_blocks(b, inverse, axis=0) for b in bias]


def _import_torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            "rnnlab.interop needs PyTorch; install it with `pip install torch` "
            "(or `pip install rnnlab[test]`)"
        ) from e
    return torch


def _describe(module) -> tuple[str, dict]:
    """The rnnlab cell name and layer options for a supported module, or a ValueError."""
    torch = _import_torch()
    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise ValueError(
            f"expected a torch.nn.RNN, nn.LSTM or nn.GRU module, got {type(module).__name__}"
        )
    cell = next((name for name, layer in LAYERS.items() if layer.Cell.torch_module
                 and isinstance(module, getattr(nn, layer.Cell.torch_module))), None)
    if cell is None:
        raise ValueError(
            f"expected a torch.nn.RNN, nn.LSTM or nn.GRU module, got {type(module).__name__}"
        )
    opts = {}
    if getattr(module, "proj_size", 0) > 0:  # nn.LSTM's projection: rnnlab's proj_size
        opts["proj_size"] = int(module.proj_size)
    if "activation" in LAYERS[cell].options:  # nn.RNN's nonlinearity
        opts["activation"] = module.nonlinearity
        if module.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nn.RNN nonlinearity {module.nonlinearity!r} is not supported")
    if module.bidirectional:
        opts["bidirectional"] = True
    return cell, opts


def _module_dtype(module, dtype) -> np.dtype:
    """``dtype`` if given, else the module's parameter dtype; float32 or float64 only."""
    if dtype is not None:
        return checks.float_dtype(dtype)
    torch_dtype = next(module.parameters()).dtype
    names = {"torch.float32": np.float32, "torch.float64": np.float64}
    if str(torch_dtype) not in names:
        raise ValueError(
            f"the module's parameters are {torch_dtype}; rnnlab computes in float32 or float64, "
            "so pass dtype=np.float32 or dtype=np.float64 to convert"
        )
    return np.dtype(names[str(torch_dtype)])


def _to_numpy(tensor) -> np.ndarray:
    # via float64 so that float16/bfloat16 (which NumPy may not know) convert too; exact for all
    return tensor.detach().cpu().double().numpy()


def _collect(module, cell: str, dtype: np.dtype, grads: bool) -> dict[str, np.ndarray]:
    """Parameters (or their ``.grad``) of ``module`` as a dict in rnnlab's naming."""

    def get(name):
        param = getattr(module, name)
        if not grads:
            return _to_numpy(param)
        if param.grad is None:
            raise ValueError(f"{name}.grad is None: run backward on the module first")
        return _to_numpy(param.grad)

    out = {}
    directions = [("", "")] + ([("_reverse", "r")] if module.bidirectional else [])
    for k, (torch_suffix, suffix) in ((k, d) for k in range(module.num_layers)
                                      for d in directions):
        bias = []
        if module.bias:
            b_ih = get(f"bias_ih_l{k}{torch_suffix}")
            b_hh = get(f"bias_hh_l{k}{torch_suffix}")
            if LAYERS[cell].Cell.recurrent_bias:  # the GRU's b_h: the two stay apart
                bias = [b_ih, b_hh]
            elif grads:
                # b_ih and b_hh enter only as a sum, so each one's gradient is the sum's
                bias = [b_ih]
            else:
                bias = [b_ih + b_hh]
        W_x, W_h, bias = _torch_to_rnnlab_layout(
            cell, get(f"weight_ih_l{k}{torch_suffix}"), get(f"weight_hh_l{k}{torch_suffix}"),
            bias
        )
        out[f"l{k}{suffix}.W_x"], out[f"l{k}{suffix}.W_h"] = W_x, W_h
        if getattr(module, "proj_size", 0) > 0:  # weight_hr (P, H) is W_hr (H, P) transposed
            out[f"l{k}{suffix}.W_hr"] = get(f"weight_hr_l{k}{torch_suffix}").T
        for name, b in zip(("b", "b_h"), bias, strict=False):
            out[f"l{k}{suffix}.{name}"] = b
    return {name: np.ascontiguousarray(a, dtype=dtype) for name, a in out.items()}


def from_torch(module, *, dtype=None) -> RecurrentLayer:
    """An rnnlab layer computing what a PyTorch recurrent module computes.

    Parameters
    ----------
    module : torch.nn.RNN, torch.nn.LSTM or torch.nn.GRU
        Any ``num_layers``, bidirectional or not; ``batch_first`` either way (the weights do
        not depend on it, and rnnlab layers are always batch-first). ``nn.RNN`` with
        nonlinearity tanh or relu.
    dtype : float32, float64 or None
        Of the layer's parameters; None takes the module's (float32 or float64).

    Returns
    -------
    Elman, LSTM or GRU
        With ``init="uniform"`` in its config (the weights are the module's, not drawn).

    Raises
    ------
    ValueError
        For anything but the three modules, or a dtype other than float32 and float64.
        An ``nn.LSTM`` with ``proj_size > 0`` gives an LSTM with the same ``proj_size``
        (``W_hr`` is ``weight_hr_l{k}`` transposed).
    ImportError
        When PyTorch is not installed.

    Warns
    -----
    UserWarning
        When the module has ``dropout > 0``: rnnlab has no dropout between layers, so the
        layer equals the module in ``eval()`` mode and not in training mode.

    Notes
    -----
    A ``bias=False`` module gives a layer whose biases are zeros: the same function, but
    rnnlab's biases are ordinary parameters that training will move.
    For the Elman and LSTM cells ``b = bias_ih + bias_hh``; for the GRU ``b = bias_ih`` and
    ``b_h = bias_hh``.
    """
    cell, opts = _describe(module)
    dt = _module_dtype(module, dtype)
    if module.dropout > 0:
        warnings.warn(
            f"{type(module).__name__} has dropout={module.dropout}, which rnnlab does not "
            "implement; the converted layer matches the module in eval() mode only",
            UserWarning,
            stacklevel=2,
        )
    # seed=0 only so the constructor does not draw OS entropy; every weight is replaced below
    layer = LAYERS[cell](
        module.input_size, module.hidden_size, module.num_layers, seed=0, dtype=dt, **opts
    )
    params = _collect(module, cell, dt, grads=False)
    for name, old in layer.params.items():
        new = params.get(name)
        if new is None:  # a bias=False module: the function is unchanged with zero biases
            new = np.zeros_like(old)
        if new.shape != old.shape:
            raise AssertionError(f"{name}: converted shape {new.shape} != expected {old.shape}")
        layer.params[name] = new
    return layer


def grads_from_torch(module, *, dtype=None) -> dict[str, np.ndarray]:
    """The ``.grad`` of a PyTorch recurrent module's parameters, in rnnlab's naming.

    The counterpart of :func:`from_torch` for gradients, so they can be compared with what
    :meth:`RecurrentLayer.backward <rnnlab.cells.RecurrentLayer.backward>` returns.

    Parameters
    ----------
    module : torch.nn.RNN, torch.nn.LSTM or torch.nn.GRU, after ``backward()``
    dtype : float32, float64 or None
        None takes the module's.

    Returns
    -------
    dict[str, ndarray]
        Like the converted layer's ``params``. For the Elman and LSTM cells the gradient of
        ``b`` is that of ``bias_ih`` (equal to that of ``bias_hh``, as both enter only as a
        sum). A ``bias=False`` module has no bias gradients, and the dict no bias entries.

    Raises
    ------
    ValueError
        As :func:`from_torch`, and when a parameter's ``.grad`` is None.
    """
    cell, _ = _describe(module)
    return _collect(module, cell, _module_dtype(module, dtype), grads=True)


def to_torch(layer: RecurrentLayer):
    """A PyTorch module computing what an rnnlab layer computes.

    Parameters
    ----------
    layer : Elman (activation tanh or relu), LSTM or GRU

    Returns
    -------
    torch.nn.RNN, torch.nn.LSTM or torch.nn.GRU
        ``batch_first=True``, ``bias=True``, no dropout, on the CPU, of the layer's dtype.
        Elman and LSTM: ``bias_ih = b`` and ``bias_hh = 0``. GRU: ``bias_ih = b``,
        ``bias_hh = b_h``.

    Raises
    ------
    ValueError
        For something that is not an rnnlab layer, an Elman layer with activation
        "sigmoid", which ``nn.RNN`` does not offer, an LSTM with peepholes, which
        ``nn.LSTM`` does not have, or a layer with zoneout, which none has. An LSTM's
        ``proj_size`` becomes the module's; recurrent dropout, train-time only, is not part
        of the module (the inference models agree).
    ImportError
        When PyTorch is not installed.
    """
    if isinstance(layer, RecurrentLayer) and not layer.recurrent:
        raise ValueError(f"the {layer.cell_name} layer is a feedforward network over a window "
                         f"of inputs; PyTorch's recurrent modules have no counterpart of it")
    if not isinstance(layer, RecurrentLayer) or layer.cell_name not in TORCH_GATE_ORDER:
        raise ValueError(f"expected an rnnlab Elman, LSTM or GRU layer, got {type(layer).__name__}")
    cell = layer.cell_name
    torch = _import_torch()
    nn = torch.nn
    torch_dtype = {"float32": torch.float32, "float64": torch.float64}[layer.dtype.name]
    args = (layer.input_size, layer.hidden_size, layer.num_layers)
    # built on the meta device so construction neither draws from torch's global generator
    # nor spends time on an initialisation that is overwritten at once
    kwargs = {"batch_first": True, "device": "meta", "dtype": torch_dtype,
              "bidirectional": layer.bidirectional}
    if "activation" in layer.options:
        if layer.activation not in ("tanh", "relu"):
            raise ValueError(
                f"Elman activation {layer.activation!r} has no PyTorch equivalent: "
                "nn.RNN offers only 'tanh' and 'relu'"
            )
        kwargs["nonlinearity"] = layer.activation
    if getattr(layer, "layer_norm", False):
        raise ValueError(f"a {layer.cell.torch_module} with layer_norm=True has no PyTorch "
                         f"equivalent: nn.{layer.cell.torch_module} has no layer normalisation "
                         f"(layer_norm must be False)")
    if getattr(layer, "peepholes", False):
        raise ValueError("an LSTM with peepholes has no PyTorch equivalent: nn.LSTM has no "
                         "peephole connections (peepholes must be False)")
    if any(getattr(layer, "zoneout", ())):
        raise ValueError(f"a layer with zoneout={list(layer.zoneout)} has no PyTorch "
                         f"equivalent: nn.{layer.cell.torch_module} has no zoneout (its "
                         f"inference model mixes each step's state with the previous one)")
    proj = getattr(layer, "proj_size", 0)
    if proj:
        kwargs["proj_size"] = proj
    module = getattr(nn, layer.cell.torch_module)(*args, **kwargs).to_empty(device="cpu")
    two_biases = layer.cell.recurrent_bias
    with torch.no_grad():
        directions = [("", "")] + ([("r", "_reverse")] if layer.bidirectional else [])
        for k, (suffix, torch_suffix) in ((k, d) for k in range(layer.num_layers)
                                          for d in directions):
            p = {name: layer.params[f"l{k}{suffix}.{name}"]
                 for name in ("W_x", "W_h", "b", "b_h") if f"l{k}{suffix}.{name}" in layer.params}
            bias = [p["b"], p["b_h"]] if two_biases else [p["b"]]
            w_ih, w_hh, bias = _rnnlab_to_torch_layout(cell, p["W_x"], p["W_h"], bias)
            if not two_biases:
                bias.append(np.zeros_like(bias[0]))
            values = {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": bias[0], "bias_hh": bias[1]}
            if proj:
                values["weight_hr"] = layer.params[f"l{k}{suffix}.W_hr"].T
            for name, v in values.items():
                getattr(module, f"{name}_l{k}{torch_suffix}").copy_(
                    torch.from_numpy(np.ascontiguousarray(v)))
    return module
