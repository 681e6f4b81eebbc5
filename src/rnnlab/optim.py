"""Optimisers for parameter sets: SGD, Adam, AdamW, RMSProp and Adagrad.

A parameter set is a ``dict[str, np.ndarray]`` (float32 or float64); its gradients are a dict
with the same keys and shapes. The optimisers update the arrays in place and follow
``torch.optim`` (single-tensor path, ``maximize=False``, no AMSGrad) to rounding error. Each
is a small spec, as in optax, on the machinery of :class:`Optimizer`, which also says what
the parameters mean. The learning-rate schedules of :mod:`rnnlab.schedules` are re-exported.

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
from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from . import checks
from .schedules import Schedule, constant, cosine, step_decay, warmup

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSProp", "Schedule", "StateDict",
           "constant", "cosine", "make_optimizer", "step_decay", "warmup"]

StateDict = dict[str, np.ndarray | float | int]
"""Flat optimiser state: saveable with ``np.savez(..., **state)`` and ``allow_pickle=False``."""

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


def _scalar(value: object, what: str) -> Any:
    """Unwrap a state-dict scalar, which comes back from an .npz file as a 0-d array."""
    a = np.asarray(value)
    if a.shape != ():
        raise ValueError(f"state dict entry {what!r} must be a scalar, got shape {a.shape}")
    return a.item()


def _fit(what: str, arrays: Mapping[str, np.ndarray], want: Mapping[str, tuple],
         whose: str) -> None:
    """A ValueError unless `arrays` has exactly the names of `want` (name -> (shape, dtype
    or None for any)), each of that shape and dtype."""
    if arrays.keys() != want.keys():
        raise ValueError(f"{what} keys do not match {whose}: missing "
                         f"{sorted(want.keys() - arrays.keys())}, unexpected "
                         f"{sorted(arrays.keys() - want.keys())}")
    for name, a in arrays.items():
        shape, dtype = want[name]
        if a.shape != shape or (dtype is not None and a.dtype != dtype):
            raise ValueError(f"{what}[{name!r}] has shape {a.shape} and dtype {a.dtype}, "
                             f"expected shape {shape}" + ("" if dtype is None else
                                                          f" and dtype {dtype}"))


def _addcdiv(p: np.ndarray, num: np.ndarray, denom: np.ndarray, size: float) -> None:
    """``p -= size * num / denom``, rounded as torch's ``addcdiv``; overwrites `denom`."""
    np.divide(num, denom, out=denom)
    denom *= size
    p -= denom


@dataclass(eq=False)
class Optimizer:
    """Base class of the optimisers: binding, input checks, step counting, state and repr.

    A subclass is a ``_spec`` dataclass whose ``_hyper`` fields are its hyper-parameters
    (their defaults are in the class body and the signature); it sets ``name`` (the
    state-dict prefix) and defines :meth:`init` and :meth:`update`. The hyper-parameters are
    keyword-only, default to PyTorch's values, are checked at construction and on loading
    (ValueError when out of range), and mean the same in every optimiser:

    - ``lr`` >= 0: learning rate; ``step(..., lr=...)`` overrides it for one step.
    - ``weight_decay`` >= 0: L2 penalty, ``g = grad + weight_decay * p`` (AdamW: decoupled).
    - ``eps`` > 0: added to the denominator.
    - ``momentum``, ``alpha``, ``betas``: decay rates, in [0, 1).

    ``n_steps`` counts the steps taken (PyTorch's ``state["step"]``).

    Parameters
    ----------
    params : dict of str to np.ndarray, optional
        Parameter set to bind to (every optimiser's first argument): only its names, shapes
        and dtypes are recorded, and every :meth:`step` must use the same. Else the first
        step binds; binding up front lets :meth:`load_state_dict` check a checkpoint.
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
            checks.float_arrays(params, "params")
            self._specs = {name: (p.shape, p.dtype) for name, p in params.items()}

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

    def _buffers(self, name: str, starts: Mapping[str, float]) -> dict[str, np.ndarray]:
        """Parameter `name`'s buffers, those in `starts` made at their start values when first
        needed (so that a hyper-parameter changed by hand, e.g. momentum, finds its buffer)."""
        shape, dtype = self._specs[name]
        buf = self._state.setdefault(name, {})
        for b, start in starts.items():
            if b not in buf:
                buf[b] = np.full(shape, start, dtype=dtype)
        return buf

    def step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray], *,
             lr: float | None = None) -> None:
        """Take one optimisation step, updating `params` in place (each keeps its dtype).

        Raises ValueError, and changes nothing, if names, shapes or dtypes do not match or
        `lr` is negative.

        Parameters
        ----------
        params, grads : dict of str to np.ndarray
            Parameters and their gradients, with the same keys and shapes (`grads` is not
            modified; it is cast to the parameters' dtypes).
        lr : float, optional
            Learning rate for this step only (e.g. from a schedule); default the stored ``lr``.
        """
        checks.float_arrays(params, "params", writeable=True)
        checks.float_arrays(grads, "grads")
        _fit("grads", grads, {name: (p.shape, None) for name, p in params.items()}, "params")
        lr = self.lr if lr is None else checks.number(lr, "lr", **_NONNEG)
        if self._specs is None:
            self._specs = {name: (p.shape, p.dtype) for name, p in params.items()}
        _fit("params", params, self._specs, "the optimizer's parameters")
        starts = self.init()
        self.n_steps += 1
        for name, p in params.items():
            g = np.asarray(grads[name], dtype=p.dtype)
            self.update(p, g, self._buffers(name, starts), lr, self.n_steps)

    def state_dict(self) -> StateDict:
        """The state as a flat :data:`StateDict` of scalars and copies of the buffers.

        Keys are ``"step"``, ``"<name>.<hyper-parameter>"`` (bools as 0/1) and
        ``"<name>.<buffer>.<parameter name>"``, e.g. ``"adam.m.W"``.
        """
        d: StateDict = {"step": self.n_steps}
        for h, v in self.hyperparameters.items():
            d[f"{self.name}.{h}"] = int(v) if isinstance(v, bool) else v
        starts = self.init()
        for pname in self._specs or {}:
            buf = self._buffers(pname, starts)
            for b in starts:
                d[f"{self.name}.{b}.{pname}"] = buf[b].copy()
        return d

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` (or read back from its .npz file).

        Hyper-parameters (replacing the constructor's, as in PyTorch), step count and buffers
        are restored, so continuing gives bit-identical updates. A bound optimiser casts the
        arrays to its parameters' dtypes; an unbound one binds to the names, shapes and dtypes
        in `state`. Raises ValueError, and changes nothing, if keys are missing or unexpected
        (e.g. another optimiser's state), a hyper-parameter is invalid, or the parameters
        differ from the bound ones.
        """
        if not isinstance(state, Mapping):
            raise ValueError(f"state must be a mapping, got {type(state).__name__}")
        prefix = f"{self.name}."
        hyper_keys = {prefix + f.name: f for f in fields(self)}
        missing = [k for k in ("step", *hyper_keys) if k not in state]
        if missing:
            raise ValueError(f"state dict is missing keys {missing}; expected a state saved by "
                             f"{type(self).__name__}")
        # Everything goes into a copy first, which replaces this state only once all passed.
        new = copy.copy(self)
        new.n_steps = checks.integer(_scalar(state["step"], "step"), "state dict 'step'", minimum=0)
        raw = {}
        for key, f in hyper_keys.items():
            v = _scalar(state[key], key)
            # state_dict saves a bool as 0/1; a flag's default tells which ones to turn back.
            bool_saved = isinstance(f.default, bool) and isinstance(v, int) and v in (0, 1)
            raw[f.name] = bool(v) if bool_saved else v
        vars(new).update(self._checked(raw))

        starts = new.init()
        arrays = {k: np.asarray(v) for k, v in state.items() if k != "step" and k not in hyper_keys}
        # The bound parameters, else those `state` has buffers of. Buffer names have no dot;
        # parameter names may ("lstm.b").
        split = (k.removeprefix(prefix).partition(".") for k in arrays if k.startswith(prefix))
        names = new._specs or dict.fromkeys(pname for b, _, pname in split if b in starts and pname)
        wanted = {f"{prefix}{b}.{pname}": (pname, b) for pname in names for b in starts}
        if not arrays:
            if starts and new.n_steps > 0:
                raise ValueError(
                    f"state dict has step {new.n_steps} but no per-parameter state arrays")
            wanted = {}
        elif arrays.keys() != wanted.keys():
            raise ValueError(f"state dict does not fit {new!r} for the parameters {list(names)}: "
                             f"missing keys {sorted(wanted.keys() - arrays.keys())}, "
                             f"unexpected keys {sorted(arrays.keys() - wanted.keys())}")
        specs, new._state = dict(new._specs or {}), {}
        for key, (pname, b) in wanted.items():
            arr = arrays[key]
            # Unbound, a parameter's first buffer gives its shape and dtype.
            shape, dtype = specs.setdefault(pname, (arr.shape, arr.dtype))
            if arr.shape != shape or not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"state dict entry {key!r} has shape {arr.shape} and dtype "
                                 f"{arr.dtype}, expected a float array of shape {shape}")
            new._state.setdefault(pname, {})[b] = np.array(arr, dtype=dtype, copy=True)
        if wanted:
            new._specs = specs
        vars(self).update(vars(new))


# The InitVar's default stays behind as a class attribute; ``opt.params`` reading None would
# say "no parameters" of a bound optimiser.
del Optimizer.params


@_spec
class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD`` with ``dampening=0``.

    Step ``t``, with the momentum buffer ``b`` starting at 0 (so ``b = g`` at ``t = 1``)::

        g = grad + weight_decay * p
        if momentum > 0:  b = momentum * b + g;  g = g + momentum * b  if nesterov  else  b
        p = p - lr * g

    ``nesterov=True`` (PyTorch's formulation) needs ``momentum > 0``.
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

    Step ``t`` (from 1), with ``m`` and ``v`` starting at 0::

        g = grad + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t);  v_hat = v / (1 - beta2**t)
        p = p - lr * m_hat / (sqrt(v_hat) + eps)

    ``betas=(beta1, beta2)`` is kept as the hyper-parameters ``beta1`` and ``beta2``.
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
        # Rounded as PyTorch's code: m by lerp (m + w * (g - m)), the bias corrections split
        # between the step size and the denominator.
        m += (1 - self.beta1) * (g - m)
        v *= self.beta2
        v += (1 - self.beta2) * np.square(g)
        denom = np.sqrt(v)
        denom /= (1 - self.beta2**t) ** 0.5
        denom += self.eps
        _addcdiv(p, m, denom, lr / (1 - self.beta1**t))


# ``betas`` is the constructor's InitVar, whose default stays behind as a class attribute;
# a view of the two hyper-parameters takes its place.
Adam.betas = property(lambda self: (self.beta1, self.beta2), doc="``(beta1, beta2)``.")


@_spec
class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``: decoupled weight decay.

    Step ``t`` first shrinks the parameters, ``p = p * (1 - lr * weight_decay)``, then takes
    :class:`Adam`'s step with ``g = grad``. The parameters are Adam's, but ``weight_decay``
    defaults to 1e-2.
    """

    name = "adamw"
    _decoupled = True
    weight_decay: float = _hyper(1e-2, **_NONNEG)


@_spec
class RMSProp(Optimizer):
    """RMSProp (Hinton, 2012), as ``torch.optim.RMSprop``.

    Step ``t``, with ``s``, ``a`` and ``b`` starting at 0::

        g = grad + weight_decay * p
        s = alpha * s + (1 - alpha) * g**2
        if centered:  a = alpha * a + (1 - alpha) * g;  s_hat = s - a**2   else  s_hat = s
        if momentum > 0:  b = momentum * b + g / (sqrt(s_hat) + eps);  p = p - lr * b
        else:             p = p - lr * g / (sqrt(s_hat) + eps)

    Where rounding makes a centred ``s_hat`` negative (a nearly constant gradient), it is
    clamped at 0; PyTorch gives nan.
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
            ga += (1 - self.alpha) * (g - ga)  # lerp, as PyTorch rounds it
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
            _addcdiv(p, g, avg, lr)


@_spec
class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011), as ``torch.optim.Adagrad``.

    Step ``t`` (from 1), with ``s`` starting at ``initial_accumulator_value``::

        g = grad + weight_decay * p
        s = s + g**2
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)
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
        s = buf["sum"]
        s += np.square(g)
        std = np.sqrt(s)
        std += self.eps
        _addcdiv(p, g, std, lr / (1 + (t - 1) * self.lr_decay))


_OPTIMIZERS = {cls.name: cls for cls in (SGD, Adam, AdamW, RMSProp, Adagrad)}


def make_optimizer(name: str, **kwargs: Any) -> Optimizer:
    """Create an optimiser by name: ``make_optimizer("adam", lr=0.1)`` is ``Adam(lr=0.1)``.

    Parameters
    ----------
    name : {"sgd", "adam", "adamw", "rmsprop", "adagrad"}
        In any case; another name raises ValueError, as does an invalid hyper-parameter.
    **kwargs
        The optimiser's constructor arguments (``params``, ``lr``, ...).
    """
    key = name.lower() if isinstance(name, str) else None
    if key not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(_OPTIMIZERS)}")
    return _OPTIMIZERS[key](**kwargs)
