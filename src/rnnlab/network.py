"""A network: stacked recurrent layers and an output head, with loss and gradients in one call.

Shape legend: B batch, T time, D input features, H hidden units, K outputs.
The head reads the top layer's output at every step (``readout="all"``, many-to-many) or its
state after each sequence's last real step (``readout="last"``, many-to-one) and applies

    z = h W_y + b_y     then     softmax(z)  or  z itself (``output="linear"``)

as in the notes' ``y_t = s_t W_y`` or ``y_t = softmax(s_t W_y)``. The pooled readouts give
one prediction per sequence from the top outputs ``h_t`` over its real steps: their mean
(``"mean"``), their per-unit maximum (``"max"``), or an attention-weighted sum
(``"attention"``) with one learned vector ``w_a`` (``head.w_a``, H):

    s_t = h_t · w_a,    α = softmax_t(s)  over the real steps,    h = Σ_t α_t h_t

whose backward, with ``g_t = dL/dh · h_t``, is ``ds_t = α_t (g_t - Σ_u α_u g_u)``,
``dL/dh_t = α_t dL/dh + ds_t w_a`` and ``dL/dw_a = Σ_t ds_t h_t``. ``w_a`` starts at zero, so
an untrained attention readout is the mean.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import checks, io, losses
from . import dropout as _dropout
from . import init as _init
from .cells import LAYERS
from .cells.base import StackCache
from .kernels import matmul as _matmul

OUTPUTS = ("softmax", "linear")
READOUTS = ("all", "last", "mean", "max", "attention")
# one prediction per sequence from the top outputs over real steps
POOLED = ("mean", "max", "attention")


class NetCache(NamedTuple):
    rnn: object  # the layer's StackCache
    h: np.ndarray  # (B*T, H) or (B, H): what the head read, one row per position
    lengths: np.ndarray | None
    # "mean": (weights (B, T),); "max": (step per unit (B, H), T);
    # "attention": (weights α (B, T), the top outputs (B, T, H))
    pool: tuple | None = None
    bf16: bool = False  # the head's product ran in bf16: so do its backward's


class LossResult(NamedTuple):
    loss: float  # mean over real positions
    grads: dict  # name -> array, like Network.params
    state: object  # final recurrent state, to carry into the next window


class Params(dict):
    """A network's parameters: a dict whose ``rnn.*`` entries the layer reads as its own.

    Setting an entry ``rnn.<name>`` (a new array for a weight) sets the layer's ``<name>``
    too, so the layer's :attr:`~rnnlab.RecurrentLayer.params` always holds the very arrays
    of the network's and nothing needs syncing. In-place updates (the optimisers') change
    the one array both hold.
    """

    def __init__(self, layer, items=()):
        super().__init__()
        self.layer = layer
        self.update(items)

    def __setitem__(self, name, value):
        super().__setitem__(name, value)
        layer = self.__dict__.get("layer")  # absent while unpickling: the layer has its own
        if layer is not None and name.startswith("rnn."):
            layer.params[name[4:]] = value

    def __delitem__(self, name):
        raise TypeError("a network's parameters cannot be removed")

    def update(self, *items, **named):
        for name, value in dict(*items, **named).items():
            self[name] = value

    def setdefault(self, name, value=None):
        if name not in self:
            self[name] = value
        return self[name]

    def __ior__(self, other):
        self.update(other)
        return self


class Network:
    """Recurrent layers plus a linear or softmax output head.

    Parameters
    ----------
    input_size : int
        D, features per step.
    hidden_size : int
        H, units per recurrent layer.
    output_size : int
        K, classes (softmax) or values (linear) per prediction.
    cell : {"lstm", "elman", "gru", "ffnn"}
        ``"ffnn"`` is the feedforward baseline: an MLP over the last ``window`` inputs
        (:class:`rnnlab.cells.ffnn.FFNN`), with ``num_layers`` hidden layers.
    num_layers : int
    output : {"softmax", "linear"}
        softmax with cross-entropy loss, or linear with squared error.
    readout : {"all", "last", "mean", "max", "attention"}
        A prediction at every step, or one per sequence: from its final state ("last"), or
        from the mean, the per-unit maximum or a learned attention-weighted sum of the top
        layer's outputs over its real steps ("mean", "max", "attention"; padded steps never
        count).
    activation : {"tanh", "relu", "sigmoid"}
        Elman and ffnn only.
    window : int or None
        ffnn only: the inputs each step sees (None: 8).
    init : {"uniform", "orthogonal", "identity"}
        Recurrent weights; see :func:`rnnlab.init.recurrent_params`.
    forget_bias : float or None
        LSTM cells only.
    proj_size : int
        LSTM cells only: P > 0 projects the recurrent outputs to P units (see
        :class:`rnnlab.LSTM`); the head then reads P (or 2P) features.
    peepholes : bool
        LSTM cells only: peephole connections (see :class:`rnnlab.LSTM`).
    layer_norm : bool
        LSTM and GRU cells only: layer normalisation (see :class:`rnnlab.LSTM` and
        :class:`rnnlab.GRU`).
    bidirectional : bool
        Recurrent layers that read each sequence both ways (see :class:`rnnlab.LSTM`); the
        head then reads 2H features: at every step both directions' outputs, and with
        readout "last" the forward direction's state after the last real step beside the
        reverse direction's after the first.
    dropout : float
        Train-time dropout between the stacked recurrent layers, as PyTorch's
        ``nn.LSTM(dropout=p)``: the outputs of every layer but the top one (not the head's
        input), inverted scaling, a fresh mask per step (:mod:`rnnlab.dropout`); needs
        ``num_layers >= 2``. The identity at inference. 0 (default): none.
    zoneout, recurrent_dropout :
        The recurrent layers' (see :class:`rnnlab.cells.base.RecurrentLayer`); not for ffnn.
    seed : int, numpy.random.Generator or None
    dtype : float32 or float64

    The train-time masks come from :meth:`draw_masks` (the Trainer calls it with its seeded
    generator for each batch) and go to :meth:`forward` and :meth:`loss_and_grad` as
    ``masks``; everything else (``infer``, ``predict``, ``loss``, ``step``, streaming)
    runs the inference model.

    Attributes
    ----------
    params : dict[str, ndarray]
        ``rnn.l{k}.*`` for the recurrent layers (see :class:`rnnlab.LSTM`), ``head.W_y``
        (H, K), or (2H, K) when bidirectional, ``head.b_y`` (K,), and with readout
        "attention" ``head.w_a`` (H,) or (2H,), the attention's scoring vector. Optimisers update
        these arrays in place; the layer holds the same arrays (:class:`Params`), also
        after an entry is replaced.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        cell: str = "lstm",
        num_layers: int = 1,
        output: str = "softmax",
        readout: str = "all",
        activation: str = "tanh",
        init: str = "uniform",
        forget_bias: float | None = 1.0,
        proj_size: int = 0,
        peepholes: bool = False,
        layer_norm: bool = False,
        bidirectional: bool = False,
        window: int | None = None,
        dropout: float = 0.0,
        zoneout=0.0,
        recurrent_dropout: float = 0.0,
        seed=None,
        dtype=np.float32,
        precision: str = "fp32",
    ):
        self.cell = checks.choice(cell, "cell", tuple(LAYERS))
        self.output = checks.choice(output, "output", OUTPUTS)
        self.readout = checks.choice(readout, "readout", READOUTS)
        self.output_size = checks.positive_int(output_size, "output_size")
        self.activation, self.forget_bias = activation, forget_bias
        layer = LAYERS[cell]
        given = {"activation": activation, "forget_bias": forget_bias,
                 "proj_size": proj_size, "peepholes": peepholes, "layer_norm": layer_norm}
        if "activation" not in layer.options and activation != "tanh":
            raise ValueError(f"activation applies to the elman and ffnn cells only, got "
                             f"{activation!r} with cell {cell!r}")
        for name, off in (("proj_size", 0), ("peepholes", False)):
            if name not in layer.options and given[name] != off:
                raise ValueError(f"{name} applies to the lstm cell only, got {given[name]!r} "
                                 f"with cell {cell!r}")
        if "layer_norm" not in layer.options and layer_norm is not False:
            raise ValueError(f"layer_norm applies to the lstm and gru cells only, got "
                             f"{layer_norm!r} with cell {cell!r}")
        if "window" in layer.options:
            if window is not None:
                given["window"] = window
        elif window is not None:
            raise ValueError(f"window applies to the ffnn cell only, got {window!r} with "
                             f"cell {cell!r}")
        options = {name: v for name, v in given.items() if name in layer.options}
        self.dropout = _dropout.rate(dropout, "dropout")
        if self.dropout and checks.positive_int(num_layers, "num_layers") < 2:
            raise ValueError(f"dropout between layers needs num_layers >= 2, got dropout="
                             f"{dropout!r} with num_layers={num_layers!r} (as PyTorch's, it "
                             f"acts between stacked layers only)")
        for name, value in (("dropout", self.dropout), ("zoneout", zoneout),
                            ("recurrent_dropout", recurrent_dropout)):
            if not layer.recurrent and (value if not isinstance(value, (list, tuple))
                                        else any(value)):
                raise ValueError(f"{name} applies to the recurrent cells only, got "
                                 f"{value!r} with cell {cell!r}")
        if layer.recurrent:
            options.update(zoneout=zoneout, recurrent_dropout=recurrent_dropout)
        rng = _init.rng_from(seed)
        self.rnn = layer(input_size, hidden_size, num_layers, seed=rng, dtype=dtype, init=init,
                         bidirectional=bidirectional, precision=precision, **options)
        H, K = self.rnn.output_features, self.output_size
        k = 1.0 / np.sqrt(H)
        self.params = {f"rnn.{name}": v for name, v in self.rnn.params.items()}
        # as PyTorch's nn.Linear: U(-1/sqrt(H), 1/sqrt(H))
        self.params["head.W_y"] = _init.uniform(rng, (H, K), k).astype(self.rnn.dtype)
        self.params["head.b_y"] = _init.uniform(rng, (K,), k).astype(self.rnn.dtype)
        if self.readout == "attention":  # zero: uniform weights, the mean, until it learns
            self.params["head.w_a"] = np.zeros(H, dtype=self.rnn.dtype)

    # ------------------------------------------------------------------------------------
    @property
    def params(self) -> Params:
        return self._params

    @params.setter
    def params(self, values: dict):
        # self.params is the one source of truth; the layer reads the same arrays
        self._params = Params(self.rnn, values)

    @property
    def config(self) -> dict:
        """Everything needed to rebuild the network's shape (``Network(**config)``)."""
        r = self.rnn
        return {
            "input_size": r.input_size, "hidden_size": r.hidden_size,
            "output_size": self.output_size, "cell": self.cell, "num_layers": r.num_layers,
            "output": self.output, "readout": self.readout, "activation": self.activation,
            "init": r.init, "forget_bias": self.forget_bias, "bidirectional": r.bidirectional,
            "dtype": r.dtype.name,
            **({"window": r.window} if "window" in r.options else {}),
        } | self._variant_config()

    def _variant_config(self) -> dict:
        """The LSTM's ``proj_size`` and ``peepholes`` and the LSTM's and GRU's
        ``layer_norm`` where they are not off: a plain network's config stays what it was,
        so its older checkpoints still resume."""
        r = self.rnn
        out = {name: getattr(r, name) for name in ("proj_size", "peepholes", "layer_norm")
               if getattr(r, name, False)}
        if self.dropout:
            out["dropout"] = self.dropout
        return out | r.regularization

    def __repr__(self) -> str:
        return "Network(" + ", ".join(f"{k}={v!r}" for k, v in self.config.items()) + ")"

    @property
    def dtype(self) -> np.dtype:
        return self.rnn.dtype

    @property
    def precision(self) -> str:
        """``"fp32"``, ``"bf16"`` or ``"auto"``: what the matrix products of the layers and
        the head compute in (see :attr:`rnnlab.LSTM.precision`); not part of
        :attr:`config` or of model files, and may be changed at any time."""
        return self.rnn.precision

    @precision.setter
    def precision(self, value: str) -> None:
        self.rnn.precision = value

    @property
    def computes_in(self) -> str:
        """What :attr:`precision` computes in here and now: ``"fp32"`` or ``"bf16"``."""
        return self.rnn.computes_in

    @property
    def n_params(self) -> int:
        return int(sum(v.size for v in self.params.values()))

    # ------------------------------------------------------------------------------------
    def draw_masks(self, rng, batch: int, steps: int):
        """Train-time masks for a batch (:meth:`rnnlab.cells.base.RecurrentLayer.draw_masks`
        with this network's ``dropout``); None when no option is on."""
        if not self.rnn.recurrent:
            return None
        return self.rnn.draw_masks(rng, batch, steps, between=self.dropout)

    def forward(self, x, state=None, *, lengths=None, reset=None, masks=None):
        """Run the network.

        Parameters
        ----------
        x : array (B, T, D)
        state : initial recurrent state (see :meth:`rnnlab.LSTM.forward`) or None
        lengths : array (B,) of real steps per sequence, or None
        reset : array of bool (B, T) or (T,), or None: where the state entering a step is
            zeros (see :meth:`rnnlab.LSTM.forward`)
        masks : train-time masks from :meth:`draw_masks`, or None (the inference model)

        Returns
        -------
        z : ndarray (B, T, K) for readout "all", (B, K) for the others: logits or values
        state : final recurrent state
        cache : for :meth:`backward`
        """
        z, state, caches, h2, lens, (pool, bf16) = self._run(x, state, lengths, keep=True,
                                                             reset=reset, masks=masks)
        return z, state, NetCache(StackCache(caches, lens), h2, lens, pool, bf16)

    def infer(self, x, state=None, *, lengths=None, reset=None):
        """Run the network for its outputs only: ``(z, state)`` as :meth:`forward` returns
        them, keeping nothing for backward (faster and lighter)."""
        z, state, _, _, _, _ = self._run(x, state, lengths, keep=False, reset=reset)
        return z, state

    def _run(self, x, state, lengths, keep: bool, reset=None, masks=None):
        extra = {} if masks is None else {"masks": masks}  # the ffnn's run takes none
        y, state, caches, lens = self.rnn.run(x, state, lengths, keep=keep, reset=reset,
                                              **extra)
        pool = None
        if self.readout == "all":
            h = y  # (B, T, H)
        elif self.readout in POOLED:
            B, T = y.shape[:2]
            real = (np.ones((B, T), dtype=bool) if lengths is None
                    else np.arange(T)[None, :] < np.asarray(lengths)[:, None])  # (B, T)
            if self.readout == "mean":
                w = real / real.sum(axis=1, keepdims=True)  # (B, T): 1/length on real steps
                w = w.astype(y.dtype)
                h = np.einsum("bth,bt->bh", y, w)
                pool = (w,)
            elif self.readout == "attention":
                s = np.where(real, y @ self.params["head.w_a"], -np.inf)  # (B, T) scores
                a = np.exp(s - s.max(axis=1, keepdims=True))  # 0 on padded steps
                a /= a.sum(axis=1, keepdims=True)  # (B, T): α, softmax over real steps
                h = np.einsum("bth,bt->bh", y, a)
                pool = (a, y)
            else:  # padded steps can never be the maximum
                step = np.where(real[:, :, None], y, -np.inf).argmax(axis=1)  # (B, H)
                h = np.take_along_axis(y, step[:, None, :], axis=1)[:, 0]
                pool = (step, T)
        elif self.rnn.bidirectional:  # the top layer's two directions, side by side
            top = state[0] if isinstance(state, tuple) else state
            h = np.concatenate([top[-2], top[-1]], axis=1)  # (B, 2H)
        else:
            h = (state[0] if isinstance(state, tuple) else state)[-1]  # (B, H) top layer
        W = self.params["head.W_y"]
        h2 = h.reshape(-1, h.shape[-1])  # a copy when h is a transposed view: kept for backward
        bf16 = self.rnn.precision != "fp32" and self.rnn.computes_in == "bf16"
        z = _matmul(h2, W, bf16=bf16).reshape(*h.shape[:-1], W.shape[1])
        z += self.params["head.b_y"]
        return z, state, caches, h2, lens, (pool, bf16)

    def backward(self, cache: NetCache, dz, *, input_grad: bool = True):
        """Gradients of every parameter, the input and the initial state from ``dL/dz``.

        Returns ``(grads, dx, dstate0)``; ``dx`` is None with ``input_grad=False``, which
        skips that product (see :meth:`rnnlab.LSTM.backward`).
        """
        h = cache.h
        W = self.params["head.W_y"]
        K = W.shape[1]
        grads = {
            "head.W_y": _matmul(h, dz.reshape(-1, K), trans_a=True, bf16=cache.bf16),
            "head.b_y": dz.reshape(-1, K).sum(axis=0),
        }
        dh = _matmul(dz.reshape(-1, K), W.T, bf16=cache.bf16).reshape(*dz.shape[:-1],
                                                                        W.shape[0])
        if self.readout == "all":
            g, dx, d0 = self.rnn.backward(cache.rnn, dy=dh, input_grad=input_grad)
        elif self.readout in POOLED:
            if self.readout == "mean":  # each real step gets its share of the mean's gradient
                dy = cache.pool[0][:, :, None] * dh[:, None, :]  # (B, T, H)
            elif self.readout == "attention":  # through the weights and through the sum
                a, y = cache.pool
                g_t = np.einsum("bth,bh->bt", y, dh)  # (B, T): dL/dα_t
                ds = a * (g_t - (a * g_t).sum(axis=1, keepdims=True))  # (B, T): dL/ds_t
                grads["head.w_a"] = np.einsum("bt,bth->h", ds, y)
                dy = a[:, :, None] * dh[:, None, :] + ds[:, :, None] * self.params["head.w_a"]
            else:  # the gradient goes to the step that held each unit's maximum
                step, T = cache.pool
                dy = np.zeros((dh.shape[0], T, dh.shape[1]), dtype=dh.dtype)
                np.put_along_axis(dy, step[:, None, :], dh[:, None, :], axis=1)
            g, dx, d0 = self.rnn.backward(cache.rnn, dy=dy, input_grad=input_grad)
        else:
            B = dh.shape[0]
            dstate = self.rnn.initial_state(B)
            top = dstate[0] if isinstance(dstate, tuple) else dstate
            if self.rnn.bidirectional:
                H = self.rnn.state_sizes[0]  # the width of h (P with a projection)
                top[-2], top[-1] = dh[:, :H], dh[:, H:]
            else:
                top[-1] = dh
            g, dx, d0 = self.rnn.backward(cache.rnn, dstate=dstate, input_grad=input_grad)
        grads.update({f"rnn.{k}": v for k, v in g.items()})
        return grads, dx, d0

    def check_targets(self, y, z_shape, lengths=None):
        """Check targets against the prediction shape ``z_shape``; flatten them.

        Returns ``(targets, weight)``: labels (N,) or values (N, K) over all positions, and
        a 0/1 weight per position (0 at padded steps) or None.
        """
        K = self.output_size
        if self.output == "softmax":
            want = z_shape[:-1]
            a = np.asarray(y)
            if a.shape != want:
                raise ValueError(f"y must hold integer labels of shape {want}, got {a.shape}")
            if a.dtype.kind not in "iu":
                if a.dtype.kind != "f" or not np.all(a == np.round(a)):
                    raise ValueError(f"y must hold integer class labels, got dtype {a.dtype}")
            a = a.astype(np.int64)
            bad = (a < 0) | (a >= K)
            if self.readout == "all" and lengths is not None:
                bad &= np.arange(z_shape[1])[None, :] < lengths[:, None]  # padding is ignored
            if bad.any():
                i = tuple(int(v) for v in np.argwhere(bad)[0])
                raise ValueError(f"labels must be in [0, {K}), got y{list(i)} = {int(a[i])}")
            a = np.where(a < 0, 0, np.minimum(a, K - 1)).reshape(-1)
        else:
            a = checks.array(y, "y", z_shape, self.dtype).reshape(-1, K)
        weight = None
        if self.readout == "all" and lengths is not None:
            T = z_shape[1]
            weight = (np.arange(T)[None, :] < lengths[:, None]).reshape(-1).astype(self.dtype)
        return a, weight

    def loss_and_grad(self, x, y, *, lengths=None, state=None, reset=None,
                      masks=None) -> LossResult:
        """Forward, loss and backward in one call.

        Parameters
        ----------
        x : array (B, T, D)
        y : targets. Softmax: integer labels (B, T) for readout "all", (B,) for "last".
            Linear: floats (B, T, K) or (B, K).
        lengths : array (B,) or None; padded steps carry no loss
        state : initial recurrent state or None
        reset : where the state entering a step is zeros (see :meth:`forward`), or None
        masks : train-time masks (:meth:`draw_masks`), or None

        Returns
        -------
        LossResult(loss, grads, state)
        """
        z, final, cache = self.forward(x, state, lengths=lengths, reset=reset, masks=masks)
        loss, dz = self.output_loss(z, y, cache.lengths)
        grads, _, _ = self.backward(cache, dz, input_grad=False)
        return LossResult(loss, grads, final)

    def output_loss(self, z, y, lengths=None):
        """The mean loss of outputs ``z`` against targets ``y`` and its gradient ``dL/dz``.

        ``z`` is what :meth:`forward` returned; padded steps (``lengths``) carry no loss.
        """
        target, weight = self.check_targets(y, z.shape, lengths)
        K = self.output_size
        fn = losses.softmax_cross_entropy if self.output == "softmax" else losses.squared_error
        loss, dz = fn(z.reshape(-1, K), target, weight)
        return loss, dz.reshape(z.shape)

    def loss(self, x, y, *, lengths=None, state=None, reset=None) -> float:
        """The mean loss over real positions, without gradients."""
        z, _, _, _, lens, _ = self._run(x, state, lengths, keep=False, reset=reset)
        return self.output_loss(z, y, lens)[0]

    def step(self, x_t, state=None):
        """One streaming step: ``x_t`` (B, D) -> ``(z_t (B, K) logits or values, new state)``.

        The head reads the new state, so this is the per-step readout whichever
        ``readout`` the network was trained with.
        """
        h, state = self.rnn.step(x_t, state)
        return h @ self.params["head.W_y"] + self.params["head.b_y"], state

    def predict(self, x, *, lengths=None, state=None, reset=None) -> np.ndarray:
        """Class probabilities (softmax) or values (linear): (B, T, K) or (B, K)."""
        z, _ = self.infer(x, state, lengths=lengths, reset=reset)
        return losses.softmax(z) if self.output == "softmax" else z

    # ------------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the network to ``path`` atomically (:func:`rnnlab.load` reads it back)."""
        io.write_record(path, "network", self.config, self.params)
