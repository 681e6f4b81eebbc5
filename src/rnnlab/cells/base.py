"""The public recurrent layer: configuration, parameters, checks, and the batch-first API.

Shape legend: B batch, T time, D input features, H hidden units, L layers.
The maths lives in the cell modules and the time loop in :mod:`rnnlab.recurrent`; this
module turns user arrays into the loop's time-major layout and back, and checks them.
"""

from __future__ import annotations

import operator
from typing import NamedTuple

import numpy as np

from .. import checks, dropout, engine
from .. import init as _init
from ..recurrent import layer_params
from .zoneout import ZoneoutCell


class StackCache(NamedTuple):
    """What ``forward`` hands to ``backward``: one ``LayerCache`` per layer."""

    layers: list
    lengths: np.ndarray | None  # (B,) or None when every sequence is T steps long


def _views(parts, L: int) -> list:
    """Per-layer views of (L, B, H) arrays: ``[(parts[0][k], ...) for k in range(L)]``,
    written out for one layer, where it runs at every streaming step (a comprehension or a
    generator costs more than the rest of its bookkeeping)."""
    if L == 1:
        return [(parts[0][0],)] if len(parts) == 1 else [(parts[0][0], parts[1][0])]
    return [tuple(a[k] for a in parts) for k in range(L)]


_NO_STEP = ("a bidirectional layer reads whole sequences (its reverse direction starts at "
            "their end), so it cannot run one step at a time: use forward or infer")


class RecurrentLayer:
    """Base of :class:`~rnnlab.Elman`, :class:`~rnnlab.LSTM` and :class:`~rnnlab.GRU`.

    Parameters
    ----------
    input_size : int
        D, features per time step.
    hidden_size : int
        H, units per layer.
    num_layers : int
        L, layers stacked so that layer k+1 reads layer k's outputs.
    seed : int, numpy.random.Generator or None
        Source of the initial weights; None draws fresh entropy.
    dtype : float32 (default) or float64
    init : {"uniform", "orthogonal", "identity"}
        Initial weights; see :func:`rnnlab.init.recurrent_params`.
    bidirectional : bool
        Each layer also reads every sequence backwards (within its own length) with
        weights of its own, and outputs both directions side by side, (B, T, 2H); states
        are (2L, B, H), layer k's forward direction at 2k and its reverse at 2k+1, as in
        PyTorch. Such a layer reads whole sequences: it has no streaming ``step``.
    zoneout : float, or a pair ``(z_h, z_c)`` for the LSTM
        Zoneout (Krueger et al. 2016; :mod:`rnnlab.cells.zoneout`): in training each unit
        of ``h`` (and the LSTM's ``c``) keeps its previous value with this probability at
        each step; at inference every step is the expectation,
        ``s_t = z s_{t-1} + (1 - z) s~_t``. A number gives the LSTM's ``h`` and ``c`` the
        same rate. 0 (default): none. Such a layer runs the reference loop (no kernel) and
        has no ONNX export.
    recurrent_dropout : float
        Recurrent dropout (Gal & Ghahramani 2016; :mod:`rnnlab.dropout`): in training
        ``h_{t-1} * m / (1 - p)`` enters the recurrent product, one mask ``m`` per
        sequence and unit for the whole batch; the identity at inference (which keeps the
        kernels; training with the masks runs the reference loop). 0 (default): none.

    Masks are drawn only by the Trainer (:meth:`draw_masks`, from its seeded generator)
    and passed to :meth:`forward`; without them (``infer``, ``step``, streaming,
    evaluation) recurrent dropout is off and zoneout is its expectation.

    Attributes
    ----------
    params : dict[str, ndarray]
        ``l{k}.W_x`` (D or H, G*H), ``l{k}.W_h`` (H, G*H), ``l{k}.b`` (G*H,) for layer k
        (and ``l{k}.b_h`` for the GRU); G the number of gates. A bidirectional layer has
        the same again as ``l{k}r.*`` for its reverse direction, and its layers above the
        first read 2H features.
    directions : int
        1, or 2 for a bidirectional layer.
    """

    #: the cell class (its facts: :mod:`rnnlab.cells.cell`)
    Cell: type = None
    #: the layer's own options beyond the common ones, in its config (``activation``)
    options: tuple = ()
    #: a recurrence run by the engine (False for the feedforward baseline,
    #: :class:`rnnlab.cells.ffnn.FFNN`, which reads a window of inputs instead)
    recurrent: bool = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        seed=None,
        dtype=np.float32,
        init: str = "uniform",
        bidirectional: bool = False,
        zoneout=0.0,
        recurrent_dropout: float = 0.0,
        precision: str = "fp32",
    ):
        self.precision = precision
        self.input_size = checks.positive_int(input_size, "input_size")
        self.hidden_size = checks.positive_int(hidden_size, "hidden_size")
        self.num_layers = checks.positive_int(num_layers, "num_layers")
        self.dtype = checks.float_dtype(dtype)
        self.init = checks.choice(init, "init", _init.SCHEMES)
        self.bidirectional = checks.boolean(bidirectional, "bidirectional")
        self.directions = 2 if self.bidirectional else 1
        self.cell = self._make_cell()
        self.n_state = self.cell.n_state  # 1 for h, 2 for the LSTM's (h, c)
        self.zoneout = dropout.zoneout_rates(zoneout, self.n_state)
        self.recurrent_dropout = dropout.rate(recurrent_dropout, "recurrent_dropout")
        if any(self.zoneout):
            self.cell = ZoneoutCell(self.cell, self.zoneout)
        rng = _init.rng_from(seed)
        self.params: dict[str, np.ndarray] = {}
        for k in range(self.num_layers):
            d = self.input_size if k == 0 else self.output_features
            for suffix in ("", "r")[:self.directions]:
                p = _init.recurrent_params(
                    rng, d, self.hidden_size, self.cell.n_gates,
                    scheme=self.init, recurrent_bias=self.cell.recurrent_bias,
                )
                self._adjust_init(p, rng)
                for name, v in p.items():
                    self.params[f"l{k}{suffix}.{name}"] = v.astype(self.dtype)

    # hooks for the cell modules ---------------------------------------------------------
    def _make_cell(self):
        return self.Cell()

    def _adjust_init(self, p: dict, rng) -> None:
        """Change one layer's freshly drawn float64 parameters in place (e.g. forget bias),
        or add the cell's own, drawn from ``rng``."""

    # configuration ----------------------------------------------------------------------
    @property
    def precision(self) -> str:
        """``"fp32"`` (the default), ``"bf16"`` or ``"auto"``: what the fast kernels compute
        the matrix products in (:func:`rnnlab.engine.resolved_precision`). bf16 rounds both
        operands of every product to bfloat16 and sums in float32; the weights, states,
        gates and gradients stay float32. A setting of the computation, not of the model:
        it is not part of :attr:`config` nor of model files, and may be changed at any time.
        """
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        self._precision = checks.choice(value, "precision", engine.PRECISIONS)

    @property
    def computes_in(self) -> str:
        """What :attr:`precision` computes in here and now: ``"fp32"`` or ``"bf16"`` (a cell
        without a fused kernel runs on the plain loop, in its dtype)."""
        if getattr(self.cell, "own_kernel", None) is None:
            return "fp32"
        return engine.resolved_precision(self.precision, self.dtype)

    @property
    def output_features(self) -> int:
        """Features of ``y`` per step: H, or 2H for a bidirectional layer."""
        return self.hidden_size * self.directions

    @property
    def state_sizes(self) -> tuple:
        """The width of each state array: H for each (the LSTM's projected ``h`` is P)."""
        return (self.hidden_size,) * self.n_state

    @property
    def cell_name(self) -> str:
        """The cell's registry name (``"lstm"``), as in :data:`rnnlab.cells.LAYERS`."""
        return self.Cell.name

    @property
    def config(self) -> dict:
        """Everything needed to rebuild this layer (with :func:`rnnlab.layer_from_config`)."""
        return {
            "cell": self.cell_name,
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "dtype": self.dtype.name,
            "init": self.init,
            "bidirectional": self.bidirectional,
            **{name: getattr(self, name) for name in self.options},
            **self.regularization,
        }

    @property
    def regularization(self) -> dict:
        """``zoneout`` (a list, one rate per state) and ``recurrent_dropout`` where they
        are on: a layer without them has the config it always had."""
        out = {}
        if any(getattr(self, "zoneout", ())):
            out["zoneout"] = list(self.zoneout)
        if getattr(self, "recurrent_dropout", 0.0):
            out["recurrent_dropout"] = self.recurrent_dropout
        return out

    def draw_masks(self, rng, batch: int, steps: int, *, between: float = 0.0):
        """Train-time masks for a batch of ``batch`` sequences of ``steps`` steps, drawn
        from ``rng`` (:func:`rnnlab.dropout.draw`); ``between`` the dropout between the
        stacked layers (:class:`rnnlab.Network`'s ``dropout``). None when nothing is on."""
        return dropout.draw(
            rng, batch, steps, layers=self.num_layers, directions=self.directions,
            features=self.output_features, widths=self.state_sizes, dtype=self.dtype,
            dropout=between, recurrent_dropout=getattr(self, "recurrent_dropout", 0.0),
            zoneout=getattr(self, "zoneout", ()))

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.config.items() if k != "cell")
        return f"{type(self).__name__}({opts})"


    @classmethod
    def count_params(cls, config: dict) -> int | None:
        """The parameters of a layer of ``config``, computed without building it; None when
        the configuration is not plainly valid (building it will say why).

        Layer k of a cell with G gates, input size d (D for the first layer, H after, 2H
        after a bidirectional one) and a recurrent bias or not:
        ``(d + H + 1 + recurrent_bias) * G * H``, twice when bidirectional. An LSTM with a
        projection reads P instead of H (``W_h`` (P, G*H), layers above read P) and adds
        ``W_hr`` (H, P); peepholes add 3H.
        """
        sizes = [config.get(k, 1 if k == "num_layers" else None)
                 for k in ("input_size", "hidden_size", "num_layers")]
        if not all(type(n) is int and n > 0 for n in sizes):
            return None
        D, H, L = sizes
        dirs = 2 if config.get("bidirectional") is True else 1
        G, rb = cls.Cell.n_gates, int(cls.Cell.recurrent_bias)
        P = config.get("proj_size") or H
        if type(P) is not int or P <= 0:
            return None
        own = (H * P if P != H else 0) + (3 * H if config.get("peepholes") is True else 0)
        return dirs * ((D + P + 1 + rb) * G * H + own
                       + (L - 1) * ((dirs * P + P + 1 + rb) * G * H + own))

    # state conversion --------------------------------------------------------------------
    def state_shapes(self, batch: int) -> list:
        """The shape of each state array: (L, B, H), or (2L, B, H) when bidirectional (a
        projected LSTM's h is P wide)."""
        return [(self.num_layers * self.directions, batch, w) for w in self.state_sizes]

    def initial_state(self, batch_size: int):
        """Zeros in the public layout: (L, B, H), or a tuple (h, c) of them for the LSTM
        ((2L, B, H) for a bidirectional layer)."""
        B = checks.positive_int(batch_size, "batch_size")
        L = self.num_layers * self.directions
        z = [np.zeros((L, B, w), self.dtype) for w in self.state_sizes]
        return z[0] if self.n_state == 1 else tuple(z)

    def split_state(self, state, batch: int, name: str = "state", *, copy: bool = True,
                  finite: bool = True) -> list:
        """A state in the public layout (or None for zeros) -> a list over layers (and
        directions, PyTorch's order) of tuples of (B, H), the layout of the time loop
        (:mod:`rnnlab.recurrent`); checked.

        ``copy=False`` returns views of the caller's (checked, C-contiguous) arrays, for
        callers that only read them; ``finite=False`` leaves the NaN/Inf check to the caller.
        """
        L, widths = self.num_layers * self.directions, self.state_sizes
        if state is None:
            if copy:  # fresh zeros per layer, nothing to convert
                return [tuple(np.zeros((batch, w), self.dtype) for w in widths)
                        for _ in range(L)]
            parts = [np.zeros((L, batch, w), self.dtype) for w in widths]
        else:
            if self.n_state == 1:
                parts = (state,)
            else:
                if not isinstance(state, (tuple, list)) or len(state) != self.n_state:
                    raise ValueError(
                        f"{name} of an LSTM must be a tuple (h, c) of ({L}, {batch}, "
                        f"{widths[0]}) and ({L}, {batch}, {widths[1]}) arrays, got "
                        f"{type(state).__name__}"
                    )
                parts = state
            labels = ("h", "c")
            parts = [
                checks.array(s, f"{name} {labels[i]}" if self.n_state > 1 else name,
                              (L, None, widths[i]), self.dtype, finite=finite)
                for i, s in enumerate(parts)
            ]
            for s in parts:
                if s.shape[1] != batch:
                    raise ValueError(
                        f"{name} has batch size {s.shape[1]} but the input has {batch} sequences"
                    )
        if not copy:
            return _views(parts, L)
        return [tuple(np.array(s[k]) for s in parts) for k in range(L)]

    def join_state(self, states: list):
        """The inverse of :meth:`split_state`: a list over layers of tuples of (B, H) ->
        the public layout (new arrays).

        Filled layer by layer rather than by ``np.stack``, whose checks cost a visible
        share of an inference at batch 1 (measurements: docs/performance.md)."""
        parts = []
        for i in range(self.n_state):
            first = states[0][i]
            out = np.empty((len(states),) + first.shape, first.dtype)
            for k, st in enumerate(states):
                out[k] = st[i]
            parts.append(out)
        return parts[0] if self.n_state == 1 else tuple(parts)

    # the contract ---------------------------------------------------------------------------
    def forward(self, x, state=None, *, lengths=None, reset=None, masks=None):
        """Run the layer over a batch of sequences, keeping what backward needs.

        Parameters
        ----------
        x : array (B, T, D), or an integer array (B, T) of token ids in [0, D): the same as
            their one-hot vectors (:func:`rnnlab.data.batching.one_hot`), with the input
            projection a row gather instead of a product, and no input gradient
        state : initial state, (L, B, H) or for the LSTM a tuple (h, c); None for zeros
        lengths : array (B,) of ints in [0, T], optional
            Real steps of each sequence; later steps are padding: they leave the state as
            it was, output zeros and receive no gradient.
        reset : array of bool, (B, T) or (T,) for every sequence, optional
            True where the state entering step ``t`` is zeros instead of the one carried
            (in every layer): a new document begins at ``x[:, t]``. The gradient stops
            there too; with ``reset[:, 0]`` the given ``state`` is not read.
        masks : rnnlab.dropout.Masks or None
            Train-time masks (:meth:`draw_masks`; time-major, their T and B those of
            ``x``); backward uses the same. None: the inference model.

        Returns
        -------
        y : ndarray (B, T, H), the top layer's outputs, read-only: it shares memory with
            the cache that backward reads (``y.copy()`` for a writable array)
        state : the final state, each sequence's own state after its last real step
        cache : StackCache for :meth:`backward`
        """
        y, state, caches, lens = self.run(x, state, lengths, keep=True, reset=reset,
                                          masks=masks)
        y.flags.writeable = False  # it shares memory with the cache (no copy is made)
        return y, state, StackCache(caches, lens)

    def infer(self, x, state=None, *, lengths=None, reset=None):
        """Run the layer for its outputs only: ``(y, state)``, as :meth:`forward` returns
        them, keeping nothing for backward (PyTorch's ``torch.no_grad()``).

        Faster and lighter than :meth:`forward`: the fast kernels store no per-step gates
        (at batch 1, up to 1 MB of them: see
        :data:`rnnlab.kernels.layers.INPUT_BEFORE_LOOP_MAX_BYTES`).
        ``y`` is the caller's to change (forward's is read-only).
        """
        y, state, _, _ = self.run(x, state, lengths, keep=False, reset=reset)
        return y, state

    def checked_input(self, x):
        """``x`` checked as sequences (B, T, D) of the layer's dtype or token ids (B, T) in
        [0, D), with at least one sequence of one step: ``(x, ids)``, ``ids`` True for ids."""
        ids = checks.is_token_ids(x)
        if ids:
            x = checks.token_ids(x, self.input_size)
        else:
            x = checks.array(x, "x", (None, None, self.input_size), self.dtype)
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"x must hold at least one sequence of one step, got shape {x.shape}")
        return x, ids

    def run(self, x, state=None, lengths=None, *, keep: bool = True, reset=None,
            masks=None):
        """What :meth:`forward` and :meth:`infer` share, for callers that build on a layer
        (:class:`rnnlab.Network`): ``(y, state, caches, lengths)``, with ``caches`` a list
        of per-layer caches (Nones unless ``keep``) and ``lengths`` the checked (B,) array
        or None. ``y`` is writable here; :meth:`forward` hands it out read-only. ``masks``
        as in :meth:`forward`."""
        x, ids = self.checked_input(x)
        B, T = x.shape[:2]
        if masks is not None:
            self._check_masks(masks, B, T)
        states = self.split_state(state, B)
        mask, partial, lens = None, None, None
        if lengths is not None:
            lens = checks.lengths(lengths, B, T)
            if (lens < T).any():
                mask = (np.arange(T)[:, None] < lens[None, :])[:, :, None]  # (T, B, 1)
                partial = ~mask.all(axis=(1, 2))
        resets = None if reset is None else checks.reset_mask(reset, B, T)
        xt = np.ascontiguousarray(x.T if ids else x.transpose(1, 0, 2))  # (T, B[, D])
        bf16 = self.precision != "fp32" and self.computes_in == "bf16"
        if self.bidirectional:
            y, finals, caches = engine.bi_stack_forward(
                self.cell, self.params, self.num_layers, xt, states, mask, partial,
                None if mask is None else lens, keep=keep, reset=resets, bf16=bf16,
                masks=masks,
            )
        else:
            y, finals, caches = engine.stack_forward(
                self.cell, self.params, self.num_layers, xt, states, mask, partial,
                keep=keep, reset=resets, bf16=bf16, masks=masks,
            )
        return y.transpose(1, 0, 2), self.join_state(finals), caches, lens

    def _check_masks(self, masks, B: int, T: int) -> None:
        """A ValueError naming the first mask whose shape does not fit this layer and batch,
        or that a layer without zoneout got zoneout masks."""
        L = self.num_layers * self.directions
        want = {"between": (self.num_layers - 1, T, B, self.output_features),
                "recurrent": (L, B, self.state_sizes[0])}
        for name in ("between", "recurrent"):
            a = getattr(masks, name)
            if a is not None and (a.shape != want[name] or a.dtype != self.dtype):
                raise ValueError(f"masks.{name} must be a {want[name]} {self.dtype} array, "
                                 f"got {a.shape} {a.dtype}")
        if masks.zoneout is not None:
            if not isinstance(self.cell, ZoneoutCell):
                raise ValueError("masks.zoneout given to a layer without zoneout")
            for z, w in zip(masks.zoneout, self.state_sizes, strict=True):
                if z is not None and (z.shape != (L, T, B, w) or z.dtype != self.dtype):
                    raise ValueError(f"masks.zoneout must hold {(L, T, B, w)} {self.dtype} "
                                     f"arrays, got {z.shape} {z.dtype}")

    def backward(self, cache: StackCache, dy=None, dstate=None, *, input_grad: bool = True):
        """Backpropagation through time over the sequence that ``forward`` ran.

        Parameters
        ----------
        cache : the third value ``forward`` returned
        dy : array (B, T, H) or None, gradient of the loss with respect to ``y``
        dstate : gradient with respect to the final state (same layout as the state) or None
        input_grad : bool
            False skips the gradient with respect to ``x`` (``dx`` is then None), one of
            the bottom layer's three batched products, when only the weights are trained.

        Returns
        -------
        grads : dict like :attr:`params`
        dx : ndarray (B, T, D), or None without ``input_grad``
        dstate0 : gradient with respect to the initial state, in the state's layout
        """
        if not isinstance(cache, StackCache):
            raise ValueError("cache must be the third value returned by forward()")
        first = cache.layers[0][0] if self.bidirectional else cache.layers[0]
        T, B = first.x.shape[:2]
        dyt = None
        if dy is not None:
            dyt = checks.array(dy, "dy", (B, T, self.output_features),
                               self.dtype).transpose(1, 0, 2)
        dstates = self.split_state(dstate, B, "dstate")
        backward = engine.bi_stack_backward if self.bidirectional else engine.stack_backward
        grads, dx, d0 = backward(
            self.cell, self.params, self.num_layers, cache.layers, dyt, dstates,
            need_dx=bool(input_grad),
        )
        return grads, None if dx is None else dx.transpose(1, 0, 2), self.join_state(d0)

    def step(self, x_t, state=None):
        """One streaming time step: ``x_t`` (B, D) -> ``(y_t (B, H), new state)``.

        For long streams :class:`rnnlab.Stream` does the same with the state kept,
        without converting it at every step. A bidirectional layer has no step: its
        reverse direction starts at a sequence's end.
        """
        if self.bidirectional:
            raise ValueError(_NO_STEP)
        if not (type(x_t) is np.ndarray and x_t.dtype == self.dtype and x_t.ndim == 2
                and x_t.shape[1] == self.input_size and x_t.flags.c_contiguous):
            x_t = checks.array(x_t, "x_t", (None, self.input_size), self.dtype, finite=False)
        B, L = x_t.shape[0], self.num_layers
        shapes, dt = [(L, B, w) for w in self.state_sizes], self.dtype
        # a state already in the public layout and dtype is read in place, a view per
        # layer; anything else goes through split_state, which converts or names it (the
        # check written out here, without calls or generators: it runs at every step)
        parts = (state,) if self.n_state == 1 else state
        if type(parts) is tuple and len(parts) == self.n_state:
            for a, shape in zip(parts, shapes, strict=True):
                if not (type(a) is np.ndarray and a.shape == shape and a.dtype == dt
                        and a.flags.c_contiguous):
                    states = self.split_state(state, B, copy=False, finite=False)
                    break
            else:
                states = _views(parts, L)
        else:
            states = self.split_state(state, B, copy=False, finite=False)
        # the new state is written straight into its public (L, B, H) arrays
        outs = (np.empty(shapes[0], dt),) if self.n_state == 1 else \
            (np.empty(shapes[0], dt), np.empty(shapes[1], dt))
        dest = _views(outs, L)
        layer_ps, prepared = self.step_params()
        y, _, finite = engine.step(self.cell, layer_ps, x_t, states, dest, prepared=prepared)
        if not finite:  # the step checked finiteness for free; now name the culprit
            checks.array(x_t, "x_t", (None, self.input_size), self.dtype)
            self.split_state(state, B, copy=False)
            raise ValueError("x_t or the state contains NaN or Inf")  # not reached
        return y.copy(), outs[0] if self.n_state == 1 else outs

    def step_params(self):
        """Per-layer parameter dicts for a step, and whether all are C-contiguous in the
        layer's dtype (then the kernels skip their conversions).

        Cached while every entry of :attr:`params` is the same array object (in-place
        updates, as the optimisers make, keep it valid; assigning a new array rebuilds it).
        """
        vals = tuple(self.params.values())
        cached = self.__dict__.get("_step_cache")
        if cached is not None and len(cached[0]) == len(vals) and all(
            map(operator.is_, cached[0], vals)
        ):
            return cached[1], cached[2]
        layer_ps = [layer_params(self.params, k) for k in range(self.num_layers)]
        prepared = all(
            type(v) is np.ndarray and v.dtype == self.dtype and v.flags.c_contiguous for v in vals
        )
        self._step_cache = (vals, layer_ps, prepared)
        return layer_ps, prepared
