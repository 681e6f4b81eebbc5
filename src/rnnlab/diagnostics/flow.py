r"""Gradient flow through time, the memory length it implies, and the loss's gradient per step.

Shape legend: B batch, T time, D input features, H hidden units, L layers.
Time is 1-based in the maths and 0-based in arrays: :math:`h_t` is a layer's output after
step :math:`t` (``y[:, t - 1]``), :math:`h_0` its initial state, :math:`h_T` its last output.

Each function backpropagates through a recorded forward (:mod:`rnnlab.diagnostics.forward`)
with the reference loop's per-step hook, without weight gradients.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import checks, recurrent
from ..network import Network
from .forward import layer64, level_index, network64, run_forward

#: norms of the Jacobian :func:`gradient_flow` can report
NORMS = ("fro", "spectral")
# rows of one backward pass in gradient_flow (H probes x sequences): bounds memory at about
# _MAX_ROWS * 4H floats per array; larger batches run in several passes
_MAX_ROWS = 8192


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
    if saved is None or isinstance(saved, float):  # zoneout's rates, one for every row
        return saved
    return type(saved)(_rows(s, sl, copies) for s in saved)


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
    layer = layer64(model)
    norm = checks.choice(norm, "norm", NORMS)
    fw = run_forward(layer, x, state, lengths, level_index(layer, level))
    cell, p = layer.cell, fw.params
    B, H = fw.outputs.shape[1], layer.state_sizes[0]  # H: the width of h (an LSTM's P)
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
        d0 = tuple(np.zeros((H * Bc, w)) for w in layer.state_sizes)
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


def loss_gradients(net: Network, x, y, state, lengths):
    """(loss, (T,) norms) for a float64 Network; see :func:`loss_gradient_norms`."""
    layer = net.rnn
    fw = run_forward(layer, x, state, lengths, layer.num_layers - 1)
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
    d = [np.zeros((B, w)) for w in layer.state_sizes]
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
    return loss_gradients(network64(net), x, y, state, lengths)[1]
