r"""Weights and units: the recurrent matrices' spectral radii and the units' saturation.

Shape legend: B batch, T time, D input features, H hidden units, L layers.
"""

from __future__ import annotations

import numbers

import numpy as np

from .forward import layer64, level_index, run_forward


def spectral_radius(model) -> dict[str, float]:
    r"""Spectral radius :math:`\max_i |\lambda_i|` of each recurrent weight matrix.

    Parameters
    ----------
    model : Elman, LSTM, GRU or Network

    Returns
    -------
    dict
        ``"l{k}.W_h"`` for an Elman layer k; for gated cells, one entry per gate's (H, H)
        block of ``W_h``: ``"l{k}.W_h.i"``, ``".f"``, ``".g"``, ``".o"`` (LSTM) and
        ``".r"``, ``".z"``, ``".n"`` (GRU).

    Notes
    -----
    For an Elman layer the one-step Jacobian is :math:`\operatorname{diag}(\Phi') W_h^\top`
    with :math:`|\Phi'| \le 1` for tanh, so a radius well below 1 forces the flow to vanish
    geometrically, and a radius above 1 is necessary (not sufficient) for it to explode.
    For gated cells the blocks' radii are descriptive only: the gates' derivatives mix the
    blocks, and the LSTM's cell path :math:`c_t = f \odot c_{t-1} + \dots` carries gradient
    with gain :math:`f` independently of :math:`W_h`. With an LSTM's projection the
    blocks are those of :math:`W_{hr} W_h` (H, G*H), the map from one step's unprojected
    output :math:`o \odot \tanh(c)` to the next step's pre-activations.
    """
    layer = layer64(model)
    H = layer.hidden_size
    gates = layer.cell.gates
    out = {}
    for k in range(layer.num_layers):
        W = layer.params[f"l{k}.W_h"]  # (H, G*H)
        if f"l{k}.W_hr" in layer.params:  # an LSTM's projection: h_{t-1} W_h = m W_hr W_h
            W = layer.params[f"l{k}.W_hr"] @ W  # (H, P) @ (P, G*H)
        for i, g in enumerate(gates):
            name = f"l{k}.W_h" + (f".{g}" if len(gates) > 1 else "")
            ev = np.linalg.eigvals(W[:, i * H:(i + 1) * H])
            out[name] = float(np.max(np.abs(ev)))
    return out


def _relative_slope(y: np.ndarray, activation: str) -> np.ndarray:
    """The activation's derivative at output ``y``, divided by its largest value."""
    if activation == "tanh":
        return 1 - y * y
    if activation == "sigmoid":
        return 4 * y * (1 - y)
    return (y > 0).astype(y.dtype)  # relu: 0 for a unit that is off


def saturation(model, x, *, state=None, lengths=None, threshold: float = 0.1,
               level: int = -1) -> dict[str, np.ndarray]:
    r"""Fraction of saturated units at each time step, per nonlinearity.

    Parameters
    ----------
    model : Elman, LSTM, GRU or Network
    x : array (B, T, D)
    state : initial state, or None
    lengths : array (B,), optional; padded steps are left out and each array has
        ``max(lengths)`` entries
    threshold : float in (0, 1)
        A unit is saturated when its activation's slope is below ``threshold`` times the
        activation's largest slope.
    level : int
        Which stacked layer, default the top one.

    Returns
    -------
    dict name -> ndarray (T,)
        Elman: ``"h"``; LSTM: ``"i"``, ``"f"``, ``"g"``, ``"o"``, ``"tanh(c)"``; GRU:
        ``"r"``, ``"z"``, ``"n"``; and ``"all"``, every unit of the step pooled. Each entry
        is the fraction of (sequence, unit) pairs at that step, over real steps only.

    Notes
    -----
    The slope of an activation is the factor by which it scales the gradient passing
    through it. With the default ``threshold = 0.1``, a unit is saturated when

    * tanh: :math:`1 - y^2 < 0.1`, i.e. :math:`|y| > 0.949`;
    * sigmoid (gates): :math:`4 y (1 - y) < 0.1`, i.e. :math:`y < 0.026` or :math:`y > 0.974`;
    * relu: :math:`y = 0` (the unit is off and passes no gradient).

    A forget gate near 1 is saturated in this sense, though it is what lets an LSTM
    remember: its own gradient is small while the cell's gradient passes through it.
    """
    layer = layer64(model)
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) \
            or not 0 < threshold < 1:
        raise ValueError(f"threshold must be a number in (0, 1), got {threshold!r}")
    fw = run_forward(layer, x, state, lengths, level_index(layer, level))
    Tmax = int(fw.lengths.max())
    names = layer.cell.nonlinearities
    out = {n: np.zeros(Tmax) for n in (*names, "all")}
    for t in range(Tmax):
        live = t < fw.lengths  # (B,)
        hit = total = 0
        for name, (y, act) in layer.cell.nonlinear_outputs(fw.saved[t]).items():
            s = (_relative_slope(y[live], act) < threshold).sum()
            out[name][t] = s / y[live].size
            hit, total = hit + s, total + y[live].size
        out["all"][t] = hit / total
    return out
