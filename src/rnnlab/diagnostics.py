r"""Gradient flow through time and friends: the vanishing (and exploding) gradient, measured.

Shape legend: B batch, T time, D input features, H hidden units, L layers, K outputs.
Time is 1-based in the maths and 0-based in arrays: :math:`h_t` is a layer's output after
step :math:`t` (``y[:, t - 1]``), :math:`h_0` its initial state, :math:`h_T` its last output.

Everything here is exact, computed by backpropagating through the stored sequence with each
cell's own ``step_back`` (the cell protocol of :mod:`rnnlab.cells.cell`), never by finite
differences, and in float64 whatever the model's dtype, so that a flow of 1e-60 at lag 100
shows as 1e-60 and not as float32's underflow to zero.

The functions run the library's one reference loop (:mod:`rnnlab.recurrent`) rather than
reading a layer's cache: a cache made by a fused kernel keeps its per-step values in
another layout, and the per-step measurements need exactly what ``step`` saves. They watch
that loop through its per-step hooks instead of writing loops of their own.

Cost, for a trainer calling these every N updates: :func:`gradient_flow` is about H backward
passes over ``x`` (no weight gradients); pass a handful of sequences (``x[:4]``), not the
whole batch. :func:`loss_gradient_norms`, :func:`saturation` and :func:`spectral_radius`
cost about one forward and backward pass, one forward pass, and L eigenvalue problems.
"""

from __future__ import annotations

import copy
import numbers
from dataclasses import dataclass

import numpy as np

from . import checks, recurrent
from .cells.base import RecurrentLayer
from .network import Network

#: norms of the Jacobian :func:`gradient_flow` can report
NORMS = ("fro", "spectral")
# rows of one backward pass in gradient_flow (H probes x sequences): bounds memory at about
# _MAX_ROWS * 4H floats per array; larger batches run in several passes
_MAX_ROWS = 8192


# --------------------------------------------------------------------------------------------
# model and input checks: everything is run on a float64 copy, the caller's arrays untouched
# --------------------------------------------------------------------------------------------
def _finite_params(params: dict, prefix: str = "") -> None:
    for name, v in params.items():
        a = np.asarray(v)
        if not np.isfinite(a).all():
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
            raise ValueError(f"parameter {prefix}{name} contains NaN or Inf (first at index "
                             f"{bad}); a model with non-finite weights cannot be diagnosed")


def _layer64(model) -> RecurrentLayer:
    """A float64 shallow copy of the model's recurrent layer (Network: its ``rnn``)."""
    if isinstance(model, Network):
        # Network.params is the source of truth (an optimiser may have replaced entries)
        params = {k[4:]: v for k, v in model.params.items() if k.startswith("rnn.")}
        _finite_params(params, "rnn.")
        layer = model.rnn
    elif isinstance(model, RecurrentLayer):
        params = model.params
        _finite_params(params)
        layer = model
    else:
        raise ValueError("expected an rnnlab layer (Elman, LSTM, GRU) or a Network, got "
                         f"{type(model).__name__}")
    out = copy.copy(layer)  # cells are stateless, so sharing layer.cell is safe
    out.dtype = np.dtype(np.float64)
    out.params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    return out


def _network64(net: Network) -> Network:
    """A float64 shallow copy of a Network whose forward does not touch the original."""
    if not isinstance(net, Network):
        raise ValueError(f"expected an rnnlab Network, got {type(net).__name__}")
    _finite_params(net.params)
    out = copy.copy(net)
    out.rnn = _layer64(net)
    out.params = {k: np.array(v, dtype=np.float64) for k, v in net.params.items()}
    return out


def _level(layer: RecurrentLayer, level) -> int:
    L = layer.num_layers
    if isinstance(level, bool) or not isinstance(level, numbers.Integral) or not -L <= level < L:
        raise ValueError(f"level must be a layer index in [{-L}, {L}) for this {L}-layer "
                         f"stack, got {level!r}")
    return int(level) % L


@dataclass
class _Forward:
    """One layer's forward, recorded step by step for the per-step measurements."""

    params: dict  # that layer's W_x, W_h, b (b_h), float64
    cache: recurrent.LayerCache  # the reference loop's, ``saved`` a list over steps
    final: tuple  # each sequence's state after its last real step, tuple of (B, H)
    lengths: np.ndarray  # (B,) real steps per sequence

    @property
    def saved(self) -> list:
        return self.cache.saved

    @property
    def outputs(self) -> np.ndarray:
        """(T, B, H) the layer's h_1 .. h_T (padded steps repeat the state)."""
        return self.cache.hs[1:]

    @property
    def mask(self):
        return self.cache.mask


def _forward(layer: RecurrentLayer, x, state, lengths, level: int) -> _Forward:
    """Run layers 0..level of a float64 layer in the reference loop; keep ``level``."""
    x = checks.array(x, "x", (None, None, layer.input_size), np.float64)
    B, T, _ = x.shape
    if B == 0 or T == 0:
        raise ValueError(f"x must hold at least one sequence of at least one step, got shape "
                         f"{x.shape}")
    lens = np.full(B, T, np.int64) if lengths is None else checks.lengths(lengths, B, T)
    if lens.max() == 0:
        raise ValueError("every sequence is empty (all lengths are 0): nothing to diagnose")
    states = layer.split_state(state, B)
    mask, partial = None, None
    if (lens < T).any():
        mask = (np.arange(T)[:, None] < lens[None, :])[:, :, None]  # (T, B, 1)
        partial = ~mask.all(axis=(1, 2))
    inp = np.ascontiguousarray(x.transpose(1, 0, 2))  # (T, B, D)
    for k in range(level + 1):
        p = recurrent.layer_params(layer.params, k)
        # the next layer reads zeros at padded steps, as from layer.forward
        inp, final, cache = recurrent.layer_forward(layer.cell, p, inp, states[k], mask,
                                                    partial)
    return _Forward(p, cache, final, lens)


class _Tiled:
    """Step ``t``'s saved values for sequences ``sl``, stacked ``copies`` times along the
    batch, made when the loop asks for them (all steps at once would take ``copies``
    times the forward's memory)."""

    def __init__(self, saved, sl: slice, copies: int):
        self.saved, self.sl, self.copies = saved, sl, copies

    def __len__(self):
        return len(self.saved)

    def __getitem__(self, t):
        return _rows(self.saved[t], self.sl, self.copies)


def _rows(saved, sl: slice, copies: int):
    """Sequences ``sl`` of one step's saved arrays, stacked ``copies`` times along the batch."""
    if isinstance(saved, np.ndarray):
        return np.tile(saved[sl], (copies,) + (1,) * (saved.ndim - 1))
    return type(saved)(_rows(s, sl, copies) for s in saved)


# --------------------------------------------------------------------------------------------
# gradient flow
# --------------------------------------------------------------------------------------------
def gradient_flow(model, x, *, state=None, lengths=None, norm: str = "fro",
                  relative: bool = False, level: int = -1) -> np.ndarray:
    r"""Batch-averaged norm of :math:`\partial h_T / \partial h_{T-k}` for every lag ``k``.

    Parameters
    ----------
    model : Elman, LSTM, GRU or Network
        For a Network, its recurrent layers.
    x : array (B, T, D)
    state : initial state in the layer's public layout ((L, B, H), or a tuple (h, c) for the
        LSTM), or None for zeros
    lengths : array (B,) of ints, optional
        Real steps per sequence. Each sequence is measured back from its own last real step
        :math:`T_b`; entry ``k`` averages over the sequences longer than ``k``, and the result
        covers the longest sequence, so it has ``max(lengths)`` entries.
    norm : {"fro", "spectral"}
        Frobenius norm :math:`\|J\|_F` (the root of the summed squares; what H backward passes
        give directly) or spectral norm :math:`\|J\|_2` (the largest singular value: the
        largest gain any single perturbation of :math:`h_{T-k}` can have on :math:`h_T`;
        costs a small SVD per sequence and lag).
    relative : bool
        Divide by lag 0, so entry 0 is 1.
    level : int
        Which stacked layer to measure, default the top one (-1).

    Returns
    -------
    flow : ndarray (T,), float64
        ``flow[k]`` for lags ``k = 0 .. T-1``.

    Notes
    -----
    With :math:`h^{(b)}_t` the measured layer's output for sequence :math:`b` after step
    :math:`t` (:math:`h_0` the initial state),

    .. math::

        \mathrm{flow}[k] = \frac{1}{B} \sum_{b=1}^{B} \bigl\| J^{(b)}_k \bigr\|, \qquad
        J_k = \frac{\partial h_T}{\partial h_{T-k}} \in \mathbb{R}^{H \times H}, \qquad
        k = 0, \dots, T-1 .

    Lag 0 is the identity: :math:`\|I\|_F = \sqrt{H}` and :math:`\|I\|_2 = 1`; use
    ``relative=True`` (or divide by ``flow[0]``) for a curve that starts at 1. By the chain
    rule :math:`J_k` is a product of one-step Jacobians; for the Elman cell
    :math:`h_t = \Phi(x_t W_x + h_{t-1} W_h + b)` it is

    .. math::

        J_k = \prod_{t=T}^{T-k+1} \operatorname{diag}\bigl(\Phi'(a_t)\bigr) W_h^\top ,

    whose norm shrinks or grows geometrically with :math:`k` when the factors' gains stay
    below or above 1: the vanishing and exploding gradient of the notes.

    The LSTM's state is the pair :math:`(h, c)`. Its :math:`J_k` perturbs :math:`h_{T-k}`
    alone, with :math:`c_{T-k}` held fixed, and follows every path to :math:`h_T`, through
    later :math:`h` and :math:`c` alike:

    .. math::

        J_k = \begin{bmatrix} I & 0 \end{bmatrix} M_T M_{T-1} \cdots M_{T-k+1}
              \begin{bmatrix} I \\ 0 \end{bmatrix}, \qquad
        M_t = \frac{\partial (h_t, c_t)}{\partial (h_{t-1}, c_{t-1})} .

    In a stack, the layer ``level`` is measured through its own recurrence; the layers below
    it do not depend on its state, so their outputs enter as fixed inputs and the result is
    exact for the whole stack. Layers above ``level`` play no part.

    Computation: row :math:`j` of :math:`J_k` is the gradient of :math:`h_T[j]` with respect
    to :math:`h_{T-k}`, which is what BPTT carries back from a unit vector :math:`e_j` at the
    last step. The H unit vectors are stacked along the batch axis (H·B rows) and one
    backward pass through the stored sequence gives every lag at once, at the cost of about H
    ordinary backward passes over ``x`` (without weight gradients).

    Examples
    --------
    >>> layer = rnnlab.Elman(8, 64, seed=0)
    >>> x = np.random.default_rng(0).normal(size=(8, 100, 8))
    >>> flow = rnnlab.diagnostics.gradient_flow(layer, x, relative=True)
    >>> rnnlab.diagnostics.memory_length(flow, 0.01)  # first lag below 1 % of lag 0
    8
    """
    layer = _layer64(model)
    norm = checks.choice(norm, "norm", NORMS)
    fw = _forward(layer, x, state, lengths, _level(layer, level))
    cell, p = layer.cell, fw.params
    B, H = fw.outputs.shape[1], layer.hidden_size
    Tmax = int(fw.lengths.max())
    total, count = np.zeros(Tmax), np.zeros(Tmax)
    chunk = max(1, _MAX_ROWS // H)
    for b0 in range(0, B, chunk):
        sl = slice(b0, min(b0 + chunk, B))
        Bc = sl.stop - sl.start
        last = fw.lengths[sl] - 1  # (Bc,) each sequence's last real step, -1 if empty
        # row p*Bc + b probes output unit p of sequence b: it starts as e_p at b's last step
        probes = np.repeat(np.eye(H), Bc, axis=0)  # (H*Bc, H)

        def probe(t, d, last=last, probes=probes, Bc=Bc):
            starts = np.tile(last == t, H)  # (H*Bc,)
            if starts.any():
                dh = d[0].copy()
                dh[starts] = probes[starts]
                d = (dh,) + d[1:]
            # d[0] is now dh_{T_b} / dh_t for each sequence: lag T_b - t
            J = d[0].reshape(H, Bc, H)  # J[p, b, :] = row p of sequence b's Jacobian
            if norm == "fro":
                n = np.sqrt(np.einsum("pbj,pbj->b", J, J))
            else:
                n = np.linalg.norm(J.transpose(1, 0, 2), ord=2, axis=(1, 2))
            lag = last - t
            live = lag >= 0
            np.add.at(total, lag[live], n[live])
            np.add.at(count, lag[live], 1)
            return d

        # the backward loop from the last real step of the longest sequence: its rows
        # carry zeros until their own last step, so no mask is needed
        tiled = _Tiled(fw.saved[:Tmax], sl, H)
        d0 = tuple(np.zeros((H * Bc, H)) for _ in range(cell.n_state))
        recurrent.layer_backward(cell, p, recurrent.LayerCache(None, None, tiled, None, None),
                                 None, d0, need_dx=False, need_weights=False, hook=probe)
    flow = total / count
    return flow / flow[0] if relative else flow


def memory_length(flow, fraction: float = 0.01) -> int:
    r"""The first lag at which the flow falls below ``fraction`` of its lag-0 value.

    Parameters
    ----------
    flow : array (T,)
        A flow from :func:`gradient_flow`, relative or not (it is divided by ``flow[0]``).
    fraction : float in (0, 1)

    Returns
    -------
    int
        :math:`\min\{k : \mathrm{flow}[k] < \text{fraction} \cdot \mathrm{flow}[0]\}`, or T
        (the length of ``flow``) when the flow never falls that low within the sequence.

    Notes
    -----
    For a geometric flow :math:`\mathrm{flow}[k] = \rho^k \mathrm{flow}[0]` with
    :math:`\rho < 1` this is :math:`\lceil \ln(\text{fraction}) / \ln \rho \rceil` (one more
    when the ratio is a whole number): with :math:`\rho = 0.5` and 1 %, lag 7.
    """
    f = np.asarray(flow, dtype=np.float64)
    if f.ndim != 1 or f.size == 0:
        raise ValueError(f"flow must be a non-empty 1-D array (T,), got shape {f.shape}")
    if np.isnan(f).any() or (f < 0).any():
        raise ValueError("flow must hold non-negative numbers (norms), got NaN or a negative "
                         f"value at index {int(np.argmax(np.isnan(f) | (f < 0)))}")
    if not (np.isfinite(f[0]) and f[0] > 0):
        raise ValueError(f"flow[0] must be positive and finite (the identity's norm), got {f[0]}")
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) \
            or not 0 < fraction < 1:
        raise ValueError(f"fraction must be a number in (0, 1), got {fraction!r}")
    below = np.flatnonzero(f < fraction * f[0])
    return int(below[0]) if below.size else int(f.size)


# --------------------------------------------------------------------------------------------
# the loss's gradient per step
# --------------------------------------------------------------------------------------------
def _loss_gradients(net: Network, x, y, state, lengths):
    """(loss, (T,) norms) for a float64 Network; see :func:`loss_gradient_norms`."""
    layer = net.rnn
    fw = _forward(layer, x, state, lengths, layer.num_layers - 1)
    W, b = net.params["head.W_y"], net.params["head.b_y"]
    lens = fw.lengths if fw.mask is not None else None
    if net.readout not in ("all", "last"):  # a readout added later needs its own branch here
        raise ValueError(f"loss gradients for readout {net.readout!r} are not implemented; "
                         "expected 'all' or 'last'")
    if net.readout == "all":
        h = fw.outputs if fw.mask is None else fw.outputs * fw.mask  # (T, B, H)
        h = h.transpose(1, 0, 2)  # (B, T, H)
    else:
        h = fw.final[0]  # (B, H) each sequence's state after its last real step
    z = h @ W + b
    # the Network's own loss, so targets are checked and averaged exactly as in training
    loss, dz = net.output_loss(z, y, lens)
    dh = dz @ W.T  # (B, T, H) or (B, H)
    T, B = fw.outputs.shape[:2]
    d = [np.zeros((B, layer.hidden_size)) for _ in range(layer.n_state)]
    dy = None
    if net.readout == "all":
        dy = dh.transpose(1, 0, 2)  # (T, B, H)
    else:
        d[0] = dh
    out = np.zeros(T)
    mask = fw.mask

    def record(t, d):
        # on padded steps the carried gradient belongs to a held state, not to an h_t
        g = d[0] if mask is None else d[0] * mask[t]
        out[t] = np.sqrt(np.sum(g * g))

    recurrent.layer_backward(layer.cell, fw.params, fw.cache, dy, tuple(d), need_dx=False,
                             need_weights=False, hook=record)
    return loss, out[: int(fw.lengths.max())]


def loss_gradient_norms(net: Network, x, y, *, state=None, lengths=None) -> np.ndarray:
    r"""Norm of the loss's gradient with respect to the top layer's output, per step.

    Parameters
    ----------
    net : Network
    x : array (B, T, D)
    y : targets, exactly as for :meth:`Network.loss_and_grad`
    state : initial recurrent state, or None
    lengths : array (B,), optional; padded steps are left out and the result has
        ``max(lengths)`` entries

    Returns
    -------
    ndarray (T,), float64
        Entry ``t - 1`` is :math:`\|\partial L / \partial h_t\|_F` for :math:`t = 1 .. T`.

    Notes
    -----
    :math:`L` is the Network's mean loss over the batch (its training loss) and
    :math:`h_t \in \mathbb{R}^{B \times H}` the top layer's outputs after step :math:`t`.
    The gradient is the total one, through the readout at step :math:`t` and every later
    step: exactly what BPTT carries at step :math:`t`,

    .. math::

        \frac{\partial L}{\partial h_t} = \frac{\partial L}{\partial z_t} W_y^\top
            + \frac{\partial L}{\partial h_{t+1}} \frac{\partial h_{t+1}}{\partial h_t} ,

    the first term only for ``readout="all"``. With ``readout="last"`` only the last step
    reads the state, so the curve from :math:`t = T` back to 1 is the loss's own gradient
    flow. At padded steps of a sequence its rows count as zero.
    """
    return _loss_gradients(_network64(net), x, y, state, lengths)[1]


# --------------------------------------------------------------------------------------------
# weights and units
# --------------------------------------------------------------------------------------------
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
    with gain :math:`f` independently of :math:`W_h`.
    """
    layer = _layer64(model)
    H = layer.hidden_size
    gates = layer.cell.gates
    out = {}
    for k in range(layer.num_layers):
        W = layer.params[f"l{k}.W_h"]  # (H, G*H)
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
    layer = _layer64(model)
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) \
            or not 0 < threshold < 1:
        raise ValueError(f"threshold must be a number in (0, 1), got {threshold!r}")
    fw = _forward(layer, x, state, lengths, _level(layer, level))
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


# --------------------------------------------------------------------------------------------
# everything at once
# --------------------------------------------------------------------------------------------
@dataclass
class Report:
    """What :func:`diagnose` measured; :meth:`summary` formats it for a terminal."""

    model: str  # e.g. "Elman(tanh), 1 layer, H=64"
    batch: int  # B, sequences measured
    steps: int  # T, the longest real sequence
    norm: str  # "fro" or "spectral": the Jacobian norm of the flow
    flow: np.ndarray  # (T,) batch-averaged norm of dh_T/dh_{T-k}, absolute (see gradient_flow)
    fraction: float  # memory_length's threshold, relative to lag 0
    memory_length: int  # first lag with flow < fraction * flow[0], T if none
    spectral_radius: dict  # name -> radius of each recurrent weight block
    threshold: float  # slope fraction below which a unit counts as saturated
    saturation: dict  # name -> (T,) fraction of saturated units per step
    loss: float | None = None  # the Network's mean loss on (x, y), when y was given
    loss_gradients: np.ndarray | None = None  # (T,) ||dL/dh_t||, when y was given

    @property
    def relative_flow(self) -> np.ndarray:
        """The flow divided by lag 0 (which is the identity's norm)."""
        return self.flow / self.flow[0]

    def summary(self) -> str:
        """A few lines for the terminal: flow at chosen lags, memory, radii, saturation."""
        T, rel = self.steps, self.relative_flow
        lags = [k for k in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if k < T]
        if T - 1 not in lags and T > 1:
            lags.append(T - 1)
        nm = "Frobenius" if self.norm == "fro" else "spectral"
        lines = [
            f"{self.model}; {self.batch} sequences of {T} steps",
            f"gradient flow |dh_T/dh_(T-k)| / |I| ({nm} norm, batch mean):",
            "  " + "  ".join(f"k={k}: {rel[k]:.3g}" for k in lags),
        ]
        far = "never within the sequence" if self.memory_length >= T else \
            f"{self.memory_length} steps"
        lines.append(f"memory length (flow below {self.fraction:g} of lag 0): {far}")
        lines.append("spectral radius: " + ", ".join(
            f"{k} {v:.3g}" for k, v in self.spectral_radius.items()))
        lines.append(f"saturated units (slope < {self.threshold:g} of max), mean over steps: "
                     + ", ".join(f"{k} {np.mean(v):.1%}" for k, v in self.saturation.items()))
        if self.loss_gradients is not None:
            g = self.loss_gradients
            picks = sorted({0, len(g) // 2, len(g) - 1})
            lines.append(f"loss {self.loss:.4g}; |dL/dh_t|: " + "  ".join(
                f"t={t + 1}: {g[t]:.3g}" for t in picks))
        return "\n".join(lines)


def _describe(layer: RecurrentLayer) -> str:
    name = type(layer).__name__
    if "activation" in layer.options:
        name += f"({layer.activation})"
    L = layer.num_layers
    return f"{name}, {L} layer{'s' if L > 1 else ''}, H={layer.hidden_size}"


def diagnose(model, x, y=None, *, state=None, lengths=None, norm: str = "fro",
             fraction: float = 0.01, threshold: float = 0.1) -> Report:
    """Measure a model's gradient flow, memory, weights and saturation on some input.

    Parameters
    ----------
    model : Elman, LSTM, GRU or Network
    x : array (B, T, D)
        A few sequences are enough; the flow costs about H backward passes over them.
    y : targets for a Network (as :meth:`Network.loss_and_grad`), optional
        With them the report also holds the loss and :func:`loss_gradient_norms`.
    state, lengths : as :func:`gradient_flow`
    norm : {"fro", "spectral"}
        The Jacobian norm of the flow.
    fraction : float in (0, 1)
        For :func:`memory_length`.
    threshold : float in (0, 1)
        For :func:`saturation`.

    Returns
    -------
    Report
        Top layer's flow, memory length and saturation; every layer's spectral radii.
    """
    if y is not None and not isinstance(model, Network):
        raise ValueError(f"targets y need a Network (with an output head and a loss), got "
                         f"{type(model).__name__}")
    layer = _layer64(model)  # validates the model before any work
    flow = gradient_flow(model, x, state=state, lengths=lengths, norm=norm)
    mem = memory_length(flow, fraction)
    sat = saturation(model, x, state=state, lengths=lengths, threshold=threshold)
    loss = grads = None
    if y is not None:
        loss, grads = _loss_gradients(_network64(model), x, y, state, lengths)
    return Report(
        model=_describe(layer), batch=int(np.shape(x)[0]), steps=len(flow), norm=norm,
        flow=flow, fraction=float(fraction), memory_length=mem,
        spectral_radius=spectral_radius(model), threshold=float(threshold), saturation=sat,
        loss=loss, loss_gradients=grads,
    )
