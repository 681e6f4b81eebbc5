"""Input checks shared by the public API: each failure is a ValueError naming the value."""

from __future__ import annotations

import numbers

import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}


def positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


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
