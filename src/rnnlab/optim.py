"""Optimisers and learning-rate schedules for parameter sets.

A parameter set is a plain ``dict[str, np.ndarray]`` (float32 or float64) and its
gradients are a dict with the same keys and shapes. The optimisers here update
the parameter arrays in place, keep their per-parameter state keyed by parameter
name, and follow the update equations of ``torch.optim`` exactly (single-tensor
code path, ``maximize=False``, no AMSGrad), so results can be checked against
PyTorch to rounding error.

Classes
-------
Optimizer
    Base class: binding to a parameter set, ``step``, ``state_dict`` and
    ``load_state_dict``.
SGD, Adam, AdamW, RMSProp, Adagrad
    The optimisers, created directly or through :func:`make_optimizer`.

Schedules
---------
A schedule is any callable ``schedule(step) -> lr`` with ``step`` counting
optimiser steps from 0; pass its value as ``optimizer.step(..., lr=schedule(i))``.
:func:`constant`, :func:`step_decay`, :func:`cosine` and :func:`warmup` build
the common ones.

Examples
--------
>>> import numpy as np
>>> params = {"w": np.ones(3)}
>>> opt = make_optimizer("adam", lr=0.1)
>>> sched = warmup(cosine(0.1, total_steps=100), warmup_steps=10)
>>> for i in range(3):
...     grads = {"w": 2 * params["w"]}
...     opt.step(params, grads, lr=sched(i))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSProp",
    "Schedule",
    "StateDict",
    "constant",
    "cosine",
    "make_optimizer",
    "step_decay",
    "warmup",
]

StateDict = dict[str, np.ndarray | float | int]
"""Flat optimiser state: saveable with ``np.savez(..., **state)`` and ``allow_pickle=False``."""

Schedule = Callable[[int], float]
"""A learning-rate schedule: maps the step index (from 0) to a learning rate."""


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    # bool is an int subclass, but True as a learning rate is always a mistake.
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _check_float(value: object, what: str, ok: Callable[[float], bool], expected: str) -> float:
    """Return `value` as a Python float if it is finite and `ok`, else raise ValueError.

    Converting to a Python float matters: NumPy's promotion rules keep a float32
    array float32 when combined with a Python float, but not with np.float64.
    """
    if not _is_number(value) or not math.isfinite(value) or not ok(float(value)):
        raise ValueError(f"{what} must be {expected}, got {value!r}")
    return float(value)


def _check_int(value: object, what: str, minimum: int) -> int:
    """Return `value` as a Python int if it is an integer >= `minimum`, else raise ValueError."""
    if (
        not isinstance(value, int | np.integer)
        or isinstance(value, bool | np.bool_)
        or value < minimum
    ):
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_bool(value: object, what: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{what} must be a bool, got {value!r}")
    return bool(value)


def _lr(value: object) -> float:
    return _check_float(value, "lr", lambda x: x >= 0, "a non-negative finite float")


def _nonneg(value: object, what: str) -> float:
    return _check_float(value, what, lambda x: x >= 0, "a non-negative finite float")


def _unit(value: object, what: str) -> float:
    return _check_float(value, what, lambda x: 0 <= x < 1, "a float in [0, 1)")


def _eps(value: object) -> float:
    # PyTorch accepts eps=0, but then a zero gradient gives 0/0 = nan; refuse it.
    return _check_float(value, "eps", lambda x: x > 0, "a positive finite float")


def _check_arrays(arrays: object, what: str, *, writeable: bool) -> Mapping[str, np.ndarray]:
    """Check that `arrays` maps str names to floating-point ndarrays."""
    if not isinstance(arrays, Mapping):
        raise ValueError(
            f"{what} must be a dict mapping names to numpy arrays, got {type(arrays).__name__}"
        )
    for name, a in arrays.items():
        if not isinstance(name, str):
            raise ValueError(f"{what} keys must be str, got {name!r}")
        if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
            kind = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"{what}[{name!r}] must be a floating-point numpy array, got {kind}")
        if writeable and not a.flags.writeable:
            raise ValueError(f"{what}[{name!r}] must be writeable (it is updated in place)")
    return arrays


def _scalar(value: object, what: str) -> Any:
    """Unwrap a state-dict scalar, which comes back from an .npz file as a 0-d array."""
    a = np.asarray(value)
    if a.shape != ():
        raise ValueError(f"state dict entry {what!r} must be a scalar, got shape {a.shape}")
    return a.item()


# ---------------------------------------------------------------------------
# optimisers
# ---------------------------------------------------------------------------


class Optimizer:
    """Base class of the optimisers: state handling shared by all of them.

    An optimiser is *bound* to a parameter set (names, shapes and dtypes) either
    at construction, by passing `params`, or at its first :meth:`step`. From then
    on every call must use parameters with the same names, shapes and dtypes.
    Passing `params` up front lets :meth:`load_state_dict` check a checkpoint
    against the model before any step is taken.

    Parameters
    ----------
    params : dict of str to np.ndarray, optional
        Parameter set to bind to. Only names, shapes and dtypes are recorded;
        the arrays themselves are not kept.

    Attributes
    ----------
    n_steps : int
        Number of steps taken (PyTorch's ``state["step"]``).

    Notes
    -----
    Subclasses define ``name`` (the state-dict prefix), ``_hyper`` (names of the
    hyper-parameter attributes), ``_flags`` (those that are bools),
    ``_validate`` (check and normalise hyper-parameters), ``_buffer_names``
    (per-parameter state arrays given the hyper-parameters) and ``_update``.
    """

    name: ClassVar[str] = ""
    _hyper: ClassVar[tuple[str, ...]] = ()
    _flags: ClassVar[frozenset[str]] = frozenset()

    lr: float

    def __init__(self, params: Mapping[str, np.ndarray] | None = None) -> None:
        self.n_steps = 0
        # name -> (shape, dtype) of the bound parameter set; None until bound.
        self._specs: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
        # name -> buffer name -> array (same shape and dtype as the parameter).
        self._state: dict[str, dict[str, np.ndarray]] = {}
        if params is not None:
            self._bind(_check_arrays(params, "params", writeable=False))

    # -- hooks for subclasses ------------------------------------------------

    @classmethod
    def _validate(cls, **hyper: Any) -> dict[str, Any]:
        """Check hyper-parameters; return them normalised (Python floats and bools)."""
        raise NotImplementedError

    @classmethod
    def _buffer_names(cls, hyper: Mapping[str, Any]) -> tuple[str, ...]:
        """Names of the per-parameter state arrays needed with these hyper-parameters."""
        return ()

    def _initial(self, buffer: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Initial value of a state array."""
        return np.zeros(shape, dtype=dtype)

    def _update(
        self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray], lr: float, t: int
    ) -> None:
        """Update `p` in place from gradient `g` (same dtype) at step number `t` (from 1)."""
        raise NotImplementedError

    # -- public API ----------------------------------------------------------

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The hyper-parameters, by name (a copy)."""
        return {h: getattr(self, h) for h in self._hyper}

    def _configure(self, **hyper: Any) -> None:
        for h, v in self._validate(**hyper).items():
            setattr(self, h, v)

    def _bind(self, params: Mapping[str, np.ndarray]) -> None:
        self._specs = {name: (p.shape, p.dtype) for name, p in params.items()}
        self._state = {name: {} for name in params}

    def _check_bound(self, params: Mapping[str, np.ndarray]) -> None:
        assert self._specs is not None
        if set(params) != set(self._specs):
            missing = sorted(set(self._specs) - set(params))
            extra = sorted(set(params) - set(self._specs))
            raise ValueError(
                f"params do not match the optimizer's parameters: missing {missing}, "
                f"unexpected {extra}"
            )
        for name, p in params.items():
            shape, dtype = self._specs[name]
            if p.shape != shape or p.dtype != dtype:
                raise ValueError(
                    f"params[{name!r}] has shape {p.shape} and dtype {p.dtype}, but the "
                    f"optimizer state expects shape {shape} and dtype {dtype}"
                )

    def step(
        self,
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        *,
        lr: float | None = None,
    ) -> None:
        """Take one optimisation step, updating `params` in place.

        Parameters
        ----------
        params : dict of str to np.ndarray
            Parameter set; each array is updated in place and keeps its dtype.
        grads : dict of str to np.ndarray
            Gradients with the same keys and shapes as `params`; not modified.
            Gradients of another float dtype are cast to the parameter's dtype.
        lr : float, optional
            Learning rate for this step only (e.g. from a schedule); the stored
            ``lr`` is used when omitted.

        Raises
        ------
        ValueError
            If names, shapes or dtypes do not match, or `lr` is negative. The
            parameters and the optimiser state are unchanged in that case.
        """
        _check_arrays(params, "params", writeable=True)
        _check_arrays(grads, "grads", writeable=False)
        if set(grads) != set(params):
            raise ValueError(
                f"grads keys {sorted(grads)} do not match params keys {sorted(params)}"
            )
        for name, p in params.items():
            if grads[name].shape != p.shape:
                raise ValueError(
                    f"grads[{name!r}] has shape {grads[name].shape}, expected {p.shape}"
                )
        step_lr = self.lr if lr is None else _lr(lr)
        if self._specs is None:
            self._bind(params)
        else:
            self._check_bound(params)

        buffers = self._buffer_names(self.hyperparameters)
        self.n_steps += 1
        for name, p in params.items():
            state = self._state[name]
            for b in buffers:
                # Created lazily so a hyper-parameter changed by hand (e.g. momentum
                # switched on) still finds its buffer.
                if b not in state:
                    state[b] = self._initial(b, p.shape, p.dtype)
            g = np.asarray(grads[name], dtype=p.dtype)
            self._update(p, g, state, step_lr, self.n_steps)

    def state_dict(self) -> StateDict:
        """Return the optimiser state as a flat dict of arrays and scalars.

        Keys are ``"step"``, ``"<name>.<hyper-parameter>"`` (bools stored as 0/1)
        and ``"<name>.<buffer>.<parameter name>"`` for the per-parameter arrays,
        e.g. ``"adam.m.W"``. Arrays are copies. The dict can be written with
        ``np.savez(path, **state)`` and read back with ``allow_pickle=False``.
        """
        d: StateDict = {"step": self.n_steps}
        for h, v in self.hyperparameters.items():
            d[f"{self.name}.{h}"] = int(v) if isinstance(v, bool) else v
        buffers = self._buffer_names(self.hyperparameters)
        if self._specs is not None:
            for pname, (shape, dtype) in self._specs.items():
                state = self._state[pname]
                for b in buffers:
                    arr = state.get(b)
                    d[f"{self.name}.{b}.{pname}"] = (
                        self._initial(b, shape, dtype) if arr is None else arr.copy()
                    )
        return d

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` of the same optimiser class.

        Hyper-parameters, step count and per-parameter arrays are all restored,
        so continuing gives bit-identical updates (like PyTorch, the saved
        hyper-parameters replace the ones given to the constructor). A mapping
        read from an .npz file (0-d arrays for scalars) is accepted.

        Parameters
        ----------
        state : mapping
            The saved state.

        Raises
        ------
        ValueError
            If keys are missing or unexpected (e.g. a state of another optimiser
            class), a hyper-parameter is invalid, or - when the optimiser is
            bound - parameter names or shapes differ from the bound parameters.
            Nothing is changed in that case.

        Notes
        -----
        When the optimiser is bound, arrays are cast to the bound parameters'
        dtypes; otherwise it becomes bound to the names, shapes and dtypes found
        in `state` (a state with no per-parameter arrays leaves it unbound).
        """
        if not isinstance(state, Mapping):
            raise ValueError(f"state must be a mapping, got {type(state).__name__}")
        hyper_keys = {f"{self.name}.{h}": h for h in self._hyper}
        missing = [k for k in ("step", *hyper_keys) if k not in state]
        if missing:
            raise ValueError(
                f"state dict is missing keys {missing}; expected a state saved by "
                f"{type(self).__name__}"
            )
        n_steps = _check_int(_scalar(state["step"], "step"), "state dict 'step'", 0)
        raw = {}
        for key, h in hyper_keys.items():
            v = _scalar(state[key], key)
            if h in self._flags and isinstance(v, int) and v in (0, 1):
                v = bool(v)
            raw[h] = v
        hyper = self._validate(**raw)
        buffers = self._buffer_names(hyper)

        found: dict[str, dict[str, np.ndarray]] = {}
        unexpected = []
        for key in state:
            if key == "step" or key in hyper_keys:
                continue
            for b in buffers:
                prefix = f"{self.name}.{b}."
                if key.startswith(prefix) and len(key) > len(prefix):
                    found.setdefault(key[len(prefix) :], {})[b] = np.asarray(state[key])
                    break
            else:
                unexpected.append(key)
        if unexpected:
            raise ValueError(
                f"state dict has unexpected keys {sorted(unexpected)}; expected a state "
                f"saved by {type(self).__name__} with hyper-parameters {hyper}"
            )
        for pname, bufs in found.items():
            lacking = [b for b in buffers if b not in bufs]
            if lacking:
                raise ValueError(
                    f"state dict lacks {[f'{self.name}.{b}.{pname}' for b in lacking]}"
                )

        specs = self._specs
        if specs is not None and found:
            if set(found) != set(specs):
                raise ValueError(
                    "state dict parameters do not match the optimizer's parameters: "
                    f"missing {sorted(set(specs) - set(found))}, "
                    f"unexpected {sorted(set(found) - set(specs))}"
                )
        elif specs is None and found:
            specs = {}
            for pname, bufs in found.items():
                first = bufs[buffers[0]]
                specs[pname] = (first.shape, first.dtype)
        elif buffers and n_steps > 0:
            raise ValueError(f"state dict has step {n_steps} but no per-parameter state arrays")

        new_state: dict[str, dict[str, np.ndarray]] = {}
        if specs is not None:
            for pname, (shape, dtype) in specs.items():
                new_state[pname] = {}
                for b, arr in found.get(pname, {}).items():
                    if arr.shape != shape or not np.issubdtype(arr.dtype, np.floating):
                        raise ValueError(
                            f"state dict entry '{self.name}.{b}.{pname}' has shape "
                            f"{arr.shape} and dtype {arr.dtype}, expected a float array "
                            f"of shape {shape}"
                        )
                    new_state[pname][b] = np.array(arr, dtype=dtype, copy=True)

        # Everything validated: commit.
        for h, v in hyper.items():
            setattr(self, h, v)
        self.n_steps = n_steps
        self._specs = specs
        self._state = new_state

    def __repr__(self) -> str:
        args = ", ".join(f"{h}={v!r}" for h, v in self.hyperparameters.items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, as ``torch.optim.SGD``.

    With ``dampening=0`` (not configurable here), step ``t`` computes::

        g = grad + weight_decay * p
        b = momentum * b + g            (b starts at 0, so b_1 = g as in PyTorch)
        g = g + momentum * b  if nesterov else  b
        p = p - lr * g

    Parameters
    ----------
    params : dict of str to np.ndarray, optional
        Parameter set to bind to (see :class:`Optimizer`).
    lr : float, default 1e-3
        Learning rate (>= 0).
    momentum : float, default 0.0
        Momentum factor in [0, 1).
    weight_decay : float, default 0.0
        L2 penalty coefficient (>= 0), added to the gradient.
    nesterov : bool, default False
        Use Nesterov momentum (PyTorch's formulation); requires ``momentum > 0``.
    """

    name = "sgd"
    _hyper = ("lr", "momentum", "weight_decay", "nesterov")
    _flags = frozenset({"nesterov"})

    momentum: float
    weight_decay: float
    nesterov: bool

    def __init__(
        self,
        params: Mapping[str, np.ndarray] | None = None,
        *,
        lr: float = 1e-3,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        self._configure(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params)

    @classmethod
    def _validate(cls, **hyper: Any) -> dict[str, Any]:
        out = {
            "lr": _lr(hyper["lr"]),
            "momentum": _unit(hyper["momentum"], "momentum"),
            "weight_decay": _nonneg(hyper["weight_decay"], "weight_decay"),
            "nesterov": _check_bool(hyper["nesterov"], "nesterov"),
        }
        if out["nesterov"] and out["momentum"] == 0:
            raise ValueError("nesterov=True requires momentum > 0, got momentum=0.0")
        return out

    @classmethod
    def _buffer_names(cls, hyper: Mapping[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if hyper["momentum"] != 0 else ()

    def _update(
        self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray], lr: float, t: int
    ) -> None:
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        if self.momentum != 0:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), as ``torch.optim.Adam`` without AMSGrad.

    Step ``t`` (from 1) computes::

        g = grad + weight_decay * p             (L2 penalty; see AdamW for decoupled)
        m = m + (1 - beta1) * (g - m)
        v = beta2 * v + (1 - beta2) * g**2
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Parameters
    ----------
    params : dict of str to np.ndarray, optional
        Parameter set to bind to (see :class:`Optimizer`).
    lr : float, default 1e-3
        Learning rate (>= 0).
    betas : tuple of float, default (0.9, 0.999)
        Decay rates of the first and second moment estimates, each in [0, 1).
    eps : float, default 1e-8
        Term added to the denominator (> 0).
    weight_decay : float, default 0.0
        L2 penalty coefficient (>= 0).
    """

    name = "adam"
    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")
    # AdamW shares the update and only switches this on.
    _decoupled: ClassVar[bool] = False

    beta1: float
    beta2: float
    eps: float
    weight_decay: float

    def __init__(
        self,
        params: Mapping[str, np.ndarray] | None = None,
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise ValueError(f"betas must be a pair of floats in [0, 1), got {betas!r}")
        self._configure(lr=lr, beta1=betas[0], beta2=betas[1], eps=eps, weight_decay=weight_decay)
        super().__init__(params)

    @property
    def betas(self) -> tuple[float, float]:
        """``(beta1, beta2)``."""
        return (self.beta1, self.beta2)

    @classmethod
    def _validate(cls, **hyper: Any) -> dict[str, Any]:
        return {
            "lr": _lr(hyper["lr"]),
            "beta1": _unit(hyper["beta1"], "betas[0]"),
            "beta2": _unit(hyper["beta2"], "betas[1]"),
            "eps": _eps(hyper["eps"]),
            "weight_decay": _nonneg(hyper["weight_decay"], "weight_decay"),
        }

    @classmethod
    def _buffer_names(cls, hyper: Mapping[str, Any]) -> tuple[str, ...]:
        return ("m", "v")

    def _update(
        self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray], lr: float, t: int
    ) -> None:
        if self.weight_decay != 0:
            if self._decoupled:
                p *= 1 - lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        m, v = state["m"], state["v"]
        # PyTorch updates m with lerp, whose rounding is m + w * (g - m).
        m += (1 - self.beta1) * (g - m)
        v *= self.beta2
        v += (1 - self.beta2) * np.square(g)
        step_size = lr / (1 - self.beta1**t)
        denom = np.sqrt(v)
        denom /= (1 - self.beta2**t) ** 0.5
        denom += self.eps
        upd = np.divide(m, denom, out=denom)
        upd *= step_size
        p -= upd


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    Identical to :class:`Adam` except that weight decay is decoupled from the
    gradient: each step first shrinks the parameters, ``p = p * (1 - lr *
    weight_decay)`` (with this step's learning rate), then applies the Adam
    update with the raw gradient.

    Parameters
    ----------
    params : dict of str to np.ndarray, optional
        Parameter set to bind to (see :class:`Optimizer`).
    lr : float, default 1e-3
        Learning rate (>= 0).
    betas : tuple of float, default (0.9, 0.999)
        Decay rates of the moment estimates, each in [0, 1).
    eps : float, default 1e-8
        Term added to the denominator (> 0).
    weight_decay : float, default 1e-2
        Decoupled weight-decay coefficient (>= 0); PyTorch's default.
    """

    name = "adamw"
    _decoupled = True

    def __init__(
        self,
        params: Mapping[str, np.ndarray] | None = None,
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


class RMSProp(Optimizer):
    """RMSProp (Hinton, 2012), as ``torch.optim.RMSprop``.

    Step ``t`` computes::

        g = grad + weight_decay * p
        s = alpha * s + (1 - alpha) * g**2
        if centered: a = a + (1 - alpha) * (g - a);  d = sqrt(s - a**2) + eps
        else:        d = sqrt(s) + eps
        if momentum > 0: b = momentum * b + g / d;  p = p - lr * b
        else:            p = p - lr * g / d

    Parameters
    ----------
    params : dict of str to np.ndarray, optional
        Parameter set to bind to (see :class:`Optimizer`).
    lr : float, default 1e-2
        Learning rate (>= 0); PyTorch's default.
    alpha : float, default 0.99
        Smoothing constant of the squared-gradient average, in [0, 1).
    eps : float, default 1e-8
        Term added to the denominator (> 0).
    weight_decay : float, default 0.0
        L2 penalty coefficient (>= 0).
    momentum : float, default 0.0
        Momentum factor in [0, 1).
    centered : bool, default False
        Normalise by an estimate of the gradient's variance instead of its
        second moment.

    Notes
    -----
    In the centred variant ``s - a**2`` is a variance, non-negative in exact
    arithmetic, but rounding can make it slightly negative when the gradient is
    nearly constant; it is clamped at 0 where PyTorch would produce nan.
    """

    name = "rmsprop"
    _hyper = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")
    _flags = frozenset({"centered"})

    alpha: float
    eps: float
    weight_decay: float
    momentum: float
    centered: bool

    def __init__(
        self,
        params: Mapping[str, np.ndarray] | None = None,
        *,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        self._configure(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
        )
        super().__init__(params)

    @classmethod
    def _validate(cls, **hyper: Any) -> dict[str, Any]:
        return {
            "lr": _lr(hyper["lr"]),
            "alpha": _unit(hyper["alpha"], "alpha"),
            "eps": _eps(hyper["eps"]),
            "weight_decay": _nonneg(hyper["weight_decay"], "weight_decay"),
            "momentum": _unit(hyper["momentum"], "momentum"),
            "centered": _check_bool(hyper["centered"], "centered"),
        }

    @classmethod
    def _buffer_names(cls, hyper: Mapping[str, Any]) -> tuple[str, ...]:
        names = ["square_avg"]
        if hyper["centered"]:
            names.append("grad_avg")
        if hyper["momentum"] > 0:
            names.append("momentum_buffer")
        return tuple(names)

    def _update(
        self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray], lr: float, t: int
    ) -> None:
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        sq = state["square_avg"]
        sq *= self.alpha
        sq += (1 - self.alpha) * np.square(g)
        if self.centered:
            ga = state["grad_avg"]
            ga += (1 - self.alpha) * (g - ga)
            avg = sq - np.square(ga)
            # A variance, but rounding can push it below 0 (then sqrt gives nan).
            np.maximum(avg, 0, out=avg)
            np.sqrt(avg, out=avg)
        else:
            avg = np.sqrt(sq)
        avg += self.eps
        if self.momentum > 0:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += g / avg
            p -= lr * buf
        else:
            upd = np.divide(g, avg, out=avg)
            upd *= lr
            p -= upd


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011), as ``torch.optim.Adagrad``.

    Step ``t`` (from 1) computes::

        g = grad + weight_decay * p
        s = s + g**2                    (s starts at initial_accumulator_value)
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    Parameters
    ----------
    params : dict of str to np.ndarray, optional
        Parameter set to bind to (see :class:`Optimizer`).
    lr : float, default 1e-2
        Learning rate (>= 0); PyTorch's default.
    lr_decay : float, default 0.0
        Learning-rate decay (>= 0).
    weight_decay : float, default 0.0
        L2 penalty coefficient (>= 0).
    initial_accumulator_value : float, default 0.0
        Starting value of the sum of squared gradients (>= 0).
    eps : float, default 1e-10
        Term added to the denominator (> 0).
    """

    name = "adagrad"
    _hyper = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    lr_decay: float
    weight_decay: float
    initial_accumulator_value: float
    eps: float

    def __init__(
        self,
        params: Mapping[str, np.ndarray] | None = None,
        *,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        self._configure(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )
        super().__init__(params)

    @classmethod
    def _validate(cls, **hyper: Any) -> dict[str, Any]:
        return {
            "lr": _lr(hyper["lr"]),
            "lr_decay": _nonneg(hyper["lr_decay"], "lr_decay"),
            "weight_decay": _nonneg(hyper["weight_decay"], "weight_decay"),
            "initial_accumulator_value": _nonneg(
                hyper["initial_accumulator_value"], "initial_accumulator_value"
            ),
            "eps": _eps(hyper["eps"]),
        }

    @classmethod
    def _buffer_names(cls, hyper: Mapping[str, Any]) -> tuple[str, ...]:
        return ("sum",)

    def _initial(self, buffer: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.full(shape, self.initial_accumulator_value, dtype=dtype)

    def _update(
        self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray], lr: float, t: int
    ) -> None:
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        clr = lr / (1 + (t - 1) * self.lr_decay)
        s = state["sum"]
        s += np.square(g)
        std = np.sqrt(s)
        std += self.eps
        upd = np.divide(g, std, out=std)
        upd *= clr
        p -= upd


_OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Adam, AdamW, RMSProp, Adagrad)
}


def make_optimizer(name: str, **kwargs: Any) -> Optimizer:
    """Create an optimiser by name.

    Parameters
    ----------
    name : str
        One of ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``, ``"adagrad"``
        (case-insensitive).
    **kwargs
        Passed to the optimiser's constructor (``params``, ``lr``, ...).

    Returns
    -------
    Optimizer

    Raises
    ------
    ValueError
        If `name` is unknown, or a hyper-parameter is invalid.
    """
    key = name.lower() if isinstance(name, str) else None
    if key not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(_OPTIMIZERS)}")
    return _OPTIMIZERS[key](**kwargs)


# ---------------------------------------------------------------------------
# learning-rate schedules
# ---------------------------------------------------------------------------


class _Schedule:
    """Base of the schedules: validates the step and gives a readable repr."""

    def __call__(self, step: int) -> float:
        return self._at(_check_int(step, "step", 0))

    def _at(self, step: int) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__.lstrip('_')}({args})"


class _Constant(_Schedule):
    def __init__(self, lr: float) -> None:
        self.lr = lr

    def _at(self, step: int) -> float:
        return self.lr


class _StepDecay(_Schedule):
    def __init__(self, lr: float, step_size: int, gamma: float) -> None:
        self.lr = lr
        self.step_size = step_size
        self.gamma = gamma

    def _at(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)


class _Cosine(_Schedule):
    def __init__(self, lr: float, total_steps: int, min_lr: float) -> None:
        self.lr = lr
        self.total_steps = total_steps
        self.min_lr = min_lr

    def _at(self, step: int) -> float:
        frac = min(step, self.total_steps) / self.total_steps
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * frac))


class _Warmup(_Schedule):
    def __init__(self, schedule: Schedule, warmup_steps: int) -> None:
        self.schedule = schedule
        self.warmup_steps = warmup_steps

    def _at(self, step: int) -> float:
        lr = self.schedule(step)
        if step < self.warmup_steps:
            return lr * (step + 1) / self.warmup_steps
        return lr


def constant(lr: float) -> Schedule:
    """Return the schedule ``step -> lr``.

    Raises
    ------
    ValueError
        If `lr` is negative or not finite.
    """
    return _Constant(_lr(lr))


def step_decay(lr: float, step_size: int, gamma: float) -> Schedule:
    """Return the schedule ``step -> lr * gamma ** (step // step_size)``.

    Parameters
    ----------
    lr : float
        Initial learning rate (>= 0).
    step_size : int
        Number of steps between decays (>= 1).
    gamma : float
        Multiplicative decay factor in (0, 1].

    Raises
    ------
    ValueError
        If an argument is out of range.
    """
    return _StepDecay(
        _lr(lr),
        _check_int(step_size, "step_size", 1),
        _check_float(gamma, "gamma", lambda x: 0 < x <= 1, "a float in (0, 1]"),
    )


def cosine(lr: float, total_steps: int, min_lr: float = 0.0) -> Schedule:
    """Return a cosine annealing schedule from `lr` down to `min_lr`.

    ``step -> min_lr + (lr - min_lr) * (1 + cos(pi * s / total_steps)) / 2`` with
    ``s = min(step, total_steps)``: `lr` at step 0, `min_lr` from `total_steps` on.

    Parameters
    ----------
    lr : float
        Initial learning rate (>= 0).
    total_steps : int
        Length of the annealing (>= 1).
    min_lr : float, default 0.0
        Final learning rate, in [0, lr].

    Raises
    ------
    ValueError
        If an argument is out of range.
    """
    lr = _lr(lr)
    total_steps = _check_int(total_steps, "total_steps", 1)
    min_lr = _check_float(min_lr, "min_lr", lambda x: 0 <= x <= lr, f"a float in [0, lr={lr}]")
    return _Cosine(lr, total_steps, min_lr)


def warmup(schedule: Schedule, warmup_steps: int) -> Schedule:
    """Add a linear warm-up to `schedule`.

    ``step -> schedule(step) * (step + 1) / warmup_steps`` while
    ``step < warmup_steps``, then ``schedule(step)``. The wrapped schedule keeps
    counting from step 0 (it is not shifted by the warm-up), so the warm-up
    reaches the full value ``schedule(warmup_steps - 1)`` at its last step.

    Parameters
    ----------
    schedule : callable
        The schedule to warm up, e.g. from :func:`cosine`.
    warmup_steps : int
        Length of the warm-up (>= 0; 0 means no warm-up).

    Raises
    ------
    ValueError
        If `schedule` is not callable or `warmup_steps` is negative.
    """
    if not callable(schedule):
        raise ValueError(f"schedule must be a callable step -> lr, got {schedule!r}")
    return _Warmup(schedule, _check_int(warmup_steps, "warmup_steps", 0))
