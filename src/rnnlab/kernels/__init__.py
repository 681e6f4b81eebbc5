"""Fused fast paths for the recurrent layers, checked against the plain NumPy reference.

The plain path (:mod:`rnnlab.recurrent` with each cell's ``step``/``step_back``) is the
one source of truth for the maths; the kernels here compute the same thing with the
whole time loop compiled by numba, and ``tests/test_kernels.py`` holds them to it
(float64 within 1e-10) on every test run.

The kernels are leaves: they take arrays and a kernel id (a cell's
:attr:`~rnnlab.cells.Cell.kernel`) and import nothing of rnnlab outside this package;
:mod:`rnnlab.engine` is the one module that sees both them and the reference loop.

The fast path is used whenever numba is importable and the cell declares a kernel
(Elman, LSTM, GRU, and the LSTM's and GRU's variants: ``lstmp``, ``lstm_peepholes``,
``lstm_ln``, ``gru_ln``); otherwise the plain path runs. Choose explicitly with
:func:`use_fast`::

    with rnnlab.kernels.use_fast(False):    # the plain NumPy reference
        y, state, cache = layer.forward(x)

set threads with :func:`threads`, and the library of the per-step products with
:func:`use_blas` (rnnlab's tile by default). Importing this package does not import
numba; the first fast call does, and loads the compiled kernels from numba's on-disk
cache (``__pycache__`` beside the sources, or ``NUMBA_CACHE_DIR``), which takes a
fraction of a second. With an empty cache the first call compiles instead, once per
installation, which takes seconds per cell and dtype (measurements:
docs/performance.md).
"""

from __future__ import annotations

import contextlib
import importlib.util
from contextvars import ContextVar

import numpy as np

from .tape import Tape

#: the kernel ids: each names a cell whose step and step_back a kernel here computes
#: (:attr:`rnnlab.cells.Cell.kernel`)
KERNELS = ("elman", "lstm", "lstmp", "lstm_peepholes", "gru", "lstm_ln", "gru_ln")
#: True when numba can be imported, i.e. the fast path is possible at all.
AVAILABLE = importlib.util.find_spec("numba") is not None

_fast: ContextVar[bool] = ContextVar("rnnlab_fast", default=True)


@contextlib.contextmanager
def use_fast(enabled: bool = True):
    """Use (or with False, avoid) the fused kernels inside the block.

    The default outside any block is to use them when numba is available. The setting
    is a context variable, so concurrent threads and tasks each keep their own.
    """
    if not isinstance(enabled, bool):
        raise ValueError(f"use_fast expects True or False, got {enabled!r}")
    token = _fast.set(enabled)
    try:
        yield
    finally:
        _fast.reset(token)


def active(kernel: str | None, fast: bool | None = None) -> bool:
    """Whether the kernel ``kernel`` (an id, or None for none) runs: numba is there, the
    context (or ``fast``, which overrides it) asks for the fast path, and the id is known."""
    return (kernel in KERNELS and AVAILABLE
            and (_fast.get() if fast is None else fast))


def fast_layers():
    """:mod:`rnnlab.kernels.layers`, imported on first use (it imports numba)."""
    global _LAYERS
    if _LAYERS is None:
        from . import layers

        _LAYERS = layers
    return _LAYERS


_LAYERS = None


def matmul(A, B, trans_a: bool = False, bf16: bool = False):
    """``A @ B``, or ``A.T @ B`` with ``trans_a``, for 2-D arrays.

    On the fast path a large product of float32 or float64 arrays runs in parts on
    rnnlab's threads, each part a single-threaded BLAS call, so that BLAS's own thread
    pool, whose idle threads spin after each call, never runs against the time loops
    (:func:`rnnlab.kernels.blas.product_chunks`). Otherwise, NumPy's ``@``.
    ``bf16`` (float32 arrays, where :func:`bf16_available`): both rounded to bf16,
    float32 sums, on the bf16 tile.
    """
    if _fast.get() and AVAILABLE:
        if bf16 and A.dtype == B.dtype == np.float32 and bf16_available():
            return fast_layers().matmul_bf16(A, B, trans_a)
        return fast_layers().matmul(A, B, trans_a)
    return (A.T if trans_a else A) @ B


def bf16_native() -> str | None:
    """The BF16 matrix instructions the kernels use on this CPU (``"avx512_bf16"``), or
    None: none there (or numba absent, or :func:`bf16_instructions` switched them off)."""
    if not AVAILABLE:
        return None
    from . import blas

    return blas.bf16_native()


def bf16_available() -> bool:
    """Whether bf16 products can run now: the CPU's instructions, or the emulated tile
    inside ``bf16_instructions("emulate")``."""
    if not (AVAILABLE and _fast.get()):
        return False
    from . import blas

    return blas.bf16_tile() != 0


def bf16_instructions(mode: str | None):
    """``"off"`` (as on a CPU without BF16 instructions), ``"emulate"`` (the bf16 maths
    in generic instructions, on any CPU) or None (detect) inside a ``with`` block; see
    :func:`rnnlab.kernels.blas.bf16_instructions`."""
    from . import blas

    return blas.bf16_instructions(mode)


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the system.

    Process-wide and opt-in (``rnnlab train`` calls it). Every training step allocates its
    caches and gradients afresh (several MB at the benchmark's sizes); with glibc's
    defaults much of that is handed back to the kernel when freed and page-faulted in
    again, zeroed, on the next step, and those page faults can cost as much as the step's
    arithmetic (an LSTM step at B=128, T=28, H=128: 18.1 ms against 9.3 ms without them;
    measurements: docs/performance.md). The price is that the process keeps its peak heap
    until it exits. Other code in the process (PyTorch's CPU tensors among it) allocates
    through the same ``malloc`` and gains alike.

    Parameters
    ----------
    limit : int
        Allocations up to this many bytes come from the reusable heap (M_MMAP_THRESHOLD),
        and free memory up to twice this stays with the process (M_TRIM_THRESHOLD).

    Returns
    -------
    bool
        True if glibc accepted the settings; False elsewhere (macOS, musl, Windows).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
    ok = mallopt(M_MMAP_THRESHOLD, int(limit)) == 1
    ok = mallopt(M_TRIM_THRESHOLD, 2 * int(limit)) == 1 and ok
    global _KEPT
    _KEPT = _KEPT or ok
    return ok


_KEPT = False  # whether a keep_freed_memory() call has taken effect


def freed_memory_kept() -> bool:
    """Whether :func:`keep_freed_memory` has taken effect in this process (the benchmarks
    record it)."""
    return _KEPT


def threads(n: int | None):
    """Threads for rnnlab inside a ``with`` block; see :func:`rnnlab.kernels.blas.threads`."""
    from . import blas

    return blas.threads(n)


def use_blas(name: str):
    """``"tile"`` (default), ``"numpy"`` or ``"mkl"`` for the per-step products inside a
    ``with`` block; see :func:`rnnlab.kernels.blas.use_blas`."""
    from . import blas

    return blas.use_blas(name)


def side_by_side(work: int, first, second):
    """``(first(), second())``, two independent kernel calls of ``work`` multiply-adds
    each, at once on two threads where allowed; see :func:`rnnlab.kernels.blas.side_by_side`."""
    from . import blas

    return blas.side_by_side(work, first, second)


__all__ = ["AVAILABLE", "Tape", "active", "bf16_available", "bf16_instructions", "bf16_native",
           "freed_memory_kept", "keep_freed_memory", "matmul", "side_by_side", "threads",
           "use_blas", "use_fast"]
