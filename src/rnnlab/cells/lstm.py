"""The long short-term memory layer (Hochreiter & Schmidhuber 1997, with forget gate),
with an optional projection of its output (LSTMP, Sak et al. 2014), optional peepholes
(Gers & Schmidhuber 2000) or optional layer normalisation (Ba, Kiros & Hinton 2016).

Shape legend: B batch, D input features, H hidden units (the cell state), P projected
units (the output ``h``; P = H without projection). Fused gate order: ``i, f, g, o``
(input, forget, cell candidate, output), each an H-wide block of the 4H columns; this is
also PyTorch's order.
"""

from __future__ import annotations

import numpy as np

from .. import checks
from .. import init as _init
from ..activations import sigmoid
from .base import RecurrentLayer
from .cell import Cell


class LSTMCell(Cell):
    """One LSTM step on state ``(h, c)`` and its backward."""

    name = "lstm"
    gates = ("i", "f", "g", "o")
    state = ("h", "c")
    nonlinearities = ("i", "f", "g", "o", "tanh(c)")
    torch_module = "LSTM"
    torch_gates = ("i", "f", "g", "o")
    # ONNX's LSTM with its default activations (sigmoid, tanh, tanh), no peepholes and
    # input_forget=0 is this cell; its gate blocks come as i, o, f, c (c our g)
    onnx_operator = "LSTM"
    onnx_gates = ("i", "o", "f", "g")
    kernel = "lstm"
    _activations = ("sigmoid", "sigmoid", "tanh", "sigmoid")

    def nonlinear_outputs(self, saved):
        gates, _c, tc = saved  # gates (B, 4H) after their activations
        H = tc.shape[1]
        out = {g: (gates[:, i * H:(i + 1) * H], a)
               for i, (g, a) in enumerate(zip(self.gates, self._activations, strict=True))}
        out["tanh(c)"] = (tc, "tanh")
        return out

    def step(self, p, xp_t, state):
        h, c = state
        a = xp_t + h @ p["W_h"]  # (B, 4H) pre-activations i, f, g, o
        H = h.shape[1]
        gates = sigmoid(a)
        gates[:, 2 * H:3 * H] = np.tanh(a[:, 2 * H:3 * H])
        i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        return (o * tc, c_new), (gates, c, tc)

    def step_back(self, p, saved, dstate):
        gates, c, tc = saved
        dh, dc = dstate
        H = dh.shape[1]
        i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
        dc = dc + dh * o * (1 - tc * tc)
        da = np.empty_like(gates)  # (B, 4H)
        da[:, :H] = dc * g * i * (1 - i)
        da[:, H:2 * H] = dc * c * f * (1 - f)
        da[:, 2 * H:3 * H] = dc * i * (1 - g * g)
        da[:, 3 * H:] = dh * tc * o * (1 - o)
        return da, da, (da @ p["W_h"].T, dc * f)


class LSTMVariantCell(LSTMCell):
    """The LSTM step with a projection of its output and/or peepholes (the equations:
    :class:`LSTM`).

    Parameters beyond the plain cell's: ``W_hr`` (H, P), the projection, with ``W_h`` then
    (P, 4H); ``p_i``, ``p_f``, ``p_o`` (H,), the peepholes. A subclass of the plain cell,
    it inherits neither its kernel nor its ONNX operator. With a projection alone it
    declares the kernel ``"lstmp"``, with peepholes alone ``"lstm_peepholes"``
    (:mod:`rnnlab.kernels.lstm`, both checked against this step on every test run), and
    ONNX's ``LSTM`` with its ``P`` input; with both it runs the reference loop and has no
    ONNX operator.
    """

    def __init__(self, projection: bool = False, peepholes: bool = False):
        self.projection, self.peepholes = bool(projection), bool(peepholes)
        self.extra_params = (("W_hr",) if projection else ()) + (
            ("p_i", "p_f", "p_o") if peepholes else ())
        # one kernel for each variant alone (the two together run the reference loop);
        # ONNX's LSTM has peepholes (its P input) but no projection
        self.own_kernel = ("lstmp" if not peepholes else "lstm_peepholes" if not projection
                           else None)
        self.own_onnx_operator = "LSTM" if peepholes and not projection else None

    def onnx_attributes(self):
        if self.projection:
            raise ValueError("ONNX's LSTM operator has no output projection: an LSTM with "
                             "proj_size > 0 cannot be exported")
        return {}

    def onnx_extra_inputs(self, p):
        # ONNX's LSTM input P: the peepholes in its order i, o, f
        return [np.concatenate([p["p_i"], p["p_o"], p["p_f"]])] if self.peepholes else []

    def nonlinear_outputs(self, saved):
        return super().nonlinear_outputs(saved[:3])

    def step(self, p, xp_t, state):
        h, c = state  # (B, P), (B, H)
        a = xp_t + h @ p["W_h"]  # (B, 4H) pre-activations i, f, g, o
        H = c.shape[1]
        if self.peepholes:  # i and f look at c_{t-1}; o at c_t, below
            a[:, :H] += c * p["p_i"]
            a[:, H:2 * H] += c * p["p_f"]
        gates = sigmoid(a)
        gates[:, 2 * H:3 * H] = np.tanh(a[:, 2 * H:3 * H])
        i, f, g = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H]
        c_new = f * c + i * g
        if self.peepholes:
            gates[:, 3 * H:] = sigmoid(a[:, 3 * H:] + c_new * p["p_o"])
        tc = np.tanh(c_new)
        m = gates[:, 3 * H:] * tc  # (B, H) the unprojected output
        h_new = m @ p["W_hr"] if self.projection else m
        return (h_new, c_new), (gates, c, tc, c_new)

    def step_back(self, p, saved, dstate):
        gates, c, tc, c_new = saved
        dh, dc = dstate
        H = c.shape[1]
        i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
        dm = dh @ p["W_hr"].T if self.projection else dh  # (B, H)
        da = np.empty_like(gates)  # (B, 4H)
        da_o = da[:, 3 * H:]
        da_o[...] = dm * tc * o * (1 - o)
        dc = dc + dm * o * (1 - tc * tc)
        if self.peepholes:
            dc = dc + da_o * p["p_o"]
        da[:, :H] = dc * g * i * (1 - i)
        da[:, H:2 * H] = dc * c * f * (1 - f)
        da[:, 2 * H:3 * H] = dc * i * (1 - g * g)
        dc_prev = dc * f
        factors = ()
        if self.projection:
            factors += (o * tc, dh)
        if self.peepholes:
            dc_prev = dc_prev + da[:, :H] * p["p_i"] + da[:, H:2 * H] * p["p_f"]
            factors += (da[:, :H] * c, da[:, H:2 * H] * c, da_o * c_new)
        return da, da, (da @ p["W_h"].T, dc_prev), factors

    def extra_grads(self, p, factors):
        out = {}
        if self.projection:
            m, dh = factors[:2]  # (T*B, H), (T*B, P)
            out["W_hr"] = m.T @ dh
            factors = factors[2:]
        if self.peepholes:
            for name, f in zip(("p_i", "p_f", "p_o"), factors, strict=True):
                out[name] = f.sum(axis=0)
        return out


#: the variance offset of every layer normalisation (the LSTM's and the GRU's)
LN_EPS = 1e-5


def normalised(u):
    """Each row of ``u`` (B, N) less its mean, over its standard deviation (with
    :data:`LN_EPS` added to the variance): ``(n, s)``, ``s`` (B, 1) the inverse deviations."""
    mu = u.mean(axis=1, keepdims=True)
    d = u - mu
    s = 1.0 / np.sqrt((d * d).mean(axis=1, keepdims=True) + LN_EPS)
    return d * s, s.astype(u.dtype, copy=False)


def normalised_back(dn, n, s):
    """The gradient at ``u`` from the gradient ``dn`` at :func:`normalised`'s ``n``."""
    return s * (dn - dn.mean(axis=1, keepdims=True) - n * (dn * n).mean(axis=1, keepdims=True))


class LayerNormLSTMCell(LSTMCell):
    r"""The layer-normalised LSTM step (haste's ``LayerNormLSTM``) and its backward.

    Each of the two products is normalised over its whole 4H row (all four gate blocks
    together, as haste does), scaled by a gain, and the bias added after; the cell state
    is normalised over its H units before the ``tanh`` of the output (the carried ``c_t``
    itself is not):

    .. math::

        a &= \mathrm{LN}(x_t W_x)\,\gamma_x + \mathrm{LN}(h_{t-1} W_h)\,\gamma_h + b \\
        c_t &= f \odot c_{t-1} + i \odot g, \qquad
        h_t = o \odot \tanh(\mathrm{LN}(c_t)\,\gamma_c + \beta_c)

    with :math:`\mathrm{LN}(u) = (u - \bar u) / \sqrt{\mathrm{var}(u) + \epsilon}` per row,
    :math:`\epsilon` = :data:`LN_EPS` = 1e-5. Parameters beyond the plain cell's:
    ``ln_x_g``, ``ln_h_g`` (4H,) and ``ln_c_g``, ``ln_c_b`` (H,), gains 1 and offset 0 at
    the start. The two products have gains only: an offset there would be ``b`` again.
    The loop hands ``step`` the bare ``x_t W_x`` (``loop_biases`` False). Its own kernel
    is ``"lstm_ln"`` (:mod:`rnnlab.kernels.lstm`); no ONNX operator computes it.
    """

    kernel = "lstm_ln"
    onnx_operator = None
    loop_biases = False
    extra_params = ("ln_x_g", "ln_h_g", "ln_c_g", "ln_c_b")
    nonlinearities = ("i", "f", "g", "o", "tanh(c)")

    def nonlinear_outputs(self, saved):
        return super().nonlinear_outputs(saved[:3])

    def step(self, p, xp_t, state):
        h, c = state
        H = c.shape[1]
        nx, sx = normalised(xp_t)  # (B, 4H), (B, 1)
        nh, sh = normalised(h @ p["W_h"])
        a = nx * p["ln_x_g"] + nh * p["ln_h_g"] + p["b"]  # (B, 4H) pre-activations
        gates = sigmoid(a)
        gates[:, 2 * H:3 * H] = np.tanh(a[:, 2 * H:3 * H])
        i, f, g = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H]
        c_new = f * c + i * g
        nc, sc = normalised(c_new)  # (B, H)
        tc = np.tanh(nc * p["ln_c_g"] + p["ln_c_b"])
        return (gates[:, 3 * H:] * tc, c_new), (gates, c, tc, nx, sx, nh, sh, nc, sc)

    def step_back(self, p, saved, dstate):
        gates, c, tc, nx, sx, nh, sh, nc, sc = saved
        dh, dc = dstate
        H = c.shape[1]
        i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
        da = np.empty_like(gates)  # (B, 4H) at the pre-activations
        da[:, 3 * H:] = dh * tc * o * (1 - o)
        dln = dh * o * (1 - tc * tc)  # (B, H) at LN(c_t) gamma_c + beta_c
        dc = dc + normalised_back(dln * p["ln_c_g"], nc, sc)
        da[:, :H] = dc * g * i * (1 - i)
        da[:, H:2 * H] = dc * c * f * (1 - f)
        da[:, 2 * H:3 * H] = dc * i * (1 - g * g)
        dxp = normalised_back(da * p["ln_x_g"], nx, sx)  # at x_t W_x
        dhp = normalised_back(da * p["ln_h_g"], nh, sh)  # at h_{t-1} W_h
        factors = (da, da * nx, da * nh, dln * nc, dln)
        return dxp, dhp, (dhp @ p["W_h"].T, dc * f), factors

    def extra_grads(self, p, factors):
        names = ("b", "ln_x_g", "ln_h_g", "ln_c_g", "ln_c_b")
        return {name: f.sum(axis=0) for name, f in zip(names, factors, strict=True)}


class LSTM(RecurrentLayer):
    r"""Long short-term memory layer.

    Parameters
    ----------
    input_size, hidden_size, num_layers, seed, dtype, init :
        As :class:`~rnnlab.cells.base.RecurrentLayer`.
    forget_bias : float or None
        Initial bias of the forget gate (default 1, Gers et al. 2000; Jozefowicz et al.
        2015), so the cell starts out remembering; None keeps the uniform draw.
    proj_size : int
        P > 0 projects each step's output to P units (LSTMP, PyTorch's ``proj_size``):
        ``h`` and the outputs are P wide (layers above read P, or 2P, features), ``c``
        stays H wide. 0 (default) for none; it must be less than H, as in PyTorch.
    peepholes : bool
        Diagonal connections from the cell state to the gates (Gers & Schmidhuber 2000):
        ``p_i``, ``p_f`` read ``c_{t-1}``, ``p_o`` reads ``c_t``. PyTorch has none.
    layer_norm : bool
        Layer normalisation of the two products and of the cell state (Ba, Kiros & Hinton
        2016, as haste's ``LayerNormLSTM``): the equations are
        :class:`LayerNormLSTMCell`'s. Not with ``proj_size`` or ``peepholes``; PyTorch
        and ONNX have no counterpart.

    Notes
    -----
    With :math:`\sigma` the logistic function and gate order ``i, f, g, o``:

    .. math::

        [a_i, a_f, a_g, a_o] &= x_t W_x + h_{t-1} W_h + b \\
        i = \sigma(a_i),\ f &= \sigma(a_f),\ g = \tanh(a_g),\ o = \sigma(a_o) \\
        c_t &= f \odot c_{t-1} + i \odot g \\
        h_t &= o \odot \tanh(c_t)

    With peepholes, :math:`a_i \mathrel{+}= p_i \odot c_{t-1}`,
    :math:`a_f \mathrel{+}= p_f \odot c_{t-1}` and :math:`a_o \mathrel{+}= p_o \odot c_t`
    (so ``o`` is computed after ``c_t``). With a projection,
    :math:`h_t = (o \odot \tanh(c_t))\, W_{hr}`, ``W_hr`` (H, P), and ``W_h`` is (P, 4H).

    The state is the pair ``(h, c)``: (L, B, P) and (L, B, H) (2L rows when
    bidirectional). PyTorch's ``nn.LSTM`` has two biases whose sum is ``b``; its
    ``weight_hr_l{k}`` is ``W_hr`` transposed.
    """

    Cell = LSTMCell
    options = ("forget_bias", "proj_size", "peepholes", "layer_norm")

    def __init__(self, input_size, hidden_size, num_layers=1, *, forget_bias=1.0,
                 proj_size=0, peepholes=False, layer_norm=False, **kwargs):
        if forget_bias is not None and not np.isfinite(forget_bias):
            raise ValueError(f"forget_bias must be a finite number or None, got {forget_bias!r}")
        self.forget_bias = None if forget_bias is None else float(forget_bias)
        self.proj_size = checks.integer(proj_size, "proj_size", minimum=0)
        H = checks.positive_int(hidden_size, "hidden_size")
        if self.proj_size >= H:
            raise ValueError(f"proj_size must be less than hidden_size {H} (as in PyTorch), "
                             f"got {self.proj_size}")
        self.peepholes = checks.boolean(peepholes, "peepholes")
        self.layer_norm = checks.boolean(layer_norm, "layer_norm")
        if self.layer_norm and (self.proj_size or self.peepholes):
            raise ValueError(f"layer_norm=True does not combine with proj_size="
                             f"{self.proj_size} or peepholes={self.peepholes}: use one of them")
        super().__init__(input_size, hidden_size, num_layers, **kwargs)

    def _make_cell(self):
        if self.layer_norm:
            return LayerNormLSTMCell()
        if self.proj_size or self.peepholes:
            return LSTMVariantCell(projection=self.proj_size > 0, peepholes=self.peepholes)
        return super()._make_cell()

    @property
    def output_features(self) -> int:
        """Features of ``y`` per step: P (H without projection), twice when bidirectional."""
        return (self.proj_size or self.hidden_size) * self.directions

    @property
    def state_sizes(self) -> tuple:
        """The widths of ``(h, c)``: ``(P, H)``, or ``(H, H)`` without projection."""
        return (self.proj_size or self.hidden_size, self.hidden_size)

    def _adjust_init(self, p, rng):
        H, P = self.hidden_size, self.proj_size
        k = 1.0 / np.sqrt(H)  # PyTorch's bound for every LSTM weight, W_hr included
        if P:
            if self.init == "orthogonal":  # each gate's (P, H) block semi-orthogonal
                p["W_h"] = np.concatenate(
                    [_init.orthogonal(rng, H)[:P] for _ in range(4)], axis=1)
            else:
                p["W_h"] = _init.uniform(rng, (P, 4 * H), k)
            p["W_hr"] = _init.uniform(rng, (H, P), k)
        if self.peepholes:
            for name in ("p_i", "p_f", "p_o"):
                p[name] = _init.uniform(rng, (H,), k)
        if self.layer_norm:  # gains 1, offset 0: the plain normalisation at the start
            p.update(ln_x_g=np.ones(4 * H), ln_h_g=np.ones(4 * H), ln_c_g=np.ones(H),
                     ln_c_b=np.zeros(H))
        if self.forget_bias is not None:
            p["b"][H:2 * H] = self.forget_bias

    @classmethod
    def count_params(cls, config: dict) -> int | None:
        """:meth:`RecurrentLayer.count_params`, with 10H per layer and direction for the
        layer norm's gains and offset."""
        n = super().count_params(config)
        if n is None or config.get("layer_norm") is not True:
            return n
        dirs = 2 if config.get("bidirectional") is True else 1
        return n + dirs * config.get("num_layers", 1) * 10 * config["hidden_size"]
