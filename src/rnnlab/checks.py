"""The one home of input checks: each failure is a ValueError naming the value and what
was expected ("lr must be a positive number, got -1"). Every module validates through
these; none writes its own.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}


def is_number(value) -> bool:
    """Whether ``value`` is a finite real number (an int or float, NumPy's too; not a bool:
    ``True`` as a learning rate is always a mistake)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


def number(value, name: str, *, low=None, high=None, low_open: bool = False,
           high_open: bool = False) -> float:
    """``value`` as a Python float if it is a finite number in the given range.

    ``low``/``high`` bound the range (None: unbounded), closed unless ``low_open`` /
    ``high_open``. The message names the range in words: "a positive number" for
    ``low=0, low_open=True``, "a non-negative number" for ``low=0``, else an interval.
    A Python float, not ``np.float64``, so that NumPy keeps float32 arrays float32.
    """
    ok = is_number(value)
    if ok:
        v = float(value)
        ok = ((low is None or (v > low if low_open else v >= low))
              and (high is None or (v < high if high_open else v <= high)))
    if not ok:
        raise ValueError(f"{name} must be {_range_words(low, high, low_open, high_open)}, "
                         f"got {value!r}")
    return float(value)


def _range_words(low, high, low_open, high_open) -> str:
    if high is None:
        if low is None:
            return "a finite number"
        if low == 0:
            return "a positive number" if low_open else "a non-negative number"
        return f"a number {'>' if low_open else '>='} {low}"
    if low is None:
        return f"a number {'<' if high_open else '<='} {high}"
    return f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def positive_number(value, name: str) -> float:
    """A finite number > 0, as a Python float."""
    return number(value, name, low=0, low_open=True)


def integer(value, name: str, *, minimum: int | None = None) -> int:
    """``value`` as a Python int if it is an integer (not a bool) >= ``minimum``."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)
            or (minimum is not None and value < minimum)):
        expected = ("an integer" if minimum is None else "a positive integer" if minimum == 1
                    else "a non-negative integer" if minimum == 0
                    else f"an integer >= {minimum}")
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def positive_int(value, name: str) -> int:
    """An integer >= 1."""
    return integer(value, name, minimum=1)


def boolean(value, name: str) -> bool:
    """True or False (NumPy's bools too); not 0 or 1."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def optional(check, value, name: str, **options):
    """``None`` passes; anything else goes through ``check(value, name, **options)``."""
    return None if value is None else check(value, name, **options)


def float_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def choice(value, name: str, options) -> str:
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; expected one of {list(options)}")
    return value


def array(value, name: str, shape: tuple, dtype: np.dtype, *, finite: bool = True) -> np.ndarray:
    """``value`` as an array of ``dtype`` whose shape matches ``shape`` (None = any size).

    Rejects a wrong rank or size with the expected shape spelled out, and (unless
    ``finite=False``, for callers that check it themselves) NaN or Inf.
    Returns ``value`` itself when it already is a C-contiguous array of ``dtype``.
    """
    if type(value) is np.ndarray:
        a = value
    else:
        try:
            a = np.asarray(value)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"{name} must be a numeric array, got {type(value).__name__}: {e}"
            ) from None
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    if a.ndim != len(shape) or any(
        exp is not None and got != exp for got, exp in zip(a.shape, shape, strict=True)
    ):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        if a.ndim != len(shape):
            raise ValueError(
                f"{name} must have {len(shape)} dimensions {want}, got shape {a.shape}"
            )
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    a = np.ascontiguousarray(a, dtype=dtype)
    if finite and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(
            f"{name} contains NaN or Inf (first at index {tuple(int(i) for i in bad)})"
        )
    return a


def lengths(value, batch: int, steps: int) -> np.ndarray:
    """Sequence lengths as int64 (B,), each in [0, T]."""
    a = np.asarray(value)
    if a.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), one per sequence, got {a.shape}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise ValueError(f"lengths must be whole numbers, got {a}")
    elif a.dtype.kind not in "iu":
        raise ValueError(f"lengths must be integers, got dtype {a.dtype}")
    a = a.astype(np.int64)
    bad = (a < 0) | (a > steps)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"lengths must be between 0 and the number of steps {steps}, "
            f"got lengths[{i}] = {int(a[i])}"
        )
    return a


def is_token_ids(value) -> bool:
    """Whether ``value`` is an integer array (B, T): token ids rather than features."""
    return isinstance(value, np.ndarray) and value.ndim == 2 and value.dtype.kind in "iu"


def token_ids(value: np.ndarray, vocab_size: int, name: str = "x") -> np.ndarray:
    """Token ids (B, T) in [0, vocab_size), as a C-contiguous intp array."""
    if value.size and (value.min() < 0 or value.max() >= vocab_size):
        bad = (value < 0) | (value >= vocab_size)
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} holds token ids, which must be in [0, {vocab_size}) (the "
                         f"input size), got {int(value[at])} at index {at}")
    return np.ascontiguousarray(value, dtype=np.intp)


def _flags(a: np.ndarray, name: str) -> np.ndarray:
    """``a`` as bool: booleans, or numbers that are all 0 or 1."""
    if a.dtype == np.bool_:
        return a
    bad = ~np.isin(a, (0, 1)) if a.dtype.kind in "iuf" else None
    if bad is None or bad.any():
        extra = "" if bad is None else f" with a value {a.flat[int(np.argmax(bad))].item()!r}"
        raise ValueError(f"{name} must hold booleans (or 0 and 1), got dtype {a.dtype}{extra}")
    return a.astype(bool)


def reset_mask(value, batch: int, steps: int) -> np.ndarray | None:
    """A reset mask, (B, T) per sequence and step or (T,) for every sequence at once, as
    the time loop's (T, B, 1) bool; None when it resets nothing. Booleans or 0/1."""
    a = np.asarray(value)
    if a.shape not in ((batch, steps), (steps,)):
        raise ValueError(f"reset must have shape ({batch}, {steps}) (per sequence and step) or "
                         f"({steps},) (per step), got {a.shape}")
    a = _flags(a, "reset")
    if not a.any():
        return None
    if a.ndim == 1:
        return np.ascontiguousarray(np.broadcast_to(a[:, None, None], (steps, batch, 1)))
    return np.ascontiguousarray(a.T[:, :, None])


def reset_rows(value, batch: int) -> np.ndarray | None:
    """The streams to reset before one step, (B,) of bool (or 0/1), as (B, 1) bool; None
    when it resets none."""
    a = np.asarray(value)
    if a.shape != (batch,):
        raise ValueError(f"reset must have shape ({batch},), one flag per stream, got {a.shape}")
    a = _flags(a, "reset")
    return a[:, None] if a.any() else None


def known_keys(mapping, known, what: str) -> None:
    """Refuse a key of ``mapping`` that is not in ``known`` (a config override is accepted
    only for a setting that exists): "unknown {what}(s) ['x']; known: [...]"."""
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; known: {sorted(known)}")


def float_arrays(value, name: str, *, writeable: bool = False):
    """``value`` if it is a mapping of str names to floating-point ndarrays (``writeable``:
    that can be updated in place), such as a parameter or gradient set."""
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{name} must be a dict mapping names to numpy arrays, got {type(value).__name__}")
    for key, a in value.items():
        if not isinstance(key, str):
            raise ValueError(f"{name} keys must be str, got {key!r}")
        if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
            kind = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"{name}[{key!r}] must be a floating-point numpy array, got {kind}")
        if writeable and not a.flags.writeable:
            raise ValueError(f"{name}[{key!r}] must be writeable (it is updated in place)")
    return value
