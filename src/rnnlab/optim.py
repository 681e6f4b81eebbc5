"""Optimisers and learning-rate schedules for parameter sets.

A parameter set is a ``dict[str, np.ndarray]`` (float32 or float64); its gradients are a dict
with the same keys and shapes. The optimisers update the arrays in place and follow
``torch.optim`` (single-tensor path, ``maximize=False``, no AMSGrad) to rounding error.

Each optimiser is a small spec, as in optax: its hyper-parameters (dataclass fields, each
with its check), ``init`` (the buffers one parameter needs) and ``update`` (one parameter's
step). :class:`Optimizer` does the rest once: binding to parameter names, checking inputs,
counting steps, ``state_dict``/``load_state_dict`` and the repr.

A schedule is a callable ``schedule(step) -> lr``, ``step`` counting optimiser steps from 0:
``optimizer.step(..., lr=schedule(i))``. :func:`constant`, :func:`step_decay`,
:func:`cosine` and :func:`warmup` build the common ones.

Examples
--------
>>> import numpy as np
>>> params = {"w": np.ones(3)}
>>> opt = make_optimizer("adam", lr=0.1)
>>> sched = warmup(cosine(0.1, total_steps=100), warmup_steps=10)
>>> for i in range(3):
...     opt.step(params, {"w": 2 * params["w"]}, lr=sched(i))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from . import checks

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSProp", "Schedule", "StateDict",
           "constant", "cosine", "make_optimizer", "step_decay", "warmup"]

StateDict = dict[str, np.ndarray | float | int]
"""Flat optimiser state: saveable with ``np.savez(..., **state)`` and ``allow_pickle=False``."""

Schedule = Callable[[int], float]
"""A learning-rate schedule: maps the step index (from 0) to a learning rate."""

# The ranges hyper-parameters take, as options of checks.number.
_NONNEG = {"low": 0}
_FRACTION = {"low": 0, "high": 1, "high_open": True}
# PyTorch accepts eps=0, but then a zero gradient gives 0/0 = nan.
_POSITIVE = {"low": 0, "low_open": True}


def _hyper(default: Any, check: Callable[..., Any] = checks.number, *, label: str | None = None,
           init: bool = True, **options: Any) -> Any:
    """A hyper-parameter: a dataclass field that :meth:`Optimizer._checked` checks with
    ``check(value, label or its name, **options)``."""
    return field(default=default, init=init,
                 metadata={"check": check, "label": label, "options": options})


# Keyword-only hyper-parameters after the positional ``params``; identity equality, as a
# stateful object should have (and so that it stays hashable).
_spec = dataclass(eq=False, kw_only=True)


def _check_arrays(arrays: object, what: str, *, writeable: bool) -> Mapping[str, np.ndarray]:
    """Check that `arrays` maps str names to floating-point ndarrays."""
    if not isinstance(arrays, Mapping):
        raise ValueError(
            f"{what} must be a dict mapping names to numpy arrays, got {type(arrays).__name__}")
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


def _unmatched(what: str, expected: Mapping[str, Any], got: Mapping[str, Any]) -> str:
    return (f"{what} do not match the optimizer's parameters: missing "
            f"{sorted(set(expected) - set(got))}, unexpected {sorted(set(got) - set(expected))}")


@dataclass(eq=False)
class Optimizer:
    """Base class of the optimisers: what they all do the same way.

    An optimiser is *bound* to a parameter set (names, shapes and dtypes) at construction,
    by passing `params`, or at its first :meth:`step`; from then on every call must use the
    same names, shapes and dtypes. Binding up front lets :meth:`load_state_dict` check a
    checkpoint against the model before any step.

    Parameters
    ----------
    params : dict of str to np.ndarray, optional
        Parameter set to bind to; only names, shapes and dtypes are recorded.

    Attributes
    ----------
    n_steps : int
        Number of steps taken (PyTorch's ``state["step"]``).

    Notes
    -----
    A subclass is a ``_spec`` dataclass whose ``_hyper`` fields are its hyper-parameters; it
    sets ``name`` (the state-dict prefix) and defines :meth:`init` and :meth:`update`.
    """

    name: ClassVar[str] = ""
    params: InitVar[Mapping[str, np.ndarray] | None] = None

    def __post_init__(self, params: Mapping[str, np.ndarray] | None) -> None:
        vars(self).update(self._checked(self.hyperparameters))
        self.n_steps = 0
        # name -> (shape, dtype) of the bound parameter set; None until bound.
        self._specs: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
        # name -> buffer name -> array (same shape and dtype as the parameter).
        self._state: dict[str, dict[str, np.ndarray]] = {}
        if params is not None:
            self._bind(_check_arrays(params, "params", writeable=False))

    def init(self) -> dict[str, float]:
        """The buffers a parameter needs with these hyper-parameters: name -> start value."""
        return {}

    def update(self, p: np.ndarray, g: np.ndarray, buf: dict[str, np.ndarray], lr: float,
               t: int) -> None:
        """Update `p` and its buffers `buf` in place from its gradient `g` at step `t` (from 1)."""
        raise NotImplementedError

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The hyper-parameters, by name (a copy)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def _checked(cls, hyper: Mapping[str, Any]) -> dict[str, Any]:
        """`hyper` checked, as Python floats and bools (NumPy keeps float32 float32 with those)."""
        return {f.name: f.metadata["check"](hyper[f.name], f.metadata["label"] or f.name,
                                            **f.metadata["options"]) for f in fields(cls)}

    def _bind(self, params: Mapping[str, np.ndarray]) -> None:
        self._specs = {name: (p.shape, p.dtype) for name, p in params.items()}
        self._state = {name: {} for name in params}

    def _check_step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray],
                    lr: float | None) -> float:
        """Check the arguments of :meth:`step`; return the step's learning rate."""
        _check_arrays(params, "params", writeable=True)
        _check_arrays(grads, "grads", writeable=False)
        if set(grads) != set(params):
            raise ValueError(
                f"grads keys {sorted(grads)} do not match params keys {sorted(params)}")
        for name, p in params.items():
            if grads[name].shape != p.shape:
                raise ValueError(
                    f"grads[{name!r}] has shape {grads[name].shape}, expected {p.shape}")
        lr = self.lr if lr is None else checks.number(lr, "lr", **_NONNEG)
        if self._specs is not None:
            if set(params) != set(self._specs):
                raise ValueError(_unmatched("params", self._specs, params))
            for name, p in params.items():
                shape, dtype = self._specs[name]
                if p.shape != shape or p.dtype != dtype:
                    raise ValueError(
                        f"params[{name!r}] has shape {p.shape} and dtype {p.dtype}, but the "
                        f"optimizer state expects shape {shape} and dtype {dtype}")
        return lr

    def step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray], *,
             lr: float | None = None) -> None:
        """Take one optimisation step, updating `params` in place.

        Parameters
        ----------
        params : dict of str to np.ndarray
            Parameter set; each array is updated in place and keeps its dtype.
        grads : dict of str to np.ndarray
            Gradients with the same keys and shapes, not modified; cast to `params`' dtypes.
        lr : float, optional
            Learning rate for this step only (e.g. from a schedule); default the stored ``lr``.

        Raises
        ------
        ValueError
            If names, shapes or dtypes do not match, or `lr` is negative; then nothing changes.
        """
        lr = self._check_step(params, grads, lr)
        if self._specs is None:
            self._bind(params)
        starts = self.init()
        self.n_steps += 1
        for name, p in params.items():
            buf = self._state[name]
            for b, start in starts.items():
                # Made when first needed, so that a hyper-parameter changed by hand (e.g.
                # momentum switched on) still finds its buffer.
                if b not in buf:
                    buf[b] = np.full(p.shape, start, dtype=p.dtype)
            self.update(p, np.asarray(grads[name], dtype=p.dtype), buf, lr, self.n_steps)

    def state_dict(self) -> StateDict:
        """Return the optimiser state as a flat dict of arrays and scalars.

        Keys are ``"step"``, ``"<name>.<hyper-parameter>"`` (bools stored as 0/1) and
        ``"<name>.<buffer>.<parameter name>"`` for the per-parameter arrays, e.g.
        ``"adam.m.W"``. Arrays are copies. The dict can be written with
        ``np.savez(path, **state)`` and read back with ``allow_pickle=False``.
        """
        d: StateDict = {"step": self.n_steps}
        for h, v in self.hyperparameters.items():
            d[f"{self.name}.{h}"] = int(v) if isinstance(v, bool) else v
        for pname, (shape, dtype) in (self._specs or {}).items():
            for b, start in self.init().items():
                arr = self._state[pname].get(b)
                d[f"{self.name}.{b}.{pname}"] = (
                    np.full(shape, start, dtype=dtype) if arr is None else arr.copy())
        return d

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` of the same optimiser class.

        Hyper-parameters (replacing the constructor's, as in PyTorch), step count and
        buffers are restored, so continuing gives bit-identical updates. A mapping read
        from an .npz file (0-d arrays for scalars) is accepted. A bound optimiser casts the
        arrays to its parameters' dtypes; an unbound one binds to the names, shapes and
        dtypes in `state` (if it has per-parameter arrays).

        Parameters
        ----------
        state : mapping
            The saved state.

        Raises
        ------
        ValueError
            If keys are missing or unexpected (e.g. another optimiser's state), a
            hyper-parameter is invalid, or the parameter names or shapes differ from the
            bound ones. Nothing is changed then.
        """
        if not isinstance(state, Mapping):
            raise ValueError(f"state must be a mapping, got {type(state).__name__}")
        hyper_keys = {f"{self.name}.{f.name}": f for f in fields(self)}
        missing = [k for k in ("step", *hyper_keys) if k not in state]
        if missing:
            raise ValueError(f"state dict is missing keys {missing}; expected a state saved by "
                             f"{type(self).__name__}")
        # Everything goes into a copy first, which replaces this state only once all passed.
        new = copy.copy(self)
        new.n_steps = checks.integer(_scalar(state["step"], "step"), "state dict 'step'",
                                     minimum=0)
        raw = {}
        for key, f in hyper_keys.items():
            v = _scalar(state[key], key)
            # state_dict saves a bool as 0/1; a flag's default tells which ones to turn back.
            bool_saved = isinstance(f.default, bool) and isinstance(v, int) and v in (0, 1)
            raw[f.name] = bool(v) if bool_saved else v
        vars(new).update(self._checked(raw))
        starts = new.init()

        found: dict[str, dict[str, np.ndarray]] = {}  # parameter -> buffer -> array
        unexpected = []
        for key in state:
            # Buffer names have no dot; parameter names may ("lstm.b").
            b, _, pname = key.removeprefix(f"{self.name}.").partition(".")
            if key.startswith(f"{self.name}.") and b in starts and pname:
                found.setdefault(pname, {})[b] = np.asarray(state[key])
            elif key != "step" and key not in hyper_keys:
                unexpected.append(key)
        if unexpected:
            raise ValueError(f"state dict has unexpected keys {sorted(unexpected)}; expected a "
                             f"state saved by {type(self).__name__} with hyper-parameters "
                             f"{new.hyperparameters}")
        for pname, bufs in found.items():
            lacking = [f"{self.name}.{b}.{pname}" for b in starts if b not in bufs]
            if lacking:
                raise ValueError(f"state dict lacks {lacking}")
        if not found:
            if starts and new.n_steps > 0:
                raise ValueError(
                    f"state dict has step {new.n_steps} but no per-parameter state arrays")
        elif new._specs is None:
            first = next(iter(starts))
            new._specs = {pname: (bufs[first].shape, bufs[first].dtype)
                          for pname, bufs in found.items()}
        elif set(found) != set(new._specs):
            raise ValueError(_unmatched("state dict parameters", new._specs, found))

        new._state = {}
        for pname, (shape, dtype) in (new._specs or {}).items():
            new._state[pname] = {}
            for b, arr in found.get(pname, {}).items():
                if arr.shape != shape or not np.issubdtype(arr.dtype, np.floating):
                    raise ValueError(
                        f"state dict entry '{self.name}.{b}.{pname}' has shape {arr.shape} and "
                        f"dtype {arr.dtype}, expected a float array of shape {shape}")
                new._state[pname][b] = np.array(arr, dtype=dtype, copy=True)
        vars(self).update(vars(new))


# The InitVar's default stays behind as a class attribute; ``opt.params`` reading None would
# say "no parameters" of a bound optimiser.
del Optimizer.params


@_spec
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
    lr: float = _hyper(1e-3, **_NONNEG)
    momentum: float = _hyper(0.0, **_FRACTION)
    weight_decay: float = _hyper(0.0, **_NONNEG)
    nesterov: bool = _hyper(False, checks.boolean)

    @classmethod
    def _checked(cls, hyper: Mapping[str, Any]) -> dict[str, Any]:
        hyper = super()._checked(hyper)
        if hyper["nesterov"] and hyper["momentum"] == 0:
            raise ValueError("nesterov=True requires momentum > 0, got momentum=0.0")
        return hyper

    def init(self):
        return {"momentum_buffer": 0.0} if self.momentum != 0 else {}

    def update(self, p, g, buf, lr, t):
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        if self.momentum != 0:
            b = buf["momentum_buffer"]
            b *= self.momentum
            b += g
            g = g + self.momentum * b if self.nesterov else b
        p -= lr * g


@_spec
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
        Learning rate (>= 0), the step size before the bias corrections.
    betas : tuple of float, default (0.9, 0.999)
        Decay rates ``(beta1, beta2)`` of the first and second moment estimates, each in
        [0, 1); kept as the hyper-parameters ``beta1`` and ``beta2``.
    eps : float, default 1e-8
        Term added to the denominator (> 0).
    weight_decay : float, default 0.0
        L2 penalty coefficient (>= 0).
    """

    name = "adam"
    # AdamW shares the update and only switches this on.
    _decoupled: ClassVar[bool] = False
    lr: float = _hyper(1e-3, **_NONNEG)
    beta1: float = _hyper(0.9, label="betas[0]", init=False, **_FRACTION)
    beta2: float = _hyper(0.999, label="betas[1]", init=False, **_FRACTION)
    betas: InitVar[tuple[float, float]] = (0.9, 0.999)
    eps: float = _hyper(1e-8, **_POSITIVE)
    weight_decay: float = _hyper(0.0, **_NONNEG)

    def __post_init__(self, params, betas):
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise ValueError(f"betas must be a pair of floats in [0, 1), got {betas!r}")
        self.beta1, self.beta2 = betas
        super().__post_init__(params)

    def init(self):
        return {"m": 0.0, "v": 0.0}

    def update(self, p, g, buf, lr, t):
        if self.weight_decay != 0:
            if self._decoupled:
                p *= 1 - lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        m, v = buf["m"], buf["v"]
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


# ``betas`` is the constructor's InitVar, whose default stays behind as a class attribute;
# a view of the two hyper-parameters takes its place.
Adam.betas = property(lambda self: (self.beta1, self.beta2), doc="``(beta1, beta2)``.")


@_spec
class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    :class:`Adam` with the weight decay decoupled from the gradient: each step first
    shrinks the parameters, ``p = p * (1 - lr * weight_decay)`` (with this step's learning
    rate), then applies the Adam update with ``g = grad``. Its parameters are Adam's but for
    the default ``weight_decay=1e-2`` (PyTorch's).
    """

    name = "adamw"
    _decoupled = True
    weight_decay: float = _hyper(1e-2, **_NONNEG)


@_spec
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
        Normalise by an estimate of the gradient's variance instead of its second moment.

    Notes
    -----
    In the centred variant ``s - a**2`` is a variance, non-negative in exact arithmetic,
    but rounding can make it slightly negative when the gradient is nearly constant; it is
    clamped at 0 where PyTorch would produce nan.
    """

    name = "rmsprop"
    lr: float = _hyper(1e-2, **_NONNEG)
    alpha: float = _hyper(0.99, **_FRACTION)
    eps: float = _hyper(1e-8, **_POSITIVE)
    weight_decay: float = _hyper(0.0, **_NONNEG)
    momentum: float = _hyper(0.0, **_FRACTION)
    centered: bool = _hyper(False, checks.boolean)

    def init(self):
        wanted = {"square_avg": True, "grad_avg": self.centered,
                  "momentum_buffer": self.momentum > 0}
        return {b: 0.0 for b, on in wanted.items() if on}

    def update(self, p, g, buf, lr, t):
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        sq = buf["square_avg"]
        sq *= self.alpha
        sq += (1 - self.alpha) * np.square(g)
        if self.centered:
            ga = buf["grad_avg"]
            ga += (1 - self.alpha) * (g - ga)
            avg = sq - np.square(ga)
            # A variance, but rounding can push it below 0 (then sqrt gives nan).
            np.maximum(avg, 0, out=avg)
            np.sqrt(avg, out=avg)
        else:
            avg = np.sqrt(sq)
        avg += self.eps
        if self.momentum > 0:
            b = buf["momentum_buffer"]
            b *= self.momentum
            b += g / avg
            p -= lr * b
        else:
            upd = np.divide(g, avg, out=avg)
            upd *= lr
            p -= upd


@_spec
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
        Initial learning rate (>= 0), PyTorch's default; `lr_decay` lowers it step by step.
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
    lr: float = _hyper(1e-2, **_NONNEG)
    lr_decay: float = _hyper(0.0, **_NONNEG)
    weight_decay: float = _hyper(0.0, **_NONNEG)
    initial_accumulator_value: float = _hyper(0.0, **_NONNEG)
    eps: float = _hyper(1e-10, **_POSITIVE)

    def init(self):
        return {"sum": self.initial_accumulator_value}

    def update(self, p, g, buf, lr, t):
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        clr = lr / (1 + (t - 1) * self.lr_decay)
        s = buf["sum"]
        s += np.square(g)
        std = np.sqrt(s)
        std += self.eps
        upd = np.divide(g, std, out=std)
        upd *= clr
        p -= upd


_OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Adam, AdamW, RMSProp, Adagrad)}


def make_optimizer(name: str, **kwargs: Any) -> Optimizer:
    """Create an optimiser by name.

    Parameters
    ----------
    name : str
        ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"`` or ``"adagrad"`` (any case).
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

# Fields are the arguments; identity equality and the shared repr below.
_schedule = dataclass(eq=False, repr=False)


class _Schedule:
    """Base of the schedules: checks the step; shows as e.g. ``Cosine(lr=1.0, ...)``."""

    def __call__(self, step: int) -> float:
        return self._at(checks.integer(step, "step", minimum=0))

    def _at(self, step: int) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__.lstrip('_')}({args})"


@_schedule
class _Constant(_Schedule):
    lr: float

    def _at(self, step: int) -> float:
        return self.lr


@_schedule
class _StepDecay(_Schedule):
    lr: float
    step_size: int
    gamma: float

    def _at(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)


@_schedule
class _Cosine(_Schedule):
    lr: float
    total_steps: int
    min_lr: float

    def _at(self, step: int) -> float:
        frac = min(step, self.total_steps) / self.total_steps
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * frac))


@_schedule
class _Warmup(_Schedule):
    schedule: Schedule
    warmup_steps: int

    def _at(self, step: int) -> float:
        lr = self.schedule(step)
        return lr * (step + 1) / self.warmup_steps if step < self.warmup_steps else lr


def constant(lr: float) -> Schedule:
    """Return the schedule ``step -> lr``; `lr` must be finite and >= 0 (else ValueError)."""
    return _Constant(checks.number(lr, "lr", **_NONNEG))


def step_decay(lr: float, step_size: int, gamma: float) -> Schedule:
    """Return the schedule ``step -> lr * gamma ** (step // step_size)``.

    Arguments out of range raise ValueError, as in all the schedules.

    Parameters
    ----------
    lr : float
        Initial learning rate (>= 0).
    step_size : int
        Number of steps between decays (>= 1).
    gamma : float
        Multiplicative decay factor in (0, 1].
    """
    return _StepDecay(checks.number(lr, "lr", **_NONNEG),
                      checks.positive_int(step_size, "step_size"),
                      checks.number(gamma, "gamma", low=0, high=1, low_open=True))


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
    """
    lr = checks.number(lr, "lr", **_NONNEG)
    return _Cosine(lr, checks.positive_int(total_steps, "total_steps"),
                   checks.number(min_lr, "min_lr", low=0, high=lr))


def warmup(schedule: Schedule, warmup_steps: int) -> Schedule:
    """Add a linear warm-up to `schedule`.

    ``step -> schedule(step) * (step + 1) / warmup_steps`` while ``step < warmup_steps``,
    then ``schedule(step)``. The wrapped schedule keeps counting from step 0 (it is not
    shifted by the warm-up), so the warm-up reaches the full value
    ``schedule(warmup_steps - 1)`` at its last step.

    Parameters
    ----------
    schedule : callable
        The schedule to warm up, e.g. from :func:`cosine`.
    warmup_steps : int
        Length of the warm-up (>= 0; 0 means no warm-up).
    """
    if not callable(schedule):
        raise ValueError(f"schedule must be a callable step -> lr, got {schedule!r}")
    return _Warmup(schedule, checks.integer(warmup_steps, "warmup_steps", minimum=0))
