"""Synthetic long-range-dependency tasks for recurrent networks.

Each generator draws a whole data set from a seed and returns batch-first NumPy
arrays: inputs of shape ``(n, steps, features)`` and targets.

Functions
---------
adding_problem
    Sum the two marked numbers of a sequence (Hochreiter & Schmidhuber 1997,
    experiment 4, in the variant of Le et al. 2015 and Arjovsky et al. 2016).
adding_accuracy
    Fraction of adding-problem predictions within the H&S tolerance.
temporal_order
    Classify the order of two relevant symbols hidden among distractors
    (Hochreiter & Schmidhuber 1997, experiment 6a).
copy_task
    Reproduce a sequence of symbols after a long delay (Arjovsky et al. 2016).

References
----------
S. Hochreiter and J. Schmidhuber, "Long short-term memory", Neural Computation
9(8), 1997.
Q. V. Le, N. Jaitly and G. E. Hinton, "A simple way to initialize recurrent
networks of rectified linear units", arXiv:1504.00941, 2015.
M. Arjovsky, A. Shah and Y. Bengio, "Unitary evolution recurrent neural
networks", ICML 2016.
"""

from __future__ import annotations

import numpy as np

from rnnlab.checks import integer
from rnnlab.init import rng_from

__all__ = [
    "TEMPORAL_ORDER_CLASSES",
    "TEMPORAL_ORDER_SYMBOLS",
    "adding_accuracy",
    "adding_problem",
    "copy_task",
    "temporal_order",
]

TEMPORAL_ORDER_SYMBOLS: tuple[str, ...] = ("a", "b", "c", "d", "B", "E", "X", "Y")
"""Symbols of :func:`temporal_order`, in the order of the one-hot input channels."""

TEMPORAL_ORDER_CLASSES: tuple[str, ...] = ("XX", "XY", "YX", "YY")
"""Classes of :func:`temporal_order`, in the order of the integer targets."""

# Minimum sequence length of temporal_order: below it the scaled windows for
# t1 and t2 collapse to single positions and the task loses its meaning.
_TEMPORAL_ORDER_MIN_LENGTH = 10


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    """A generator for an explicit `seed` (None is refused: these sets must be reproducible)."""
    if seed is None:
        raise ValueError("seed must be a non-negative int or a np.random.Generator, got None")
    return rng_from(seed)


def adding_problem(
    n: int, length: int, *, seed: int | np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Generate the adding problem.

    Each sequence has two input channels. The first holds numbers drawn
    uniformly from [0, 1); the second is a marker that is 1 at exactly two
    steps, one uniformly chosen in the first half (steps ``0 .. length//2 - 1``)
    and one in the second half (steps ``length//2 .. length - 1``), and 0
    elsewhere. The target is the sum of the two marked numbers.

    This is the modern variant of Le et al. (2015) and Arjovsky et al. (2016).
    Hochreiter & Schmidhuber (1997, experiment 4) drew the numbers from
    [-1, 1], put the first marker among the first ten steps and used the
    target ``0.5 + (x1 + x2) / 4``.

    Parameters
    ----------
    n : int
        Number of sequences (>= 1).
    length : int
        Number of time steps (>= 2).
    seed : int or np.random.Generator
        Seed or generator for reproducible data.

    Returns
    -------
    X : np.ndarray of float32, shape (n, length, 2)
        Inputs: channel 0 the numbers, channel 1 the markers.
    Y : np.ndarray of float32, shape (n, 1)
        Targets, in [0, 2); a predictor that always outputs 1 has mean squared
        error about 1/6, the usual baseline.

    Raises
    ------
    ValueError
        If `n`, `length` or `seed` is invalid.
    """
    n = integer(n, "n", minimum=1)
    length = integer(length, "length", minimum=2)
    rng = _rng(seed)
    half = length // 2
    values = rng.random((n, length), dtype=np.float32)
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    rows = np.arange(n)
    X = np.zeros((n, length, 2), dtype=np.float32)
    X[:, :, 0] = values
    X[rows, first, 1] = 1.0
    X[rows, second, 1] = 1.0
    # Summed in float32 so the target is exactly the sum of the stored inputs.
    Y = (values[rows, first] + values[rows, second]).reshape(n, 1)
    return X, Y


def adding_accuracy(pred: np.ndarray, Y: np.ndarray, *, tol: float = 0.04) -> float:
    """Fraction of adding-problem predictions with absolute error below `tol`.

    Hochreiter & Schmidhuber (1997) count a sequence as solved when the
    absolute error is below 0.04.

    Parameters
    ----------
    pred : np.ndarray, shape (n, 1) or (n,)
        Predictions.
    Y : np.ndarray, shape (n, 1) or (n,)
        Targets from :func:`adding_problem`.
    tol : float, default 0.04
        Positive tolerance on the absolute error (strict inequality).

    Returns
    -------
    float
        Fraction in [0, 1]; nan predictions count as wrong.

    Raises
    ------
    ValueError
        If the shapes do not describe the same n >= 1 sequences or `tol` is not
        a positive finite number.
    """
    if (
        isinstance(tol, bool)
        or not isinstance(tol, int | float | np.integer | np.floating)
        or not np.isfinite(tol)
        or tol <= 0
    ):
        raise ValueError(f"tol must be a positive finite float, got {tol!r}")
    pred = np.asarray(pred, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)

    def column(a: np.ndarray, what: str) -> np.ndarray:
        # Accept (n,) and (n, 1) but nothing that would broadcast silently,
        # e.g. (n,) against (n, 1) giving an (n, n) comparison.
        if a.ndim == 2 and a.shape[1] == 1:
            return a[:, 0]
        if a.ndim == 1:
            return a
        raise ValueError(f"{what} must have shape (n, 1) or (n,), got {a.shape}")

    p, y = column(pred, "pred"), column(Y, "Y")
    if p.shape != y.shape or p.size == 0:
        raise ValueError(
            f"pred and Y must hold the same number n >= 1 of values, got {pred.shape} and {Y.shape}"
        )
    return float(np.mean(np.abs(p - y) < tol))


def _scaled(position: int, length: int) -> int:
    """Scale a position of a length-100 sequence to `length`, rounding half up."""
    return (position * length + 50) // 100


def temporal_order(
    n: int, length: int, *, seed: int | np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Generate the temporal-order task (Hochreiter & Schmidhuber 1997, experiment 6a).

    Every sequence starts with ``B`` (step 0) and ends with the trigger ``E``
    (step ``length - 1``). Two relevant symbols, each ``X`` or ``Y`` with
    probability 1/2, sit at steps ``t1`` and ``t2``; every other step holds a
    distractor drawn uniformly from ``a, b, c, d``. The class is the order of
    the relevant symbols: ``XX -> 0``, ``XY -> 1``, ``YX -> 2``, ``YY -> 3``.

    For ``length == 100``, ``t1`` is uniform in [10, 20] and ``t2`` in [50, 60]
    (0-based steps, bounds included), as in the paper. For other lengths the
    windows are scaled proportionally: ``t1`` in
    ``[round(0.1 L), round(0.2 L)]`` and ``t2`` in ``[round(0.5 L), round(0.6 L)]``
    (rounding half up), so the gap between the relevant symbols and the final
    trigger grows with the length. Unlike the paper, which draws each
    sequence's length from [100, 110], all sequences here have the same length
    so the batch is one array.

    Parameters
    ----------
    n : int
        Number of sequences (>= 1).
    length : int
        Number of time steps (>= 10).
    seed : int or np.random.Generator
        Seed or generator for reproducible data.

    Returns
    -------
    X : np.ndarray of float32, shape (n, length, 8)
        One-hot inputs; channel ``k`` is ``TEMPORAL_ORDER_SYMBOLS[k]``, i.e.
        ``a, b, c, d, B, E, X, Y``.
    Y : np.ndarray of int64, shape (n,)
        Class indices in 0..3 (see ``TEMPORAL_ORDER_CLASSES``).

    Raises
    ------
    ValueError
        If `n`, `length` or `seed` is invalid.
    """
    n = integer(n, "n", minimum=1)
    length = integer(length, "length", minimum=_TEMPORAL_ORDER_MIN_LENGTH)
    rng = _rng(seed)
    b_sym, e_sym, x_sym = 4, 5, 6
    symbols = rng.integers(0, 4, size=(n, length))
    symbols[:, 0] = b_sym
    symbols[:, -1] = e_sym
    t1 = rng.integers(_scaled(10, length), _scaled(20, length) + 1, size=n)
    t2 = rng.integers(_scaled(50, length), _scaled(60, length) + 1, size=n)
    is_y1 = rng.integers(0, 2, size=n)
    is_y2 = rng.integers(0, 2, size=n)
    rows = np.arange(n)
    symbols[rows, t1] = x_sym + is_y1
    symbols[rows, t2] = x_sym + is_y2
    X = np.eye(len(TEMPORAL_ORDER_SYMBOLS), dtype=np.float32)[symbols]
    Y = (2 * is_y1 + is_y2).astype(np.int64)
    return X, Y


def copy_task(
    n: int,
    length: int,
    *,
    n_symbols: int = 8,
    delay: int,
    seed: int | np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate the copy-memory task (Arjovsky et al. 2016).

    Token 0 is the blank, tokens ``1 .. n_symbols`` are the data symbols and
    token ``n_symbols + 1`` is the delimiter. An input sequence has
    ``T = 2 * length + delay`` steps:

    * steps ``0 .. length - 1``: `length` symbols drawn uniformly from
      ``1 .. n_symbols``;
    * the next ``delay - 1`` steps: blank;
    * step ``length + delay - 1``: the delimiter, the cue to start recalling;
    * the last `length` steps: blank.

    The target is blank at the first ``length + delay`` steps and the input
    symbols, in order, at the last `length` steps. Arjovsky et al. use
    ``length=10``, ``n_symbols=8`` and call `delay` T. Outputting blanks and
    then uniformly random symbols gives the baseline cross-entropy
    ``length * log(n_symbols) / T`` per step.

    Parameters
    ----------
    n : int
        Number of sequences (>= 1).
    length : int
        Number of symbols to memorise (>= 1).
    n_symbols : int, default 8
        Size of the symbol alphabet (>= 1).
    delay : int
        Number of steps from the last symbol to the delimiter, inclusive of
        the delimiter (>= 1).
    seed : int or np.random.Generator
        Seed or generator for reproducible data.

    Returns
    -------
    X : np.ndarray of float32, shape (n, 2 * length + delay, n_symbols + 2)
        One-hot inputs over the tokens ``0 .. n_symbols + 1``.
    Y : np.ndarray of int64, shape (n, 2 * length + delay)
        Target tokens in ``0 .. n_symbols`` (the delimiter is never a target).

    Raises
    ------
    ValueError
        If an argument is invalid.
    """
    n = integer(n, "n", minimum=1)
    length = integer(length, "length", minimum=1)
    n_symbols = integer(n_symbols, "n_symbols", minimum=1)
    delay = integer(delay, "delay", minimum=1)
    rng = _rng(seed)
    total = 2 * length + delay
    data = rng.integers(1, n_symbols + 1, size=(n, length))
    tokens = np.zeros((n, total), dtype=np.int64)
    tokens[:, :length] = data
    tokens[:, length + delay - 1] = n_symbols + 1
    X = np.eye(n_symbols + 2, dtype=np.float32)[tokens]
    Y = np.zeros((n, total), dtype=np.int64)
    Y[:, -length:] = data
    return X, Y
